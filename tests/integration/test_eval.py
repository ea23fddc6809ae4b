"""The evaluation harness against the real thing: the ingested corpus, the real embedding model, the real model server.

Shapes and agreement are asserted, never scores: the 135M model's answers and judgements are what they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paper_agent import cli
from paper_agent.eval.dataset import DEFAULT_QUESTIONS, QUESTION_TYPES, Question, load_questions
from paper_agent.eval.metrics import hit_at, recall_at, reciprocal_rank
from paper_agent.eval.run import run_eval
from paper_agent.service import PaperAgent
from paper_agent.settings import Settings, get_settings

pytestmark = pytest.mark.integration

REQUIRED = ("hit@1", "hit@5", "mrr@10", "recall@10", "refusal_rate_unanswerable", "gold_cited_rate")
LLM_METRICS = ("ragas.faithfulness", "ragas.answer_relevancy", "ragas.context_precision", "ragas.context_recall")
FILES = ("results.jsonl", "summary.json", "report.md", "report.html", "metrics_by_type.png", "latency.png")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _check_summary_shape(summary: dict) -> None:
    assert set(REQUIRED) <= set(summary)
    for name, entry in summary.items():
        if name == "run":
            continue
        assert {"value", "n", "failures", "by_type"} <= set(entry), name
        assert entry["value"] is not None or entry["not_measured"], name


def test_retrieval_only_public_set_agrees_with_plain_search(
    paper_agent: PaperAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = load_questions(DEFAULT_QUESTIONS)
    out = tmp_path / "run"
    summary = run_eval(paper_agent, questions, out, retrieval_only=True, progress=False)
    assert all((out / name).is_file() for name in FILES)
    _check_summary_shape(summary)

    # The plain computation: rank with search (what `paper-agent search --json -k 10` prints) and count.
    ranked = {q.id: [h.paper_id for h in paper_agent.search(q.question, 10)] for q in questions}
    singles = [q for q in questions if len(q.gold_ids) == 1]
    multis = [q for q in questions if len(q.gold_ids) > 1]
    expected = {
        "hit@1": _mean([hit_at(ranked[q.id], q.gold_ids, 1) for q in singles]),
        "hit@5": _mean([hit_at(ranked[q.id], q.gold_ids, 5) for q in singles]),
        "mrr@10": _mean([reciprocal_rank(ranked[q.id], q.gold_ids) for q in singles]),
        "recall@10": _mean([recall_at(ranked[q.id], q.gold_ids, 10) for q in multis]),
    }
    for name, value in expected.items():
        assert summary[name]["value"] == pytest.approx(value, abs=1e-4), name
    assert summary["hit@1"]["n"] == len(singles) and summary["recall@10"]["n"] == len(multis)

    # ... and the CLI's JSON gives the very rankings the harness recorded.
    records = {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    monkeypatch.setenv("PAPER_AGENT_DATA_DIR", str(paper_agent.settings.data_dir))
    get_settings.cache_clear()
    try:
        for q in questions[:: len(questions) // 3]:
            assert cli.main(["search", "--json", "-k", "10", q.question]) == 0
            printed = json.loads(capsys.readouterr().out)
            assert [h["paper_id"] for h in printed] == records[q.id]["retrieved_ids"]
    finally:
        get_settings.cache_clear()


def _one_of_each_type(questions: list[Question]) -> list[Question]:
    picked = [next(q for q in questions if q.type == t) for t in QUESTION_TYPES]
    return [*picked, next(q for q in questions if q not in picked)]


def test_eval_end_to_end_with_the_real_model_server(
    indexed_settings: Settings, model_server_url: str, tmp_path: Path
) -> None:
    llm = indexed_settings.llm.model_copy(update={"base_url": model_server_url})
    settings = indexed_settings.model_copy(update={"llm": llm})
    questions = _one_of_each_type(load_questions(DEFAULT_QUESTIONS))
    assert len(questions) == 5
    out = tmp_path / "run"
    summary = run_eval(PaperAgent(settings), questions, out, progress=False)

    assert all((out / name).is_file() for name in FILES)
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lines] == [q.id for q in questions]
    for record in lines:
        assert record["error"] is None, record["error"]
        assert isinstance(record["answer"], str) and isinstance(record["refused"], bool)
        assert len(record["retrieved_ids"]) == 10
        assert record["timings"]["retrieval_ms"] > 0 and record["timings"]["answer_ms"] > 0
        for citation in record["citations"]:
            assert {"number", "paper_id", "title"} <= set(citation)
    _check_summary_shape(summary)
    assert summary["refusal_rate_unanswerable"]["n"] == 1
    assert summary["gold_cited_rate"]["n"] == 4
    run, selftest = summary["run"], summary["run"]["judge_selftest"]
    passed = selftest["correct"] / selftest["total"] >= settings.eval.judge_min_selftest
    assert model_server_url in run["judge"]
    for name in LLM_METRICS:  # a number only from a judge that passed its self-test; else the reason, judge named
        entry = summary[name]
        if not passed:
            assert entry["value"] is None and entry["not_measured"].startswith("judge "), name
            assert run["judge"] in entry["not_measured"]
        assert entry["value"] is not None or "not_measured" in entry, name
    report = (out / "report.md").read_text()
    assert passed or f"not measured: judge too weak ({run['judge']}" in report
