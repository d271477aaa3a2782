"""Prometheus: API requests by route, HTTP status and outcome code; the backlog gauges."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest
from redis import Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer.core.backlog import BacklogCollector
from producer.core.keys import Keys
from producer.core.routing import Queues

# Module level on purpose: the default registry refuses a second metric of the same name.
REQUESTS = Counter("kirim_api_requests", "Ingest API requests by route, status and outcome",
                   ["route", "status", "code"])

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            description="The default registry in the Prometheus text format (no API key).")
def metrics() -> Response:
    """Every metric of this process."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@contextmanager
def backlog_gauges(redis: Redis, keys: Keys) -> Iterator[None]:
    """Queue depth, oldest age and waiting sets on /metrics while the app runs."""
    collector = BacklogCollector(redis, keys, Queues.ALL)
    REGISTRY.register(collector)
    try:
        yield
    finally:
        REGISTRY.unregister(collector)


class CountRequests:
    """ASGI middleware: counts each request once it has been answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def watching(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watching)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            code = scope.get("state", {}).get("outcome") or ("ok" if status < 400 else "error")
            REQUESTS.labels(route, str(status), code).inc()
