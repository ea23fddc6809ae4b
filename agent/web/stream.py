"""A question's events as an HTTP stream: the gate's place held until the response ends, SSE framing.

subtle: the first events are pulled before the status line is sent, so a model server that is down is a real
503 (with the reason), not a 200 stream that breaks after the sources.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import suppress
from dataclasses import asdict
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.responses import StreamingResponse

from paper_agent.errors import AgentError
from paper_agent.types import Delta, Final, Sources, StreamEvent
from paper_agent.web.errors import error_body, status_of
from paper_agent.web.gate import GenerationGate


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


def sse_content(description: str, events: tuple[str, ...] = ()) -> dict[str, Any]:
    """An OpenAPI response of Server-Sent Events: each event (`itemSchema`) has `data` and one of `events`."""
    event: dict[str, Any] = {"type": "object", "required": ["data"], "properties": {"data": {"type": "string"}}}
    if events:
        event["properties"]["event"] = {"type": "string", "enum": list(events)}
    return {"description": description, "content": {"text/event-stream": {"itemSchema": event}}}


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


def event_stream(body: AsyncIterator[str], stream: OpenStream) -> EventStreamResponse:
    """A `text/event-stream` response of `body` that gives the stream's place back however the response ends."""
    return EventStreamResponse(
        body,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(stream.close),
    )


# --- the /ask/stream events as SSE ------------------------------------------------------------------------


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def event_as_sse(event: StreamEvent) -> str:
    if isinstance(event, Sources):
        return sse("sources", {"question": event.question, "passages": [asdict(p) for p in event.passages]})
    if isinstance(event, Delta):
        return sse("delta", {"text": event.text})
    return sse("final", event.answer.to_json())


async def sse_body(stream: OpenStream) -> AsyncIterator[str]:
    """The SSE text of a question's events; an error after the first token becomes an `error` event."""
    try:
        async for event in stream:
            yield event_as_sse(event)
    except AgentError as error:  # the status line is already sent, so the stream has to say it
        yield sse("error", error_body(error) | {"status": status_of(error)})
