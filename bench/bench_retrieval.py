"""Retrieval quality and search latency per retriever mode on a question set, in one run.

    PAPER_AGENT_DATA_DIR=/tmp/my-index .venv/bin/python bench/bench_retrieval.py [--questions FILE] [--repeat 3]
        [--rerank DEPTH]

Quality (by paper id, unanswerable questions left out): hit@1, hit@5 and MRR@10 over single-gold questions,
recall@10 over multi-gold ones, for dense, lexical, hybrid (relative-score fusion), hybrid with reciprocal rank
fusion, and the plain baseline: all-MiniLM-L6-v2 over title + abstract, one vector per paper, brute-force cosine.
Latency: each mode's `Retriever.search` against the raw dense baseline measured in the same run, interleaved
question by question: one raw encode of the query (`SentenceTransformer.encode`, or the ONNX backend's session run)
+ one raw `collection.query` (`candidates` results) on the same Chroma collection. Needs an ingested index
(`paper-agent ingest`). `--rerank DEPTH` adds hybrid + LLM rerank of the top DEPTH papers by the configured model
server (started locally if none is set), timed over its one quality pass (answerable questions only) because it
costs seconds per search on a CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from paper_agent import offline  # noqa: F401  (offline environment first)
from paper_agent.chroma import record_text
from paper_agent.eval.dataset import DEFAULT_QUESTIONS
from paper_agent.eval.metrics import percentile, retrieval_scores
from paper_agent.llm_server import ensure_server
from paper_agent.retrieve import Retriever
from paper_agent.service import PaperAgent
from paper_agent.settings import Settings

PUBLIC = DEFAULT_QUESTIONS
DEPTH = 10
Search = Callable[[str], list[str]]  # question -> paper ids, best first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=PUBLIC)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the questions")
    parser.add_argument("--rerank", type=int, metavar="DEPTH", help="also hybrid + LLM rerank of the top DEPTH")
    args = parser.parse_args()

    questions = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    paper_agent = PaperAgent(Settings())
    searches = _searches(paper_agent)
    raw = _raw_dense(paper_agent)
    # Reranking costs seconds per search on a CPU: it is timed during its one quality pass, not in the loop.
    slow: dict[str, Search] = {}
    slow_times: dict[str, list[float]] = {}
    if args.rerank:
        name = f"hybrid + rerank@{args.rerank}"
        slow[name] = _timed(_reranked(paper_agent, args.rerank), slow_times.setdefault(name, []))
    print(f"index: {paper_agent.settings.data_dir}  {paper_agent.index.stats()}  questions: {args.questions.name}")

    quality = {name: _quality(search, questions) for name, search in {**searches, **slow}.items()}
    latency = _latency({"raw dense": raw, **searches}, [q["question"] for q in questions], args.repeat) | slow_times
    _print_table(quality, latency, len(questions) * args.repeat)


def _searches(paper_agent: PaperAgent) -> dict[str, Search]:
    """One retriever per mode, sharing the index, the model and the BM25 index; plus the paper-vector baseline."""
    base = paper_agent.settings.retrieve
    lexical = paper_agent.lexical
    variants = {
        "dense": {"mode": "dense"},
        "lexical": {"mode": "lexical"},
        "hybrid": {"mode": "hybrid"},
        "hybrid (40 cand.)": {"mode": "hybrid", "candidates": 40},  # the previous default, for comparison
        "hybrid (rrf)": {"mode": "hybrid", "fusion": "rrf", "dense_weight": 0.5},
    }
    searches: dict[str, Search] = {}
    for name, change in variants.items():
        settings = base.model_validate({**base.model_dump(), **change})
        retriever = Retriever(paper_agent.index, paper_agent.embedder, settings, lexical)
        searches[name] = lambda q, r=retriever: [h.paper_id for h in r.search(q, DEPTH)]
    searches["baseline (paper vec)"] = _paper_vector_baseline(paper_agent)
    return searches


def _reranked(paper_agent: PaperAgent, depth: int) -> Search:
    """Hybrid search with the model server judging the top `depth` papers."""
    retrieve = paper_agent.settings.retrieve.model_copy(update={"rerank": "llm", "rerank_depth": depth})
    settings = paper_agent.settings.model_copy(update={"retrieve": retrieve})
    ensure_server(settings)
    reranking = paper_agent.with_settings(settings)
    return lambda q: [h.paper_id for h in reranking.search(q, DEPTH)]


def _timed(search: Search, times: list[float]) -> Search:
    def timed(question: str) -> list[str]:
        start = time.perf_counter()
        ranked = search(question)
        times.append((time.perf_counter() - start) * 1000)
        return ranked

    return timed


def _paper_vector_baseline(paper_agent: PaperAgent) -> Search:
    """all-MiniLM-L6-v2 over title + abstract, one vector per paper, brute-force cosine."""
    got = paper_agent.index.papers.get(include=["documents", "metadatas"])
    texts = [f"{meta['title']}\n{record_text(doc, meta)}" for doc, meta in zip(got["documents"], got["metadatas"])]
    ids = np.array(got["ids"])
    minilm = paper_agent.sentence_embedder
    vectors = minilm.embed(texts)

    def search(question: str) -> list[str]:
        scores = vectors @ minilm.embed([question])[0]
        return list(ids[np.argsort(-scores, kind="stable")[:DEPTH]])

    return search


def _raw_dense(paper_agent: PaperAgent) -> Search:
    """The latency floor: one encode and one Chroma query, no Passage objects, no ranking. On the torch backend the
    encode is sentence-transformers' own; on an ONNX backend, the session run and pooling (agent/onnx_embed.py)."""
    embedder = paper_agent.embedder
    model = getattr(embedder, "model", None)

    def encode(question: str) -> np.ndarray:
        if model is None:
            return embedder.embed([question])[0]
        return np.asarray(model.encode(question, normalize_embeddings=True, convert_to_numpy=True))

    collection = paper_agent.index.chunks
    n = paper_agent.settings.retrieve.candidates

    def search(question: str) -> list[str]:
        vector = encode(question)
        got = collection.query(query_embeddings=[vector], n_results=n)
        return got["ids"][0]

    return search


