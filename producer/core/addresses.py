"""Which network addresses a callback may reach: public ones only (no SSRF into our network).

Pure functions over `ipaddress`: the API refuses a URL whose host is literally an internal
address, and the worker checks every address a host name resolves to just before it connects
(worker/safe_http.py pins the connection to the address it checked).
"""

from __future__ import annotations

import ipaddress

import httpx

# Cloud metadata services not already inside a private or link-local range.
_METADATA = frozenset({ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
                       ipaddress.ip_address("fd00:ec2::254")})  # AWS IMDS over IPv6
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback",
                    "metadata", "metadata.google.internal"})


def address_problem(address: str) -> str | None:
    """Why a callback may not connect to this IP address, or None when it is public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if mapped is None and ip in _NAT64:  # DNS64: an IPv4 host reached over IPv6
            mapped = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if mapped is not None:
            return address_problem(str(mapped))
    kind = next((name for name, hit in (
        ("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
        ("private", ip.is_private), ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified), ("reserved", ip.is_reserved),
        ("metadata", ip in _METADATA), ("not globally routable", not ip.is_global),
    ) if hit), None)
    return None if kind is None else f"{ip} is a {kind} address"


def literal_host_problem(url: str) -> str | None:
    """Why `url`'s host is internal as written (an IP literal or a local name), or None.

    Host names are not resolved here: that happens, and is checked again, at send time.
    """
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL as exc:
        return f"not a usable URL: {exc}"
    if not host:
        return "has no host"
    lowered = host.lower().rstrip(".")
    if lowered in _NAMES or lowered.endswith((".localhost", ".internal", ".local")):
        return f"{host} is a local host name"
    try:
        ipaddress.ip_address(lowered)
    except ValueError:
        return _legacy_ipv4_problem(lowered)
    return address_problem(lowered)


def _legacy_ipv4_problem(host: str) -> str | None:
    """`2130706433`, `0x7f.1`, `127.1`: forms inet_aton reads as IPv4, refused outright."""
    parts = host.split(".")
    if all(p and (p.isdigit() or p.lower().startswith("0x")) for p in parts) and len(parts) <= 4:
        return f"{host} is a numeric address in a legacy form; write a host name"
    return None
