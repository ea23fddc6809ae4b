"""Fusion and per-paper aggregation (known answers), the BM25 index round trip, and keeping it in step with Chroma."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paper_agent.corpus import read_paths
from paper_agent.errors import IndexNotBuilt
from paper_agent.index import Index
from paper_agent.lexical import FORMAT, LexicalIndex, sync_lexical
from paper_agent.retrieve import Retriever, fuse, rank_papers
from paper_agent.service import PaperAgent
from paper_agent.settings import RetrieveSettings, Settings
from paper_agent.types import Passage
from tests.conftest import HashEmbedder


def _p(chunk_id: str, score: float, text: str = "") -> Passage:
    paper_id = chunk_id.split(":")[0]
    return Passage(chunk_id, paper_id, f"Title {paper_id}", text, score, int(chunk_id.split(":")[1]))


def _ids(hits) -> list[str]:
    return [h.paper_id for h in hits]


# --- fusion ----------------------------------------------------------------------------------------


DENSE = [_p("A:0", 0.9), _p("B:0", 0.7), _p("C:0", 0.5)]
LEXICAL = [_p("C:0", 10.0), _p("B:1", 5.0), _p("D:0", 1.0)]


def test_relative_score_fusion_known_answer() -> None:
    # dense min-max: A 1, B 0.5, C 0; lexical: C 1, B 4/9, D 0.
    hits = fuse([(DENSE, 0.7), (LEXICAL, 0.3)])
    assert _ids(hits) == ["A", "B", "C", "D"]
    assert [h.score for h in hits] == pytest.approx([0.7, 0.35 + 0.3 * 4 / 9, 0.3, 0.0])
    assert _ids(fuse([(DENSE, 0.3), (LEXICAL, 0.7)])) == ["C", "B", "A", "D"]


def test_rrf_fusion_known_answer() -> None:
    # A 1/61, B 1/62 + 1/62, C 1/63 + 1/61, D 1/63 (each halved): C edges out B.
    hits = fuse([(DENSE, 0.5), (LEXICAL, 0.5)], fusion="rrf", rrf_k=60)
    assert _ids(hits) == ["C", "B", "A", "D"]
    assert hits[0].score == pytest.approx(0.5 / 63 + 0.5 / 61)
    assert hits[1].score == pytest.approx(1 / 62)


def test_a_paper_is_credited_for_its_best_chunk_in_each_retriever() -> None:
    # B's first chunk matches the meaning, its second the words: B gets both, and keeps both passages.
    hits = fuse([([_p("B:0", 0.8), _p("A:0", 0.6)], 0.5), ([_p("B:1", 4.0), _p("A:0", 2.0)], 0.5)])
    assert _ids(hits) == ["B", "A"] and hits[0].score == pytest.approx(1.0)
    assert [p.chunk_id for p in hits[0].passages] == ["B:0", "B:1"]
    assert all(p.score <= h.score + 1e-12 for h in hits for p in h.passages)


def test_one_candidate_or_one_empty_list_degenerates_gracefully() -> None:
    assert [h.score for h in fuse([([_p("A:0", 0.2)], 0.7), ([], 0.3)])] == [pytest.approx(0.7)]
    only_dense = fuse([(DENSE, 0.7), ([], 0.3)])
    assert _ids(only_dense) == ["A", "B", "C"]


def test_rank_papers_scores_a_paper_by_its_best_passage() -> None:
    hits = rank_papers([_p("A:0", 0.4), _p("B:0", 0.5), _p("A:1", 0.9)], top_k=5)
    assert _ids(hits) == ["A", "B"] and hits[0].score == 0.9
    assert [p.chunk_id for p in hits[0].passages] == ["A:1", "A:0"]


# --- the lexical index -----------------------------------------------------------------------------

CHUNKS = [
    _p("p1:0", 0.0, "We prune attention heads of large transformers without retraining."),
    _p("p2:0", 0.0, "A diffusion model generates protein backbones."),
    _p("p3:0", 0.0, "Retrieval-augmented pretraining in the RETRO style at 48B parameters."),
]


def test_bm25_finds_the_chunk_with_the_words_stemmed() -> None:
    lexical = LexicalIndex.build(CHUNKS)
    hits = lexical.query("pruning heads", 5)
    assert [p.chunk_id for p in hits] == ["p1:0"] and hits[0].score > 0
    assert lexical.query("Which of the", 5) == []  # stop words only
    assert lexical.query("zebra", 5) == []  # no known term
    assert lexical.query("Title p2", 5)[0].chunk_id == "p2:0"  # the title is indexed too


def test_lexical_index_round_trips_through_disk(tmp_path: Path) -> None:
    built = LexicalIndex.build(CHUNKS)
    built.save(tmp_path / "lexical")
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert loaded is not None and loaded.fingerprint == built.fingerprint
    assert loaded.query("RETRO pretraining", 2) == built.query("RETRO pretraining", 2)
    assert LexicalIndex.load(tmp_path / "missing") is None


def test_index_written_by_another_format_is_not_loaded(tmp_path: Path) -> None:
    LexicalIndex.build(CHUNKS).save(tmp_path / "lexical")
    meta = json.loads((tmp_path / "lexical" / "meta.json").read_text())
    (tmp_path / "lexical" / "meta.json").write_text(json.dumps({**meta, "format": FORMAT + "-old"}))
    assert LexicalIndex.load(tmp_path / "lexical") is None


def _write(path: Path, papers: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"title": t, "abstract": a}) + "\n" for t, a in papers.items()))
    return path


def _chroma_ids(index: Index) -> set[str]:
    return {p.chunk_id for p in index.iter_chunks()}


def test_sync_rebuilds_only_when_chroma_changed(tmp_settings: Settings, tmp_path: Path) -> None:
    index = Index(tmp_settings)
    papers = read_paths([_write(tmp_path / "a.jsonl", {"Alpha": "About alpha.", "Beta": "About beta."})]).papers
    index.ingest(papers, HashEmbedder(), progress=False)
    folder = tmp_path / "lexical"
    assert sync_lexical(index, folder).chunk_ids == _chroma_ids(index)
    written = (folder / "meta.json").stat().st_mtime_ns
    assert sync_lexical(index, folder).chunk_ids == _chroma_ids(index)
    assert (folder / "meta.json").stat().st_mtime_ns == written  # current: loaded, not rebuilt


def test_a_reader_loads_the_snapshot_the_writer_saved(tmp_settings: Settings, tmp_path: Path) -> None:
    agent = PaperAgent(tmp_settings, embedder=HashEmbedder())
    agent.ingest([_write(tmp_path / "a.jsonl", {"Alpha": "About alpha particles.", "Beta": "About beta decay."})])
    state = agent.live.current().state
    folder = agent.live.folder(state)
    assert state.generation == 1 and folder.parent == tmp_settings.data_dir / "lexical"
    written = (folder / "meta.json").stat().st_mtime_ns
    reader = PaperAgent(tmp_settings, embedder=HashEmbedder())
    assert reader.lexical.chunk_ids == _chroma_ids(agent.index) and reader.live.current().state == state
    assert (folder / "meta.json").stat().st_mtime_ns == written  # loaded, not rebuilt


def test_reingest_keeps_lexical_and_dense_consistent(tmp_settings: Settings, tmp_path: Path) -> None:
    agent = PaperAgent(tmp_settings, embedder=HashEmbedder())
    path = tmp_path / "a.jsonl"
    agent.ingest([_write(path, {"Alpha": "About alpha particles.", "Beta": "About beta decay."})])
    assert agent.search("beta decay", 1)[0].title == "Beta"  # builds the retriever with the BM25 index
    agent.ingest([_write(path, {"Alpha": "About alpha particles.", "Gamma": "About gamma rays and zebras."})])
    assert agent.lexical.chunk_ids == _chroma_ids(agent.index) == {p.chunk_id for p in agent.retriever.lexical.passages}
    assert agent.retriever.lexical.query("zebras", 1)[0].title == "Gamma"  # the live retriever sees the change
    reopened = PaperAgent(tmp_settings, embedder=HashEmbedder())
    assert reopened.lexical.fingerprint == agent.lexical.fingerprint


def test_text_change_under_the_same_chunk_id_is_picked_up(tmp_settings: Settings, tmp_path: Path) -> None:
    agent = PaperAgent(tmp_settings, embedder=HashEmbedder())
    path = tmp_path / "a.jsonl"
    agent.ingest([_write(path, {"Alpha": "About alpha particles."})])
    agent.ingest([_write(path, {"Alpha": "About alpha particles and quokkas."})])
    assert agent.lexical.query("quokkas", 1)[0].title == "Alpha"


# --- the retriever ---------------------------------------------------------------------------------


def test_every_mode_ranks_the_matching_paper_first(tmp_settings: Settings, tmp_path: Path) -> None:
    index = Index(tmp_settings)
    papers = {"Alpha": "About alpha particles.", "Beta": "About beta decay.", "Gamma": "About gamma rays."}
    index.ingest(read_paths([_write(tmp_path / "a.jsonl", papers)]).papers, HashEmbedder(), progress=False)
    for mode in ("dense", "lexical", "hybrid"):
        retriever = Retriever(index, HashEmbedder(), RetrieveSettings(mode=mode))  # BM25 built lazily in memory
        hits = retriever.search("beta decay", top_k=2)
        assert hits[0].title == "Beta" and hits[0].passages, mode
        assert len(retriever.passages("beta decay", n=2)) <= 2


def test_lexical_search_of_an_empty_index_says_so(tmp_settings: Settings) -> None:
    retriever = Retriever(Index(tmp_settings), HashEmbedder(), RetrieveSettings(mode="lexical"))
    with pytest.raises(IndexNotBuilt):
        retriever.search("anything")


def test_damaged_index_on_disk_is_rebuilt_from_chroma(tmp_settings: Settings, tmp_path: Path) -> None:
    agent = PaperAgent(tmp_settings, embedder=HashEmbedder())
    agent.ingest([_write(tmp_path / "a.jsonl", {"Alpha": "About alpha particles."})])
    folder = agent.live.folder(agent.live.current().state)
    (folder / "chunks.jsonl").write_text("{not json")
    assert LexicalIndex.load(folder) is None
    assert PaperAgent(tmp_settings, embedder=HashEmbedder()).lexical.query("alpha", 1)[0].title == "Alpha"
    assert LexicalIndex.load(folder) is not None  # and saved again
