"""The ingest HTTP API (`uvicorn producer.api:app`, or `kirim api`)."""

from producer.api.app import create_app

app = create_app()

__all__ = ["app", "create_app"]
