"""The app factory: question routes, the OpenAI-compatible `/v1`, health, metrics and the chat UI on one FastAPI.

Routes only compose `PaperAgent` methods; `paper-agent serve` prepares the index and model server, then serves
`create_app()` (`agent/web/server.py`).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from starlette.exceptions import HTTPException

from paper_agent.errors import AgentError
from paper_agent.llm import health as model_health
from paper_agent.llm_supervisor import Supervisor
from paper_agent.query_embed import QueryCache
from paper_agent.service import PaperAgent
from paper_agent.web.auth import api_key_guard
from paper_agent.web.body_limit import BodyLimitMiddleware
from paper_agent.web.errors import handle_agent_error, handle_http_error, handle_validation_error, responses
from paper_agent.web.methods import MethodNotAllowedMiddleware
from paper_agent.web.metrics import Metrics, MetricsMiddleware
from paper_agent.web.openai_api import openai_router
from paper_agent.web.papers import paper_routes
from paper_agent.web.questions import question_routes
from paper_agent.writer import PaperWriter

# Where bodies may be as large as `serve.max_upload_bytes`: the API's uploads, and the chat page's file drops.
UPLOAD_PATHS = ("/papers", "/gradio_api/upload")
PROMETHEUS_TEXT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text."}
}


def create_app(
    paper_agent: PaperAgent | None = None,
    query_cache: QueryCache | None = None,
    supervisor: Supervisor | None = None,
) -> FastAPI:
    """The whole web app around one `PaperAgent` (built from the environment's settings if not given);
    `/metrics` reports `query_cache`'s hits, if given (the agent's embedder is the one that fills it), and
    `/health` and `/metrics` the `supervisor` of the local model server, if one runs."""
    paper_agent = paper_agent or PaperAgent()
    serve = paper_agent.settings.serve
    metrics = Metrics()
    if query_cache is not None:
        metrics.watch(query_cache)
    if supervisor is not None:
        metrics.watch_model_server(supervisor)
    gate = metrics.gate(serve.max_queue, serve.retry_after_s)

    app = FastAPI(
        title="Paper Agent",
        version="0.1.0",
        description="Cited answers over a collection of research papers. The chat UI is at `/`.",
    )
    writer = PaperWriter(paper_agent)  # the app's one writer: the API and the UI queue their writes on it
    app.state.agent, app.state.gate, app.state.metrics, app.state.writer = paper_agent, gate, metrics, writer
    # The last one added runs first: metrics count the 405s and 413s too.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=serve.max_request_bytes,
        upload_paths=UPLOAD_PATHS,
        max_upload_bytes=serve.max_upload_bytes,
    )
    if serve.ui:
        app.add_middleware(MethodNotAllowedMiddleware, api=app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(AgentError, handle_agent_error)
    app.add_exception_handler(HTTPException, handle_http_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)

    @app.get("/health", tags=["operations"], summary="Index size and model server health")
    def health() -> dict[str, Any]:
        """Index size, the generation answered from, and whether the model server really generates (a 1-token
        request), with its supervisor's state when `serve` runs the server itself (`restarting`: it died and is
        being started again). Never needs a key."""
        index = paper_agent.index.stats() | {"generation": paper_agent.live.current().state.generation}
        model = model_health(paper_agent.chat_model)
        server = supervisor.state() if supervisor is not None else None
        model["supervisor"] = server.to_json() if server is not None else None
        ok = model["ok"] and index["chunks"] > 0 and (server is None or server.status == "up")
        return {"status": "ok" if ok else "degraded", "index": index, "model": model}

    guarded = [Depends(api_key_guard(serve.api_key))] if serve.api_key else []
    unauthorized = responses(e401="Missing or wrong API key (`Authorization: Bearer KEY`).") if serve.api_key else {}
    app.include_router(question_routes(paper_agent, gate, metrics), dependencies=guarded, responses=unauthorized)
    app.include_router(paper_routes(writer), dependencies=guarded, responses=unauthorized)
    v1 = openai_router(paper_agent, gate, metrics)
    app.include_router(v1, prefix="/v1", dependencies=guarded, responses=unauthorized)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        dependencies=guarded,
        response_class=Response,  # the success is documented below: Prometheus text; errors are JSON
        responses=PROMETHEUS_TEXT | unauthorized,
    )
    def prometheus() -> PlainTextResponse:
        text, content_type = metrics.render()
        return PlainTextResponse(text, media_type=content_type)

    if serve.ui:
        from paper_agent.web.ui import mount_ui  # Gradio is slow to import; tests of the API alone skip it

        mount_ui(app, paper_agent, gate, metrics, writer)
    return app
