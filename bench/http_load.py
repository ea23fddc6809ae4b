"""GET load on an HTTP/1.1 server from raw asyncio streams: keep-alive connections, one request in flight on each.

The load generator shares the machine's cores with the app it measures, so every millisecond of its CPU is one
the app does not get. httpx's client costs several times what these few lines do per request (`bench_app.py
--client httpx` measures both), which on 2 cores is a share of the figure, not noise.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from urllib.parse import urlencode, urlsplit


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened when the server closes it or a request fails."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, bytes]:
        """(status, body) of `GET target`."""
        try:
            return await self._get(target)
        except BaseException:
            self.close()  # a half-read response must not be read as the next one's
            raise

    async def _get(self, target: str) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode("latin-1"))
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if headers.get(b"transfer-encoding") == b"chunked":
            body = await self._read_chunked()
        else:
            body = await self._reader.readexactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection") == b"close":
            self.close()
        return status, body

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None
        parts = []
        while size := int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await self._reader.readexactly(size + 2))
        await self._reader.readuntil(b"\r\n")  # the (empty) trailer
        return b"".join(part[:-2] for part in parts)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def target(path: str, params: dict[str, object]) -> str:
    return f"{path}?{urlencode(params)}"


async def get_load(
    url: str, targets: list[str], clients: int, seconds: float
) -> tuple[float, list[float], Counter, float]:
    """(requests/s, latencies, status counts, this process's CPU seconds) of `clients` connections, each sending
    the next of `targets` (round robin) back to back for `seconds`."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        connection, i = Connection(url), offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                status, _ = await connection.get(targets[i % len(targets)])
                statuses[status] += 1
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
                statuses[type(error).__name__] += 1
            latencies.append(time.perf_counter() - started)
            i += clients
        connection.close()

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, statuses, time.process_time() - cpu
