"""The one seam to the model server: any OpenAI-compatible `/v1/chat/completions` (llama.cpp, vLLM, ...).

Only this module imports the `openai` client. Every transport or protocol failure is translated here into
`ModelServerUnavailable(url, reason)`, so callers handle one error and never see `openai` or `httpx` types.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import httpx
import openai
from openai import OpenAI
from openai.types.chat import ChatCompletion

from paper_agent.errors import ModelServerUnavailable
from paper_agent.llm_launch import local_base_url
from paper_agent.settings import LLMSettings, Settings

Messages = list[dict[str, Any]]


@runtime_checkable
class ChatModel(Protocol):
    """A chat model behind a URL: streams or returns the assistant's reply to `messages`.

    `max_tokens` has no default: each caller knows how long its reply may be (an answer, a rewritten question,
    a judge's verdict, a health probe), so there is no global limit to forget about."""

    url: str
    model: str

    def stream(
        self, messages: Messages, *, max_tokens: int, json_schema: dict[str, Any] | None = None
    ) -> Iterator[str]: ...

    def complete(self, messages: Messages, *, max_tokens: int, json_schema: dict[str, Any] | None = None) -> str: ...


def response_format(json_schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI `response_format` that constrains a reply to `json_schema` (llama.cpp and vLLM accept it)."""
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": json_schema, "strict": True}}


def _reason(error: Exception) -> str:
    """A short, user-facing reason for a failed request."""
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}: {_status_message(error)}"
    if isinstance(error, openai.APITimeoutError):
        return "timed out"
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        return f"cannot connect ({cause})" if cause is not None else "cannot connect"
    return f"{type(error).__name__}: {error}"


def _status_message(error: openai.APIStatusError) -> str:
    """The server's own error message (llama.cpp and vLLM send `{"error": {"message": ...}}`)."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return error.message


class OpenAIChatModel:
    """`ChatModel` over the `openai` client, for any OpenAI-compatible server."""

    def __init__(self, settings: LLMSettings, base_url: str) -> None:
        self.url = base_url.rstrip("/")
        self.model = settings.model
        self.settings = settings
        # max_retries=0: a down server must fail in seconds; retrying is the caller's decision, not ours.
        self._client = OpenAI(
            base_url=self.url,
            api_key=settings.api_key,
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            max_retries=0,
        )

    def __repr__(self) -> str:
        return f"OpenAIChatModel(url={self.url!r}, model={self.model!r})"

    def _request(self, messages: Messages, max_tokens: int, json_schema: dict[str, Any] | None) -> dict[str, Any]:
        """Keyword arguments of one chat-completion request."""
        args: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.settings.temperature,
        }
        if json_schema is not None:
            args["response_format"] = response_format(json_schema)
        return args

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Re-raise any client or transport failure as `ModelServerUnavailable` naming this URL."""
        try:
            yield
        # ValueError: a body or stream event that is not JSON surfaces as json.JSONDecodeError.
        except (openai.OpenAIError, httpx.HTTPError, ValueError) as error:
            raise ModelServerUnavailable(self.url, _reason(error)) from error

    def stream(
        self, messages: Messages, *, max_tokens: int, json_schema: dict[str, Any] | None = None
    ) -> Iterator[str]:
        """Yield the reply's text deltas as the server produces them."""
        with self._translated():
            chunks = self._client.chat.completions.create(
                **self._request(messages, max_tokens, json_schema), stream=True
            )
            # Closing the stream (also when the consumer stops early) drops the connection, and llama.cpp
            # and vLLM then stop generating for it.
            with chunks:
                kind = chunks.response.headers.get("content-type", "")
                if not kind.startswith("text/event-stream"):
                    raise ModelServerUnavailable(self.url, f"expected an event stream, got {kind or 'no content type'}")
                for chunk in chunks:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content

    def complete(self, messages: Messages, *, max_tokens: int, json_schema: dict[str, Any] | None = None) -> str:
        """The whole reply text."""
        with self._translated():
            reply = self._client.chat.completions.create(**self._request(messages, max_tokens, json_schema))
        # The client hands back the raw body when the server does not answer JSON.
        if not isinstance(reply, ChatCompletion):
            raise ModelServerUnavailable(self.url, f"not a chat completion: {str(reply)[:80]!r}")
        if not reply.choices:
            raise ModelServerUnavailable(self.url, "reply has no choices")
        return reply.choices[0].message.content or ""

    def first_token_logprobs(self, messages: Messages, *, top: int = 20) -> dict[str, float]:
        """The `top` likeliest first tokens of the reply with their log-probabilities (llama.cpp and vLLM)."""
        with self._translated():
            reply = self._client.chat.completions.create(
                **self._request(messages, 1, None), logprobs=True, top_logprobs=top
            )
        if not isinstance(reply, ChatCompletion) or not reply.choices:
            raise ModelServerUnavailable(self.url, "reply is not a chat completion with choices")
        logprobs = reply.choices[0].logprobs
        if logprobs is None or not logprobs.content:
            raise ModelServerUnavailable(self.url, "the server returned no logprobs")
        return {t.token: t.logprob for t in logprobs.content[0].top_logprobs}


def health(model: ChatModel) -> dict[str, Any]:
    """Whether the model server generates right now: a real 1-token completion, timed."""
    started = time.perf_counter()
    reason: str | None = None
    try:
        model.complete([{"role": "user", "content": "Say OK."}], max_tokens=1)
    except ModelServerUnavailable as error:
        reason = error.reason
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return {"ok": reason is None, "url": model.url, "model": model.model, "latency_ms": latency_ms, "reason": reason}


def resolve_model(settings: Settings) -> ChatModel:
    """The chat model the settings point at: `llm.base_url` if set, else the local server's URL."""
    return OpenAIChatModel(settings.llm, settings.llm.base_url or local_base_url(settings.server))
