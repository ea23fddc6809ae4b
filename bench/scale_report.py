"""`bench_scale.py`'s table (markdown, as the README holds it) and plot."""

from __future__ import annotations

from pathlib import Path


def print_table(rows: list[dict], clients: list[int]) -> None:
    cols = ["chunks", "ingest/s", "chroma RSS GB", "chroma disk GB", "BM25 build s", "BM25 disk GB"]
    cols += [f"{m} p50/p95 ms @{c}" for c in clients for m in ("dense", "lexical", "hybrid")]
    cols += ["recall@10 (ef)", "worker RSS GB (heap)", "load avg"]
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
        heap = f" ({r['worker_anon_gb']:.2f})" if "worker_anon_gb" in r else ""
        cells += [f"{r['worker_rss_gb']:.2f}{heap}", f"{r['load_avg_1m']:.1f}-{r['load_avg_1m_end']:.1f}"]
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
