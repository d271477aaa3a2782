"""What each API key may do: its scopes, its policy, and the secrets its callbacks are signed with.

Three settings describe the tenants (docs/security.md):

- `KIRIM_API_KEYS`: `name:sha256hex[:scope+scope…]`, comma-separated. Scopes are `send`,
  `read` (its own messages and dead letters) and `admin` (all of that, on every key's);
  an entry without scopes means `send+read`. A name may appear twice while its key is
  rotated (old and new key, both owning the name's messages).
- `KIRIM_API_KEY_POLICIES`: JSON, `{"<name>": {...KeyPolicy...}}`; a key not listed gets
  the defaults (`KIRIM_API_KEY_RATE_PER_S`, `…_BURST`, `…_COUNTRIES`, no groups, any public
  https callback host).
- `KIRIM_CALLBACK_SECRETS`: `name:whsec_…[|whsec_…]`, comma-separated: the Standard Webhooks
  secrets a key's status callbacks are signed with. During a rotation list two: every
  callback then carries a signature by each, so receivers holding either accept it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from enum import StrEnum

import httpx
import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator

from producer.core.addresses import literal_host_problem
from producer.core.contract import Job
from producer.core.errors import InvalidMessage

KEY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Sources of messages kirim's own parts create (the Python client's default, the CLI, alert
# SMS, the DR poll): no key may take these names, or it would own those messages.
RESERVED_NAMES = frozenset({"python", "api", "cli", "alerts", "poll", "kirim"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
_HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


class Scope(StrEnum):
    """What a key may do."""

    SEND = "send"
    READ = "read"  # its own messages and dead letters
    ADMIN = "admin"  # every scope, on every key's messages and dead letters


DEFAULT_SCOPES = frozenset({Scope.SEND, Scope.READ})


@dataclass(frozen=True)
class KeyEntry:
    """One KIRIM_API_KEYS entry: a name, the key's SHA-256, its scopes."""

    name: str
    digest: bytes
    scopes: frozenset[Scope]


def parse_key_entries(raw: str) -> list[KeyEntry]:
    """KIRIM_API_KEYS as entries; ValueError naming the first bad entry by position and name."""
    entries: list[KeyEntry] = []
    for n, entry in enumerate(filter(None, (e.strip() for e in raw.split(","))), start=1):
        name, _, rest = entry.partition(":")
        digest, _, scopes = rest.partition(":")
        well_formed = KEY_NAME.fullmatch(name) and _SHA256_HEX.fullmatch(digest.lower())
        # A malformed entry may be a pasted key: name it by position only, never echo it.
        where = f"entry {n} ({name!r})" if well_formed else f"entry {n}"
        if not well_formed:
            raise ValueError(
                f"{where}: must be name:sha256hex[:scope+scope] (name of letters, digits,"
                " _ . -; the 64-hex-digit SHA-256 of the key, never the key itself)")
        try:
            granted = frozenset(Scope(s.strip()) for s in scopes.split("+")) if scopes \
                else DEFAULT_SCOPES
        except ValueError:
            raise ValueError(f"{where}: scopes must be send, read or admin joined by +,"
                             f" got {scopes!r}") from None
        if name.lower() in RESERVED_NAMES:
            raise ValueError(f"{where}: {name!r} is the source of kirim's own messages"
                             f" ({', '.join(sorted(RESERVED_NAMES))} are reserved): a key of that"
                             " name would own them; choose another name")
        entries.append(KeyEntry(name, bytes.fromhex(digest), granted))
    return entries


