"""The evaluation harness: questions -> the real pipeline -> scored records -> results, summary and report.

`run_eval` asks each question of one `PaperAgent` (search, then `ask` unless retrieval-only) with bounded
concurrency, scores the records (eval/score.py), checks the judge before trusting it, and writes the run's files
(eval/report.py). `run_modes` does that once per retrieval mode and writes a comparison.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from paper_agent.errors import AgentError
from paper_agent.eval import answerability
from paper_agent.eval.dataset import Question
from paper_agent.eval.metrics import Entails
from paper_agent.eval.ragas_judge import JUDGE_METRICS, Judge, SelfTest, self_test
from paper_agent.eval.record import Record
from paper_agent.eval.report import write_comparison, write_run
from paper_agent.eval.score import ANSWER_METRICS, score_answer, score_ragas, score_retrieval
from paper_agent.eval.summary import summarize
from paper_agent.llm import ChatModel, OpenAIChatModel
from paper_agent.llm_server import ensure_server
from paper_agent.service import PaperAgent
from paper_agent.settings import Settings
from paper_agent.verify import support

RANK_DEPTH = 10  # papers ranked per question: hit@k and mrr@10 / recall@10 need the top 10
MODES = ("dense", "lexical", "hybrid")
SELF_TEST_MAX_TOKENS = 256


def run_eval(
    agent: PaperAgent,
    questions: Sequence[Question],
    out_dir: Path,
    *,
    retrieval_only: bool = False,
    progress: bool = True,
    judge_model: ChatModel | None = None,
) -> dict[str, Any]:
    """Evaluate `agent` on the questions, write the run's files to `out_dir`, and return the summary.

    The judge is `judge_model` if given, else the one the settings name (see `judge_chat_model`)."""
    started, clock = datetime.now(UTC), time.perf_counter()
    settings = agent.settings
    records = answer_all(agent, questions, retrieval_only=retrieval_only, progress=progress)
    entails, entailment = citation_entailment(settings)
    sources = paper_texts(agent, records)
    cited_texts = {pid: f"{title}. {text}" for pid, (title, text) in sources.items()}
    for record in records:
        score_retrieval(record)
        if not retrieval_only:
            score_answer(record, cited_texts, entails)
    check = _checked_judge(agent, records, retrieval_only, progress, judge_model)
    gold_texts = {pid: text for pid, (_, text) in sources.items()}
    asyncio.run(
        score_ragas(records, gold_texts, settings.retrieve.top_k, check.judge, settings.eval.concurrency, progress)
    )
    summary: dict[str, Any] = summarize(
        records, check.not_measured, JUDGE_METRICS, settings.eval.judge_max_failure_rate
    )
    summary["answerability_auc"] = answerability.summary_entry(records)
    summary["run"] = {
        "command": " ".join(["paper-agent", *sys.argv[1:]]) if sys.argv[0].endswith("paper-agent") else None,
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - clock, 1),
        "questions": len(records),
        "answer_errors": sum(r.error is not None for r in records),
        "mode": settings.retrieve.mode,
        "rerank": settings.retrieve.rerank,
        "retrieval_only": retrieval_only,
        "top_k": settings.retrieve.top_k,
        "judge": check.name,
        "judge_selftest": asdict(check.selftest) if check.selftest else None,
        "citation_entailment": entailment if not retrieval_only else None,
    }
    write_run(out_dir, records, summary)
    return summary


def run_for_mode(
    agent: PaperAgent,
    questions: Sequence[Question],
    out_dir: Path,
    mode: str | None,
    *,
    retrieval_only: bool = False,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """What `paper-agent eval` runs: the settings' mode, one given mode, or `all` (one sub-folder each)."""
    if mode == "all":
        return run_modes(agent, questions, out_dir, MODES, retrieval_only=retrieval_only, progress=progress)
    if mode is not None and mode != agent.settings.retrieve.mode:
        agent = agent.with_settings(with_mode(agent.settings, mode))
    summary = run_eval(agent, questions, out_dir, retrieval_only=retrieval_only, progress=progress)
    return {agent.settings.retrieve.mode: summary}


def with_mode(settings: Settings, mode: str) -> Settings:
    """The settings with `retrieve.mode` replaced (validated like any other setting)."""
    retrieve = settings.retrieve.model_validate({**settings.retrieve.model_dump(), "mode": mode})
    return settings.model_copy(update={"retrieve": retrieve})


