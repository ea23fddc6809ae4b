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

from paper_agent.index import Index
from paper_agent.lexical import LexicalIndex
from paper_agent.settings import IndexSettings, Settings
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


def load(index: Index, corpus: SyntheticCorpus, blocks: range, server: int, group: int) -> dict:
    """Write `blocks`' chunks; returns the seconds spent writing and the server's peak RSS."""
    writing, peak = 0.0, 0
    for start in range(blocks.start, blocks.stop, group):
        made = [corpus.block(b) for b in range(start, min(start + group, blocks.stop))]
        chunks = [c for cs, _ in made for c in cs]
        vectors = np.concatenate([v for _, v in made])
        began = time.perf_counter()
        index.write_vectors(chunks, vectors, EMBEDDER)
        writing += time.perf_counter() - began
        peak = max(peak, rss(server))
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


def stage(args: argparse.Namespace, index: Index, corpus: SyntheticCorpus, n: int, done: int, ctx: dict) -> dict:
    blocks = n // BLOCK
    row = {"chunks": n, "load_avg_1m": psutil.getloadavg()[0]}
    loaded = load(index, corpus, range(done, blocks), ctx["server"].pid, args.group)
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
    exact = exact_top10(corpus, blocks, vectors)
    exact_ids = [[f"s{i // 4:07d}:{i % 4}" for i in top] for top in exact]
    job = {
        "url": ctx["url"],
        "lexical_dir": str(ctx["lexical_dir"]),
        "texts": texts,
        "vectors": vectors,
        "exact": exact_ids,
        "ef": args.ef,
        "clients": args.clients,
        "embedder": EMBEDDER,
        "settings": index.settings.model_dump(),
    }
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # a fresh process: what an app worker holds
        row.update(pool.apply(query_phase, (job,)))
    row["load_avg_1m_end"] = psutil.getloadavg()[0]
    return row


def print_table(rows: list[dict], clients: list[int]) -> None:
    cols = ["chunks", "ingest/s", "chroma RSS GB", "chroma disk GB", "BM25 build s", "BM25 disk GB"]
    cols += [f"{m} p50/p95 ms @{c}" for c in clients for m in ("dense", "lexical", "hybrid")]
    cols += ["recall@10 (ef)", "worker RSS GB", "load avg"]
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols))
    for r in rows:
        cells = [
            f"{r['chunks']:,}",
            f"{r['ingest_chunks_s']:,.0f}",
            f"{r['server_rss_gb']:.2f}",
            f"{r['chroma_disk_gb']:.2f}",
            f"{r['lexical_build_s']:.0f}",
            f"{r['lexical_disk_gb']:.2f}",
        ]
        for c in clients:
            for m in ("dense", "lexical", "hybrid"):
                lat = r["latency"][f"{m}@{c}"]
                cells.append(f"{lat['p50_ms']:.1f} / {lat['p95_ms']:.1f}")
        cells.append(", ".join(f"{v:.3f} ({ef})" for ef, v in r["recall_at_10"].items()))
        cells += [f"{r['worker_rss_gb']:.2f}", f"{r['load_avg_1m']:.1f}-{r['load_avg_1m_end']:.1f}"]
        print("| " + " | ".join(cells) + " |")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["chunks"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for m in ("dense", "lexical", "hybrid"):
        left.plot(n, [r["latency"][f"{m}@1"]["p95_ms"] for r in rows], marker="o", label=f"{m} p95, 1 client")
    left.axhline(100, color="grey", linestyle=":", label="goal: hybrid p95 100 ms")
    left.set(xscale="log", xlabel="chunks", ylabel="ms", title="search latency (query embedding excluded)")
    left.legend(fontsize=8)
    right.plot(n, [r["server_rss_gb"] for r in rows], marker="o", label="chroma server RSS")
    right.plot(n, [r["chroma_disk_gb"] for r in rows], marker="o", label="chroma disk")
    right.plot(n, [r["lexical_disk_gb"] for r in rows], marker="o", label="BM25 index disk")
    right.plot(n, [r["worker_rss_gb"] for r in rows], marker="o", label="app worker RSS")
    right.set(xscale="log", xlabel="chunks", ylabel="GB", title="memory and disk")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="100000", help="sizes, comma-separated, grown in one collection")
    parser.add_argument("--queries", type=int, default=200, help="held-out questions per measurement")
    parser.add_argument("--ef", default="", help="ef_search values for recall, comma-separated; first = timed")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--batch", type=int, default=None, help="write batch size (default: the setting)")
    parser.add_argument("--writers", type=int, default=None, help="writes in flight (default: the setting)")
    parser.add_argument("--group", type=int, default=20, help="blocks of 1,000 chunks generated per write call")
    parser.add_argument("--ingest-only", action="store_true", help="measure the writes only (settings sweeps)")
    parser.add_argument("--out", type=Path, default=Path(".runs/scale"))
    parser.add_argument("--workdir", type=Path, default=None, help="where Chroma and BM25 live (default: a temp dir)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.chunks.split(",")]
    args.clients = [int(c) for c in args.clients.split(",")]
    base = IndexSettings()
    overrides = {"write_batch_size": args.batch or base.write_batch_size, "writers": args.writers or base.writers}
    args.ef = [int(e) for e in args.ef.split(",")] if args.ef else [base.hnsw_ef_search]
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.workdir))
    port = free_port()
    server = start_chroma(work / "chroma", port, work / "chroma.log")
    try:
        url = f"http://127.0.0.1:{port}"
        settings = Settings(data_dir=work, index=IndexSettings(chroma_url=url, **overrides))
        index = Index(settings, vectors_dir=None)
        corpus = SyntheticCorpus()
        ctx = {"server": server, "url": url, "chroma_dir": work / "chroma", "lexical_dir": work / "lexical"}
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
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
