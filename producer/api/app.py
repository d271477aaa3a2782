"""The ingest API application: `create_app(settings)`, or `uvicorn producer.api:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from producer.api import callbacks, dropin, errors, messages, metrics
from producer.api.limits import BodyLimit
from producer.api.runtime import Runtime
from producer.core.logs import configure_logging
from producer.core.settings import Settings, load_settings

DESCRIPTION = """Hand SMS, WhatsApp and OTP messages to kirim's send queue from any language.

Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`. Errors are always
`{"error": {"code", "field", "message"}}`. Existing NusaSMS client code can switch to the queue
by changing its base URL: `/api/v3/sendsms/plain`, `/api/v3/sendwa/plain` and `/api/command`
answer in NusaSMS's own shapes (user = API key name, password = the API key).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app; settings are read from the environment at startup when not given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = Runtime.build(settings or load_settings())
        rt.settings.hash_key_bytes  # noqa: B018 - refuse to start rather than 500 every send
        configure_logging(rt.settings)
        app.state.runtime = rt
        try:
            with metrics.backlog_gauges(rt.kirim.redis, rt.kirim.keys):
                yield
        finally:
            rt.close()

    app = FastAPI(title="kirim ingest API", version="1", description=DESCRIPTION,
                  lifespan=lifespan)
    errors.install(app)
    app.include_router(messages.router)
    app.include_router(metrics.router)
    app.include_router(dropin.router)
    app.include_router(callbacks.router)
    # The body limit must be known before startup reads settings: take it lazily.
    app.add_middleware(_LazyBodyLimit)
    app.add_middleware(metrics.CountRequests)
    return app


class _LazyBodyLimit:
    """BodyLimit whose size comes from the Runtime's settings (known after lifespan start)."""

    def __init__(self, app: ASGIApp) -> None:
        self.inner = app
        self.limited: BodyLimit | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        if self.limited is None:
            rt: Runtime = scope["app"].state.runtime
            self.limited = BodyLimit(self.inner, rt.settings.api_max_body_bytes)
        await self.limited(scope, receive, send)
