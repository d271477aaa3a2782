"""The ingest API application: `create_app(settings)`, or `uvicorn producer.api:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles
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

DOCS_ASSETS = "/docs/assets"  # Swagger UI's JavaScript and CSS, from the swagger-ui-bundle package
DOCS_OPENAPI = "/docs/openapi.json"  # the OpenAPI doc as the bundled Swagger UI reads it


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
            await rt.quota.aclose()

    # /docs is served below, from local assets: it works without internet. ReDoc has no
    # local bundle here, so there is no /redoc (its page would load it from a CDN).
    app = FastAPI(title="kirim ingest API", version="1", description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    errors.install(app)
    app.router.routes.append(metrics.metrics_route())
    _install_docs(app)
    app.include_router(messages.router)
    app.include_router(dropin.router)
    app.include_router(callbacks.router)
    # The body limit must be known before startup reads settings: take it lazily.
    app.add_middleware(_LazyBodyLimit)
    app.add_middleware(metrics.CountRequests)
    return app


def _install_docs(app: FastAPI) -> None:
    """GET /docs: Swagger UI with its JavaScript and CSS served here, from the swagger-ui-bundle
    package (no CDN); the Authorize button takes a key as Bearer or X-API-Key."""
    app.router.routes.append(_NamedMount(
        DOCS_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets"))

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=DOCS_OPENAPI, title=f"{app.title} - docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": True})

    @app.get(DOCS_OPENAPI, include_in_schema=False)
    async def docs_openapi() -> JSONResponse:
        return JSONResponse(swagger_ui_openapi(app.openapi()))


def swagger_ui_openapi(doc: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI doc for the bundled Swagger UI (4.x), which refuses to render a document
    whose `openapi` is 3.1.x ("does not specify a valid version field"): the same document
    labelled 3.0.3, which it renders. /openapi.json itself is unchanged (3.1, for clients)."""
    version = str(doc.get("openapi", ""))
    return {**doc, "openapi": "3.0.3"} if version.startswith("3.1") else doc


class _NamedMount(Mount):
    """A Mount named in `scope["route"]`, so /metrics labels its requests with the mount's
    path rather than "unmatched"."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match != Match.NONE:
            child["route"] = self
        return match, child


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
