"""Domain errors. Each carries the context a user needs to act; front ends map them to exit or HTTP codes."""

from __future__ import annotations

from pathlib import Path


class AgentError(Exception):
    """Base of every error the library raises on purpose."""


class BadFile(AgentError):
    """A file, or one line of it, that cannot be used; the message names it as `path[:line]: reason`."""

    def __init__(self, path: str | Path, reason: str, line: int | None = None) -> None:
        self.path, self.reason, self.line = path, reason, line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


class UnreadablePaper(BadFile):
    """A file, or one line of it, could not be read as papers. Ingest reports it and goes on."""

    path: str


class IndexNotBuilt(AgentError):
    """The index is empty: nothing has been ingested yet."""

    def __init__(self, where: str) -> None:
        super().__init__(f"the index at {where} is empty: run `paper-agent ingest` first")


class IndexBuiltWithOtherModel(IndexNotBuilt):
    """The index's vectors come from another embedding model than the one search embeds questions with."""

    def __init__(self, where: str, built_with: str, searching_with: str) -> None:
        AgentError.__init__(
            self,
            f"the index at {where} was embedded with {built_with}, but search embeds with {searching_with}: "
            "run `paper-agent ingest` to re-embed it",
        )


class ModelServerUnavailable(AgentError):
    """The model server did not answer, or answered with an error."""

    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(f"model server at {url} is unavailable: {reason}")


class PaperNotFound(AgentError):
    def __init__(self, paper_id: str) -> None:
        self.paper_id = paper_id
        super().__init__(f"no paper with id {paper_id!r} in the index")


class Overloaded(AgentError):
    """Too many generations are running or queued; try again later."""

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"too many questions in flight; retry after {retry_after_s} s")
