"""Serving the app with uvicorn: one process, a line saying where to go once it listens."""

from __future__ import annotations

import socket

import uvicorn

from paper_agent.query_embed import QueryCache
from paper_agent.service import PaperAgent
from paper_agent.web.app import create_app


class _AnnouncingServer(uvicorn.Server):
    """uvicorn's server, printing where to go once it really listens."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
            url = f"http://{host}:{self.config.port}"
            print(f"\nPaper Agent is ready: {url}/  (API docs {url}/docs, OpenAI-compatible {url}/v1)\n", flush=True)


def run(paper_agent: PaperAgent, host: str, port: int, query_cache: QueryCache | None = None) -> None:
    """Serve the app until Ctrl-C. One process: the embedding model and the generation gate are per process."""
    # No access log: /metrics counts every request, and logging each one costs more than serving a search.
    config = uvicorn.Config(
        create_app(paper_agent, query_cache), host=host, port=port, access_log=False, log_level="info"
    )
    _AnnouncingServer(config).run()
