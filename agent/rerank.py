"""Rerank the top papers of a search by asking the model server whether each one answers the question.

Pointwise relevance judging (as monoT5 and RankLLaMA do it, here with any chat model): one request per
candidate paper, "Does this paper answer the question? Yes or No", and the paper's relevance is
P(yes) / (P(yes) + P(no)) read from the first token's log-probabilities, so it is a graded score rather than
a coin of two values. One request per paper needs no output parsing, works the same on llama.cpp and vLLM, and
runs in parallel; the question comes before the paper in the prompt so the servers' prefix caches reuse it.

Reranking only reorders the top `rerank_depth` papers (the rest keep their order below them) and never makes
search fail: if the model server is down or sends no log-probabilities, the fused order is returned as it was.
It helps only with a capable model: SmolLM2-135M, the CPU default, judges close to chance (README, Retrieval).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from paper_agent.errors import ModelServerUnavailable
from paper_agent.prompts import Template
from paper_agent.settings import RetrieveSettings
from paper_agent.types import PaperHit

log = logging.getLogger(__name__)

PASSAGE_CHARS = 1500  # ~ 300 tokens of the paper's best passage: the judge sees what the search matched
UNDECIDED = 0.5  # the relevance of a paper when the judge's likeliest tokens include neither yes nor no


@runtime_checkable
class TokenScorer(Protocol):
    """A model that reports the log-probabilities of its reply's likeliest first tokens."""

    url: str

    def first_token_logprobs(self, messages: list[dict[str, Any]], *, top: int = 20) -> dict[str, float]: ...


class LLMReranker:
    """Reorders a search's top papers by the model's yes/no relevance judgement."""

    def __init__(self, model: TokenScorer, template: Template, settings: RetrieveSettings) -> None:
        self.model = model
        self.template = template
        self.depth = settings.rerank_depth
        self.concurrency = settings.rerank_concurrency

    def rerank(self, question: str, hits: Sequence[PaperHit]) -> list[PaperHit]:
        """The top `depth` hits by relevance (ties keep the search's order), then the rest unchanged."""
        head, tail = list(hits[: self.depth]), list(hits[self.depth :])
        if not head:
            return list(hits)
        try:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(head))) as pool:
                scores = list(pool.map(lambda hit: self.relevance(question, hit), head))
        except ModelServerUnavailable as error:
            log.warning("rerank skipped, search order kept: %s", error)
            return list(hits)
        judged = [replace(hit, relevance=score) for hit, score in zip(head, scores, strict=True)]
        judged.sort(key=lambda hit: -(hit.relevance or 0.0))  # stable: equal relevance keeps the fused order
        return judged + tail

    def relevance(self, question: str, hit: PaperHit) -> float:
        """P(yes) / (P(yes) + P(no)) for "does this paper answer the question?"."""
        text = hit.passages[0].text[:PASSAGE_CHARS] if hit.passages else ""
        prompt = self.template.render(question=question, title=hit.title, text=text)
        return yes_probability(self.model.first_token_logprobs([{"role": "user", "content": prompt}]))


def yes_probability(logprobs: dict[str, float]) -> float:
    """Relevance from first-token log-probabilities: the yes mass over the yes + no mass.

    Tokens count by their stripped, lower-cased text ("Yes", " yes", "YES" are all yes), so the score does not
    depend on how a tokenizer splits the word."""
    mass = {"yes": 0.0, "no": 0.0}
    for token, logprob in logprobs.items():
        word = token.strip().lower()
        if word in mass:
            mass[word] += math.exp(logprob)
    total = mass["yes"] + mass["no"]
    return mass["yes"] / total if total > 0 else UNDECIDED
