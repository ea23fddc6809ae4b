"""The real llama.cpp server (xllamacpp, SmolLM2-135M) behind the `ChatModel` seam: structure, never wording."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from paper_agent.errors import ModelServerUnavailable
from paper_agent.llm import OpenAIChatModel, health, resolve_model
from paper_agent.llm_server import LOG_NAME, PID_NAME, LocalServer, answers, ensure_server
from paper_agent.settings import Settings

pytestmark = pytest.mark.integration

QUESTION = [
    {"role": "system", "content": "Answer from the passage.\n[1] The Transformer relies entirely on self-attention."},
    {"role": "user", "content": "What does the Transformer rely on?"},
]
# Bounded strings and arrays: a 135M model otherwise writes until max_tokens and the JSON never closes.
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "maxLength": 200},
        "citations": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 4}, "maxItems": 4},
    },
    "required": ["answer", "citations"],
    "additionalProperties": False,
}


def test_stream_yields_text_deltas(chat_model: OpenAIChatModel) -> None:
    deltas = list(chat_model.stream(QUESTION, max_tokens=16))
    assert len(deltas) >= 2  # streamed piece by piece, not one block
    assert all(isinstance(d, str) and d for d in deltas)
    assert "".join(deltas).strip()


def test_stream_can_stop_early(chat_model: OpenAIChatModel) -> None:
    stream = chat_model.stream(QUESTION, max_tokens=64)
    assert next(stream)
    stream.close()  # drops the connection mid-reply; the server must stay healthy
    assert health(chat_model)["ok"]


def test_complete_with_json_schema_returns_valid_json(chat_model: OpenAIChatModel) -> None:
    reply = json.loads(chat_model.complete(QUESTION, max_tokens=256, json_schema=ANSWER_SCHEMA))
    assert set(reply) == {"answer", "citations"}
    assert isinstance(reply["answer"], str) and len(reply["answer"]) <= 200
    assert all(isinstance(n, int) and 1 <= n <= 4 for n in reply["citations"])


def test_invalid_schema_is_a_model_server_error(chat_model: OpenAIChatModel) -> None:
    with pytest.raises(ModelServerUnavailable, match="HTTP 400"):
        chat_model.complete(QUESTION, max_tokens=8, json_schema={"type": "no-such-type"})


def test_health_is_ok(chat_model: OpenAIChatModel, model_server_settings: Settings) -> None:
    report = health(chat_model)
    assert report["ok"] is True and report["reason"] is None
    assert report["url"] == chat_model.url and report["model"] == model_server_settings.llm.model
    assert report["latency_ms"] > 0


def test_resolve_model_reaches_the_local_server(model_server_settings: Settings, model_server: LocalServer) -> None:
    model = resolve_model(model_server_settings)
    assert model.url == model_server.url
    assert model.complete(QUESTION, max_tokens=4)


def test_ensure_server_reuses_a_running_server(
    model_server_settings: Settings, model_server: LocalServer, tmp_path: Path
) -> None:
    settings = model_server_settings.model_copy(update={"data_dir": tmp_path})
    assert ensure_server(settings) == model_server.url
    assert not (tmp_path / LOG_NAME).exists()  # nothing was started


def test_ensure_server_starts_a_detached_server(spare_server_settings: Settings) -> None:
    settings, tmp_path = spare_server_settings, spare_server_settings.data_dir
    url = ensure_server(settings)
    pid = int((tmp_path / PID_NAME).read_text())
    try:
        assert answers(url)
        assert (tmp_path / LOG_NAME).read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while answers(url, timeout_s=1.0) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not answers(url, timeout_s=1.0)


def test_stopped_server_fails_fast(spare_server_settings: Settings) -> None:
    settings = spare_server_settings
    server = LocalServer(settings, log_path=settings.data_dir / LOG_NAME).start()
    model = OpenAIChatModel(settings.llm, server.url)
    assert model.complete(QUESTION, max_tokens=4)
    server.stop()
    for call in (lambda: model.complete(QUESTION, max_tokens=4), lambda: list(model.stream(QUESTION, max_tokens=4))):
        started = time.monotonic()
        with pytest.raises(ModelServerUnavailable) as caught:
            call()
        assert time.monotonic() - started < 2.0
        assert caught.value.url == server.url
    assert health(model)["ok"] is False


def test_crashed_server_fails_fast(spare_server_settings: Settings) -> None:
    settings = spare_server_settings
    with LocalServer(settings, log_path=settings.data_dir / LOG_NAME) as server:
        assert server.process is not None
        server.process.kill()  # SIGKILL: no clean shutdown, as in a crash
        server.process.wait()
        started = time.monotonic()
        with pytest.raises(ModelServerUnavailable, match="connect"):
            OpenAIChatModel(settings.llm, server.url).complete(QUESTION, max_tokens=4)
        assert time.monotonic() - started < 2.0
