"""The web app under load: `/search` requests per second at 16 concurrent clients, `/ask` at 8.

    .venv/bin/python bench/bench_app.py [--url URL] [--seconds 15] [--search-clients 16] [--ask-clients 8]
        [--queries public|distinct] [--no-cache] [--client raw|httpx]

Without `--url` it starts the real `paper-agent serve` (uvicorn, one process) on a free port over the index in
`data_dir`, and a local llama.cpp server for it unless `llm.base_url` is set; both are stopped after.

Baselines, measured in the same run: for `/search`, the same queries through `PaperAgent.search` in this
process, one at a time (the ratio is what HTTP, JSON and concurrency add or win); for `/ask`, one question alone
(the ratio is what queueing behind 7 others costs). Overload is not an error: past `serve.max_queue`, `/ask`
answers 503 with Retry-After, and the bench counts those apart.

The app's query cache serves repeated queries, and the public set's 60 questions repeat every 60 requests: the
bench reports how many came from the cache. For what new questions cost, `--no-cache` starts the app without it
and `--queries distinct` never sends a query twice. The load generator runs on the same cores as the app: its own
CPU is reported, and the default raw-stream client (`http_load.py`) costs a tenth of httpx's.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
from http_load import get_load, target  # bench/ is on the path: this file runs as a script

from paper_agent import offline  # noqa: F401  (offline environment first)
from paper_agent.eval.dataset import DATASETS
from paper_agent.eval.metrics import percentile
from paper_agent.llm_server import LocalServer, free_port
from paper_agent.service import PaperAgent
from paper_agent.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the checkout

DATASETS = DATASETS


def questions(name: str = "public") -> list[str]:
    lines = (DATASETS / f"{name}.jsonl").read_text().splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def distinct_queries(count: int) -> list[str]:
    """`count` queries none of which repeats: the public and development questions, then again with a number, so
    a cache of repeated queries never answers one (what a stream of new questions costs)."""
    base = list(dict.fromkeys(questions("public") + questions("dev")))
    return [q if n < len(base) else f"{q} ({n // len(base)})" for n, q in zip(range(count), itertools.cycle(base))]


def start_app(model_url: str, log: Path, env: dict[str, str]) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = os.environ | env | {"PAPER_AGENT_LLM__BASE_URL": model_url}
    command = [sys.executable, "-m", "paper_agent.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if process.poll() is not None:
            sys.exit(f"the app exited: see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=30).status_code == 200:
                return url, process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)  # also after a non-200 answer (model server not up yet), not just a refused connection
    process.terminate()
    sys.exit(f"the app did not start: see {log}")


def cache_counts(url: str) -> tuple[float, float]:
    """(hits, misses) of the app's query cache so far, from /metrics; (0, 0) if it reports none."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    found = dict(line.split(" ", 1) for line in text.splitlines() if line.startswith("paper_agent_query_cache_"))
    hits, misses = (float(found.get(f"paper_agent_query_cache_{name}_total", 0)) for name in ("hits", "misses"))
    return hits, misses


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process_search_rate(settings: Settings, queries: list[str], seconds: float) -> float:
    """Searches per second through `PaperAgent.search` directly, one at a time."""
    paper_agent = PaperAgent(settings)
    paper_agent.search(queries[0])  # load the model first
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        paper_agent.search(queries[done % len(queries)])
        done += 1
    return done / (time.perf_counter() - started)


