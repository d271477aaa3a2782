"""All of kirim's settings, read once from `KIRIM_*` environment variables or `.env`.

One flat object shared by the producer, the ingest API and the workers: the worker-only
fields (NusaSMS credentials) are optional here and checked by `require_provider()` when a
worker starts, so a client service never needs the provider's password.
"""

from __future__ import annotations

import ipaddress
import json
import os
from functools import cached_property
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from producer.core.errors import ConfigError
from producer.core.tenants import (
    KeyEntry,
    KeyPolicy,
    callback_url_refusal,
    check_region,
    parse_callback_secrets,
    parse_key_entries,
)

ENV_PREFIX = "KIRIM_"
MIN_TOKEN_CHARS = 32


class Settings(BaseSettings):
    """kirim's configuration; docs/operations.md has the table (a test holds it to this)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    # Redis: broker, message records, counters, dead letters.
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "kirim"
    # Redis Sentinel (docs/high-availability.md): "host:port,host:port,…" of the Sentinels;
    # set, every client asks them for the master `redis_master_name`, and redis_url supplies
    # only the user, password, db and TLS (rediss://) of the master (its host is not used).
    redis_sentinels: str = ""
    redis_master_name: str = "kirim"
    redis_sentinel_password: SecretStr = SecretStr("")  # the Sentinels' own requirepass
    # Replicas that must acknowledge (WAIT) an accepted message before the API says so
    # (0: none; up to ~1 s of accepted messages may be lost with a master), and how long for.
    redis_min_replicas: int = Field(0, ge=0, le=16)
    redis_wait_timeout_ms: int = Field(500, ge=1, le=60000)

    # The NusaSMS account.
    nusasms_url: str = "https://api.nusasms.com"
    nusasms_user: str | None = None
    nusasms_password: SecretStr | None = None
    nusasms_sender: str | None = None
    nusasms_connect_timeout_s: float = Field(5.0, gt=0)
    nusasms_read_timeout_s: float = Field(30.0, gt=0)
    nusasms_pool_size: int = Field(64, ge=1)
    # NusaSMS API v1.0 (docs/nusasms-api.md §2), for WhatsApp and balances; SMS and OTP stay
    # on the legacy API above. wa_api: "v1" or "v3"; unset, v1 when the key is set
    # (`wa_api_resolved`).
    nusasms_api_key: SecretStr | None = None
    nusasms_v1_url: str = "https://api.nusasms.com/nusasms_api/1.0"
    wa_api: Literal["v1", "v3"] | None = None

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
    # The secret in the DR/inbound push URLs: at least 32 characters of a random token
    # (`python -c "import secrets;print(secrets.token_urlsafe(32))"`); "" refuses every push.
    callback_token: SecretStr = SecretStr("")
    # Addresses NusaSMS pushes from (comma-separated IPs or CIDRs; "": any address).
    callback_allowed_ips: str = ""
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
    # Standard Webhooks secrets per key: "name:whsec_…[|whsec_…],…" (two during a rotation).
    callback_secrets: SecretStr = SecretStr("")
    # Let callbacks reach loopback and private addresses: development and tests only.
    callback_allow_private: bool = False
    status_callback_timeout_s: float = Field(5.0, gt=0)
    status_callback_max_attempts: int = Field(8, ge=1)
    status_callback_base_delay_s: float = Field(1.0, gt=0)  # backoff: base·2^(n-1), jittered
    status_callback_max_delay_s: float = Field(300.0, gt=0)  # caps backoff and breaker cool-down
    status_callback_per_host: int = Field(4, ge=1)  # POSTs in flight per receiver host per drain
    status_callback_breaker_failures: int = Field(5, ge=1)  # consecutive failures that open it
    status_callback_breaker_cooldown_s: float = Field(10.0, gt=0)  # first open; doubles per reopen

    # Task events (received, started, succeeded, failed, retried) for Flower's live task
    # view: one publish per event, ~10% of a worker's CPU per message (bench/results). Off,
    # Flower still lists the workers, their queues and their task counts.
    worker_task_events: bool = False

    # Worker pool.
    worker_concurrency: int = Field(32, ge=1)
    # Tasks each worker thread reserves (Celery's worker_prefetch_multiplier): 1 keeps a
    # backlog in Redis, where any worker (and the OTP lane) can take it. 4 measured +13-30%
    # rate at 0 ms provider latency but -18 to +3% at 50 ms, about the same CPU per message
    # (bench `knobs`): reserved tasks wait in one worker while another has free threads.
    worker_prefetch_multiplier: int = Field(1, ge=1)
    # Messages enqueued together (send_many, the API's batches and its group commit) travel
    # as kirim.send_batch tasks of up to this many per queue (sms, wa; an OTP never waits in
    # one): the broker's per-task work is shared by all of them. 1 = one task per message.
    send_batch_size: int = Field(8, ge=1, le=100)
    # Where each worker process keeps its call journal (worker/journal.py): a file per process
    # saying which message each thread is about to call, so that a worker of the same
    # deployment on this host can requeue, rather than call `unknown`, a message a killed
    # worker marked but never wrote. "" = /dev/shm/kirim-journal-<uid> (or the temp dir).
    # In a container, a volume that outlives the worker's container (Kubernetes: emptyDir).
    worker_journal_dir: str = ""
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
    # Per-key policy (producer/core/tenants.py): JSON {"name": {"rate_per_s": …, "countries":
    # […], "groups": […], "callback_hosts": […], "callback_http": false}}; the defaults below
    # apply to a key (or a field) not listed; a "*" entry is the policy of every key not listed.
    api_key_policies: dict[str, KeyPolicy] = {}
    api_key_rate_per_s: float = Field(100.0, gt=0)  # messages per second per key
    api_key_burst: int = Field(1000, ge=1)  # messages at once above that rate
    api_key_countries: str = "ID"  # regions a message may go to ("ID,MY"; "*": any)
    # Failed authentications from one client address per minute before it is made to wait.
    api_auth_failures_per_min: int = Field(10, ge=1)

    # The server secret that keys text hashes (recipient guard, idempotency fingerprints), so a
    # short OTP cannot be recovered from its hash. Required wherever messages are enqueued or
    # sent; at least 32 characters (`python -c "import secrets;print(secrets.token_urlsafe(32))"`).
    # Changing it restarts the guard's same-text counts.
    hash_key: SecretStr = SecretStr("")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_nodes(cls, value: str) -> str:
        parse_sentinels(value)
        return value

    @field_validator("redis_min_replicas", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # Empty (compose's ${KIRIM_REDIS_MIN_REPLICAS:-}) is the default: no replica waited for.
        return 0 if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_master_name")
    @classmethod
    def _master_name(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value):
            raise ValueError("must be the Sentinels' name of the master (`sentinel monitor"
                             f" <name> …`), without spaces; got {value!r}")
        return value

    @model_validator(mode="after")
    def _sentinel_needs_tcp(self) -> Settings:
        if self.redis_sentinels and self.redis_url.startswith("unix://"):
            raise ValueError("KIRIM_REDIS_URL: a unix:// socket cannot be combined with"
                             " KIRIM_REDIS_SENTINELS (Sentinels hand out TCP addresses); use"
                             " redis://[user:password@]any/<db> (rediss:// for TLS)")
        return self

    @field_validator("nusasms_url", "nusasms_v1_url")
    @classmethod
    def _http_scheme(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("api_keys")
    @classmethod
    def _api_key_entries(cls, value: SecretStr) -> SecretStr:
        parse_key_entries(value.get_secret_value())
        return value

    @field_validator("api_key_policies", mode="before")
    @classmethod
    def _policies_json(cls, value: object) -> object:
        if isinstance(value, str):  # given as text (not from the environment, which parses)
            try:
                return json.loads(value) if value.strip() else {}
            except ValueError as exc:
                raise ValueError(f"must be a JSON object of key name -> policy: {exc}") from None
        return value

    @field_validator("callback_secrets")
    @classmethod
    def _callback_secret_entries(cls, value: SecretStr) -> SecretStr:
        parse_callback_secrets(value.get_secret_value())
        return value

    @field_validator("api_key_countries")
    @classmethod
    def _countries(cls, value: str) -> str:
        regions = [check_region(v) for v in value.split(",") if v.strip()]
        if not regions:
            raise ValueError('must name at least one region (e.g. "ID"), or "*" for any')
        return ",".join(regions)

    @field_validator("callback_token")
    @classmethod
    def _long_token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        if token and (len(token) < MIN_TOKEN_CHARS or len(set(token)) < 10):
            raise ValueError(
                f"must be at least {MIN_TOKEN_CHARS} characters of a random token (it is the"
                " only thing that authenticates NusaSMS's pushes); make one with `python -c"
                ' "import secrets;print(secrets.token_urlsafe(32))"`')
        return value

    @field_validator("callback_allowed_ips")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in filter(None, (v.strip() for v in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR range") from None
        return value

    @field_validator("hash_key")
    @classmethod
    def _hash_key_length(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(f"must be at least {MIN_TOKEN_CHARS} characters of a random token")
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
    def _policies_name_keys(self) -> Settings:
        for name in self.api_key_policies:  # a DR callback the key's own rules would refuse
            policy = self.policy_for(name)
            if policy.dr_callback_url and (problem := callback_url_refusal(
                    policy.dr_callback_url, name, policy, self.callback_allow_private)):
                raise ValueError(f"KIRIM_API_KEY_POLICIES[{name!r}].dr_callback_url:"
                                 f" {problem.reason} (every drop-in send of the key would be"
                                 " refused)")
        names = {entry.name for entry in self.key_entries}
        unknown = sorted(set(self.api_key_policies) - names - {"*"})
        if names and unknown:  # workers may load policies without the API's keys
            raise ValueError(f"KIRIM_API_KEY_POLICIES names no key of KIRIM_API_KEYS: {unknown}"
                             " (a typo would give that key the defaults)")
        return self

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
        _ = self.wa_api_resolved  # KIRIM_WA_API=v1 without a key stops the worker here

    @property
    def api_key_value(self) -> str:
        """KIRIM_NUSASMS_API_KEY's value ("" when unset or blank)."""
        key = self.nusasms_api_key.get_secret_value() if self.nusasms_api_key else ""
        return key.strip()

    @property
    def wa_api_resolved(self) -> Literal["v1", "v3"]:
        """The API WhatsApp is sent through: KIRIM_WA_API, else v1 when an API key is set."""
        if self.wa_api == "v1" and not self.api_key_value:
            raise ConfigError(
                "KIRIM_WA_API=v1 but KIRIM_NUSASMS_API_KEY is not set: set the NusaSMS API"
                " v1.0 key (from the NusaSMS web app), or KIRIM_WA_API=v3 to send WhatsApp"
                " through the legacy API"
            )
        if self.wa_api is not None:
            return self.wa_api
        return "v1" if self.api_key_value else "v3"

    @cached_property
    def hash_key_bytes(self) -> bytes:
        """KIRIM_HASH_KEY as bytes; ConfigError when it is not set."""
        key = self.hash_key.get_secret_value()
        if not key:
            raise ConfigError(
                "KIRIM_HASH_KEY not set: it keys the hashes of message texts, so an OTP cannot"
                " be recovered from them. Set the same random value (at least"
                f" {MIN_TOKEN_CHARS} characters) on every API, producer and worker:"
                ' python -c "import secrets;print(secrets.token_urlsafe(32))"')
        return key.encode()

    @cached_property
    def key_entries(self) -> list[KeyEntry]:
        """KIRIM_API_KEYS parsed (checked when the settings were loaded)."""
        return parse_key_entries(self.api_keys.get_secret_value())

    @cached_property
    def callback_secret_map(self) -> dict[str, list[bytes]]:
        """KIRIM_CALLBACK_SECRETS parsed: {key name: [secret bytes…]}."""
        return parse_callback_secrets(self.callback_secrets.get_secret_value())

    def callback_secrets_for(self, source: str) -> list[bytes]:
        """The secrets `source`'s status callbacks are signed with ([] when it has none)."""
        return self.callback_secret_map.get(source, [])

    def policy_for(self, name: str) -> KeyPolicy:
        """`name`'s KeyPolicy with the deployment's defaults filled in."""
        policy = self.api_key_policies.get(name) or self.api_key_policies.get("*") or KeyPolicy()
        return policy.model_copy(update={
            "rate_per_s": policy.rate_per_s or self.api_key_rate_per_s,
            "burst": policy.burst or self.api_key_burst,
            "countries": policy.countries or self.api_key_countries.split(",")})

    @cached_property
    def safe_redis_url(self) -> str:
        """The Redis URL with any password replaced by ***, for logs and errors (with the
        Sentinels and master name when they are set)."""
        masked = _mask_url_password(self.redis_url)
        if not self.redis_sentinels:
            return masked
        return f"{masked} (master {self.redis_master_name!r} via Sentinels {self.redis_sentinels})"

    @cached_property
    def sentinel_nodes(self) -> list[tuple[str, int]]:
        """KIRIM_REDIS_SENTINELS parsed: [(host, port), …]; [] when Sentinel is not used."""
        return parse_sentinels(self.redis_sentinels)


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """"host:port,host:port" (IPv6 as [addr]:port) as [(host, port), …]; ValueError naming
    the entry that is not host:port."""
    nodes = []
    for item in filter(None, (v.strip() for v in value.split(","))):
        host, sep, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item!r} is not host:port (e.g. sentinel-1:26379); give every"
                             " Sentinel as host:port, separated by commas")
        nodes.append((host, int(port)))
    return nodes


def _mask_url_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


# Settings that were removed, and what replaced them: set, they would be ignored silently.
REMOVED = {"KIRIM_STATUS_CALLBACK_SECRET": "KIRIM_CALLBACK_SECRETS (a Standard Webhooks secret"
           " per API key: name:whsec_…; docs/security.md#callbacks)",
           "KIRIM_TASK_SENT_EVENTS": "nothing (Flower shows a task once a worker receives it)"}


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment; a bad value raises ConfigError naming the variable."""
    removed = [f"{name} was removed: use {instead}" for name, instead in REMOVED.items()
               if os.environ.get(name)]
    if removed:
        raise ConfigError("invalid configuration: " + "; ".join(removed))
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except SettingsError as exc:  # a value pydantic-settings could not even parse (bad JSON)
        raise ConfigError(f"invalid configuration: {_first_line(exc)}") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = "_".join(str(part) for part in err["loc"]).upper()
            name = f"{ENV_PREFIX}{loc}" if loc else "settings"
            problems.append(f"{name}: {err['msg']}")
        # `from None`: pydantic's error repeats the raw input, which may be a secret.
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


def _first_line(exc: Exception) -> str:
    """The parse error's first line: which variable, never the value (it may be a secret)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
