"""The search model on each backend, side by side: query latency, chunk throughput, and agreement with PyTorch.

    .venv/bin/python bench/bench_embed.py [--backends torch,onnx,onnx-int8] [--repeat 3] [--chunks 783]

The raw baseline, measured in the same run, is sentence-transformers' own `encode` on PyTorch fp32 (what the
`torch` backend wraps). For each backend: one question at a time (the public set's 60 questions) on 1 thread,
as `paper-agent serve` runs it, and on every core; then the bundled corpus's chunk texts in each backend's own
batches on every core; and the cosine of each chunk's vector to PyTorch fp32's. Medians over `--repeat` passes.
The first use of an ONNX backend exports the model once (~15 s), before any timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from paper_agent import offline  # noqa: F401  (offline environment first)
from paper_agent.chunking import chunk_paper, embedding_text
from paper_agent.corpus import read_paths
from paper_agent.data import CORPUS
from paper_agent.embed import Embedder, make_embedder, use_threads
from paper_agent.eval.dataset import DEFAULT_QUESTIONS
from paper_agent.settings import EmbedSettings, IndexSettings

QUESTIONS = DEFAULT_QUESTIONS


def median_ms(function: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs) * 1000


def per_query_ms(embedder: Embedder, questions: list[str], repeat: int) -> float:
    """Median milliseconds to embed one question, over all questions and passes."""
    times = []
    for _ in range(repeat):
        for question in questions:
            start = time.perf_counter()
            embedder.embed([question])
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="torch,onnx,onnx-int8")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=None, help="embed only the first N chunk texts")
    args = parser.parse_args()

    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines() if line.strip()]
    settings = IndexSettings()
    texts = [embedding_text(c) for p in read_paths([CORPUS]).papers for c in chunk_paper(p, settings)]
    texts = texts[: args.chunks]
    cores = os.cpu_count() or 1

    raw = make_embedder(EmbedSettings(backend="torch"), batch_size=settings.embed_batch_size)
    model = raw.model  # type: ignore[attr-defined]  # sentence-transformers itself, not our wrapper
    encode = lambda batch: model.encode(batch, batch_size=settings.embed_batch_size, normalize_embeddings=True)  # noqa: E731
    reference = np.asarray(encode(texts), dtype=np.float32)
    use_threads(1, raw)
    raw_query = per_query_ms(_Raw(encode), questions, args.repeat)
    use_threads(cores, raw)
    raw_chunks = len(texts) / (median_ms(lambda: encode(texts), args.repeat) / 1000)

    print(f"{len(questions)} questions one at a time; {len(texts)} chunk texts in batches; {args.repeat} passes")
    print(f"raw encode (sentence-transformers, PyTorch fp32): {raw_query:.1f} ms a query, {raw_chunks:.2f} chunks/s")
    print("backend    | query ms, 1 thread | query ms, all cores | chunks/s | ×raw query | ×raw chunks | cos to fp32")
    for backend in args.backends.split(","):
        embedder = make_embedder(EmbedSettings(backend=backend), batch_size=settings.embed_batch_size)
        embedder.embed(texts[:8])  # warm-up
        use_threads(1, embedder)
        one = per_query_ms(embedder, questions, args.repeat)
        use_threads(cores, embedder)
        every = per_query_ms(embedder, questions, args.repeat)
        vectors = embedder.embed(texts)
        chunks = len(texts) / (median_ms(partial(embedder.embed, texts), args.repeat) / 1000)
        cosines = (vectors * reference).sum(axis=1)
        print(
            f"{backend:<10} | {one:18.1f} | {every:19.1f} | {chunks:8.2f} | {raw_query / one:9.2f}x |"
            f" {chunks / raw_chunks:10.2f}x | min {cosines.min():.5f}, mean {cosines.mean():.5f}"
        )


class _Raw:
    """sentence-transformers' encode as an `Embedder`, for timing one question at a time."""

    name = "raw"
    fingerprint: str | None = None

    def __init__(self, encode: Callable[[list[str]], object]) -> None:
        self.encode = encode

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        return np.asarray(self.encode(texts))


if __name__ == "__main__":
    main()
