"""The harness with fakes: a scripted `ask`, judges that are right or always agree, a hash embedding.

The judge fakes read the ragas prompt's input block and its JSON schema's title, as a real model would see them,
so the whole ragas path (prompt -> structured reply -> score) runs; only the model's judgement is scripted.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paper_agent.errors import ModelServerUnavailable
from paper_agent.eval.dataset import load_questions
from paper_agent.eval.diff import diff_summaries, load_summary
from paper_agent.eval.ragas_judge import Judge, JudgeSample, self_test
from paper_agent.eval.run import run_eval
from paper_agent.service import PaperAgent
from paper_agent.settings import LLMSettings, Settings
from paper_agent.types import Answer, Citation, Paper
from paper_agent.verify import support
from tests.conftest import HashEmbedder

# --- judge fakes ---------------------------------------------------------------------------------------------


class OracleJudge:
    """A ChatModel that answers ragas's prompts correctly (support = word overlap), recording each schema asked."""

    url, model = "fake://oracle", "oracle-judge"

    def __init__(self) -> None:
        self.schemas: list[str] = []

    def stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> Iterator[str]:
        yield self.complete(messages, **kwargs)

    def complete(
        self, messages: list[dict[str, Any]], *, max_tokens: int | None = None, json_schema: Any = None
    ) -> str:
        title = json_schema["title"]
        self.schemas.append(title)
        data = _prompt_input(messages[-1]["content"])
        return json.dumps(self.reply(title, data))

    def reply(self, title: str, data: dict[str, Any]) -> dict[str, Any]:
        if title == "StatementGeneratorOutput":
            return {"statements": [data["answer"]]}
        if title == "NLIStatementOutput":
            verdicts = [int(_supported(data["context"], s)) for s in data["statements"]]
            return {
                "statements": [
                    {"statement": s, "reason": "", "verdict": v} for s, v in zip(data["statements"], verdicts)
                ]
            }
        if title == "AnswerRelevanceOutput":
            return {"question": data["response"], "noncommittal": 0}
        if title == "ContextPrecisionOutput":
            return {"reason": "", "verdict": 1}
        if title == "ContextRecallOutput":
            return {"classifications": [{"statement": data["answer"], "reason": "", "attributed": 1}]}
        raise AssertionError(f"unexpected ragas schema {title}")


class YesJudge(OracleJudge):
    """A judge too weak to judge: every statement is 'faithful', whatever the context says."""

    model = "yes-judge"

    def reply(self, title: str, data: dict[str, Any]) -> dict[str, Any]:
        if title == "NLIStatementOutput":
            return {"statements": [{"statement": s, "reason": "", "verdict": 1} for s in data["statements"]]}
        return super().reply(title, data)


class BrokenJudge(OracleJudge):
    """Replies that are not the JSON asked for, or no reply at all."""

    def complete(self, messages: list[dict[str, Any]], **kwargs: Any) -> str:
        if "Eiffel" in messages[-1]["content"]:
            raise ModelServerUnavailable(self.url, "timed out")
        return '{"statements": "not a list"'


def _supported(context: str, statement: str) -> bool:
    """The answer verifier's lexical support: enough to get the self-test's known cases right."""
    return support(statement, "", context).score >= 0.6


def _prompt_input(prompt: str) -> dict[str, Any]:
    """The JSON after the last `input:` of a ragas prompt (the few-shot examples come before it)."""
    block = prompt[prompt.rindex("input:") + len("input:") :]
    return json.loads(re.sub(r"\s*Output:\s*$", "", block))


def _judge(model: OracleJudge) -> Judge:
    return Judge(model, HashEmbedder(), max_tokens=256, timeout_s=30)


def test_oracle_judge_passes_the_self_test() -> None:
    result = asyncio.run(self_test(_judge(OracleJudge()), min_rate=0.8))
    assert (result.correct, result.total, result.tried, result.failure_kinds) == (6, 6, 6, {})


def test_always_yes_judge_fails_the_self_test_early() -> None:
    model = YesJudge()
    result = asyncio.run(self_test(_judge(model), min_rate=0.8, concurrency=2))
    assert result.rate < 0.8
    assert result.tried == 4  # 2 wrong after two pairs: the pass mark (5 of 6) is out of reach
    assert model.schemas.count("NLIStatementOutput") == 4


def test_judge_failures_are_classified_not_raised() -> None:
    judge = _judge(BrokenJudge())
    sample = JudgeSample("q?", "An answer.", ("A context.",), "A reference.")
    assert asyncio.run(judge.score("ragas.faithfulness", sample)).failure == "unparseable"
    eiffel = JudgeSample("q?", "The Eiffel Tower.", ("Paris.",), "")
    assert asyncio.run(judge.score("ragas.faithfulness", eiffel)).failure == "timeout"


# --- the harness end to end, with a scripted ask ---------------------------------------------------------------

