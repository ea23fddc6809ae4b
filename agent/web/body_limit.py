"""413 for a request body over `serve.max_request_bytes`, with the app's error body.

A declared `Content-Length` over the bound is refused before anything is read; a body sent without one is
counted as it arrives and refused once it passes the bound.

subtle: not FastAPI's `max_body_size`: Starlette's limiter replaces any response to such a request with its own
`text/plain` one, so the 413 could not have the error body the schema documents.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paper_agent.web.errors import body


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse(body(413, self.message), 413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:  # raised inside the route's body read: the app's handler answers
                raise HTTPException(413, self.message)
            return message

        await self.app(scope, counted, send)

    @property
    def message(self) -> str:
        return f"the request body is over {self.max_bytes} bytes (serve.max_request_bytes)"
