"""Query embedding while serving: batched concurrent queries and the cache of repeated ones."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from paper_agent.query_embed import BatchingEmbedder, CachingEmbedder, QueryCache
from tests.conftest import HashEmbedder


class CountingEmbedder(HashEmbedder):
    """The hash embedder, recording the size of each call; can be told to fail or to wait."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.fail = False
        self.gate = threading.Event()
        self.gate.set()

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        self.gate.wait(5)
        self.calls.append(len(texts))
        if self.fail:
            raise RuntimeError("model broke")
        return super().embed(texts)


def test_batching_embedder_gives_each_caller_its_own_vector() -> None:
    inner = CountingEmbedder()
    batching = BatchingEmbedder(inner)
    texts = [f"query number {i} about topic {i % 3}" for i in range(12)]
    inner.gate.clear()  # hold the model so that the queries pile up and go as batches
    results: dict[str, np.ndarray] = {}
    threads = [threading.Thread(target=lambda t=t: results.update({t: batching.embed([t])})) for t in texts]
    for thread in threads:
        thread.start()
    inner.gate.set()
    for thread in threads:
        thread.join(5)
    expected = HashEmbedder().embed(texts)
    for text, vector in zip(texts, expected):
        assert results[text].shape == (1, HashEmbedder.dim)
        np.testing.assert_allclose(results[text][0], vector)
    assert sum(inner.calls) == 12 and len(inner.calls) < 12, "waiting queries share model calls"


def test_batching_embedder_passes_batches_through_and_reports_errors() -> None:
    inner = CountingEmbedder()
    batching = BatchingEmbedder(inner)
    assert batching.embed(["a", "b", "c"]).shape == (3, HashEmbedder.dim) and inner.calls == [3]
    inner.fail = True
    with pytest.raises(RuntimeError, match="model broke"):
        batching.embed(["a"])
    inner.fail = False
    assert batching.embed(["a"]).shape == (1, HashEmbedder.dim), "the worker survives an error"
    assert batching.name == inner.name


def test_a_repeated_query_is_answered_from_the_cache_with_the_same_vector() -> None:
    inner = CountingEmbedder()
    caching = CachingEmbedder(inner, QueryCache(8))
    first = caching.embed(["dense retrieval"])
    again = caching.embed(["dense retrieval"])
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(again, HashEmbedder().embed(["dense retrieval"]))
    assert inner.calls == [1], "the model saw the query once"
    assert (caching.cache.hits, caching.cache.misses) == (1, 1)
    assert caching.embed(["Dense retrieval"]).shape == (1, HashEmbedder.dim) and inner.calls == [1, 1], "exact text"
    with pytest.raises(ValueError):
        again[0, 0] = 5.0  # a hit is shared: read-only, so no caller can change it for the next


def test_the_cache_evicts_the_least_recently_used_query() -> None:
    cache = QueryCache(2)
    for text in ("a", "b"):
        cache.put(text, np.array([1.0]))
    assert cache.get("a") is not None  # "a" is now the most recently used, so "b" goes first
    cache.put("c", np.array([2.0]))
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None


def test_a_cache_of_size_zero_keeps_nothing_and_batches_pass_through() -> None:
    inner = CountingEmbedder()
    caching = CachingEmbedder(inner, QueryCache(0))
    caching.embed(["q"])
    caching.embed(["q"])
    assert inner.calls == [1, 1] and len(caching.cache) == 0 and caching.cache.misses == 2
    assert caching.embed(["x", "y"]).shape == (2, HashEmbedder.dim) and inner.calls == [1, 1, 2]
    assert caching.cache.misses == 2, "ingest's batches are neither looked up nor kept"


def test_a_failed_embedding_is_not_cached() -> None:
    inner = CountingEmbedder()
    caching = CachingEmbedder(inner, QueryCache(4))
    inner.fail = True
    with pytest.raises(RuntimeError):
        caching.embed(["q"])
    inner.fail = False
    assert caching.embed(["q"]).shape == (1, HashEmbedder.dim) and len(caching.cache) == 1


def test_two_workers_embed_two_batches_at_once() -> None:
    """With 2 workers, a second batch is embedded while the first is still in the model."""
    inside, release = threading.Semaphore(0), threading.Event()

    class Blocking(HashEmbedder):
        def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
            inside.release()
            release.wait(5)
            return super().embed(texts)

    batching = BatchingEmbedder(Blocking(), workers=2)
    results: dict[str, np.ndarray] = {}
    threads = [threading.Thread(target=lambda t=t: results.update({t: batching.embed([t])})) for t in ("a", "b")]
    threads[0].start()
    assert inside.acquire(timeout=5)  # the first query is in the model, holding one worker
    threads[1].start()
    assert inside.acquire(timeout=5), "the second worker took the next query while the first was busy"
    release.set()
    for thread in threads:
        thread.join(5)
    np.testing.assert_allclose(results["b"][0], HashEmbedder().embed(["b"])[0])
