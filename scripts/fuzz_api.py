"""Fuzz the web app's API from its own OpenAPI schema with schemathesis, all checks (`make fuzz`).

.venv/bin/python scripts/fuzz_api.py                          # serve on a free port, fuzz it, stop it
.venv/bin/python scripts/fuzz_api.py --url http://127.0.0.1:8000  # fuzz an app that is already running
.venv/bin/python scripts/fuzz_api.py --max-examples 50        # more cases per operation (default 15)

Every operation is fuzzed, /ask and /v1/chat/completions included: most generated questions are refused
without a model call, the others reach the real model server (hence the long request timeout). Exit status:
schemathesis's (0 = no failures, no 5xx). Any `paper-agent serve` environment (PAPER_AGENT_*) applies.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def schemathesis_command(url: str, max_examples: int, *extra: str) -> list[str]:
    """The schemathesis run over every operation of the app at `url`, with all checks."""
    cli = Path(sys.executable).with_name("schemathesis")
    return [
        str(cli) if cli.exists() else "schemathesis",
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--request-timeout",
        "300",
        "--seed",
        "12",  # the same cases every run: a failure can be run again
        *extra,
    ]


def fuzz(url: str, max_examples: int, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run schemathesis against `url`; its report is in `stdout`."""
    command = schemathesis_command(url, max_examples, *extra)
    with tempfile.TemporaryDirectory() as scratch:  # its example database: every run starts from the seed alone
        environment = os.environ | {"NO_COLOR": "1"}
        return subprocess.run(command, capture_output=True, text=True, check=False, env=environment, cwd=scratch)


def serve(port: int, log: Path, timeout_s: float = 600.0) -> subprocess.Popen[bytes]:
    """`paper-agent serve` on `port` (it ingests and starts a model server if needed), once /health answers."""
    command = [sys.executable, "-m", "paper_agent.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"the app did not start; see {log}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an app that is already running (default: start one)")
    parser.add_argument("--max-examples", type=int, default=15, help="cases per operation and phase")
    args, extra = parser.parse_known_args()
    if args.url:
        process, url = None, args.url.rstrip("/")
    else:
        port, log = free_port(), ROOT / ".runs" / "fuzz-app.log"
        log.parent.mkdir(exist_ok=True)
        print(f"starting paper-agent serve on port {port} (log {log})", flush=True)
        process, url = serve(port, log), f"http://127.0.0.1:{port}"
    try:
        result = fuzz(url, args.max_examples, *extra)
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
    print(result.stdout, result.stderr, sep="\n")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
