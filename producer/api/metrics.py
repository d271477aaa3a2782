"""Prometheus: API requests by route, HTTP status and outcome code, their latency; the backlog
gauges; and /metrics itself (prometheus_client's ASGI app, so a scraper asking for OpenMetrics
gets it, and gzip when it accepts it)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, Counter, Histogram, make_asgi_app
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from redis import Redis
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer.core.backlog import BacklogCollector
from producer.core.keys import Keys
from producer.core.routing import Queues

# Module level on purpose: the default registry refuses a second metric of the same name.
REQUESTS = Counter("kirim_api_requests", "Ingest API requests by route, status and outcome",
                   ["route", "status", "code"])
LATENCY = Histogram("kirim_api_request_duration_seconds",
                    "Ingest API request duration, until the response was sent, by route"
                    " template, method and status class (2xx, 4xx, 5xx)",
                    ["route", "method", "status"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class _Snapshot(Collector):
    """Metric families collected beforehand, served as a registry."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)

    def restricted_registry(self, names: Iterable[str]) -> _Snapshot:
        """Only the families with a sample of one of `names` (`/metrics?name[]=…`)."""
        wanted = set(names)
        return _Snapshot([f for f in self.families
                          if any(s.name in wanted for s in f.samples)])


class MetricsApp:
    """ASGI: prometheus_client's `make_asgi_app` (Prometheus text or OpenMetrics by the
    Accept header, gzip by Accept-Encoding) over the default registry, collected in a worker
    thread: the backlog gauges read Redis, which must not stall the event loop."""

    def __init__(self, registry: Collector = REGISTRY) -> None:
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        families = await run_in_threadpool(lambda: list(self.registry.collect()))
        await make_asgi_app(_Snapshot(families))(scope, receive, send)


class AsgiRoute(Route):
    """A route to a plain ASGI app at an exact path (a Mount would redirect /metrics to
    /metrics/), named in `scope["route"]` as FastAPI's own routes are, for the metrics."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match != Match.NONE:
            child["route"] = self
        return match, child


def metrics_route() -> AsgiRoute:
    """GET /metrics: every metric of this process (no API key; not in the OpenAPI doc)."""
    return AsgiRoute("/metrics", MetricsApp(), methods=["GET"], include_in_schema=False)


@contextmanager
def backlog_gauges(redis: Redis, keys: Keys) -> Iterator[None]:
    """Queue depth, oldest age and waiting sets on /metrics while the app runs."""
    collector = BacklogCollector(redis, keys, Queues.ALL)
    REGISTRY.register(collector)
    try:
        yield
    finally:
        REGISTRY.unregister(collector)


def status_class(status: int) -> str:
    """The latency histogram's bounded status label: "2xx", "4xx", "5xx"…"""
    return f"{status // 100}xx"


class CountRequests:
    """ASGI middleware: counts and times each request once it has been answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def watching(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watching)
        finally:
            route = _route_template(scope)
            code = scope.get("state", {}).get("outcome") or ("ok" if status < 400 else "error")
            REQUESTS.labels(route, str(status), code).inc()
            LATENCY.labels(route, _method(scope), status_class(status)).observe(
                time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    """The matched route's path template (`/v1/messages/{message_id}`), never the raw path."""
    return str(getattr(scope.get("route"), "path", None) or "unmatched")


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method(scope: Scope) -> str:
    """The HTTP method, or "other" (a label must stay bounded whatever a client sends)."""
    method = str(scope.get("method", ""))
    return method if method in _METHODS else "other"
