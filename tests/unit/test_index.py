"""Chunking and the Chroma store, with a deterministic hash embedder and an embedded Chroma in a temp dir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paper_agent.chunking import chunk_paper
from paper_agent.corpus import read_paths
from paper_agent.errors import IndexBuiltWithOtherModel, IndexNotBuilt
from paper_agent.index import LEGACY_EMBEDDER, Index
from paper_agent.retrieve import Retriever
from paper_agent.settings import IndexSettings, RetrieveSettings, Settings
from paper_agent.types import Paper, paper_id_for
from tests.conftest import HashEmbedder


def _write(path: Path, papers: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"title": t, "abstract": a}) + "\n" for t, a in papers.items()))
    return path


def _ingest(index: Index, *paths: Path) -> tuple[int, int, int]:
    stats = index.ingest(read_paths(paths).papers, HashEmbedder(), progress=False)
    return stats.chunks, stats.embedded, stats.deleted


def _stored_ids(index: Index) -> set[str]:
    return set(index.chunks.get(include=[])["ids"])


LONG = " ".join(f"Sentence number {i} talks about sparse attention kernels and their speed." for i in range(60))


def test_chunks_are_token_bounded_and_positioned() -> None:
    paper = Paper(id="p1", title="T", text=LONG, source="s")
    chunks = chunk_paper(paper, IndexSettings(chunk_tokens=64, chunk_overlap=8))
    assert len(chunks) > 5
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert [c.id for c in chunks] == [f"p1:{i}" for i in range(len(chunks))]
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base")
    assert max(len(enc.encode(c.text)) for c in chunks) <= 64


def test_pdf_chunks_know_their_page() -> None:
    page_one, page_two = "First page words. " * 40, "Second page words. " * 40
    text = page_one + "\n\n" + page_two
    paper = Paper(id="p1", title="T", text=text, source="x.pdf", page_starts=((1, 0), (2, len(page_one) + 2)))
    chunks = chunk_paper(paper, IndexSettings(chunk_tokens=48, chunk_overlap=0))
    assert chunks[0].page == 1 and chunks[-1].page == 2


def test_reingest_is_idempotent(tmp_settings: Settings, tmp_path: Path) -> None:
    index = Index(tmp_settings)
    path = _write(tmp_path / "a.jsonl", {"Alpha": "About alpha particles.", "Beta": LONG})
    chunks, embedded, deleted = _ingest(index, path)
    assert embedded == chunks and deleted == 0
    before = (index.stats(), _stored_ids(index))
    assert _ingest(index, path) == (chunks, 0, 0)  # nothing re-embedded, nothing removed
    assert (index.stats(), _stored_ids(index)) == before


def test_changed_file_replaces_its_chunks(tmp_settings: Settings, tmp_path: Path) -> None:
    index = Index(tmp_settings)
    path = _write(tmp_path / "a.jsonl", {"Alpha": "About alpha particles.", "Beta": LONG, "Gamma": "Gamma rays."})
    other = _write(tmp_path / "b.jsonl", {"Delta": "Delta wings."})
    _ingest(index, path, other)
    beta_chunks = {i for i in _stored_ids(index) if i.startswith(paper_id_for("Beta"))}
    assert len(beta_chunks) > 1

    # Beta shrinks to one chunk, Gamma is gone, Alpha is unchanged; b.jsonl is not re-read.
    _write(path, {"Alpha": "About alpha particles.", "Beta": "Now a short abstract."})
    chunks, embedded, deleted = _ingest(index, path)
    ids = _stored_ids(index)
    assert (chunks, embedded, deleted) == (2, 1, len(beta_chunks))  # Beta's old chunks beyond 0, and Gamma's
    assert ids == {f"{paper_id_for(t)}:0" for t in ("Alpha", "Beta", "Delta")}
    assert index.stats() == {"papers": 3, "chunks": 3}
    assert index.get_paper(paper_id_for("Gamma")) is None
    assert index.get_paper(paper_id_for("Beta")).text == "Now a short abstract."


def test_dense_search_ranks_papers(tmp_settings: Settings, tmp_path: Path) -> None:
    index = Index(tmp_settings)
    _ingest(index, _write(tmp_path / "a.jsonl", {"Alpha": "alpha particles decay", "Beta": "beta blockers heart"}))
    hits = Retriever(index, HashEmbedder(), RetrieveSettings(mode="dense")).search("alpha particles", top_k=2)
    assert [h.title for h in hits] == ["Alpha", "Beta"]
    assert hits[0].score > hits[1].score and hits[0].passages[0].paper_id == hits[0].paper_id


def test_a_query_with_known_chunks_returns_only_those_from_the_copy(tmp_settings: Settings, tmp_path: Path) -> None:
    index = Index(tmp_settings)
    papers = {"Alpha": "alpha particles decay", "Beta": "beta blockers heart", "Gamma": "gamma rays burst"}
    _ingest(index, _write(tmp_path / "a.jsonl", papers))
    vector = HashEmbedder().embed(["alpha particles"])[0]
    read = index.query(vector, 3, HashEmbedder.name)
    assert read[0].title == "Alpha" and read[0].score > 0 and len(read) == 3
    copy = {p.chunk_id: p for p in index.iter_chunks() if p.title != "Beta"}  # as if Beta came after the copy
    # Beta is not in the generation the copy holds: left out, and the next nearest chunk takes its place.
    assert index.query(vector, 3, HashEmbedder.name, known=copy) == [p for p in read if p.title != "Beta"]
    assert index.query(vector, 1, HashEmbedder.name, known=copy) == read[:1]
    with pytest.raises(IndexNotBuilt):  # nothing published yet, though Chroma holds chunks
        index.query(vector, 3, HashEmbedder.name, known={})


def test_paper_record_round_trip(tmp_settings: Settings, tmp_path: Path) -> None:
    index = Index(tmp_settings)
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"title": "T", "abstract": "A.", "authors": ["X Y", "Z"], "year": 2020}) + "\n")
    _ingest(index, path)
    paper = index.get_paper(paper_id_for("T"))
    assert (paper.title, paper.text, paper.authors, paper.year) == ("T", "A.", ("X Y", "Z"), 2020)


# --- which model the vectors come from ------------------------------------------------------------


class WideHashEmbedder(HashEmbedder):
    """Another model: other name, other dimension."""

    name = "wide-hash-embedder"
    dim = 96


def test_index_records_its_model_and_refuses_questions_from_another(tmp_settings: Settings, tmp_path: Path) -> None:
    index = Index(tmp_settings)
    _ingest(index, _write(tmp_path / "a.jsonl", {"Alpha": "About alpha particles."}))
    assert index.built_with == HashEmbedder.name
    retriever = Retriever(index, WideHashEmbedder(), RetrieveSettings(mode="dense"))
    with pytest.raises(IndexBuiltWithOtherModel, match="embedded with hash-embedder, but search embeds with wide"):
        retriever.search("alpha")
    assert Index(tmp_settings).built_with == HashEmbedder.name  # the record is stored, not just remembered


def test_ingest_with_another_model_re_embeds_everything_and_keeps_it(tmp_settings: Settings, tmp_path: Path) -> None:
    index = Index(tmp_settings)
    _ingest(index, _write(tmp_path / "a.jsonl", {"Alpha": "About alpha particles."}))
    _ingest(index, _write(tmp_path / "b.jsonl", {"Beta": "About beta decay."}))
    before = {p.chunk_id: p.text for p in index.iter_chunks()}
    stats = index.ingest(read_paths([tmp_path / "a.jsonl"]).papers, WideHashEmbedder(), progress=False)
    # Beta came from another file, but its 64-dimensional vector cannot stay beside 96-dimensional ones:
    # it is re-embedded from what the index stores, not dropped.
    assert stats.embedded == 0 and index.stats() == {"papers": 2, "chunks": 2}
    assert {p.chunk_id: p.text for p in index.iter_chunks()} == before
    assert index.built_with == WideHashEmbedder.name
    assert {c.name for c in index.client.list_collections()} == {"papers", "papers__papers", "papers__state"}
    search = Retriever(index, WideHashEmbedder(), RetrieveSettings(mode="dense")).search
    assert search("beta decay", 1)[0].title == "Beta" and search("alpha particles", 1)[0].title == "Alpha"


def test_a_re_embedding_that_fails_half_way_leaves_the_old_index(tmp_settings: Settings, tmp_path: Path) -> None:
    class Failing(WideHashEmbedder):
        def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
            raise RuntimeError("out of memory")

    index = Index(tmp_settings)
    _ingest(index, _write(tmp_path / "a.jsonl", {"Alpha": "About alpha particles.", "Beta": "About beta decay."}))
    with pytest.raises(RuntimeError):
        index.reembed(Failing(), progress=False)
    assert index.built_with == HashEmbedder.name  # this process goes on with the old collections too
    reopened = Index(tmp_settings)
    assert reopened.built_with == HashEmbedder.name and reopened.stats() == {"papers": 2, "chunks": 2}
    assert reopened.reembed(WideHashEmbedder(), progress=False) == 2  # a retry clears the half-built copy
    assert reopened.built_with == WideHashEmbedder.name


def test_an_index_from_before_the_record_counts_as_minilm(tmp_settings: Settings) -> None:
    index = Index(tmp_settings)
    index.chunks.add(ids=["p:0"], embeddings=[[1.0] * 4], documents=["x"], metadatas=[{"paper_id": "p", "title": "T"}])
    assert index.built_with == LEGACY_EMBEDDER == "all-MiniLM-L6-v2"
    with pytest.raises(IndexBuiltWithOtherModel, match="embedded with all-MiniLM-L6-v2"):
        Retriever(index, HashEmbedder(), RetrieveSettings(mode="dense")).search("anything")


@pytest.mark.parametrize("writers", [1, 2])
def test_precomputed_vectors_are_written_in_batches_and_found(tmp_path: Path, writers: int) -> None:
    settings = Settings(data_dir=tmp_path, index=IndexSettings(write_batch_size=2, writers=writers))
    index = Index(settings, vectors_dir=None)
    paper = Paper(id="p1", title="Sparse kernels", text=LONG, source="s")
    chunks = chunk_paper(paper, IndexSettings(chunk_tokens=64, chunk_overlap=8))
    vectors = HashEmbedder().embed([c.text for c in chunks])
    index.write_vectors(chunks, vectors, "hash")
    assert _stored_ids(index) == {c.id for c in chunks} and len(chunks) > 2
    found = index.query(vectors[3], 1, "hash")
    assert found[0].chunk_id == chunks[3].id and found[0].text == chunks[3].text
    with pytest.raises(IndexBuiltWithOtherModel):
        index.query(vectors[3], 1, "another-model")


def test_hnsw_build_parameters_reach_the_collection(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, index=IndexSettings(hnsw_ef_construction=64, hnsw_max_neighbors=24))
    hnsw = Index(settings).chunks.configuration_json["hnsw"]
    assert (hnsw["ef_construction"], hnsw["max_neighbors"], hnsw["ef_search"]) == (64, 24, 1000)


def test_texts_are_stored_outside_chromas_full_text_index_and_older_records_still_read(
    tmp_settings: Settings, tmp_path: Path
) -> None:
    index = Index(tmp_settings)
    _ingest(index, _write(tmp_path / "a.jsonl", {"Alpha": "About alpha particles."}))
    chunks = index.chunks.get(include=["documents"])
    papers = index.papers.get(include=["documents"])
    assert chunks["documents"] == [None] and papers["documents"] == [None]  # nothing for Chroma's FTS to index
    assert [p.text for p in index.iter_chunks()] == ["About alpha particles."]
    paper_id = paper_id_for("Alpha")
    assert (stored := index.get_paper(paper_id)) is not None and stored.text == "About alpha particles."
    # A chunk written before texts moved into the metadata holds its text as the document: it reads the same.
    index.chunks.add(
        ids=["old:0"],
        embeddings=[HashEmbedder().embed(["older"])[0]],
        documents=["An older chunk."],
        metadatas=[{"paper_id": "old", "title": "Old", "position": 0, "source": "s", "hash": "h", "generation": 1}],
    )
    assert {p.chunk_id: p.text for p in index.iter_chunks()}["old:0"] == "An older chunk."
