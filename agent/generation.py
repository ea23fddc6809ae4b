"""The index generation: one counter every process sees, moved only after a write has fully committed; and the lock
that makes writers to one data dir take turns.

Why (measured with chromadb 1.5.9 and an embedded `PersistentClient`; chroma-core/chroma#3792 reports the same):
another process's writes reach an open client's SQLite reads (`count`, `get`) at once, but never its vector search,
which keeps the HNSW graph it loaded; reopening a client in the same process reuses that cached state. Worse, a client
holding a stale graph that then *writes* loses the other process's records for good: after process B added 3,000
vectors and A (opened before) added 1,500, `count()` said 4,510 and a fresh process's nearest-neighbour search found
none of B's 3,000. Rebuilding the client's Rust bindings before the write (`chroma.refresh_client`, 5-15 ms) lost none.
A process that only reads writes nothing to the store (files and SQLite compared before and after).

So: every write runs inside `Generations.writing()`, which takes an exclusive `fcntl` lock on `data_dir/index.lock`,
has the index reload what is on disk, rolls back what a crashed write left (records stamped with a generation above
the current one), and — only if the block changed something and raised nothing — records the next generation in
Chroma itself (`<collection>__state`, one record), so readers in other processes, or on other machines sharing a
Chroma server, see it with one cheap `get`. Records a write adds carry the generation they will belong to, so a
reader can tell an addition in progress (or a crashed one) from the generation it answers from.

With a Chroma server (`index.chroma_url`), the lock still serialises writers that share this data dir; writers on
other machines are not serialised by it (Chroma has no transaction or compare-and-set to build one on). Their upserts
are idempotent, but two concurrent publishers may publish the same generation number.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_ID = "generation"  # the one record of the state collection


@dataclass(frozen=True)
class IndexState:
    """What readers compare: the committed generation of one store (0: none recorded yet, e.g. an index from before)."""

    generation: int = 0
    store: str = ""  # random id made with the first record: a reset store's generation 1 is not the old store's
    chunks: int = 0
    papers: int = 0

    def key(self) -> tuple[str, int]:
        return (self.store, self.generation)


@dataclass
class Write:
    """A write in progress: the generation its records are stamped with, and whether it changed anything."""

    base: IndexState  # the generation it started from
    store: str
    changed: bool = False
    on_commit: list[Callable[[Write], None]] = field(default_factory=list)  # run under the lock, before the bump

    @property
    def generation(self) -> int:
        return self.base.generation + 1


class StateRecord:
    """The generation record, in a collection of its own beside the chunks (Chroma stores no record without a vector:
    it gets a one-dimensional placeholder)."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name
        self._open: Any = None

    def _collection(self) -> Any:
        if self._open is None:
            self._open = self.client.get_or_create_collection(self.name, embedding_function=None)
        return self._open

    def reopen(self) -> None:
        self._open = None

    def read(self) -> IndexState:
        got = self._collection().get(ids=[STATE_ID], include=["metadatas"])
        if not got["ids"]:
            return IndexState()
        meta = got["metadatas"][0]
        return IndexState(int(meta["generation"]), str(meta["store"]), int(meta["chunks"]), int(meta["papers"]))

    def write(self, state: IndexState) -> None:
        meta = {
            "generation": state.generation,
            "store": state.store,
            "chunks": state.chunks,
            "papers": state.papers,
            "written_at": time.time(),
            "writer": f"{os.uname().nodename}:{os.getpid()}",
        }
        self._collection().upsert(ids=[STATE_ID], embeddings=[[1.0]], metadatas=[meta])


class FileLock:
    """An `fcntl` lock on one file: exclusive for writers (they wait), shared for readers (they never wait).

    subtle: `flock` belongs to an open file, so every acquisition opens the file anew; two threads of one process then
    exclude each other just as two processes do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def shared_if_free(self) -> Iterator[bool]:
        """Hold a shared lock for the block if no writer holds the lock now; yields whether it got it. A data dir that
        cannot hold a lock file (read-only) has no writers: the block runs as if it got it."""
        try:
            handle = self.path.open("a")
        except OSError:
            yield True
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class Generations:
    """One index's generation record and its writers' lock."""

    def __init__(self, record: StateRecord, lock: FileLock) -> None:
        self.record = record
        self.lock = lock
        self._open = threading.local()  # the write this thread has open, so a nested `writing()` joins it

    def current(self) -> IndexState:
        """The committed generation, as every process sees it (one Chroma read)."""
        return self.record.read()

    @contextlib.contextmanager
    def writing(
        self,
        refresh: Callable[[], None],
        rollback: Callable[[int], int],
        counts: Callable[[], dict[str, int]],
    ) -> Iterator[Write]:
        """Lock, `refresh` the caller's view of the store, `rollback` records above the committed generation, run the
        block, and publish the next generation if it changed anything. Nested in the same thread, joins the open write.
        """
        joined: Write | None = getattr(self._open, "write", None)
        if joined is not None:
            yield joined
            return
        with self.lock.exclusive():
            refresh()  # another process may have written since this one loaded the store: never write over it
            self.record.reopen()
            base = self.record.read()
            rollback(base.generation)  # leftovers of a write that crashed before it published
            write = Write(base, base.store or uuid.uuid4().hex)
            self._open.write = write
            try:
                yield write
            finally:
                self._open.write = None
            if write.changed:
                for hook in write.on_commit:
                    hook(write)
                size = counts()
                self.record.write(IndexState(write.generation, write.store, size["chunks"], size["papers"]))
