"""Start, wait for and stop the local model server process (llama.cpp on a CPU, vLLM on a CUDA host).

The server always runs in its own process, so a crash cannot take the app down and tests can start and
stop it. What it runs comes from `agent/llm_launch.py`; whether it is ready is a real chat request
(`agent.llm.health`), not a port probe.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from paper_agent.errors import ModelServerUnavailable
from paper_agent.llm import OpenAIChatModel, health
from paper_agent.llm_launch import Backend, backend_for, local_base_url, server_command
from paper_agent.settings import LLMSettings, Settings

LOG_NAME = "llm-server.log"
PID_NAME = "llm-server.pid"  # the detached server's process id, so it can be found and stopped later
_STOP_GRACE_S = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for servers that tests and benchmarks start)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def answers(url: str, llm: LLMSettings | None = None, timeout_s: float = 5.0) -> bool:
    """Whether a model server at `url` completes a real 1-token request within `timeout_s`."""
    probe = (llm or LLMSettings()).model_copy(update={"timeout_s": timeout_s, "connect_timeout_s": min(1.0, timeout_s)})
    return bool(health(OpenAIChatModel(probe, url))["ok"])


def wait_until_ready(
    url: str, timeout: float, llm: LLMSettings | None = None, process: subprocess.Popen[bytes] | None = None
) -> float:
    """Poll `url` with real chat requests until one succeeds; the seconds it took. Raises on timeout."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if answers(url, llm, timeout_s=max(0.5, min(10.0, deadline - time.monotonic()))):
            return time.monotonic() - started
        if process is not None and process.poll() is not None:
            raise ModelServerUnavailable(url, f"server process exited with code {process.returncode}")
        time.sleep(0.2)
    raise ModelServerUnavailable(url, f"not ready after {timeout:.0f} s")


def start_server(
    settings: Settings, log: IO[bytes] | None = None, *, detach: bool = False, backend: Backend | None = None
) -> subprocess.Popen[bytes]:
    """Start the local model server process; its output goes to `log` (or this terminal)."""
    command = server_command(settings, backend)
    # detach: a new session, so Ctrl-C in the terminal that started the app does not reach the server.
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=detach,
    )


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Stop a server process: SIGTERM, then SIGKILL if it has not exited after a grace period."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a server log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def read_pid(data_dir: Path) -> int | None:
    """The process id in the detached server's pid file, if there is a readable one."""
    try:
        return int((data_dir / PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return None


def ensure_server(settings: Settings) -> str:
    """The base URL of a model server that answers, starting a detached local one if needed."""
    if settings.llm.base_url:
        return settings.llm.base_url
    url = local_base_url(settings.server)
    if answers(url, settings.llm):
        return url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.data_dir / LOG_NAME
    with log_path.open("ab") as log:
        process = start_server(settings, log, detach=True)
    (settings.data_dir / PID_NAME).write_text(f"{process.pid}\n")
    try:
        wait_until_ready(url, settings.server.startup_timeout_s, settings.llm, process)
    except ModelServerUnavailable as error:
        # subtle: another process may have started a server on this port first; ours then exits
        # (port in use) but the URL answers, which is all the caller needs.
        if process.poll() is not None and answers(url, settings.llm):
            return url
        stop_server(process)
        raise ModelServerUnavailable(url, f"{error.reason}; log {log_path}:\n{log_tail(log_path)}") from error
    return url


class LocalServer:
    """A local model server for the length of a `with` block (tests, benchmarks)."""

    def __init__(self, settings: Settings, log_path: Path | None = None, backend: Backend | None = None) -> None:
        self.settings = settings
        self.url = local_base_url(settings.server)
        self.log_path = log_path
        self.backend = backend
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None

    def start(self) -> LocalServer:
        """Start the server and wait until it answers a chat request."""
        log = self.log_path.open("ab") if self.log_path is not None else None
        try:
            self.process = start_server(self.settings, log, backend=self.backend)
        finally:
            if log is not None:
                log.close()  # the child holds its own copy of the descriptor
        started = time.monotonic()
        try:
            wait_until_ready(self.url, self.settings.server.startup_timeout_s, self.settings.llm, self.process)
        except BaseException:  # also Ctrl-C while waiting: never leave a half-started server behind
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop the server process if it runs."""
        if self.process is not None:
            stop_server(self.process)
            self.process = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def main_llm(settings: Settings) -> None:
    """`paper-agent llm`: run the local model server in the foreground until Ctrl-C."""
    url = local_base_url(settings.server)
    if answers(url, settings.llm):
        print(f"a model server already answers at {url}")
        return
    backend = backend_for(settings.server)
    server = LocalServer(settings, backend=backend)
    process = server.start().process
    print(f"{backend} model server ready at {url} in {server.startup_s:.1f} s (Ctrl-C stops it)", flush=True)
    try:
        code = process.wait() if process is not None else 0
        print(f"the model server exited with code {code}", flush=True)
    except KeyboardInterrupt:
        print("stopping the model server", flush=True)
    finally:
        server.stop()
