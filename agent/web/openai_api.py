"""`/v1/models` and `/v1/chat/completions`: the agent as an OpenAI-compatible model.

Any OpenAI client or chat front end can talk to the agent. The last user message is the question, earlier
user and assistant messages are its history. Citations survive both ways a client may read them: a
references block at the end of the text, and a structured `citations` field beside `choices`.

subtle: a stream's `content` is the verified answer only. The model's draft may hold sentences that
verification drops, and a chat client cannot take text back; so the draft streams as `reasoning_content`
(what front ends show as the model "thinking", as for vLLM's reasoning models) and the checked answer follows.
"""

# No `from __future__ import annotations`: FastAPI reads the route's annotation, a class defined inside
# `openai_router` (its limit is a setting), at run time.
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from paper_agent.errors import AgentError
from paper_agent.service import PaperAgent
from paper_agent.types import Answer, Delta, Final
from paper_agent.web.errors import error_body, responses
from paper_agent.web.gate import GenerationGate
from paper_agent.web.history import REFERENCES_HEADING, chat_history, message_text
from paper_agent.web.metrics import Metrics
from paper_agent.web.stream import OpenStream, event_stream, open_events, sse_content

MODEL_ID = "paper-agent"
STREAMED: dict[int | str, dict[str, Any]] = {
    200: sse_content("A `chat.completion`, or with `stream: true` its `chat.completion.chunk`s (`data`, then [DONE]).")
}
UNREADABLE = "The body could not be read as JSON (e.g. it is not UTF-8)."
UNANSWERED = "The model server is down, the index is not built, or too many questions are in flight."


class OtherMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # strict: what the schema says ("yes" is no boolean)

    role: Literal["system", "developer", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


def request_model(max_chars: int) -> type[BaseModel]:
    """The request, with a user message's text held to the question's limit (a setting, hence built here)."""
    question = StringConstraints(min_length=1, max_length=max_chars, pattern=r"\S")

    class TextPart(BaseModel):
        model_config = ConfigDict(extra="allow", strict=True)

        type: Literal["text"]
        text: Annotated[str, question]

    class UserMessage(BaseModel):
        model_config = ConfigDict(extra="allow", strict=True)

        role: Literal["user"]
        content: Annotated[str, question] | Annotated[list[TextPart], Field(min_length=1, max_length=1)]

    has_question: dict[str, Any] = {
        "contains": {"type": "object", "properties": {"role": {"const": "user"}}, "required": ["role"]}
    }

    class ChatCompletionRequest(BaseModel):
        # Sampling fields (temperature, max_tokens, ...) are accepted and ignored: the agent's settings decide them.
        model_config = ConfigDict(extra="allow", strict=True)

        model: str = MODEL_ID
        messages: list[Annotated[UserMessage | OtherMessage, Field(discriminator="role")]] = Field(
            min_length=1,
            json_schema_extra=has_question,
            description="The last user message is the question, those before it its history; any after it "
            f"are left out. A user message is 1 to {max_chars} characters.",
        )
        stream: bool = False

    return ChatCompletionRequest


def split_messages(messages: list[Any], max_chars: int) -> tuple[str, list[dict[str, str]]]:
    """(question, history): the last user message and the messages before it; 422 naming `messages` if none."""
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    question = message_text(messages[last].model_dump()["content"]).strip() if last is not None else ""
    if last is None or not question or len(question) > max_chars:
        msg = f"messages: a user message must hold the question, 1 to {max_chars} characters"
        raise RequestValidationError([{"type": "value_error", "loc": ("body", "messages"), "msg": msg, "input": None}])
    return question, chat_history([m.model_dump() for m in messages[:last]])


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
    ChatCompletionRequest = request_model(max_chars)

    @router.get("/models", summary="The one model: the agent")
    def models() -> dict[str, Any]:
        card = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "paper-agent"}
        return {"object": "list", "data": [card]}

    @router.post(
        "/chat/completions",
        summary="Answer the last user message, with citations",
        response_model=None,
        responses=STREAMED | responses(e400=UNREADABLE, e413="The request body is too large.", e503=UNANSWERED),
    )
    async def chat_completions(
        body: ChatCompletionRequest,  # type: ignore[valid-type]  # a class built for this app's limit
    ) -> dict[str, Any] | StreamingResponse:
        request: Any = body
        question, history = split_messages(request.messages, max_chars)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if not request.stream:
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
