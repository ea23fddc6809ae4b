"""Papers -> chunks -> embeddings -> Chroma. The only module that owns a Chroma client.

Two collections: `<name>` holds one record per chunk (its text, paper id, title, position, page, source and a
content hash), `<name>__papers` one record per paper (abstract or full text, metadata). Chunk ids are
`{paper_id}:{position}`, so re-ingesting the same files upserts nothing new, and the content hash lets an
unchanged chunk skip re-embedding altogether. A chunk whose vector ships with the bundled corpus
(`agent/bundled_vectors.py`) takes it from there instead of from the model. The answer sentences' vectors live
in a third collection, `<name>__sentences` (`agent/sentence_store.py`), brought in line with the chunks by ingest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from tqdm import tqdm

from agent.bundled_vectors import BUNDLED_VECTORS, shipped_vectors
from agent.embed import Embedder
from agent.errors import IndexBuiltWithOtherModel, IndexNotBuilt
from agent.sentence_store import SentenceStats, SentenceStore
from agent.settings import IndexSettings, Settings
from agent.types import Chunk, Paper, Passage

OnBatch = Callable[[list[Chunk]], None]


@dataclass
class IngestStats:
    papers: int = 0  # papers in the files read
    chunks: int = 0  # chunks those papers make
    embedded: int = 0  # chunks that were new or changed, so were embedded and written
    shipped: int = 0  # of those, chunks whose vectors came from the shipped file instead of the model
    deleted: int = 0  # chunks of papers no longer in the files (or shorter than before), removed
    sentences: SentenceStats | None = None  # the answer sentences' vectors, when ingest was given their model


# --- chunking ------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _splitter(chunk_tokens: int, chunk_overlap: int) -> Any:
    import tiktoken
    from llama_index.core.node_parser import SentenceSplitter

    encoding = tiktoken.get_encoding("cl100k_base")  # read from llama-index's bundled cache (agent.offline)
    return SentenceSplitter(chunk_size=chunk_tokens, chunk_overlap=chunk_overlap, tokenizer=encoding.encode)


def chunk_paper(paper: Paper, settings: IndexSettings) -> list[Chunk]:
    """Token-aware chunks of a paper's text, each knowing its position and (for PDFs) its page."""
    texts = _splitter(settings.chunk_tokens, settings.chunk_overlap).split_text(paper.text)
    chunks, cursor = [], 0
    for position, text in enumerate(texts):
        start = paper.text.find(text[:64], cursor)
        cursor = max(cursor, start)
        chunks.append(
            Chunk(
                id=f"{paper.id}:{position}",
                paper_id=paper.id,
                title=paper.title,
                position=position,
                text=text,
                page=_page_at(paper, start),
                source=paper.source,
            )
        )
    return chunks


def _page_at(paper: Paper, offset: int) -> int | None:
    page = None
    for number, start in paper.page_starts:
        if start > offset:
            break
        page = number
    return page


def embedding_text(chunk: Chunk) -> str:
    """What gets embedded: the title gives every chunk of a paper the paper's topic, not just its first."""
    return f"{chunk.title}\n{chunk.text}"


# --- the store -----------------------------------------------------------------------------------


def make_client(settings: Settings) -> Any:
    """An embedded Chroma (PersistentClient in the data dir), or an HttpClient when a server URL is set."""
    import chromadb

    chroma_settings = chromadb.Settings(anonymized_telemetry=False)
    url = settings.index.chroma_url
    if url:
        parsed = urlparse(url)
        return chromadb.HttpClient(
            host=parsed.hostname or "localhost",
            port=parsed.port or (443 if parsed.scheme == "https" else 8000),
            ssl=parsed.scheme == "https",
            settings=chroma_settings,
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.data_dir / "chroma"), settings=chroma_settings)


LEGACY_EMBEDDER = "all-MiniLM-L6-v2"
_NEW = "__reembedding"  # suffix of the collections a re-embedding fills before they replace the old ones


