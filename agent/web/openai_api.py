"""`/v1/models` and `/v1/chat/completions`: the agent as an OpenAI-compatible model.

Any OpenAI client or chat front end can talk to the agent. The last user message is the question, earlier
user and assistant messages are its history. Citations survive both ways a client may read them: a
references block at the end of the text, and a structured `citations` field beside `choices`.

subtle: a stream's `content` is the verified answer only. The model's draft may hold sentences that
verification drops, and a chat client cannot take text back; so the draft streams as `reasoning_content`
(what front ends show as the model "thinking", as for vLLM's reasoning models) and the checked answer follows.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agent.errors import AgentError
from agent.service import PaperAgent
from agent.types import Answer, Delta, Final
from agent.web.errors import error_body, responses
from agent.web.gate import GenerationGate
from agent.web.history import REFERENCES_HEADING, chat_history, message_text
from agent.web.metrics import Metrics
from agent.web.stream import OpenStream, event_stream, open_events

MODEL_ID = "paper-agent"
STREAMED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A `chat.completion`, or with `stream: true` its `chat.completion.chunk`s as Server-Sent Events.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
UNANSWERED = "The model server is down, the index is not built, or too many questions are in flight."


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # strict: what the schema says ("yes" is no boolean)

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    # Sampling fields (temperature, max_tokens, ...) are accepted and ignored: the agent's settings decide them.
    model_config = ConfigDict(extra="allow", strict=True)

    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


def split_messages(messages: list[ChatMessage], max_chars: int) -> tuple[str, list[dict[str, str]]]:
    """(question, history): the last message must be the user's; 422 naming `messages` otherwise."""
    last = messages[-1]
    question = message_text(last.content).strip()
    if last.role != "user" or not question or len(question) > max_chars:
        msg = f"messages: the last message must be the user's question, 1 to {max_chars} characters"
        error = {"type": "value_error", "loc": ("body", "messages", len(messages) - 1), "msg": msg, "input": None}
        raise RequestValidationError([error])
    return question, chat_history([m.model_dump() for m in messages[:-1]])


def references(answer: Answer) -> str:
    """The references block appended to the text: one line per citation, `[n] Title (paper id): "quote"`."""
    if not answer.citations:
        return ""
    lines = [f'[{c.number}] {c.title} ({c.paper_id}): "{c.quote}"' for c in answer.citations]
    return f"\n\n{REFERENCES_HEADING}\n" + "\n".join(lines)


def extras(answer: Answer) -> dict[str, Any]:
    """The structured fields beside `choices`: what a client that knows the agent reads instead of the text."""
    return {
        "citations": [asdict(c) for c in answer.citations],
        "refused": answer.refused,
        "answerability": answer.answerability,
        "closest": [asdict(p) for p in answer.closest],
        "timings": answer.timings,
    }


def _chunk(completion_id: str, created: int, delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
    body = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body | more, ensure_ascii=False)}\n\n"


async def completion_chunks(stream: OpenStream, completion_id: str) -> AsyncIterator[str]:
    """`chat.completion.chunk`s: the role, the draft as reasoning, the verified answer, the citations, [DONE]."""
    created = int(time.time())
    yield _chunk(completion_id, created, {"role": "assistant", "content": ""})
    try:
        async for event in stream:
            if isinstance(event, Delta):
                yield _chunk(completion_id, created, {"reasoning_content": event.text})
            elif isinstance(event, Final):
                yield _chunk(completion_id, created, {"content": event.answer.text + references(event.answer)})
                yield _chunk(completion_id, created, {}, "stop", **extras(event.answer))
    except AgentError as error:  # the status line is sent: OpenAI clients raise on an `error` object in the stream
        yield f"data: {json.dumps({'error': error_body(error)['error']})}\n\n"
    yield "data: [DONE]\n\n"


def openai_router(paper_agent: PaperAgent, gate: GenerationGate, metrics: Metrics) -> APIRouter:
    """The OpenAI-compatible routes, to mount under `/v1`."""
    router = APIRouter(tags=["OpenAI-compatible"])
    max_chars = paper_agent.settings.serve.max_question_chars

    @router.get("/models", summary="The one model: the agent")
    def models() -> dict[str, Any]:
        card = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "paper-agent"}
        return {"object": "list", "data": [card]}

    @router.post(
        "/chat/completions",
        summary="Answer the last user message, with citations",
        response_model=None,
        responses=STREAMED | responses(e413="The request body is too large.", e503=UNANSWERED),
    )
    async def chat_completions(body: ChatCompletionRequest) -> dict[str, Any] | StreamingResponse:
        question, history = split_messages(body.messages, max_chars)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if not body.stream:
            # The place is held in the worker thread: a client that goes away does not stop the generation.
            answer = await run_in_threadpool(gate.call, paper_agent.ask, question, history)
            metrics.observe_ttft("/v1/chat/completions", answer)
            message = {"role": "assistant", "content": answer.text + references(answer)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            head = {"id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": MODEL_ID}
            return head | {"choices": [choice]} | extras(answer)

        ttft = metrics.ttft.labels("/v1/chat/completions")
        stream = await open_events(lambda: paper_agent.ask_stream(question, history=history), gate, ttft)
        return event_stream(completion_chunks(stream, completion_id), stream)

    return router
