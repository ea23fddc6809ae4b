"""Background jobs run one at a time, in order, on one thread: the app's writes to the index.

Ingest embeds (CPU-heavy, seconds to minutes) and rebuilds the BM25 index; two at once would race on the same
records and files. So every write, from the HTTP API and the chat UI alike, is a `Job` on one `JobRunner`: the
caller gets the job at once and reads its state, progress and result while searches keep being answered.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from paper_agent.errors import AgentError

log = logging.getLogger(__name__)

State = Literal["queued", "running", "done", "failed"]
Work = Callable[["Job"], dict[str, Any]]


@dataclass
class Job:
    """One write: its state, progress (work-specific counters) and, once done, its result or error."""

    kind: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: State = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def wait(self, timeout_s: float | None) -> bool:
        """Whether the job has finished (done or failed), waiting up to `timeout_s` for it."""
        return self.done.wait(timeout_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "kind": self.kind,
            "state": self.state,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "progress": dict(self.progress),
            "result": self.result,
            "error": self.error,
        }


class JobRunner:
    """Runs submitted jobs one after another on a thread of its own; remembers the last `keep` jobs."""

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self._queue: queue.SimpleQueue[tuple[Job, Work]] = queue.SimpleQueue()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, kind: str, work: Work) -> Job:
        """Queue `work(job)`; its return value becomes the job's result. Returns the job at once."""
        job = Job(kind)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="paper-writer", daemon=True)
                self._thread.start()
        self._queue.put((job, work))
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def pending(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return sum(1 for job in self._jobs.values() if job.state in ("queued", "running"))

    def _forget_old(self) -> None:
        finished = [i for i, job in self._jobs.items() if job.state in ("done", "failed")]
        for job_id in finished[: max(0, len(self._jobs) - self.keep)]:
            del self._jobs[job_id]

    def _run(self) -> None:
        while True:
            job, work = self._queue.get()
            job.state, job.started = "running", time.time()
            try:
                job.result = work(job)
                job.state = "done"
            except AgentError as error:
                job.state, job.error = "failed", str(error)
            except Exception as error:  # a job's failure must not stop the writer: later jobs still run
                log.exception("job %s (%s) failed", job.id, job.kind)
                job.state, job.error = "failed", f"internal error: {type(error).__name__}: {error}"
            finally:
                job.finished = time.time()
                job.done.set()
