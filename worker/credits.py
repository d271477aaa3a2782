"""Credits polling, balance alerts and automatic account resume (issue 5).

`kirim.poll_credits` (beat, `maintenance`, every KIRIM_CREDITS_POLL_INTERVAL_S) reads
CREDITS, stores it in `Keys.credits` (value as a decimal string, expires YYYY-MM-DD or "",
read_at epoch seconds: the API's format), sets the Prometheus gauges, alerts on level
changes and closes the account circuit when it opened for credit (-2, -7) and the balance is
usable again. A failed poll changes nothing: the last reading stays, with its age.

`kirim.watch_account` (beat, every few seconds) only reads the circuit and alerts when it
opened or closed, so a pause is reported within seconds without touching worker.pipeline.
A -5 / -40 pause is never closed here: an operator runs `kirim account resume`.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import structlog
from celery import Celery
from prometheus_client import Gauge

from producer.account import AccountState, resume_account
from producer.routing import Queues, Tasks
from producer.settings import Settings
from worker import alerts
from worker.alerts import Alert, AlertLevels
from worker.nusasms import Credits, NusaSMSError

log = structlog.get_logger("kirim.credits")

BALANCE = Gauge("kirim_credits_balance", "NusaSMS balance at the last successful CREDITS poll")
EXPIRES = Gauge("kirim_credits_expiry_timestamp_seconds",
                "Start of the day after the balance's expiry date (0: none given)")
READ_AT = Gauge("kirim_credits_read_timestamp_seconds", "When CREDITS last answered")

CREDIT_CODES = frozenset({"-2", "-7"})  # pauses the credits poll may close on its own
ACCOUNT_WATCH_INTERVAL_S = 5.0


def balance_level(value: Decimal, warn_below: float, critical_below: float) -> str:
    """"critical", "warn" or "ok" for a balance (under a threshold: that level)."""
    if value < Decimal(str(critical_below)):
        return "critical"
    if value < Decimal(str(warn_below)):
        return "warn"
    return "ok"


def expiry_level(expires: date | None, today: date, warn_days: int) -> str:
    """"expired", "expiring" (within warn_days) or "ok"; the expiry day itself is usable."""
    if expires is None:
        return "ok"
    if expires < today:
        return "expired"
    return "expiring" if (expires - today).days < warn_days else "ok"


def usable(credits: Credits, today: date) -> bool:
    """Can the account send: a positive balance that has not expired."""
    return credits.value > 0 and expiry_level(credits.expires, today, 0) != "expired"


def store_reading(svc: Any, credits: Credits, now: float) -> None:
    """Write the reading where the API and CLI read it, and set the gauges."""
    expires = credits.expires.isoformat() if credits.expires else ""
    svc.redis.hset(svc.keys.credits, mapping={
        "value": str(credits.value), "expires": expires, "read_at": repr(now)})
    BALANCE.set(float(credits.value))
    READ_AT.set(now)
    if credits.expires:
        next_day = datetime.combine(credits.expires, datetime.min.time()).timestamp() + 86400
        EXPIRES.set(next_day)
    else:
        EXPIRES.set(0)


def read_credits(svc: Any) -> Credits | None:
    """One CREDITS call; None (logged) when it failed: the last reading is kept."""
    try:
        return svc.client.credits("sms")
    except NusaSMSError as exc:
        log.warning("credits_poll_failed", error=str(exc), outcome=str(exc.outcome),
                    hint="the last reading is kept; GET /v1/credits shows its age")
        return None


class CreditsMonitor:
    """Turns readings and the account circuit into alerts and automatic resumes."""

    def __init__(self, app: Celery, svc: Any) -> None:
        self.app = app
        self.svc = svc
        self.settings: Settings = svc.settings
        self.levels = AlertLevels(svc.redis, svc.keys.prefix)

    def poll(self) -> str:
        """Read CREDITS, store it, alert, resume if it can; returns a short outcome."""
        credits = read_credits(self.svc)
        if credits is None:
            self.watch_account()
            return "failed"
        store_reading(self.svc, credits, time.time())
        today = date.today()
        self._balance_alert(credits)
        self._expiry_alert(credits, today)
        state = self.watch_account()
        if state.paused and state.code in CREDIT_CODES and usable(credits, today):
            # The note first: the account watch may see the closed circuit before we do.
            self.levels.leave_note("account", f"automatically (balance {credits.value})")
            count = resume_account(self.svc.circuit, self.svc.dispatcher)
            log.warning("account_auto_resumed", code=state.code, requeued=count,
                        balance=str(credits.value))
            self.watch_account()
            return "resumed"
        return "ok"

    def watch_account(self) -> AccountState:
        """Alert once when the circuit opened or closed since the last look."""
        state = self.svc.circuit.state()
        previous = self.levels.advance("account", "paused" if state.paused else "sending")
        if previous == "sending" or (previous == "" and state.paused):
            self._send(Alert("account", "paused", previous or "sending", _paused_text(state),
                             {"code": state.code, "reason": state.reason}), paused=True)
        elif previous == "paused":
            how = self.levels.take_note("account") or "by an operator"
            self._send(Alert("account", "resumed", "paused",
                             f"account resumed {how}; held messages requeued, sending again"),
                       paused=False)
        return state

    def _balance_alert(self, credits: Credits) -> None:
        s = self.settings
        level = balance_level(credits.value, s.credits_warn_below, s.credits_critical_below)
        previous = self.levels.advance("balance", level)
        if previous is None or (previous == "" and level == "ok"):
            return
        limit = s.credits_critical_below if level == "critical" else s.credits_warn_below
        text = (f"credits recovered: balance {credits.value}" if level == "ok" else
                f"credits {level}: balance {credits.value} is below {limit:g}")
        self._send(Alert("balance", level, previous, text, {"balance": str(credits.value)}))

    def _expiry_alert(self, credits: Credits, today: date) -> None:
        level = expiry_level(credits.expires, today, self.settings.credits_expiry_warn_days)
        previous = self.levels.advance("expiry", level)
        if previous is None or (previous == "" and level == "ok"):
            return
        expires = credits.expires.isoformat() if credits.expires else ""
        text = {"expired": f"credits expired on {expires}: the account cannot send",
                "expiring": f"credits expire on {expires}: top up before then",
                "ok": f"credits expiry is fine again ({expires or 'no date'})"}[level]
        self._send(Alert("expiry", level, previous, text, {"expires": expires}))

    def _send(self, alert: Alert, paused: bool | None = None) -> None:
        if paused is None:
            paused = self.svc.circuit.state().paused
        alerts.notify(self.app, alert, webhook_url=self.settings.alert_webhook_url,
                      sms_numbers=alerts.sms_numbers(self.settings.alert_sms_numbers),
                      account_paused=paused)


def _paused_text(state: AccountState) -> str:
    then = ("resumes by itself when CREDITS shows a usable balance"
            if state.code in CREDIT_CODES else "run `kirim account resume` once it is fixed")
    return f"account paused: {state.reason} (code {state.code}); nothing is sent; it {then}"


def register(app: Celery) -> None:
    """Register the credits and alert tasks on `app`."""
    from worker.app import services_for

    alerts.register(app)

    @app.task(name=Tasks.POLL_CREDITS, ignore_result=True)
    def poll_credits() -> str:
        """Read CREDITS, store it, alert on changes, resume a credit pause when it can."""
        return CreditsMonitor(app, services_for(app)).poll()

    @app.task(name=Tasks.WATCH_ACCOUNT, ignore_result=True)
    def watch_account() -> bool:
        """Alert once when the account circuit opened or closed."""
        return CreditsMonitor(app, services_for(app)).watch_account().paused


def beat_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat schedule entries for credits polling and the account watch."""
    poll_s = settings.credits_poll_interval_s
    watch_s = min(ACCOUNT_WATCH_INTERVAL_S, poll_s)
    return {
        "poll-credits": {"task": Tasks.POLL_CREDITS, "schedule": poll_s,
                         "options": {"queue": Queues.MAINTENANCE, "expires": max(poll_s, 5.0)}},
        "watch-account": {"task": Tasks.WATCH_ACCOUNT, "schedule": watch_s,
                          "options": {"queue": Queues.MAINTENANCE,
                                      "expires": max(watch_s, 5.0)}},
    }
