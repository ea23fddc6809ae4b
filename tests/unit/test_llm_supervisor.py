"""The model server's supervisor: back-off, restarts and state, driven step by step with a fake server and clock."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from paper_agent.errors import ModelServerUnavailable
from paper_agent.llm_server import PID_NAME, free_port
from paper_agent.llm_supervisor import LocalWatch, Supervisor, backoff_delay, pid_alive, port_open, supervise
from paper_agent.settings import LLMSettings, ServerSettings, Settings

URL = "http://127.0.0.1:8090/v1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeWatch:
    """A server that is alive until told it died; each restart succeeds or raises as scripted, and is recorded."""

    url = URL

    def __init__(self, clock: FakeClock, restart_outcomes: list[str | None] | None = None) -> None:
        self.clock = clock
        self.dead: str | None = None
        self.outcomes = list(restart_outcomes or [])  # None: it comes back; a string: it fails with that reason
        self.restarts_at: list[float] = []

    def probe(self) -> str | None:
        return self.dead

    def restart(self) -> None:
        self.restarts_at.append(self.clock.now)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise ModelServerUnavailable(self.url, outcome)
        self.clock.now += 2.0  # starting takes a while
        self.dead = None

    def tail(self) -> str:
        return "llama.cpp server listening"


def make(watch: FakeWatch, clock: FakeClock, error: str | None = None) -> Supervisor:
    return Supervisor(watch, interval_s=1.0, backoff_s=1.0, backoff_max_s=8.0, error=error, clock=clock)


def run_for(supervisor: Supervisor, clock: FakeClock, seconds: float) -> None:
    """Step the supervisor as its thread would, advancing the fake clock by each step's wait."""
    end = clock.now + seconds
    while clock.now < end:
        clock.now += supervisor.step()