def run_modes(
    agent: PaperAgent,
    questions: Sequence[Question],
    out_dir: Path,
    modes: Sequence[str],
    *,
    retrieval_only: bool = False,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """One run per retrieval mode in `out_dir/<mode>/` (each sharing what the ones before it built), plus a
    comparison."""
    summaries = {}
    for mode in modes:
        agent = agent.with_settings(with_mode(agent.settings, mode))
        summaries[mode] = run_eval(agent, questions, out_dir / mode, retrieval_only=retrieval_only, progress=progress)
    write_comparison(out_dir, summaries)
    return summaries


# --- the pipeline, per question ---------------------------------------------------------------------------


def answer_all(
    agent: PaperAgent, questions: Sequence[Question], *, retrieval_only: bool, progress: bool
) -> list[Record]:
    """One Record per question, in question order, `eval.concurrency` questions at a time."""
    # Load the embedding model and open the index (and start the model server) before the clock runs, so
    # the first questions' latencies measure answering, not start-up.
    if not retrieval_only or agent.settings.retrieve.rerank != "off":
        ensure_server(agent.settings)
    agent.warm_up(answers=not retrieval_only)
    with (
        ThreadPoolExecutor(max_workers=agent.settings.eval.concurrency) as pool,
        tqdm(total=len(questions), desc="questions", unit="q", disable=not progress) as bar,
    ):
        futures = [pool.submit(run_question, agent, q, retrieval_only) for q in questions]
        for future in futures:
            future.add_done_callback(lambda _: bar.update(1))
        return [f.result() for f in futures]


def run_question(agent: PaperAgent, question: Question, retrieval_only: bool) -> Record:
    """Search (top 10 papers) and, unless retrieval-only, ask; `ask` failures are recorded, not raised."""
    record = Record(
        id=question.id,
        type=question.type,
        question=question.question,
        gold_ids=list(question.gold_ids),
        mode=agent.settings.retrieve.mode,
        reference_answer=question.reference_answer,
        kind=question.kind,
        gold_sentences=list(question.gold_sentences),
    )
    clock = time.perf_counter()
    hits = agent.search(question.question, RANK_DEPTH)
    record.timings["retrieval_ms"] = _ms_since(clock)
    record.retrieved_ids = [h.paper_id for h in hits]
    record.retrieved = [
        {"paper_id": h.paper_id, "title": h.title, "score": round(h.score, 6), "text": h.passages[0].text}
        for h in hits[: agent.settings.retrieve.top_k]
        if h.passages
    ]
    if not retrieval_only:
        _ask(agent, question, record)
    return record


def _ask(agent: PaperAgent, question: Question, record: Record) -> None:
    clock = time.perf_counter()
    try:
        answer = agent.ask(question.question)
    except AgentError as err:
        record.error = f"{type(err).__name__}: {err}"
        return
    record.timings["answer_ms"] = _ms_since(clock)
    record.timings.update({f"ask.{k}": float(v) for k, v in answer.timings.items()})
    if "ttft_ms" in answer.timings:
        record.timings["ttft_ms"] = float(answer.timings["ttft_ms"])
    record.answer, record.refused = answer.text, answer.refused
    record.answerability = answer.answerability
    record.decision = answer.verification.get("decision", {}).get("reason")
    record.citations = [asdict(c) for c in answer.citations]
    record.answer_contexts = [
        {"chunk_id": p.chunk_id, "paper_id": p.paper_id, "title": p.title, "text": p.text} for p in answer.passages
    ]


def _ms_since(clock: float) -> float:
    return round((time.perf_counter() - clock) * 1000, 2)


def paper_texts(agent: PaperAgent, records: Sequence[Record]) -> dict[str, tuple[str, str]]:
    """Title and text of every gold and cited paper (the reference contexts and the cited sources)."""
    wanted = {g for r in records for g in r.gold_ids} | {c["paper_id"] for r in records for c in r.citations}
    return {pid: (paper.title, paper.text) for pid, paper in agent.index.get_papers(wanted).items()}


# --- citation support and the judge ------------------------------------------------------------------------


def citation_entailment(settings: Settings) -> tuple[Entails, str]:
    """The entailment check behind the citation metrics (the answer verifier's), and how the report names it."""
    threshold = settings.answer.min_support

    def entails(premise: str, hypothesis: str) -> bool:
        return support(hypothesis, "", premise).score >= threshold

    return entails, (
        f"paper_agent.verify.support >= answer.min_support ({threshold}): a lexical proxy (content-word overlap, "
        "figures matched exactly), not an NLI model; it is the verifier `ask` filters with, so it bounds rather than "
        "proves"
    )


def judge_chat_model(agent: PaperAgent) -> ChatModel:
    """The judge: `eval.judge_base_url`/`judge_model` if set, else the answering model's server."""
    settings = agent.settings
    url = settings.eval.judge_base_url or agent.chat_model.url
    llm = settings.llm.model_copy(
        update={
            "model": settings.eval.judge_model or settings.llm.model,
            "temperature": 0.0,
            "max_tokens": settings.eval.judge_max_tokens,
            "timeout_s": settings.eval.judge_timeout_s,
        }
    )
    return OpenAIChatModel(llm, url)


@dataclass
class JudgeCheck:
    judge: Judge | None  # None: the LLM metrics are not measured, for the reasons in `not_measured`
    not_measured: dict[str, str] = field(default_factory=dict)
    selftest: SelfTest | None = None
    name: str | None = None  # the judge model and its URL, as the report shows it


def _checked_judge(
    agent: PaperAgent, records: Sequence[Record], retrieval_only: bool, progress: bool, model: ChatModel | None
) -> JudgeCheck:
    """The judge if it passes its self-test; else why each LLM metric is not measured."""
    if retrieval_only:
        return JudgeCheck(None, {name: "retrieval-only run" for name in (*ANSWER_METRICS, *JUDGE_METRICS)})
    if not any(r.answered for r in records):
        return JudgeCheck(None, {name: "no answers: every `ask` failed" for name in JUDGE_METRICS})
    settings = agent.settings
    model = model or judge_chat_model(agent)
    judge = Judge(
        model,
        agent.sentence_embedder,
        max_tokens=settings.eval.judge_max_tokens,
        timeout_s=settings.eval.judge_timeout_s,
    )
    # The self-test's cases are one sentence each: a judge that needs more than this to answer them has failed.
    probe = Judge(
        model, agent.sentence_embedder, max_tokens=SELF_TEST_MAX_TOKENS, timeout_s=settings.eval.judge_timeout_s
    )
    if progress:
        print(f"judge self-test: {judge.name} ...", file=sys.stderr)
    result = asyncio.run(self_test(probe, settings.eval.judge_min_selftest, settings.eval.concurrency))
    if result.rate >= settings.eval.judge_min_selftest:
        return JudgeCheck(judge, {}, result, judge.name)
    verdict = "judge unavailable" if result.unavailable else "judge too weak"
    reason = f"{verdict} ({judge.name}; {result.describe()})"
    return JudgeCheck(None, {name: reason for name in JUDGE_METRICS}, result, judge.name)
