"""Synthetic chunks for the scale benchmark: realistic words (so BM25 is meaningful), clustered 768-d vectors.

Each synthetic chunk belongs to a *topic*, one of the bundled corpus's 783 real chunks: its text is ~150 words,
60% drawn from that chunk's own words and 40% from the whole corpus's word frequencies (a Zipf-like background),
its title is the topic paper's title plus a serial, and its vector is the topic chunk's real all-mpnet-base-v2
vector plus noise: a 64-dimensional shared subspace (how real embeddings of one topic vary) and a little isotropic
noise, scaled so a chunk's cosine to its topic is ~0.75 and two chunks of a topic ~0.55 (what mpnet gives
related abstracts). Queries are drawn the same way, 8 words and a noisier vector.

Everything is a pure function of (seed, block): the loader, the brute-force recall check and the lexical build
each regenerate a block instead of holding a million vectors (3 GB) or texts (1.2 GB) at once.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from paper_agent.bundled_vectors import load, vector_key, vectors_path
from paper_agent.chunking import chunk_paper, embedding_text
from paper_agent.corpus import read_paths
from paper_agent.data import CORPUS, VECTORS
from paper_agent.settings import Settings
from paper_agent.types import Chunk

BLOCK = 1000  # rows per generated block: the unit of determinism
CHUNKS_PER_PAPER = 4
WORDS, TOPIC_SHARE = 150, 0.6
RANK, LOW_RANK, ISO = 64, 0.8, 0.35  # noise: |low-rank part| and |isotropic part| relative to the unit topic vector
_WORD = re.compile(r"[A-Za-z][A-Za-z-]+")


@dataclass
class Topics:
    titles: list[str]
    vectors: np.ndarray  # (783, 768) unit, float32
    bags: list[np.ndarray]  # per topic: word ids of its text, with repeats
    words: np.ndarray  # id -> word (object array)
    background: np.ndarray  # id -> probability (the corpus's word frequencies)


def bundled_topics() -> Topics:
    """The bundled corpus's chunks with their shipped vectors: the seeds every synthetic chunk grows from."""
    settings = Settings()
    chunks = [c for p in read_paths([CORPUS]).papers for c in chunk_paper(p, settings.index)]
    header, keys, vectors = load(vectors_path(VECTORS, "all-mpnet-base-v2+onnx"))
    row = {bytes(k): i for i, k in enumerate(keys)}
    rows = [row[vector_key(header["model"], embedding_text(c))] for c in chunks]
    counts: Counter[str] = Counter()
    tokens = [_WORD.findall(c.text) for c in chunks]
    for t in tokens:
        counts.update(t)
    words = sorted(counts)
    ids = {w: i for i, w in enumerate(words)}
    freq = np.array([counts[w] for w in words], dtype=np.float64)
    return Topics(
        titles=[c.title for c in chunks],
        vectors=vectors[rows].astype(np.float32),
        bags=[np.array([ids[w] for w in t], dtype=np.int32) for t in tokens],
        words=np.array(words, dtype=object),
        background=freq / freq.sum(),
    )


class SyntheticCorpus:
    """Chunk `i` of an endless synthetic collection, generated in blocks of BLOCK."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.topics = bundled_topics()
        basis = np.random.default_rng([seed, 1]).standard_normal((RANK, self.dim)).astype(np.float32)
        self.basis = basis / np.linalg.norm(basis, axis=1, keepdims=True)

    @property
    def dim(self) -> int:
        return int(self.topics.vectors.shape[1])

    @cached_property
    def _cum_background(self) -> np.ndarray:
        return np.cumsum(self.topics.background)

    def _rng(self, kind: int, block: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, kind, block])

    def _vectors(self, topic: np.ndarray, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
        n = len(topic)
        low = rng.standard_normal((n, RANK), dtype=np.float32) @ self.basis / np.sqrt(RANK)
        iso = rng.standard_normal((n, self.dim), dtype=np.float32) / np.sqrt(self.dim)
        v = self.topics.vectors[topic] + scale * (LOW_RANK * low + ISO * iso)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def _text(self, topic: int, n_words: int, rng: np.random.Generator) -> str:
        bag = self.topics.bags[topic]
        own = round(n_words * TOPIC_SHARE)
        ids = np.concatenate(
            [bag[rng.integers(0, len(bag), own)], np.searchsorted(self._cum_background, rng.random(n_words - own))]
        )
        rng.shuffle(ids)
        return " ".join(self.topics.words[np.minimum(ids, len(self.topics.words) - 1)].tolist())

    def block_vectors(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Block `block`'s topics and unit vectors (float32), without the texts (for brute force)."""
        rng = self._rng(0, block)
        topic = rng.integers(0, len(self.topics.titles), BLOCK)
        return topic, self._vectors(topic, rng)

    def block(self, block: int) -> tuple[list[Chunk], np.ndarray]:
        """Block `block`'s chunks and their vectors."""
        topic, vectors = self.block_vectors(block)
        rng = self._rng(1, block)
        chunks = []
        for j, t in enumerate(topic.tolist()):
            i = block * BLOCK + j
            paper = i // CHUNKS_PER_PAPER
            chunks.append(
                Chunk(
                    id=f"s{paper:07d}:{i % CHUNKS_PER_PAPER}",
                    paper_id=f"s{paper:07d}",
                    title=f"{self.topics.titles[t]} ({paper})",
                    position=i % CHUNKS_PER_PAPER,
                    text=self._text(t, WORDS, rng),
                    source="synthetic",
                )
            )
        return chunks, vectors

    def queries(self, n: int) -> tuple[list[str], np.ndarray]:
        """`n` held-out questions: 8 words of a topic and a vector near it (noisier than a chunk's)."""
        rng = self._rng(2, 0)
        topic = rng.integers(0, len(self.topics.titles), n)
        texts = [self._text(int(t), 8, rng) for t in topic]
        return texts, self._vectors(topic, rng, scale=1.2)
