"""A run's files: `results.jsonl`, `summary.json`, `report.md` and `report.html` with PNG plots (matplotlib, Agg).

Both reports are rendered from one list of sections, so they say the same thing. A metric that was not measured
shows its reason ("not measured: judge too weak (...)"), never a number.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paper_agent.eval import answerability
from paper_agent.eval.dataset import QUESTION_TYPES
from paper_agent.eval.record import Record
from paper_agent.eval.summary import LATENCIES, QUANTILES

METRIC_PLOT, LATENCY_PLOT = "metrics_by_type.png", "latency.png"


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


def write_run(out_dir: Path, records: Sequence[Record], summary: dict[str, Any]) -> None:
    """All of a run's files in `out_dir` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "results.jsonl").open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    plot_metrics(summary, out_dir / METRIC_PLOT)
    plot_latency(records, out_dir / LATENCY_PLOT)
    if answerability.scored(records):
        answerability.plot(records, out_dir / answerability.PLOT)
    sections = run_sections(records, summary)
    (out_dir / "report.md").write_text(to_markdown("Evaluation report", sections), encoding="utf-8")
    (out_dir / "report.html").write_text(to_html("Evaluation report", sections, out_dir), encoding="utf-8")


def write_comparison(out_dir: Path, summaries: dict[str, dict[str, Any]]) -> None:
    """`comparison.md` and `comparison.json`: every metric, one column per run (e.g. per retrieval mode)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [n for n in next(iter(summaries.values())) if n != "run"]
    table = {n: {label: s.get(n, {}).get("value") for label, s in summaries.items()} for n in names}
    (out_dir / "comparison.json").write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    section = Section("Metrics by run", headers=["metric", *summaries])
    section.rows = [[n, *(format_value(s.get(n)) for s in summaries.values())] for n in names]
    (out_dir / "comparison.md").write_text(to_markdown("Comparison", [section]), encoding="utf-8")


def format_value(entry: dict[str, Any] | None) -> str:
    """A summary entry as a table cell: the value, or why there is none."""
    if not entry:
        return "-"
    if entry.get("value") is None:
        return f"not measured: {entry.get('not_measured', 'no value')}"
    value = float(entry["value"])
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"


# --- sections ------------------------------------------------------------------------------------------------


def run_sections(records: Sequence[Record], summary: dict[str, Any]) -> list[Section]:
    run = summary.get("run", {})
    types = [t for t in QUESTION_TYPES if any(r.type == t for r in records)]
    about = Section("Run", text=[f"- {k}: {_plain(v)}" for k, v in run.items() if v is not None])
    metrics = Section("Metrics", headers=["metric", "all", "n", "failures", *types])
    latency = Section("Latency (ms)", headers=["timing", "n", *(f"p{q}" for q in QUANTILES)])
    for name, entry in summary.items():
        if name == "run" or name.startswith("latency."):
            continue
        by_type = entry.get("by_type", {})
        cells = [_short(by_type.get(t)) for t in types]
        metrics.rows.append([name, format_value(entry), str(entry["n"]), _failures(entry), *cells])
    for key in LATENCIES:
        entries = [summary.get(f"latency.{key}.p{q}", {}) for q in QUANTILES]
        if entries and entries[0].get("n"):
            latency.rows.append([key, str(entries[0]["n"]), *(format_value(e) for e in entries)])
    metrics.text = [
        "Each metric: value over the questions it applies to (n), failures counted apart, never averaged in.",
        *(f"- `{n}`: {e['description']}" for n, e in summary.items() if n != "run" and not n.startswith("latency.")),
    ]
    plots = Section("Plots", images=[METRIC_PLOT, LATENCY_PLOT])
    return [about, metrics, latency, plots, _decision(records), _misses(records), _errors(records)]


def _decision(records: Sequence[Record]) -> Section:
    """Refusals by kind of unanswerable question, and the precision/coverage trade-off of the threshold."""
    section = Section("Answerability decision", headers=["unanswerable kind", "refused", "of"])
    section.rows = [[k, str(r), str(n)] for k, (r, n) in answerability.refusals_by_kind(records).items()]
    curve = answerability.coverage_curve(records)
    if not curve:
        section.text = ["No answers in this run."]
        return section
    steps = [curve[min(len(curve) - 1, round(f * len(curve)) - 1)] for f in (0.2, 0.4, 0.6, 0.8, 1.0)]
    section.text = [
        "Precision/coverage (answering every question whose score reaches the threshold): "
        + "; ".join(f"threshold {t:.2f}: coverage {c:.2f}, precision {p:.2f}" for t, c, p in steps),
    ]
    section.images = [answerability.PLOT]
    return section


def _misses(records: Sequence[Record]) -> Section:
    section = Section("Retrieval misses (no gold paper in the top 10)", headers=["id", "type", "question", "gold"])
    for r in records:
        if r.gold_ids and not set(r.gold_ids) & set(r.retrieved_ids):
            section.rows.append([r.id, r.type, r.question[:90], ", ".join(r.gold_ids)])
    if not section.rows:
        section.text = ["None."]
    return section


def _errors(records: Sequence[Record]) -> Section:
    section = Section("Answer errors and judge failures", headers=["id", "error or failed metrics"])
    for r in records:
        if r.error or r.failures:
            detail = r.error or ", ".join(f"{m}: {why}" for m, why in r.failures.items())
            section.rows.append([r.id, detail])
    if not section.rows:
        section.text = ["None."]
    return section


def _short(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("value") is None:
        return "-" if not cell or not cell.get("failures") else f"- ({cell['failures']} failed)"
    return f"{format_value(cell)} (n={cell['n']})"


def _failures(entry: dict[str, Any]) -> str:
    kinds = entry.get("failure_kinds") or {}
    return str(entry["failures"]) + (f" ({', '.join(f'{k}: {n}' for k, n in kinds.items())})" if kinds else "")


def _plain(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


# --- rendering -------------------------------------------------------------------------------------------------


def to_markdown(title: str, sections: Sequence[Section]) -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s.title}", "", *s.text, ""] if s.text else [f"## {s.title}", ""]
        if s.rows:
            lines += ["| " + " | ".join(s.headers) + " |", "|" + "---|" * len(s.headers)]
            lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in s.rows]
            lines.append("")
        lines += [f"![{name}]({name})\n" for name in s.images]
    return "\n".join(lines).rstrip() + "\n"


def to_html(title: str, sections: Sequence[Section], out_dir: Path) -> str:
    """A self-contained page: the plots are embedded as data URIs."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>", _STYLE]
    parts.append(f"<h1>{html.escape(title)}</h1>")
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        parts += [f"<p>{html.escape(line.lstrip('- '))}</p>" for line in s.text]
        if s.rows:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in s.headers)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in s.rows)
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        for name in s.images:
            data = base64.b64encode((out_dir / name).read_bytes()).decode()
            parts.append(f"<img alt='{name}' src='data:image/png;base64,{data}'>")
    return "\n".join(parts) + "\n"


