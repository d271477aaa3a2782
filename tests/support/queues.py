"""What waits on a queue list: the messages its task messages carry (a `kirim.send` task
carries one, a `kirim.send_batch` task several)."""

from __future__ import annotations

import base64
import json
from typing import Any

from redis import Redis

from producer.core.routing import Tasks


def queued_tasks(redis: Redis, queue: str) -> list[tuple[str, list[str]]]:
    """(task name, message ids) of every task message on `queue`, oldest first."""
    out = []
    for raw in reversed(redis.lrange(queue, 0, -1)):  # type: ignore[union-attr]
        message = json.loads(raw)
        task = message["headers"]["task"]
        args: list[Any] = json.loads(base64.b64decode(message["body"]))[0]
        if task == Tasks.SEND_BATCH:
            out.append((task, [item[0]["id"] for item in args[0]]))
        else:
            out.append((task, [args[0]["id"]]))
    return out


def queued_ids(redis: Redis, queue: str) -> list[str]:
    """The ids of the messages waiting on `queue` (a message twice if two tasks carry it)."""
    return [mid for _, ids in queued_tasks(redis, queue) for mid in ids]
