"""The web app's contract with a fake agent: shapes, streams, and every error code (422/404/401/503)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from paper_agent.llm import Messages, OpenAIChatModel
from paper_agent.llm_supervisor import Supervisor
from paper_agent.query_embed import CachingEmbedder, QueryCache
from paper_agent.service import PaperAgent
from paper_agent.settings import LLMSettings, ServeSettings, Settings
from paper_agent.types import Answer, Citation, Delta, Final, Paper, Sources, StreamEvent
from paper_agent.web.app import create_app
from tests.conftest import HashEmbedder

PROP = Paper(
    id="p0000prop",
    title="PROP: Pre-training with Representative Words Prediction for Ad-hoc Retrieval",
    text="PROP pre-trains a transformer for ad-hoc retrieval. It predicts representative word sets of documents.",
    source="unit.jsonl",
    authors=("Xinyu Ma", "Jiafeng Guo"),
    year=2021,
)
SPARSE = Paper(
    id="p0000sprs",
    title="Sparse Attention Kernels",
    text="We make sparse attention fast on GPUs with block kernels.",
    source="unit.jsonl",
)
QUOTE = "It predicts representative word sets of documents."
DOWN_URL = "http://127.0.0.1:9/v1"  # the discard port: nothing listens, connections are refused at once


class ScriptedModel:
    """A chat model that answers every request with a fixed reply and records the requests."""

    url = "scripted://model"
    model = "scripted"

    def __init__(self) -> None:
        self.calls: list[Messages] = []

    def complete(self, messages: Messages, **_: Any) -> str:
        self.calls.append(messages)
        return "OK"

    def stream(self, messages: Messages, **_: Any) -> Iterator[str]:
        yield self.complete(messages)


class FakeAgent(PaperAgent):
    """The real index and search (temp Chroma, hash embedder); a scripted answer instead of the answer stage.

    The answer's draft and citations are fixed; the model is asked once, so a model that is down fails the
    question exactly where the real agent would: after retrieval, before the first token.
    """

    def __init__(self, settings: Settings, model: Any) -> None:
        super().__init__(settings, HashEmbedder(), chat_model=model)
        self.questions: list[tuple[str, list[dict[str, str]] | None, int | None]] = []
        self.hold: threading.Event | None = None  # set: each answer waits for it before its final event

    def ask_stream(
        self, question: str, history: list[dict[str, str]] | None = None, top_k: int | None = None
    ) -> Iterator[StreamEvent]:
        self.questions.append((question, history, top_k))
        passages = self.retriever.passages(question, 4)
        yield Sources(tuple(passages), question)
        self.chat_model.complete([{"role": "user", "content": question}], max_tokens=8)
        yield Delta("PROP pre-trains for retrieval ")
        yield Delta("by predicting word sets [1].")
        if self.hold is not None:
            self.hold.wait(10)
        citation = Citation(1, PROP.id, PROP.title, QUOTE, 0.9)
        text = "PROP pre-trains for retrieval by predicting word sets [1]."
        yield Final(Answer(text, [citation], passages, timings={"ttft_ms": 12.0, "total_ms": 30.0}, question=question))

    def ask(self, question: str, history: list[dict[str, str]] | None = None, top_k: int | None = None) -> Answer:
        *_, final = self.ask_stream(question, history, top_k)
        assert isinstance(final, Final)
        return final.answer


def make_agent(tmp_path: Path, *, model: Any = None, ingest: bool = True, **serve: Any) -> FakeAgent:
    settings = Settings(data_dir=tmp_path / "index", serve=ServeSettings(ui=False, max_question_chars=200, **serve))
    agent = FakeAgent(settings, model if model is not None else ScriptedModel())
    if ingest:
        agent.index.ingest([PROP, SPARSE], agent.embedder, progress=False)
    return agent


@pytest.fixture
def agent(tmp_path: Path) -> FakeAgent:
    return make_agent(tmp_path)


@pytest.fixture
def client(agent: FakeAgent) -> Iterator[TestClient]:
    with TestClient(create_app(agent)) as test_client:
        yield test_client


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def error_field(response: Any) -> list[Any]:
    return [e["loc"] for e in response.json()["detail"]]


# --- the question routes ----------------------------------------------------------------------------------


def test_ask_returns_the_answer_with_citations(client: TestClient) -> None:
    got = client.post("/ask", json={"question": "What does PROP pre-train for?"})
    assert got.status_code == 200
    body = got.json()
    assert "[1]" in body["answer"] and body["refused"] is False
    assert body["citations"][0] | {"support": None} == {
        "number": 1,
        "paper_id": PROP.id,
        "title": PROP.title,
        "quote": QUOTE,
        "support": None,
    }
    assert body["timings"]["total_ms"] == 30.0


def test_ask_passes_history_and_top_k(client: TestClient, agent: FakeAgent) -> None:
    history = [{"role": "user", "content": "What is PROP?"}, {"role": "assistant", "content": "A method [1]."}]
    client.post("/ask", json={"question": "  And its data?  ", "history": history, "top_k": 3})
    assert agent.questions[-1] == ("And its data?", history, 3)


@pytest.mark.parametrize("question, says", [("", "at least 1"), ("   ", "pattern"), ("x" * 201, "at most 200")])
def test_a_bad_question_is_422_naming_the_field(client: TestClient, question: str, says: str) -> None:
    for route in ("/ask", "/ask/stream", "/v1/chat/completions"):
        body = (
            {"messages": [{"role": "user", "content": question}]} if route.startswith("/v1") else {"question": question}
        )
        got = client.post(route, json=body)
        assert got.status_code == 422
        if route.startswith("/v1"):  # a user message's content: a string, or one text part
            assert error_field(got)[0][:5] == ["body", "messages", 0, "user", "content"] and says in got.text
        else:
            assert error_field(got) == [["body", "question"]] and says in got.json()["detail"][0]["msg"]


def test_a_missing_question_or_bad_top_k_is_422(client: TestClient) -> None:
    assert error_field(client.post("/ask", json={})) == [["body", "question"]]
    assert error_field(client.post("/ask", json={"question": "q", "top_k": 0})) == [["body", "top_k"]]


def test_ask_stream_sends_sources_then_deltas_then_the_final_answer(client: TestClient) -> None:
    got = client.post("/ask/stream", json={"question": "What does PROP pre-train for?"})
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/event-stream")
    events = sse_events(got.text)
    kinds = [kind for kind, _ in events]
    assert kinds == ["sources", "delta", "delta", "final"]
    assert events[0][1]["passages"][0]["paper_id"] in {PROP.id, SPARSE.id}
    final = events[-1][1]
    assert final["citations"][0]["paper_id"] == PROP.id and "timings" in final


def test_search_ranks_papers(client: TestClient) -> None:
    got = client.get("/search", params={"q": "sparse attention kernels on GPUs", "k": 2})
    assert got.status_code == 200
    results = got.json()["results"]
    assert results[0]["paper_id"] == SPARSE.id and results[0]["title"] == SPARSE.title
    assert len(results) <= 2 and results[0]["score"] >= results[-1]["score"]


@pytest.mark.parametrize("params, field", [({"q": "x", "k": 0}, "k"), ({"q": "x", "k": 51}, "k"), ({"q": " "}, "q")])
def test_search_out_of_range_is_422_naming_the_field(client: TestClient, params: dict, field: str) -> None:
    got = client.get("/search", params=params)
    assert got.status_code == 422 and error_field(got) == [["query", field]]


def test_paper_metadata_and_404(client: TestClient) -> None:
    got = client.get(f"/papers/{PROP.id}")
    assert got.status_code == 200
    assert got.json() | {"source": None} == {
        "paper_id": PROP.id,
        "title": PROP.title,
        "abstract": PROP.text,
        "authors": list(PROP.authors),
        "year": 2021,
        "url": None,
        "source": None,
    }
    missing = client.get("/papers/p-nope")
    assert missing.status_code == 404 and "p-nope" in missing.json()["detail"]


def test_an_empty_index_is_503_not_500(tmp_path: Path) -> None:
    with TestClient(create_app(make_agent(tmp_path, ingest=False))) as client:
        got = client.get("/search", params={"q": "anything"})
    assert got.status_code == 503 and "ingest" in got.json()["detail"]


# --- failures ---------------------------------------------------------------------------------------------


def test_model_down_is_503_with_the_reason_while_search_and_papers_work(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, model=OpenAIChatModel(LLMSettings(), DOWN_URL))
    with TestClient(create_app(agent)) as client:
        for got in (
            client.post("/ask", json={"question": "What is PROP?"}),
            client.post("/ask/stream", json={"question": "What is PROP?"}),
            client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "What is PROP?"}]}),
        ):
            assert got.status_code == 503
            assert DOWN_URL in got.json()["detail"] and "connect" in got.json()["error"]["message"]
        assert client.get("/search", params={"q": "PROP"}).status_code == 200
        assert client.get(f"/papers/{PROP.id}").status_code == 200
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["model"]["ok"] is False
        assert health["index"] == {"papers": 2, "chunks": 2, "generation": 1}
        assert client.app.state.gate.in_flight == 0  # the failed questions gave their places back


def test_health_reports_the_index_and_a_real_model_request(client: TestClient, agent: FakeAgent) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"]["ok"] is True
    assert agent.chat_model.calls, "health must send a real request to the model"


def test_a_full_queue_is_503_with_retry_after(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, max_queue=1, retry_after_s=7)
    with TestClient(create_app(agent)) as client:
        client.app.state.gate.acquire()  # someone else's question is in flight
        for got in (
            client.post("/ask", json={"question": "What is PROP?"}),
            client.post("/ask/stream", json={"question": "What is PROP?"}),
            client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "What is PROP?"}]}),
        ):
            assert got.status_code == 503 and got.headers["retry-after"] == "7"
        client.app.state.gate.release()
        assert client.post("/ask", json={"question": "What is PROP?"}).status_code == 200
        assert "paper_agent_overloaded_total 3.0" in client.get("/metrics").text


def test_a_question_in_flight_holds_its_place_until_it_ends(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, max_queue=1)
    agent.hold = threading.Event()
    with TestClient(create_app(agent)) as client:
        first: dict[str, int] = {}
        worker = threading.Thread(
            target=lambda: first.update(code=client.post("/ask", json={"question": "a"}).status_code)
        )
        worker.start()
        while client.app.state.gate.in_flight == 0:
            threading.Event().wait(0.01)
        assert client.post("/ask", json={"question": "b"}).status_code == 503
        agent.hold.set()
        worker.join(10)
        assert first == {"code": 200} and client.app.state.gate.in_flight == 0


def test_api_key_guards_every_route_but_health(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, api_key="s3cret")
    with TestClient(create_app(agent)) as client:
        calls = [
            ("post", "/ask", {"json": {"question": "What is PROP?"}}),
            ("post", "/ask/stream", {"json": {"question": "What is PROP?"}}),
            ("get", "/search", {"params": {"q": "PROP"}}),
            ("get", f"/papers/{PROP.id}", {}),
            ("get", "/v1/models", {}),
            ("post", "/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": "PROP?"}]}}),
            ("get", "/metrics", {}),
        ]
        for method, path, kwargs in calls:
            assert getattr(client, method)(path, **kwargs).status_code == 401, path
            wrong = {"Authorization": "Bearer nope"}
            assert getattr(client, method)(path, headers=wrong, **kwargs).status_code == 401, path
            right = {"Authorization": "Bearer s3cret"}
            assert getattr(client, method)(path, headers=right, **kwargs).status_code == 200, path
        assert client.get("/health").status_code == 200


def test_metrics_count_requests_by_route_and_time_first_tokens(client: TestClient) -> None:
    client.get("/search", params={"q": "PROP"})
    client.get("/papers/p-nope")
    client.post("/ask/stream", json={"question": "What is PROP?"})
    text = client.get("/metrics").text
    assert 'paper_agent_http_requests_total{method="GET",route="/search",status="200"} 1.0' in text
    assert 'route="/papers/{paper_id}",status="404"' in text
    assert 'paper_agent_time_to_first_token_seconds_count{endpoint="/ask/stream"} 1.0' in text
    assert "paper_agent_generations_in_flight 0.0" in text


def test_metrics_report_the_query_cache_when_the_app_is_given_one(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    cache = QueryCache(16)
    agent.__dict__["embedder"] = CachingEmbedder(agent.embedder, cache)  # as `paper-agent serve` wraps it
    with TestClient(create_app(agent, cache)) as client:
        first = client.get("/search", params={"q": "PROP"}).json()
        assert client.get("/search", params={"q": "PROP"}).json() == first, "a cached query ranks the same"
        text = client.get("/metrics").text
    assert "paper_agent_query_cache_hits_total 1.0" in text and "paper_agent_query_cache_misses_total 1.0" in text


class DyingServer:
    """A supervised model server that is dead until restarted."""

    url = "http://127.0.0.1:8090/v1"

    def __init__(self) -> None:
        self.dead: str | None = None

    def probe(self) -> str | None:
        return self.dead

    def restart(self) -> None:
        self.dead = None

    def tail(self) -> str:
        return ""


def test_health_and_metrics_report_the_supervised_model_server(tmp_path: Path) -> None:
    server = DyingServer()
    supervisor = Supervisor(server, interval_s=1.0, backoff_s=30.0, backoff_max_s=60.0)  # stepped by hand
    with TestClient(create_app(make_agent(tmp_path), supervisor=supervisor)) as client:
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["model"]["supervisor"]["status"] == "up"
        server.dead = "process 42 exited"
        supervisor.step()
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["model"]["ok"] is True  # the scripted model still answers
        assert health["model"]["supervisor"] | {"retry_in_s": None} == {
            "status": "restarting",
            "url": server.url,
            "restarts": 0,
            "failed_restarts": 0,
            "failures": 1,
            "last_error": "process 42 exited",
            "retry_in_s": None,
        }
        assert "paper_agent_model_server_up 0.0" in client.get("/metrics").text
        supervisor._next_try = 0.0  # the back-off is over
        supervisor.step()
        text = client.get("/metrics").text
        assert client.get("/health").json()["status"] == "ok"
    assert "paper_agent_model_server_up 1.0" in text
    assert 'paper_agent_model_server_restarts_total{outcome="ready"} 1.0' in text
    assert 'paper_agent_model_server_restarts_total{outcome="failed"} 0.0' in text


def test_a_configured_model_server_is_only_reported(client: TestClient) -> None:
    assert client.get("/health").json()["model"]["supervisor"] is None
    assert "paper_agent_model_server" not in client.get("/metrics").text


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/ask", "/ask/stream", "/search", "/papers/{paper_id}", "/health", "/v1/chat/completions"} <= set(paths)


# --- OpenAI-compatible ------------------------------------------------------------------------------------


def test_v1_models_lists_the_agent(client: TestClient) -> None:
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["paper-agent"]


def test_chat_completion_keeps_citations_in_text_and_fields(client: TestClient) -> None:
    got = client.post(
        "/v1/chat/completions", json={"model": "paper-agent", "messages": [{"role": "user", "content": "PROP?"}]}
    )
    body = got.json()
    content = body["choices"][0]["message"]["content"]
    assert body["object"] == "chat.completion" and body["choices"][0]["finish_reason"] == "stop"
    assert content.startswith("PROP pre-trains") and "References:" in content and PROP.title in content
    assert body["citations"][0]["paper_id"] == PROP.id and body["refused"] is False


def test_chat_completion_history_drops_system_prompts_and_references(client: TestClient, agent: FakeAgent) -> None:
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What is PROP?"},
        {"role": "assistant", "content": 'A pre-training method [1].\n\nReferences:\n[1] PROP (p0000prop): "q"'},
        {"role": "user", "content": [{"type": "text", "text": "What does it predict?"}]},
    ]
    client.post("/v1/chat/completions", json={"messages": messages, "temperature": 0.3})
    question, history, _ = agent.questions[-1]
    assert question == "What does it predict?"
    assert history == [
        {"role": "user", "content": "What is PROP?"},
        {"role": "assistant", "content": "A pre-training method [1]."},
    ]


def test_chat_completion_without_a_user_message_is_422(client: TestClient) -> None:
    got = client.post("/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "hi"}]})
    assert got.status_code == 422 and error_field(got) == [["body", "messages"]]
    assert client.post("/v1/chat/completions", json={"messages": []}).status_code == 422
    unknown_role = {"messages": [{"role": "wizard", "content": "hi"}, {"role": "user", "content": "PROP?"}]}
    assert client.post("/v1/chat/completions", json=unknown_role).status_code == 422


def test_chat_completion_answers_the_last_user_message_and_leaves_out_later_ones(
    client: TestClient, agent: FakeAgent
) -> None:
    messages = [
        {"role": "user", "content": "What is PROP?"},
        {"role": "assistant", "content": "A method."},
        {"role": "user", "content": [{"type": "text", "text": "What does it predict?"}]},
        {"role": "assistant", "content": "It predicts"},  # a prefill: not part of the question
    ]
    assert client.post("/v1/chat/completions", json={"messages": messages}).status_code == 200
    assert agent.questions[-1][:2] == (
        "What does it predict?",
        [{"role": "user", "content": "What is PROP?"}, {"role": "assistant", "content": "A method."}],
    )


def test_chat_completion_stream_carries_the_draft_as_reasoning_and_the_verified_answer(client: TestClient) -> None:
    got = client.post("/v1/chat/completions", json={"stream": True, "messages": [{"role": "user", "content": "PROP?"}]})
    lines = [line.removeprefix("data: ") for line in got.text.split("\n\n") if line.strip()]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant"
    draft = "".join(d.get("reasoning_content", "") for d in deltas)
    text = "".join(d.get("content", "") for d in deltas)
    assert draft == "PROP pre-trains for retrieval by predicting word sets [1]."
    assert text.startswith("PROP pre-trains for retrieval by predicting word sets [1].\n\nReferences:\n[1] PROP")
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"][0]["paper_id"] == PROP.id


# --- the UI -----------------------------------------------------------------------------------------------


def test_the_chat_page_is_mounted_at_the_root(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    agent.settings.serve.ui = True
    with TestClient(create_app(agent)) as client:
        page = client.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert client.get("/search", params={"q": "PROP"}).status_code == 200  # API routes win over the mount
