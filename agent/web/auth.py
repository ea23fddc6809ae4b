"""The API key: with `serve.api_key` set, every route but /health needs `Authorization: Bearer KEY`."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

BEARER = HTTPBearer(auto_error=False, description="The app's API key (`serve.api_key`).")


def api_key_guard(key: str) -> Callable[..., None]:
    """A dependency that answers 401 unless the request carries `Authorization: Bearer <key>`."""

    def require_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        given = credentials.credentials.encode() if credentials is not None else b""
        if not secrets.compare_digest(given, key.encode()):
            message = "missing or wrong API key: send `Authorization: Bearer KEY`"
            raise HTTPException(401, message, {"WWW-Authenticate": "Bearer"})

    return require_key
