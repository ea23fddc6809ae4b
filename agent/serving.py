"""What the web front ends share: the generation gate, metrics, streaming, history.

`app.py`, the OpenAI-compatible routes and the Gradio UI all generate through one `GenerationGate`, so the
bound on concurrent questions holds whichever door a question comes through.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.errors import AgentError, IndexNotBuilt, ModelServerUnavailable, Overloaded, PaperNotFound
from agent.query_embed import QueryCache
from agent.types import Answer, Delta, Final, Sources, StreamEvent

STATUS_OF: dict[type[AgentError], int] = {
    PaperNotFound: 404,
    ModelServerUnavailable: 503,
    IndexNotBuilt: 503,
    Overloaded: 503,
}


def status_of(error: AgentError) -> int:
    return next((code for kind, code in STATUS_OF.items() if isinstance(error, kind)), 500)


def error_body(error: AgentError) -> dict[str, Any]:
    """`detail` as FastAPI's own errors have it, and `error` as OpenAI clients read it."""
    message = str(error)
    return {"detail": message, "error": {"message": message, "type": type(error).__name__, "code": status_of(error)}}


T = TypeVar("T")
REFERENCES_HEADING = "References:"
_REFERENCES = re.compile(r"\n+\s*(?:-{3,}\s*\n+)?\*{0,2}References:?\*{0,2}\s*\n.*\Z", re.DOTALL)


class GenerationGate:
    """At most `limit` generations running or waiting; one more raises `Overloaded` at once instead of queueing.

    subtle: this does not make anyone wait: the model server queues requests beyond its slots itself. The gate
    only bounds that queue, so an overloaded app answers 503 + Retry-After in milliseconds instead of hanging.
    """

    def __init__(self, limit: int, retry_after_s: int, on_reject: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.on_reject = on_reject
        self.in_flight = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Take a place, or raise `Overloaded` if all `limit` places are taken."""
        with self._lock:
            full = self.in_flight >= self.limit
            if not full:
                self.in_flight += 1
        if full:
            if self.on_reject is not None:
                self.on_reject()
            raise Overloaded(self.retry_after_s)

    def release(self) -> None:
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a place for the length of the block."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` with a place held while it runs."""
        with self.admit():
            return function(*args)


class Metrics:
    """The app's Prometheus series, in a registry of its own (so several apps in one test process never clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "paper_agent_http_requests", "HTTP requests served.", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "paper_agent_http_request_seconds",
            "Seconds from request to the last byte of the response.",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.ttft = Histogram(
            "paper_agent_time_to_first_token_seconds",
            "Seconds from a question to the first streamed token of its answer.",
            ["endpoint"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
            registry=self.registry,
        )
        self.overloaded = Counter(
            "paper_agent_overloaded", "Questions refused because the generation queue was full.", registry=self.registry
        )
        self.in_flight = Gauge(
            "paper_agent_generations_in_flight", "Generations running or waiting.", registry=self.registry
        )

    def observe_ttft(self, endpoint: str, answer: Answer) -> None:
        """The time to first token a whole (non-streamed) answer reports, if the model was asked at all."""
        if "ttft_ms" in answer.timings:
            self.ttft.labels(endpoint).observe(answer.timings["ttft_ms"] / 1000)

    def gate(self, limit: int, retry_after_s: int) -> GenerationGate:
        """A generation gate whose load and refusals these metrics report."""
        gate = GenerationGate(limit, retry_after_s, on_reject=self.overloaded.inc)
        self.in_flight.set_function(lambda: gate.in_flight)
        return gate

    def watch(self, cache: QueryCache) -> None:
        """Report the query cache's hits and misses (read when scraped: the cache counts them itself)."""
        self.registry.register(_CacheCollector(cache))

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _CacheCollector(Collector):
    def __init__(self, cache: QueryCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        for outcome in ("hits", "misses"):
            text = f"Search queries whose vector {'came from' if outcome == 'hits' else 'was not in'} the cache."
            yield CounterMetricFamily(f"paper_agent_query_cache_{outcome}", text, value=getattr(self.cache, outcome))


class MetricsMiddleware:
    """Counts and times every request by its route template (`/papers/{paper_id}`, not each id)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = _route_label(scope)
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)


def _route_label(scope: Scope) -> str:
    """The matched route's path template; a bounded label even for unmatched (404) paths."""
    path = getattr(scope.get("route"), "path", None)
    if path is None:
        return "unmatched"
    return path or "/"


# --- chat history from front ends ------------------------------------------------------------------


def strip_references(text: str) -> str:
    """An assistant message as the agent answered it, without the references block the app appended."""
    return _REFERENCES.sub("", text).strip()


def message_text(content: Any) -> str:
    """The text of a chat message's content: a string, or a list of parts (OpenAI and Gradio both use them)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, list):
        return "\n".join(part for part in (message_text(p) for p in content) if part)
    return ""


def chat_history(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Earlier turns as `{"role", "content"}` with plain text: user and assistant messages only, references cut."""
    history = []
    for message in messages:
        role = message.get("role")
        if role not in ("user", "assistant"):
            continue
        text = message_text(message.get("content"))
        if role == "assistant":
            text = strip_references(text)
        if text.strip():
            history.append({"role": str(role), "content": text})
    return history


# --- streaming a question's events into an HTTP response ------------------------------------------------


async def first_events(events: Iterator[StreamEvent]) -> list[StreamEvent]:
    """Events up to and including the first one from the model (or all of them, if fewer).

    subtle: pulled before the response starts, so a model server that is down still gets a real 503 status
    rather than a 200 stream that breaks after the sources.
    """
    head: list[StreamEvent] = []
    while not head or isinstance(head[-1], Sources):
        event = await run_in_threadpool(next, events, None)
        if event is None:
            break
        head.append(event)
    return head


class OpenStream:
    """A question's events with a place in the gate, held until `close()`: call it when the response ends."""

    def __init__(self, head: list[StreamEvent], events: Iterator[StreamEvent], gate: GenerationGate) -> None:
        self._head, self._events, self._gate = head, events, gate
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        try:
            for event in self._head:
                yield event
            async for event in iterate_in_threadpool(self._events):
                yield event
        finally:
            self.close()

    def close(self) -> None:
        """Give the place back and stop generating; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._gate.release()
        close = getattr(self._events, "close", None)
        if close is None:
            return
        # A client that went away stops generation on the model server too. ValueError: the generator is
        # still running in a worker thread; it ends at max_tokens, and its place is already given back.
        with suppress(ValueError):
            close()


async def open_events(start: Callable[[], Iterator[StreamEvent]], gate: GenerationGate, ttft: Any = None) -> OpenStream:
    """Start a question's events with a place in `gate`; `ttft` (a histogram) gets the seconds to the first token.

    Raises `Overloaded`, or whatever the agent raises before its first token, before anything is sent.
    subtle: the response must run `close()` as its background task (`event_stream` does): a client that
    disconnects before the body starts means the body's own `finally` never runs.
    """
    started = time.perf_counter()
    gate.acquire()
    try:
        events = await run_in_threadpool(start)
        head = await first_events(events)
    except BaseException:
        gate.release()
        raise
    if ttft is not None and head and isinstance(head[-1], Delta | Final):
        ttft.observe(time.perf_counter() - started)
    return OpenStream(head, events, gate)


def event_stream(body: AsyncIterator[str], stream: OpenStream) -> StreamingResponse:
    """A `text/event-stream` response of `body` that gives the stream's place back however the response ends."""
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(stream.close),
    )
