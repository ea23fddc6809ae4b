"""The API's paths are answered by the API, never by the chat UI mounted at `/`: 405 Method Not Allowed, with
`Allow`, for a declared path asked with a method it does not declare; 404 with the API's error body for a path
under one of the API's own prefixes (`/papers/`, `/jobs/`, `/v1/`, ...) that no route declares.

subtle: Starlette answers 405 itself, but not with the UI mounted at `/`: a router prefers a route that matches
path and method, and the mount matches every path with any method, so the UI would answer (404, in its own
body). The table comes from the OpenAPI schema (plus the docs' own routes), the contract this answers for.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.routing import Route, compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from paper_agent.web.errors import body

HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}


class MethodNotAllowedMiddleware:
    """Answers 405 (and 404 under the API's prefixes) before the UI mount would answer (see the module's note)."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self._table: list[tuple[re.Pattern[str], frozenset[str]]] | None = None
        self._prefixes: tuple[str, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        allowed = self.allowed(path)
        if allowed is None and path.startswith(self._prefixes):
            response = JSONResponse(body(404, f"no such API path: {path}"), 404)
        elif allowed is None or scope["method"] in allowed:
            await self.app(scope, receive, send)
            return
        else:
            message = f"{scope['method']} is not allowed here; allowed: {', '.join(sorted(allowed))}"
            response = JSONResponse(body(405, message), 405, headers={"Allow": ", ".join(sorted(allowed))})
        await response(scope, receive, send)

    def allowed(self, path: str) -> frozenset[str] | None:
        """The methods declared for `path`; None for a path the API does not have (the UI's)."""
        for pattern, methods in self.table():
            if pattern.match(path):
                return methods
        return None

    def table(self) -> list[tuple[re.Pattern[str], frozenset[str]]]:
        """(path pattern, methods) of every declared path; built at the first request, when all routes exist."""
        if self._table is None:
            methods: dict[str, set[str]] = {}
            for path, operations in self.api.openapi()["paths"].items():
                methods.setdefault(path, set()).update(m.upper() for m in operations if m.upper() in HTTP_METHODS)
            for route in self.api.routes:
                if isinstance(route, Route) and not route.include_in_schema and route.methods:
                    methods.setdefault(route.path, set()).update(route.methods)
            self._table = [(compile_path(path)[0], frozenset(ms)) for path, ms in methods.items()]
            # "/papers/", "/jobs/", "/v1/": the first segment of every path that has more than one
            self._prefixes = tuple(sorted({f"/{p.split('/')[1]}/" for p in methods if p.count("/") > 1}))
        return self._table
