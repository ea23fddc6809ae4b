"""Papers added over HTTP while the app is busy: 8 `/search` clients and 2 `/ask` clients run while N papers arrive.

    .venv/bin/python bench/bench_papers_api.py [--url URL] [--papers 200] [--per-request 1] [--pdf-every 10]
        [--search-clients 8] [--ask-clients 2]

Without `--url` it copies nothing: it ingests the bundled corpus into a fresh temporary data dir (shipped vectors,
~15 s), starts a local llama.cpp server (unless `llm.base_url` is set) and the real `paper-agent serve` on it.

What it checks, and exits 1 when it does not hold: no response of any kind is a 5xx (the app's one writer queues the
ingests, searches keep answering), every job finishes `done`, every paper sent is found at `/papers/{id}` afterwards,
and the counts are exact: `GET /papers`'s total and `/health`'s chunk count grow by exactly what the jobs report.
What it prints: search and ask latency during the ingests, the ingest throughput, and the statuses seen.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
from bench_app import start_app  # bench/ is on the path: this file runs as a script

from paper_agent import offline  # noqa: F401  (offline environment first)
from paper_agent.eval.dataset import DEFAULT_QUESTIONS
from paper_agent.llm_server import LocalServer
from paper_agent.service import PaperAgent
from paper_agent.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, for tests/pdfs.py
from tests.pdfs import make_pdf

TOPICS = ["glaciers", "proteins", "compilers", "auctions", "tokamaks", "wetlands", "bridges", "vaccines"]


def paper(n: int) -> tuple[str, str]:
    """The `n`th synthetic paper: a unique title and an abstract of a few sentences."""
    topic = TOPICS[n % len(TOPICS)]
    title = f"Synthetic Study {n:04d} of {topic.title()} Under Load"
    abstract = (
        f"This synthetic paper number {n} studies {topic} with a new method. "
        f"We measure how {topic} respond to sustained load in {n % 17 + 3} settings. "
        f"The method improves the baseline by {n % 9 + 1} points on every {topic} benchmark we tried."
    )
    return title, abstract


class Tally:
    """Statuses and latencies by route, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.latency: dict[str, list[float]] = {}

    def add(self, route: str, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses[route, status] += 1
            self.latency.setdefault(route, []).append(seconds)


def client_loop(url: str, route: str, queries: list[str], offset: int, stop: threading.Event, tally: Tally) -> None:
    with httpx.Client(base_url=url, timeout=300) as client:
        for n in range(offset, 10**9):
            if stop.is_set():
                return
            q = queries[n % len(queries)]
            started = time.perf_counter()
            try:
                got = (
                    client.get("/search", params={"q": q, "k": 5})
                    if route == "/search"
                    else client.post("/ask", json={"question": q})
                )
                tally.add(route, got.status_code, time.perf_counter() - started)
            except httpx.HTTPError:
                tally.add(route, 0, time.perf_counter() - started)  # no answer at all counts against the app too


def send_papers(url: str, count: int, per_request: int, pdf_every: int, tally: Tally) -> tuple[list[str], set[str]]:
    """POST `count` papers, `per_request` JSON records at a time (every `pdf_every`th paper as a PDF); job ids."""
    jobs, titles = [], set()
    with httpx.Client(base_url=url, timeout=120) as client:
        batch: list[dict[str, str]] = []
        for n in range(count):
            title, abstract = paper(n)
            titles.add(title)
            started = time.perf_counter()
            if pdf_every and n % pdf_every == 0:
                pdf = make_pdf([abstract, f"Results for {title}."], title=title)
                got = client.post("/papers?wait=0", files=[("files", (f"paper-{n}.pdf", pdf, "application/pdf"))])
            else:
                batch.append({"title": title, "abstract": abstract})
                if len(batch) < per_request and n < count - 1:
                    continue
                got, batch = client.post("/papers?wait=0", json=batch), []
            tally.add("POST /papers", got.status_code, time.perf_counter() - started)
            if got.status_code in (200, 202):
                jobs.append(got.json()["job_id"])
        if batch:
            got = client.post("/papers?wait=0", json=batch)
            tally.add("POST /papers", got.status_code, 0.0)
            jobs.append(got.json()["job_id"])
    return jobs, titles


def wait_jobs(url: str, jobs: list[str], timeout_s: float = 3600) -> list[dict]:
    finished, deadline = [], time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=60) as client:
        for job_id in jobs:
            while True:
                job = client.get(f"/jobs/{job_id}").json()
                if job["state"] in ("done", "failed") or time.monotonic() > deadline:
                    finished.append(job)
                    break
                time.sleep(0.5)
    return finished


