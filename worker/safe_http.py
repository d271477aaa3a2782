"""The HTTP client of status callbacks: it reaches public addresses only, pinned (issue 14).

A callback URL is written by a tenant, so the worker must not become a way into our own
network (SSRF). Checking the URL when it is accepted is not enough: a name can resolve to a
public address when it is checked and to 127.0.0.1 a moment later (DNS rebinding). So the
check happens where the connection is made:

- `PinnedBackend` is the httpcore network backend of the client. For every new connection it
  resolves the host itself (`resolver`: host, port -> IP strings; `socket.getaddrinfo` by
  default), refuses with `AddressRefused` if ANY address it got has an `address_problem`
  (loopback, private, link-local, metadata, multicast, reserved, and the IPv6 forms of them,
  IPv4-mapped included), and then connects to one of exactly the addresses it checked. The
  name is never looked up a second time.
- The URL is unchanged, so the Host header names the host, and TLS sends that name as SNI and
  verifies the certificate against it: pinning the address does not weaken TLS.
- `guarded_client` builds the httpx.Client on it: no redirects followed, no proxies, netrc or
  certificate paths from the environment (trust_env=False).

A pooled keep-alive connection is reused only for its own origin, and it was checked when it
was opened. `allow_private` (KIRIM_CALLBACK_ALLOW_PRIVATE, development and tests) skips the
address check but still pins. Scheme and per-key host allowlist are the drain's business
(worker/callbacks.py); this module knows only addresses.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import httpcore
import httpx

from producer.core.addresses import address_problem

Resolver = Callable[[str, int], list[str]]
RESOLVE_S = 5.0  # a lookup's limit when the request gives no connect timeout
MAX_ADDRESSES = 3  # addresses of one name tried per connection
_RESOLVING = ThreadPoolExecutor(max_workers=8, thread_name_prefix="callback-dns")


class AddressRefused(Exception):
    """The callback host is, or resolves to, an address callbacks may not reach.

    Not an httpx.HTTPError on purpose: a refusal is final, never retried nor counted by the
    breaker. The message names the host and the address, never the URL (its query string may
    hold a token).
    """


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`, in its order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _literal(host: str) -> str | None:
    """`host` as an IP address string when it is one (IPv6 without brackets), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


class PinnedBackend(httpcore.NetworkBackend):
    """Resolves, checks every address, then connects to a checked address: never by name."""

    def __init__(self, resolver: Resolver = system_resolver, allow_private: bool = False
                 ) -> None:
        self.resolver = resolver
        self.allow_private = allow_private
        self._sync = httpcore.SyncBackend()

    def checked_addresses(self, host: str, port: int, timeout: float | None = None
                          ) -> list[str]:
        """The addresses a connection to host:port may use; AddressRefused if any is not
        public (unless allow_private), httpcore.ConnectError if the name does not resolve,
        httpcore.ConnectTimeout if resolving takes longer than `timeout`."""
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            # getaddrinfo has no timeout of its own: a tenant's slow DNS must not hold a
            # drain thread longer than a connect would. The lookup runs on a small shared
            # pool; one that overruns is abandoned (it cannot be cancelled) and the pool's
            # size bounds how many can hang at once.
            lookup = _RESOLVING.submit(self.resolver, host, port)
            try:
                addresses = [str(a) for a in lookup.result(timeout=timeout or RESOLVE_S)]
            except FutureTimeout:
                raise httpcore.ConnectTimeout(f"resolving {host} took over"
                                              f" {timeout or RESOLVE_S:g} s") from None
            except (OSError, UnicodeError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
            if not addresses:
                raise httpcore.ConnectError(f"{host} resolves to no address")
        if not self.allow_private:
            for address in addresses:
                problem = address_problem(address)
                if problem is not None:
                    shown = "" if literal is not None else f"{host} resolves to "
                    raise AddressRefused(f"{shown}{problem}")
        return addresses

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        deadline = time.monotonic() + (timeout or RESOLVE_S)
        addresses = self.checked_addresses(host, port, timeout)
        # At most MAX_ADDRESSES tries, sharing one connect timeout: a name answering with
        # twenty unreachable addresses costs one timeout, not twenty.
        for address in addresses[:MAX_ADDRESSES]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout(f"connecting to {host} timed out")
            try:
                return self.open(address, port, left, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc  # the next checked address, as create_connection would
        assert last is not None  # checked_addresses never returns an empty list
        raise last

    def open(self, address: str, port: int, timeout: float | None, local_address: str | None,
             socket_options: Iterable[httpcore.SOCKET_OPTION] | None) -> httpcore.NetworkStream:
        """One TCP connection to an IP address already checked (no lookup: it is numeric)."""
        return self._sync.connect_tcp(address, port, timeout, local_address, socket_options)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                            ) -> httpcore.NetworkStream:
        raise AddressRefused("a callback never goes to a unix socket")

    def sleep(self, seconds: float) -> None:
        self._sync.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport, its connection pool on a PinnedBackend, proxies never used."""

    def __init__(self, backend: PinnedBackend, limits: httpx.Limits,
                 verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self.backend = backend
        # The same pool HTTPTransport builds (no proxy), with our network backend: httpx has
        # no public parameter for it. test_callback_ssrf.py fails if this stops taking effect.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=backend)


def guarded_client(timeout_s: float, backend: PinnedBackend | None = None, *,
                   max_connections: int = 32, verify: ssl.SSLContext | bool = True
                   ) -> httpx.Client:
    """The status callbacks' client: public addresses only (a PinnedBackend: the system
    resolver, no private addresses, unless given another), no redirects, no proxies."""
    limits = httpx.Limits(max_connections=max_connections)
    transport = GuardedTransport(backend or PinnedBackend(), limits, verify)
    return httpx.Client(transport=transport, trust_env=False, follow_redirects=False,
                        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)))
