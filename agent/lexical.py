"""Chunks -> a BM25 index (bm25s), persisted beside Chroma and kept in step with it.

The lexical index is derived data: it is rebuilt from the chunks Chroma stores (`Index.iter_chunks()`), never
from the source files, so the two cannot disagree about what a chunk says. A fingerprint of every chunk's id,
title and text is stored with it; `sync_lexical` compares it with Chroma's current chunks and rebuilds when they
differ (the corpus is small: reading every chunk takes tens of milliseconds, rebuilding under a second).

At scale (`bench/bench_scale.py`): the build turns each text straight into token ids (a word is stemmed once, not
once per occurrence), and a loaded index is memory-mapped, its BM25 matrix and its copy of the chunks
(`agent/chunk_table.py`) alike, so a worker's memory does not grow with the collection and the workers on one host
share one copy in the page cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import uuid
from array import array
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from paper_agent.chunk_table import ChunkTable, TableRows, write_table
from paper_agent.index import Index
from paper_agent.types import Passage

# Changes whenever tokenisation or scoring changes, so an index persisted by older code is rebuilt, not misread.
FORMAT = "bm25s-lucene-k1.5-b0.75-en-snowball-title/2"
_K1, _B = 1.5, 0.75  # the usual Lucene defaults; the public set is insensitive to them (0.9-1.5, 0.4-0.75)
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s's own default pattern


class _Analyzer:
    """Lower-case words of 2+ characters, English stop words dropped, Snowball-stemmed (bm25s's defaults)."""

    def __init__(self) -> None:
        import Stemmer
        from bm25s.stopwords import STOPWORDS_EN

        self.stopwords = frozenset(STOPWORDS_EN)
        self.stemmer = Stemmer.Stemmer("english")

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(text.lower()) if w not in self.stopwords]
        return self.stemmer.stemWords(words)

    def token_ids(self, texts: Iterable[str]) -> tuple[list[array], dict[str, int]]:
        """Every text as an array of token ids, and the vocabulary: what `__call__` gives, without a string per word."""
        vocab: dict[str, int] = {}
        of_word: dict[str, int] = {}  # lower-cased word -> token id, -1 for a stop word
        docs = []
        for text in texts:
            ids = array("i")
            for word in _TOKEN.findall(text.lower()):
                i = of_word.get(word)
                if i is None:
                    stop = word in self.stopwords
                    i = of_word[word] = -1 if stop else vocab.setdefault(self.stemmer.stemWord(word), len(vocab))
                if i >= 0:
                    ids.append(i)
            docs.append(ids)
        return docs, vocab


def lexical_text(passage: Passage) -> str:
    """What gets indexed: title and text, like the dense side embeds (a title word matches every chunk)."""
    return f"{passage.title}\n{passage.text}"


def fingerprint(passages: Iterable[Passage]) -> str:
    """SHA-1 of every chunk's id, title and text (order-free), plus FORMAT: equal iff the index is current."""
    digest = hashlib.sha1(FORMAT.encode("utf-8"))
    for p in sorted(passages, key=lambda p: p.chunk_id):
        digest.update("\x1e".join([p.chunk_id, p.title, p.text]).encode("utf-8") + b"\x1f")
    return digest.hexdigest()


