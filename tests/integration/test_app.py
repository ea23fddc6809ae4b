"""The real app (a `paper-agent serve` process) with the real model server, called with real clients."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import openai
import pytest
from httpx_sse import connect_sse

from tests.integration.conftest import APP_KEY, RunningApp

pytestmark = pytest.mark.integration


def _question(public_questions: list[dict], kind: str = "lookup") -> dict:
    return next(q for q in public_questions if q["type"] == kind)


def _assert_citations_resolve(app: RunningApp, citations: list[dict[str, Any]]) -> None:
    """Every citation names an ingested paper, by id and by title."""
    for citation in citations:
        paper = httpx.get(f"{app.url}/papers/{citation['paper_id']}", timeout=30)
        assert paper.status_code == 200, citation
        assert paper.json()["title"] == citation["title"] and citation["quote"]


def test_health_reports_the_index_and_a_model_that_answers(app_server: RunningApp) -> None:
    health = httpx.get(f"{app_server.url}/health", timeout=60).json()
    assert health["status"] == "ok"
    assert health["index"] == {"papers": 492, "chunks": 783, "generation": 1} and health["model"]["ok"] is True


def test_ask_answers_with_citations_to_ingested_papers(app_server: RunningApp, public_questions: list[dict]) -> None:
    question = _question(public_questions)
    got = httpx.post(f"{app_server.url}/ask", json={"question": question["question"]}, timeout=300)
    assert got.status_code == 200
    body = got.json()
    assert body["answer"] and {"total_ms"} <= set(body["timings"])
    assert body["refused"] or body["citations"], "an answer that is not a refusal cites its papers"
    assert 0.0 <= body["answerability"] <= 1.0 and isinstance(body["closest"], list)
    _assert_citations_resolve(app_server, body["citations"])
    retrieved = {p["paper_id"] for p in body["passages"]}
    assert set(question["gold_ids"]) & retrieved, "the expected paper was shown to the model"


def test_a_follow_up_question_is_answered_in_context(app_server: RunningApp, public_questions: list[dict]) -> None:
    question = _question(public_questions)
    first = httpx.post(f"{app_server.url}/ask", json={"question": question["question"]}, timeout=300).json()
    history = [{"role": "user", "content": question["question"]}, {"role": "assistant", "content": first["answer"]}]
    got = httpx.post(
        f"{app_server.url}/ask",
        json={"question": "What data did they evaluate it on?", "history": history},
        timeout=300,
    )
    assert got.status_code == 200
    _assert_citations_resolve(app_server, got.json()["citations"])


def test_ask_stream_sends_sources_deltas_then_the_final_answer(
    app_server: RunningApp, public_questions: list[dict]
) -> None:
    question = _question(public_questions, "detail")
    with (
        httpx.Client(timeout=300) as client,
        connect_sse(client, "POST", f"{app_server.url}/ask/stream", json={"question": question["question"]}) as stream,
    ):
        assert stream.response.status_code == 200
        events = [(sse.event, sse.json()) for sse in stream.iter_sse()]
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "final" and "delta" in kinds
    assert set(kinds[1:-1]) == {"delta"}
    assert events[0][1]["passages"], "sources come first, before any token"
    final = events[-1][1]
    assert final["answer"] and "ttft_ms" in final["timings"]
    _assert_citations_resolve(app_server, final["citations"])
    metrics = httpx.get(f"{app_server.url}/metrics", timeout=30).text
    assert 'paper_agent_time_to_first_token_seconds_count{endpoint="/ask/stream"}' in metrics


def test_the_openai_client_uses_the_agent_as_a_model(app_server: RunningApp, public_questions: list[dict]) -> None:
    client = openai.OpenAI(base_url=f"{app_server.url}/v1", api_key="unused", max_retries=0, timeout=300)
    assert [m.id for m in client.models.list()] == ["paper-agent"]
    question = _question(public_questions)["question"]
    completion = client.chat.completions.create(model="paper-agent", messages=[{"role": "user", "content": question}])
    text = completion.choices[0].message.content or ""
    citations = completion.model_extra["citations"]
    assert text and completion.choices[0].finish_reason == "stop"
    if citations:
        assert "References:" in text and all(c["title"] in text for c in citations)
    _assert_citations_resolve(app_server, citations)


def test_the_openai_client_streams(app_server: RunningApp, public_questions: list[dict]) -> None:
    client = openai.OpenAI(base_url=f"{app_server.url}/v1", api_key="unused", max_retries=0, timeout=300)
    question = _question(public_questions, "detail")["question"]
    chunks = list(
        client.chat.completions.create(
            model="paper-agent", messages=[{"role": "user", "content": question}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    draft = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content", "") for c in chunks if c.choices)
    last = chunks[-1]
    assert text and last.choices[0].finish_reason == "stop"
    citations = last.model_extra["citations"]
    if citations:
        assert "References:" in text and draft, "the draft streams as reasoning, the checked answer as content"
    _assert_citations_resolve(app_server, citations)


def test_search_papers_and_bad_requests(app_server: RunningApp, public_questions: list[dict]) -> None:
    question = _question(public_questions)
    got = httpx.get(f"{app_server.url}/search", params={"q": question["question"], "k": 3}, timeout=60)
    assert got.status_code == 200
    results = got.json()["results"]
    assert len(results) == 3 and question["gold_ids"][0] in [r["paper_id"] for r in results]
    assert httpx.get(f"{app_server.url}/papers/{results[0]['paper_id']}", timeout=30).json()["abstract"]
    assert httpx.get(f"{app_server.url}/papers/p00000000", timeout=30).status_code == 404
    bad = httpx.get(f"{app_server.url}/search", params={"q": "x", "k": 0}, timeout=30)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "k"]
    for question_text in ("", "x" * 2001):
        bad = httpx.post(f"{app_server.url}/ask", json={"question": question_text}, timeout=30)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "question"]


def test_overload_answers_503_with_retry_after(app_server: RunningApp, public_questions: list[dict]) -> None:
    """The fixture's queue holds 2: of 6 questions sent at once, the ones past it are refused at once."""
    statuses: list[tuple[int, str | None]] = []

    def ask(question: str) -> None:
        got = httpx.post(f"{app_server.url}/ask", json={"question": question}, timeout=600)
        statuses.append((got.status_code, got.headers.get("retry-after")))

    threads = [threading.Thread(target=ask, args=(q["question"],)) for q in public_questions[:6]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(code for code, _ in statuses)
    assert set(codes) <= {200, 503} and codes.count(200) >= 2 and 503 in codes
    assert all(retry is not None and int(retry) > 0 for code, retry in statuses if code == 503)


# --- the model server is down, and the app wants a key -------------------------------------------------------


# Answerable, so the model is asked (a question the decision refuses never reaches the model server).
PROP = "Which pre-training task for ad-hoc retrieval predicts which of two word sets better represents a document?"


def test_model_down_is_503_with_the_reason_while_search_works(locked_app_without_model: RunningApp) -> None:
    app, key = locked_app_without_model, {"Authorization": f"Bearer {APP_KEY}"}
    got = httpx.post(f"{app.url}/ask", json={"question": PROP}, headers=key, timeout=60)
    assert got.status_code == 503 and "unavailable" in got.json()["detail"]
    stream = httpx.post(f"{app.url}/ask/stream", json={"question": PROP}, headers=key, timeout=60)
    assert stream.status_code == 503
    client = openai.OpenAI(base_url=f"{app.url}/v1", api_key=APP_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="paper-agent", messages=[{"role": "user", "content": PROP}])
    assert refused.value.status_code == 503
    search = httpx.get(f"{app.url}/search", params={"q": "ad-hoc retrieval pre-training"}, headers=key, timeout=60)
    assert search.status_code == 200 and search.json()["results"]
    paper_id = search.json()["results"][0]["paper_id"]
    assert httpx.get(f"{app.url}/papers/{paper_id}", headers=key, timeout=30).status_code == 200
    health = httpx.get(f"{app.url}/health", timeout=60).json()
    assert health["status"] == "degraded" and health["model"]["ok"] is False and health["model"]["reason"]


def test_every_route_but_health_wants_the_key(locked_app_without_model: RunningApp) -> None:
    app = locked_app_without_model
    assert httpx.get(f"{app.url}/health", timeout=60).status_code == 200
    for method, path in [("GET", "/search?q=x"), ("GET", "/papers/p1"), ("POST", "/ask"), ("GET", "/v1/models")]:
        assert httpx.request(method, f"{app.url}{path}", json={"question": "x"}, timeout=30).status_code == 401
    assert httpx.get(f"{app.url}/metrics", timeout=30).status_code == 401
    client = openai.OpenAI(base_url=f"{app.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    assert [m.id for m in openai.OpenAI(base_url=f"{app.url}/v1", api_key=APP_KEY).models.list()] == ["paper-agent"]
