"""Vectors shipped beside the bundled corpus, so that a first ingest does not re-embed what was embedded before.

`data/vectors/<model>.npz` holds, for each chunk of the bundled corpus, the unit vector the search model makes of
exactly the text ingest embeds (`index.embedding_text`), as float16, keyed by a SHA-256 of the model name and that
text. Its header names the model, the embedder's fingerprint (weights hash, backend), the dimension and the chunker
settings, and carries a SHA-256 over the header, keys and vectors. A vector is taken only when all of that matches
this ingest; anything else (no file, another model, other chunk sizes, a damaged file) is logged and the chunks are
embedded as before. `python scripts/bundle_vectors.py` regenerates the file.

`data/vectors/<answer-sentence model>.sentences.npz` is the same format for the answer sentences
(`agent/sentence_store.py`): keyed by model and sentence, float32 (their cosines feed the decision, which must not
move), and matched on model and fingerprint alone (a sentence's vector does not depend on how it was chunked).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from paper_agent.data import VECTORS as BUNDLED_VECTORS
from paper_agent.embed import Embedder
from paper_agent.settings import IndexSettings

log = logging.getLogger(__name__)

FORMAT = 1


def vectors_path(folder: Path, model: str, kind: str = "") -> Path:
    """The file of `model`'s vectors: chunks (kind "") or answer sentences (kind "sentences")."""
    return folder / (f"{model}.{kind}.npz" if kind else f"{model}.npz")


def vector_key(model: str, text: str) -> bytes:
    """The row key: changes with the model or any character of the embedded text (title and chunk)."""
    return hashlib.sha256(f"{model}\x1f{text}".encode()).digest()


def shipped_vectors(
    texts: Mapping[str, str], embedder: Embedder, settings: IndexSettings, folder: Path | None = BUNDLED_VECTORS
) -> dict[str, np.ndarray]:
    """The shipped unit vectors (float32) for those of `texts` (id -> embedded text) the file holds; never raises.

    An empty result means: embed them all."""
    if folder is None or not texts:
        return {}
    return take(vectors_path(folder, embedder.name), texts, embedder, _chunker(settings))


def _chunker(settings: IndexSettings) -> dict[str, Any]:
    """Header fields a chunk file must share with this ingest: its chunks are only ours if cut the same way."""
    return {"chunk_tokens": settings.chunk_tokens, "chunk_overlap": settings.chunk_overlap}


