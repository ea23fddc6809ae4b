"""A change of search model: every stored chunk and paper embedded again, into collections that replace the old ones.

Another model's vectors cannot be mixed in (nor, at another dimension, stored). The new vectors go into new
collections that replace the old ones only when complete, so a crash half-way leaves the old index as it was. The
records keep the generation they had (their content has not changed); the write publishes the next one, so readers
reopen the replaced collections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paper_agent.chroma import chunk_from_record, content_hash, paper_from_record
from paper_agent.embed import Embedder
from paper_agent.generation import Write

if TYPE_CHECKING:
    from paper_agent.index import Index

NEW = "__reembedding"  # suffix of the collections a re-embedding fills before they replace the old ones


def reembed(index: Index, embedder: Embedder, write: Write, *, progress: bool = True) -> int:
    """Re-embed every stored chunk and paper of `index` with `embedder` inside `write`; returns the chunk count."""
    got = index.chunks.get(include=["documents", "metadatas"])
    chunks = [chunk_from_record(*record) for record in zip(got["ids"], got["documents"], got["metadatas"])]
    got = index.papers.get(include=["documents", "metadatas"])
    papers = [paper_from_record(*record) for record in zip(got["ids"], got["documents"], got["metadatas"])]
    old = (index.chunks, index.papers)
    names = (index.settings.collection, f"{index.settings.collection}__papers")
    existing = {c.name for c in index.client.list_collections()}
    for name in names:  # left over from an attempt that crashed
        if f"{name}{NEW}" in existing:
            index.client.delete_collection(f"{name}{NEW}")
    index.chunks, index.papers = (index.open(f"{name}{NEW}") for name in names)
    try:
        index.chunks.modify(metadata={"embedder": embedder.name})
        hashes = {c.id: content_hash(c, embedder.name) for c in chunks}
        generation = write.base.generation
        vectors, _ = index.writer.chunks(chunks, hashes, embedder, generation, progress)
        index.writer.papers(papers, chunks, vectors, generation)
    except BaseException:
        index.chunks, index.papers = old
        raise
    for collection, name in zip(old, names, strict=True):
        index.client.delete_collection(collection.name)
        index.client.get_collection(f"{name}{NEW}").modify(name=name)
    index.chunks, index.papers = (index.open(name) for name in names)
    write.changed = True
    return len(chunks)