class KeyPolicy(BaseModel):
    """Per-key limits (KIRIM_API_KEY_POLICIES); None means the deployment's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_s: float | None = Field(default=None, gt=0, description="messages per second")
    burst: int | None = Field(default=None, ge=1, description="messages at once above the rate")
    countries: list[str] | None = Field(
        default=None, description='ISO 3166 regions a message may go to ("ID", "MY"; "*" for any)')
    groups: list[str] = Field(default_factory=list,
                              description='address-book groups it may send to ("*": any)')
    callback_hosts: list[str] = Field(
        default_factory=list, description='hosts its callback_url may name ("*.example.com"'
        " for subdomains); empty: any public host")
    callback_http: bool = Field(default=False,
                                description="allow http:// callback URLs (development)")
    dr_callback_url: str | None = Field(
        default=None, description="NusaSMS's 'Call Back API URL': drop-in messages' delivery"
        " reports are sent there as NusaSMS does (GET ref_no, status, sent_date, err_code)")

    @field_validator("dr_callback_url")
    @classmethod
    def _dr_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("countries")
    @classmethod
    def _regions(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return [check_region(v) for v in value]

    @field_validator("callback_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        hosts = [h.strip().lower().rstrip(".") for h in value]
        bad = [h for h in hosts if not _HOST.fullmatch(h)]
        if bad:
            raise ValueError(f"not host names: {bad!r} (a name like hooks.example.com or"
                             " *.example.com, no scheme, port or path)")
        return hosts

    def allows_group(self, group: str) -> bool:
        """Whether this key may send to the address-book group `group`."""
        return "*" in self.groups or group in self.groups

    def allows_callback_host(self, host: str) -> bool:
        """Whether `host` is on the allowlist (an empty allowlist allows any public host)."""
        if not self.callback_hosts:
            return True
        host = host.lower().rstrip(".")
        return any(host == h or (h.startswith("*.") and host.endswith(h[1:]))
                   for h in self.callback_hosts)


def check_region(value: str) -> str:
    """An ISO 3166 alpha-2 region phonenumbers knows (upper-cased), or "*"; else ValueError."""
    region = value.strip().upper()
    if region != "*" and region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a region code (ISO 3166 alpha-2 such as ID, MY, SG)")
    return region


def parse_callback_secrets(raw: str) -> dict[str, list[bytes]]:
    """KIRIM_CALLBACK_SECRETS as {key name: [secret bytes, newest first]}; ValueError if bad."""
    found: dict[str, list[bytes]] = {}
    for n, entry in enumerate(filter(None, (e.strip() for e in raw.split(","))), start=1):
        name, _, secrets = entry.partition(":")
        if not KEY_NAME.fullmatch(name):
            raise ValueError(f"entry {n}: must be name:whsec_…[|whsec_…] with a key name")
        if name in found:
            raise ValueError(f"entry {n} ({name!r}): the name is given twice")
        values = [s.strip() for s in secrets.split("|") if s.strip()]
        if not 1 <= len(values) <= 2:
            raise ValueError(f"entry {n} ({name!r}): one secret, or two during a rotation")
        found[name] = [decode_secret(v, f"entry {n} ({name!r})") for v in values]
    return found


def decode_secret(value: str, where: str = "secret") -> bytes:
    """The bytes of a `whsec_<base64>` secret (at least 24 of them), or ValueError."""
    if not value.startswith(SECRET_PREFIX):
        raise ValueError(f"{where}: a secret must look like whsec_<base64>; make one with"
                         " `kirim keys secret`")
    try:
        key = base64.b64decode(value.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: the part after whsec_ is not base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"{where}: a secret must hold at least {MIN_SECRET_BYTES} random"
                         f" bytes, this one has {len(key)}")
    return key


class NotAllowed(InvalidMessage):
    """A valid message this key's policy refuses; `rule` is countries, groups or callbacks."""

    def __init__(self, field: str, reason: str, rule: str) -> None:
        super().__init__(field, reason)
        self.rule = rule


def destination_region(number: str) -> str:
    """The ISO region of a normalised number (`6281…` → "ID"); "ZZ" when unknown."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse("+" + number)) or "ZZ"
    except phonenumbers.NumberParseException:
        return "ZZ"


def policy_refusal(job: Job, key: str, policy: KeyPolicy, allow_private: bool
                   ) -> NotAllowed | None:
    """Why `key`'s policy refuses this job (an InvalidMessage naming the field), or None."""
    countries = policy.countries or ["ID"]
    if job.to is not None and "*" not in countries:
        region = destination_region(job.to)
        if region not in countries:
            return NotAllowed("to", f"goes to {region}; key {key!r} may send to"
                              f" {', '.join(countries)} only. Ask an operator to add the"
                              " country to the key's policy (KIRIM_API_KEY_POLICIES)",
                              "countries")
    if job.group is not None and not policy.allows_group(job.group):
        return NotAllowed("group", f"key {key!r} may not send to this group; groups are"
                          " allowed per key in KIRIM_API_KEY_POLICIES", "groups")
    if job.callback_url is not None:
        return _callback_refusal(job.callback_url, key, policy, allow_private)
    return None


def _callback_refusal(url: str, key: str, policy: KeyPolicy, allow_private: bool
                      ) -> NotAllowed | None:
    try:
        parsed = httpx.URL(url)
        host = parsed.host
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:  # idna errors are ValueErrors
        return NotAllowed("callback_url", f"is not a usable URL ({type(exc).__name__}):"
                          " give an https:// URL with a host name", "callbacks")
    if not host:
        return NotAllowed("callback_url", "has no host: give an https:// URL with a host name",
                          "callbacks")
    if parsed.scheme != "https" and not policy.callback_http:
        return NotAllowed("callback_url", f"must be https:// (key {key!r} is not allowed"
                          " plain http callbacks)", "callbacks")
    if not allow_private and (problem := literal_host_problem(url)) is not None:
        return NotAllowed("callback_url", f"points inside the network: {problem}."
                          " Callbacks go only to public addresses", "callbacks")
    if not policy.allows_callback_host(host):
        return NotAllowed("callback_url", f"host {host} is not on key {key!r}'s"
                          f" callback allowlist ({', '.join(policy.callback_hosts)})",
                          "callbacks")
    return None


def callback_url_refusal(url: str, key: str, policy: KeyPolicy, allow_private: bool
                         ) -> NotAllowed | None:
    """Why `key`'s policy refuses `url` as a callback URL (scheme, address, host), or None."""
    return _callback_refusal(url, key, policy, allow_private)
