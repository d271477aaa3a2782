"""`kirim api`: run the ingest HTTP API (and its NusaSMS-compatible drop-in) with uvicorn."""

from __future__ import annotations

import typer


def api(
    host: str = typer.Option("127.0.0.1", help="interface to listen on (0.0.0.0 for all)"),
    port: int = typer.Option(8080, min=1, max=65535, help="TCP port"),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes"),
    proxy_headers: bool = typer.Option(False, help="trust X-Forwarded-* from a reverse proxy"),
) -> None:
    """Serve the ingest API (settings from KIRIM_* variables; API keys in KIRIM_API_KEYS)."""
    import uvicorn

    uvicorn.run("producer.api:app", host=host, port=port, workers=workers,
                proxy_headers=proxy_headers, access_log=False)
