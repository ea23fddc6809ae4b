"""POST /papers, GET /papers, DELETE /papers/{id}, GET /jobs/{id}: the collection's papers, added and removed.

Writes go to the app's one `PaperWriter` (agent/writer.py), which runs them as jobs one at a time: a POST stores the
upload and answers with its job at once (200 if it finished within `wait` seconds, else 202), and `GET /jobs/{id}`
reports its progress and result. The body is a multipart upload of files (PDF, JSON, JSONL, listing text) or JSON
paper records; its limits are declared in the schema and checked here: over `serve.max_upload_bytes` is 413
(agent/web/body_limit.py), a file of no type we read or another body type is 415, a bad record or a form field
other than `files` is 422.
"""

# No `from __future__ import annotations`: FastAPI reads these routes' annotations at run time.
import json
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from paper_agent.errors import PaperNotFound
from paper_agent.jobs import Job
from paper_agent.web.errors import responses
from paper_agent.web.questions import NOT_BLANK, whole_number, whole_number_text
from paper_agent.writer import UPLOAD_TYPES, PaperWriter, stored_name, upload_suffix

MAX_WAIT_S = 60
PAGE_MAX = 500
OFFSET_MAX = 2**32 - 1  # Chroma's offset is a 32-bit unsigned integer
MEDIA_TYPES = ", ".join(sorted({t for types in UPLOAD_TYPES.values() for t in types}))


class PaperRecord(BaseModel):
    """A paper as a JSON record: a title and its abstract; arXiv metadata snapshot records as they are."""

    model_config = ConfigDict(strict=True, extra="allow")

    title: str = Field(min_length=1, pattern=NOT_BLANK)
    abstract: str | None = Field(None, description="The abstract (or `text`, or `summary`).")
    authors: list[str] | str | None = Field(None, description='A list, or arXiv\'s "A, B and C".')
    year: Annotated[int | None, BeforeValidator(whole_number)] = None
    url: str | None = None
    id: str | None = Field(None, description="An arXiv id (with `categories` or `update_date`, it makes the url).")


RECORD_LIST = TypeAdapter(Annotated[list[PaperRecord], Field(min_length=1)])
RECORD_SCHEMA = PaperRecord.model_json_schema()
UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "additionalProperties": False,  # a misspelt `files` is an error, not an upload of nothing
                "properties": {
                    "files": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "format": "binary"},
                        "description": "PDFs (full text, with page numbers), JSON or JSONL paper records, arXiv "
                        "metadata lines, saved listing pages (.txt): by name, else by media type.",
                    }
                },
            },
            "encoding": {"files": {"contentType": MEDIA_TYPES}},
        },
        "application/json": {
            "schema": {"anyOf": [RECORD_SCHEMA, {"type": "array", "minItems": 1, "items": RECORD_SCHEMA}]}
        },
    },
}


class PaperRef(BaseModel):
    paper_id: str
    title: str


class Skipped(BaseModel):
    file: str = Field(description="The file as it was uploaded.")
    line: int | None = Field(description="The line or record, when only it was bad.")
    reason: str


class IngestResult(BaseModel):
    files: int
    added: list[PaperRef] = Field(description="Papers new to the collection.")
    merged: list[PaperRef] = Field(description="Papers the collection held already (same title): updated in place.")
    repeated: int = Field(description="Records repeating a paper earlier in the upload, merged into it.")
    skipped: list[Skipped] = Field(description="Files and lines that were not read, with why.")
    paper_ids: list[str] = Field(description="Every paper of the upload, added or merged.")
    chunks: int
    embedded: int = Field(description="Chunks new or changed, hence embedded.")


class RemoveResult(BaseModel):
    removed: list[str]
    not_found: list[str]


class JobOut(BaseModel):
    job_id: str
    kind: Literal["ingest", "remove"]
    state: Literal["queued", "running", "done", "failed"]
    created: float
    started: float | None
    finished: float | None
    progress: dict[str, Any] = Field(description="`stage`, and counters: `files`, `papers`, `chunks_written`.")
    result: IngestResult | RemoveResult | None
    error: str | None


class PaperSummary(BaseModel):
    paper_id: str
    title: str
    authors: list[str]
    year: int | None
    url: str | None
    source: str
    chunks: int


class PaperPage(BaseModel):
    total: int
    offset: int
    limit: int
    papers: list[PaperSummary]


JOB_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": JobOut, "description": "The job, finished (`done` or `failed`) within `wait` seconds."},
    202: {
        "model": JobOut,
        "description": "The job, queued or running: follow it at `GET /jobs/{id}` (also the `Location` header).",
        "headers": {"Location": {"description": "The job's URL.", "schema": {"type": "string"}}},
    },
}
Wait = Annotated[
    float,
    Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait for the job to finish before answering."),
]


def job_response(job: Job, wait_s: float) -> JSONResponse:
    """200 with the job if it finishes within `wait_s`, else 202 with it as it stands."""
    finished = job.wait(wait_s) if wait_s > 0 else job.done.is_set()
    body = JobOut.model_validate(job.to_json()).model_dump(mode="json")
    return JSONResponse(body, 200 if finished else 202, headers=None if finished else {"Location": f"/jobs/{job.id}"})


