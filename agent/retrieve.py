"""Question -> ranked papers and passages.

Search works on chunks and ranks papers: a paper scores as its best-matching chunk, so a long paper
with many mediocre chunks cannot crowd out a short one with one excellent match.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.embed import Embedder
from agent.index import Index
from agent.settings import RetrieveSettings
from agent.types import PaperHit, Passage


class Retriever:
    """Finds the papers and passages that answer a question."""

    def __init__(self, index: Index, embedder: Embedder, settings: RetrieveSettings) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings

    def passages(self, question: str, n: int | None = None) -> list[Passage]:
        """The best-matching chunks, best first."""
        vector = self.embedder.embed([question])[0]
        return self.index.query(vector, n or self.settings.candidates)

    def search(self, question: str, top_k: int | None = None) -> list[PaperHit]:
        """The `top_k` best papers for the question, each with its matching passages."""
        return rank_papers(self.passages(question), top_k or self.settings.top_k)


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