PAPERS = [
    Paper(
        "pblip",
        "BLIP-2 bootstraps vision-language pretraining",
        "BLIP-2 bridges a frozen image encoder and a "
        "frozen language model with a lightweight Querying Transformer and beats Flamingo80B by 8.7%.",
        "t.jsonl",
    ),
    Paper(
        "pzip",
        "ZipLM structured pruning",
        "ZipLM prunes GPT-2 to be 60% smaller and 30% faster than DistilGPT2 with hardware-aware structured pruning.",
        "t.jsonl",
    ),
    Paper(
        "ptofu",
        "TOFU fictitious unlearning",
        "TOFU is a benchmark of 200 fictitious author profiles for unlearning in language models.",
        "t.jsonl",
    ),
    Paper(
        "pguard",
        "Guardrail baselines for unlearning",
        "Prompting and filtering guardrails match finetuning based unlearning in language models.",
        "t.jsonl",
    ),
]
QUESTIONS = [
    {
        "id": "l1",
        "type": "lookup",
        "question": "Which model bridges a frozen image encoder and a frozen language "
        "model with a Querying Transformer?",
        "gold_ids": ["pblip"],
        "reference_answer": "BLIP-2.",
    },
    {
        "id": "d1",
        "type": "detail",
        "question": "How much smaller and faster than DistilGPT2 is ZipLM on GPT-2?",
        "gold_ids": ["pzip"],
        "reference_answer": "60% smaller and 30% faster.",
    },
    {
        "id": "m1",
        "type": "multi",
        "question": "Which works study unlearning in language models?",
        "gold_ids": ["ptofu", "pguard"],
        "reference_answer": "TOFU and guardrail baselines.",
    },
    {
        "id": "u1",
        "type": "unanswerable",
        "question": "What F1 does ELECTRA-Large reach on SQuAD 2.0?",
        "gold_ids": [],
        "reference_answer": "The collection does not contain this information.",
    },
]


class ScriptedAgent(PaperAgent):
    """The real search over a hash-embedded index; `ask` copies the top passage and cites it, or refuses."""

    def ask(self, question: str, history: object = None, top_k: int | None = None) -> Answer:
        if "ELECTRA" in question:
            return Answer("The collection does not say.", refused=True, question=question)
        hit = self.search(question, 1)[0]
        passage = hit.passages[0]
        citation = Citation(1, hit.paper_id, hit.title, passage.text, 1.0)
        return Answer(f"{passage.text} [1]", [citation], [passage], timings={"ttft_ms": 5.0}, question=question)


@pytest.fixture
def scripted(tmp_path: Path) -> tuple[ScriptedAgent, Path]:
    settings = Settings(data_dir=tmp_path / "index", llm=LLMSettings(base_url="http://127.0.0.1:9/v1"))
    agent = ScriptedAgent(settings, embedder=HashEmbedder())
    agent.index.ingest(PAPERS, agent.embedder, progress=False)
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return agent, path


def _outputs_ok(out: Path) -> dict[str, Any]:
    for name in ("results.jsonl", "summary.json", "report.md", "report.html", "metrics_by_type.png", "latency.png"):
        assert (out / name).is_file(), name
    assert len((out / "results.jsonl").read_text().splitlines()) == len(QUESTIONS)
    return load_summary(out)


def test_retrieval_only_run_agrees_with_search(scripted: tuple[ScriptedAgent, Path], tmp_path: Path) -> None:
    agent, path = scripted
    summary = run_eval(agent, load_questions(path), tmp_path / "run", retrieval_only=True, progress=False)
    _outputs_ok(tmp_path / "run")
    singles = [q for q in QUESTIONS if len(q["gold_ids"]) == 1]
    ranked = {q["id"]: [h.paper_id for h in agent.search(q["question"], 10)] for q in QUESTIONS}
    expected_hit1 = sum(ranked[q["id"]][0] == q["gold_ids"][0] for q in singles) / len(singles)
    assert summary["hit@1"]["value"] == pytest.approx(expected_hit1)
    assert summary["gold_cited_rate"]["not_measured"] == "retrieval-only run"
    assert summary["run"]["retrieval_only"] is True


def test_full_run_with_a_capable_judge_fills_in_ragas(scripted: tuple[ScriptedAgent, Path], tmp_path: Path) -> None:
    agent, path = scripted
    summary = run_eval(agent, load_questions(path), tmp_path / "run", progress=False, judge_model=OracleJudge())
    _outputs_ok(tmp_path / "run")
    for name in ("ragas.faithfulness", "ragas.answer_relevancy", "ragas.context_precision", "ragas.context_recall"):
        assert summary[name]["value"] is not None, name
        assert summary[name]["failures"] == 0
    assert summary["ragas.faithfulness"]["value"] == 1.0  # every answer copies its cited passage
    assert summary["refusal_rate_unanswerable"]["value"] == 1.0
    assert summary["citation_recall"]["value"] == 1.0
    assert summary["run"]["judge_selftest"]["correct"] == 6
    assert "paper_agent.verify.support" in summary["run"]["citation_entailment"]


def test_weak_judge_is_reported_as_not_measured(scripted: tuple[ScriptedAgent, Path], tmp_path: Path) -> None:
    agent, path = scripted
    out = tmp_path / "weak"
    summary = run_eval(agent, load_questions(path), out, progress=False, judge_model=YesJudge())
    for name in ("ragas.faithfulness", "ragas.answer_relevancy", "ragas.context_precision", "ragas.context_recall"):
        assert summary[name]["value"] is None
        assert summary[name]["not_measured"].startswith("judge too weak (yes-judge @ fake://oracle")
    report = (out / "report.md").read_text()
    assert "not measured: judge too weak (yes-judge" in report
    assert "not measured: judge too weak" in (out / "report.html").read_text()

    other = run_eval(agent, load_questions(path), tmp_path / "oracle", progress=False, judge_model=OracleJudge())
    rows = {r.metric: r for r in diff_summaries(summary, other)}
    assert rows["ragas.faithfulness"].a.startswith("not measured") and rows["ragas.faithfulness"].b == "1.000"
    assert rows["hit@1"].change == "="
