"""Passages -> numbered sources: each passage's sentences scored against the question, the best of them chosen to show.

The numbers are the citation keys we control ([1]..[n]); the scores (the answer-sentence model's cosines) feed the
answerability decision (agent/decide.py), the choice of the sentence that answers, and the prompt's budget. The
sentences' vectors are stored at ingest (agent/sentence_store.py), so only the question, and any sentence the store
lacks, is embedded here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from paper_agent.embed import Embedder
from paper_agent.types import PaperHit, Passage
from paper_agent.verify import split_sentences


@dataclass(frozen=True)
class Source:
    """A passage as the model sees it: its number, and its sentences ranked against the question."""

    number: int
    passage: Passage
    sentences: tuple[str, ...]
    sentence_scores: tuple[float, ...]  # cosine of each sentence to the question
    shown: tuple[str, ...]  # the sentences put in the prompt, in passage order


MERGED = 3  # a paper's best-matching chunks read together: an abstract whole, a PDF around its best match


def evidence_passage(hit: PaperHit) -> Passage:
    """The paper's best-matching chunks (at most MERGED) as one passage in reading order, their overlap removed.
    An abstract split over two chunks is read whole, so its answering sentence is there whichever half matched."""
    best = sorted(hit.passages, key=lambda p: -p.score)[:MERGED]
    ordered = sorted(best, key=lambda p: p.position)
    text = ""
    for p in ordered:
        text = join_overlapping(text, p.text)
    return replace(best[0], text=text)


def join_overlapping(first: str, second: str) -> str:
    """`first` then `second`, without the text they share (the end of one chunk opens the next)."""
    for size in range(min(len(first), len(second)), 0, -1):
        if first.endswith(second[:size]):
            return first + second[size:]
    return f"{first} {second}" if first else second


class SentenceVectors(Protocol):
    """Vectors stored for sentences: those of `sentences` that `model` embedded, by sentence (misses left out)."""

    def vectors(self, sentences: Sequence[str], model: str) -> dict[str, np.ndarray]: ...


def passage_sentences(text: str) -> list[str]:
    """The sentences a passage is scored by (the whole text if it splits into none)."""
    return split_sentences(text) or [text]


def prepare_sources(
    question: str,
    passages: list[Passage],
    embedder: Embedder,
    budget_tokens: int,
    stored: SentenceVectors | None = None,
    question_vector: np.ndarray | None = None,
) -> list[Source]:
    """Number the passages and pick, for each, the sentences closest to the question within `budget_tokens`.

    Sentence vectors come from `stored` where it has them; the rest, and the question unless `question_vector` is
    its vector already, are embedded in one call."""
    splits = [passage_sentences(p.text) for p in passages]
    flat = [s for ss in splits for s in ss]
    known = stored.vectors(flat, embedder.name) if stored is not None else {}
    missing = list(dict.fromkeys(s for s in flat if s not in known))
    texts = missing if question_vector is not None else [question, *missing]
    vectors = embedder.embed(texts) if texts else np.zeros((0, 0), dtype=np.float32)
    if question_vector is None:
        question_vector, vectors = vectors[0], vectors[1:]
    table = {**known, **dict(zip(missing, vectors))}
    matrix = np.stack([table[s] for s in flat]) if flat else np.zeros((0, len(question_vector)), dtype=np.float32)
    cosines = matrix @ question_vector
    sources, offset = [], 0
    for number, (passage, sentences) in enumerate(zip(passages, splits), start=1):
        scores = tuple(float(x) for x in cosines[offset : offset + len(sentences)])
        offset += len(sentences)
        shown = _within_budget(sentences, scores, budget_tokens)
        sources.append(Source(number, passage, tuple(sentences), scores, shown))
    return sources


def _within_budget(sentences: list[str], scores: tuple[float, ...], budget_tokens: int) -> tuple[str, ...]:
    """The best-scoring sentences that fit the budget (always at least one), back in passage order."""
    chosen: list[int] = []
    used = 0
    for i in sorted(range(len(sentences)), key=lambda i: -scores[i]):
        cost = approx_tokens(sentences[i])
        if chosen and used + cost > budget_tokens:
            continue
        chosen.append(i)
        used += cost
    return tuple(sentences[i] for i in sorted(chosen))


def approx_tokens(text: str) -> int:
    """Tokens the model's tokenizer makes of English text, estimated (~4 characters a token)."""
    return max(1, len(text) // 4)
