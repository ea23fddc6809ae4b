"""Ingest of the bundled corpus on each embedding backend vs a raw PyTorch fp32 encode of the same chunk texts.

    .venv/bin/python bench/bench_ingest.py [--backends torch,onnx,onnx-int8] [--repeat 1]

The raw side, measured in the same run, is one sentence-transformers `encode()` call on PyTorch fp32 (the model
as it comes). The ingest side is the whole job on a fresh embedded Chroma for each backend: read the listing pages,
chunk, embed every chunk (the shipped vectors set aside), write chunks and paper records. A last line times the
default set-up's ingest with the shipped vectors. Medians over `--repeat` runs; about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from paper_agent import offline  # noqa: F401  (offline environment first)
from paper_agent.chunking import chunk_paper, embedding_text
from paper_agent.corpus import read_paths
from paper_agent.data import CORPUS
from paper_agent.embed import Embedder, make_embedder
from paper_agent.index import Index
from paper_agent.settings import EmbedSettings, Settings


def seconds(job: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        job()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def ingest(embedder: Embedder, *, shipped: bool) -> None:
    """The bundled corpus into a fresh Chroma, embedding every chunk unless `shipped` vectors may stand in."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        index = Index(settings) if shipped else Index(settings, vectors_dir=None)
        index.ingest(read_paths([CORPUS]).papers, embedder, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="torch,onnx,onnx-int8")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    settings = Settings()
    batch = settings.index.embed_batch_size
    papers = read_paths([CORPUS]).papers
    texts = [embedding_text(c) for p in papers for c in chunk_paper(p, settings.index)]
    model = make_embedder(EmbedSettings(backend="torch"), batch).model  # type: ignore[attr-defined]
    model.encode(texts[:64], batch_size=batch)  # warm-up: first call pays one-off allocation costs
    raw = seconds(lambda: model.encode(texts, batch_size=batch, normalize_embeddings=True), args.repeat)

    print(f"corpus: {len(papers)} papers, {len(texts)} chunks; {args.repeat} run(s) each, medians")
    print(f"raw encode (sentence-transformers, PyTorch fp32): {raw:6.1f} s  ({len(texts) / raw:5.2f} chunks/s)")
    for backend in args.backends.split(","):
        embedder = make_embedder(EmbedSettings(backend=backend), batch)
        embedder.embed(texts[:64])  # warm-up (and, the first time, the ONNX export)
        took = seconds(partial(ingest, embedder, shipped=False), args.repeat)
        print(
            f"paper-agent ingest, {backend:<9} : {took:6.1f} s  ({len(texts) / took:5.2f} chunks/s)"
            f"  {raw / took:5.2f}x the raw encode's speed"
        )
    default = make_embedder(settings.embed, batch)
    shipped = seconds(lambda: ingest(default, shipped=True), args.repeat)
    print(f"ingest from the shipped vectors ({default.name}): {shipped:6.1f} s")


if __name__ == "__main__":
    main()
