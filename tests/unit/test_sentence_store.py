"""Answer sentences' vectors stored at ingest: the same sources as embedding them, only misses embedded, in step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paper_agent.chunking import chunk_paper
from paper_agent.index import Index
from paper_agent.sentence_store import SHIPPED_KIND, evidence_sentences, sentence_key
from paper_agent.service import PaperAgent
from paper_agent.settings import IndexSettings, Settings
from paper_agent.sources import evidence_passage, prepare_sources
from paper_agent.types import Chunk, PaperHit, Passage
from scripts.bundle_vectors import bundle_sentences
from tests.conftest import HashEmbedder, RecordingEmbedder, papers_from

LONG = " ".join(f"Sentence {i} is about sparse attention kernels and how fast they run." for i in range(40))
PAPERS = {"Alpha": "About alpha particles. They are helium nuclei.", "Beta": LONG, "Gamma": "Gamma rays. From stars."}


class Recording(RecordingEmbedder):
    """The recording hash embedder, under a name of the test's choosing."""

    def __init__(self, name: str = "hash-embedder") -> None:
        super().__init__()
        self.name = name


def _chunk(paper_id: str, position: int, text: str) -> Chunk:
    return Chunk(f"{paper_id}:{position}", paper_id, "T", position, text, None, "s")


def test_a_sentence_cut_by_a_chunk_boundary_is_stored_whole_as_the_merged_passage_reads_it() -> None:
    # Two chunks that overlap by "attention is", as the chunker's overlap makes them.
    first, second = "We study kernels. Sparse attention is", "attention is fast on GPUs. It scales."
    found = evidence_sentences([_chunk("p1", 1, second), _chunk("p1", 0, first), _chunk("p2", 0, "One line")])
    assert set(found) == {
        "We study kernels.",
        "Sparse attention is",  # the first chunk read alone
        "attention is fast on GPUs.",  # the second read alone
        "It scales.",
        "Sparse attention is fast on GPUs.",  # the two merged, overlap removed
        "One line",
    }


def _evidence(index: Index) -> list[Passage]:
    """Each stored paper's evidence passage, as the decision would read it."""
    by_paper: dict[str, list[Passage]] = {}
    for passage in index.iter_chunks():
        by_paper.setdefault(passage.paper_id, []).append(passage)
    hits = [PaperHit(pid, ps[0].title, 1.0, tuple(ps)) for pid, ps in sorted(by_paper.items())]
    return [evidence_passage(hit) for hit in hits]


@pytest.fixture
def ingested(tmp_settings: Settings, tmp_path: Path) -> tuple[Index, Recording]:
    index, embedder = Index(tmp_settings, vectors_dir=None), Recording()
    stats = index.ingest(papers_from(tmp_path, PAPERS), HashEmbedder(), progress=False, sentence_embedder=embedder)
    assert stats.sentences is not None and stats.sentences.embedded == stats.sentences.stored > 0
    return index, embedder


def test_stored_vectors_give_the_same_sources_and_only_the_question_is_embedded(
    ingested: tuple[Index, Recording],
) -> None:
    index, embedder = ingested
    question = "How fast are sparse attention kernels?"
    passages = _evidence(index)
    embedded = prepare_sources(question, passages, Recording(), 100)
    embedder.embedded.clear()
    stored = prepare_sources(question, passages, embedder, 100, index.sentences)
    assert embedder.embedded == [question]
    assert [(s.number, s.sentences, s.shown) for s in stored] == [(s.number, s.sentences, s.shown) for s in embedded]
    for a, b in zip(stored, embedded):
        assert np.allclose(a.sentence_scores, b.sentence_scores, rtol=0, atol=1e-6)


def test_a_sentence_the_store_lacks_is_embedded_with_the_question(ingested: tuple[Index, Recording]) -> None:
    index, embedder = ingested
    embedder.embedded.clear()
    new = Passage("p0:0", "p0", "New", "About alpha particles. A sentence never ingested.", 1.0)
    sources = prepare_sources("alpha?", [new], embedder, 100, index.sentences)
    assert embedder.embedded == ["alpha?", "A sentence never ingested."]
    assert sources[0].sentence_scores == prepare_sources("alpha?", [new], Recording(), 100)[0].sentence_scores


