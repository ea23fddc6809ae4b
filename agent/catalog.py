"""The collection as a catalogue: list its papers a page at a time, remove papers from every collection.

A part of `Index` (`agent/index.py`), kept apart because it is not the ingest path: `Index` inherits it, so
`index.list_papers(...)` and `index.delete_papers(...)` read like the rest of the index.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from paper_agent.chroma import paper_from_record
from paper_agent.embed import Embedder
from paper_agent.types import Passage

if TYPE_CHECKING:
    from paper_agent.sentence_store import SentenceStore


class Catalogue:
    """Listing and removal over the index's collections (`chunks`, `papers`, `sentences`)."""

    chunks: Any
    papers: Any

    @property
    def sentences(self) -> SentenceStore:
        raise NotImplementedError  # Index's

    def iter_chunks(self, batch: int = 2000) -> Iterator[Passage]:
        raise NotImplementedError  # Index's

    def list_papers(self, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """The total, and a page of the stored papers' metadata and chunk counts, in the order they were added."""
        got = self.papers.get(offset=offset, limit=limit, include=["metadatas"])
        page = [
            paper_from_record(paper_id, "", meta).metadata() | {"chunks": int(meta.get("chunks", 0))}
            for paper_id, meta in zip(got["ids"], got["metadatas"] or [])
        ]
        return int(self.papers.count()), page

    def stored_paper_ids(self, paper_ids: Iterable[str]) -> list[str]:
        """Those of `paper_ids` the index holds, sorted."""
        ids = sorted(set(paper_ids))
        return sorted(self.papers.get(ids=ids, include=[])["ids"]) if ids else []

    def sources_in_use(self, sources: Iterable[str]) -> set[str]:
        """Those of `sources` (files papers were read from) that some stored chunk still comes from."""
        wanted = sorted(set(sources))
        if not wanted:
            return set()
        got = self.chunks.get(where={"source": {"$in": wanted}}, include=["metadatas"])
        return {str(meta["source"]) for meta in got["metadatas"] or []}

    def delete_papers(self, paper_ids: Iterable[str], sentence_embedder: Embedder | None = None) -> list[str]:
        """Remove these papers' records and chunks; returns the ids that were stored. Given the answer sentences'
        model, the sentences no remaining chunk holds go too. The caller refreshes the BM25 index."""
        found = self.stored_paper_ids(paper_ids)
        if not found:
            return []
        self.chunks.delete(where={"paper_id": {"$in": found}})
        self.papers.delete(ids=found)
        if sentence_embedder is not None:
            # No shipped vectors: a sync after a removal only deletes (every remaining sentence is stored).
            self.sentences.sync(self.iter_chunks(), sentence_embedder, None, progress=False)
        return found
