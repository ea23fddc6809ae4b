"""Query embedding while serving: concurrent searches' queries embedded together, repeated queries from a cache.

Both wrap an `Embedder` and are one themselves, so the retriever does not know they are there, and a faster
embedder underneath simply makes everything faster. Only one-text calls (a search's query) are batched or cached;
multi-text calls (ingest, re-embedding) pass straight through.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict

import numpy as np

from paper_agent.embed import Embedder


class _EmbedJob:
    def __init__(self, text: str) -> None:
        self.text = text
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class BatchingEmbedder:
    """An `Embedder` that embeds concurrent one-text calls (searches) together, in one model call.

    Each search embeds one query, from its own worker thread; 16 threads each running the model at once fight
    over the cores (and their thread teams spin against each other). So one thread takes every query waiting and
    embeds them as one batch of at most `max_batch`, while the searches' threads wait without using a core.
    With `workers` > 1, that many threads take batches in turn, so a model that runs one batch on one core (and is
    safe to call from two threads, as ONNX Runtime is) keeps every core busy.
    """

    def __init__(self, inner: Embedder, max_batch: int = 64, workers: int = 1) -> None:
        self.inner = inner
        self.name = inner.name
        self.fingerprint = inner.fingerprint  # so ingest under `serve` takes the shipped vectors too
        self.max_batch = max_batch
        self._jobs: queue.SimpleQueue[_EmbedJob] = queue.SimpleQueue()
        self.workers = workers
        self._started = False
        self._start = threading.Lock()

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        if len(texts) != 1:
            return self.inner.embed(texts, show_progress=show_progress)
        with self._start:
            if not self._started:
                for n in range(self.workers):
                    threading.Thread(target=self._run, name=f"batching-embedder-{n}", daemon=True).start()
                self._started = True
        job = _EmbedJob(texts[0])
        self._jobs.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.vector is not None  # set whenever error is not
        return job.vector.reshape(1, -1)

    def _run(self) -> None:
        while True:
            batch = [self._jobs.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            try:
                vectors = self.inner.embed([job.text for job in batch])
            except Exception as error:  # every waiting search gets the error; the worker lives on
                for job in batch:
                    job.error = error
                    job.done.set()
                continue
            for job, vector in zip(batch, vectors):
                job.vector = vector
                job.done.set()


class QueryCache:
    """The last `size` queries' vectors, least recently used evicted first; `size` 0 keeps nothing. Thread-safe.

    Keyed by the exact text: a vector depends on nothing else (the model is fixed for the process), so a hit is
    the very vector the model would have given, and the cache never goes stale when the index changes.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> np.ndarray | None:
        """The cached vector of `text` (read-only), or None; counts a hit or a miss."""
        with self._lock:
            vector = self._vectors.get(text)
            if vector is None:
                self.misses += 1
                return None
            self.hits += 1
            self._vectors.move_to_end(text)
            return vector

    def put(self, text: str, vector: np.ndarray) -> None:
        if self.size == 0:
            return
        vector = vector.copy()
        vector.flags.writeable = False  # shared by every later hit: nobody may change it in place
        with self._lock:
            self._vectors[text] = vector
            self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)

    def __len__(self) -> int:
        return len(self._vectors)


class CachingEmbedder:
    """An `Embedder` that answers a one-text call from `cache` when it can, and asks `inner` otherwise."""

    def __init__(self, inner: Embedder, cache: QueryCache) -> None:
        self.inner = inner
        self.cache = cache
        self.name = inner.name
        self.fingerprint = inner.fingerprint

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        if len(texts) != 1:
            return self.inner.embed(texts, show_progress=show_progress)
        cached = self.cache.get(texts[0])
        if cached is not None:
            return cached.reshape(1, -1)
        vectors = self.inner.embed(texts)
        self.cache.put(texts[0], vectors[0])
        return vectors
