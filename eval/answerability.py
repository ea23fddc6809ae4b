"""How well the answerability decision separates what the collection answers from what it does not.

From each record's calibrated score (`Answer.answerability`): ROC AUC against "the question is answerable", the
precision/coverage trade-off that `answer.min_answerability` moves along (precision = answers citing a gold paper
among the questions answered), a reliability plot (mean score vs the answerable share, per score bin), and the
refusals by kind of unanswerable question.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paper_agent.eval.record import Record

PLOT = "answerability.png"
BINS = 10


def scored(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if r.answerability is not None]


def roc_auc(records: Sequence[Record]) -> float | None:
    """P(an answerable question scores above an unanswerable one); None without both kinds."""
    pos = [float(r.answerability or 0.0) for r in scored(records) if r.gold_ids]
    neg = [float(r.answerability or 0.0) for r in scored(records) if not r.gold_ids]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def coverage_curve(records: Sequence[Record]) -> list[tuple[float, float, float]]:
    """(threshold, coverage, precision) answering every question scoring at least each threshold. A question
    this run answered is right when it cited a gold paper; one it refused, when its top-ranked paper is gold (what an
    answer would have named)."""
    rows = sorted(scored(records), key=lambda r: -float(r.answerability or 0.0))
    points, right = [], 0
    for i, r in enumerate(rows, start=1):
        right += _right(r)
        points.append((float(r.answerability or 0.0), i / len(rows), right / i))
    return points


def _right(r: Record) -> bool:
    if not r.gold_ids:
        return False
    if r.refused:
        return bool(r.retrieved_ids) and r.retrieved_ids[0] in r.gold_ids
    return r.scores.get("gold_cited_rate") == 1.0


def summary_entry(records: Sequence[Record]) -> dict[str, Any]:
    auc = roc_auc(records)
    entry: dict[str, Any] = {
        "value": None if auc is None else round(auc, 4),
        "n": len(scored(records)),
        "failures": 0,
        "by_type": {},
        "description": "ROC AUC of the calibrated answerability score (answerable vs unanswerable questions)",
    }
    if auc is None:
        entry["not_measured"] = "needs answered runs with both answerable and unanswerable questions"
    return entry


def refusals_by_kind(records: Sequence[Record]) -> dict[str, tuple[int, int]]:
    """Unanswerable kind -> (refused, questions)."""
    kinds: dict[str, list[bool]] = {}
    for r in records:
        if not r.gold_ids and r.refused is not None:
            kinds.setdefault(r.kind or "unlabelled", []).append(bool(r.refused))
    return {k: (sum(v), len(v)) for k, v in sorted(kinds.items())}


def plot(records: Sequence[Record], path: Path) -> None:
    """Precision against coverage, and the reliability diagram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = coverage_curve(records)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if curve:
        left.plot([c for _, c, _ in curve], [p for _, _, p in curve])
    left.set(xlabel="coverage (questions answered)", ylabel="precision (answers citing a gold paper)", ylim=(0, 1.02))
    left.set_title("Precision vs coverage")
    values = np.array([float(r.answerability or 0.0) for r in scored(records)])
    labels = np.array([bool(r.gold_ids) for r in scored(records)])
    edges = np.linspace(0, 1, BINS + 1)
    which = np.clip(np.digitize(values, edges) - 1, 0, BINS - 1)
    bins = [b for b in range(BINS) if np.any(which == b)]
    right.plot([0, 1], [0, 1], linestyle="--", color="grey")
    right.plot([values[which == b].mean() for b in bins], [labels[which == b].mean() for b in bins], marker="o")
    right.set(xlabel="mean answerability score", ylabel="share answerable", xlim=(0, 1), ylim=(0, 1))
    right.set_title("Reliability")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
