"""Serving the app with uvicorn: one process, a line saying where to go once it listens."""

from __future__ import annotations

import copy
import socket
from types import FrameType
from typing import Any

import uvicorn

from paper_agent.llm_supervisor import Supervisor
from paper_agent.query_embed import QueryCache
from paper_agent.service import PaperAgent
from paper_agent.web.app import create_app

# uvicorn's own logging set-up, plus the supervisor's deaths and restarts in the same form ("WARNING:  ...").
_LOG_CONFIG: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
_LOG_CONFIG["loggers"]["paper_agent.llm_supervisor"] = {"handlers": ["default"], "level": "INFO", "propagate": False}


class _AnnouncingServer(uvicorn.Server):
    """uvicorn's server, printing where to go once it really listens, and telling the model server's supervisor
    to start nothing more as soon as it is asked to exit."""

    def __init__(self, config: uvicorn.Config, supervisor: Supervisor | None) -> None:
        super().__init__(config)
        self.supervisor = supervisor

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_soon()  # before uvicorn drains its connections, which may take a while
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
            url = f"http://{host}:{self.config.port}"
            print(f"\nPaper Agent is ready: {url}/  (API docs {url}/docs, OpenAI-compatible {url}/v1)\n", flush=True)


def run(
    paper_agent: PaperAgent,
    host: str,
    port: int,
    query_cache: QueryCache | None = None,
    supervisor: Supervisor | None = None,
) -> None:
    """Serve the app until Ctrl-C, with `supervisor` watching the local model server meanwhile (the server keeps
    running after). One process: the embedding model and the generation gate are per process."""
    # No access log: /metrics counts every request, and logging each one costs more than serving a search.
    config = uvicorn.Config(
        create_app(paper_agent, query_cache, supervisor),
        host=host,
        port=port,
        access_log=False,
        log_level="info",
        log_config=_LOG_CONFIG,
    )
    if supervisor is not None:
        print("model server: watched; restarted with back-off if it dies", flush=True)
        supervisor.start()
    try:
        _AnnouncingServer(config, supervisor).run()
    finally:
        if supervisor is not None:
            supervisor.stop()