def test_a_question_embedded_beside_the_search_is_not_embedded_again(ingested: tuple[Index, Recording]) -> None:
    index, embedder = ingested
    question = "How fast are sparse attention kernels?"
    passages = _evidence(index)
    whole = prepare_sources(question, passages, Recording(), 100)
    embedder.embedded.clear()
    given = prepare_sources(
        question, passages, embedder, 100, index.sentences, question_vector=Recording().embed([question])[0]
    )
    assert embedder.embedded == []  # every sentence stored, the question given: the model is not called
    assert [(s.sentences, s.shown) for s in given] == [(s.sentences, s.shown) for s in whole]
    for a, b in zip(given, whole):
        assert np.allclose(a.sentence_scores, b.sentence_scores, rtol=0, atol=1e-6)


def test_another_models_vectors_are_never_taken(ingested: tuple[Index, Recording]) -> None:
    index, _ = ingested
    assert index.sentences.vectors(["About alpha particles."], "hash-embedder")
    assert index.sentences.vectors(["About alpha particles."], "other-model") == {}


def test_re_ingest_adds_nothing_and_a_removed_papers_sentences_go(
    ingested: tuple[Index, Recording], tmp_path: Path
) -> None:
    index, embedder = ingested
    papers = papers_from(tmp_path, PAPERS)
    again = index.ingest(papers, HashEmbedder(), progress=False, sentence_embedder=embedder)
    assert again.sentences is not None and (again.sentences.embedded, again.sentences.deleted) == (0, 0)
    fewer = index.ingest(
        papers_from(tmp_path, {k: v for k, v in PAPERS.items() if k != "Gamma"}),
        HashEmbedder(),
        progress=False,
        sentence_embedder=embedder,
    )
    assert fewer.sentences is not None and (fewer.sentences.embedded, fewer.sentences.deleted) == (0, 2)
    assert index.sentences.vectors(["Gamma rays.", "From stars."], "hash-embedder") == {}
    assert index.sentences.count() == fewer.sentences.stored


def test_a_change_of_sentence_model_replaces_the_store(ingested: tuple[Index, Recording], tmp_path: Path) -> None:
    index, _ = ingested
    other = Recording("other-model")
    stats = index.ingest(papers_from(tmp_path, PAPERS), HashEmbedder(), progress=False, sentence_embedder=other)
    assert stats.sentences is not None and stats.sentences.embedded == stats.sentences.stored
    assert stats.sentences.deleted == 0  # the old model's records went with its collection
    assert index.sentences.vectors(["About alpha particles."], "hash-embedder") == {}
    assert index.sentences.vectors(["About alpha particles."], "other-model")
    assert index.sentences.count() == stats.sentences.stored


def test_shipped_sentence_vectors_are_taken_exactly_and_the_model_is_not_called(
    tmp_settings: Settings, tmp_path: Path
) -> None:
    papers = papers_from(tmp_path, PAPERS)
    folder = tmp_path / "vectors"
    path, header = bundle_sentences(papers, Recording(), IndexSettings(), folder)
    assert path.name == f"hash-embedder.{SHIPPED_KIND}.npz" and header["dtype"] == "float32"
    embedder = Recording()
    stats = Index(tmp_settings, vectors_dir=folder).ingest(
        papers, HashEmbedder(), progress=False, sentence_embedder=embedder
    )
    assert stats.sentences is not None and stats.sentences.shipped == stats.sentences.stored > 0
    assert embedder.embedded == []
    sentences = evidence_sentences(c for p in papers for c in chunk_paper(p, IndexSettings()))
    stored = Index(tmp_settings).sentences.vectors(sentences, "hash-embedder")
    assert len(stored) == len(sentences)
    assert all(np.array_equal(stored[s], v) for s, v in zip(sentences, Recording().embed(sentences)))


def test_keys_name_the_model_and_the_exact_sentence() -> None:
    assert sentence_key("m", "A b.") != sentence_key("n", "A b.") != sentence_key("m", "A b")
    assert len(sentence_key("m", "A b.")) == 64


def test_an_index_built_before_the_store_gets_it_when_the_agent_syncs(tmp_settings: Settings, tmp_path: Path) -> None:
    Index(tmp_settings, vectors_dir=None).ingest(papers_from(tmp_path, PAPERS), HashEmbedder(), progress=False)
    agent = PaperAgent(tmp_settings, embedder=HashEmbedder())
    agent.__dict__["sentence_embedder"] = Recording()
    first, again = agent.sync_sentences(progress=False), agent.sync_sentences(progress=False)
    assert first.embedded == first.stored > 0 and (again.embedded, again.deleted) == (0, 0)
