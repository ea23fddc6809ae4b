"""Adding and removing papers over HTTP with a fake agent: jobs, results, limits (413/415/422), keys, removal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from paper_agent.web.app import create_app
from tests.conftest import HashEmbedder
from tests.pdfs import encrypted_pdf, make_pdf
from tests.unit.test_app import PROP, FakeAgent, make_agent

TITLE = "Tensor Sketches for Streaming Kernel Regression"
BODY = "We sketch kernel feature maps with tensor sketches so streaming kernel regression runs in linear time."
RECORD = {"title": "Quantum Annealing Schedules", "abstract": "We tune quantum annealing schedules on Ising chains."}


def _agent(tmp_path: Path, **serve: Any) -> FakeAgent:
    agent = make_agent(tmp_path, **serve)
    agent.__dict__["sentence_embedder"] = HashEmbedder()  # not MiniLM: these tests check the plumbing
    return agent


@pytest.fixture
def agent(tmp_path: Path) -> FakeAgent:
    return _agent(tmp_path, max_upload_bytes=64 * 1024)


@pytest.fixture
def client(agent: FakeAgent) -> Iterator[TestClient]:
    with TestClient(create_app(agent)) as test_client:
        yield test_client


def test_a_json_record_is_added_and_found(client: TestClient, agent: FakeAgent) -> None:
    got = client.post("/papers?wait=30", json=RECORD)
    assert got.status_code == 200, got.text
    job = got.json()
    assert job["state"] == "done" and job["kind"] == "ingest"
    result = job["result"]
    assert [r["title"] for r in result["added"]] == [RECORD["title"]] and result["merged"] == []
    assert result["paper_ids"] == [r["paper_id"] for r in result["added"]] and result["skipped"] == []
    assert client.get(f"/jobs/{job['job_id']}").json()["state"] == "done"
    listing = client.get("/papers", params={"limit": 2}).json()
    assert listing["total"] == 3 and len(listing["papers"]) == 2
    hits = client.get("/search", params={"q": "quantum annealing Ising"}).json()["results"]
    assert hits[0]["paper_id"] == result["paper_ids"][0]
    assert hits[0]["lexical"] is not None, "the BM25 index was refreshed"

    again = client.post("/papers?wait=30", json=[RECORD, RECORD]).json()["result"]
    assert again["added"] == [] and [r["title"] for r in again["merged"]] == [RECORD["title"]]
    assert again["repeated"] == 1 and again["embedded"] == 0


def test_files_are_read_by_the_cli_readers_and_bad_ones_skipped_with_their_reason(
    client: TestClient, agent: FakeAgent
) -> None:
    files = [
        (
            "files",
            ("sketch.pdf", make_pdf([BODY, "The second page reports the results."], title=TITLE), "application/pdf"),
        ),
        ("files", ("scan.pdf", make_pdf([None]), "application/pdf")),
        ("files", ("locked.pdf", encrypted_pdf(BODY), "application/pdf")),
        ("files", ("empty.pdf", b"", "application/pdf")),
        ("files", ("records.jsonl", b'{"title": "T", "abstract": "A"}\n{not json\n', "application/octet-stream")),
    ]
    got = client.post("/papers", files=files, params={"wait": 30})
    assert got.status_code == 200, got.text
    result = got.json()["result"]
    assert sorted(r["title"] for r in result["added"]) == ["T", TITLE]
    reasons = {(s["file"], s["line"]): s["reason"] for s in result["skipped"]}
    assert reasons[("scan.pdf", None)] == "PDF has no extractable text (scanned images?)"
    assert reasons[("locked.pdf", None)] == "PDF is encrypted (it needs a password to open)"
    assert reasons[("empty.pdf", None)] == "empty file"
    assert reasons[("records.jsonl", 2)].startswith("malformed JSON")
    paper_id = next(r["paper_id"] for r in result["added"] if r["title"] == TITLE)
    pages = {p.page for p in agent.index.iter_chunks() if p.paper_id == paper_id}
    assert pages <= {1, 2} and 1 in pages
    uploads = agent.settings.data_dir / "uploads"
    kept = sorted(p.name for p in uploads.rglob("*") if p.is_file())
    assert kept == ["001-sketch.pdf", "005-records.jsonl"], "skipped files are not kept"


def test_removing_a_paper_takes_it_out_of_every_index(client: TestClient, agent: FakeAgent) -> None:
    added = client.post("/papers?wait=30", json=RECORD).json()["result"]["paper_ids"][0]
    sentences = agent.index.sentences.count()
    got = client.delete(f"/papers/{added}")
    assert got.status_code == 200 and got.json()["result"] == {"removed": [added], "not_found": []}
    assert client.get(f"/papers/{added}").status_code == 404
    assert all(p.paper_id != added for p in agent.index.iter_chunks())
    assert all(p.paper_id != added for p in agent.lexical.passages)
    assert agent.index.sentences.count() < sentences
    assert client.get("/papers").json()["total"] == 2
    assert not list((agent.settings.data_dir / "uploads").rglob("*.json")), "its uploaded file went with it"
    assert client.delete(f"/papers/{added}").status_code == 404
    assert client.delete(f"/papers/{PROP.id}").status_code == 200


def test_limits_answer_413_415_422_and_400_naming_the_problem(client: TestClient) -> None:
    too_big = client.post("/papers", files=[("files", ("big.pdf", b"%PDF-" + b"x" * 70_000, "application/pdf"))])
    assert too_big.status_code == 413 and "serve.max_upload_bytes" in too_big.json()["detail"]
    image = client.post("/papers", files=[("files", ("figure.png", b"\x89PNG", "image/png"))])
    assert image.status_code == 415 and "figure.png" in image.json()["detail"]
    text = client.post("/papers", content=b"title", headers={"content-type": "text/plain"})
    assert text.status_code == 415 and "text/plain" in text.json()["detail"]
    untitled = client.post("/papers", json={"abstract": "No title here."})
    assert untitled.status_code == 422 and untitled.json()["detail"][0]["loc"][:2] == ["body", "title"]
    misspelt = client.post("/papers", files={"file": ("a.pdf", b"x")})
    assert misspelt.status_code == 422 and misspelt.json()["detail"][0]["loc"] == ["body", "file"]
    extra = client.post("/papers", files={"files": ("a.jsonl", b"{}")}, data={"id": "p1"})  # not silently ignored
    assert extra.status_code == 422 and [e["loc"] for e in extra.json()["detail"]] == [["body", "id"]]
    broken = client.post("/papers", content=b"{nope", headers={"content-type": "application/json"})
    assert broken.status_code == 400
    assert client.get("/papers", params={"limit": 0}).status_code == 422
    assert client.get("/jobs/nope").status_code == 404
    assert client.post("/search").status_code == 405


def test_a_slow_job_answers_202_with_where_to_follow_it(client: TestClient, agent: FakeAgent) -> None:
    got = client.post("/papers", json=RECORD)  # wait=0: the job is queued or running when the answer goes
    assert got.status_code in (200, 202)
    if got.status_code == 202:
        assert got.headers["location"] == f"/jobs/{got.json()['job_id']}"
    job = agent_job(client, got.json()["job_id"])
    assert job["state"] == "done"


def agent_job(client: TestClient, job_id: str) -> dict[str, Any]:
    for _ in range(300):
        job = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


def test_the_write_routes_need_the_key(tmp_path: Path) -> None:
    with TestClient(create_app(_agent(tmp_path, api_key="k"))) as client:
        assert client.post("/papers", json=RECORD).status_code == 401
        assert client.delete(f"/papers/{PROP.id}").status_code == 401
        assert client.get("/papers").status_code == 401
        assert client.get("/jobs/x").status_code == 401
        ok = client.post("/papers?wait=30", json=RECORD, headers={"Authorization": "Bearer k"})
        assert ok.status_code == 200


def test_the_routes_document_their_statuses_and_bodies(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    post = paths["/papers"]["post"]
    assert set(post["responses"]) == {"200", "202", "400", "413", "415", "422"}
    assert set(post["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert post["requestBody"]["content"]["multipart/form-data"]["schema"]["additionalProperties"] is False
    assert set(paths["/papers/{paper_id}"]["delete"]["responses"]) == {"200", "202", "404", "422"}
    assert set(paths["/papers"]["get"]["responses"]) == {"200", "422"}
    assert set(paths["/jobs/{job_id}"]["get"]["responses"]) == {"200", "404", "422"}
