"""What a chunk's text costs Chroma's write path, stored as a document or as metadata, on a real `chroma run`.

    .venv/bin/python bench/bench_chroma_write.py [--chunks 30000]

The scale benchmark's ingest (bench/bench_scale.py) writes each chunk's vector, its text and its metadata. Here the
same synthetic chunks (bench/scale_data.py) go into fresh collections of one `chroma run` server, in the project's
write batches, four ways:

- raw: vectors and ids only (the baseline: HNSW and the write log, nothing else);
- metadata, no text: plus the project's chunk metadata (`chunk_metadata`) without the text;
- project: what ingest writes (`agent.chroma.write_chunks`: vectors and metadata, the text one of its values);
- before: the text as Chroma documents, as the project wrote it until it measured this;
- before, FTS deleted: the same into a collection whose schema deletes the full-text index on `#document`
  (Chroma's documented switch), to see whether a local server honours it.

Each way writes into a fresh server over an empty folder, the ways interleaved `--repeat` times; the medians of
chunks/s, the ratio to raw in the same run, the server's disk per chunk, and how many rows the server's SQLite
full-text table holds. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import free_port, start_chroma, tree_bytes
from scale_data import BLOCK, SyntheticCorpus

from paper_agent.chroma import TEXT, chunk_metadata, content_hash, open_collection, write_chunks
from paper_agent.settings import IndexSettings
from paper_agent.types import Chunk

EMBEDDER = "all-mpnet-base-v2+onnx"
GENERATION = 1
Write = Callable[[Any, list[Chunk], np.ndarray, IndexSettings], None]


def plain(*, metadata: bool, documents: bool) -> Write:
    """A write in the project's batches of the vectors and only the fields named: the chunk metadata without its
    text, and the text as Chroma documents (as the project wrote it before; records written then still hold it)."""

    def write(collection: Any, chunks: list[Chunk], vectors: np.ndarray, settings: IndexSettings) -> None:
        for start in range(0, len(chunks), settings.write_batch_size):
            batch = chunks[start : start + settings.write_batch_size]
            fields: dict[str, Any] = {}
            if metadata:
                metas = [chunk_metadata(c, content_hash(c, EMBEDDER), GENERATION) for c in batch]
                fields["metadatas"] = [{k: v for k, v in m.items() if k != TEXT} for m in metas]
            if documents:
                fields["documents"] = [c.text for c in batch]
            collection.upsert(ids=[c.id for c in batch], embeddings=vectors[start : start + len(batch)], **fields)

    return write


def project(collection: Any, chunks: list[Chunk], vectors: np.ndarray, settings: IndexSettings) -> None:
    hashes = {c.id: content_hash(c, EMBEDDER) for c in chunks}
    write_chunks(collection, chunks, vectors, hashes, GENERATION, settings)


def fts_deleted_collection(client: Any, name: str, settings: IndexSettings) -> Any:
    """A collection as `open_collection` makes it, its schema deleting the full-text index on the documents."""
    from chromadb import FtsIndexConfig, HnswIndexConfig, Schema, VectorIndexConfig

    schema = Schema()
    hnsw = HnswIndexConfig(
        ef_construction=settings.hnsw_ef_construction,
        max_neighbors=settings.hnsw_max_neighbors,
        ef_search=settings.hnsw_ef_search,
    )
    schema.create_index(VectorIndexConfig(space="cosine", hnsw=hnsw))
    schema.delete_index(FtsIndexConfig(), key="#document")
    return client.create_collection(name, schema=schema, embedding_function=None)


WAYS: list[tuple[str, Write, bool]] = [  # (name, write, FTS deleted in the schema)
    ("raw: vectors only", plain(metadata=False, documents=False), False),
    ("metadata, no text", plain(metadata=True, documents=False), False),
    ("project: text in the metadata", project, False),
    ("before: text as documents", plain(metadata=True, documents=True), False),
    ("before, schema deletes FTS", plain(metadata=True, documents=True), True),
]


def fts_rows(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return int(con.execute("SELECT count(*) FROM embedding_fulltext_search_content").fetchone()[0])


def trial(write: Write, no_fts: bool, chunks: list[Chunk], vectors: np.ndarray) -> dict[str, float]:
    """One way's write into a fresh `chroma run` over an empty folder: chunks/s, disk per chunk, FTS rows."""
    import chromadb

    settings = IndexSettings()
    root = Path(tempfile.mkdtemp(prefix="bench-chroma-write-"))
    port = free_port()
    server = start_chroma(root / "chroma", port, root / "chroma.log")
    try:
        client = chromadb.HttpClient(
            host="127.0.0.1", port=port, settings=chromadb.Settings(anonymized_telemetry=False)
        )
        if no_fts:
            collection = fts_deleted_collection(client, "bench", settings)
        else:
            collection = open_collection(client, "bench", settings)
        began = time.perf_counter()
        write(collection, chunks, vectors, settings)
        seconds = time.perf_counter() - began
        return {
            "rate": len(chunks) / seconds,
            "kb": tree_bytes(root / "chroma") / len(chunks) / 1024,
            "fts": fts_rows(root / "chroma" / "chroma.sqlite3"),
        }
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3, help="trials of each way, interleaved; medians printed")
    args = parser.parse_args()

    corpus = SyntheticCorpus()
    made = [corpus.block(b) for b in range(max(1, args.chunks // BLOCK))]
    chunks = [c for cs, _ in made for c in cs]
    vectors = np.concatenate([v for _, v in made])
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in WAYS}
    for _ in range(args.repeat):  # interleaved, so every way sees the same load on a shared machine
        for name, write, no_fts in WAYS:
            results[name].append(trial(write, no_fts, chunks, vectors))
    base = statistics.median(r["rate"] for r in results[WAYS[0][0]])
    for name, trials in results.items():
        rate = statistics.median(r["rate"] for r in trials)
        kb = statistics.median(r["kb"] for r in trials)
        fts = int(statistics.median(r["fts"] for r in trials))
        print(f"{name:<36} {rate:8.0f} chunks/s  {rate / base:5.2f}x raw  {kb:6.1f} KB/chunk  FTS rows {fts:,}")
    print(
        f"\n{len(chunks):,} chunks, write batches of {IndexSettings().write_batch_size}, one writer, a fresh "
        f"`chroma run` per trial; medians of {args.repeat}"
    )


if __name__ == "__main__":
    main()
