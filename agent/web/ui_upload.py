"""The chat page's drop zone: PDFs and JSON/JSONL records dropped on it are added to the collection, with progress.

The files go to the app's one `PaperWriter` (agent/writer.py), like `POST /papers`: stored under
`data_dir/uploads`, ingested as a job on the writer's thread; the status line follows the job until it is done and
then says what was added, merged and skipped, so the next question can be about the new papers.
"""

from __future__ import annotations

import html
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from paper_agent.jobs import Job
from paper_agent.writer import UPLOAD_TYPES, PaperWriter, stored_name, upload_suffix

POLL_S = 0.5
IDLE = '<div class="upload-status">Drop PDFs or JSON/JSONL paper records above to add them to the collection.</div>'


def upload_zone(writer: PaperWriter) -> None:
    """The drop zone and its status line, in the current Blocks context."""
    files = gr.File(
        label="Add papers (PDF, JSON, JSONL)",
        file_count="multiple",
        file_types=list(UPLOAD_TYPES),
        type="filepath",
        height=110,
        elem_id="upload",
    )
    status = gr.HTML(IDLE, elem_id="upload-status")
    files.upload(PaperUploads(writer).add, inputs=[files], outputs=[status], show_progress="hidden")


class PaperUploads:
    """The drop zone's handler: stores the files, queues their ingest, and reports the job as it runs."""

    def __init__(self, writer: PaperWriter) -> None:
        self.writer = writer

    def add(self, paths: list[str] | None) -> Iterator[str]:
        files = [Path(p) for p in paths or []]
        if not files:
            yield IDLE
            return
        unread = [f.name for f in files if upload_suffix(f.name, None) is None]
        if unread:
            raise gr.Error(f"Not a type read as papers ({', '.join(UPLOAD_TYPES)}): {', '.join(unread)}")
        folder = self.writer.new_upload()
        stored = []
        for n, file in enumerate(files, start=1):
            target = folder / stored_name(n, file.name, upload_suffix(file.name, None) or file.suffix)
            shutil.copyfile(file, target)
            stored.append((target, file.name))
        job = self.writer.add(stored)
        while not job.wait(POLL_S):
            yield progress_html(job)
        yield result_html(job)


def progress_html(job: Job) -> str:
    p = job.progress
    if job.state == "queued":
        text = "Queued behind another upload…"
    elif p.get("stage") == "reading":
        text = f"Reading {p.get('files', 0)} file(s)…"
    else:
        text = f"Indexing {p.get('papers', 0)} paper(s): {p.get('chunks_written', 0)} chunks embedded…"
    return f'<div class="upload-status running">{html.escape(text)}</div>'


def result_html(job: Job) -> str:
    """What the finished job did: papers added and merged (by title), files and lines skipped with their reasons."""
    if job.state == "failed" or job.result is None:
        return f'<div class="upload-status failed">Upload failed: {html.escape(job.error or "unknown error")}</div>'
    result: dict[str, Any] = job.result
    items = [f"<li>Added: {_ref(r)}</li>" for r in result["added"]]
    items += [f"<li>Already in the collection: {_ref(r)}</li>" for r in result["merged"]]
    items += [
        f"<li class='skipped'>Skipped {html.escape(s['file'])}{'' if s['line'] is None else ':' + str(s['line'])}: "
        f"{html.escape(s['reason'])}</li>"
        for s in result["skipped"]
    ]
    done = len(result["added"]) + len(result["merged"])
    head = f"{done} paper{'s' * (done != 1)} ready to ask about." if done else "No paper could be read."
    return f'<div class="upload-status done"><b>{head}</b><ul>{"".join(items)}</ul></div>'


def _ref(ref: dict[str, str]) -> str:
    return f"<i>{html.escape(ref['title'])}</i> <code>{html.escape(ref['paper_id'])}</code>"
