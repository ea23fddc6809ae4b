"""Records -> `summary.json`: each metric's value, how many questions it covers, how many failed, by question type.

A metric a judge could not measure carries `value: null` and a `not_measured` reason instead of a number.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from paper_agent.eval.dataset import QUESTION_TYPES
from paper_agent.eval.metrics import percentile
from paper_agent.eval.record import Record


@dataclass(frozen=True)
class MetricInfo:
    description: str
    higher_is_better: bool = True


METRICS: dict[str, MetricInfo] = {
    "hit@1": MetricInfo("gold paper ranked first (single-gold questions)"),
    "hit@5": MetricInfo("gold paper in the top 5 (single-gold questions)"),
    "mrr@10": MetricInfo("mean reciprocal rank of the gold paper within the top 10 (single-gold questions)"),
    "recall@10": MetricInfo("share of gold papers in the top 10 (multi-gold questions)"),
    "ragas.id_context_precision": MetricInfo("ragas id-based context precision over the top retrieve.top_k papers"),
    "ragas.id_context_recall": MetricInfo("ragas id-based context recall over the top retrieve.top_k papers"),
    "ragas.text_context_precision": MetricInfo("ragas non-LLM context precision vs the gold abstracts"),
    "ragas.text_context_recall": MetricInfo("ragas non-LLM context recall vs the gold abstracts"),
    "gold_cited_rate": MetricInfo("answerable questions whose answer cites a gold paper"),
    "refusal_rate_unanswerable": MetricInfo("unanswerable questions refused"),
    "refusal_rate_answerable": MetricInfo("answerable questions refused (false refusals)", higher_is_better=False),
    "citation_recall": MetricInfo("ALCE citation recall: sentences supported by what they cite"),
    "citation_precision": MetricInfo("ALCE citation precision: citations that are needed"),
    "gold_sentence_rate": MetricInfo(
        "answered questions whose answer contains or quotes a labelled answering sentence"
    ),
    "ragas.string_similarity": MetricInfo("ragas Levenshtein similarity of the answer to the reference answer"),
    "ragas.faithfulness": MetricInfo("ragas faithfulness of the answer to its contexts (LLM judge)"),
    "ragas.answer_relevancy": MetricInfo("ragas answer relevancy to the question (LLM judge + embeddings)"),
    "ragas.context_precision": MetricInfo("ragas context precision vs the reference answer (LLM judge)"),
    "ragas.context_recall": MetricInfo("ragas context recall of the reference answer (LLM judge)"),
}
LATENCIES = ("retrieval_ms", "answer_ms", "ttft_ms")
QUANTILES = (50, 90, 95)


def is_lower_better(name: str) -> bool:
    return name.startswith("latency.") or not METRICS.get(name, MetricInfo("")).higher_is_better


def summarize(
    records: Sequence[Record],
    not_measured: dict[str, str],
    judged: Sequence[str] = (),
    max_failure_rate: float = 1.0,
) -> dict[str, dict[str, Any]]:
    """Metric name -> entry. `not_measured` names metrics skipped as a whole, with why; a metric in `judged`
    whose failure share exceeds `max_failure_rate` is reported as not measured too."""
    summary: dict[str, dict[str, Any]] = {}
    for name in METRICS:
        entry = _entry(records, partial(_score, name=name), statistics.fmean)
        entry["description"] = METRICS[name].description
        reason = not_measured.get(name) or _failure_reason(entry, name in judged, max_failure_rate)
        if reason is None and not entry["n"] and not entry["failures"]:
            reason = "no question in this run has what it needs"
        summary[name] = _unmeasured(entry, reason) if reason else entry
    for key in LATENCIES:
        for q in QUANTILES:
            entry = _entry(records, partial(_timing, key=key), partial(percentile, q=q))
            entry["description"] = f"{key} percentile {q}"
            summary[f"latency.{key}.p{q}"] = entry if entry["n"] else _unmeasured(entry, "not timed in this run")
    return summary


Value = float | str | None


def _timing(record: Record, key: str) -> Value:
    return record.timings.get(key)


def _score(record: Record, name: str) -> Value:
    """The record's value for a metric, its failure kind as a string, or None if the metric does not apply."""
    if name in record.scores:
        return record.scores[name]
    return record.failures.get(name)


def _entry(records: Sequence[Record], get: Callable[[Record], Value], reduce: Callable[[list[float]], float]) -> dict:
    overall = _cell([get(r) for r in records], reduce)
    cells: dict[str, dict[str, Any]] = {
        t: _cell([get(r) for r in records if r.type == t], reduce) for t in QUESTION_TYPES
    }
    for kind in sorted({r.kind for r in records if r.kind}):
        cells[f"unanswerable/{kind}"] = _cell([get(r) for r in records if r.kind == kind], reduce)
    overall["by_type"] = {t: c for t, c in cells.items() if c["n"] or c["failures"]}
    return overall


def _cell(values: list[Value], reduce: Callable[[list[float]], float]) -> dict[str, Any]:
    numbers = [float(v) for v in values if isinstance(v, int | float)]
    kinds: dict[str, int] = {}
    for v in values:
        if isinstance(v, str):
            kinds[v] = kinds.get(v, 0) + 1
    cell: dict[str, Any] = {
        "value": round(reduce(numbers), 4) if numbers else None,
        "n": len(numbers),
        "failures": sum(kinds.values()),
    }
    if kinds:
        cell["failure_kinds"] = kinds
    return cell


def _failure_reason(entry: dict[str, Any], judged: bool, max_rate: float) -> str | None:
    attempted = entry["n"] + entry["failures"]
    if not judged or not attempted or entry["failures"] / attempted <= max_rate:
        return None
    return f"judge failed on {entry['failures']} of {attempted} questions (above {max_rate:.0%})"


def _unmeasured(entry: dict[str, Any], reason: str) -> dict[str, Any]:
    entry = {**entry, "value": None, "not_measured": reason}
    entry["by_type"] = {t: {**cell, "value": None} for t, cell in entry.get("by_type", {}).items()}
    return entry
