"""The llama.cpp server process itself: `python -m paper_agent.llamacpp_server --gguf ...` (via xllamacpp).

Its own module so that the process imports no HTTP client or model library besides xllamacpp, and starts fast;
`agent.llm_launch.llamacpp_command` builds its command line from the settings.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading


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
    parser = argparse.ArgumentParser(prog="python -m paper_agent.llamacpp_server", description=serve_llamacpp.__doc__)
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
