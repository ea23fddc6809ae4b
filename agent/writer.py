"""The app's one writer: uploaded files and records into the index, papers out of it, as jobs in one queue.

The web API and the chat UI both call `PaperWriter`; it stores uploads under `data_dir/uploads/` (never next to the
code), then runs the same readers and the same idempotent ingest as `paper-agent ingest` (`corpus.read_paths`,
`PaperAgent.ingest_read`) on the `JobRunner`'s one thread, so writes never overlap. Every write to the index made by
the app goes through `_ingest` or `_remove` below.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any

from paper_agent.corpus import read_paths
from paper_agent.jobs import Job, JobRunner
from paper_agent.service import PaperAgent
from paper_agent.types import Chunk

# The file types an upload may be, by suffix, and the media types that stand for them when the name has none.
UPLOAD_TYPES: dict[str, tuple[str, ...]] = {
    ".pdf": ("application/pdf",),
    ".json": ("application/json",),
    ".jsonl": ("application/x-ndjson", "application/jsonl", "application/jsonlines", "application/x-jsonlines"),
    ".txt": ("text/plain",),
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def upload_suffix(filename: str, media_type: str | None) -> str | None:
    """The suffix an uploaded file is read as: its name's if supported, else its media type's; None: neither."""
    suffix = PurePath(filename or "").suffix.lower()
    if suffix in UPLOAD_TYPES:
        return suffix
    media = (media_type or "").split(";")[0].strip().lower()
    return next((s for s, types in UPLOAD_TYPES.items() if media in types), None)


def stored_name(number: int, filename: str, suffix: str) -> str:
    """A safe file name for the `number`th file of an upload (its own name, cleaned, kept readable)."""
    stem = _UNSAFE.sub("_", PurePath(filename or "").stem).strip("._")[:80] or "upload"
    return f"{number:03d}-{stem}{suffix}"


class PaperWriter:
    """Adds and removes papers through one `JobRunner`."""

    def __init__(self, agent: PaperAgent, runner: JobRunner | None = None) -> None:
        self.agent = agent
        self.runner = runner or JobRunner()
        self.uploads = agent.settings.data_dir / "uploads"

    def new_upload(self) -> Path:
        """A fresh folder for one upload's files."""
        folder = self.uploads / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True)
        return folder

    def add(self, files: Sequence[tuple[Path, str]]) -> Job:
        """Queue the ingest of stored files, each with the name it was uploaded as (what reports show)."""
        return self.runner.submit("ingest", lambda job: self._ingest(job, list(files)))

    def add_records(self, records: list[dict[str, Any]], name: str = "records.json") -> Job:
        """Queue the ingest of paper records (`{title, abstract, ...}`, arXiv metadata too), stored as a JSON file."""
        path = self.new_upload() / stored_name(1, name, ".json")
        path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
        return self.add([(path, name)])

    def remove(self, paper_ids: Sequence[str]) -> Job:
        """Queue the removal of papers from every index."""
        return self.runner.submit("remove", lambda job: self._remove(job, list(paper_ids)))

    # on the writer's thread --------------------------------------------------------------------------------------

    def _ingest(self, job: Job, files: list[tuple[Path, str]]) -> dict[str, Any]:
        names = {str(path): name for path, name in files}
        job.progress.update(stage="reading", files=len(files), papers=0, chunks_written=0)
        report = read_paths([path for path, _ in files])
        known = set(self.agent.index.stored_paper_ids(p.id for p in report.papers))
        job.progress.update(stage="indexing", papers=len(report.papers))

        def written(batch: list[Chunk]) -> None:
            job.progress["chunks_written"] += len(batch)

        chunks = embedded = 0
        if report.papers:
            _, stats = self.agent.ingest_read(report, progress=False, on_batch=written)
            chunks, embedded = stats.chunks, stats.embedded
        self._drop_unused(names)
        job.progress["stage"] = "done"
        refs = [{"paper_id": p.id, "title": p.title} for p in report.papers]
        return {
            "files": report.files,
            "added": [r for r in refs if r["paper_id"] not in known],
            "merged": [r for r in refs if r["paper_id"] in known],
            "repeated": report.duplicates,
            "skipped": [
                {"file": names.get(str(s.path), PurePath(str(s.path)).name), "line": s.line, "reason": s.reason}
                for s in report.skipped
            ],
            "paper_ids": [r["paper_id"] for r in refs],
            "chunks": chunks,
            "embedded": embedded,
        }

    def _remove(self, job: Job, paper_ids: list[str]) -> dict[str, Any]:
        job.progress.update(stage="removing", papers=len(paper_ids))
        sources = {p.source for p in self.agent.index.get_papers(paper_ids).values()}
        removed = self.agent.remove_papers(paper_ids)
        self._drop_unused(dict.fromkeys(sources, ""))
        job.progress["stage"] = "done"
        return {"removed": removed, "not_found": sorted(set(paper_ids) - set(removed))}

    def _drop_unused(self, sources: dict[str, str]) -> None:
        """Delete uploaded files no stored paper comes from (skipped, or their papers removed), and empty folders."""
        ours = [s for s in sources if Path(s).is_relative_to(self.uploads)]
        for source in set(ours) - self.agent.index.sources_in_use(ours):
            Path(source).unlink(missing_ok=True)
            folder = Path(source).parent
            if folder != self.uploads and not any(folder.iterdir()):
                shutil.rmtree(folder, ignore_errors=True)
