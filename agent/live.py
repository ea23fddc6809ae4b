"""What a long-running reader answers from: the committed index generation and its BM25 snapshot, dense and lexical
together, followed as other processes add or remove papers.

A reader (the app, or any `PaperAgent`) checks the generation record (`agent/generation.py`) at most every
`index.refresh_s` seconds, on the first search after that: one Chroma `get`. When another process has published a new
generation, the reader reloads: it reopens an embedded store (whose graphs never see another process's additions)
under a shared lock it takes only if no writer holds it — it never waits; a writer still publishing is caught at the
next check — and loads that generation's BM25 snapshot, `data_dir/lexical/<store>-<generation>/`, which the writer
saved whole (temporary folder, then one rename) before publishing. A generation no snapshot was saved for (a writer
that did not build one, or a reader on another machine sharing the Chroma server) is built from Chroma's chunks of
that generation and saved by the first reader that needs it. Dense search keeps only the snapshot's chunks
(`Index.query(known=...)`), so an ingest in progress, or one that crashed, is in neither index, and a published one
is in both.
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from paper_agent.generation import IndexState, Write
from paper_agent.index import Index
from paper_agent.lexical import LexicalIndex, sync_lexical

_SNAPSHOT = re.compile(r"^([0-9a-f]{12})-(\d+)$")
_BEFORE_GENERATIONS = ("meta.json", "chunks.jsonl", "bm25")  # the single snapshot kept in `lexical/` before


@dataclass(frozen=True)
class Snapshot:
    """One generation as a reader sees it: its state record and its BM25 index (which also lists its chunks)."""

    state: IndexState
    lexical: LexicalIndex


class LiveIndex:
    """The snapshot to answer from, for one `Index`, reloaded when the generation moves."""

    def __init__(self, index: Index, root: Path, refresh_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.index = index
        self.root = root  # data_dir/lexical
        self.refresh_s = refresh_s
        self.clock = clock
        self._snapshot: Snapshot | None = None
        self._checked = -math.inf
        self._lock = threading.Lock()

    def current(self) -> Snapshot:
        """The snapshot to answer from; first, at most every `refresh_s`, a check whether the generation moved."""
        snapshot = self._snapshot
        if snapshot is not None and self.clock() - self._checked < self.refresh_s:
            return snapshot
        lock = self.index.generations.lock
        if snapshot is None:
            with self._lock:  # the first load: every caller waits for it
                if self._snapshot is None:
                    self._checked = self.clock()
                    with lock.shared_if_free() as free:  # a writer half-way: load what is published, as it is
                        self._snapshot = self._load(self.index.generations.current(), reload=free)
                return self._snapshot
        if not self._lock.acquire(blocking=False):
            return snapshot  # another thread is checking: answer from what is loaded
        try:
            self._checked = self.clock()
            state = self.index.generations.current()
            if state.key() != snapshot.state.key():
                with lock.shared_if_free() as free:
                    if free:  # else a writer is still publishing: the next check catches it
                        snapshot = self._snapshot = self._load(state, reload=True)
            return snapshot
        finally:
            self._lock.release()

    def check(self) -> Snapshot:
        """The snapshot of the generation published now (e.g. right after this process wrote)."""
        self._checked = -math.inf
        return self.current()

    def prepare(self, write: Write) -> None:
        """Save the BM25 snapshot of the generation `write` is about to publish (a `Write.on_commit` hook: it runs
        under the write lock, with every chunk of that generation stored), so no reader has to build it."""
        lexical = LexicalIndex.build(self.index.iter_chunks())
        with contextlib.suppress(OSError):  # a read-only data dir: readers build it in memory
            lexical.save(self.folder(IndexState(write.generation, write.store)))

    def folder(self, state: IndexState) -> Path:
        if state.generation == 0:  # nothing published under generations: checked against Chroma's chunks as before
            return self.root / "unversioned"
        return self.root / f"{state.store[:12]}-{state.generation}"

    def _load(self, state: IndexState, *, reload: bool) -> Snapshot:
        """`state`'s snapshot; with `reload` (the shared lock held, so no writer is half-way) the store is reloaded
        first and the generation read again (it may have moved on since `state`)."""
        if reload:
            self.index.refresh()
            state = self.index.generations.current()
        lexical = self._lexical(state)
        self._prune(state)
        return Snapshot(state, lexical)

    def _lexical(self, state: IndexState) -> LexicalIndex:
        folder = self.folder(state)
        if state.generation == 0:
            return sync_lexical(self.index, folder)
        loaded = LexicalIndex.load(folder)
        if loaded is not None:
            return loaded
        lexical = LexicalIndex.build(self.index.chunks_at(state.generation))
        with contextlib.suppress(OSError):
            lexical.save(folder)
        return lexical

    def _prune(self, state: IndexState) -> None:
        """Remove snapshots two or more generations old (a reader loads a snapshot once, into memory)."""
        with contextlib.suppress(OSError):
            for path in self.root.iterdir():
                match = _SNAPSHOT.match(path.name)
                stale = match is not None and match[1] == state.store[:12] and int(match[2]) < state.generation - 1
                if not stale and not (state.generation > 0 and path.name in _BEFORE_GENERATIONS):
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
