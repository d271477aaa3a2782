"""All of kirim's settings, read once from `KIRIM_*` environment variables or `.env`.

One flat object shared by the producer, the ingest API and the workers: the worker-only
fields (NusaSMS credentials) are optional here and checked by `require_provider()` when a
worker starts, so a client service never needs the provider's password.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from producer.core.errors import ConfigError

ENV_PREFIX = "KIRIM_"
_API_KEY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class Settings(BaseSettings):
    """kirim's configuration; docs/operations.md has the table (a test holds it to this)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    # Redis: broker, message records, counters, dead letters.
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "kirim"

    # The NusaSMS account.
    nusasms_url: str = "https://api.nusasms.com"
    nusasms_user: str | None = None
    nusasms_password: SecretStr | None = None
    nusasms_sender: str | None = None
    nusasms_connect_timeout_s: float = Field(5.0, gt=0)
    nusasms_read_timeout_s: float = Field(30.0, gt=0)
    nusasms_pool_size: int = Field(64, ge=1)

    # Messages.
    message_ttl_s: int = Field(7 * 86400, ge=60)
    otp_validity_s: int = Field(300, ge=10)
    sms_max_parts: int = Field(10, ge=1, le=255)
    newline_counts_double: bool = True  # NusaSMS's length page counts a newline as 2

    # Delivery and retries.
    visibility_timeout_s: int = Field(3600, ge=10)
    send_lease_s: int = Field(120, ge=5)
    retry_max_attempts: int = Field(10, ge=1)
    retry_base_delay_s: float = Field(2.0, gt=0)
    retry_max_delay_s: float = Field(600.0, gt=0)
    outbox_grace_s: int = Field(60, ge=1)
    deferred_release_interval_s: float = Field(1.0, gt=0)

    # Recipient guard (-77 / -78) and the account's global rate limit.
    guard_enabled: bool = True
    guard_window_s: int = Field(86400, ge=1)
    guard_same_text_limit: int = Field(10, ge=1)
    guard_per_recipient_limit: int = Field(50, ge=1)
    rate_limit_per_s: float = Field(50.0, gt=0)
    rate_limit_burst: int = Field(10, ge=1)

    # Delivery reports (worker/delivery.py) and the provider's pushes (producer/api/callbacks.py).
    dr_poll_interval_s: float = Field(15.0, gt=0)
    dr_batch_size: int = Field(200, ge=1)
    dr_concurrency: int = Field(8, ge=1)
    dr_first_poll_s: float = Field(10.0, ge=0)
    dr_backoff_max_s: float = Field(1800.0, gt=0)
    dr_expiry_s: int = Field(3 * 86400, ge=60)
    # DR pulls' own slice of the account's request rate, shared by every worker process.
    # rate_limit_per_s plus this slice (and the bursts) should stay under the provider's
    # account limit (docs/nusasms-api.md §1.10): the two limiters do not know of each other.
    dr_rate_limit_per_s: float = Field(5.0, gt=0)
    dr_rate_limit_burst: int = Field(5, ge=1)
    # An account-wide refusal of DR pulls (-5 credentials, -40 IP) pauses polling for
    # dr_pause_min_s, doubling on each refused probe up to dr_pause_max_s.
    dr_pause_min_s: float = Field(60.0, gt=0)
    dr_pause_max_s: float = Field(1800.0, gt=0)
    callback_token: SecretStr = SecretStr("")  # the secret in the DR/inbound push URLs
    inbound_task: str | None = None  # a Celery task name to forward inbound SMS to
    inbound_webhook_url: str | None = None

    # Credits, balance alerts and status callbacks (worker/credits.py, worker/callbacks.py).
    credits_poll_interval_s: float = Field(300.0, gt=0)
    # Wallets whose CREDITS are read every poll (sms, wa); a credit-paused WA is read anyway.
    credits_products: str = "sms"
    credits_warn_below: float = Field(10000.0, ge=0)
    credits_critical_below: float = Field(1000.0, ge=0)
    credits_expiry_warn_days: int = Field(7, ge=0)
    alert_webhook_url: str | None = None
    alert_sms_numbers: str = ""  # comma-separated operator numbers alerted through kirim
    alert_dead_letters_per_min: int = Field(50, ge=0)  # alert above this rate (0: off)
    status_callback_secret: SecretStr = SecretStr("")  # HMAC-SHA256 key for producer callbacks
    status_callback_timeout_s: float = Field(5.0, gt=0)
    status_callback_max_attempts: int = Field(8, ge=1)
    status_callback_base_delay_s: float = Field(1.0, gt=0)  # backoff: base·2^(n-1), jittered
    status_callback_max_delay_s: float = Field(300.0, gt=0)  # caps backoff and breaker cool-down
    status_callback_per_host: int = Field(4, ge=1)  # POSTs in flight per receiver host per drain
    status_callback_breaker_failures: int = Field(5, ge=1)  # consecutive failures that open it
    status_callback_breaker_cooldown_s: float = Field(10.0, gt=0)  # first open; doubles per reopen

    # Flower's view of tasks before a worker takes them (costs one publish per message).

    # Worker pool.
    worker_concurrency: int = Field(32, ge=1)
    # How long beat waits for an unreachable Redis before it exits (worker/beat.py).
    beat_redis_wait_s: float = Field(300.0, gt=0)

    # Operations: log format (auto = JSON unless a terminal), the worker's Prometheus port
    # (0: off; one per process on a host) and the liveness heartbeat file ("": off).
    log_format: Literal["auto", "json", "console"] = "auto"
    metrics_port: int = Field(9808, ge=0, le=65535)
    heartbeat_file: str = ""

    # Ingest HTTP API. `api_keys` is "name:sha256hex,name2:sha256hex" (hashes only; make one
    # with `python -c "import hashlib;print(hashlib.sha256(b'secret').hexdigest())"`).
    api_keys: SecretStr = SecretStr("")
    api_max_body_bytes: int = Field(1024 * 1024, ge=1024)
    api_batch_max: int = Field(1000, ge=1, le=10000)
    api_dropin_enabled: bool = True  # the NusaSMS-compatible /api/v3/… and /api/command routes

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("nusasms_url")
    @classmethod
    def _http_scheme(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("api_keys")
    @classmethod
    def _api_key_entries(cls, value: SecretStr) -> SecretStr:
        for entry in filter(None, (e.strip() for e in value.get_secret_value().split(","))):
            name, _, digest = entry.partition(":")
            if not _API_KEY_NAME.fullmatch(name) or not _SHA256_HEX.fullmatch(digest.lower()):
                raise ValueError(
                    "each entry must be name:sha256hex (name of letters, digits, _ . -; the"
                    " 64-hex-digit SHA-256 of the key, never the key itself)")
        return value

    @field_validator("credits_products")
    @classmethod
    def _known_products(cls, value: str) -> str:
        products = [p.strip() for p in value.split(",") if p.strip()]
        unknown = sorted(set(products) - {"sms", "wa"})
        if unknown or not products:
            raise ValueError(f"must be a comma-separated list of sms and wa, got {value!r}")
        return ",".join(products)

    @model_validator(mode="after")
    def _retry_fits_visibility(self) -> Settings:
        if self.retry_max_delay_s >= self.visibility_timeout_s:
            raise ValueError(
                "KIRIM_RETRY_MAX_DELAY_S must be below KIRIM_VISIBILITY_TIMEOUT_S: a countdown"
                " longer than the visibility timeout makes Redis deliver the task twice"
            )
        return self

    def require_provider(self) -> None:
        """Raise ConfigError naming each NusaSMS credential a worker needs but lacks."""
        missing = [
            f"{ENV_PREFIX}{name.upper()}"
            for name in ("nusasms_user", "nusasms_password")
            if not getattr(self, name)
        ]
        if missing:
            raise ConfigError(
                f"{', '.join(missing)} not set: a worker needs the NusaSMS API credentials"
                " (the API user, not the web login); set them in the environment or .env"
            )

    @cached_property
    def safe_redis_url(self) -> str:
        """The Redis URL with any password replaced by ***, for logs and errors."""
        return _mask_url_password(self.redis_url)


def _mask_url_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment; a bad value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = "_".join(str(part) for part in err["loc"]).upper()
            name = f"{ENV_PREFIX}{loc}" if loc else "settings"
            problems.append(f"{name}: {err['msg']}")
        # `from None`: pydantic's error repeats the raw input, which may be a secret.
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
