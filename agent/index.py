"""Papers -> chunks -> embeddings -> Chroma: ingest, re-embed, query. `Index` owns the Chroma client.

Two collections: `<name>` holds one record per chunk (its text, paper id, title, position, page, source and a
content hash), `<name>__papers` one record per paper (abstract or full text, metadata). Chunk ids are
`{paper_id}:{position}`, so re-ingesting the same files upserts nothing new, and the content hash lets an
unchanged chunk skip re-embedding altogether. A chunk whose vector ships with the bundled corpus
(`agent/bundled_vectors.py`) takes it from there instead of from the model. Chunking is `agent/chunking.py`;
the client, collections and record layout are `agent/chroma.py`. The answer sentences' vectors live
in a third collection, `<name>__sentences` (`agent/sentence_store.py`), brought in line with the chunks by ingest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from paper_agent.bundled_vectors import BUNDLED_VECTORS, shipped_vectors
from paper_agent.catalog import Catalogue
from paper_agent.chroma import (
    chunk_from_record,
    chunk_metadata,
    content_hash,
    make_client,
    open_collection,
    paper_from_record,
    paper_metadata,
    passage_from_record,
    rescored,
)
from paper_agent.chunking import chunk_paper, embedding_text
from paper_agent.embed import Embedder
from paper_agent.errors import IndexBuiltWithOtherModel, IndexNotBuilt
from paper_agent.sentence_store import SentenceStats, SentenceStore
from paper_agent.settings import Settings
from paper_agent.types import Chunk, Paper, Passage

OnBatch = Callable[[list[Chunk]], None]


@dataclass
class IngestStats:
    papers: int = 0  # papers in the files read
    chunks: int = 0  # chunks those papers make
    embedded: int = 0  # chunks that were new or changed, so were embedded and written
    shipped: int = 0  # of those, chunks whose vectors came from the shipped file instead of the model
    deleted: int = 0  # chunks of papers no longer in the files (or shorter than before), removed
    sentences: SentenceStats | None = None  # the answer sentences' vectors, when ingest was given their model


LEGACY_EMBEDDER = "all-MiniLM-L6-v2"
_NEW = "__reembedding"  # suffix of the collections a re-embedding fills before they replace the old ones


class Index(Catalogue):
    """The paper collection in Chroma: ingest, query by vector, look papers up (list and remove: `Catalogue`)."""

    def __init__(self, settings: Settings, client: Any = None, vectors_dir: Path | None = BUNDLED_VECTORS) -> None:
        self.settings = settings.index
        self.vectors_dir = vectors_dir  # shipped vectors to take before embedding (None: always embed)
        self.where = settings.index.chroma_url or str(settings.data_dir / "chroma")
        self.client = client if client is not None else make_client(settings)
        self.chunks = self._collection(self.settings.collection)
        self.papers = self._collection(f"{self.settings.collection}__papers")

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
        """Re-embed every stored chunk and paper with `embedder`, keeping every record; returns the chunk count.

        What a change of model needs: another model's vectors cannot be mixed in (nor, at another dimension,
        stored). The new vectors go into new collections that replace the old ones only when complete, so a crash
        half-way leaves the old index as it was."""
        got = self.chunks.get(include=["documents", "metadatas"])
        chunks = [chunk_from_record(*record) for record in zip(got["ids"], got["documents"], got["metadatas"])]
        got = self.papers.get(include=["documents", "metadatas"])
        papers = [paper_from_record(*record) for record in zip(got["ids"], got["documents"], got["metadatas"])]
        old = (self.chunks, self.papers)
        names = (self.settings.collection, f"{self.settings.collection}__papers")
        existing = {c.name for c in self.client.list_collections()}
        for name in names:  # left over from an attempt that crashed
            if f"{name}{_NEW}" in existing:
                self.client.delete_collection(f"{name}{_NEW}")
        self.chunks, self.papers = (self._collection(f"{name}{_NEW}") for name in names)
        try:
            self.chunks.modify(metadata={"embedder": embedder.name})
            hashes = {c.id: content_hash(c, embedder.name) for c in chunks}
            vectors, _ = self._embed_and_write(chunks, hashes, embedder, progress, None)
            self._write_papers(papers, chunks, vectors)
        except BaseException:
            self.chunks, self.papers = old
            raise
        for collection, name in zip(old, names, strict=True):
            self.client.delete_collection(collection.name)
            self.client.get_collection(f"{name}{_NEW}").modify(name=name)
        self.chunks, self.papers = (self._collection(name) for name in names)
        return len(chunks)

    def _collection(self, name: str) -> Any:
        return open_collection(self.client, name, self.settings.hnsw_ef_search)

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
        vectors, shipped = self._embed_and_write(todo, hashes, embedder, progress, on_batch)
        changed = {c.paper_id for c in todo}
        self._write_papers([p for p in papers if p.id in changed], chunks, vectors)
        stats = IngestStats(
            papers=len(papers), chunks=len(chunks), embedded=len(todo), shipped=shipped, deleted=len(stale)
        )
        if sentence_embedder is not None:
            stats.sentences = self.sentences.sync(
                self.iter_chunks(), sentence_embedder, self.vectors_dir, progress=progress
            )
        return stats

    def _stored_hashes(self, ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for batch in _batches(ids, 1000):
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

    def _embed_and_write(
        self,
        todo: list[Chunk],
        hashes: dict[str, str],
        embedder: Embedder,
        progress: bool,
        on_batch: OnBatch | None,
    ) -> tuple[dict[str, np.ndarray], int]:
        """Write `todo` with their vectors; returns the vectors by chunk id and how many came from the shipped file."""
        texts = {c.id: embedding_text(c) for c in todo}
        shipped = shipped_vectors(texts, embedder, self.settings, self.vectors_dir)
        vectors: dict[str, np.ndarray] = {}
        with tqdm(total=len(todo), desc="embedding chunks", unit="chunk", disable=not progress or not todo) as bar:
            for batch, embedded in self._vector_batches(todo, texts, shipped, embedder):
                self.chunks.upsert(
                    ids=[c.id for c in batch],
                    embeddings=embedded,
                    documents=[c.text for c in batch],
                    metadatas=[chunk_metadata(c, hashes[c.id]) for c in batch],
                )
                vectors.update(zip((c.id for c in batch), embedded))
                if on_batch is not None:
                    on_batch(batch)
                bar.update(len(batch))
        return vectors, len(shipped)

    def _vector_batches(
        self, todo: list[Chunk], texts: dict[str, str], shipped: dict[str, np.ndarray], embedder: Embedder
    ) -> Iterator[tuple[list[Chunk], np.ndarray]]:
        """`todo` in batches with their vectors: first those the shipped file holds, then the rest, embedded."""
        size = self.settings.embed_batch_size
        for batch in _batches([c for c in todo if c.id in shipped], size):
            yield batch, np.stack([shipped[c.id] for c in batch])
        # Longest first, like sentence-transformers does within one call: batches of similar length pad less.
        rest = sorted((c for c in todo if c.id not in shipped), key=lambda c: len(texts[c.id]), reverse=True)
        for batch in _batches(rest, size):
            yield batch, embedder.embed([texts[c.id] for c in batch])

    def _write_papers(self, papers: Sequence[Paper], chunks: list[Chunk], vectors: dict[str, np.ndarray]) -> None:
        """One record per changed paper; its vector is the mean of its chunks' (a paper-level embedding)."""
        by_paper: dict[str, list[np.ndarray]] = {}
        counts: dict[str, int] = {}
        for c in chunks:
            counts[c.paper_id] = counts.get(c.paper_id, 0) + 1
            if c.id in vectors:
                by_paper.setdefault(c.paper_id, []).append(vectors[c.id])
        for batch in _batches([p for p in papers if p.id in by_paper], 500):
            means = [np.mean(by_paper[p.id], axis=0) for p in batch]
            self.papers.upsert(
                ids=[p.id for p in batch],
                embeddings=[m / (np.linalg.norm(m) or 1.0) for m in means],
                documents=[p.text for p in batch],
                metadatas=[paper_metadata(p, counts[p.id]) for p in batch],
            )

    # read -------------------------------------------------------------------------------------------

    def query(
        self, vector: np.ndarray, n: int, embedded_with: str, known: Mapping[str, Passage] | None = None
    ) -> list[Passage]:
        """The `n` chunks nearest to `vector` (a question embedded with `embedded_with`), best first, by cosine.

        Chunks in `known` (by id: a copy of the stored chunks, e.g. the BM25 index's) are taken from there rather
        than read again: reading 60 chunks' text from Chroma's SQLite took 1.7 of a query's 2.6 ms."""
        from chromadb.errors import InvalidArgumentError  # chromadb is imported with the client, not before

        stored = (self.chunks.metadata or {}).get("embedder")
        if stored is not None and stored != embedded_with:
            raise IndexBuiltWithOtherModel(self.where, stored, embedded_with)
        include = ["distances"] if known is not None else ["documents", "metadatas", "distances"]
        try:
            got = self.chunks.query(query_embeddings=[vector], n_results=n, include=include)
        except InvalidArgumentError as error:  # an index from before the record, at another dimension
            raise IndexBuiltWithOtherModel(self.where, LEGACY_EMBEDDER, embedded_with) from error
        ids, distances = got["ids"][0], got["distances"][0]
        if not ids:  # checked after the query, not before: a count() per search cost 7% of /search
            raise IndexNotBuilt(self.where)
        if known is None:
            docs, metas = got["documents"][0], got["metadatas"][0]
            return [passage_from_record(i, doc, meta, 1.0 - d) for i, doc, meta, d in zip(ids, docs, metas, distances)]
        missing = [i for i in ids if i not in known]  # written since `known` was copied (by another process)
        found = {p.chunk_id: p for p in self._read_chunks(missing)} if missing else {}
        return [rescored(p, 1.0 - d) for i, d in zip(ids, distances) if (p := known.get(i) or found.get(i))]

    def _read_chunks(self, ids: list[str]) -> Iterator[Passage]:
        got = self.chunks.get(ids=ids, include=["documents", "metadatas"])
        for i, doc, meta in zip(got["ids"], got["documents"], got["metadatas"]):
            yield passage_from_record(i, doc, meta, 0.0)

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


def _batches(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
