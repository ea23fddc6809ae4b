"""The LLM reranker with a scripted judge: relevance from log-probabilities, reordering, and never failing search."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import pytest

from paper_agent.corpus import read_paths
from paper_agent.errors import AgentError, ModelServerUnavailable
from paper_agent.index import Index
from paper_agent.prompts import load_template
from paper_agent.rerank import UNDECIDED, LLMReranker, yes_probability
from paper_agent.retrieve import Retriever
from paper_agent.service import PaperAgent
from paper_agent.settings import RetrieveSettings, Settings
from paper_agent.types import PaperHit, Passage
from tests.conftest import HashEmbedder

TEMPLATE = load_template("rerank")


class ScriptedJudge:
    """Says yes with a fixed probability per paper title (found in the prompt), or fails; records its prompts."""

    url = "http://scripted/v1"

    def __init__(self, p_yes: dict[str, float], fail: str | None = None) -> None:
        self.p_yes, self.fail = p_yes, fail
        self.prompts: list[str] = []
        self._lock = threading.Lock()

    def first_token_logprobs(self, messages: list[dict[str, Any]], *, top: int = 20) -> dict[str, float]:
        prompt = messages[-1]["content"]
        with self._lock:
            self.prompts.append(prompt)
        if self.fail is not None:
            raise ModelServerUnavailable(self.url, self.fail)
        p = next(p for title, p in self.p_yes.items() if f"Paper: {title}\n" in prompt)
        return {"Yes": math.log(p), " No": math.log(1 - p), "The": math.log(0.01)}


def _hit(title: str, score: float) -> PaperHit:
    passage = Passage(f"{title}:0", title, title, f"What {title} is about.", score)
    return PaperHit(title, title, score, (passage,))


HITS = [_hit("A", 0.9), _hit("B", 0.8), _hit("C", 0.7), _hit("D", 0.6)]


def _reranker(judge: ScriptedJudge, depth: int = 3) -> LLMReranker:
    return LLMReranker(judge, TEMPLATE, RetrieveSettings(rerank="llm", rerank_depth=depth, rerank_concurrency=2))


# --- relevance from log-probabilities --------------------------------------------------------------


def test_yes_probability_is_the_yes_share_of_yes_and_no() -> None:
    assert yes_probability({"Yes": math.log(0.3), "No": math.log(0.1), "The": math.log(0.5)}) == pytest.approx(0.75)


def test_yes_probability_counts_every_spelling_of_the_word() -> None:
    logprobs = {"Yes": math.log(0.2), " yes": math.log(0.2), "YES": math.log(0.2), "No": math.log(0.2)}
    assert yes_probability(logprobs) == pytest.approx(0.75)


def test_yes_probability_without_yes_or_no_is_undecided() -> None:
    assert yes_probability({"The": -0.1, "Paper": -2.0}) == UNDECIDED
    assert yes_probability({}) == UNDECIDED


# --- reordering ------------------------------------------------------------------------------------


def test_rerank_orders_the_top_by_relevance_and_keeps_the_rest() -> None:
    judge = ScriptedJudge({"A": 0.2, "B": 0.9, "C": 0.6, "D": 0.99})
    reranked = _reranker(judge, depth=3).rerank("what is B?", HITS)
    assert [h.paper_id for h in reranked] == ["B", "C", "A", "D"]  # D is below the depth: not judged, not moved
    assert [h.relevance for h in reranked] == pytest.approx([0.9, 0.6, 0.2, None])
    assert [h.score for h in reranked] == [0.8, 0.7, 0.9, 0.6]  # the search's own scores are kept
    assert len(judge.prompts) == 3


def test_equal_relevance_keeps_the_search_order() -> None:
    reranked = _reranker(ScriptedJudge({"A": 0.5, "B": 0.5, "C": 0.5})).rerank("q", HITS[:3])
    assert [h.paper_id for h in reranked] == ["A", "B", "C"]


def test_prompt_puts_the_question_first_then_the_paper() -> None:
    judge = ScriptedJudge({"A": 0.5})
    _reranker(judge, depth=1).rerank("Which paper is A?", HITS[:1])
    assert judge.prompts[0].startswith("Question: Which paper is A?\n\nPaper: A\nWhat A is about.")


def test_a_dead_model_server_keeps_the_search_order(caplog: pytest.LogCaptureFixture) -> None:
    judge = ScriptedJudge({}, fail="cannot connect")
    assert _reranker(judge).rerank("q", HITS) == HITS
    assert "rerank skipped" in caplog.text and "cannot connect" in caplog.text


def test_rerank_of_no_hits_asks_nothing() -> None:
    judge = ScriptedJudge({})
    assert _reranker(judge).rerank("q", []) == [] and judge.prompts == []


# --- in the retriever and the agent ----------------------------------------------------------------


def test_retriever_reranks_before_cutting_to_top_k(tmp_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(
        '{"title": "Alpha", "abstract": "About alpha particles."}\n'
        '{"title": "Beta", "abstract": "About beta decay and alpha."}\n'
    )
    index = Index(tmp_settings)
    index.ingest(read_paths([path]).papers, HashEmbedder(), progress=False)
    settings = RetrieveSettings(mode="dense", rerank="llm", rerank_depth=5)
    judge = ScriptedJudge({"Alpha": 0.1, "Beta": 0.9})
    reranker = LLMReranker(judge, TEMPLATE, settings)
    hits = Retriever(index, HashEmbedder(), settings, reranker=reranker).search("alpha particles", top_k=1)
    assert [h.title for h in hits] == ["Beta"]  # dense ranks Alpha first; the judge's pick survives the cut


def test_agent_builds_a_reranker_only_when_asked(tmp_settings: Settings) -> None:
    assert PaperAgent(tmp_settings, embedder=HashEmbedder()).retriever.reranker is None
    reranking = tmp_settings.model_copy(update={"retrieve": RetrieveSettings(rerank="llm")})
    judge = ScriptedJudge({})
    agent = PaperAgent(reranking, embedder=HashEmbedder(), chat_model=judge)  # type: ignore[arg-type]
    assert isinstance(agent.retriever.reranker, LLMReranker) and agent.retriever.reranker.model is judge


def test_agent_names_a_model_that_cannot_rerank(tmp_settings: Settings) -> None:
    class TextOnly:
        url, model = "http://text-only/v1", "text-only"

    reranking = tmp_settings.model_copy(update={"retrieve": RetrieveSettings(rerank="llm")})
    agent = PaperAgent(reranking, embedder=HashEmbedder(), chat_model=TextOnly())  # type: ignore[arg-type]
    with pytest.raises(AgentError, match="cannot report token log-probabilities"):
        _ = agent.retriever
