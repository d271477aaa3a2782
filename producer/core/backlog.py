"""Backlog gauges read from Redis at scrape time: what Flower cannot show.

Per queue: depth (LLEN) and the age of the oldest waiting message (LINDEX -1: kombu LPUSHes
and workers BRPOP, so the tail is the oldest). Age comes from the `enqueued_at` header the
publisher sets; a foreign client's message without it falls back to the job's `created_at`.
Reserved (unacked) and countdown tasks are not in the list, so they are not counted here.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from producer.core.keys import Keys
from producer.core.publisher import ENQUEUED_AT
from producer.core.routing import Circuit


def enqueued_at(raw: bytes | str | None) -> float | None:
    """When a kombu-encoded Celery message was published, or None if it cannot tell."""
    if not raw:
        return None
    try:
        envelope = json.loads(raw)
        stamp = envelope.get("headers", {}).get(ENQUEUED_AT)
        if stamp is not None:
            return float(stamp)
        body = json.loads(base64.b64decode(envelope["body"]))
        args = body[0] if isinstance(body, list) else body.get("args", [])
        return float(args[0]["created_at"])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


class BacklogCollector(Collector):
    """Prometheus collector: queue depth and oldest age, and kirim's waiting sets."""

    def __init__(self, redis: Redis, keys: Keys, queues: Sequence[str]) -> None:
        self.redis = redis
        self.keys = keys
        self.queues = list(queues)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("kirim_queue_depth", "Tasks waiting in a broker queue",
                                  labels=["queue"])
        age = GaugeMetricFamily("kirim_queue_oldest_age_seconds",
                                "Age of the oldest task waiting in a queue (0 when empty)",
                                labels=["queue"])
        waiting = GaugeMetricFamily("kirim_messages_waiting",
                                    "Messages in kirim's waiting sets", labels=["set"])
        up = GaugeMetricFamily("kirim_backlog_redis_up", "1 if Redis answered this scrape")
        try:
            self._fill(depth, age, waiting)
            up.add_metric([], 1)
        except RedisError:
            up.add_metric([], 0)
        yield from (depth, age, waiting, up)

    def _fill(self, depth: GaugeMetricFamily, age: GaugeMetricFamily,
              waiting: GaugeMetricFamily) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for queue in self.queues:
            pipe.llen(queue)
            pipe.lindex(queue, -1)
        pipe.zcard(self.keys.deferred)
        pipe.zcard(self.keys.unknown)
        pipe.zcard(self.keys.outbox)
        pipe.xlen(self.keys.dead_letters)
        for circuit in Circuit:
            pipe.scard(self.keys.held(circuit.value))
        replies: list[Any] = pipe.execute()
        now = time.time()
        for i, queue in enumerate(self.queues):
            length, oldest = replies[2 * i], replies[2 * i + 1]
            depth.add_metric([queue], int(length))
            stamp = enqueued_at(oldest) if length else None
            age.add_metric([queue], max(0.0, now - stamp) if stamp is not None else 0.0)
        sets = replies[2 * len(self.queues):]
        held = sum(int(n) for n in sets[4:])  # every circuit's held set
        for name, value in zip(("deferred", "unknown", "outbox", "dead_letters", "held"),
                               [*sets[:4], held], strict=True):
            waiting.add_metric([name], int(value))
