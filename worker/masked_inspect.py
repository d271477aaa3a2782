"""`celery inspect reserved|scheduled|query_task` (and Flower's worker page) show `argsrepr`.

Celery answers `inspect active` with the masked `argsrepr` when asked (`safe=True`, as Flower
does), but `reserved`, `scheduled` and `query_task` always return a task's real arguments: a
backlog beyond the worker's threads, or an OTP waiting out a retry countdown, would show its
text and full number in Flower. These replace Celery's three commands (same names and
aliases: registering again overwrites) with the same answers, arguments masked.
"""

from __future__ import annotations

from typing import Any

from celery.utils.functional import maybe_list
from celery.worker import control
from celery.worker import state as worker_state
from celery.worker.request import Request


@control.inspect_command(alias="dump_reserved")
def reserved(state: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """List of currently reserved tasks, not including scheduled/active (arguments masked)."""
    waiting = (state.tset(worker_state.reserved_requests)
               - state.tset(worker_state.active_requests))
    return [request.info(safe=True) for request in waiting]


@control.inspect_command(alias="dump_schedule")
def scheduled(state: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """List of currently scheduled ETA/countdown tasks (arguments masked)."""
    found = []
    for waiting in state.consumer.timer.schedule.queue:
        try:
            request = waiting.entry.args[0]
        except (IndexError, TypeError):
            continue
        if isinstance(request, Request):
            found.append({"eta": request.eta.isoformat() if request.eta else None,
                          "priority": waiting.priority, "request": request.info(safe=True)})
    return found


@control.inspect_command(variadic="ids", signature="[id1 [id2 [... [idN]]]]")
def query_task(state: Any, ids: Any, **kwargs: Any) -> dict[str, Any]:
    """Query for task information by id (arguments masked)."""
    found = {}
    for task_id in maybe_list(ids) or []:
        request = worker_state.requests.get(task_id)
        if request is not None:
            found[request.id] = (control._state_of_task(request), request.info(safe=True))
    return found
