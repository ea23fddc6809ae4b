"""Question -> ranked papers and passages: dense (Chroma), lexical (BM25) or both fused.

Search works on chunks and ranks papers: a paper scores as its best-matching chunk, so a long paper with many
mediocre chunks cannot crowd out a short one with one excellent match. Hybrid search aggregates per paper
*before* fusing: each retriever's best chunk per paper is normalised against that retriever's other candidate
papers, then the two are mixed with `dense_weight`. Fusing chunk lists instead (what llama-index's
`QueryFusionRetriever` does) lets a paper's two halves split its credit, and measured worse on the public set.
Min-max scaling is anchored by each list's weakest candidate, so the candidate depth matters: 40 chunks left the
floor among half-relevant papers (a paper ranked 34th by dense but 2nd by BM25 fell out of the top 10); 50-80
measured the same and better, 90+ measured worse at the top (hit@1 0.88 -> 0.86). The default is 60.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from paper_agent.embed import Embedder
from paper_agent.errors import IndexNotBuilt
from paper_agent.index import Index
from paper_agent.lexical import LexicalIndex
from paper_agent.settings import RetrieveSettings
from paper_agent.types import PaperHit, Passage

Scale = Callable[[float], float]


class Reranker(Protocol):
    """Reorders a search's ranked papers (agent.rerank.LLMReranker asks the model server)."""

    depth: int

    def rerank(self, question: str, hits: Sequence[PaperHit]) -> list[PaperHit]: ...


class Retriever:
    """Finds the papers and passages that answer a question."""

    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        settings: RetrieveSettings,
        lexical: LexicalIndex | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self._lexical = lexical  # None: built in memory from the index the first time a search needs it
        self.reranker = reranker

    @property
    def lexical(self) -> LexicalIndex:
        if self._lexical is None:
            self._lexical = LexicalIndex.build(self.index.iter_chunks())
        return self._lexical

    @lexical.setter
    def lexical(self, value: LexicalIndex) -> None:
        self._lexical = value

    def passages(self, question: str, n: int | None = None) -> list[Passage]:
        """The best-matching chunks, best first (hybrid: grouped by paper, in the order `search` ranks them)."""
        n = n or self.settings.candidates
        if self.settings.mode == "dense":
            return self._dense(question, n)
        if self.settings.mode == "lexical":
            return self._lexical_passages(question, n)
        hits = self._fused(question, max(n, self.settings.candidates))
        return [p for hit in hits for p in hit.passages][:n]

    def search(self, question: str, top_k: int | None = None) -> list[PaperHit]:
        """The `top_k` best papers for the question, each with its matching passages."""
        top_k = top_k or self.settings.top_k
        if self.settings.mode == "hybrid":
            hits = self._fused(question, self.settings.candidates)
        else:
            hits = rank_papers(self.passages(question), max(top_k, self.reranker.depth if self.reranker else 0))
            dense = self.settings.mode == "dense"  # one retriever: its score is the raw one
            hits = [replace(h, dense=h.score) if dense else replace(h, lexical=h.score) for h in hits]
        if self.reranker is not None:
            hits = self.reranker.rerank(question, hits)
        return hits[:top_k]

    def _dense(self, question: str, n: int, known: Mapping[str, Passage] | None = None) -> list[Passage]:
        vector = self.embedder.embed([question])[0]
        if known is None and self._lexical is not None:
            known = self._lexical.by_id  # only the generation's chunks, as hybrid search keeps (agent/live.py)
        return self.index.query(vector, n, self.embedder.name, known)

    def _lexical_passages(self, question: str, n: int) -> list[Passage]:
        if len(self.lexical) == 0:
            raise IndexNotBuilt(self.index.where)
        return self.lexical.query(question, n)

    def _fused(self, question: str, n: int) -> list[PaperHit]:
        # The chunks' texts come from the BM25 index's copy of Chroma's chunks, not Chroma's SQLite again.
        dense = self._dense(question, n, self.lexical.by_id)  # raises IndexNotBuilt on an empty collection
        lexical = self.lexical.query(question, n)
        weight = self.settings.dense_weight
        hits = fuse([(dense, weight), (lexical, 1.0 - weight)], self.settings.fusion, self.settings.rrf_k)
        raw_dense, raw_lexical = _paper_maxima(dense), _paper_maxima(lexical)
        return [replace(h, dense=raw_dense.get(h.paper_id), lexical=raw_lexical.get(h.paper_id)) for h in hits]


