"""Errors as HTTP: the one place domain errors become statuses, one error body for every status, its schema.

Every error the app sends has the same body (`ErrorBody`), except validation errors (422), which keep FastAPI's
shape with the offending input cut short: a 2 MB question is not sent back.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from paper_agent.errors import AgentError, IndexNotBuilt, ModelServerUnavailable, Overloaded, PaperNotFound

STATUS_OF: dict[type[AgentError], int] = {
    PaperNotFound: 404,
    ModelServerUnavailable: 503,
    IndexNotBuilt: 503,
    Overloaded: 503,
}
ECHO_CHARS = 100  # the most of a rejected input a validation error repeats


class ErrorInfo(BaseModel):
    message: str
    type: str = Field(description="The error's kind: `ModelServerUnavailable`, `Overloaded`, `Unauthorized`, ...")
    code: int = Field(description="The HTTP status.")


class ErrorBody(BaseModel):
    """An error: `detail` as FastAPI's own errors have it, and `error` as OpenAI clients read it."""

    detail: str
    error: ErrorInfo


def status_of(error: AgentError) -> int:
    return next((code for kind, code in STATUS_OF.items() if isinstance(error, kind)), 500)


def body(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    """The error body for `status`; `kind` defaults to the status's name (`Unauthorized`)."""
    kind = kind or HTTPStatus(status).phrase.replace(" ", "")
    return ErrorBody(detail=message, error=ErrorInfo(message=message, type=kind, code=status)).model_dump()


def error_body(error: AgentError) -> dict[str, Any]:
    return body(status_of(error), str(error), type(error).__name__)


async def handle_agent_error(request: Request, error: Exception) -> JSONResponse:
    """Domain errors as statuses (503 from a full queue says when to retry)."""
    if not isinstance(error, AgentError):  # registered for AgentError only
        raise error
    headers = {"Retry-After": str(error.retry_after_s)} if isinstance(error, Overloaded) else None
    return JSONResponse(error_body(error), status_code=status_of(error), headers=headers)


async def handle_http_error(request: Request, error: Exception) -> JSONResponse:
    """Starlette's and FastAPI's own errors (401, 404, 405, 413) with the same body as the agent's."""
    if not isinstance(error, HTTPException):  # registered for HTTPException only
        raise error
    return JSONResponse(body(error.status_code, str(error.detail)), error.status_code, headers=error.headers)


async def handle_validation_error(request: Request, error: Exception) -> JSONResponse:
    """422 naming each bad field, with at most `ECHO_CHARS` of what was sent."""
    if not isinstance(error, RequestValidationError):  # registered for RequestValidationError only
        raise error
    return JSONResponse({"detail": [_shortened(e) for e in error.errors()]}, status_code=422)


def _shortened(error: Any) -> dict[str, Any]:
    error = dict(error)
    if "input" in error:
        given = error["input"]
        if isinstance(given, str | bytes) and len(given) > ECHO_CHARS:
            error["input"] = f"{given[:ECHO_CHARS]!s}… ({len(given)} in all)"
        elif not isinstance(given, str | bytes) and len(repr(given)) > ECHO_CHARS:
            error["input"] = f"<{type(given).__name__}>"  # e.g. the whole body when a field is missing: named only
    return jsonable_encoder(error)


def responses(**descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, e.g. `responses(e503="The index is not built.")`.

    subtle: FastAPI documents a `model` under the route's own media type; routes whose success is not JSON
    (SSE, Prometheus text) therefore declare `response_class=Response`, which has none, so errors stay JSON.
    """
    documented: dict[int | str, dict[str, Any]] = {}
    for key, description in descriptions.items():
        status = int(key.removeprefix("e"))
        documented[status] = {"model": ErrorBody, "description": description}
        if status == 503:
            documented[status]["headers"] = {"Retry-After": RETRY_AFTER}
    return documented


RETRY_AFTER = {
    "description": "Seconds to wait before asking again; sent when too many questions are in flight.",
    "required": False,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
