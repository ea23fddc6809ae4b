"""413 for a request body over `serve.max_request_bytes`, with the app's error body.

A declared `Content-Length` over the bound is refused before anything is read; a body sent without one is
counted as it arrives and refused once it passes the bound.

subtle: not FastAPI's `max_body_size`: Starlette's limiter replaces any response to such a request with its own
`text/plain` one, so the 413 could not have the error body the schema documents.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paper_agent.web.errors import body


class BodyLimitMiddleware:
    """`max_bytes` for every body; `max_upload_bytes` for a POST to one of `upload_paths` (papers, files)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, upload_paths: Collection[str] = (), max_upload_bytes: int = 0
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_paths = frozenset(upload_paths)
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, message = self.limit(scope)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await JSONResponse(body(413, message), 413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message_in = await receive()
            received += len(message_in.get("body", b""))
            if received > limit:  # raised inside the route's body read: the app's handler answers
                raise HTTPException(413, message)
            return message_in

        await self.app(scope, counted, send)

    def limit(self, scope: Scope) -> tuple[int, str]:
        """The bound for this request, and what a 413 says about it."""
        if scope["method"] == "POST" and scope["path"] in self.upload_paths:
            return self.max_upload_bytes, f"the upload is over {self.max_upload_bytes} bytes (serve.max_upload_bytes)"
        return self.max_bytes, f"the request body is over {self.max_bytes} bytes (serve.max_request_bytes)"
