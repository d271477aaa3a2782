"""RedBeat's scheduler, made to ride out a Redis outage instead of exiting.

redbeat 2.4 lets a Redis connection error escape from `RedBeatScheduler.tick()` (the lock
extension is its first Redis call, the schedule read its second), and `celery beat` exits
with "beat raised exception" a second or two into a Redis restart; `close()` then fails
again on the lock. Nothing brings beat back without a supervisor, and every periodic task
(DR polls, sweeps, status callbacks, the account watch) stops. A standby beat fares no
better: its blocking lock acquisition in `beat_init` fails (Celery logs and swallows that),
and its first tick dies on `self.lock` being None.

This scheduler, selected by `beat_scheduler` in worker/app.py:

- treats a Redis connection error in a tick as an outage: one warning when it starts, one
  line when Redis answers again, a new try every second in between;
- schedules only while it holds RedBeat's lock, which it takes in its tick without blocking
  (instead of redbeat's blocking take at start) and extends on every tick. When the extension
  finds the lock no longer ours (it expired during the outage, or another beat took it) it
  tries to take it again, and stands by while another beat holds it, trying every
  `beat_max_loop_interval`: never two beats scheduling;
- sends the entries named in `kirim_beat_at_start` (worker/app.py: the credits poll) once when
  it first holds the lock, then on their interval from there: RedBeat stores a new entry as
  last run now, so a 300 s poll would otherwise give its first reading 300 s after a start;
- exits with code 69 (EX_UNAVAILABLE) and one critical line once Redis has been unreachable
  for `KIRIM_BEAT_REDIS_WAIT_S`, so an outage that does not end is not hidden.

RedBeat's Redis connection gets its URL without credentials (`redbeat_redis_url`) and its user
and password from a credential provider (`redbeat_redis_options`), so no password sits in
Celery's configuration, which `celery inspect conf` and Flower's worker Config tab show
(Celery masks `broker_url`, not `redbeat_redis_url`; and redbeat 2.4 only falls back to
`broker_url` with a deprecation warning, a fallback 2.5 drops).

A Redis that vanishes without closing TCP (host gone, process frozen) is covered too: redis-py
8 gives RedBeat's client 5 s socket timeouts by default, so a call fails with a TimeoutError,
which counts as an outage like a refused connection (checked with a SIGSTOPped redis-server).
"""

from __future__ import annotations

import time
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit, urlunsplit

