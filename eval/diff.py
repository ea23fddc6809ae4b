"""`paper-agent eval-diff RUN_A RUN_B`: every metric of two runs side by side, with the change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paper_agent.errors import AgentError
from paper_agent.eval.report import format_value
from paper_agent.eval.summary import is_lower_better


class NotARun(AgentError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: not an evaluation run ({reason})")


@dataclass(frozen=True)
class DiffRow:
    metric: str
    a: str
    b: str
    change: str  # "+0.050 better", "-3.2 worse", "=" or "-" when either side has no value


def load_summary(run: Path) -> dict[str, Any]:
    """The summary of a run folder (or of a summary.json given directly)."""
    path = run / "summary.json" if run.is_dir() else run
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise NotARun(run, str(err)) from err
    if not isinstance(data, dict):
        raise NotARun(run, "summary.json is not an object")
    return data


def diff_summaries(a: dict[str, Any], b: dict[str, Any]) -> list[DiffRow]:
    """One row per metric in either run, in A's order then B's new ones."""
    names = [n for n in a if n != "run"] + [n for n in b if n not in a and n != "run"]
    return [DiffRow(n, format_value(a.get(n)), format_value(b.get(n)), _change(n, a.get(n), b.get(n))) for n in names]


def _change(name: str, a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    va, vb = (a or {}).get("value"), (b or {}).get("value")
    if va is None or vb is None:
        return "-"
    delta = float(vb) - float(va)
    if abs(delta) < 1e-9:
        return "="
    better = (delta < 0) if is_lower_better(name) else (delta > 0)
    size = f"{delta:+.1f}" if max(abs(float(va)), abs(float(vb))) >= 10 else f"{delta:+.3f}"
    return f"{size} {'better' if better else 'worse'}"


def format_diff(rows: list[DiffRow], label_a: str, label_b: str) -> str:
    """A fixed-width text table for the terminal."""
    table = [("metric", label_a, label_b, "change"), *((r.metric, r.a, r.b, r.change) for r in rows)]
    widths = [min(60, max(len(row[i]) for row in table)) for i in range(4)]
    lines = ["  ".join(cell[:60].ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
