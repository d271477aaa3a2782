"""Celery signal hooks of a kirim process: logging, the metrics endpoint, the heartbeat file,
and the recipient guard's data upgrade.

Connected once by `connect(app)` from worker.app; each hook reads the app's Settings.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from celery import Celery, signals
from redis import Redis

from producer.core.errors import ConfigError
from producer.core.factory import Core, build_core
from producer.core.guard import fold_text_windows
from producer.core.keys import Keys
from worker import batch, health, metrics
from worker.journal import journal_dir
from worker.leases import settle_dead_journals
from worker.services import journal_tag

log = structlog.get_logger("kirim.worker")
JOURNAL_SCAN_S = 2.0  # a listing and a lock attempt per journal of the deployment
JOURNAL_RETRY_S = 0.5  # after a scan Redis (or anything else) stopped


def connect(app: Celery) -> None:
    """Hook logging, metrics and the heartbeat into `app`'s worker and beat processes."""

    def setup_logging(loglevel: Any = None, **_: Any) -> None:
        # Connecting this signal stops Celery from configuring logging itself.
        from producer.core.logs import configure_logging

        configure_logging(app.kirim_settings, level=loglevel or "INFO")

    def worker_init(**_: Any) -> None:
        from producer.core.redis_connect import connect_redis
        from worker.key_check import check_wa_key

        settings = app.kirim_settings
        try:  # Celery swallows other errors in a signal handler: SystemExit stops the worker
            settings.require_provider()
            settings.hash_key_bytes  # noqa: B018 - every send and alert SMS needs it
            check_wa_key(settings)  # a wrong API v1.0 key stops the worker before any send
        except ConfigError as exc:
            raise SystemExit(f"kirim worker: {exc}") from None
        # One Redis, or the master the Sentinels name (KIRIM_REDIS_SENTINELS).
        redis = connect_redis(settings, socket_timeout=5, socket_connect_timeout=5)
        metrics.serve(settings, redis)
        if settings.guard_enabled:  # in the background: a large keyspace takes a while
            threading.Thread(target=_upgrade_guard, args=(redis, Keys(settings.key_prefix)),
                             name="kirim-guard-upgrade", daemon=True).start()
        # What killed workers on this host marked and never wrote goes back to the queue.
        threading.Thread(target=_settle_journals, args=(build_core(settings, app, redis),),
                         name="kirim-journal-scan", daemon=True).start()

    def heartbeat(**_: Any) -> None:
        if app.kirim_settings.heartbeat_file:
            health.touch(app.kirim_settings.heartbeat_file)

    signals.setup_logging.connect(setup_logging, weak=False)
    signals.worker_init.connect(worker_init, weak=False)
    signals.worker_ready.connect(heartbeat, weak=False)
    signals.heartbeat_sent.connect(heartbeat, weak=False)
    # A warm shutdown: batches in hand finish their current message and hand the rest back.
    signals.worker_shutting_down.connect(batch.stop_taking_new, weak=False)


def _settle_journals(core: Core) -> None:
    """Settle the call journals of this deployment's dead workers on this host, at start and
    every JOURNAL_SCAN_S after (a neighbour's death, or a journal not settled yet)."""
    directory, tag = journal_dir(core.settings.worker_journal_dir), journal_tag(core.settings)
    said_at = 0.0
    while True:
        try:
            requeued = settle_dead_journals(core, directory, tag)
        except Exception as exc:  # Redis away, or a bug: kept for the next scan, soon
            if time.monotonic() - said_at > 60:  # once a minute, not every scan
                said_at = time.monotonic()
                log.warning("journal_scan_failed", error=f"{type(exc).__name__}: {exc}",
                            hint="dead workers' journals are settled once Redis answers")
            # Before their leases run out, or the lease sweep calls them `unknown`.
            time.sleep(JOURNAL_RETRY_S)
            continue
        if requeued:
            metrics.UNWRITTEN_REQUEUED.inc(requeued)
            log.warning("unwritten_sends_requeued", messages=requeued,
                        hint="a killed worker had marked them and not written them")
        time.sleep(JOURNAL_SCAN_S)


def _upgrade_guard(redis: Redis, keys: Keys) -> None:
    """Fold the guard's per-text windows of the layout before into the recipients' sets."""
    try:
        moved = fold_text_windows(redis, keys, unless_done=True)
    except Exception as exc:  # the sends go on; the operator can run it by hand
        log.warning("guard_upgrade_failed", error=f"{type(exc).__name__}: {exc}",
                    hint="run `kirim upgrade-guard` once Redis answers")
        return
    if moved:
        log.info("guard_upgraded", entries=moved,
                 hint="per-text windows of the layout before folded into recipient sets")