_STYLE = (
    "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:3px 8px;font-size:14px}img{max-width:100%}</style>"
)


# --- plots -------------------------------------------------------------------------------------------------------


def plot_metrics(summary: dict[str, Any], path: Path) -> None:
    """Grouped bars: each measured 0-1 metric, one bar per question type plus all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, e in summary.items() if n != "run" and not n.startswith("latency.") and e["value"] is not None]
    groups = ["all", *[t for t in QUESTION_TYPES if any(t in summary[n].get("by_type", {}) for n in names)]]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names) + 2), 4.5))
    width = 0.8 / len(groups)
    for g, group in enumerate(groups):
        values = [_group_value(summary[n], group) for n in names]
        ax.bar([i + g * width for i in range(len(names))], values, width, label=group)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=40, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("value")
    ax.set_title("Measured metrics by question type (not-measured metrics are left out)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _group_value(entry: dict[str, Any], group: str) -> float:
    cell = entry if group == "all" else entry.get("by_type", {}).get(group, {})
    value = cell.get("value")
    return float(value) if value is not None else 0.0


def plot_latency(records: Sequence[Record], path: Path) -> None:
    """One histogram per timing that the run has (retrieval, whole answer, time to first token)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {k: [r.timings[k] for r in records if k in r.timings] for k in LATENCIES}
    series = {k: v for k, v in series.items() if v} or {"retrieval_ms": [0.0]}
    fig, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 3.5), squeeze=False)
    for ax, (key, values) in zip(axes[0], series.items()):
        ax.hist(values, bins=min(20, max(5, len(values) // 3)))
        ax.set_xlabel(key)
        ax.set_ylabel("questions")
    fig.suptitle("Latency")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


HEADLINE = ("hit@1", "hit@5", "mrr@10", "recall@10", "gold_cited_rate", "refusal_rate_unanswerable")


def headline(summary: dict[str, Any]) -> str:
    """One line of the main figures, for the terminal."""
    return "  ".join(
        f"{n} {format_value(summary[n]) if summary[n].get('value') is not None else 'n/a'}"
        for n in HEADLINE
        if n in summary
    )
