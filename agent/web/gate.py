"""The generation gate: one bound on questions running or waiting, whichever door they come through."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from paper_agent.errors import Overloaded

T = TypeVar("T")


class GenerationGate:
    """At most `limit` generations running or waiting; one more raises `Overloaded` at once instead of queueing.

    subtle: this does not make anyone wait: the model server queues requests beyond its slots itself. The gate
    only bounds that queue, so an overloaded app answers 503 + Retry-After in milliseconds instead of hanging.
    """

    def __init__(self, limit: int, retry_after_s: int, on_reject: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.on_reject = on_reject
        self.in_flight = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Take a place, or raise `Overloaded` if all `limit` places are taken."""
        with self._lock:
            full = self.in_flight >= self.limit
            if not full:
                self.in_flight += 1
        if full:
            if self.on_reject is not None:
                self.on_reject()
            raise Overloaded(self.retry_after_s)

    def release(self) -> None:
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a place for the length of the block."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` with a place held while it runs."""
        with self.admit():
            return function(*args)
