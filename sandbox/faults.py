"""Random faults of the global knobs, drawn from one seeded generator.

Every provider request draws exactly one number for the fault (plus one for the latency
jitter when jitter is set, and one for the variant of a 5xx or malformed reply), so a given
`seed` and request sequence reproduce the same faults. Rates are checked in this order and
add up: 5xx, timeout, malformed, 429, drop after accept (a sum over 1 starves the later ones).

| fault              | what the client sees                                  | accepted? |
|--------------------|-------------------------------------------------------|-----------|
| `5xx`              | HTTP 500, 502 or 503 with an HTML page                | no        |
| `timeout`          | nothing for `hang_s`, then the connection is closed   | no        |
| `malformed`        | HTTP 200 with the reply cut in half, or an HTML page  | no        |
| `429`              | HTTP 429, `Retry-After: 1`                            | no        |
| `drop_after_accept`| the request is processed, then the connection aborted | if valid  |
"""

from __future__ import annotations

import random

from sandbox.config import Config
from sandbox.http import Reply

FAULTS = ("5xx", "timeout", "malformed", "429", "drop_after_accept")
_HTML = ("<!DOCTYPE html><html><head><title>{code} {title}</title></head>"
         "<body><center><h1>{code} {title}</h1></center><hr><center>nginx</center>"
         "</body></html>")
_5XX = ((500, "Internal Server Error"), (502, "Bad Gateway"),
        (503, "Service Temporarily Unavailable"))


class Faults:
    """Draws faults and latency for provider requests."""

    def __init__(self, seed: int | None) -> None:
        self.rng = random.Random(seed)

    def reseed(self, seed: int | None) -> None:
        """Start the draws again from seed."""
        self.rng = random.Random(seed)

    def draw(self, config: Config) -> str | None:
        """The fault for this request, or None."""
        roll = self.rng.random()
        rates = (config.rate_5xx, config.rate_timeout, config.rate_malformed, config.rate_429,
                 config.rate_drop_after_accept)
        edge = 0.0
        for name, rate in zip(FAULTS, rates, strict=True):
            edge += rate
            if roll < edge:
                return name
        return None

    def latency_s(self, config: Config) -> float:
        """latency_ms ± a uniform jitter of latency_jitter_ms, never below 0, in seconds."""
        jitter = config.latency_jitter_ms
        spread = self.rng.uniform(-jitter, jitter) if jitter else 0.0
        return max(0.0, config.latency_ms + spread) / 1000

    def server_error(self) -> Reply:
        """An HTTP 5xx with an HTML body, as a proxy in front of the API would send."""
        code, title = self.rng.choice(_5XX)
        return Reply(code, _HTML.format(code=code, title=title).encode(), "text/html")

    def malformed(self, proper: Reply) -> Reply:
        """HTTP 200 with either the proper body cut in half or an HTML error page."""
        if self.rng.random() < 0.5:
            return Reply(200, proper.body[: len(proper.body) // 2], proper.content_type)
        page = _HTML.format(code=200, title="Maintenance").encode()
        return Reply(200, page, "text/html")


def too_many_requests() -> Reply:
    """HTTP 429 asking the client to wait a second."""
    return Reply(429, b'{"error":"too many requests"}', "application/json",
                 headers=[("Retry-After", "1")])


def hang_then_close(hang_s: float) -> Reply:
    """Nothing for hang_s, then the connection is closed without a reply."""
    return Reply(abort=True, delay_s=hang_s)