def rank_papers(passages: Iterable[Passage], top_k: int) -> list[PaperHit]:
    """Group passages by paper; a paper's score is its best passage's."""
    grouped: dict[str, list[Passage]] = {}
    for p in passages:
        grouped.setdefault(p.paper_id, []).append(p)
    hits = [
        PaperHit(
            paper_id=pid,
            title=ps[0].title,
            score=max(p.score for p in ps),
            passages=tuple(sorted(ps, key=lambda p: -p.score)),
        )
        for pid, ps in grouped.items()
    ]
    hits.sort(key=lambda h: -h.score)
    return hits[:top_k]


def fuse(
    ranked: Sequence[tuple[list[Passage], float]], fusion: str = "relative_score", rrf_k: int = 60
) -> list[PaperHit]:
    """Mix several retrievers' chunk lists, each with a weight, into one ranking of papers, best first.

    Per retriever, a paper's raw score is its best chunk's; `relative_score` maps raw scores linearly onto [0, 1]
    between the weakest and strongest candidate paper (min-max, as Weaviate's relativeScoreFusion does), `rrf`
    onto 1 / (rrf_k + rank among the candidate papers). A paper's fused score is the weighted sum (absent = 0);
    each passage is scored the same way from its own raw score, so it never outscores its paper.
    """
    paper_scores: dict[str, float] = {}
    chunk_scores: dict[str, float] = {}
    chunks: dict[str, Passage] = {}
    for passages, weight in ranked:
        if not passages:
            continue
        maxima = _paper_maxima(passages)
        scale = _rrf_scale(list(maxima.values()), rrf_k) if fusion == "rrf" else _relative_scale(list(maxima.values()))
        for pid, raw in maxima.items():
            paper_scores[pid] = paper_scores.get(pid, 0.0) + weight * scale(raw)
        for p in passages:
            chunk_scores[p.chunk_id] = chunk_scores.get(p.chunk_id, 0.0) + weight * scale(p.score)
            chunks.setdefault(p.chunk_id, p)
    grouped: dict[str, list[Passage]] = {}
    for cid, p in chunks.items():
        grouped.setdefault(p.paper_id, []).append(replace(p, score=chunk_scores[cid]))
    hits = [
        PaperHit(pid, ps[0].title, paper_scores[pid], tuple(sorted(ps, key=lambda p: (-p.score, p.position))))
        for pid, ps in grouped.items()
    ]
    hits.sort(key=lambda h: (-h.score, h.paper_id))  # ties by id: the same question always ranks the same way
    return hits


def _paper_maxima(passages: Iterable[Passage]) -> dict[str, float]:
    best: dict[str, float] = {}
    for p in passages:
        best[p.paper_id] = max(p.score, best.get(p.paper_id, p.score))
    return best


def _relative_scale(maxima: list[float]) -> Scale:
    lo, hi = min(maxima), max(maxima)
    if hi <= lo:
        return lambda s: 1.0
    return lambda s: min(1.0, max(0.0, (s - lo) / (hi - lo)))


def _rrf_scale(maxima: list[float], k: int) -> Scale:
    ascending = sorted(maxima)

    def scale(s: float) -> float:
        rank = len(ascending) - bisect.bisect_right(ascending, s) + 1  # 1 + how many candidate papers beat s
        return 1.0 / (k + rank)

    return scale