def paper_routes(writer: PaperWriter) -> APIRouter:
    """POST /papers, GET /papers, DELETE /papers/{paper_id}, GET /jobs/{job_id}."""
    router = APIRouter(tags=["papers"])
    agent = writer.agent

    @router.post(
        "/papers",
        summary="Add papers: upload files (PDF, JSON, JSONL) or send JSON records",
        response_class=JSONResponse,
        openapi_extra={"requestBody": UPLOAD_BODY},
        responses=JOB_RESPONSES
        | responses(
            e400="The body could not be read (JSON that does not parse, a broken multipart body).",
            e413="The body is over `serve.max_upload_bytes`.",
            e415="The body, or one of its files, is of a type that cannot be read as papers.",
        ),
    )
    async def add_papers(request: Request, wait: Wait = 10) -> JSONResponse:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media == "application/json":
            records = _records(await request.body())
            job = await run_in_threadpool(writer.add_records, records)
        elif media == "multipart/form-data":
            async with request.form(max_files=10_000) as form:
                _only_files(form)
                uploads = _checked(form.getlist("files"))
                job = writer.add(await run_in_threadpool(_store, writer, uploads))
        else:
            raise HTTPException(
                415, f"Content-Type {media or '(none)'!r}: send multipart/form-data or application/json"
            )
        return await run_in_threadpool(job_response, job, wait)

    @router.get("/papers", summary="List the collection's papers, a page at a time", response_model=PaperPage)
    def list_papers(
        offset: Annotated[
            int, Query(ge=0, le=OFFSET_MAX, description="Papers to skip."), BeforeValidator(whole_number_text)
        ] = 0,
        limit: Annotated[
            int, Query(ge=1, le=PAGE_MAX, description="Papers in the page."), BeforeValidator(whole_number_text)
        ] = 50,
    ) -> dict[str, Any]:
        total, page = agent.list_papers(offset, limit)
        return {"total": total, "offset": offset, "limit": limit, "papers": page}

    @router.delete(
        "/papers/{paper_id}",
        summary="Remove a paper from every index",
        response_class=JSONResponse,
        responses=JOB_RESPONSES | responses(e404="No paper with this id."),
    )
    def remove_paper(
        paper_id: Annotated[str, PathParam(description="A paper id, as search results give it.")], wait: Wait = 30
    ) -> JSONResponse:
        if not agent.index.stored_paper_ids([paper_id]):
            raise PaperNotFound(paper_id)
        return job_response(writer.remove([paper_id]), wait)

    @router.get(
        "/jobs/{job_id}",
        summary="A job's state, progress and result",
        response_model=JobOut,
        responses=responses(e404="No such job (or it finished long ago and was forgotten)."),
    )
    def job_status(job_id: Annotated[str, PathParam(description="As `POST /papers` gave it.")]) -> dict[str, Any]:
        job = writer.runner.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job with id {job_id!r}")
        return job.to_json()

    return router


def _records(raw: bytes) -> list[dict[str, Any]]:
    """The body's paper records, validated as the schema declares them (422 names each bad field)."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(400, f"the body is not JSON: {error}") from None
    try:  # a list as a list, anything else as one record: each error then names its field, not a union member
        parsed = RECORD_LIST.validate_python(data) if isinstance(data, list) else [PaperRecord.model_validate(data)]
    except ValidationError as error:
        raise RequestValidationError([e | {"loc": ("body", *e["loc"])} for e in error.errors()]) from None
    return [r.model_dump(exclude_none=True) for r in parsed]


def _only_files(form: FormData) -> None:
    """422 naming each form field other than `files`, which the schema forbids: none is ignored silently."""
    unknown = [name for name in form if name != "files"]
    if unknown:
        message = "not a field of this form: send each file as `files`"
        errors = [{"type": "extra_forbidden", "loc": ("body", name), "msg": message, "input": name} for name in unknown]
        raise RequestValidationError(errors)


def _checked(uploads: list[Any]) -> list[UploadFile]:
    """The uploaded files; 422 when none was sent or a part is no file, 415 naming the first of a type not read."""
    if not uploads:
        loc: tuple[str | int, ...] = ("body", "files")
        raise RequestValidationError([{"type": "missing", "loc": loc, "msg": "at least one file", "input": None}])
    for n, upload in enumerate(uploads):
        if not isinstance(upload, UploadFile):  # a plain form value: a part without a file name
            loc = ("body", "files", n)
            message = "a file (a part with a file name), not a plain form value"
            raise RequestValidationError([{"type": "file_type", "loc": loc, "msg": message, "input": upload}])
        if _suffix(upload) is None:
            known = ", ".join(UPLOAD_TYPES)
            raise HTTPException(
                415, f"files[{n}] {upload.filename!r} ({upload.content_type}): not a type read as papers ({known})"
            )
    return uploads


def _suffix(upload: UploadFile) -> str | None:
    """The type a file is read as: by its name, else its media type, else a nameless, untyped part by its content."""
    suffix = upload_suffix(upload.filename or "", upload.content_type)
    if suffix is not None or (upload.filename and "." in upload.filename):
        return suffix
    if upload.content_type not in (None, "", "application/octet-stream"):
        return None
    upload.file.seek(0)
    return ".pdf" if upload.file.read(5) == b"%PDF-" else ".jsonl"


def _store(writer: PaperWriter, uploads: list[UploadFile]) -> list[tuple[Path, str]]:
    """Each file under a new folder of `data_dir/uploads`, with the name it was uploaded as."""
    folder = writer.new_upload()
    stored = []
    for n, upload in enumerate(uploads, start=1):
        suffix = _suffix(upload) or ".jsonl"  # checked already
        name, path = upload.filename or f"files[{n - 1}]", folder / stored_name(n, upload.filename or "", suffix)
        upload.file.seek(0)
        with path.open("wb") as out:
            shutil.copyfileobj(upload.file, out)
        stored.append((path, name))
    return stored
