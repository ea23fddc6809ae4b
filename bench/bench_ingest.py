"""Ingest time for the bundled corpus vs a raw sentence-transformers encode of the same chunk texts.

    .venv/bin/python bench/bench_ingest.py [--repeat 3]

Both sides use the same loaded model. The ingest side is the whole job on a fresh embedded Chroma: read
the listing pages, chunk, embed, write chunks and paper records. The raw side is one `encode()` call.
Ingest embeds every chunk here (the shipped vectors are set aside); a last line times it with them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import agent  # noqa: F401  (offline environment first)
from agent.corpus import read_paths
from agent.index import Index, chunk_paper, embedding_text
from agent.service import PaperAgent
from agent.settings import BUNDLED_CORPUS, Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    settings = Settings()
    embedder = PaperAgent(settings).embedder
    papers = read_paths([BUNDLED_CORPUS]).papers
    texts = [embedding_text(c) for p in papers for c in chunk_paper(p, settings.index)]
    embedder.embed(texts[:64])  # warm-up: first call pays one-off allocation costs

    raw, ours, shipped = [], [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        embedder.model.encode(texts, batch_size=settings.index.embed_batch_size, normalize_embeddings=True)
        raw.append(time.perf_counter() - start)

        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            fresh = Settings(data_dir=Path(tmp))
            Index(fresh, vectors_dir=None).ingest(read_paths([BUNDLED_CORPUS]).papers, embedder, progress=False)
            ours.append(time.perf_counter() - start)

        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            Index(Settings(data_dir=Path(tmp))).ingest(read_paths([BUNDLED_CORPUS]).papers, embedder, progress=False)
            shipped.append(time.perf_counter() - start)

    raw_med, ours_med = statistics.median(raw), statistics.median(ours)
    print(f"corpus: {len(papers)} papers, {len(texts)} chunks; {args.repeat} runs each, medians")
    print(f"raw encode (sentence-transformers) : {raw_med:6.2f} s  ({len(texts) / raw_med:5.1f} chunks/s)")
    print(f"paper-agent ingest (fresh Chroma)  : {ours_med:6.2f} s  ({len(texts) / ours_med:5.1f} chunks/s)")
    print(f"ratio ingest / raw                 : {ours_med / raw_med:6.2f}x  (goal <= 1.25x)")
    print(f"ingest from the shipped vectors    : {statistics.median(shipped):6.2f} s")


if __name__ == "__main__":
    main()
