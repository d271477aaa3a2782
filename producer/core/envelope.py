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
import random
import socket
import time
import uuid
from collections.abc import Sequence
from functools import cache

from producer.core.contract import Channel, Job
from producer.core.publisher import ENQUEUED_AT, masked_repr
from producer.core.routing import Tasks, queue_for

# Celery's embed: no callbacks, errbacks, chain or chord.
_EMBED = '{"callbacks":null,"errbacks":null,"chain":null,"chord":null}'


@cache
def _origin(pid: int) -> str:
    """The `origin` header Celery writes for a non-worker process, JSON: "gen<pid>@<host>"."""
    return json.dumps(f"gen{pid}@{socket.gethostname()}")


@cache
def _queue(channel: str) -> str:
    """The routing key (the channel's queue), JSON."""
    return json.dumps(queue_for(Channel(channel)))


def send_body(job_json: str, dispatch: str) -> str:
    """The protocol-2 body of `kirim.send`: [[job], {"dispatch": token}, embed]."""
    return f'[[{job_json}],{{"dispatch":{json.dumps(dispatch)}}},{_EMBED}]'


def build_send_task(job: Job, job_json: str, dispatch: str, now: float | None = None) -> str:
    """The list entry for a `kirim.send` task carrying `job` (its JSON given, already made)."""
    argsrepr = masked_repr(job)
    kwargsrepr = f"{{'dispatch': '{dispatch}'}}"
    body = base64.b64encode(send_body(job_json, dispatch).encode()).decode("ascii")
    return _envelope(Tasks.SEND, body, argsrepr, kwargsrepr, job.channel, now)


def send_batch_body(items: Sequence[tuple[str, str]]) -> str:
    """The protocol-2 body of `kirim.send_batch`: [[[[job, dispatch], ...]], {}, embed]."""
    listed = ",".join(f"[{job_json},{json.dumps(dispatch)}]" for job_json, dispatch in items)
    return f"[[[{listed}]],{{}},{_EMBED}]"


def build_send_batch_task(jobs: Sequence[tuple[Job, str, str]], now: float | None = None) -> str:
    """The list entry for one `kirim.send_batch` task carrying (job, job JSON, dispatch) of
    several messages of one channel. Flower shows their ids only."""
    channel = jobs[0][0].channel
    if any(job.channel != channel for job, _, _ in jobs):
        raise ValueError("a send batch holds messages of one channel (one queue)")
    argsrepr = f"[<{len(jobs)} messages: {', '.join(job.id for job, _, _ in jobs)}>]"
    body = base64.b64encode(send_batch_body(
        [(job_json, dispatch) for _, job_json, dispatch in jobs]).encode()).decode("ascii")
    return _envelope(Tasks.SEND_BATCH, body, argsrepr, "{}", channel, now)


def _envelope(task: str, body: str, argsrepr: str, kwargsrepr: str, channel: Channel,
              now: float | None) -> str:
    task_id = _uuid()
    return _TEMPLATE.format(
        task=task, body=body, id=task_id, argsrepr=json.dumps(argsrepr),
        kwargsrepr=json.dumps(kwargsrepr), origin=_origin(os.getpid()),
        enqueued_at=repr(time.time() if now is None else now), queue=_queue(channel),
        tag=_uuid())


def _uuid() -> str:
    """A version-4 UUID from Python's (fork-safe) PRNG: ids must be unique, not secret."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


# The message with its fixed parts written once. Every field is either a constant here or
# JSON-encoded (json.dumps) or a UUID, hex, base64 or number, which need no escaping.
_TEMPLATE = (
    '{{"body":"{body}","content-encoding":"utf-8","content-type":"application/json",'
    '"headers":{{"lang":"py","task":"{task}","id":"{id}","shadow":null,'
    '"eta":null,"expires":null,"group":null,"group_index":null,"retries":0,'
    '"timelimit":[null,null],"root_id":"{id}","parent_id":null,"argsrepr":{argsrepr},'
    '"kwargsrepr":{kwargsrepr},"origin":{origin},"ignore_result":true,'
    '"replaced_task_nesting":0,"stamped_headers":null,"stamps":{{}},'
    '"' + ENQUEUED_AT + '":{enqueued_at}}},'
    '"properties":{{"correlation_id":"{id}","reply_to":"","argsrepr":{argsrepr},'
    '"kwargsrepr":{kwargsrepr},"delivery_mode":2,'
    '"delivery_info":{{"exchange":"","routing_key":{queue}}},"priority":0,'
    '"body_encoding":"base64","delivery_tag":"{tag}"}}}}'
)