def counts(url: str) -> tuple[int, int]:
    total = httpx.get(f"{url}/papers", params={"limit": 1}, timeout=60).json()["total"]
    return total, httpx.get(f"{url}/health", timeout=60).json()["index"]["chunks"]


def ms(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    return f"p50 {statistics.median(values) * 1000:.0f} ms, p95 {values[int(len(values) * 0.95)] * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an app that already runs (default: start one over a fresh index)")
    parser.add_argument("--papers", type=int, default=200)
    parser.add_argument("--per-request", type=int, default=1, help="JSON records per POST")
    parser.add_argument("--pdf-every", type=int, default=10, help="every Nth paper goes as a PDF (0: none)")
    parser.add_argument("--search-clients", type=int, default=8)
    parser.add_argument("--ask-clients", type=int, default=2)
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in DEFAULT_QUESTIONS.read_text().splitlines() if line.strip()]
    with ExitStack() as stack:
        url = args.url
        if url is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-papers-")))
            os.environ["PAPER_AGENT_DATA_DIR"] = str(folder)
            settings = Settings()
            PaperAgent(settings).ingest(progress=False)
            model_url = settings.llm.base_url
            if model_url is None:
                model_url = stack.enter_context(LocalServer(settings, log_path=folder / "llm.log")).url
            url, process = start_app(model_url, folder / "app.log", {})
            stack.callback(process.wait, 30)
            stack.callback(process.terminate)
        papers_before, chunks_before = counts(url)
        tally, stop = Tally(), threading.Event()
        clients = [
            threading.Thread(target=client_loop, args=(url, route, questions, n * 7, stop, tally), daemon=True)
            for route, k in (("/search", args.search_clients), ("/ask", args.ask_clients))
            for n in range(k)
        ]
        for thread in clients:
            thread.start()
        started = time.perf_counter()
        jobs, titles = send_papers(url, args.papers, args.per_request, args.pdf_every, tally)
        finished = wait_jobs(url, jobs)
        elapsed = time.perf_counter() - started
        stop.set()
        for thread in clients:
            thread.join(300)
        return report(url, args, finished, titles, tally, elapsed, (papers_before, chunks_before))


def report(
    url: str,
    args: argparse.Namespace,
    jobs: list[dict],
    titles: set[str],
    tally: Tally,
    elapsed: float,
    before: tuple[int, int],
) -> int:
    failed = [j for j in jobs if j["state"] != "done"]
    results = [j["result"] for j in jobs if j["result"]]
    added = {r["paper_id"] for res in results for r in res["added"]}
    added_titles = {r["title"] for res in results for r in res["added"]}
    chunks = sum(res["chunks"] for res in results)
    missing = [i for i in sorted(added) if httpx.get(f"{url}/papers/{i}", timeout=60).status_code != 200]
    papers_after, chunks_after = counts(url)
    server_errors = {key: n for key, n in tally.statuses.items() if key[1] >= 500 or key[1] == 0}
    print(
        f"{args.papers} papers in {len(jobs)} jobs, all finished in {elapsed:.1f} s "
        f"({args.papers / elapsed:.1f} papers/s) with {args.search_clients} /search and {args.ask_clients} /ask clients"
    )
    for route, values in sorted(tally.latency.items()):
        print(f"  {route}: {len(values)} requests, {ms(values)}")
    print(f"  statuses: {dict(sorted(tally.statuses.items()))}")
    print(
        f"  papers {before[0]} -> {papers_after} (+{len(added)} added), "
        f"chunks {before[1]} -> {chunks_after} (+{chunks})"
    )
    checks = {
        "no 5xx and no dropped connection": not server_errors,
        "every job done": not failed,
        "every paper sent was added": added_titles == titles,
        "every added paper is found": not missing,
        "paper count exact": papers_after == before[0] + len(titles),
        "chunk count exact": chunks_after == before[1] + chunks,
    }
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    if failed:
        print(f"  failed jobs: {[j['error'] for j in failed][:5]}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
