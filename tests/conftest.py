"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from agent.settings import Settings


class HashEmbedder:
    """A deterministic stand-in for the embedding model: bag of hashed words, L2-normalised."""

    name = "hash-embedder"
    fingerprint: str | None = None  # no shipped vectors stand for it unless a test says so
    dim = 64

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def tmp_settings(tmp_path: Path) -> Settings:
    """Settings with the index in a fresh temporary folder."""
    return Settings(data_dir=tmp_path / "index")
