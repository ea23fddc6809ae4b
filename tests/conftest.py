"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from paper_agent.corpus import read_paths
from paper_agent.settings import Settings
from paper_agent.types import Paper


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


class RecordingEmbedder(HashEmbedder):
    """The hash embedder with a fingerprint (so a shipped file can stand for it), recording every text it embeds."""

    fingerprint = "hash/test; v1"

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        self.embedded.extend(texts)
        return super().embed(texts)


def papers_from(tmp_path: Path, papers: dict[str, str]) -> list[Paper]:
    """`papers` (title -> abstract) as ingest reads them, through a JSONL file in `tmp_path`."""
    path = tmp_path / "papers.jsonl"
    path.write_text("".join(json.dumps({"title": t, "abstract": a}) + "\n" for t, a in papers.items()))
    return read_paths([path]).papers


@pytest.fixture(scope="session", autouse=True)
def private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Nothing a test builds with default settings lands in the user's own data folder or the checkout's."""
    folder = tmp_path_factory.mktemp("default-data-dir")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PAPER_AGENT_DATA_DIR", str(folder))
        yield folder


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def tmp_settings(tmp_path: Path) -> Settings:
    """Settings with the index in a fresh temporary folder."""
    return Settings(data_dir=tmp_path / "index")
