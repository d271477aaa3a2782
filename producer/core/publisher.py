"""Publish `kirim.send` by task name (the producer never imports `worker`), and the masked
`argsrepr` of every task whose arguments carry a phone number or a text.

Celery puts `argsrepr` (not the arguments) in its task events and `celery inspect` replies, so
it is all Flower ever shows of a task's arguments: a text (OTP codes are secrets) never, a
phone number only masked (`628123****890`).
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

from producer.core.contract import Job
from producer.core.recipient import mask_recipient
from producer.core.routing import Tasks, queue_for

# The header with the publish time, read by the backlog gauges (producer.core.backlog). Here,
# not there, so the client's import path stays free of prometheus_client (a worker/api extra).
ENQUEUED_AT = "enqueued_at"


def masked_repr(job: Job) -> str:
    """What Flower shows of a job: no text (OTP codes are secrets), recipient masked."""
    who = mask_recipient(job.to) if job.to else f"group:{job.group}"
    return (f"[{{'id': '{job.id}', 'channel': '{job.channel}', 'to': '{who}', "
            f"'text': '<{job.parts} part(s), {job.encoding}>'}}]")


def inbound_argsrepr(event: dict[str, Any]) -> str:
    """What Flower shows of an inbound SMS task: its ids, the sender masked, not the text."""
    shown = {"id": str(event.get("id") or ""),
             "gateway_number": str(event.get("gateway_number") or ""),
             "originator": mask_recipient(str(event.get("originator") or "")),
             "msg": f"<{len(str(event.get('msg') or ''))} chars>",
             "receive_date": str(event.get("receive_date") or "")}
    return repr([shown])


class Publisher:
    """Puts send tasks on their channel's queue."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def publish(self, job: Job, dispatch: str, countdown_s: float | None = None,
                producer: Any = None) -> None:
        """One `kirim.send` task for `job`; `dispatch` tells stale copies from the current one."""
        self.app.send_task(
            Tasks.SEND,
            args=[job.to_task()],
            kwargs={"dispatch": dispatch},
            queue=queue_for(job.channel),
            countdown=countdown_s,
            argsrepr=masked_repr(job),
            kwargsrepr=f"{{'dispatch': '{dispatch}'}}",
            ignore_result=True,
            headers={ENQUEUED_AT: time.time()},  # exact queue age for kirim_queue_oldest_age
            producer=producer,
        )
