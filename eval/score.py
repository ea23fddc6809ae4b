"""Records -> scores: retrieval by paper id, our answer metrics, and ragas's (through eval/ragas_judge.py).

Each function fills `record.scores` with the metrics that apply to the question and `record.failures` with why
a metric that applied got no value, so the summary can count both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tqdm import tqdm

from paper_agent.eval.metrics import Entails, citation_scores, retrieval_scores, strip_markers
from paper_agent.eval.ragas_judge import JUDGE_METRICS, Judge, JudgeSample, non_llm_scores
from paper_agent.eval.record import Record

ANSWER_METRICS = (
    "gold_cited_rate",
    "refusal_rate_unanswerable",
    "refusal_rate_answerable",
    "citation_recall",
    "citation_precision",
    "gold_sentence_rate",
    "ragas.string_similarity",
)


def score_retrieval(record: Record) -> None:
    record.scores.update(retrieval_scores(record.retrieved_ids, record.gold_ids))


def score_answer(record: Record, sources: dict[str, str], entails: Entails) -> None:
    """Refusals, gold citations and ALCE citation quality; `sources` maps a paper id to its title and abstract."""
    answerable = bool(record.gold_ids)
    if record.answer is None:  # `ask` failed: every answer metric that applied is a failure
        for name in _answer_metrics_for(record):
            record.failures[name] = "answer_error"
        return
    key = "refusal_rate_answerable" if answerable else "refusal_rate_unanswerable"
    record.scores[key] = 1.0 if record.refused else 0.0
    if answerable:
        cited = {c["paper_id"] for c in record.citations}
        record.scores["gold_cited_rate"] = 1.0 if cited & set(record.gold_ids) else 0.0
    if record.refused:
        return  # citation quality is about the claims an answer makes; a refusal makes none
    if record.gold_sentences:
        record.scores["gold_sentence_rate"] = 1.0 if quotes_gold_sentence(record) else 0.0
    by_number = {c["number"]: sources.get(c["paper_id"], c.get("quote", "")) for c in record.citations}
    result = citation_scores(record.answer, by_number, entails)
    record.scores["citation_recall"] = result.recall
    if result.precision is not None:
        record.scores["citation_precision"] = result.precision


def quotes_gold_sentence(record: Record) -> bool:
    """Whether the answer contains, or one of its citations quotes, a sentence labelled as answering the question."""
    said = [_flat(record.answer or ""), *(_flat(c.get("quote", "")) for c in record.citations)]
    return any(_flat(g) in text for g in record.gold_sentences for text in said)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _answer_metrics_for(record: Record) -> list[str]:
    if not record.gold_ids:
        return ["refusal_rate_unanswerable"]
    return ["refusal_rate_answerable", "gold_cited_rate", *JUDGE_METRICS]


async def score_ragas(
    records: Sequence[Record],
    gold_texts: dict[str, str],
    top_k: int,
    judge: Judge | None,
    concurrency: int,
    progress: bool,
) -> None:
    """ragas's non-LLM metrics on every record; its LLM metrics too when a judge is given."""
    gate = asyncio.Semaphore(concurrency)
    with tqdm(total=len(records), desc="ragas", unit="q", disable=not progress) as bar:

        async def one(record: Record) -> None:
            async with gate:
                await _score_one(record, gold_texts, top_k, judge)
            bar.update(1)

        await asyncio.gather(*(one(r) for r in records))


async def _score_one(record: Record, gold_texts: dict[str, str], top_k: int, judge: Judge | None) -> None:
    golds = [gold_texts[g] for g in record.gold_ids if g in gold_texts]
    contexts = [h["text"] for h in record.retrieved]
    # The judge and the string metric see the claims without our `[n]` markers, which are not part of them.
    response = strip_markers(record.answer) if record.answer is not None else None
    record.scores.update(
        await non_llm_scores(
            record.retrieved_ids[:top_k], record.gold_ids, contexts, golds, response, record.reference_answer
        )
    )
    if judge is None or response is None:
        return
    sample = JudgeSample(
        question=record.question,
        response=response,
        contexts=tuple(p["text"] for p in record.answer_contexts),
        reference=record.reference_answer,
    )
    for metric in _judged_metrics(record, sample):
        outcome = await judge.score(metric, sample)
        if outcome.value is not None:
            record.scores[metric] = outcome.value
        else:
            record.failures[metric] = outcome.failure or "error"


def _judged_metrics(record: Record, sample: JudgeSample) -> list[str]:
    """The LLM metrics that apply: faithfulness needs claims and contexts; the others need a gold answer."""
    metrics = []
    if not record.refused and sample.contexts:
        metrics.append("ragas.faithfulness")
    if record.gold_ids:
        metrics.append("ragas.answer_relevancy")
        if sample.reference and sample.contexts:
            metrics += ["ragas.context_precision", "ragas.context_recall"]
    return metrics
