"""The web app: question routes, search, an OpenAI-compatible API, metrics and the Gradio chat UI on one FastAPI.

Routes only compose `PaperAgent` methods. Domain errors become HTTP codes in one handler here, so the library
never imports FastAPI. `paper-agent serve` prepares the index and model server, then runs `create_app()`.
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from agent.errors import AgentError, Overloaded, PaperNotFound
from agent.llm import health as model_health
from agent.openai_api import openai_router
from agent.query_embed import QueryCache
from agent.service import PaperAgent
from agent.serving import (
    GenerationGate,
    Metrics,
    MetricsMiddleware,
    OpenStream,
    error_body,
    event_stream,
    open_events,
    status_of,
)
from agent.types import Delta, Sources, StreamEvent

BEARER = HTTPBearer(auto_error=False, description="The app's API key (`serve.api_key`).")


class ChatTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class AskRequest(BaseModel):
    question: str = Field(description="The question; 1 to `serve.max_question_chars` characters.")
    history: list[ChatTurn] | None = Field(None, description="Earlier turns, oldest first, for follow-up questions.")
    top_k: int | None = Field(
        None, ge=1, le=50, description="Papers whose best passage the model sees (default: answer.max_passages)."
    )


# --- errors ------------------------------------------------------------------------------------------


async def handle_agent_error(request: Request, error: Exception) -> JSONResponse:
    """The one place domain errors become HTTP responses."""
    if not isinstance(error, AgentError):  # registered for AgentError only
        raise error
    headers = {"Retry-After": str(error.retry_after_s)} if isinstance(error, Overloaded) else None
    return JSONResponse(error_body(error), status_code=status_of(error), headers=headers)


def check_text(text: str, limit: int, loc: tuple[str, ...]) -> str:
    """`text` stripped, or a 422 naming the field when it is empty or longer than `limit` characters."""
    stripped = text.strip()
    if not stripped or len(stripped) > limit:
        name = loc[-1]
        error = {"type": "value_error", "loc": loc, "msg": f"{name}: 1 to {limit} characters", "input": text[:100]}
        raise RequestValidationError([error])
    return stripped


def api_key_guard(key: str) -> Callable[..., None]:
    """A dependency that answers 401 unless the request carries `Authorization: Bearer <key>`."""

    def require_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        given = credentials.credentials.encode() if credentials is not None else b""
        if not secrets.compare_digest(given, key.encode()):
            message = "missing or wrong API key: send `Authorization: Bearer KEY`"
            raise HTTPException(401, message, {"WWW-Authenticate": "Bearer"})

    return require_key


# --- Server-Sent Events --------------------------------------------------------------------------------


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


# --- routes --------------------------------------------------------------------------------------------


def question_routes(paper_agent: PaperAgent, gate: GenerationGate, metrics: Metrics) -> APIRouter:
    """/ask, /ask/stream, /search, /papers/{id}."""
    router = APIRouter(tags=["questions"])
    limit = paper_agent.settings.serve.max_question_chars

    @router.post("/ask", summary="Answer a question with cited papers")
    def ask(body: AskRequest) -> dict[str, Any]:
        question = check_text(body.question, limit, ("body", "question"))
        history = [t.model_dump() for t in body.history or []]
        with gate.admit():
            answer = paper_agent.ask(question, history=history, top_k=body.top_k)
        metrics.observe_ttft("/ask", answer)
        return answer.to_json()

    @router.post("/ask/stream", summary="Answer as Server-Sent Events: sources, deltas, then the final answer")
    async def ask_stream(body: AskRequest) -> StreamingResponse:
        question = check_text(body.question, limit, ("body", "question"))
        history = [t.model_dump() for t in body.history or []]
        stream = await open_events(
            lambda: paper_agent.ask_stream(question, history=history, top_k=body.top_k),
            gate,
            metrics.ttft.labels("/ask/stream"),
        )
        return event_stream(sse_body(stream), stream)

    @router.get("/search", summary="Rank papers for a query")
    def search(
        q: str = Query(description="The query: 1 to `serve.max_question_chars` characters."),
        k: int | None = Query(None, ge=1, le=50, description="Papers to return (default: retrieve.top_k)."),
    ) -> dict[str, Any]:
        query = check_text(q, limit, ("query", "q"))
        return {"query": query, "results": [hit.to_json() for hit in paper_agent.search(query, k)]}

    @router.get("/papers/{paper_id}", summary="A paper's title, abstract and metadata")
    def paper(paper_id: str) -> dict[str, Any]:
        found = paper_agent.index.get_paper(paper_id)
        if found is None:
            raise PaperNotFound(paper_id)
        return found.metadata() | {"abstract": found.text}

    return router


def health_route(paper_agent: PaperAgent) -> Callable[[], dict[str, Any]]:
    def health() -> dict[str, Any]:
        """Index size and whether the model server really generates (a 1-token request). Never needs a key."""
        index = paper_agent.index.stats()
        model = model_health(paper_agent.chat_model)
        ok = model["ok"] and index["chunks"] > 0
        return {"status": "ok" if ok else "degraded", "index": index, "model": model}

    return health


def create_app(paper_agent: PaperAgent | None = None, query_cache: QueryCache | None = None) -> FastAPI:
    """The whole web app around one `PaperAgent` (built from the environment's settings if not given);
    `/metrics` reports `query_cache`'s hits, if given (the agent's embedder is the one that fills it)."""
    paper_agent = paper_agent or PaperAgent()
    serve = paper_agent.settings.serve
    metrics = Metrics()
    if query_cache is not None:
        metrics.watch(query_cache)
    gate = metrics.gate(serve.max_queue, serve.retry_after_s)

    app = FastAPI(
        title="Paper Agent",
        version="0.1.0",
        description="Cited answers over a collection of research papers. The chat UI is at `/`.",
    )
    app.state.agent, app.state.gate, app.state.metrics = paper_agent, gate, metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(AgentError, handle_agent_error)
    app.get("/health", tags=["operations"], summary="Index size and model server health")(health_route(paper_agent))

    guarded = [Depends(api_key_guard(serve.api_key))] if serve.api_key else []
    app.include_router(question_routes(paper_agent, gate, metrics), dependencies=guarded)
    app.include_router(openai_router(paper_agent, gate, metrics), prefix="/v1", dependencies=guarded)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", dependencies=guarded)
    def prometheus() -> Response:
        text, content_type = metrics.render()
        return Response(text, media_type=content_type)

    if serve.ui:
        from agent.ui import mount_ui  # Gradio is slow to import; tests of the API alone skip it

        mount_ui(app, paper_agent, gate, metrics)
    return app


class _AnnouncingServer(uvicorn.Server):
    """uvicorn's server, printing where to go once it really listens."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
            url = f"http://{host}:{self.config.port}"
            print(f"\nPaper Agent is ready: {url}/  (API docs {url}/docs, OpenAI-compatible {url}/v1)\n", flush=True)


def run(paper_agent: PaperAgent, host: str, port: int, query_cache: QueryCache | None = None) -> None:
    """Serve the app until Ctrl-C. One process: the embedding model and the generation gate are per process."""
    # No access log: /metrics counts every request, and logging each one costs more than serving a search.
    config = uvicorn.Config(
        create_app(paper_agent, query_cache), host=host, port=port, access_log=False, log_level="info"
    )
    _AnnouncingServer(config).run()
