"""The bundled corpus's shipped vectors with the real models: every chunk and answer sentence takes one, and they
search and score like the models' own.

Cheap on purpose: the whole corpus is ingested from the file, and only a slice of it is embedded to compare.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from paper_agent.bundled_vectors import BUNDLED_VECTORS
from paper_agent.corpus import read_paths
from paper_agent.data import CORPUS
from paper_agent.embed import Embedder
from paper_agent.index import Index, IngestStats
from paper_agent.sentence_store import evidence_sentences
from paper_agent.service import PaperAgent
from paper_agent.settings import RetrieveSettings, Settings
from paper_agent.types import Paper

pytestmark = pytest.mark.integration

QUERIES = [
    "pre-training for ad-hoc retrieval with representative words",
    "recommending slates with recurrent networks and Thompson sampling",
    "how the age, domain and toxicity of pretraining data matter",
    "sparse parameter-efficient fine-tuning of pre-trained language models",
    "detecting objects from free-form text in images",
]


class CountingEmbedder:
    """The real model, counting the texts it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.fingerprint = inner, inner.name, inner.fingerprint
        self.texts = 0

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        self.texts += len(texts)
        return self.inner.embed(texts, show_progress=show_progress)


@pytest.fixture(scope="module")
def model(paper_agent: PaperAgent) -> Embedder:
    return paper_agent.embedder  # the real model, loaded once per session


def test_every_chunk_of_the_bundled_corpus_takes_its_shipped_vector(model: Embedder, tmp_path: Path) -> None:
    counting = CountingEmbedder(model)
    _, stats = PaperAgent(Settings(data_dir=tmp_path / "index"), embedder=counting).ingest(progress=False)
    assert (stats.chunks, stats.shipped, counting.texts) == (783, 783, 0)


def _ingest(folder: Path, papers: list[Paper], model: Embedder, vectors_dir: Path | None) -> IngestStats:
    return Index(Settings(data_dir=folder), vectors_dir=vectors_dir).ingest(papers, model, progress=False)


@pytest.fixture(scope="module")
def shipped_and_embedded(model: Embedder, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Data dirs holding the first 30 papers of the bundled corpus (57 chunks), from the file and from the model."""
    papers = read_paths([CORPUS]).papers[:30]
    shipped, embedded = tmp_path_factory.mktemp("shipped"), tmp_path_factory.mktemp("embedded")
    from_file, by_model = _ingest(shipped, papers, model, BUNDLED_VECTORS), _ingest(embedded, papers, model, None)
    assert from_file.shipped == from_file.chunks == by_model.chunks and by_model.shipped == 0
    return shipped, embedded


def _vectors(data_dir: Path) -> dict[str, np.ndarray]:
    got = Index(Settings(data_dir=data_dir)).chunks.get(include=["embeddings"])
    return dict(zip(got["ids"], np.asarray(got["embeddings"])))


def test_shipped_vectors_are_what_the_model_makes(shipped_and_embedded: tuple[Path, Path]) -> None:
    shipped, embedded = (_vectors(data_dir) for data_dir in shipped_and_embedded)
    assert shipped.keys() == embedded.keys()
    cosines = [float(shipped[i] @ embedded[i]) for i in shipped]
    assert min(cosines) >= 0.999, f"lowest cosine {min(cosines):.6f}"


@pytest.mark.parametrize("mode", ["hybrid", "dense"])
def test_search_over_shipped_vectors_equals_search_over_embedded_ones(
    mode: str, model: Embedder, shipped_and_embedded: tuple[Path, Path]
) -> None:
    shipped, embedded = (
        PaperAgent(Settings(data_dir=data_dir, retrieve=RetrieveSettings(mode=mode)), embedder=model)
        for data_dir in shipped_and_embedded
    )
    for query in QUERIES:
        from_file, by_model = shipped.search(query, 10), embedded.search(query, 10)
        # subtle: float16 moves a score by up to ~3e-5 (dense) or ~3e-4 (hybrid, after min-max scaling), so two
        # papers that near-tie may swap; over the whole corpus 401 of 403 questions kept the same top 10.
        for rank, (a, b) in enumerate(zip(from_file, by_model, strict=True)):
            assert a.paper_id == b.paper_id or abs(a.score - b.score) < 1e-3, f"{query!r}, rank {rank + 1}"
        assert np.allclose([h.score for h in from_file], [h.score for h in by_model], atol=1e-3), query


def test_every_answer_sentence_takes_its_shipped_vector_which_is_the_models_own(
    model: Embedder, paper_agent: PaperAgent, tmp_path: Path
) -> None:
    sentences = CountingEmbedder(paper_agent.sentence_embedder)
    agent = PaperAgent(Settings(data_dir=tmp_path / "index"), embedder=model)
    agent.__dict__["sentence_embedder"] = sentences
    _, stats = agent.ingest(progress=False)
    assert stats.sentences is not None and sentences.texts == 0
    assert stats.sentences.shipped == stats.sentences.stored == 4268
    # float32 as the model made them: a slice embedded now matches to rounding (the decision reads their cosines).
    sample = evidence_sentences(agent.index.iter_chunks())[::97]
    stored = agent.index.sentences.vectors(sample, sentences.name)
    fresh = paper_agent.sentence_embedder.embed(sample)
    assert np.abs(np.stack([stored[s] for s in sample]) - fresh).max() < 1e-6


class NoStoredSentences:
    def vectors(self, sentences: list[str], model: str) -> dict[str, np.ndarray]:
        return {}


def test_stored_sentence_vectors_give_the_same_sources_and_decision(paper_agent: PaperAgent) -> None:
    questions = [*QUERIES, "Which paper compares BLIP-2 with Flamingo on zero-shot VQAv2?"]
    with_store = [(paper_agent.evidence(q)[1], paper_agent.decide(q)) for q in questions]
    without = paper_agent.with_settings(paper_agent.settings)
    without.__dict__["index"] = copy.copy(paper_agent.index)
    without.index.__dict__["sentences"] = NoStoredSentences()
    for question, (sources, decision) in zip(questions, with_store, strict=True):
        plain_sources, plain = without.evidence(question)[1], without.decide(question)
        assert [(s.passage.paper_id, s.sentences, s.shown) for s in sources] == [
            (s.passage.paper_id, s.sentences, s.shown) for s in plain_sources
        ], question
        for a, b in zip(sources, plain_sources, strict=True):
            assert np.allclose(a.sentence_scores, b.sentence_scores, rtol=0, atol=1e-6), question
        assert (decision.answerable, [c.hit.paper_id for c in decision.chosen]) == (
            plain.answerable,
            [c.hit.paper_id for c in plain.chosen],
        ), question
        assert abs(decision.score - plain.score) < 1e-6, question