def test_backoff_doubles_from_the_first_wait_up_to_the_cap() -> None:
    assert [backoff_delay(n, 1.0, 60.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_delay(10_000, 1.0, 60.0) == 60  # no overflow after days of failures


def test_a_live_server_is_left_alone() -> None:
    clock = FakeClock()
    watch = FakeWatch(clock)
    supervisor = make(watch, clock)
    run_for(supervisor, clock, 30)
    assert watch.restarts_at == [] and supervisor.state().status == "up"


def test_a_dead_server_is_restarted_after_the_first_wait(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="paper_agent.llm_supervisor")
    clock = FakeClock()
    watch = FakeWatch(clock)
    supervisor = make(watch, clock)
    watch.dead = "nothing listens on 127.0.0.1:8090"
    assert supervisor.step() == 1.0  # noticed now, restarted after the 1 s back-off
    state = supervisor.state()
    assert state.status == "restarting" and state.last_error == watch.dead and state.retry_in_s == 1.0
    assert watch.restarts_at == []
    died_at = clock.now
    run_for(supervisor, clock, 5)
    assert watch.restarts_at == [died_at + 1.0]
    state = supervisor.state()
    assert (state.status, state.restarts, state.failed_restarts, state.last_error) == ("up", 1, 0, None)
    logged = caplog.text
    assert "died (nothing listens" in logged and "llama.cpp server listening" in logged and "back up" in logged


def test_failed_restarts_wait_twice_as_long_each_time_up_to_the_cap() -> None:
    clock = FakeClock()
    watch = FakeWatch(clock, ["port in use"] * 5)
    supervisor = make(watch, clock)
    watch.dead = "process 42 exited"
    died_at = clock.now
    run_for(supervisor, clock, 60)
    waits = [b - a for a, b in zip([died_at, *watch.restarts_at], watch.restarts_at, strict=False)]
    assert waits == [1, 2, 4, 8, 8, 8]  # each wait starts when the last try failed (instantly here); capped at 8
    state = supervisor.state()
    assert state.status == "up" and state.restarts == 1 and state.failed_restarts == 5


def test_a_server_that_keeps_dying_is_not_restarted_in_a_tight_loop() -> None:
    clock = FakeClock()
    watch = FakeWatch(clock)
    supervisor = make(watch, clock)
    delays = []
    for _ in range(4):  # it dies a second after each restart: the back-off keeps growing
        watch.dead = "process exited"
        supervisor.step()
        delays.append(supervisor.state().retry_in_s)
        run_for(supervisor, clock, 10)
    assert delays == [1, 2, 4, 8]
    assert supervisor.state().failures == 4


def test_a_healthy_spell_as_long_as_the_cap_resets_the_backoff() -> None:
    clock = FakeClock()
    watch = FakeWatch(clock, ["port in use", "port in use"])
    supervisor = make(watch, clock)
    watch.dead = "process exited"
    run_for(supervisor, clock, 10)  # failed at 1 s and 3 s, up again at 9 s
    assert supervisor.state().failures == 3 and supervisor.state().status == "up"
    run_for(supervisor, clock, 8)  # up for backoff_max_s
    assert supervisor.state().failures == 0
    watch.dead = "process exited"
    supervisor.step()
    assert supervisor.state().retry_in_s == 1.0


def test_a_server_that_did_not_start_with_serve_is_retried() -> None:
    clock = FakeClock()
    watch = FakeWatch(clock)
    watch.dead = "nothing listens"
    supervisor = make(watch, clock, error="server process exited with code 1")
    state = supervisor.state()
    assert state.status == "restarting" and state.last_error == "server process exited with code 1"
    run_for(supervisor, clock, 5)
    assert len(watch.restarts_at) == 1 and supervisor.state().status == "up"


def test_an_os_error_while_starting_is_a_failed_restart() -> None:
    clock = FakeClock()

    class NoModelFile(FakeWatch):
        def restart(self) -> None:
            raise FileNotFoundError("no GGUF model")

    watch = NoModelFile(clock)
    supervisor = make(watch, clock, error="did not start")
    run_for(supervisor, clock, 3)
    state = supervisor.state()
    assert state.status == "restarting" and state.failed_restarts >= 1 and "no GGUF model" in str(state.last_error)


def test_nothing_is_started_once_the_app_is_exiting() -> None:
    clock = FakeClock()
    watch = FakeWatch(clock)
    supervisor = make(watch, clock)
    watch.dead = "process exited"
    supervisor.step()
    supervisor.stop_soon()  # as uvicorn's exit signal handler does
    run_for(supervisor, clock, 30)
    assert watch.restarts_at == []
    supervisor.stop()
    assert supervisor.state().status == "stopped"


def test_the_thread_restarts_the_server_and_stops_promptly() -> None:
    class RealTimeWatch(FakeWatch):
        def __init__(self) -> None:
            super().__init__(FakeClock())
            self.back = threading.Event()

        def restart(self) -> None:
            self.dead = None
            self.back.set()

    watch = RealTimeWatch()
    watch.dead = "process exited"
    supervisor = Supervisor(watch, interval_s=0.01, backoff_s=0.01, backoff_max_s=0.05).start()
    try:
        assert watch.back.wait(5), "the supervisor's thread restarted the server"
    finally:
        supervisor.stop(timeout_s=5)
    assert supervisor._thread is not None and not supervisor._thread.is_alive()
    assert supervisor.state().restarts == 1


# --- the local server's process and port --------------------------------------------------------------------


def test_pid_alive_reaps_a_killed_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(child.pid)
    finally:
        child.send_signal(signal.SIGKILL)
    child.wait()  # or pid_alive reaps it: either way a killed child is not alive
    assert not pid_alive(child.pid)
    assert pid_alive(os.getpid())


def test_port_open_sees_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert port_open("127.0.0.1", listener.getsockname()[1])
    assert not port_open("127.0.0.1", free_port())


def test_local_watch_ignores_a_stale_pid_file_and_probes_the_port(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    (tmp_path / PID_NAME).write_text(f"{child.pid}\n")  # a server that is gone
    settings = Settings(data_dir=tmp_path, server=ServerSettings(host="0.0.0.0", port=free_port()))
    watch = LocalWatch(settings)
    assert watch.pid is None and watch.host == "127.0.0.1"
    assert watch.probe() == f"nothing listens on 127.0.0.1:{settings.server.port}"


def test_local_watch_notices_its_process_exit(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (tmp_path / PID_NAME).write_text(f"{child.pid}\n")
    with socket.socket() as listener:  # something on the port: only the process tells
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        settings = Settings(data_dir=tmp_path, server=ServerSettings(port=listener.getsockname()[1]))
        watch = LocalWatch(settings)
        assert watch.pid == child.pid and watch.probe() is None
        child.kill()
        child.wait()
        assert watch.probe() == f"process {child.pid} exited"


def test_a_configured_server_is_never_supervised(tmp_path: Path) -> None:
    configured = Settings(data_dir=tmp_path, llm=LLMSettings(base_url="http://gpu-host:8000/v1"))
    assert supervise(configured) is None
    assert supervise(Settings(data_dir=tmp_path, server=ServerSettings(supervise=False))) is None
    local = supervise(Settings(data_dir=tmp_path, server=ServerSettings(restart_backoff_s=3.0)), error="down")
    assert local is not None and local._thread is None  # not started: `run` starts it with the app
    assert local.state().retry_in_s == pytest.approx(3.0, abs=0.5)