def _quality(search: Search, questions: list[dict]) -> dict[str, float]:
    """The eval's retrieval metrics (eval/metrics.py), averaged over the questions that have them."""
    scores: dict[str, list[float]] = {}
    for q in questions:
        if q["gold_ids"]:
            for name, value in retrieval_scores(search(q["question"]), q["gold_ids"]).items():
                scores.setdefault(name, []).append(value)
    return {**{name: statistics.fmean(values) for name, values in scores.items()}, "n": len(scores["hit@1"])}


def _latency(searches: dict[str, Search], questions: list[str], repeat: int) -> dict[str, list[float]]:
    """Milliseconds per search; modes take turns on each question so load drift hits them all alike."""
    for search in searches.values():  # warm-up: first calls pay one-off allocation and cache costs
        for q in questions[:5]:
            search(q)
    times: dict[str, list[float]] = {name: [] for name in searches}
    names = list(searches)
    for r in range(repeat):
        for i, q in enumerate(questions):
            shift = (r + i) % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                searches[name](q)
                times[name].append((time.perf_counter() - start) * 1000)
    return times


def _print_table(quality: dict[str, dict[str, float]], latency: dict[str, list[float]], samples: int) -> None:
    raw = latency["raw dense"]
    raw_p50, raw_p95 = percentile(raw, 50), percentile(raw, 95)
    n_single = int(next(iter(quality.values()))["n"])
    print(f"quality: {n_single} single-gold questions (hit@k, MRR@10), multi-gold recall@10; {samples} timed searches")
    print(
        f"{'mode':22s} {'hit@1':>6s} {'hit@5':>6s} {'MRR@10':>7s} {'rec@10':>7s} {'p50 ms':>7s} {'p95 ms':>7s} "
        f"{'p50/raw':>7s} {'p95/raw':>7s}"
    )
    blank = f"{'':>6s} {'':>6s} {'':>7s} {'':>7s}"
    print(f"{'raw dense (floor)':22s} {blank} {raw_p50:7.2f} {raw_p95:7.2f} {1:7.2f} {1:7.2f}")
    for name, q in quality.items():
        p50, p95 = percentile(latency[name], 50), percentile(latency[name], 95)
        print(
            f"{name:22s} {q['hit@1']:6.3f} {q['hit@5']:6.3f} {q['mrr@10']:7.3f} {q['recall@10']:7.3f} "
            f"{p50:7.2f} {p95:7.2f} {p50 / raw_p50:7.2f} {p95 / raw_p95:7.2f}"
        )
    print(
        "goals for the default (hybrid): hit@1 >= 0.90, hit@5 >= 0.98, MRR@10 >= 0.93, recall@10 = 1.0, "
        "latency <= 1.3x raw"
    )


if __name__ == "__main__":
    main()
