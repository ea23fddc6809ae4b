"""`serve` restarts the local model server it runs: kill that server, and `/ask` answers again within 30 s."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest

from paper_agent.llm_server import free_port, read_pid
from paper_agent.settings import Settings
from tests.integration.conftest import start_app, stop_app

pytestmark = pytest.mark.integration

# Answerable, so the model is asked (a refusal never reaches the model server and would answer 200 regardless).
PROP = "Which pre-training task for ad-hoc retrieval predicts which of two word sets better represents a document?"
RECOVERY_S = 30.0  # the bound, from the kill to the next answer


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _stop_server(pid: int | None) -> None:
    """Stop the detached model server `serve` started (it outlives the app by design)."""
    if pid is None or _gone(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not _gone(pid):
        os.kill(pid, signal.SIGKILL)


def _answered(url: str) -> bool:
    """Whether `/ask` gave a real (model-written, not refused) answer."""
    got = httpx.post(f"{url}/ask", json={"question": PROP}, timeout=120)
    return got.status_code == 200 and got.json()["refused"] is False


def test_a_killed_model_server_is_restarted(
    indexed_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"  # a copy of the index: this app's pid file and server log go beside it
    shutil.copytree(indexed_settings.data_dir, data_dir)
    monkeypatch.delenv("PAPER_AGENT_LLM__BASE_URL", raising=False)  # serve runs its own llama.cpp
    # A 2 s first back-off leaves /health a window to show the restart; well inside the 30 s.
    env = {"PAPER_AGENT_SERVER__PORT": str(free_port()), "PAPER_AGENT_SERVER__RESTART_BACKOFF_S": "2"}
    app = start_app(data_dir, tmp_path / "app.log", **env)
    try:
        pid = read_pid(data_dir)
        assert pid is not None, "serve started a model server and wrote its pid"
        assert _answered(app.url)

        os.kill(pid, signal.SIGKILL)  # a crash: no clean shutdown
        killed = time.monotonic()
        supervisor_states, statuses = set(), set()
        while time.monotonic() - killed < RECOVERY_S:
            health = httpx.get(f"{app.url}/health", timeout=30).json()
            statuses.add(health["status"])
            supervisor_states.add(health["model"]["supervisor"]["status"])
            if _answered(app.url):
                break
            time.sleep(0.5)
        recovered = time.monotonic() - killed
        assert recovered < RECOVERY_S, f"no answer {recovered:.0f} s after the kill; log {app.log_path}"
        assert "degraded" in statuses and "restarting" in supervisor_states

        new_pid = read_pid(data_dir)
        assert new_pid is not None and new_pid != pid and not _gone(new_pid)
        health = httpx.get(f"{app.url}/health", timeout=30).json()
        assert health["status"] == "ok" and health["model"]["supervisor"]["restarts"] == 1
        metrics = httpx.get(f"{app.url}/metrics", timeout=30).text
        assert 'paper_agent_model_server_restarts_total{outcome="ready"} 1.0' in metrics
        assert "paper_agent_model_server_up 1.0" in metrics
        log = app.log_path.read_text()
        assert f"died (process {pid} exited)" in log and "back up after" in log
    finally:
        stop_app(app)
        _stop_server(read_pid(data_dir))
