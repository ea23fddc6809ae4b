"""Regenerate the vectors shipped with the bundled corpus, its chunks' and its answer sentences'.

The chunks are embedded by the search model (default backend unless --backend), the sentences of its evidence
passages by the answer-sentence model.

    .venv/bin/python scripts/bundle_vectors.py    # writes data/vectors/<default embedder>.npz and
                                                  #        data/vectors/all-MiniLM-L6-v2.sentences.npz
    .venv/bin/python scripts/bundle_vectors.py --out DIR
    .venv/bin/python scripts/bundle_vectors.py --backend torch --no-sentences   # PyTorch's file, for that backend

It uses the default model and chunker settings, not PAPER_AGENT_* overrides: a file serves the set-up it was made
with (ingest refuses it under any other). About 3 minutes on 2 AVX2 cores with onnx, 5-10 with torch; the sentences
40 s. `--backend onnx-int8` is refused: int8's vectors differ from one CPU's integer instructions to another's
(`agent/embed.py`, `fingerprint`), so no file can stand for them.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np

from paper_agent.bundled_vectors import BUNDLED_VECTORS, load, vector_key, vectors_path, write, write_vectors
from paper_agent.chunking import chunk_paper, embedding_text
from paper_agent.corpus import read_paths
from paper_agent.data import CORPUS
from paper_agent.embed import Embedder, SentenceTransformerEmbedder, fingerprint, make_embedder, sentence_settings
from paper_agent.sentence_store import SHIPPED_KIND, evidence_sentences
from paper_agent.settings import EmbedSettings, IndexSettings
from paper_agent.types import Paper


def chunk_texts(papers: Sequence[Paper], settings: IndexSettings) -> list[str]:
    """What ingest embeds for these papers, each text once, in corpus order."""
    texts = [embedding_text(c) for p in papers for c in chunk_paper(p, settings)]
    return list(dict.fromkeys(texts))


def bundle(
    papers: Sequence[Paper], embedder: Embedder, settings: IndexSettings, folder: Path, *, progress: bool = False
) -> tuple[Path, dict[str, Any], np.ndarray]:
    """Embed the papers' chunks, write the file; returns its path, header and each row's cosine to float32."""
    texts = chunk_texts(papers, settings)
    exact = embedder.embed(texts, show_progress=progress)
    path = vectors_path(folder, embedder.name)
    versions = {
        name: importlib.metadata.version(name) for name in ("sentence-transformers", "torch", "onnxruntime", "numpy")
    }
    header = write(path, texts, exact, embedder, settings, made_with=versions)
    _, keys, stored = load(path)  # read back through the same checks ingest makes
    by_key = {vector_key(embedder.name, t): v for t, v in zip(texts, exact)}
    reference = np.stack([by_key[k.tobytes()] for k in keys])
    stored = stored.astype(np.float32)
    cosines = (stored * reference).sum(axis=1) / np.linalg.norm(stored, axis=1)
    return path, header, cosines


def bundle_sentences(
    papers: Sequence[Paper], embedder: Embedder, settings: IndexSettings, folder: Path, *, progress: bool = False
) -> tuple[Path, dict[str, Any]]:
    """Embed the sentences the papers' evidence passages can hold and write them as float32 (their cosines feed the
    decision, which float16 would move by ~1e-4); returns the file's path and header."""
    sentences = evidence_sentences(c for p in papers for c in chunk_paper(p, settings))
    vectors = embedder.embed(sentences, show_progress=progress)
    path = vectors_path(folder, embedder.name, SHIPPED_KIND)
    versions = {name: importlib.metadata.version(name) for name in ("sentence-transformers", "torch", "numpy")}
    text = "sentence_store.evidence_sentences of the chunks ingest makes with the default settings"
    header = write_vectors(path, sentences, vectors, embedder, {"text": text, "made_with": versions}, dtype="<f4")
    load(path)  # read back through the same checks ingest makes
    return path, header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUNDLED_VECTORS, help="folder to write <model>.npz into")
    backends = EmbedSettings.model_fields["backend"]
    parser.add_argument(
        "--backend", choices=get_args(backends.annotation), default=backends.default, help="search model's runtime"
    )
    parser.add_argument("--no-sentences", action="store_true", help="write only the search model's chunk vectors")
    args = parser.parse_args()
    if fingerprint(EmbedSettings(backend=args.backend)) is None:
        parser.error(f"--backend {args.backend}: its vectors differ between CPUs, so no file can stand for them")

    settings = IndexSettings()
    embedder = make_embedder(EmbedSettings(backend=args.backend), batch_size=settings.embed_batch_size)
    papers = read_paths([CORPUS]).papers
    start = time.perf_counter()
    path, header, cosines = bundle(papers, embedder, settings, args.out, progress=True)
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): {header['count']} vectors of {header['model']} "
        f"(dim {header['dim']}, chunks {header['chunk_tokens']}/{header['chunk_overlap']} tokens) "
        f"in {time.perf_counter() - start:.0f} s; float16 vs float32 cosine min {cosines.min():.7f}, "
        f"mean {cosines.mean():.7f}"
    )
    if args.no_sentences:
        return
    start = time.perf_counter()
    sentence_embedder = SentenceTransformerEmbedder(sentence_settings(), batch_size=settings.embed_batch_size)
    path, header = bundle_sentences(papers, sentence_embedder, settings, args.out, progress=True)
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): {header['count']} answer sentences' vectors of "
        f"{header['model']} (dim {header['dim']}, {header['dtype']}) in {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
