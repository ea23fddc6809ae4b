"""Papers added and removed through the real app (`paper-agent serve`, real models, real model server)."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest

from tests.integration.conftest import RunningApp
from tests.pdfs import make_pdf

pytestmark = pytest.mark.integration

# A paper the bundled corpus has nothing like, so a question about it can only be answered from the upload.
TITLE = "Lattice Boltzmann Surrogates for Glacier Calving Forecasts"
PAGES = [
    "Abstract. We forecast glacier calving events with a learned surrogate of a lattice Boltzmann ice flow "
    "simulator. The surrogate is a graph neural network trained on simulated fracture fields of tidewater "
    "glaciers, and it predicts calving front retreat forty times faster than the simulator.",
    "Results. On twelve Greenland outlet glaciers the surrogate forecasts calving front positions within "
    "120 metres over a season, matching the lattice Boltzmann simulator while running on a laptop.",
]
QUESTIONS = [
    "Which paper forecasts glacier calving with a lattice Boltzmann surrogate?",
    "How does the lattice Boltzmann surrogate forecast glacier calving?",
    "What does the graph neural network surrogate predict for tidewater glaciers?",
]


def wait_for(app: RunningApp, job: dict[str, Any], timeout_s: float = 300) -> dict[str, Any]:
    """The job once it is done or failed, polled at `GET /jobs/{id}`."""
    deadline = time.monotonic() + timeout_s
    while job["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, f"job {job['job_id']} still {job['state']} after {timeout_s} s"
        time.sleep(0.5)
        job = httpx.get(f"{app.url}/jobs/{job['job_id']}", timeout=30).json()
    return job


def upload_pdf(app: RunningApp, title: str, pages: list[str | None], name: str = "paper.pdf") -> dict[str, Any]:
    files = [("files", (name, make_pdf(pages, title=title), "application/pdf"))]
    posted = httpx.post(f"{app.url}/papers", files=files, timeout=60)
    assert posted.status_code in (200, 202), posted.text
    return wait_for(app, posted.json())


def hit_for(app: RunningApp, query: str, paper_id: str) -> dict[str, Any] | None:
    results = httpx.get(f"{app.url}/search", params={"q": query, "k": 20}, timeout=60).json()["results"]
    return next((hit for hit in results if hit["paper_id"] == paper_id), None)


def test_an_uploaded_pdf_is_searched_cited_and_removed(papers_app: RunningApp) -> None:
    app = papers_app
    before = httpx.get(f"{app.url}/papers", params={"limit": 1}, timeout=30).json()["total"]
    job = upload_pdf(app, TITLE, [*PAGES, None])
    assert job["state"] == "done", job
    result = job["result"]
    assert [r["title"] for r in result["added"]] == [TITLE] and result["skipped"] == []
    paper_id = result["paper_ids"][0]
    assert job["progress"]["chunks_written"] == result["embedded"] > 0
    assert httpx.get(f"{app.url}/papers", params={"limit": 1}, timeout=30).json()["total"] == before + 1

    hit = hit_for(app, "glacier calving lattice Boltzmann surrogate", paper_id)
    assert hit is not None and hit["dense"] is not None and hit["lexical"] is not None, "in both indexes"
    assert {p["page"] for p in hit["passages"]} <= {1, 2}

    answers = [httpx.post(f"{app.url}/ask", json={"question": q}, timeout=300).json() for q in QUESTIONS]
    cited = [a for a in answers if any(c["paper_id"] == paper_id for c in a["citations"])]
    assert cited, [a["answer"] for a in answers]

    removed = httpx.delete(f"{app.url}/papers/{paper_id}", timeout=120)
    assert removed.status_code == 200 and removed.json()["result"]["removed"] == [paper_id]
    assert httpx.get(f"{app.url}/papers/{paper_id}", timeout=30).status_code == 404
    assert hit_for(app, "glacier calving lattice Boltzmann surrogate", paper_id) is None, "gone from dense and BM25"
    assert httpx.get(f"{app.url}/papers", params={"limit": 1}, timeout=30).json()["total"] == before


def test_bad_files_are_skipped_with_their_reason_and_the_rest_kept(papers_app: RunningApp) -> None:
    app = papers_app
    files = [
        ("files", ("scan.pdf", make_pdf([None, None]), "application/pdf")),
        ("files", ("empty.pdf", b"", "application/pdf")),
        ("files", ("notes.jsonl", b'{"title": "Kept Paper On Glacier Notes", "abstract": "Kept."}\n[1\n', "")),
    ]
    job = wait_for(app, httpx.post(f"{app.url}/papers", files=files, timeout=60).json())
    result = job["result"]
    assert [r["title"] for r in result["added"]] == ["Kept Paper On Glacier Notes"]
    reasons = {(s["file"], s["line"]): s["reason"] for s in result["skipped"]}
    assert reasons[("scan.pdf", None)].startswith("PDF has no extractable text")
    assert reasons[("empty.pdf", None)] == "empty file" and ("notes.jsonl", 2) in reasons
    assert httpx.delete(f"{app.url}/papers/{result['paper_ids'][0]}", timeout=120).status_code == 200

    # A declared size over the limit is refused before any of the body is read (so a raw request, body unsent).
    host, port = app.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(
            b"POST /papers HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (1 << 40)
        )
        reply = raw.makefile("rb").read().decode()
    assert reply.startswith("HTTP/1.1 413") and "serve.max_upload_bytes" in reply
