"""Prometheus metrics of a worker process, served on KIRIM_METRICS_PORT (0: off).

Counters are per process; Prometheus sums them over pods. The backlog gauges (queue depth,
oldest age, waiting sets) are read from Redis at scrape time by producer.core.backlog, so any
worker (or the ingest API) gives the same numbers; so are the credits gauges (CreditsCollector),
which exist only once a CREDITS reading does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

import structlog
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from producer.core.backlog import BacklogCollector
from producer.core.keys import Keys
from producer.core.redis_text import text
from producer.core.routing import Queues
from producer.core.settings import Settings
from worker.credits import expiry_timestamp

log = structlog.get_logger("kirim.metrics")

_CHANNELS = frozenset({"otp", "sms", "wa"})

MESSAGES = Counter("kirim_messages", "kirim.send tasks by channel and outcome label",
                   ["channel", "outcome"])
PROVIDER_CODES = Counter("kirim_provider_codes", "NusaSMS status codes by channel",
                         ["channel", "code", "name"])
PROVIDER_ERRORS = Counter("kirim_provider_errors", "Provider calls ending in a transport error",
                          ["channel", "error"])
PROVIDER_LATENCY = Histogram(
    "kirim_provider_latency_seconds", "Duration of a NusaSMS send call that got a reply",
    ["channel"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
RETRIES = Counter("kirim_retries", "Sends put back for a retry with backoff", ["channel"])
DEAD_LETTERS = Counter("kirim_dead_letters", "Messages dead-lettered", ["channel"])
DEFERRALS = Counter("kirim_deferrals", "Messages deferred (recipient limit, -78)", ["channel"])
GUARD_REFUSALS = Counter("kirim_guard_refusals", "Sends refused by the recipient guard",
                         ["channel", "reason"])
RATE_LIMIT_WAITS = Counter("kirim_rate_limit_waits",
                           "Sends requeued because the account's rate limit was spent",
                           ["channel"])

UNWRITTEN_REQUEUED = Counter(
    "kirim_unwritten_requeued", "Messages a killed worker on this host had marked calling and"
    " never written, requeued from its call journal by this process")

DELIVERY_REPORTS = Counter(
    "kirim_delivery_reports", "Delivery reports that moved a message (delivered, read,"
    " undelivered …), by channel, state and the NusaSMS API that sent it",
    ["channel", "state", "api"])

# Action labels of SendPipeline.process that also have their own counter.
_BY_OUTCOME = {"retry": RETRIES, "dead": DEAD_LETTERS, "poison": DEAD_LETTERS,
               "deferred": DEFERRALS, "rate_limited": RATE_LIMIT_WAITS}


def channel_of(raw: Any) -> str:
    """A bounded channel label for a job or raw payload ('invalid' for anything else)."""
    value = raw.get("channel") if isinstance(raw, dict) else getattr(raw, "channel", None)
    value = str(getattr(value, "value", value))
    return value if value in _CHANNELS else "invalid"


def count_outcome(raw: Any, outcome: str) -> None:
    """One kirim.send finished with the pipeline's `outcome` label."""
    channel = channel_of(raw)
    label = "skipped" if outcome.startswith("skipped_") else outcome
    MESSAGES.labels(channel, label).inc()
    counter = _BY_OUTCOME.get(label)
    if counter is not None:
        counter.labels(channel).inc()


def provider_reply(job: Any, code: int, name: str, elapsed_s: float) -> None:
    """A provider reply: its status code and how long the call took."""
    channel = channel_of(job)
    PROVIDER_CODES.labels(channel, str(code), name).inc()
    PROVIDER_LATENCY.labels(channel).observe(elapsed_s)


def provider_error(job: Any, exc: BaseException) -> None:
    """A provider call without a usable reply (timeout, dropped connection, HTTP error)."""
    PROVIDER_ERRORS.labels(channel_of(job), type(exc).__name__).inc()


def report_applied(channel: str | None, state: str, api: str) -> None:
    """A delivery report moved a message to `state` (`read`: a WhatsApp was opened)."""
    label = channel if channel in _CHANNELS else "invalid"
    DELIVERY_REPORTS.labels(label, state, api).inc()


def guard_refused(job: Any, reason: str | None) -> None:
    """The recipient guard said no."""
    GUARD_REFUSALS.labels(channel_of(job), reason or "unknown").inc()


class CreditsCollector(Collector):
    """The last CREDITS reading of each wallet, read from Redis (worker/credits.py's hashes) at
    scrape time. A wallet never read has no series at all (a balance alert must not see 0
    before the first poll); a reading without an expiry date has no expiry series. Every
    worker, polling or not, shows the same reading; Redis down: no series this scrape."""

    def __init__(self, redis: Redis, keys: Keys, products: Sequence[str] = ("sms", "wa")) -> None:
        self.redis = redis
        self.keys = keys
        self.products = list(products)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without this, register() would collect once (a Redis round trip) to learn the names.
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        balance, expiry, read_at = families = self._families()
        try:
            pipe = self.redis.pipeline(transaction=False)
            for product in self.products:
                pipe.hmget(self.keys.credits_for(product), "value", "expires", "read_at")
            readings = pipe.execute()
        except RedisError:
            readings = []
        for product, (value, expires, when) in zip(self.products, readings, strict=False):
            try:
                balance_value, read_value = float(text(value)), float(text(when))
            except ValueError:  # no reading yet (or not one this version wrote)
                continue
            balance.add_metric([product], balance_value)
            read_at.add_metric([product], read_value)
            try:  # "" when CREDITS gave no expiry date, or a date that does not read: no series
                day = date.fromisoformat(text(expires)) if text(expires) else None
            except ValueError:
                day = None
            if day is not None:
                expiry.add_metric([product], expiry_timestamp(day))
        yield from families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("kirim_credits_balance",
                              "NusaSMS balance at the last successful CREDITS (or API v1.0"
                              " /balance) poll",
                              labels=["product"]),
            GaugeMetricFamily("kirim_credits_expiry_timestamp_seconds",
                              "Start of the day after the balance's expiry date (absent when"
                              " CREDITS gave none)", labels=["product"]),
            GaugeMetricFamily("kirim_credits_read_timestamp_seconds",
                              "When CREDITS last answered", labels=["product"]))


def serve(settings: Settings, redis: Any) -> int:
    """Register the backlog and credits gauges and serve /metrics; returns the port (0: not
    serving)."""
    if not settings.metrics_port:
        return 0
    keys = Keys(settings.key_prefix)
    REGISTRY.register(BacklogCollector(redis, keys, Queues.ALL))
    REGISTRY.register(CreditsCollector(redis, keys))
    try:
        start_http_server(settings.metrics_port)
    except OSError as exc:
        log.error("metrics_port_in_use", port=settings.metrics_port, error=str(exc),
                  hint="give each worker process on a host its own KIRIM_METRICS_PORT")
        return 0
    log.info("metrics_serving", port=settings.metrics_port)
    return settings.metrics_port