class LexicalIndex:
    """BM25 over the stored chunks, held in memory; `query` never touches the disk."""

    def __init__(
        self,
        bm25: object | None,
        passages: Sequence[Passage],
        fingerprint: str,
        by_id: Mapping[str, Passage] | None = None,
    ) -> None:
        self.bm25 = bm25  # a bm25s.BM25, or None for an empty collection (bm25s cannot index nothing)
        self.passages = passages  # in BM25's document order; a list when built, mapped rows when loaded
        # Chroma's chunks as of the fingerprint: see Index.query
        self.by_id = by_id if by_id is not None else {p.chunk_id: p for p in passages}
        self.fingerprint = fingerprint
        self.analyze = _Analyzer()

    @classmethod
    def build(cls, passages: Iterable[Passage]) -> LexicalIndex:
        """Index the chunks' title + text."""
        import bm25s

        chunks = sorted(passages, key=lambda p: p.chunk_id)
        if not chunks:
            return cls(None, [], fingerprint([]))
        bm25 = bm25s.BM25(k1=_K1, b=_B, method="lucene")
        bm25.index(_Analyzer().token_ids(lexical_text(p) for p in chunks), show_progress=False)
        return cls(bm25, [_unscored(p) for p in chunks], fingerprint(chunks))

    def __len__(self) -> int:
        return len(self.passages)

    @property
    def chunk_ids(self) -> set[str]:
        return set(self.by_id)

    def query(self, text: str, n: int) -> list[Passage]:
        """The `n` best-scoring chunks that share at least one term with `text`, best first; score is BM25."""
        tokens = self.analyze(text)
        if self.bm25 is None or not tokens:
            return []
        ids = self.bm25.get_tokens_ids(tokens)  # type: ignore[attr-defined]
        if not ids:
            return []
        scores = self.bm25.get_scores_from_ids(ids)  # type: ignore[attr-defined]
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.lexsort((top, -scores[top]))]  # best first; ties by position, so results are deterministic
        return [_scored(self.passages[i], float(scores[i])) for i in top if scores[i] > 0]

    def document_frequency(self, token: str) -> int:
        """How many chunks contain the analysed `token` (0 for a token the index has never seen)."""
        if self.bm25 is None:
            return 0
        token_id = self.bm25.vocab_dict.get(token)  # type: ignore[attr-defined]
        indptr = self.bm25.scores["indptr"]  # type: ignore[attr-defined]  # CSC: one column of chunks per token
        if token_id is None or token_id + 1 >= len(indptr):
            return 0
        return int(indptr[token_id + 1] - indptr[token_id])

    # persistence ------------------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Write the index to `folder`, replacing what was there in one rename (readers never see half)."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f"{folder.name}.tmp-{uuid.uuid4().hex}")
        tmp.mkdir()
        try:
            if self.bm25 is not None:
                self.bm25.save(str(tmp / "bm25"), show_progress=False)  # type: ignore[attr-defined]
            write_table(tmp, self.passages)
            meta = {"format": FORMAT, "fingerprint": self.fingerprint, "chunks": len(self.passages)}
            (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            _swap_in(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex | None:
        """The index saved in `folder`, memory-mapped; None when there is none, it is damaged, or another FORMAT
        wrote it."""
        import bm25s

        meta = _read_meta(folder)
        if meta is None:
            return None
        try:
            table = ChunkTable(folder)
            bm25 = bm25s.BM25.load(str(folder / "bm25"), mmap=True, show_progress=False) if len(table) else None
        except (OSError, ValueError, TypeError):
            return None  # rebuilt from Chroma by the caller: the index is derived data
        return cls(bm25, TableRows(table), str(meta["fingerprint"]), by_id=table)


def stored_fingerprint(folder: Path) -> str | None:
    """The fingerprint of the index saved in `folder`, without loading it."""
    meta = _read_meta(folder)
    return None if meta is None else str(meta["fingerprint"])


def sync_lexical(index: Index, folder: Path) -> LexicalIndex:
    """The lexical index for what Chroma holds now: loaded from `folder` if current, else rebuilt and saved there."""
    chunks = list(index.iter_chunks())
    current = fingerprint(chunks)
    if stored_fingerprint(folder) == current:
        loaded = LexicalIndex.load(folder)
        if loaded is not None and loaded.fingerprint == current:
            return loaded
    lexical = LexicalIndex.build(chunks)
    with contextlib.suppress(OSError):  # subtle: a read-only data dir (an image) still gets a correct index in memory
        lexical.save(folder)
        # the mapped copy, so this worker holds what a worker that finds the index saved holds
        return LexicalIndex.load(folder) or lexical
    return lexical


def _read_meta(folder: Path) -> dict | None:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if meta.get("format") == FORMAT else None


def _swap_in(tmp: Path, folder: Path) -> None:
    old = folder.with_name(f"{folder.name}.old-{uuid.uuid4().hex}")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _unscored(p: Passage) -> Passage:
    return Passage(p.chunk_id, p.paper_id, p.title, p.text, 0.0, p.position, p.page)


def _scored(p: Passage, score: float) -> Passage:
    return Passage(p.chunk_id, p.paper_id, p.title, p.text, score, p.position, p.page)
