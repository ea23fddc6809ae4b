"""The search side of `bench_scale.py`, run in a fresh process: what one app worker holds and how fast it searches.

The worker opens an `Index` on the `chroma run` server and loads the saved BM25 index (memory-mapped), like
`paper-agent serve` does, and asks `Retriever.search` with each mode; the question's vector is looked up from the
generated ones instead of embedded (query embedding is measured by `bench_embed.py`). Concurrent clients are
threads in this one process, as concurrent requests are in a worker.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil

from paper_agent.index import Index
from paper_agent.lexical import LexicalIndex
from paper_agent.retrieve import Retriever
from paper_agent.settings import IndexSettings, RetrieveSettings, Settings


class LookupEmbedder:
    """The precomputed vector of each known question (the Embedder protocol, without a model)."""

    def __init__(self, name: str, texts: list[str], vectors: np.ndarray) -> None:
        self.name = name
        self.dim = vectors.shape[1]
        self.vectors = dict(zip(texts, vectors))

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def latencies(retriever: Retriever, texts: list[str], clients: int) -> dict:
    """p50/p95 of `search` over every question, `clients` at once, after one warm-up pass over a few."""
    for t in texts[:10]:
        retriever.search(t)

    def timed(text: str) -> float:
        began = time.perf_counter()
        retriever.search(text)
        return (time.perf_counter() - began) * 1000

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        ms = list(pool.map(timed, texts))
    wall = time.perf_counter() - began
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "per_s": len(texts) / wall,
    }


def recall(index: Index, vectors: np.ndarray, exact: list[list[str]], ef: int, candidates: int) -> dict:
    """Mean share of the exact top 10 that Chroma's HNSW returns at `ef_search` = `ef`, and the raw query's
    p50/p95 for the `candidates` a search asks for (one client)."""
    index.chunks.modify(configuration={"hnsw": {"ef_search": ef}})
    got = index.chunks.query(query_embeddings=vectors, n_results=10, include=[])["ids"]
    ms = []
    for v in vectors:
        began = time.perf_counter()
        index.chunks.query(query_embeddings=[v], n_results=candidates, include=["distances"])
        ms.append((time.perf_counter() - began) * 1000)
    return {
        "recall": float(np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact)])),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
    }


def query_phase(job: dict) -> dict:
    settings = Settings(data_dir=Path(job["lexical_dir"]).parent, index=IndexSettings(**job["settings"]))
    index = Index(settings, vectors_dir=None)
    began = time.perf_counter()
    lexical = LexicalIndex.load(Path(job["lexical_dir"]))
    if lexical is None:
        raise RuntimeError(f"no lexical index in {job['lexical_dir']}")
    out: dict = {"lexical_load_s": time.perf_counter() - began}
    embedder = LookupEmbedder(job["embedder"], job["texts"], job["vectors"])
    if "exact" in job:  # from a run before bench_scale measured recall itself (it restarts the server per ef)
        n = RetrieveSettings().candidates
        by_ef = {ef: recall(index, job["vectors"], job["exact"], ef, n) for ef in reversed(job["ef"])}
        out["recall_at_10"] = {ef: r["recall"] for ef, r in by_ef.items()}
        out["raw_dense_by_ef"] = by_ef
    out["latency"] = {}  # at the ef_search the server loaded the index with
    for clients in job["clients"]:
        for mode in ("dense", "lexical", "hybrid"):
            retriever = Retriever(index, embedder, RetrieveSettings(mode=mode), lexical=lexical)  # type: ignore[arg-type]
            out["latency"][f"{mode}@{clients}"] = latencies(retriever, job["texts"], clients)
    mem = psutil.Process().memory_full_info()
    out["worker_rss_gb"] = mem.rss / 1e9
    out["worker_uss_gb"] = mem.uss / 1e9  # pages no other process maps (file pages this worker alone touched count)
    # resident pages of mapped files (the BM25 matrix, the chunk table, libraries): the page cache, which every
    # worker on the host shares; the rest is this worker's own heap
    out["worker_file_gb"] = mem.shared / 1e9
    out["worker_anon_gb"] = (mem.rss - mem.shared) / 1e9
    return out
