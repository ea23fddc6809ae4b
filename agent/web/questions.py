"""/ask, /ask/stream, /search and /papers/{id}: each route one call of `PaperAgent`.

Their limits are declared in the schema (so `/docs` and clients see them) and checked by it: a question is 1 to
`serve.max_question_chars` characters, not all blank; `top_k` and `k` take the range of `retrieve.top_k`.
"""

# No `from __future__ import annotations`: FastAPI reads these routes' annotations, which name classes
# defined inside `question_routes`, at run time.
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from paper_agent.errors import PaperNotFound
from paper_agent.service import PaperAgent
from paper_agent.settings import RetrieveSettings, field_bounds
from paper_agent.web.errors import responses
from paper_agent.web.gate import GenerationGate
from paper_agent.web.metrics import Metrics
from paper_agent.web.stream import event_stream, open_events, sse_body, sse_content

UNREADABLE = "The body could not be read as JSON (e.g. it is not UTF-8)."
SSE_EVENTS: dict[int | str, dict[str, Any]] = {
    200: sse_content(
        "Events `sources`, `delta`s, then `final` (or `error`); `data` is JSON.", ("sources", "delta", "final", "error")
    )
}
NOT_BLANK = r"\S"  # JSON Schema patterns match anywhere: at least one character that is not white space


TOP_K: tuple[int, int] = field_bounds(RetrieveSettings, "top_k")  # one limit: the setting's own


def whole_number(value: Any) -> Any:
    """JSON Schema's integers include 45.0: as 45 (strict validation then refuses "45" and true, as the schema does)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole_number_text(value: Any) -> Any:
    """A query string's "45.0" as "45" (how a client may write an integer)."""
    return value.split(".")[0] if isinstance(value, str) and re.fullmatch(r"-?\d+\.0+", value) else value


class ChatTurn(BaseModel):
    model_config = ConfigDict(strict=True)  # what the schema says: "5" is not an integer, "yes" not a boolean

    role: Literal["user", "assistant"]
    content: str


def question_routes(paper_agent: PaperAgent, gate: GenerationGate, metrics: Metrics) -> APIRouter:
    """/ask, /ask/stream, /search, /papers/{id}."""
    router = APIRouter(tags=["questions"])
    limit = paper_agent.settings.serve.max_question_chars
    unanswered = "The model server is down, the index is not built, or too many questions are in flight."

    class AskRequest(BaseModel):
        model_config = ConfigDict(strict=True)

        question: str = Field(
            min_length=1, max_length=limit, pattern=NOT_BLANK, description=f"The question: 1 to {limit} characters."
        )
        history: list[ChatTurn] | None = Field(None, description="Earlier turns, oldest first, for follow-ups.")
        top_k: Annotated[int | None, BeforeValidator(whole_number)] = Field(
            None,
            ge=TOP_K[0],
            le=TOP_K[1],
            description="Papers whose best passage the model sees (default: answer.max_passages).",
        )

    @router.post(
        "/ask",
        summary="Answer a question with cited papers",
        responses=responses(e400=UNREADABLE, e413="The request body is too large.", e503=unanswered),
    )
    def ask(body: AskRequest) -> dict[str, Any]:
        history = [t.model_dump() for t in body.history or []]
        with gate.admit():
            answer = paper_agent.ask(body.question.strip(), history=history, top_k=body.top_k)
        metrics.observe_ttft("/ask", answer)
        return answer.to_json()

    @router.post(
        "/ask/stream",
        summary="Answer as Server-Sent Events: sources, deltas, then the final answer",
        response_class=Response,  # the success is documented below: SSE; errors are JSON
        responses=SSE_EVENTS | responses(e400=UNREADABLE, e413="The request body is too large.", e503=unanswered),
    )
    async def ask_stream(body: AskRequest) -> Response:
        history = [t.model_dump() for t in body.history or []]
        stream = await open_events(
            lambda: paper_agent.ask_stream(body.question.strip(), history=history, top_k=body.top_k),
            gate,
            metrics.ttft.labels("/ask/stream"),
        )
        return event_stream(sse_body(stream), stream)

    @router.get("/search", summary="Rank papers for a query", responses=responses(e503="The index is not built."))
    def search(
        q: Annotated[
            str, Query(min_length=1, max_length=limit, pattern=NOT_BLANK, description=f"1 to {limit} characters.")
        ],
        k: Annotated[
            int, Query(ge=TOP_K[0], le=TOP_K[1], description="Papers to return."), BeforeValidator(whole_number_text)
        ] = (paper_agent.settings.retrieve.top_k),
    ) -> dict[str, Any]:
        query = q.strip()
        return {"query": query, "results": [hit.to_json() for hit in paper_agent.search(query, k)]}

    @router.get(
        "/papers/{paper_id}",
        summary="A paper's title, abstract and metadata",
        responses=responses(e404="No paper with this id.", e503="The index is not built."),
    )
    def paper(paper_id: Annotated[str, Path(description="A paper id, as search results give it.")]) -> dict[str, Any]:
        found = paper_agent.index.get_paper(paper_id)
        if found is None:
            raise PaperNotFound(paper_id)
        return found.metadata() | {"abstract": found.text}

    return router
