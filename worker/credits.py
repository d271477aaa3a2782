"""Credits polling per wallet, balance alerts, circuit alerts and automatic resume (issue 5, 12).

`kirim.poll_credits` (beat, `maintenance`, every KIRIM_CREDITS_POLL_INTERVAL_S) reads CREDITS
for each product whose wallet matters: SMS (which OTP also spends) always, WhatsApp when
`KIRIM_CREDITS_PRODUCTS` names it or while the WA circuit is paused for credit. With an API
v1.0 key (KIRIM_NUSASMS_API_KEY) it reads `/balance` once instead, which holds both wallets:
both readings are stored, and WhatsApp is watched too when it is sent through v1.0. Each reading
is stored in `Keys.credits_for(product)` (value as a decimal string, expires YYYY-MM-DD or
"", read_at epoch seconds: the API's format; every worker's /metrics reads it at scrape time),
alerts on level changes and closes that product's circuit when it opened for credit (-2, -7)
and the balance is usable again. Products are polled one by one: a failed poll of one
changes nothing for the other, and keeps its last reading. Beat sends the first poll as soon
as it starts scheduling (AT_BEAT_START), not one interval later.

`kirim.watch_account` (beat, every few seconds) only reads: it alerts once when a circuit
opened or closed, when dead letters arrive faster than KIRIM_ALERT_DEAD_LETTERS_PER_MIN,
and when messages become `unknown` (a -33, a lost reply: an operator must settle them).
A credential, IP, sender or OTP-route pause is never closed here: an operator runs
`kirim account resume`.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog
from celery import Celery

from producer.core.account import AccountCircuits, CircuitState, resume_circuit
from producer.core.redis_text import text
from producer.core.routing import Circuit, Queues, Tasks
from producer.core.settings import Settings
from worker import alerts
from worker.alerts import Alert, AlertLevels
from worker.nusasms import Balances, Credits, NusaSMSError

if TYPE_CHECKING:
    from worker.services import Services

log = structlog.get_logger("kirim.credits")

# The kirim_credits_* gauges are read from these hashes at scrape time (worker/metrics.py,
# CreditsCollector): every worker shows the same last reading, and none before one exists.
CREDIT_CODES = frozenset({"-2", "-7"})  # pauses the credits poll may close on its own
# The same pauses opened by an API v1.0 reply (an HTTP code; worker/nusasms/v1_status.py).
CREDIT_NAMES = frozenset({"NOT_ENOUGH_CREDITS", "BALANCE_EXPIRED"})
ACCOUNT_WATCH_INTERVAL_S = 5.0
PRODUCT_CIRCUIT = {"sms": Circuit.SMS, "wa": Circuit.WA}


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


def store_reading(svc: Services, product: str, credits: Credits, now: float,
                  api: str = "v3") -> None:
    """Write one wallet's reading where the API, the CLI and every worker's /metrics read it;
    `api`: which NusaSMS API it came from (v3 CREDITS or v1.0 /balance)."""
    expires = credits.expires.isoformat() if credits.expires else ""
    svc.redis.hset(svc.keys.credits_for(product), mapping={
        "value": str(credits.value), "expires": expires, "read_at": repr(now), "api": api})


def expiry_timestamp(expires: date) -> float:
    """Start of the day after `expires` (local time): when the balance stops being usable."""
    return datetime.combine(expires, datetime.min.time()).timestamp() + 86400


def credit_paused(state: CircuitState) -> bool:
    """True for a pause the credits poll may close: the wallet was empty or expired."""
    return state.paused and (state.code in CREDIT_CODES or state.reason in CREDIT_NAMES)


def read_balances(svc: Services) -> Balances | None:
    """One API v1.0 `/balance` call (both wallets); None (logged) when it failed."""
    if svc.balance_client is None:
        return None
    try:
        return svc.balance_client.balance()
    except NusaSMSError as exc:
        log.warning("credits_poll_failed", product="sms,wa", api="v1", error=str(exc),
                    action=str(exc.action),
                    hint="the last readings are kept; GET /v1/credits shows their age")
        return None


def read_credits(svc: Services, product: str = "sms") -> Credits | None:
    """One CREDITS call for `product`; None (logged) when it failed: the last reading stays."""
    try:
        return svc.client.credits(product)
    except NusaSMSError as exc:
        log.warning("credits_poll_failed", product=product, error=str(exc),
                    action=str(exc.action),
                    hint="the last reading is kept; GET /v1/credits shows its age")
        return None


def _kind(kind: str, product: str) -> str:
    """Alert kind of one wallet: "balance" for SMS (as before), "balance:wa" for WhatsApp."""
    return kind if product == "sms" else f"{kind}:{product}"


class CreditsMonitor:
    """Turns readings and the circuits into alerts and automatic resumes."""

    def __init__(self, app: Celery, svc: Services) -> None:
        self.app = app
        self.svc = svc
        self.settings: Settings = svc.settings
        self.circuits: AccountCircuits = svc.circuits
        self.levels = AlertLevels(svc.redis, svc.keys)

    def poll(self) -> str:
        """Read each wallet, store it, alert, resume what it can; a short outcome."""
        if self.svc.balance_client is not None:
            results = self._poll_balances()
        else:
            results = [self.poll_product(product) for product in self.products()]
        self.watch_account()
        if "resumed" in results:
            return "resumed"
        return "failed" if "failed" in results else "ok"

    def products(self) -> list[str]:
        """The wallets to read: the configured ones, and any whose circuit is credit-paused."""
        products = [p.strip() for p in self.settings.credits_products.split(",") if p.strip()]
        if self.svc.wa_client is not None and "wa" not in products:
            products.append("wa")  # WhatsApp goes through v1.0: its wallet is watched too
        for product, state in zip(PRODUCT_CIRCUIT, self.circuits.states(
                PRODUCT_CIRCUIT.values()), strict=True):
            if credit_paused(state) and product not in products:
                products.append(product)
        return products

    def _poll_balances(self) -> list[str]:
        """API v1.0: one `/balance` for both wallets; both stored, the watched ones checked."""
        balances = read_balances(self.svc)
        if balances is None:
            return ["failed"]
        now = time.time()
        for product in PRODUCT_CIRCUIT:
            store_reading(self.svc, product, getattr(balances, product), now, api="v1")
        return [self.check_product(product, getattr(balances, product))
                for product in self.products()]

    def poll_product(self, product: str) -> str:
        """Read one wallet; "ok", "failed" or "resumed" (its credit pause closed)."""
        credits = read_credits(self.svc, product)
        if credits is None:
            return "failed"
        store_reading(self.svc, product, credits, time.time())
        return self.check_product(product, credits)

    def check_product(self, product: str, credits: Credits) -> str:
        """Alerts and the automatic resume for one wallet's reading; "ok" or "resumed"."""
        today = date.today()
        self._balance_alert(product, credits)
        self._expiry_alert(product, credits, today)
        circuit = PRODUCT_CIRCUIT.get(product)
        state = self.circuits.state(circuit) if circuit else None
        if (state and credit_paused(state) and usable(credits, today)
                and self._first_resume_at(product, credits)):
            # The note first: the account watch may see the closed circuit before we do.
            self.levels.leave_note(f"circuit:{state.name}",
                                   f"automatically (balance {credits.value})")
            count = resume_circuit(self.circuits, self.svc.requeuer, state.name)
            log.warning("circuit_auto_resumed", circuit=state.name, code=state.code,
                        requeued=count, balance=str(credits.value))
            return "resumed"
        return "ok"

    def _first_resume_at(self, product: str, credits: Credits) -> bool:
        """True unless this wallet was already resumed at this very balance: a balance above
        zero but below one message's price would otherwise resume and pause every poll."""
        key = self.svc.keys.credits_for(product)
        if text(self.svc.redis.hget(key, "resumed_at_value")) == str(credits.value):
            return False
        self.svc.redis.hset(key, "resumed_at_value", str(credits.value))
        return True

    def watch_account(self) -> list[CircuitState]:
        """Alert once for each circuit that opened or closed, for a dead-letter spike and
        for messages that became `unknown`, since the last look; returns the circuits."""
        states = self.circuits.states()
        for state in states:
            self._watch_circuit(state)
        self._watch_dead_letters()
        self._watch_unknown()
        return states

    def _watch_circuit(self, state: CircuitState) -> None:
        kind = f"circuit:{state.name}"
        previous = self.levels.advance(kind, "paused" if state.paused else "sending")
        if previous == "sending" or (previous == "" and state.paused):
            self._send(Alert(kind, "paused", previous or "sending", _paused_text(state),
                             {"circuit": state.name, "code": state.code,
                              "reason": state.reason}))
        elif previous == "paused":
            how = self.levels.take_note(kind) or "by an operator"
            self._send(Alert(kind, "resumed", "paused",
                             f"{state.name} circuit resumed {how}; its held messages are"
                             " requeued", {"circuit": state.name}))

    def _watch_dead_letters(self) -> None:
        limit = self.settings.alert_dead_letters_per_min
        if limit <= 0:
            return
        since_ms = int((time.time() - 60) * 1000)
        recent = len(self.svc.redis.xrange(self.svc.keys.dead_letters, min=f"{since_ms}-0",
                                           count=limit + 1) or [])
        level = "high" if recent > limit else "ok"
        previous = self.levels.advance("dead_letters", level)
        if previous is None or (previous == "" and level == "ok"):
            return
        text = (f"dead letters: more than {limit} in the last minute; see `kirim dlq list`"
                if level == "high" else "dead letters are back under the alert rate")
        self._send(Alert("dead_letters", level, previous, text, {"per_min": str(recent)}))

    def _watch_unknown(self) -> None:
        count = int(self.svc.redis.zcard(self.svc.keys.unknown))
        level = "present" if count else "none"
        previous = self.levels.advance("unknown", level)
        if previous is None or (previous == "" and level == "none"):
            return
        text = (f"{count} message(s) are unknown: the provider may have them; nothing resends"
                " them. `kirim status --unknown`, then `kirim settle`" if count else
                "no unknown messages are left")
        self._send(Alert("unknown", level, previous, text, {"count": str(count)}))

    def _balance_alert(self, product: str, credits: Credits) -> None:
        s = self.settings
        level = balance_level(credits.value, s.credits_warn_below, s.credits_critical_below)
        kind = _kind("balance", product)
        previous = self.levels.advance(kind, level)
        if previous is None or (previous == "" and level == "ok"):
            return
        limit = s.credits_critical_below if level == "critical" else s.credits_warn_below
        text = (f"{product} credits recovered: balance {credits.value}" if level == "ok" else
                f"{product} credits {level}: balance {credits.value} is below {limit:g}")
        self._send(Alert(kind, level, previous, text, {"balance": str(credits.value),
                                                      "product": product}))

    def _expiry_alert(self, product: str, credits: Credits, today: date) -> None:
        level = expiry_level(credits.expires, today, self.settings.credits_expiry_warn_days)
        kind = _kind("expiry", product)
        previous = self.levels.advance(kind, level)
        if previous is None or (previous == "" and level == "ok"):
            return
        expires = credits.expires.isoformat() if credits.expires else ""
        text = {"expired": f"{product} credits expired on {expires}: that wallet cannot send",
                "expiring": f"{product} credits expire on {expires}: top up before then",
                "ok": f"{product} credits expiry is fine again ({expires or 'no date'})"}[level]
        self._send(Alert(kind, level, previous, text, {"expires": expires,
                                                      "product": product}))

    def _send(self, alert: Alert) -> None:
        blocked = self.circuits.blocking(alerts.ALERT_SMS_CHANNEL)
        alerts.notify(self.app, alert, webhook_url=self.settings.alert_webhook_url,
                      sms_numbers=alerts.sms_numbers(self.settings.alert_sms_numbers),
                      sms_blocked=blocked.name if blocked else None)


def _paused_text(state: CircuitState) -> str:
    then = ("resumes by itself when CREDITS shows a usable balance"
            if credit_paused(state) and state.name in PRODUCT_CIRCUIT.values() else
            "run `kirim account resume " + state.name + "` once it is fixed")
    return (f"{state.name} circuit paused: {state.reason} (code {state.code}); its lanes send"
            f" nothing; it {then}")


# Sent once when a beat starts scheduling (worker/beat.py, `kirim_beat_at_start`), then on
# its interval: the first reading (balance metrics and alerts) does not wait a whole interval.
AT_BEAT_START = ("poll-credits",)


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
