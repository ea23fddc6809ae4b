"""Chroma's side of the index: the client, our cosine collections, and our nouns as Chroma records.

A chunk or paper is stored with flat scalar metadata (authors as one `"; "`-joined string, a missing page left
out rather than stored as None) and read back into `Chunk`, `Paper` or `Passage`. Its text is one of those
metadata values, not a Chroma document: Chroma indexes every document for its full-text search (SQLite trigrams),
which this project never uses (its lexical search is BM25, agent/lexical.py) and which a local Chroma cannot be
told to skip (the schema's FTS deletion is accepted and ignored). With it, writes took 1.5 times as long
(bench/bench_chroma_write.py). Records written before keep their text as a document; both are read. The content
hash decides whether a chunk needs embedding again. `agent.index.Index` is the only caller; nothing else opens a client.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from paper_agent.settings import IndexSettings, Settings
from paper_agent.types import Chunk, Paper, Passage

if TYPE_CHECKING:
    import numpy as np


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


def refresh_client(client: Any) -> bool:
    """Make an embedded client read the store as it is on disk now; returns whether it had anything to reload.

    An embedded client keeps the HNSW graphs it loaded and never sees another process's additions in them (see
    agent/generation.py); a server client reads the server's live state. subtle: this builds the client's Rust
    bindings anew over the same files and swaps them in (5-15 ms; the graphs load again on first use). chromadb's
    public way, `clear_system_cache()` and a new client, leaves every other client and collection handle of the
    process on the old state; the swap reaches them all, and calls in flight finish on the bindings they started on.
    """
    from chromadb.api.rust import RustBindingsAPI

    server = getattr(client, "_server", None)
    if not isinstance(server, RustBindingsAPI):
        return False
    server.start()
    return True


def open_collection(client: Any, name: str, settings: IndexSettings) -> Any:
    """A cosine collection that stores our vectors (never Chroma's downloading default embedder)."""
    ef_search = settings.hnsw_ef_search
    hnsw = {
        "space": "cosine",
        "ef_search": ef_search,
        "ef_construction": settings.hnsw_ef_construction,
        "max_neighbors": settings.hnsw_max_neighbors,
    }
    collection = client.get_or_create_collection(name, configuration={"hnsw": hnsw}, embedding_function=None)
    # subtle: Chroma rebuilds its HNSW graph from the log in parallel when a process opens it, so with a
    # narrow search the tail of the top 60 differed between processes. A search as wide as the collection
    # is exact and repeatable; an existing collection gets the setting here (the build parameters it keeps).
    # Chroma applies it when it loads the index: a running `chroma run` server that has loaded it already keeps
    # the old breadth until it restarts (measured: bench/bench_scale.py restarts the server per value).
    current = (collection.configuration_json or {}).get("hnsw") or {}
    if current.get("ef_search") != ef_search:
        collection.modify(configuration={"hnsw": {"ef_search": ef_search}})
    return collection


def write_chunks(
    collection: Any,
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    hashes: Mapping[str, str],
    generation: int,
    settings: IndexSettings,
) -> None:
    """Upsert chunks with their vectors, stamped with `generation`: `write_batch_size` a request and `writers`
    requests in flight."""

    def write(start: int) -> None:
        batch = chunks[start : start + settings.write_batch_size]
        collection.upsert(
            ids=[c.id for c in batch],
            embeddings=vectors[start : start + len(batch)],
            metadatas=[chunk_metadata(c, hashes[c.id], generation) for c in batch],
        )

    starts = range(0, len(chunks), settings.write_batch_size)
    if settings.writers == 1:
        for start in starts:
            write(start)
        return
    # subtle: the server does the work (HNSW insert, SQLite); a second request in flight overlaps one's JSON and
    # HTTP with the other's insert. More than the server's cores only queues.
    with ThreadPoolExecutor(settings.writers) as pool:
        list(pool.map(write, starts))


def content_hash(chunk: Chunk, embedder_name: str) -> str:
    """Changes when anything that goes into the chunk's stored vector or record changes."""
    key = "\x1f".join([embedder_name, chunk.title, chunk.text, str(chunk.page)])
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


TEXT = "text"  # the metadata key that holds a record's text


def chunk_metadata(chunk: Chunk, digest: str, generation: int) -> dict[str, Any]:
    meta: dict[str, Any] = {
        TEXT: chunk.text,
        "paper_id": chunk.paper_id,
        "title": chunk.title,
        "position": chunk.position,
        "source": chunk.source,
        "hash": digest,
        "generation": generation,  # the one it is published in: until then, readers leave it out
    }
    if chunk.page is not None:
        meta["page"] = chunk.page
    return meta


def paper_metadata(paper: Paper, n_chunks: int, generation: int) -> dict[str, Any]:
    meta = {k: v for k, v in paper.metadata().items() if v not in (None, [], "") and k != "paper_id"}
    meta[TEXT] = paper.text
    meta["authors"] = "; ".join(paper.authors)
    meta["chunks"] = n_chunks
    meta["generation"] = generation
    return meta


def record_text(document: str | None, meta: Mapping[str, Any]) -> str:
    """A stored record's text: its metadata's, or, for a record written before, its document."""
    text = meta.get(TEXT)
    return str(text) if text is not None else str(document or "")


def passage_from_record(chunk_id: str, document: str | None, meta: dict[str, Any], score: float) -> Passage:
    return Passage(
        chunk_id=chunk_id,
        paper_id=str(meta["paper_id"]),
        title=str(meta["title"]),
        text=record_text(document, meta),
        score=float(score),
        position=int(meta.get("position", 0)),
        page=meta.get("page"),
    )


def rescored(p: Passage, score: float) -> Passage:
    return Passage(p.chunk_id, p.paper_id, p.title, p.text, float(score), p.position, p.page)


def chunk_from_record(chunk_id: str, document: str | None, meta: dict[str, Any]) -> Chunk:
    return Chunk(
        id=chunk_id,
        paper_id=str(meta["paper_id"]),
        title=str(meta["title"]),
        position=int(meta.get("position", 0)),
        text=record_text(document, meta),
        page=meta.get("page"),
        source=str(meta.get("source", "")),
    )


def paper_from_record(paper_id: str, document: str | None, meta: dict[str, Any]) -> Paper:
    authors = tuple(a for a in str(meta.get("authors") or "").split("; ") if a)
    return Paper(
        id=paper_id,
        title=str(meta["title"]),
        text=record_text(document, meta),
        source=str(meta.get("source", "")),
        authors=authors,
        year=meta.get("year"),
        url=meta.get("url"),
    )
