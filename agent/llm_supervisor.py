"""Keep the local model server up while `serve` runs: watch its process and port, restart it with back-off.

`serve` supervises only a server it may start itself (`llm.base_url` unset); a configured URL is someone else's
to run, and `/health` just reports it. The server is detached and outlives `serve` by design, so the watch works
the same whether `serve` started it or found it running: by the process in the pid file (when that one lives)
and by its port. A restart is `ensure_server`, which reuses whatever answers on the port first.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from paper_agent.errors import ModelServerUnavailable
from paper_agent.llm_launch import local_base_url
from paper_agent.llm_server import LOG_NAME, ensure_server, log_tail, read_pid
from paper_agent.settings import Settings

log = logging.getLogger(__name__)

Status = Literal["up", "restarting", "stopped"]


@dataclass(frozen=True)
class SupervisorState:
    """What `/health` and `/metrics` report about the supervised server."""

    status: Status
    url: str
    restarts: int  # servers started again that answered
    failed_restarts: int  # starts that did not answer in time (port taken, bad model file, ...)
    failures: int  # deaths and failed starts in a row; sets the back-off, reset by a long enough healthy spell
    last_error: str | None
    retry_in_s: float | None  # while restarting: seconds until the next start

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Watch(Protocol):
    """A model server seen from outside: is it alive, start it again, what did it last log."""

    url: str

    def probe(self) -> str | None:
        """Why the server is down, or None while it lives."""
        ...

    def restart(self) -> None:
        """Start the server and return once it answers; raises `ModelServerUnavailable` if it does not."""
        ...

    def tail(self) -> str:
        """The end of the server's log."""
        ...


def backoff_delay(failures: int, initial_s: float, cap_s: float) -> float:
    """Seconds to wait before the next start after `failures` (>= 1) in a row: doubling from `initial_s`, capped."""
    return min(cap_s, initial_s * 2.0 ** min(max(failures - 1, 0), 60))


class Supervisor:
    """The restart state machine; `step()` runs one check, and a background thread runs it until `stop()`."""

    def __init__(
        self,
        watch: Watch,
        *,
        interval_s: float,
        backoff_s: float,
        backoff_max_s: float,
        error: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.watch, self.interval_s, self.backoff_s, self.backoff_max_s = watch, interval_s, backoff_s, backoff_max_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._status: Status = "up"
        self._up_since = clock()
        self._restarts = self._failed = self._failures = 0
        self._error: str | None = None
        self._next_try = 0.0
        if error is not None:  # `serve` could not start it: begin by retrying, as after a failed restart
            self._down(error, "did not start")

    def state(self) -> SupervisorState:
        """A consistent snapshot (the thread updates the state while requests read it)."""
        with self._lock:
            retry = max(0.0, self._next_try - self._clock()) if self._status == "restarting" else None
            return SupervisorState(
                self._status, self.watch.url, self._restarts, self._failed, self._failures, self._error, retry
            )

    def step(self) -> float:
        """One check: notice a death, or start the server again when its back-off is over. Seconds to the next."""
        if self._status == "up":
            reason = self.watch.probe()
            if reason is None:
                if self._failures and self._clock() - self._up_since >= self.backoff_max_s:
                    self._failures = 0  # healthy long enough: the next death is a first one again
                return self.interval_s
            self._down(reason, "died", self.watch.tail())
        if self._status != "restarting":
            return self.interval_s
        wait = self._next_try - self._clock()
        if wait > 0:
            return min(wait, self.interval_s)
        if self._stopping.is_set():  # subtle: never start a server while the app is exiting
            return self.interval_s
        started = self._clock()
        try:
            self.watch.restart()
        except (ModelServerUnavailable, OSError) as error:  # OSError: no model file, cannot run the command
            with self._lock:
                self._failed += 1
            self._down(error.reason if isinstance(error, ModelServerUnavailable) else str(error), "did not restart")
            return min(self.backoff_delay(), self.interval_s)
        with self._lock:
            self._status, self._up_since, self._error = "up", self._clock(), None
            self._restarts += 1
        took = self._clock() - started
        log.info("model server %s: back up after %.1f s (restart %d)", self.watch.url, took, self._restarts)
        return self.interval_s

    def backoff_delay(self) -> float:
        """The wait before the next start, from the failures in a row so far."""
        return backoff_delay(self._failures, self.backoff_s, self.backoff_max_s)

    def _down(self, reason: str, what: str, tail: str = "") -> None:
        with self._lock:
            self._failures += 1
            self._status, self._error = "restarting", reason
            wait = self.backoff_delay()
            self._next_try = self._clock() + wait
        ends = f"; its log ends:\n{tail}" if tail else ""
        log.warning(
            "model server %s: %s (%s); restarting in %g s (failure %d in a row)%s",
            *(self.watch.url, what, reason, wait, self._failures, ends),
        )

    def start(self) -> Supervisor:
        """Run `step()` on a daemon thread until `stop()` (daemon: a restart in progress never holds the exit)."""
        self._thread = threading.Thread(target=self._run, name="model-server-supervisor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                delay = self.step()
            except Exception:  # the watch must outlive any surprise: log it and look again later
                log.exception("model server %s: the supervisor's check failed", self.watch.url)
                delay = self.backoff_max_s
            self._stopping.wait(delay)

    def stop_soon(self) -> None:
        """Start no server from now on (safe to call from a signal handler: it only sets a flag)."""
        self._stopping.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop watching and wait a little for the thread; the server itself keeps running (it is detached)."""
        self.stop_soon()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._lock:
            self._status = "stopped"


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs; reaps it first if it is our child (a killed child is a zombie until then)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        pass  # not our child: ask the kernel whether it exists
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, someone else's
    return True


def port_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether something accepts connections on `host:port` (a killed server's socket closes at once)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class LocalWatch:
    """The local model server of `settings`: its process from the pid file, its port, `ensure_server` to restart."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = local_base_url(settings.server)
        split = urlsplit(self.url)
        self.host, self.port = split.hostname or "127.0.0.1", split.port or settings.server.port
        self.pid = self._live_pid()

    def _live_pid(self) -> int | None:
        """The pid file's process if it runs; a stale file (a server found running, not started) names none."""
        pid = read_pid(self.settings.data_dir)
        return pid if pid is not None and pid_alive(pid) else None

    def probe(self) -> str | None:
        if self.pid is not None and not pid_alive(self.pid):
            return f"process {self.pid} exited"
        if not port_open(self.host, self.port):
            return f"nothing listens on {self.host}:{self.port}"
        return None

    def restart(self) -> None:
        ensure_server(self.settings)
        self.pid = self._live_pid()

    def tail(self) -> str:
        return log_tail(self.settings.data_dir / LOG_NAME)


def supervise(settings: Settings, error: str | None = None) -> Supervisor | None:
    """A supervisor (not yet started) for the local model server that `serve` found or started (`error`: why it
    could not), or None for a configured URL or with `server.supervise` off."""
    if settings.llm.base_url or not settings.server.supervise:
        return None
    server = settings.server
    watch = LocalWatch(settings)
    return Supervisor(
        watch,
        interval_s=server.watch_interval_s,
        backoff_s=server.restart_backoff_s,
        backoff_max_s=server.restart_backoff_max_s,
        error=error,
    )