def take(path: Path, texts: Mapping[str, str], embedder: Embedder, fields: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The unit vectors (float32) `path` holds for those of `texts` (id -> text), if its header names this embedder
    and `fields`; never raises."""
    if not path.is_file():
        log.info("no shipped vectors for %s at %s: embedding", embedder.name, path)
        return {}
    try:
        header, keys, vectors = load(path)
        refusal = _mismatch(header, embedder, fields)
    except Exception as error:  # a damaged file of any kind means embedding, never a failed ingest
        log.warning("shipped vectors %s are unusable (%s): embedding instead", path, error)
        return {}
    if refusal:
        log.info("shipped vectors %s do not apply (%s): embedding", path, refusal)
        return {}
    rows = {key.tobytes(): row for row, key in enumerate(keys)}
    found = {i: rows[k] for i, text in texts.items() if (k := vector_key(embedder.name, text)) in rows}
    if not found:
        return {}
    chosen = vectors[list(found.values())].astype(np.float32)
    if vectors.dtype == np.float16:
        # float16 rounding nudges the norm off 1; the embedder's own vectors are unit length, so these are made so.
        chosen /= np.linalg.norm(chosen, axis=1, keepdims=True)
    log.info("took %d of %d vectors from %s", len(found), len(texts), path)
    return dict(zip(found, chosen))


def _mismatch(header: dict[str, Any], embedder: Embedder, fields: Mapping[str, Any]) -> str | None:
    """Why the file's vectors are not what this embedder would make of these texts (None: they are)."""
    fingerprint = embedder.fingerprint
    if fingerprint is None:
        return f"the embedder {embedder.name} has no fingerprint, so nothing made elsewhere can stand for its vectors"
    wanted = {"model": embedder.name, "fingerprint": fingerprint, **fields}
    differ = [f"{k}: file {header.get(k)!r}, here {v!r}" for k, v in wanted.items() if header.get(k) != v]
    return "; ".join(differ) or None


def load(path: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The file's header, keys (n x 32 bytes) and vectors (float16, or float32 where the header says so), checked
    whole; raises ValueError if not sound."""
    with np.load(path, allow_pickle=False) as npz:
        header = json.loads(str(npz["header"]))
        keys, vectors = npz["keys"], npz["vectors"]
    if header.get("format") != FORMAT:
        raise ValueError(f"format {header.get('format')!r}, this code reads {FORMAT}")
    n, dim, dtype = header["count"], header["dim"], np.dtype(header.get("dtype", "float16"))
    if dtype not in (np.float16, np.float32):
        raise ValueError(f"dtype {dtype}, this code reads float16 and float32")
    if keys.dtype != np.uint8 or keys.shape != (n, 32) or vectors.dtype != dtype or vectors.shape != (n, dim):
        raise ValueError(f"arrays {keys.dtype}{keys.shape} / {vectors.dtype}{vectors.shape} do not fit the header")
    if _digest(header, keys, vectors) != header.get("sha256"):
        raise ValueError("SHA-256 of the header, keys and vectors does not match the one recorded")
    if not np.isfinite(vectors).all():
        raise ValueError("vectors that are not finite")
    return header, keys, vectors


def write(
    path: Path,
    texts: list[str],
    vectors: np.ndarray,
    embedder: Embedder,
    settings: IndexSettings,
    **extra: Any,
) -> dict[str, Any]:
    """Write chunk texts' unit vectors (as `embedder` made them) to `path` as float16; returns the header."""
    text = "index.embedding_text(chunk): title, newline, chunk text"
    return write_vectors(path, texts, vectors, embedder, {**_chunker(settings), "text": text, **extra})


def write_vectors(
    path: Path, texts: list[str], vectors: np.ndarray, embedder: Embedder, fields: dict[str, Any], dtype: str = "<f2"
) -> dict[str, Any]:
    """Write `texts`' unit vectors to `path` with `fields` in the header; returns the header. Replaces atomically."""
    fingerprint = embedder.fingerprint
    if fingerprint is None:
        raise ValueError(f"the embedder {embedder.name} has no fingerprint: its vectors could never be matched")
    if not np.isfinite(vectors).all() or not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3):
        raise ValueError("vectors to ship must be finite and of unit length, as the embedder returns them")
    by_key = {vector_key(embedder.name, t): v for t, v in zip(texts, vectors, strict=True)}
    order = sorted(by_key)  # a stable file for the same chunks, whatever order they came in
    keys = np.frombuffer(b"".join(order), dtype=np.uint8).reshape(len(order), 32)
    packed = np.stack([by_key[k] for k in order]).astype(dtype)
    header: dict[str, Any] = {
        "format": FORMAT,
        "model": embedder.name,
        "fingerprint": fingerprint,
        "dim": int(packed.shape[1]),
        "count": len(order),
        **fields,
    }
    if packed.dtype != np.float16:  # a file without the field is float16, as every file was before it
        header["dtype"] = str(packed.dtype)
    header["sha256"] = _digest(header, keys, packed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as out:
        np.savez(out, header=np.array(json.dumps(header, sort_keys=True)), keys=keys, vectors=packed)
    os.replace(partial, path)
    return header


def _digest(header: dict[str, Any], keys: np.ndarray, vectors: np.ndarray) -> str:
    """SHA-256 over every header field but itself, the keys and the vectors (little-endian)."""
    digest = hashlib.sha256(json.dumps({k: v for k, v in header.items() if k != "sha256"}, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(keys).tobytes())
    digest.update(np.ascontiguousarray(vectors, dtype=vectors.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()
