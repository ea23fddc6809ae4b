"""Papers -> chunks -> embeddings -> Chroma: ingest, re-embed, query. `Index` owns the Chroma client.

Two collections: `<name>` holds one record per chunk (its text, paper id, title, position, page, source and a
content hash), `<name>__papers` one record per paper (abstract or full text, metadata). Chunk ids are
`{paper_id}:{position}`, so re-ingesting the same files upserts nothing new, and the content hash lets an
unchanged chunk skip re-embedding altogether. A chunk whose vector ships with the bundled corpus
(`agent/bundled_vectors.py`) takes it from there instead of from the model. Chunking is `agent/chunking.py`;
the client, collections and record layout are `agent/chroma.py`. The answer sentences' vectors live
in a third collection, `<name>__sentences` (`agent/sentence_store.py`), brought in line with the chunks by ingest.
Every write happens inside `Index.writing()` (`agent/generation.py`): writers take turns, never write over another
process's work, and publish a new generation, recorded in `<name>__state`, only once they have committed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from paper_agent.bundled_vectors import BUNDLED_VECTORS
from paper_agent.catalog import Catalogue
from paper_agent.chroma import (
    content_hash,
    make_client,
    open_collection,
    paper_from_record,
    passage_from_record,
    refresh_client,
    rescored,
    write_chunks,
)
from paper_agent.chunk_writer import ChunkWriter, OnBatch, batches
from paper_agent.chunking import chunk_paper
from paper_agent.embed import Embedder
from paper_agent.errors import IndexBuiltWithOtherModel, IndexNotBuilt
from paper_agent.generation import FileLock, Generations, StateRecord, Write
from paper_agent.sentence_store import SentenceStats, SentenceStore
from paper_agent.settings import Settings
from paper_agent.types import Chunk, Paper, Passage

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    papers: int = 0  # papers in the files read
    chunks: int = 0  # chunks those papers make
    embedded: int = 0  # chunks that were new or changed, so were embedded and written
    shipped: int = 0  # of those, chunks whose vectors came from the shipped file instead of the model
    deleted: int = 0  # chunks of papers no longer in the files (or shorter than before), removed
    sentences: SentenceStats | None = None  # the answer sentences' vectors, when ingest was given their model


LEGACY_EMBEDDER = "all-MiniLM-L6-v2"


class Index(Catalogue):
    """The paper collection in Chroma: ingest, query by vector, look papers up (list and remove: `Catalogue`)."""

    def __init__(self, settings: Settings, client: Any = None, vectors_dir: Path | None = BUNDLED_VECTORS) -> None:
        self.settings = settings.index
        self.vectors_dir = vectors_dir  # shipped vectors to take before embedding (None: always embed)
        self.where = settings.index.chroma_url or str(settings.data_dir / "chroma")
        self.client = client if client is not None else make_client(settings)
        self.chunks = self.open(self.settings.collection)
        self.papers = self.open(f"{self.settings.collection}__papers")
        state = StateRecord(self.client, f"{self.settings.collection}__state")
        self.generations = Generations(state, FileLock(settings.data_dir / "index.lock"))

    @property
    def writer(self) -> ChunkWriter:
        """Writes chunks and papers with their vectors into the collections open now."""
        return ChunkWriter(self.chunks, self.papers, self.settings, self.vectors_dir)

    @cached_property
    def sentences(self) -> SentenceStore:
        """The answer sentences' vectors, in their own collection beside the chunks."""
        return SentenceStore(self.client, f"{self.settings.collection}__sentences")

    @property
    def built_with(self) -> str | None:
        """The embedding model the stored vectors come from (None: nothing stored yet)."""
        if self.chunks.count() == 0:
            return None
        # An index without the record predates it, when all-MiniLM-L6-v2 was the only model.
        return str((self.chunks.metadata or {}).get("embedder", LEGACY_EMBEDDER))

    def reembed(self, embedder: Embedder, *, progress: bool = True) -> int:
        """Re-embed every stored chunk and paper with `embedder`, keeping every record; returns the chunk count."""
        from paper_agent.reembed import reembed

        with self.writing() as write:
            return reembed(self, embedder, write, progress=progress)

    def open(self, name: str) -> Any:
        """One of the index's cosine collections, created if missing."""
        return open_collection(self.client, name, self.settings)

    # generations ------------------------------------------------------------------------------------

    def writing(self) -> AbstractContextManager[Write]:
        """The one way to change the index: waits for other writers (any process on this data dir), reloads the
        store, runs the block, and publishes the next generation if the block changed anything and did not raise.
        Code that adds or removes records sets `write.changed`; a nested `writing()` joins the open write."""
        return self.generations.writing(self.refresh, self._roll_back, self.stats)

    def refresh(self) -> None:
        """See the store as it is now: an embedded store's graphs reloaded (then loaded at once, while the caller holds
        a lock, not lazily later), and the collections reopened (a re-embedding elsewhere replaces them)."""
        reloaded = refresh_client(self.client)
        self.chunks = self.open(self.settings.collection)
        self.papers = self.open(f"{self.settings.collection}__papers")
        self.sentences.reopen()
        if reloaded:
            got = self.chunks.get(limit=1, include=["embeddings"])
            if len(got["ids"]):
                self.chunks.query(query_embeddings=got["embeddings"][:1], n_results=1, include=[])

    def _roll_back(self, generation: int) -> int:
        """Delete the records a write that never published left (stamped above `generation`); returns the chunks."""
        newer = {"generation": {"$gt": generation}}
        chunk_ids = self.chunks.get(where=newer, include=[])["ids"]
        paper_ids = self.papers.get(where=newer, include=[])["ids"]
        if chunk_ids or paper_ids:
            log.warning("rolling back %d chunks, %d papers of an unfinished write", len(chunk_ids), len(paper_ids))
            for batch in batches(chunk_ids, 5000):
                self.chunks.delete(ids=batch)
            for batch in batches(paper_ids, 5000):
                self.papers.delete(ids=batch)
        return len(chunk_ids)

    def chunks_at(self, generation: int) -> Iterator[Passage]:
        """The stored chunks that belong to `generation` (not those of a write in progress or one that crashed)."""
        newer = set(self.chunks.get(where={"generation": {"$gt": generation}}, include=[])["ids"])
        return (p for p in self.iter_chunks() if p.chunk_id not in newer)

    # ingest -----------------------------------------------------------------------------------------

    def ingest(
        self,
        papers: Sequence[Paper],
        embedder: Embedder,
        *,
        progress: bool = True,
        on_batch: OnBatch | None = None,
        sentence_embedder: Embedder | None = None,
    ) -> IngestStats:
        """Upsert the papers' chunks; drop chunks of these sources' papers that are gone. Idempotent.

        An index embedded with another model is re-embedded first, all of it, not just these papers. With
        `sentence_embedder`, the answer sentences' vectors are then brought in line with every stored chunk.
        """
        with self.writing() as write:
            if self.built_with not in (None, embedder.name):
                self.reembed(embedder, progress=progress)
            self.chunks.modify(metadata={"embedder": embedder.name})
            chunks = [c for paper in papers for c in chunk_paper(paper, self.settings)]
            hashes = {c.id: content_hash(c, embedder.name) for c in chunks}
            stored = self._stored_hashes(list(hashes))
            todo = [c for c in chunks if stored.get(c.id) != hashes[c.id]]
            stale = self._stale_ids(papers, set(hashes))
            if stale:
                self.chunks.delete(ids=stale)
                self.papers.delete(ids=self._paper_ids_without_chunks(stale))
            vectors, shipped = self.writer.chunks(todo, hashes, embedder, write.generation, progress, on_batch)
            changed = {c.paper_id for c in todo}
            self.writer.papers([p for p in papers if p.id in changed], chunks, vectors, write.generation)
            write.changed = write.changed or bool(todo or stale)
            stats = IngestStats(
                papers=len(papers), chunks=len(chunks), embedded=len(todo), shipped=shipped, deleted=len(stale)
            )
            if sentence_embedder is not None:
                stats.sentences = self.sentences.sync(
                    self.iter_chunks(), sentence_embedder, self.vectors_dir, progress=progress
                )
        return stats

    def write_vectors(self, chunks: Sequence[Chunk], vectors: np.ndarray, embedder_name: str) -> None:
        """Store chunks whose vectors `embedder_name` already made (a bulk load), published as one generation: no
        embedding, no paper records."""
        with self.writing() as write:
            self.chunks.modify(metadata={"embedder": embedder_name})
            hashes = {c.id: content_hash(c, embedder_name) for c in chunks}
            write_chunks(self.chunks, chunks, vectors, hashes, write.generation, self.settings)
            write.changed = write.changed or bool(chunks)

    def _stored_hashes(self, ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for batch in batches(ids, 1000):
            got = self.chunks.get(ids=batch, include=["metadatas"])
            found.update({i: str(m.get("hash")) for i, m in zip(got["ids"], got["metadatas"] or [])})
        return found

    def _stale_ids(self, papers: Sequence[Paper], keep: set[str]) -> list[str]:
        """Stored chunks from the files being ingested, or of the papers being ingested, that are not in `keep`."""
        sources = sorted({p.source for p in papers})
        paper_ids = sorted({p.id for p in papers})
        if not sources:
            return []
        where = {"$or": [{"source": {"$in": sources}}, {"paper_id": {"$in": paper_ids}}]}
        got = self.chunks.get(where=where, include=[])
        return [i for i in got["ids"] if i not in keep]

    def _paper_ids_without_chunks(self, deleted_chunk_ids: list[str]) -> list[str]:
        candidates = sorted({i.rsplit(":", 1)[0] for i in deleted_chunk_ids})
        left = self.chunks.get(where={"paper_id": {"$in": candidates}}, include=["metadatas"])
        alive = {m["paper_id"] for m in left["metadatas"] or []}
        return [p for p in candidates if p not in alive]

    # read -------------------------------------------------------------------------------------------

    def query(
        self, vector: np.ndarray, n: int, embedded_with: str, known: Mapping[str, Passage] | None = None
    ) -> list[Passage]:
        """The `n` chunks nearest to `vector` (a question embedded with `embedded_with`), best first, by cosine.

        With `known` (by id: the chunks of the generation the caller answers from, the BM25 snapshot's), only those
        chunks are returned, taken from there rather than read again (reading 60 chunks' text from Chroma's SQLite took
        1.7 of a query's 2.6 ms): one another write is adding, or a crashed write left, is not in that generation."""
        from chromadb.errors import InvalidArgumentError  # chromadb is imported with the client, not before

        stored = (self.chunks.metadata or {}).get("embedder")
        if stored is not None and stored != embedded_with:
            raise IndexBuiltWithOtherModel(self.where, stored, embedded_with)
        if known is not None and not known:
            raise IndexNotBuilt(self.where)  # nothing published yet (a first ingest may be under way)
        include = ["distances"] if known is not None else ["documents", "metadatas", "distances"]
        wanted = n
        for _ in range(4):
            try:
                got = self.chunks.query(query_embeddings=[vector], n_results=wanted, include=include)
            except InvalidArgumentError as error:  # an index from before the record, at another dimension
                raise IndexBuiltWithOtherModel(self.where, LEGACY_EMBEDDER, embedded_with) from error
            ids, distances = got["ids"][0], got["distances"][0]
            if not ids:  # checked after the query, not before: a count() per search cost 7% of /search
                raise IndexNotBuilt(self.where)
            if known is None:
                docs, metas = got["documents"][0], got["metadatas"][0]
                return [passage_from_record(i, t, m, 1.0 - d) for i, t, m, d in zip(ids, docs, metas, distances)]
            hits = [rescored(known[i], 1.0 - d) for i, d in zip(ids, distances) if i in known]
            if len(hits) >= n or len(ids) < wanted:
                break
            wanted += len(ids) - len(hits)  # chunks outside `known` took places: look deeper
        return hits[:n]

    def get_paper(self, paper_id: str) -> Paper | None:
        return self.get_papers([paper_id]).get(paper_id)

    def get_papers(self, paper_ids: Iterable[str]) -> dict[str, Paper]:
        """The stored papers among `paper_ids`, by id, in one read (unknown ids are left out)."""
        ids = sorted(set(paper_ids))
        if not ids:
            return {}
        got = self.papers.get(ids=ids, include=["documents", "metadatas"])
        records = zip(got["ids"], got["documents"], got["metadatas"])
        return {i: paper_from_record(i, doc, meta) for i, doc, meta in records}

    def iter_chunks(self, batch: int = 2000) -> Iterator[Passage]:
        """Every stored chunk (score 0), in pages: what a lexical index is built from."""
        total = self.chunks.count()
        for offset in range(0, total, batch):
            got = self.chunks.get(limit=batch, offset=offset, include=["documents", "metadatas"])
            for i, doc, meta in zip(got["ids"], got["documents"], got["metadatas"]):
                yield passage_from_record(i, doc, meta, 0.0)

    def stats(self) -> dict[str, int]:
        return {"papers": self.papers.count(), "chunks": self.chunks.count()}
