"""The lexical index's copy of the chunks on disk, read memory-mapped: a chunk by row or by id, none held in memory.

At a million chunks the texts are ~1.5 GB as Python objects; an app worker that loaded them all would be over its
memory on the texts alone, and every worker on a host would hold its own copy. Here they stay in `chunks.jsonl`
(one `Passage` as JSON per line, sorted by chunk id) with two arrays beside it: `chunks.offsets.npy`, where each
line starts (and where the last ends), and `chunks.ids.npy`, the sorted ids as fixed-width bytes. All three are
mapped, not read: the operating system's page cache holds what searches touch, once for every process on the host.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import overload

import numpy as np

from paper_agent.types import Passage

ROWS, OFFSETS, IDS = "chunks.jsonl", "chunks.offsets.npy", "chunks.ids.npy"


def write_table(folder: Path, passages: Sequence[Passage]) -> None:
    """Write `passages` (sorted by chunk id) as the three files in `folder`."""
    offsets = np.zeros(len(passages) + 1, dtype=np.int64)
    with (folder / ROWS).open("wb") as out:
        for i, p in enumerate(passages):
            out.write(json.dumps(asdict(p), ensure_ascii=False).encode("utf-8") + b"\n")
            offsets[i + 1] = out.tell()
    np.save(folder / OFFSETS, offsets)
    ids = [p.chunk_id.encode("utf-8") for p in passages]
    np.save(folder / IDS, np.array(ids, dtype=f"S{max(map(len, ids), default=1)}"))


class ChunkTable(Mapping[str, Passage]):
    """Chunks by id (a Mapping) and by row (`row(i)`), read from the mapped files on demand."""

    def __init__(self, folder: Path) -> None:
        self.offsets = np.load(folder / OFFSETS, mmap_mode="r")
        self.ids = np.load(folder / IDS, mmap_mode="r")
        if len(self.offsets) != len(self.ids) + 1:
            raise ValueError(f"{folder}: {len(self.ids)} ids but {len(self.offsets) - 1} rows")
        with (folder / ROWS).open("rb") as f:
            size = f.seek(0, 2)
            # subtle: mmap of an empty file is an error; an empty table never reads a row
            self.rows = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        if int(self.offsets[-1]) != len(self.rows):
            raise ValueError(f"{folder}: {ROWS} is {len(self.rows)} bytes, the offsets say {int(self.offsets[-1])}")

    def row(self, i: int) -> Passage:
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return Passage(**json.loads(self.rows[start:end]))

    def find(self, chunk_id: str) -> int | None:
        """The row of `chunk_id`, or None (a binary search over the mapped ids)."""
        key = chunk_id.encode("utf-8")
        if len(key) > self.ids.dtype.itemsize:
            return None
        i = int(np.searchsorted(self.ids, key))
        return i if i < len(self.ids) and self.ids[i] == key else None

    def __getitem__(self, chunk_id: str) -> Passage:
        i = self.find(chunk_id)
        if i is None:
            raise KeyError(chunk_id)
        return self.row(i)

    def __contains__(self, chunk_id: object) -> bool:
        return isinstance(chunk_id, str) and self.find(chunk_id) is not None

    def __iter__(self) -> Iterator[str]:
        return (i.decode("utf-8") for i in self.ids)

    def __len__(self) -> int:
        return len(self.ids)


class TableRows(Sequence[Passage]):
    """A ChunkTable's chunks in row order, as the sequence BM25's document numbers index."""

    def __init__(self, table: ChunkTable) -> None:
        self.table = table

    @overload
    def __getitem__(self, i: int) -> Passage: ...
    @overload
    def __getitem__(self, i: slice) -> list[Passage]: ...
    def __getitem__(self, i: int | slice) -> Passage | list[Passage]:
        if isinstance(i, slice):
            return [self.table.row(j) for j in range(*i.indices(len(self)))]
        return self.table.row(i if i >= 0 else len(self) + i)

    def __iter__(self) -> Iterator[Passage]:
        return (self.table.row(i) for i in range(len(self)))

    def __len__(self) -> int:
        return len(self.table)
