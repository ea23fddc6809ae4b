"""The index at 10^5-10^6 chunks: ingest, memory, disk, search latency and dense recall, on a real `chroma run`.

    .venv/bin/python bench/bench_scale.py --chunks 100000                 # ~10 minutes on 2 cores
    .venv/bin/python bench/bench_scale.py --chunks 100000,300000,1000000  # one collection grown stage by stage

Synthetic chunks (`bench/scale_data.py`: real words, vectors clustered around the bundled corpus's real ones) are
loaded from precomputed vectors into a `chroma run` server through `Index.write_vectors`, so the embedding model
is not what is measured. At each size: ingest chunks/s (wall time of the writes), the server's RSS and disk, the
BM25 build, save and size (`LexicalIndex`), then, in a fresh process that is what an app worker holds (an `Index`
on the server and the lexical index loaded memory-mapped): dense, lexical and hybrid `Retriever.search` p50/p95
at 1 and 8 concurrent clients (the question's vector looked up, not embedded), that process's RSS, and dense
recall@10 against exact brute force at each `--ef` (the first is the one searches are timed at). Prints a table,
writes `scale.json` and `scale.png` to `--out`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).parent))

from scale_data import BLOCK, SyntheticCorpus
from scale_query import query_phase
from scale_report import plot, print_table

from paper_agent.index import Index
from paper_agent.lexical import LexicalIndex
from paper_agent.settings import IndexSettings, RetrieveSettings, Settings
from paper_agent.types import Passage

# `chroma run` as its console script does it, from whichever environment runs this file
CHROMA = [sys.executable, "-c", "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; app()"]
EMBEDDER = "all-mpnet-base-v2+onnx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_chroma(path: Path, port: int, log: Path) -> subprocess.Popen:
    cmd = [*CHROMA, "run", "--path", str(path), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"chroma run did not open port {port}; see {log}")


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def rss(pid: int) -> int:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


def load(index: Index, corpus: SyntheticCorpus, blocks: range, server: subprocess.Popen, group: int) -> dict:
    """Write `blocks`' chunks; returns the seconds spent writing and the server's peak RSS."""
    writing, peak = 0.0, 0
    for start in range(blocks.start, blocks.stop, group):
        made = [corpus.block(b) for b in range(start, min(start + group, blocks.stop))]
        chunks = [c for cs, _ in made for c in cs]
        vectors = np.concatenate([v for _, v in made])
        began = time.perf_counter()
        index.write_vectors(chunks, vectors, EMBEDDER)
        writing += time.perf_counter() - began
        peak = max(peak, rss(server.pid))
    return {"write_s": writing, "server_peak_rss": peak}


def passages(corpus: SyntheticCorpus, blocks: int) -> list[Passage]:
    return [
        Passage(c.id, c.paper_id, c.title, c.text, 0.0, c.position, c.page)
        for b in range(blocks)
        for c in corpus.block(b)[0]
    ]


def exact_top10(corpus: SyntheticCorpus, blocks: int, queries: np.ndarray) -> list[list[int]]:
    """Brute force: the 10 rows of highest cosine to each query (unit vectors: the dot product)."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for b in range(blocks):
        scores = queries @ corpus.block_vectors(b)[1].T
        s = np.concatenate([best_s, scores], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(np.arange(b * BLOCK, (b + 1) * BLOCK), scores.shape)], axis=1)
        keep = np.argsort(-s, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(s, keep, 1), np.take_along_axis(i, keep, 1)
    return best_i.tolist()


def recall_by_ef(index: Index, ctx: dict, efs: list[int], vectors: np.ndarray, exact: list[list[str]]) -> dict:
    """Recall@10 against `exact` and the raw query's p50/p95 (the `candidates` a search asks for) at each ef_search,
    the first last, so the server is left searching at it.

    subtle: Chroma reads ef_search when it loads a collection's HNSW index; `modify` on a running server changes
    the stored configuration but not the loaded index (a collection created at ef 10 found 0.91 of the exact top
    10 at 40 k chunks; one created at 1000 and modified to 10 still found 1.0). So each value is set and the
    server restarted before it is measured."""
    out = {}
    n = RetrieveSettings().candidates
    for ef in reversed(efs):
        index.chunks.modify(configuration={"hnsw": {"ef_search": ef}})
        restart_chroma(ctx)
        index.chunks.query(query_embeddings=vectors[:1], n_results=10, include=[])  # loads the index
        got = index.chunks.query(query_embeddings=vectors, n_results=10, include=[])["ids"]
        ms = []
        for v in vectors:
            began = time.perf_counter()
            index.chunks.query(query_embeddings=[v], n_results=n, include=["distances"])
            ms.append((time.perf_counter() - began) * 1000)
        out[ef] = {
            "recall": float(np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact)])),
            "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)),
        }
    return out


def restart_chroma(ctx: dict) -> None:
    ctx["server"].terminate()
    ctx["server"].wait(timeout=120)
    ctx["server"] = start_chroma(ctx["chroma_dir"], ctx["port"], ctx["chroma_dir"].parent / "chroma.log")


