"""The sandbox's knobs: one typed object, settable at start (CLI) and at run time (JSON).

Every knob has a default that matches the provider as far as the spec knows it; `update`
validates a partial JSON object and names the knob and the reason when it refuses one.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_GROUPS: dict[str, list[str]] = {"Example": ["6281234567890", "6281234567891"]}


@dataclass
class Config:
    """Runtime knobs of the sandbox (names, types and defaults are the public contract)."""

    user: str = "demo"
    password: str = "demo"
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    rate_5xx: float = 0.0
    rate_timeout: float = 0.0
    rate_malformed: float = 0.0
    rate_429: float = 0.0
    rate_drop_after_accept: float = 0.0
    hang_s: float = 30.0
    dr_delay_s: float = 1.0
    dr_default_letter: str = "D"
    dr_callback_url: str | None = None
    inbox_url: str | None = None
    same_text_limit: int = 10
    per_number_limit: int = 50
    otp_marker_check: bool = True
    otp_route: bool = True
    allowed_senders: list[str] = field(default_factory=list)
    credits_as_string: bool = False
    newline_counts_double: bool = True
    groups: dict[str, list[str]] = field(default_factory=lambda: json.loads(
        json.dumps(DEFAULT_GROUPS)))
    seed: int | None = None
    down: bool = False
    # API v1.0 (spec §2, sandbox/v1.py): its key, where it is mounted, the WhatsApp senders
    # the account has (empty: any plausible number), and when a delivered WA message is read
    # (seconds after delivery; null: never).
    api_key: str = "demo-api-key"
    v1_prefix: str = "/nusasms_api/1.0"
    wa_senders: list[str] = field(default_factory=list)
    wa_read_delay_s: float | None = 1.0

    def to_json(self) -> dict[str, Any]:
        """The knobs as a JSON-able dict."""
        return dataclasses.asdict(self)

    def copy(self) -> Config:
        """A deep copy (groups and allowed_senders included)."""
        return Config(**json.loads(json.dumps(self.to_json())))

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply a partial set of knobs; raises ValueError naming the first bad one."""
        checked = {name: coerce(name, value) for name, value in changes.items()}
        for name, value in checked.items():
            setattr(self, name, value)


class KnobError(ValueError):
    """A knob name or value was refused."""


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false",
                                                    "no", "off"}:
        return value.lower() in {"1", "true", "yes", "on"}
    raise ValueError("expected a boolean")


def _nonneg(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    number = float(value)
    if number < 0:
        raise ValueError("must be >= 0")
    return number


def _rate(value: Any) -> float:
    number = _nonneg(value)
    if number > 1:
        raise ValueError("must be between 0 and 1")
    return number


def _count(value: Any) -> int:
    if isinstance(value, bool) or int(value) != float(value) or int(value) < 0:
        raise ValueError("expected a whole number >= 0")
    return int(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError("expected an http(s) URL or null")
    return value


def _letter(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 1 or not value.isalpha():
        raise ValueError("expected one letter")
    return value.upper()


def _seed(value: Any) -> int | None:
    return None if value is None else _count(value)


def _groups(value: Any) -> dict[str, list[str]]:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(g, str) for g in v)
        for k, v in value.items()
    ):
        raise ValueError("expected an object of group name -> list of GSM strings")
    return {k: list(v) for k, v in value.items()}


def _senders(value: Any) -> list[str]:
    # The CLI hands over one string: a JSON list, or names separated by commas.
    if isinstance(value, str):
        value = json.loads(value) if value.lstrip().startswith("[") else [
            name.strip() for name in value.split(",") if name.strip()]
    if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
        raise ValueError("expected a list of sender names (or one comma-separated string)")
    return list(value)


def _prefix(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("/_sandbox"):
        raise ValueError("expected a path starting with / (not under /_sandbox)")
    return value.rstrip("/")


def _optional_nonneg(value: Any) -> float | None:
    return None if value is None or value == "" or value == "null" else _nonneg(value)


COERCERS: dict[str, Callable[[Any], Any]] = {
    "user": _text, "password": _text,
    "latency_ms": _nonneg, "latency_jitter_ms": _nonneg, "hang_s": _nonneg,
    "dr_delay_s": _nonneg, "dr_default_letter": _letter,
    "rate_5xx": _rate, "rate_timeout": _rate, "rate_malformed": _rate, "rate_429": _rate,
    "rate_drop_after_accept": _rate,
    "dr_callback_url": _url, "inbox_url": _url,
    "same_text_limit": _count, "per_number_limit": _count,
    "otp_marker_check": _bool, "credits_as_string": _bool, "newline_counts_double": _bool,
    "otp_route": _bool, "allowed_senders": _senders,
    "down": _bool, "groups": _groups, "seed": _seed,
    "api_key": _text, "v1_prefix": _prefix, "wa_senders": _senders,
    "wa_read_delay_s": _optional_nonneg,
}


def coerce(name: str, value: Any) -> Any:
    """The knob's value in its type; raises KnobError naming the knob and the reason."""
    coercer = COERCERS.get(name)
    if coercer is None:
        raise KnobError(f"unknown knob {name!r}; known: {', '.join(sorted(COERCERS))}")
    try:
        return coercer(value)
    except (TypeError, ValueError) as exc:
        raise KnobError(f"knob {name!r}: {exc} (got {value!r})") from exc
