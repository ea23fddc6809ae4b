"""Prometheus metrics: requests by route, latency, time to first token, overloads, the query cache, the model
server's restarts."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paper_agent.llm_supervisor import Supervisor
from paper_agent.query_embed import QueryCache
from paper_agent.types import Answer
from paper_agent.web.gate import GenerationGate


class Metrics:
    """The app's Prometheus series, in a registry of its own (so several apps in one test process never clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "paper_agent_http_requests", "HTTP requests served.", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "paper_agent_http_request_seconds",
            "Seconds from request to the last byte of the response.",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.ttft = Histogram(
            "paper_agent_time_to_first_token_seconds",
            "Seconds from a question to the first streamed token of its answer.",
            ["endpoint"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
            registry=self.registry,
        )
        self.overloaded = Counter(
            "paper_agent_overloaded", "Questions refused because the generation queue was full.", registry=self.registry
        )
        self.in_flight = Gauge(
            "paper_agent_generations_in_flight", "Generations running or waiting.", registry=self.registry
        )

    def observe_ttft(self, endpoint: str, answer: Answer) -> None:
        """The time to first token a whole (non-streamed) answer reports, if the model was asked at all."""
        if "ttft_ms" in answer.timings:
            self.ttft.labels(endpoint).observe(answer.timings["ttft_ms"] / 1000)

    def gate(self, limit: int, retry_after_s: int) -> GenerationGate:
        """A generation gate whose load and refusals these metrics report."""
        gate = GenerationGate(limit, retry_after_s, on_reject=self.overloaded.inc)
        self.in_flight.set_function(lambda: gate.in_flight)
        return gate

    def watch(self, cache: QueryCache) -> None:
        """Report the query cache's hits and misses (read when scraped: the cache counts them itself)."""
        self.registry.register(_CacheCollector(cache))

    def watch_model_server(self, supervisor: Supervisor) -> None:
        """Report whether the supervised model server is up and how often it was restarted (read when scraped)."""
        self.registry.register(_SupervisorCollector(supervisor))

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _CacheCollector(Collector):
    def __init__(self, cache: QueryCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        for outcome in ("hits", "misses"):
            text = f"Search queries whose vector {'came from' if outcome == 'hits' else 'was not in'} the cache."
            yield CounterMetricFamily(f"paper_agent_query_cache_{outcome}", text, value=getattr(self.cache, outcome))


class _SupervisorCollector(Collector):
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        state = self.supervisor.state()
        up = "Whether the local model server is up (0 while `serve` restarts it)."
        yield GaugeMetricFamily("paper_agent_model_server_up", up, value=int(state.status == "up"))
        text = "Local model servers `serve` started again after one died: ready = it answered, failed = it did not."
        restarts = CounterMetricFamily("paper_agent_model_server_restarts", text, labels=["outcome"])
        restarts.add_metric(["ready"], state.restarts)
        restarts.add_metric(["failed"], state.failed_restarts)
        yield restarts


class MetricsMiddleware:
    """Counts and times every request by its route template (`/papers/{paper_id}`, not each id)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = _route_label(scope)
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)


def _route_label(scope: Scope) -> str:
    """The matched route's path template; a bounded label even for unmatched (404) paths."""
    path = getattr(scope.get("route"), "path", None)
    if path is None:
        return "unmatched"
    return path or "/"
