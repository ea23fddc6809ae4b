"""Hybrid retrieval with the real model and a real Chroma: quality against dense, and the BM25 index kept in step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paper_agent.retrieve import Retriever
from paper_agent.service import PaperAgent
from paper_agent.settings import RetrieveSettings, Settings
from paper_agent.types import paper_id_for

pytestmark = pytest.mark.integration


def _top5_found(retriever: Retriever, questions: list[dict]) -> int:
    return sum(q["gold_ids"][0] in [h.paper_id for h in retriever.search(q["question"], 5)] for q in questions)


def test_hybrid_finds_lookup_papers_at_least_as_often_as_dense(
    paper_agent: PaperAgent, public_questions: list[dict]
) -> None:
    lookups = [q for q in public_questions if q["type"] == "lookup"]
    shared = (paper_agent.index, paper_agent.embedder)
    dense = _top5_found(Retriever(*shared, RetrieveSettings(mode="dense"), paper_agent.lexical), lookups)
    hybrid = _top5_found(Retriever(*shared, RetrieveSettings(mode="hybrid"), paper_agent.lexical), lookups)
    assert hybrid >= dense, f"hybrid found {hybrid}/{len(lookups)} in its top 5, dense {dense}"
    assert hybrid >= 22, f"hybrid found only {hybrid}/{len(lookups)}: the plain paper-vector baseline finds 22"


def test_default_search_is_hybrid_and_every_hit_has_passages(paper_agent: PaperAgent) -> None:
    assert paper_agent.settings.retrieve.mode == "hybrid"
    hits = paper_agent.search("pretraining autoregressive language models with retrieval like RETRO", 5)
    assert len(hits) == 5 and all(h.passages and h.passages[0].paper_id == h.paper_id for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def _write(path: Path, papers: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"title": t, "abstract": a}) + "\n" for t, a in papers.items()))
    return path


ABSTRACT = "We study {0} in depth. Our experiments on {0} show consistent gains over strong baselines in many settings."


def test_reingest_keeps_lexical_and_dense_indexes_consistent(paper_agent: PaperAgent, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "index")
    agent = PaperAgent(settings, embedder=paper_agent.embedder)  # the real model, loaded once per session
    path = tmp_path / "papers.jsonl"
    topics = {"Sparse attention": "sparse attention kernels", "Protein folding": "protein structure prediction"}
    agent.ingest([_write(path, {t: ABSTRACT.format(a) for t, a in topics.items()})], progress=False)
    assert agent.search("protein structure", 1)[0].title == "Protein folding"

    topics = {"Sparse attention": "sparse attention kernels on GPUs", "Quokka census": "counting quokkas from drones"}
    _, stats = agent.ingest([_write(path, {t: ABSTRACT.format(a) for t, a in topics.items()})], progress=False)
    assert stats.deleted > 0 and stats.embedded > 0

    chroma_ids = {p.chunk_id for p in agent.index.iter_chunks()}
    assert {i.split(":")[0] for i in chroma_ids} == {paper_id_for(t) for t in topics}  # exactly the new papers
    assert agent.lexical.chunk_ids == chroma_ids
    assert agent.retriever.lexical.chunk_ids == chroma_ids  # the live retriever got the new index
    on_disk = PaperAgent(settings, embedder=paper_agent.embedder).lexical
    assert on_disk.chunk_ids == chroma_ids and on_disk.fingerprint == agent.lexical.fingerprint
    assert agent.retriever.lexical.query("quokkas", 1)[0].title == "Quokka census"
    assert "Protein folding" not in {h.title for h in agent.search("protein structure prediction", 5)}
