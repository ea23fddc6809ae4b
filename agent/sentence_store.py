"""Answer sentences -> their vectors, stored at ingest so that a question embeds only itself.

The decision (agent/decide.py) reads the cosine of every sentence of each top paper's evidence passage
(agent/sources.py) to the question, under the answer-sentence model. Those sentences come from the paper's chunks, so
they are known at ingest: `SentenceStore.sync` stores the vector of every sentence an evidence passage can hold (the
sentences of each run of up to MERGED neighbouring chunks, joined as `evidence_passage` joins them) in a Chroma
collection beside the chunks, `<collection>__sentences`, one record per sentence keyed by a SHA-256 of the model name
and the sentence. At question time `vectors()` looks them up in one `get` by id (under 1 ms for 25 sentences, warm),
and `prepare_sources` embeds only the question and any miss (chunks merged that are not neighbours can make a
sentence no run holds). The stored vectors are the model's own float32 ones, so the cosines are those that
embedding the sentences with the question gives, to rounding (~1e-7).

The store is derived data, like the BM25 index: `sync` compares it with every stored chunk, adds what is missing
(from the shipped file for the bundled corpus, `agent/bundled_vectors.py`, else from the model) and deletes what no
chunk holds any more, so re-ingesting adds nothing and a removed paper's sentences go. The collection records its
model: another model's store is emptied first (its vectors may not even have the same dimension). A change of the
search model (`Index.reembed`) leaves it as it is: nothing in it depends on that model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from paper_agent.bundled_vectors import take, vector_key, vectors_path
from paper_agent.embed import Embedder
from paper_agent.sources import MERGED, join_overlapping, passage_sentences
from paper_agent.types import Chunk, Passage

log = logging.getLogger(__name__)

SHIPPED_KIND = "sentences"  # data/vectors/<model>.sentences.npz
_PAGE = 5000  # ids per Chroma read or write (its batch limit is a little above this)
_EMBED_BATCH = 512  # sentences embedded, then written, at a time: an interrupted sync keeps what it did


@dataclass
class SentenceStats:
    stored: int = 0  # sentences the stored chunks' evidence passages can hold: all in the store after a sync
    embedded: int = 0  # added, embedded by the model
    shipped: int = 0  # added from the shipped file
    deleted: int = 0  # no longer held by any chunk, removed


def sentence_key(model: str, sentence: str) -> str:
    """A sentence's record id: changes with the model or any character of the sentence."""
    return vector_key(model, sentence).hex()


def evidence_sentences(chunks: Iterable[Chunk | Passage]) -> list[str]:
    """Every sentence an evidence passage of these chunks can hold, once each: those of each run of up to MERGED
    neighbouring chunks of a paper, joined as `evidence_passage` joins them (a sentence cut by a chunk boundary is
    whole in the joined text)."""
    by_paper: dict[str, list[Chunk | Passage]] = {}
    for chunk in chunks:
        by_paper.setdefault(chunk.paper_id, []).append(chunk)
    found: dict[str, None] = {}
    for parts in by_paper.values():
        parts.sort(key=lambda c: c.position)
        for start in range(len(parts)):
            text = ""
            for chunk in parts[start : start + MERGED]:
                text = join_overlapping(text, chunk.text)
                found.update(dict.fromkeys(passage_sentences(text)))
    return list(found)


class SentenceStore:
    """Answer sentences' vectors in a Chroma collection of their own, beside the chunks (the client is the index's)."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name
        self._open: Any = None

    def _collection(self) -> Any:
        if self._open is None:
            # Inner product, not cosine: Chroma normalises vectors it stores for cosine, which moves them by ~1e-8.
            # No search ever runs on this collection; records are read by id.
            self._open = self.client.get_or_create_collection(
                self.name, configuration={"hnsw": {"space": "ip"}}, embedding_function=None
            )
        return self._open

    def reopen(self) -> None:
        """Open the collection again at the next read (another process may have replaced it)."""
        self._open = None

    def vectors(self, sentences: Sequence[str], model: str) -> dict[str, np.ndarray]:
        """The stored vectors that `model` made of those of `sentences` it holds; never raises (a miss is embedded)."""
        if not sentences:
            return {}
        keys = {sentence_key(model, s): s for s in sentences}
        try:
            collection = self._collection()
            if (collection.metadata or {}).get("embedder") != model:
                return {}
            got = collection.get(ids=list(keys), include=["embeddings"])
        except Exception as error:  # a store gone or replaced under us costs speed, never an answer
            log.warning("sentence vectors unreadable at %s (%s): embedding them", self.name, error)
            self._open = None
            return {}
        rows = np.asarray(got["embeddings"], dtype=np.float32)
        return {keys[i]: row for i, row in zip(got["ids"], rows)}

    def sync(
        self, chunks: Iterable[Passage], embedder: Embedder, vectors_dir: Path | None, *, progress: bool = True
    ) -> SentenceStats:
        """Store the vector of every sentence the chunks' evidence passages can hold, and only those. Idempotent."""
        wanted = {sentence_key(embedder.name, s): s for s in evidence_sentences(chunks)}
        collection = self._collection()
        recorded = (collection.metadata or {}).get("embedder")
        if recorded not in (None, embedder.name):
            log.info("sentence vectors at %s are %s's: replacing them with %s's", self.name, recorded, embedder.name)
            self.client.delete_collection(self.name)
            self._open = None
            collection = self._collection()
        collection.modify(metadata={"embedder": embedder.name})
        stored = self._stored_ids(collection)
        stale = sorted(stored - wanted.keys())
        for batch in _batches(stale, _PAGE):
            collection.delete(ids=batch)
        todo = {k: s for k, s in wanted.items() if k not in stored}
        shipped: dict[str, np.ndarray] = {}
        if vectors_dir is not None and todo:
            shipped = take(vectors_path(vectors_dir, embedder.name, SHIPPED_KIND), todo, embedder, {})
        for batch in _batches(list(shipped), _PAGE):
            _write(collection, batch, np.stack([shipped[k] for k in batch]))
        rest = sorted((k for k in todo if k not in shipped), key=lambda k: len(todo[k]), reverse=True)
        with tqdm(
            total=len(rest), desc="embedding sentences", unit="sentence", disable=not progress or not rest
        ) as bar:
            for batch in _batches(rest, _EMBED_BATCH):
                _write(collection, batch, embedder.embed(_texts(todo, batch)))
                bar.update(len(batch))
        return SentenceStats(stored=len(wanted), embedded=len(rest), shipped=len(shipped), deleted=len(stale))

    def count(self) -> int:
        return int(self._collection().count())

    @staticmethod
    def _stored_ids(collection: Any) -> set[str]:
        ids: set[str] = set()
        while True:
            page = collection.get(limit=_PAGE, offset=len(ids), include=[])["ids"]
            ids.update(page)
            if len(page) < _PAGE:
                return ids


def _write(collection: Any, keys: list[str], vectors: np.ndarray) -> None:
    # No documents: nothing reads them back, and Chroma's full-text index of them cost ~20% of the first ingest's sync.
    collection.upsert(ids=keys, embeddings=vectors)


def _texts(texts: dict[str, str], keys: list[str]) -> list[str]:
    return [texts[k] for k in keys]


def _batches(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