class Index:
    """The paper collection in Chroma: ingest, query by vector, look papers up."""

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
        chunks = [_chunk_from_record(*record) for record in zip(got["ids"], got["documents"], got["metadatas"])]
        got = self.papers.get(include=["documents", "metadatas"])
        papers = [_paper_from_record(*record) for record in zip(got["ids"], got["documents"], got["metadatas"])]
        old = (self.chunks, self.papers)
        names = (self.settings.collection, f"{self.settings.collection}__papers")
        existing = {c.name for c in self.client.list_collections()}
        for name in names:  # left over from an attempt that crashed
            if f"{name}{_NEW}" in existing:
                self.client.delete_collection(f"{name}{_NEW}")
        self.chunks, self.papers = (self._collection(f"{name}{_NEW}") for name in names)
        try:
            self.chunks.modify(metadata={"embedder": embedder.name})
            hashes = {c.id: _content_hash(c, embedder.name) for c in chunks}
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
        """A cosine collection that stores our vectors (never Chroma's downloading default embedder)."""
        hnsw = {"space": "cosine", "ef_search": self.settings.hnsw_ef_search}
        collection = self.client.get_or_create_collection(name, configuration={"hnsw": hnsw}, embedding_function=None)
        # subtle: Chroma rebuilds its HNSW graph from the log in parallel when a process opens it, so with a
        # narrow search the tail of the top 60 differed between processes. A search as wide as the collection
        # is exact and repeatable; an existing collection gets the setting here.
        current = (collection.configuration_json or {}).get("hnsw") or {}
        if current.get("ef_search") != self.settings.hnsw_ef_search:
            collection.modify(configuration={"hnsw": {"ef_search": self.settings.hnsw_ef_search}})
        return collection

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
        hashes = {c.id: _content_hash(c, embedder.name) for c in chunks}
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
                    metadatas=[_chunk_metadata(c, hashes[c.id]) for c in batch],
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
                metadatas=[_paper_metadata(p, counts[p.id]) for p in batch],
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
            return [_passage(i, doc, meta, 1.0 - d) for i, doc, meta, d in zip(ids, docs, metas, distances)]
        missing = [i for i in ids if i not in known]  # written since `known` was copied (by another process)
        found = {p.chunk_id: p for p in self._read_chunks(missing)} if missing else {}
        return [_rescored(p, 1.0 - d) for i, d in zip(ids, distances) if (p := known.get(i) or found.get(i))]

    def _read_chunks(self, ids: list[str]) -> Iterator[Passage]:
        got = self.chunks.get(ids=ids, include=["documents", "metadatas"])
        for i, doc, meta in zip(got["ids"], got["documents"], got["metadatas"]):
            yield _passage(i, doc, meta, 0.0)

    def get_paper(self, paper_id: str) -> Paper | None:
        return self.get_papers([paper_id]).get(paper_id)

    def get_papers(self, paper_ids: Iterable[str]) -> dict[str, Paper]:
        """The stored papers among `paper_ids`, by id, in one read (unknown ids are left out)."""
        ids = sorted(set(paper_ids))
        if not ids:
            return {}
        got = self.papers.get(ids=ids, include=["documents", "metadatas"])
        records = zip(got["ids"], got["documents"], got["metadatas"])
        return {i: _paper_from_record(i, doc, meta) for i, doc, meta in records}

    def iter_chunks(self, batch: int = 2000) -> Iterator[Passage]:
        """Every stored chunk (score 0), in pages: what a lexical index is built from."""
        total = self.chunks.count()
        for offset in range(0, total, batch):
            got = self.chunks.get(limit=batch, offset=offset, include=["documents", "metadatas"])
            for i, doc, meta in zip(got["ids"], got["documents"], got["metadatas"]):
                yield _passage(i, doc, meta, 0.0)

    def stats(self) -> dict[str, int]:
        return {"papers": self.papers.count(), "chunks": self.chunks.count()}


def _content_hash(chunk: Chunk, embedder_name: str) -> str:
    """Changes when anything that goes into the chunk's stored vector or record changes."""
    key = "\x1f".join([embedder_name, chunk.title, chunk.text, str(chunk.page)])
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


def _batches(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _chunk_metadata(chunk: Chunk, content_hash: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "paper_id": chunk.paper_id,
        "title": chunk.title,
        "position": chunk.position,
        "source": chunk.source,
        "hash": content_hash,
    }
    if chunk.page is not None:
        meta["page"] = chunk.page
    return meta


def _paper_metadata(paper: Paper, n_chunks: int) -> dict[str, Any]:
    meta = {k: v for k, v in paper.metadata().items() if v not in (None, [], "") and k != "paper_id"}
    meta["authors"] = "; ".join(paper.authors)
    meta["chunks"] = n_chunks
    return meta


def _passage(chunk_id: str, text: str, meta: dict[str, Any], score: float) -> Passage:
    return Passage(
        chunk_id=chunk_id,
        paper_id=str(meta["paper_id"]),
        title=str(meta["title"]),
        text=text,
        score=float(score),
        position=int(meta.get("position", 0)),
        page=meta.get("page"),
    )


def _rescored(p: Passage, score: float) -> Passage:
    return Passage(p.chunk_id, p.paper_id, p.title, p.text, float(score), p.position, p.page)


def _chunk_from_record(chunk_id: str, text: str, meta: dict[str, Any]) -> Chunk:
    return Chunk(
        id=chunk_id,
        paper_id=str(meta["paper_id"]),
        title=str(meta["title"]),
        position=int(meta.get("position", 0)),
        text=text,
        page=meta.get("page"),
        source=str(meta.get("source", "")),
    )


def _paper_from_record(paper_id: str, text: str, meta: dict[str, Any]) -> Paper:
    authors = tuple(a for a in str(meta.get("authors") or "").split("; ") if a)
    return Paper(
        id=paper_id,
        title=str(meta["title"]),
        text=text,
        source=str(meta.get("source", "")),
        authors=authors,
        year=meta.get("year"),
        url=meta.get("url"),
    )