async def httpx_load(
    url: str, targets: list[str], clients: int, seconds: float
) -> tuple[float, list[float], Counter, float]:
    """`http_load.get_load` with an httpx client instead of raw streams (to measure what the client costs)."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient, offset: int) -> None:
        i = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                got = await client.get(targets[i % len(targets)])
                statuses[got.status_code] += 1
            except httpx.HTTPError as error:
                statuses[type(error).__name__] += 1
            latencies.append(time.perf_counter() - started)
            i += clients

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(client, n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, statuses, time.process_time() - cpu


async def ask_load(url: str, queries: list[str], clients: int) -> tuple[list[float], list[float], Counter]:
    """(latencies of answered questions, their ttft_ms, outcome counts) of `clients` questions sent at once."""
    latencies: list[float] = []
    ttfts: list[float] = []
    outcomes: Counter = Counter()

    async def one(client: httpx.AsyncClient, question: str) -> None:
        started = time.perf_counter()
        try:
            got = await client.post("/ask", json={"question": question})
        except httpx.HTTPError as error:
            outcomes[f"error {type(error).__name__}"] += 1
            return
        if got.status_code == 200:
            latencies.append(time.perf_counter() - started)
            ttfts.append(got.json()["timings"].get("ttft_ms", float("nan")))
            outcomes["200"] += 1
        elif got.status_code == 503 and "retry-after" in got.headers:
            outcomes["503 + Retry-After"] += 1
        else:
            outcomes[f"error {got.status_code}"] += 1

    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        await asyncio.gather(*(one(client, queries[n % len(queries)]) for n in range(clients)))
    return latencies, ttfts, outcomes


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f} ms" if values else "      -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an app that already runs (default: start one)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the /search load")
    parser.add_argument("--search-clients", type=int, default=16)
    parser.add_argument("--ask-clients", type=int, default=8, help="0: no /ask load")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw", help="the /search load generator")
    parser.add_argument(
        "--queries",
        choices=["public", "distinct"],
        default="public",
        help="public: the 60 public questions round robin (repeats); distinct: no query is sent twice",
    )
    parser.add_argument("--no-cache", action="store_true", help="start the app with its query cache off")
    args = parser.parse_args()

    settings = Settings()
    queries = questions()
    with ExitStack() as stack:
        url, process = args.url, None
        if url is None:
            model_url = settings.llm.base_url
            if model_url is None:
                server = stack.enter_context(LocalServer(settings, log_path=settings.data_dir / "bench-llm.log"))
                model_url = server.url
            env = {"PAPER_AGENT_SERVE__QUERY_CACHE": "0"} if args.no_cache else {}
            url, process = start_app(model_url, settings.data_dir / "bench-app.log", env)
            stack.callback(process.wait, 30)
            stack.callback(process.terminate)

        raw = in_process_search_rate(settings, queries, min(args.seconds, 10.0))
        sent = queries if args.queries == "public" else distinct_queries(int(args.seconds * 1000))
        targets = [target("/search", {"q": q, "k": 5}) for q in sent]
        load = get_load if args.client == "raw" else httpx_load
        cpu_before = cpu_seconds(process.pid) if process is not None else 0.0
        hits_before, misses_before = cache_counts(url)
        rate, latencies, statuses, own_cpu = asyncio.run(load(url, targets, args.search_clients, args.seconds))
        served = sum(statuses.values())
        hits, misses = (after - before for after, before in zip(cache_counts(url), (hits_before, misses_before)))
        cpu_ms = (cpu_seconds(process.pid) - cpu_before) * 1000 / served if process is not None and served else None
        errors = sum(n for status, n in statuses.items() if status != 200)
        p95 = percentile(latencies, 95) if latencies else 0.0
        cores = os.cpu_count() or 1
        print(
            f"/search, {args.search_clients} concurrent clients, {args.seconds:.0f} s, {cores} cores, "
            f"{args.queries} queries, {args.client} client"
        )
        print(f"  in-process PaperAgent.search (1 thread) : {raw:7.1f} searches/s")
        print(f"  HTTP /search                            : {rate:7.1f} requests/s  ({rate / raw:.2f}x in-process)")
        print(f"  latency median {median_ms(latencies)}, p95 {p95 * 1000:7.1f} ms; errors: {errors} {dict(statuses)}")
        repeated = hits / max(hits + misses, 1)
        print(f"  query cache: {hits:.0f} hits, {misses:.0f} misses ({repeated:.0%} of queries served from it)")
        share = own_cpu / (args.seconds * cores)
        print(
            f"  load generator CPU: {own_cpu:.2f} s, {own_cpu * 1000 / max(served, 1):.2f} ms a request, "
            f"{share:.0%} of {cores} cores"
        )
        if cpu_ms is not None:  # what the rate would be with 2 cores to itself, whatever else shares them now
            print(f"  app CPU per request: {cpu_ms:5.1f} ms  (2 dedicated cores: ~{2000 / cpu_ms:.0f} requests/s)")
            print(f"  load average during the run: {os.getloadavg()[0]:.1f} (other processes share these cores)")

        if args.ask_clients == 0:
            return
        alone, alone_ttft, alone_outcome = asyncio.run(ask_load(url, queries, 1))
        loaded, ttfts, outcomes = asyncio.run(ask_load(url, queries, args.ask_clients))
        print(f"/ask, {args.ask_clients} concurrent clients (one question each)")
        print(f"  one question alone : {median_ms(alone)}  ttft {statistics.median(alone_ttft or [0]):7.1f} ms")
        ratio = statistics.median(loaded) / statistics.median(alone) if loaded and alone else float("nan")
        ttft = statistics.median(ttfts) if ttfts else float("nan")
        print(f"  answered, median   : {median_ms(loaded)}  ({ratio:.2f}x alone)  ttft {ttft:7.1f} ms")
        print(f"  outcomes           : {dict(outcomes)}  (alone: {dict(alone_outcome)})")


if __name__ == "__main__":
    main()
