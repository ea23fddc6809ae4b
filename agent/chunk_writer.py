"""Chunks and papers into Chroma with their vectors: from the shipped file where it holds them, else from the model.

Every record carries the generation it is published in (`agent/generation.py`), so until the write publishes it,
readers leave it out, and a write that crashed can be rolled back. `agent.index.Index` and `agent.reembed` write
through here, inside `Index.writing()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from paper_agent.bundled_vectors import shipped_vectors
from paper_agent.chroma import chunk_metadata, paper_metadata
from paper_agent.chunking import embedding_text
from paper_agent.embed import Embedder
from paper_agent.settings import IndexSettings
from paper_agent.types import Chunk, Paper

OnBatch = Callable[[list[Chunk]], None]


class ChunkWriter:
    """Writes into one chunk collection and its paper collection."""

    def __init__(self, chunks: Any, papers: Any, settings: IndexSettings, vectors_dir: Path | None) -> None:
        self.chunk_records = chunks
        self.paper_records = papers
        self.settings = settings
        self.vectors_dir = vectors_dir  # shipped vectors to take before embedding (None: always embed)

    def chunks(
        self,
        todo: list[Chunk],
        hashes: dict[str, str],
        embedder: Embedder,
        generation: int,
        progress: bool = True,
        on_batch: OnBatch | None = None,
    ) -> tuple[dict[str, np.ndarray], int]:
        """Write `todo` with their vectors; returns the vectors by chunk id and how many came from the shipped file."""
        texts = {c.id: embedding_text(c) for c in todo}
        shipped = shipped_vectors(texts, embedder, self.settings, self.vectors_dir)
        vectors: dict[str, np.ndarray] = {}
        with tqdm(total=len(todo), desc="embedding chunks", unit="chunk", disable=not progress or not todo) as bar:
            for batch, embedded in self._vector_batches(todo, texts, shipped, embedder):
                self.chunk_records.upsert(
                    ids=[c.id for c in batch],
                    embeddings=embedded,
                    metadatas=[chunk_metadata(c, hashes[c.id], generation) for c in batch],
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
        for batch in batches([c for c in todo if c.id in shipped], self.settings.write_batch_size):
            yield batch, np.stack([shipped[c.id] for c in batch])
        # Longest first, like sentence-transformers does within one call: batches of similar length pad less.
        rest = sorted((c for c in todo if c.id not in shipped), key=lambda c: len(texts[c.id]), reverse=True)
        for batch in batches(rest, size):
            yield batch, embedder.embed([texts[c.id] for c in batch])

    def papers(
        self, papers: Sequence[Paper], chunks: list[Chunk], vectors: dict[str, np.ndarray], generation: int
    ) -> None:
        """One record per changed paper; its vector is the mean of its chunks' (a paper-level embedding)."""
        by_paper: dict[str, list[np.ndarray]] = {}
        counts: dict[str, int] = {}
        for c in chunks:
            counts[c.paper_id] = counts.get(c.paper_id, 0) + 1
            if c.id in vectors:
                by_paper.setdefault(c.paper_id, []).append(vectors[c.id])
        for batch in batches([p for p in papers if p.id in by_paper], 500):
            means = [np.mean(by_paper[p.id], axis=0) for p in batch]
            self.paper_records.upsert(
                ids=[p.id for p in batch],
                embeddings=[m / (np.linalg.norm(m) or 1.0) for m in means],
                metadatas=[paper_metadata(p, counts[p.id], generation) for p in batch],
            )


def batches(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
