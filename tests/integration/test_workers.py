"""Several app workers on one index: two `paper-agent serve` processes on one Chroma server (and one data dir, for
the BM25 snapshots and the write lock) follow an ingest run by a third process, and answer alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from paper_agent.data import CORPUS
from paper_agent.llm_server import free_port
from paper_agent.types import paper_id_for
from tests.integration.conftest import PROJECT_ROOT, RunningApp, start_app, stop_app

pytestmark = pytest.mark.integration

PLATYPUS = "Electroreception maps of foraging platypuses in Tasmanian creeks"
PLATYPUS_ABSTRACT = (
    "We map where platypuses forage by logging the electric fields their bills sense. Over 200 dives in "
    "Tasmanian creeks, the maps predict foraging sites with 81 percent accuracy. We call the maps snorfield maps."
)
QUERIES = ["platypus foraging electroreception", "snorfield", "pre-training code representations with data flow"]
DEADLINE_S = 180.0  # generous: checks that both workers follow, not how fast on a busy machine


def _ingest(env: dict[str, str], path: Path) -> None:
    """`paper-agent ingest PATH` in a process of its own, against the same Chroma server and data dir."""
    command = [sys.executable, "-m", "paper_agent.cli", "ingest", "-q", str(path)]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=os.environ | env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr


def _search(app: RunningApp, query: str) -> list[dict]:
    response = httpx.get(f"{app.url}/search", params={"q": query, "k": 5}, timeout=60)
    response.raise_for_status()
    return response.json()["results"]


@pytest.fixture
def workers(chroma_server: str, tmp_path: Path) -> Iterator[tuple[list[RunningApp], dict[str, str]]]:
    """Two workers over one listing page of the bundled corpus, held by a real `chroma run`."""
    env = {
        "PAPER_AGENT_DATA_DIR": str(tmp_path / "data"),
        "PAPER_AGENT_INDEX__CHROMA_URL": chroma_server,
        "PAPER_AGENT_INDEX__REFRESH_S": "1",
    }
    _ingest(env, next(CORPUS.glob("003_*.txt")))
    nowhere = f"http://127.0.0.1:{free_port()}/v1"  # search only: no model server
    apps: list[RunningApp] = []
    try:
        for n in range(2):
            extra = {k: v for k, v in env.items() if k != "PAPER_AGENT_DATA_DIR"}
            apps.append(
                start_app(tmp_path / "data", tmp_path / f"worker-{n}.log", PAPER_AGENT_LLM__BASE_URL=nowhere, **extra)
            )
        yield apps, env
    finally:
        for app in apps:
            stop_app(app)


def test_two_workers_follow_an_ingest_elsewhere_and_answer_alike(
    workers: tuple[list[RunningApp], dict[str, str]], tmp_path: Path
) -> None:
    apps, env = workers
    generations = {httpx.get(f"{app.url}/health", timeout=60).json()["index"]["generation"] for app in apps}
    assert len(generations) == 1
    for query in QUERIES:
        assert _search(apps[0], query) == _search(apps[1], query), query

    path = tmp_path / "platypus.jsonl"
    path.write_text(json.dumps({"title": PLATYPUS, "abstract": PLATYPUS_ABSTRACT}) + "\n")
    _ingest(env, path)
    ingested = time.monotonic()

    for app in apps:
        while not (hits := _search(app, QUERIES[0])) or hits[0]["title"] != PLATYPUS:
            assert time.monotonic() - ingested < DEADLINE_S, f"{app.url} never saw the new paper; top: {hits[:1]}"
            time.sleep(0.5)
        assert hits[0]["paper_id"] == paper_id_for(PLATYPUS)
        assert hits[0]["dense"] is not None and hits[0]["lexical"] is not None  # dense and BM25, one generation
    print(f"both workers saw it {time.monotonic() - ingested:.1f} s after the ingest process exited")

    health = [httpx.get(f"{app.url}/health", timeout=60).json()["index"] for app in apps]
    assert health[0] == health[1] and health[0]["generation"] == generations.pop() + 1
    for query in QUERIES:  # the same generation: the same papers, passages and scores from each worker
        assert _search(apps[0], query) == _search(apps[1], query), query
