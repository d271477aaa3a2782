"""The `kirim.send` task message, built by hand as kombu's Redis transport stores it.

The enqueue path writes this string onto the channel's queue list inside the same Lua script
that creates the record (`accept.lua`), so a message's record, its outbox entry and its task
appear together in one atomic step and one round trip, with no kombu publish per message.

It is exactly what `celery.send_task` + kombu's Redis transport would LPUSH: Celery task
protocol 2 (headers, then the body `[args, kwargs, embed]`) in kombu's virtual-transport
envelope, the body base64-encoded. `tests/integration/test_envelope.py` compares it with the
message kombu itself writes and has a real worker consume it, so a Celery or kombu upgrade
that changes the format fails a test rather than a deployment.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import uuid
from functools import cache

from producer.backlog import ENQUEUED_AT
from producer.contract import Job
from producer.publisher import masked_repr
from producer.routing import Tasks, queue_for

# Celery's embed: no callbacks, errbacks, chain or chord.
_EMBED = '{"callbacks":null,"errbacks":null,"chain":null,"chord":null}'


@cache
def _origin(pid: int) -> str:
    """The `origin` header Celery writes for a non-worker process: gen<pid>@<host>."""
    return f"gen{pid}@{socket.gethostname()}"


def send_body(job_json: str, dispatch: str) -> str:
    """The protocol-2 body of `kirim.send`: [[job], {"dispatch": token}, embed]."""
    return f'[[{job_json}],{{"dispatch":{json.dumps(dispatch)}}},{_EMBED}]'


def send_message(job: Job, job_json: str, dispatch: str, now: float | None = None) -> str:
    """The list entry for a `kirim.send` task carrying `job` (its JSON given, already made)."""
    task_id = str(uuid.uuid4())
    argsrepr = masked_repr(job)
    kwargsrepr = f"{{'dispatch': '{dispatch}'}}"
    headers: dict[str, object] = {
        "lang": "py", "task": Tasks.SEND, "id": task_id, "shadow": None, "eta": None,
        "expires": None, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": argsrepr, "kwargsrepr": kwargsrepr, "origin": _origin(os.getpid()),
        "ignore_result": True, "replaced_task_nesting": 0, "stamped_headers": None,
        "stamps": {}, ENQUEUED_AT: time.time() if now is None else now,
    }
    body = send_body(job_json, dispatch).encode()
    return json.dumps({
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id, "reply_to": "", "argsrepr": argsrepr,
            "kwargsrepr": kwargsrepr, "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue_for(job.channel)},
            "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    }, separators=(",", ":"))
