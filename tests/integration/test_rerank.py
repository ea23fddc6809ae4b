"""LLM reranking against the real llama.cpp server and the real index: it judges, reorders, and never breaks search."""

from __future__ import annotations

import pytest

from paper_agent.llm import OpenAIChatModel
from paper_agent.service import PaperAgent
from paper_agent.settings import LLMSettings, RetrieveSettings, Settings
from tests.unit.test_llm import closed_port_url

pytestmark = pytest.mark.integration

QUESTION = "Which papers pre-train autoregressive language models with retrieval in the RETRO style?"


def _reranking(settings: Settings, base_url: str, depth: int) -> Settings:
    return settings.model_copy(
        update={
            "retrieve": RetrieveSettings(rerank="llm", rerank_depth=depth),
            "llm": LLMSettings(base_url=base_url),
        }
    )


def test_the_real_server_judges_the_top_papers(
    paper_agent: PaperAgent, indexed_settings: Settings, chat_model: OpenAIChatModel
) -> None:
    logprobs = chat_model.first_token_logprobs([{"role": "user", "content": "Is the sky blue? Answer Yes or No."}])
    assert len(logprobs) > 1 and all(lp <= 0.0 for lp in logprobs.values())

    fused = paper_agent.search(QUESTION, 10)
    agent = PaperAgent(_reranking(indexed_settings, chat_model.url, depth=3), embedder=paper_agent.embedder)
    reranked = agent.search(QUESTION, 10)
    head = reranked[:3]
    assert {h.paper_id for h in head} == {h.paper_id for h in fused[:3]}  # reordered within the depth only
    assert [h.paper_id for h in reranked[3:]] == [h.paper_id for h in fused[3:]]
    assert all(h.relevance is not None and 0.0 <= h.relevance <= 1.0 for h in head)
    assert [h.relevance for h in head] == sorted((h.relevance or 0.0 for h in head), reverse=True)


def test_search_with_reranking_works_when_the_model_server_is_down(
    paper_agent: PaperAgent, indexed_settings: Settings
) -> None:
    agent = PaperAgent(_reranking(indexed_settings, closed_port_url(), depth=5), embedder=paper_agent.embedder)
    hits = agent.search(QUESTION, 5)
    assert [h.paper_id for h in hits] == [h.paper_id for h in paper_agent.search(QUESTION, 5)]
    assert all(h.relevance is None for h in hits)
