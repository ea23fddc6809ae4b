"""One live index: a running `paper-agent serve` answers from what `paper-agent ingest`, run in another process on
the same data dir, adds — dense and lexical together — and from the previous state when that ingest is killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from paper_agent.llm_server import free_port
from paper_agent.settings import Settings
from paper_agent.types import paper_id_for
from tests.integration.conftest import PROJECT_ROOT, RunningApp, start_app, stop_app

pytestmark = pytest.mark.integration

QUOKKA = "Counting quokkas on Rottnest Island from drone imagery"
QUOKKA_ABSTRACT = (
    "We count quokkas on Rottnest Island with drones. A detector trained on 4,000 labelled frames finds the "
    "marsupials under shrubs, and the census it yields matches a manual count within three percent. "
    "We call the method zorblatt counting."
)
DEADLINE_S = 180.0  # generous: the test checks that the app follows, not how fast on a busy machine


@pytest.fixture
def live_app(indexed_settings: Settings, tmp_path: Path) -> Iterator[tuple[RunningApp, Path]]:
    """The real app over a private copy of the ingested bundled corpus (with no model server: search only)."""
    data_dir = tmp_path / "data"
    shutil.copytree(indexed_settings.data_dir, data_dir)
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    app = start_app(data_dir, tmp_path / "app.log", PAPER_AGENT_LLM__BASE_URL=nowhere, PAPER_AGENT_INDEX__REFRESH_S="1")
    yield app, data_dir
    stop_app(app)


def _ingest(data_dir: Path, path: Path, **env: str) -> subprocess.Popen[bytes]:
    """`paper-agent ingest PATH` in a process of its own on `data_dir`."""
    environment = os.environ | {"PAPER_AGENT_DATA_DIR": str(data_dir)} | env
    command = [sys.executable, "-m", "paper_agent.cli", "ingest", "-q", str(path)]
    return subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _search(app: RunningApp, query: str, k: int = 5) -> list[dict]:
    response = httpx.get(f"{app.url}/search", params={"q": query, "k": k}, timeout=60)
    response.raise_for_status()
    return response.json()["results"]


def _health(app: RunningApp) -> dict:
    return httpx.get(f"{app.url}/health", timeout=60).json()["index"]


def _write(path: Path, papers: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"title": t, "abstract": a}) + "\n" for t, a in papers.items()))
    return path


def test_the_running_app_finds_papers_another_process_ingests(
    live_app: tuple[RunningApp, Path], tmp_path: Path
) -> None:
    app, data_dir = live_app
    before = _health(app)
    assert QUOKKA not in {hit["title"] for hit in _search(app, "quokka census from drones")}
    assert all(hit["lexical"] is None for hit in _search(app, "zorblatt"))  # a word no chunk has: BM25 finds none

    writer = _ingest(data_dir, _write(tmp_path / "quokka.jsonl", {QUOKKA: QUOKKA_ABSTRACT}))
    output, _ = writer.communicate(timeout=600)
    assert writer.returncode == 0, output.decode()
    ingested = time.monotonic()

    while not (hits := _search(app, "quokka census from drones")) or hits[0]["title"] != QUOKKA:
        assert time.monotonic() - ingested < DEADLINE_S, f"the app never saw the new paper; top: {hits[:1]}"
        time.sleep(0.5)
    print(f"visible {time.monotonic() - ingested:.1f} s after the ingest process exited")
    top = hits[0]
    assert top["dense"] is not None and top["lexical"] is not None  # found by both retrievers, one generation
    assert top["paper_id"] == paper_id_for(QUOKKA)
    made_up = _search(app, "zorblatt")  # only BM25 can match a made-up word: now it does, in the new paper alone
    assert [hit["title"] for hit in made_up if hit["lexical"] is not None] == [QUOKKA] and made_up[0]["title"] == QUOKKA
    after = _health(app)
    assert after["generation"] == before["generation"] + 1 and after["papers"] == before["papers"] + 1
    paper = httpx.get(f"{app.url}/papers/{paper_id_for(QUOKKA)}", timeout=60).json()
    assert paper["title"] == QUOKKA


def test_an_ingest_killed_half_way_leaves_the_app_on_the_previous_state(
    live_app: tuple[RunningApp, Path], tmp_path: Path
) -> None:
    app, data_dir = live_app
    before = _health(app)
    titles = {f"Marsupial survey {n}: wombat burrow {n}": f"Burrow {n} of the glorpwombat colony." for n in range(150)}
    path = _write(tmp_path / "wombats.jsonl", titles)
    writer = _ingest(data_dir, path, PAPER_AGENT_INDEX__EMBED_BATCH_SIZE="2")
    deadline = time.monotonic() + 600
    while _health(app)["chunks"] == before["chunks"]:  # Chroma's own count: it sees a write in progress at once
        assert writer.poll() is None, "the ingest finished before it could be killed: make it longer"
        assert time.monotonic() < deadline, "the ingest stored nothing in 600 s"
        time.sleep(0.2)
    writer.send_signal(signal.SIGKILL)
    writer.wait(60)
    stored = _health(app)
    assert stored["chunks"] > before["chunks"] and stored["generation"] == before["generation"]  # half-written ...

    time.sleep(3)  # a few refresh periods: the app checks the generation and finds it unchanged
    for query in ("glorpwombat", "wombat burrow survey"):  # ... and invisible to both retrievers
        assert not {hit["title"] for hit in _search(app, query, 10)} & set(titles), query

    rerun = _ingest(data_dir, path)
    output, _ = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, output.decode()
    done = time.monotonic()
    while (hits := _search(app, "glorpwombat wombat burrow survey", 10))[0]["title"] not in titles:
        assert time.monotonic() - done < DEADLINE_S, "the app never saw the completed ingest"
        time.sleep(0.5)
    assert {hit["title"] for hit in hits} <= set(titles) and hits[0]["dense"] is not None and hits[0]["lexical"]
    after = _health(app)
    assert after["generation"] == before["generation"] + 1 and after["papers"] == before["papers"] + len(titles)


WRITER = textwrap.dedent(
    """
    import hashlib, json, sys, time
    import numpy as np
    from pathlib import Path
    from paper_agent.index import Index
    from paper_agent.settings import Settings
    from paper_agent.types import Paper

    class RandomEmbedder:  # a unit vector per text: every record is its own nearest neighbour
        name, fingerprint = "random-embedder", None
        def embed(self, texts, *, show_progress=False):
            rows = [np.random.default_rng(int(hashlib.md5(t.encode()).hexdigest()[:8], 16)).normal(size=32)
                    for t in texts]
            return np.array([r / np.linalg.norm(r) for r in rows], dtype=np.float32)

    def papers(prefix, n):
        return [Paper(id=f"{prefix}{i}", title=f"{prefix} {i}", text=f"{prefix} text {i}", source=prefix)
                for i in range(n)]
    """
)


def test_a_writer_opened_before_another_process_wrote_loses_none_of_its_records(tmp_path: Path) -> None:
    """chromadb 1.5.9: a client whose graph predates another process's write, writing itself, used to drop that
    process's records from vector search for good (agent/generation.py). `Index.writing()` reloads first."""
    settings = {"PAPER_AGENT_DATA_DIR": str(tmp_path / "data")}
    script = WRITER + textwrap.dedent(
        """
        index = Index(Settings(), vectors_dir=None)
        if sys.argv[1] == "opened-first":
            index.ingest(papers("a", 10), RandomEmbedder(), progress=False)
            index.query(RandomEmbedder().embed(["x"])[0], 1, RandomEmbedder.name)  # its graph is loaded now
            Path(sys.argv[2]).write_text("ready")
            while not Path(sys.argv[3]).exists():
                time.sleep(0.1)
            index.ingest(papers("c", 1500), RandomEmbedder(), progress=False)
        elif sys.argv[1] == "other":
            index.ingest(papers("b", 3000), RandomEmbedder(), progress=False)
        else:
            got = index.chunks.get(include=["embeddings"])
            nearest = index.chunks.query(query_embeddings=got["embeddings"], n_results=1, include=[])["ids"]
            print(json.dumps({"records": len(got["ids"]), "lost": sum(i != n[0] for i, n in zip(got["ids"], nearest))}))
        """
    )
    env = os.environ | settings
    ready, go = tmp_path / "ready", tmp_path / "go"
    run = [sys.executable, "-c", script]
    first = subprocess.Popen([*run, "opened-first", str(ready), str(go)], cwd=PROJECT_ROOT, env=env)
    deadline = time.monotonic() + 300
    while not ready.exists():
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    subprocess.run([*run, "other"], cwd=PROJECT_ROOT, env=env, check=True, timeout=600)
    go.write_text("go")
    assert first.wait(600) == 0
    check = subprocess.run([*run, "check"], cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, timeout=600)
    assert json.loads(check.stdout.decode().strip().splitlines()[-1]) == {"records": 4510, "lost": 0}