import structlog
from celery.beat import SchedulingError
from celery.signals import beat_init
from celery.utils.log import get_logger
from redbeat.schedulers import (
    LUA_EXTEND_TO_SCRIPT,
    RedBeatScheduler,
    acquire_distributed_beat_lock,
    get_redis,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockNotOwnedError, RedisError

from producer.core.redis_connect import (
    REDIS_DOWN,
    SecretCredentials,
    master_options,
    sentinel_options,
)
from producer.core.settings import Settings

log = structlog.get_logger("kirim.beat")
celery_log = get_logger("celery.beat")  # redbeat's and Celery's beat lines, kept as they were

EX_UNAVAILABLE = 69  # sysexits.h: a service this program needs is unavailable
RETRY_S = 1.0  # short, so scheduling resumes within about a second of Redis' return


def redbeat_settings(settings: Settings) -> dict[str, Any]:
    """`redbeat_redis_url` without the URL's credentials, and `redbeat_redis_options` with them
    in a SecretCredentials; no secret is left in the Celery settings this returns.

    With KIRIM_REDIS_SENTINELS, RedBeat's own Sentinel support: `redis-sentinel://<master>`
    and the Sentinels, master name, db and credentials in the options (TLS comes from
    `broker_use_ssl`, which producer/core/broker.py sets for a rediss:// master)."""
    if settings.redis_sentinels:
        return _redbeat_sentinel_settings(settings)
    redis_url = settings.redis_url
    parts = urlsplit(redis_url)
    if parts.password is None:
        # Set explicitly, so redbeat does not fall back to broker_transport_options.
        return {"redbeat_redis_url": redis_url, "redbeat_redis_options": {}}
    host = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    username = unquote(parts.username) if parts.username else None
    credentials = SecretCredentials(username, unquote(parts.password))
    return {"redbeat_redis_url": bare,
            "redbeat_redis_options": {"credential_provider": credentials}}


def _redbeat_sentinel_settings(settings: Settings) -> dict[str, Any]:
    master = master_options(settings)
    options: dict[str, Any] = {
        "sentinels": settings.sentinel_nodes, "service_name": settings.redis_master_name,
        "db": master.get("db", 0), "socket_timeout": 5,
        "sentinel_kwargs": sentinel_options(settings)}
    if master.get("password"):
        options["credential_provider"] = SecretCredentials(master.get("username"),
                                                          master["password"])
    return {"redbeat_redis_url": f"redis-sentinel://{settings.redis_master_name}",
            "redbeat_redis_options": options}


class Outage:
    """The current Redis outage, if any: logged once when it starts and once when it ends."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self.since: float | None = None

    def failed(self, exc: Exception) -> bool:
        """Record a failed Redis call; True once Redis has been down for longer than wait_s."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
            log.warning("beat: Redis is unreachable; scheduling paused until it is back",
                        error=str(exc), retry_every_s=RETRY_S, exits_after_s=self.wait_s)
        return now - self.since > self.wait_s

    def recovered(self) -> None:
        """Record a Redis call that worked; logs the end of an outage."""
        if self.since is not None:
            log.info("beat: Redis is reachable again",
                     down_s=round(time.monotonic() - self.since, 1))
            self.since = None


class OutageTolerantScheduler(RedBeatScheduler):
    """RedBeatScheduler that waits out a Redis outage and re-checks its lock afterwards."""

    lock: Any  # redis-py's Lock while this beat holds RedBeat's lock, else None

    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        # Set before super(): its setup_schedule() already talks to Redis.
        self._outage = Outage(app.kirim_settings.beat_redis_wait_s)
        self._exit_code: int | None = None
        self._standing_by = False
        self._started = False  # the `kirim_beat_at_start` entries were sent
        # The lock is taken in tick(), never blocking, so that a standby rides out an outage
        # as the leader does; redbeat's blocking take in beat_init fails with a traceback.
        beat_init.disconnect(acquire_distributed_beat_lock)
        super().__init__(app, *args, **kwargs)

    def setup_schedule(self) -> None:
        """RedBeat's setup (the static entries into Redis), retried while Redis is down."""
        while True:
            try:
                super().setup_schedule()
            except REDIS_DOWN as exc:
                if self._outage.failed(exc):
                    self._give_up()
                time.sleep(RETRY_S)
            else:
                self._outage.recovered()
                return

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One pass: send what is due if this beat holds the lock; survive Redis being down."""
        try:
            if self._outage.since is not None:
                get_redis(self.app).ping()
                self._outage.recovered()
            leading = self._hold_lock()
            if leading and not self._started:
                self._send_at_start()
            return self._send_due() if leading else float(self.max_interval)
        except REDIS_DOWN as exc:
            if self._outage.failed(exc):
                self._give_up()
            return RETRY_S

    def _hold_lock(self) -> bool:
        """Whether this beat may schedule now: its lock extended, or the free lock taken."""
        if not self.lock_key:
            return True
        if self.lock is not None:
            try:
                self.lock.extend(int(self.lock_timeout))
                return True
            except LockNotOwnedError:
                log.warning("beat: Lost the lock (it expired, or another beat took it);"
                            " not scheduling until this beat holds it again")
                self.lock = None
        return self._take_lock()

    def _take_lock(self) -> bool:
        """Take the lock if it is free, without blocking; stand by while another beat holds it."""
        client = get_redis(self.app)
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
        # As redbeat's beat_init handler does: its script sets the TTL instead of adding to it.
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
        if not lock.acquire(blocking=False):
            if not self._standing_by:
                log.info("beat: Another beat holds the lock; standing by", lock=self.lock_key)
                self._standing_by = True
            return False
        self.lock, self._standing_by = lock, False
        log.info("beat: Acquired lock")  # redbeat's words, which operators and tests look for
        return True

    def _send_at_start(self) -> None:
        """Send the `kirim_beat_at_start` entries now (their next run is an interval from
        now); a Redis outage meanwhile makes the next tick that leads try again."""
        for name in self.app.conf.get("kirim_beat_at_start") or ():
            try:
                entry = self.Entry.from_key(self.Entry.generate_key(self.app, name),
                                            app=self.app)
            except KeyError:  # not in this beat's schedule
                continue
            celery_log.info("Scheduler: Sending %s (%s) as beat starts", entry.name, entry.task)
            try:
                self.apply_async(entry, **self._maybe_due_kwargs)
            except SchedulingError as exc:
                if isinstance(exc.__context__, REDIS_DOWN):
                    raise RedisConnectionError(str(exc.__context__)) from exc
                celery_log.exception("Scheduler: Message Error: %s", exc)
        self._started = True

    def _send_due(self) -> float:
        """RedBeat's tick after its lock extension: send what is due; seconds to the next."""
        remaining: list[float] = []
        try:
            for entry in self.schedule.values():
                next_time_to_run = self.maybe_due(entry, **self._maybe_due_kwargs)
                if next_time_to_run:
                    remaining.append(next_time_to_run)
        except RuntimeError:  # kept from redbeat's tick, which logs it and carries on
            log.debug("beat: RuntimeError", exc_info=True)
        return float(min([*remaining, self.max_interval]))

    def maybe_due(self, entry: Any, **kwargs: Any) -> Any:
        """RedBeat's, except that Redis going down mid-tick ends the tick as an outage (one
        line) instead of an error with a traceback for each due entry."""
        is_due, next_time_to_run = entry.is_due()
        if is_due:
            celery_log.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
            try:
                self.apply_async(entry, **kwargs)
            except SchedulingError as exc:
                # Celery wraps the error of RedBeat's entry update (reserve) in SchedulingError.
                if isinstance(exc.__context__, REDIS_DOWN):
                    raise RedisConnectionError(str(exc.__context__)) from exc
                celery_log.exception("Scheduler: Message Error: %s", exc)
        return next_time_to_run

    def close(self) -> None:
        """Release the lock if Redis allows, close the broker connection, exit if given up."""
        lock, self.lock = self.lock, None
        if lock is not None and self._exit_code is None:  # given up: Redis is down, it expires
            _release(lock, self.lock_timeout)
        super().close()  # with self.lock None, redbeat's close only does Celery's part
        if self._exit_code is not None:
            # Celery's Service.start swallows the SystemExit from tick() and would exit 0;
            # this one comes from its `finally`, so the process ends with the outage's code.
            raise SystemExit(self._exit_code)

    def _give_up(self) -> NoReturn:
        """Log why beat stops and what to do, then stop it with EX_UNAVAILABLE."""
        settings = self.app.kirim_settings
        log.critical(
            "beat: exiting: Redis has been unreachable for longer than KIRIM_BEAT_REDIS_WAIT_S;"
            " bring redis-server back at KIRIM_REDIS_URL, then start beat again",
            redis=settings.safe_redis_url, wait_s=settings.beat_redis_wait_s,
            exit_code=EX_UNAVAILABLE)
        self._exit_code = EX_UNAVAILABLE
        raise SystemExit(EX_UNAVAILABLE)


def _release(lock: Any, lock_timeout: float) -> None:
    """Release a lock this beat may still hold; with Redis down it expires by itself."""
    try:
        if lock.owned():
            log.info("beat: Releasing lock")
            lock.release()
    except RedisError as exc:
        log.warning("beat: Could not release the lock; it expires by itself",
                    error=str(exc), expires_within_s=lock_timeout)

