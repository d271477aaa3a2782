"""The naive baseline a typical team writes: one Celery task per message calling requests.post.

Every Celery setting is left at its default (prefork pool, concurrency = CPU count, prefetch
4, acks early); only the broker URL and the provider URL come from the environment.

    celery -A bench.naive_app worker
"""

from __future__ import annotations

import os

import requests
from celery import Celery

app = Celery("naive", broker=os.environ.get("NAIVE_BROKER_URL", "redis://127.0.0.1:6379/0"))
PROVIDER_URL = os.environ.get("NAIVE_PROVIDER_URL", "http://127.0.0.1:8099")


@app.task(name="naive.send_sms")
def send_sms(gsm: str, text: str) -> str:
    """POST one SMS to the provider and return its reply."""
    reply = requests.post(f"{PROVIDER_URL}/api/v3/sendsms/plain", timeout=30, data={
        "user": "demo", "password": "demo", "output": "json", "GSM": gsm, "SMSText": text})
    reply.raise_for_status()
    return reply.text