def stage(args: argparse.Namespace, index: Index, corpus: SyntheticCorpus, n: int, done: int, ctx: dict) -> dict:
    blocks = n // BLOCK
    row = {"chunks": n, "load_avg_1m": psutil.getloadavg()[0]}
    loaded = load(index, corpus, range(done, blocks), ctx["server"], args.group)
    row["ingest_chunks_s"] = (blocks - done) * BLOCK / loaded["write_s"]
    row["server_peak_rss_gb"] = loaded["server_peak_rss"] / 1e9
    time.sleep(2)  # let the server finish applying its log before it is measured and searched
    row["server_rss_gb"] = rss(ctx["server"].pid) / 1e9
    row["chroma_disk_gb"] = tree_bytes(ctx["chroma_dir"]) / 1e9

    if args.ingest_only:
        return row
    everything = passages(corpus, blocks)
    began = time.perf_counter()
    lexical = LexicalIndex.build(everything)
    row["lexical_build_s"] = time.perf_counter() - began
    del everything
    began = time.perf_counter()
    lexical.save(ctx["lexical_dir"])
    row["lexical_save_s"] = time.perf_counter() - began
    row["lexical_disk_gb"] = tree_bytes(ctx["lexical_dir"]) / 1e9
    del lexical

    texts, vectors = corpus.queries(args.queries)
    exact = [[f"s{i // 4:07d}:{i % 4}" for i in top] for top in exact_top10(corpus, blocks, vectors)]
    by_ef = recall_by_ef(index, ctx, args.ef, vectors, exact)
    row["recall_at_10"] = {ef: r["recall"] for ef, r in by_ef.items()}
    row["raw_dense_by_ef"] = by_ef
    job = {
        "url": ctx["url"],
        "lexical_dir": str(ctx["lexical_dir"]),
        "texts": texts,
        "vectors": vectors,
        "clients": args.clients,
        "embedder": EMBEDDER,
        "settings": index.settings.model_dump(),
    }
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # a fresh process: what an app worker holds
        row.update(pool.apply(query_phase, (job,)))
    row["load_avg_1m_end"] = psutil.getloadavg()[0]
    return row


def recall_only(args: argparse.Namespace, n: int, overrides: dict) -> None:
    """Recall@10 and raw query latency per ef over a Chroma folder an earlier run of this bench filled with `n`."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-scale-")) / "chroma.log"
    ctx = {"server": start_chroma(args.recall_only, port, log), "port": port, "chroma_dir": args.recall_only}
    try:
        url = f"http://127.0.0.1:{port}"
        index = Index(Settings(index=IndexSettings(chroma_url=url, **overrides)), vectors_dir=None)
        corpus = SyntheticCorpus()
        _, vectors = corpus.queries(args.queries)
        exact = [[f"s{i // 4:07d}:{i % 4}" for i in top] for top in exact_top10(corpus, n // BLOCK, vectors)]
        by_ef = recall_by_ef(index, ctx, args.ef, vectors, exact)
        print(json.dumps({"chunks": n, "load_avg_1m": psutil.getloadavg()[0], "raw_dense_by_ef": by_ef}), flush=True)
    finally:
        ctx["server"].terminate()
        ctx["server"].wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="100000", help="sizes, comma-separated, grown in one collection")
    parser.add_argument("--queries", type=int, default=200, help="held-out questions per measurement")
    parser.add_argument("--ef", default="", help="ef_search values for recall, comma-separated; first = timed")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--batch", type=int, default=None, help="write batch size (default: the setting)")
    parser.add_argument("--writers", type=int, default=None, help="writes in flight (default: the setting)")
    parser.add_argument("--ef-construction", type=int, default=None, help="HNSW build breadth (default: the setting)")
    parser.add_argument("--max-neighbors", type=int, default=None, help="HNSW links a node (default: the setting)")
    parser.add_argument("--group", type=int, default=20, help="blocks of 1,000 chunks generated per write call")
    parser.add_argument("--ingest-only", action="store_true", help="measure the writes only (settings sweeps)")
    parser.add_argument("--recall-only", type=Path, default=None, help="a Chroma folder this bench filled (--chunks N)")
    parser.add_argument("--out", type=Path, default=Path(".runs/scale"))
    parser.add_argument("--workdir", type=Path, default=None, help="where Chroma and BM25 live (default: a temp dir)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.chunks.split(",")]
    args.clients = [int(c) for c in args.clients.split(",")]
    base = IndexSettings()
    overrides = {
        "write_batch_size": args.batch or base.write_batch_size,
        "writers": args.writers or base.writers,
        "hnsw_ef_construction": args.ef_construction or base.hnsw_ef_construction,
        "hnsw_max_neighbors": args.max_neighbors or base.hnsw_max_neighbors,
    }
    args.ef = [int(e) for e in args.ef.split(",")] if args.ef else [base.hnsw_ef_search]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.recall_only:
        return recall_only(args, sizes[-1], overrides)
    work = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.workdir))
    port = free_port()
    ctx: dict = {"server": start_chroma(work / "chroma", port, work / "chroma.log"), "port": port}
    try:
        url = f"http://127.0.0.1:{port}"
        settings = Settings(data_dir=work, index=IndexSettings(chroma_url=url, **overrides))
        index = Index(settings, vectors_dir=None)
        corpus = SyntheticCorpus()
        ctx.update(url=url, chroma_dir=work / "chroma", lexical_dir=work / "lexical")
        rows: list[dict] = []
        done = 0
        print(f"settings: {index.settings.model_dump()}; work dir {work}", flush=True)
        for n in sizes:
            rows.append(stage(args, index, corpus, n, done, ctx))
            done = n // BLOCK
            print(json.dumps(rows[-1]), flush=True)
            (args.out / "scale.json").write_text(json.dumps(rows, indent=1))
            if not args.ingest_only:
                plot(rows, args.out / "scale.png")
        if not args.ingest_only:
            print_table(rows, args.clients)
        print(f"wrote {args.out / 'scale.json'} and {args.out / 'scale.png'}")
    finally:
        ctx["server"].terminate()
        ctx["server"].wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
