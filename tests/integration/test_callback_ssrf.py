"""Callbacks cannot reach inside (issue 14): the guarded client of worker/safe_http.py with a
resolver the test controls, then real worker processes refusing internal addresses and URLs
their key's policy forbids.

The client tests put the name `localhost` in the URL and let the test's resolver say where it
points. A live receiver listens on 127.0.0.1 at that port: if the guard were bypassed, or the
name looked up a second time by the system, the connection would reach it and the test would
see the request. `Recording` is the real PinnedBackend that also notes every address it opens
a socket to, and never opens one off this machine (a test does not call the Internet).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from producer.client import KirimClient
from producer.core.contract import State
from producer.core.keys import Keys
from tests.support.processes import free_port
from tests.support.receiver import Receiver, all_posted_in_order, life, serving_receiver
from tests.support.settings import settings_from_env
from tests.support.waiting import wait_for, wait_states
from tests.support.workers import Workers
from worker.safe_http import AddressRefused, PinnedBackend, guarded_client

pytestmark = pytest.mark.timeout(120)

KEYS = Keys()
PUBLIC = "93.184.215.14"  # a public address (example.com's); never actually connected to


class Resolver:
    """A resolver the test controls: each call answers the next list (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


class Recording(PinnedBackend):
    """The real backend, noting each address it opens a socket to; off-machine ones fail."""

    def __init__(self, resolver: Callable[[str, int], list[str]], allow_private: bool = False
                 ) -> None:
        super().__init__(resolver, allow_private)
        self.opened: list[str] = []

    def open(self, address: str, port: int, *args: Any) -> httpcore.NetworkStream:
        self.opened.append(address)
        if address != "127.0.0.1":
            raise httpcore.ConnectError(f"test: not connecting to {address} off this machine")
        return super().open(address, port, *args)


@pytest.fixture
def live() -> Iterator[Receiver]:
    """The receiver a refused connection would have reached: 127.0.0.1, a free port."""
    with serving_receiver() as rec:
        yield rec


def port_of(receiver: Receiver) -> int:
    return int(httpx.URL(receiver.base).port or 0)


INTERNAL = {
    "loopback": ["127.0.0.1"],
    "private 10/8": ["10.1.2.3"],
    "metadata": ["169.254.169.254"],
    "alibaba metadata": ["100.100.100.200"],
    "ipv6 loopback": ["::1"],
    "ipv4-mapped loopback": ["::ffff:127.0.0.1"],
    "ipv6 link-local": ["fe80::1"],
    "aws ipv6 metadata": ["fd00:ec2::254"],
    "one internal among public": [PUBLIC, "10.0.0.7"],
}


@pytest.mark.parametrize("addresses", INTERNAL.values(), ids=INTERNAL.keys())
def test_a_name_resolving_inside_is_refused_without_a_connection(
        live: Receiver, addresses: list[str]) -> None:
    resolver = Resolver(addresses)
    backend = Recording(resolver)
    with guarded_client(2.0, backend) as client, pytest.raises(AddressRefused) as refused:
        client.post(f"http://localhost:{port_of(live)}/hook?token=t0p", content=b"{}")
    assert resolver.calls == [("localhost", port_of(live))]  # the guard did the lookup
    assert backend.opened == [], "a socket was opened to a refused address"
    assert live.hits == []
    assert str(refused.value).startswith("localhost resolves to")
    assert "t0p" not in str(refused.value) and "/hook" not in str(refused.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "10.0.0.1",
                                  "169.254.169.254", "[fe80::1]"])
def test_an_internal_ip_literal_is_refused_without_a_lookup(live: Receiver, host: str) -> None:
    resolver = Resolver([PUBLIC])
    backend = Recording(resolver)
    with guarded_client(2.0, backend) as client, pytest.raises(AddressRefused):
        client.post(f"http://{host}:{port_of(live)}/hook", content=b"{}")
    assert resolver.calls == [] and backend.opened == [] and live.hits == []


def test_the_system_resolver_is_the_default_and_localhost_is_refused(live: Receiver) -> None:
    with guarded_client(2.0) as client, pytest.raises(AddressRefused, match="loopback"):
        client.post(f"http://localhost:{port_of(live)}/hook", content=b"{}")
    assert live.hits == []


def test_dns_rebinding_cannot_switch_the_checked_address(live: Receiver) -> None:
    # Public when checked, loopback on any later lookup: a client that checks, then connects
    # by name, would reach the live receiver.
    resolver = Resolver([PUBLIC], ["127.0.0.1"])
    backend = Recording(resolver)
    url = f"http://localhost:{port_of(live)}/hook"
    with guarded_client(2.0, backend) as client:
        with pytest.raises(httpx.ConnectError, match="off this machine"):
            client.post(url, content=b"{}")
        assert backend.opened == [PUBLIC], "the connection did not go to the checked address"
        assert len(resolver.calls) == 1, "the name was looked up again after the check"
        # The next connection looks the name up afresh, and is refused.
        with pytest.raises(AddressRefused, match="loopback"):
            client.post(url, content=b"{}")
    assert backend.opened == [PUBLIC] and len(resolver.calls) == 2
    assert live.hits == []


def test_allow_private_reaches_the_address_checked_under_the_original_name(
        live: Receiver) -> None:
    backend = Recording(Resolver(["127.0.0.1"]), allow_private=True)
    with guarded_client(2.0, backend) as client:
        reply = client.post(f"http://hooks.test:{port_of(live)}/hook", content=b"{}")
    assert reply.status_code == 200 and backend.opened == ["127.0.0.1"]
    assert live.hits[0]["headers"]["host"] == f"hooks.test:{port_of(live)}"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for hooks.test (cert, key), made by the openssl CLI."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=hooks.test", "-addext", "subjectAltName=DNS:hooks.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_tls_names_the_host_and_verifies_its_certificate_not_the_address(
        certificate: tuple[Path, Path]) -> None:
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    with serving_receiver(tls=certificate) as tls:
        port = port_of(tls)
        backend = Recording(Resolver(["127.0.0.1"]), allow_private=True)
        with guarded_client(2.0, backend, verify=trust) as client:
            reply = client.post(f"https://hooks.test:{port}/hook", content=b"{}")
            assert reply.status_code == 200
            # Another name pinned to the same address: the certificate is not for it.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                client.post(f"https://other.test:{port}/hook", content=b"{}")
        assert tls.server_names[0] == "hooks.test"  # SNI: the name, not 127.0.0.1
        assert [h["headers"]["host"] for h in tls.hits] == [f"hooks.test:{port}"]
    assert backend.opened == ["127.0.0.1", "127.0.0.1"]


def test_redirects_are_not_followed_and_proxies_in_the_environment_are_not_used(
        live: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    with serving_receiver() as proxy, serving_receiver(status=307, location=live.url) as hop:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                     "all_proxy"):
            monkeypatch.setenv(name, proxy.base)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        with httpx.Client() as plain:  # the control: a default client obeys the environment
            plain.post(hop.url, content=b"{}")
        assert len(proxy.hits) == 1 and hop.hits == []
        backend = Recording(Resolver(["127.0.0.1"]), allow_private=True)
        with guarded_client(2.0, backend) as client:
            reply = client.post(hop.url, content=b"{}")
        assert reply.status_code == 307 and reply.headers["location"] == live.url
        assert len(hop.hits) == 1 and live.hits == [] and len(proxy.hits) == 1


# -- end to end: real workers, the drain and the guarded client together -----------------


def log_lines(workers: Workers, event: str) -> list[dict[str, Any]]:
    """Every JSON log line of every worker whose event is `event`."""
    found = []
    for path in sorted(workers.logdir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                entry = json.loads(line)
                if entry.get("event") == event:
                    found.append(entry)
    return found


def scrape(port: int) -> dict[str, float]:
    """kirim_status_callbacks_total by result, from a worker's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {s.labels["result"]: s.value for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name == "kirim_status_callbacks_total"}


# No DR event (a message's life ends at sent), and one failure would open a breaker.
QUIET = {"KIRIM_DR_FIRST_POLL_S": "600", "KIRIM_STATUS_CALLBACK_BREAKER_FAILURES": "1"}


def test_workers_refuse_internal_addresses_and_never_retry_them(
        kirim_env: dict[str, str], tmp_path: Path, redis: Redis, live: Receiver) -> None:
    env = {**kirim_env, **QUIET, "KIRIM_CALLBACK_ALLOW_PRIVATE": "false"}
    metrics = free_port()
    pool = Workers(env, tmp_path)
    port = port_of(live)
    urls = [f"http://127.0.0.1:{port}/hook?token=s3cr3t-query", f"http://localhost:{port}/hook",
            f"http://[::ffff:127.0.0.1]:{port}/hook"]
    try:
        pool.start(extra_env={"KIRIM_METRICS_PORT": str(metrics)})
        pool.beat()
        with KirimClient(settings_from_env(env), source="shop") as shop:
            ids = [shop.send_sms(f"62812555000{i}", "inside", callback_url=url)
                   for i, url in enumerate(urls)]
            wait_states(shop, ids, {State.SENT})
            events = sum(len(life(shop, mid)) for mid in ids)
            wait_for(lambda: redis.hget(KEYS.callback_stats, "refused") == str(events), 30,
                     f"{events} events refused")
        time.sleep(1.5)  # a refused event is never POSTed later
        counted = scrape(metrics)
    finally:
        pool.stop_all()
    assert live.hits == []
    assert redis.xlen(KEYS.events) == 0 and not redis.exists(KEYS.callback_attempts)
    assert redis.hget(KEYS.callback_stats, "dropped") is None
    assert not redis.exists(KEYS.callback_breaker(f"127.0.0.1:{port}")), "a refusal counted"
    assert not redis.exists(KEYS.callback_breaker(f"localhost:{port}")), "a refusal counted"
    lines = log_lines(pool, "status_callback_refused")
    assert len(lines) == events and {line["message_id"] for line in lines} == set(ids)
    reasons = {line["message_id"]: line["reason"] for line in lines}
    assert reasons[ids[0]] == "127.0.0.1 is a loopback address"
    assert reasons[ids[1]].startswith("localhost resolves to") and "loopback" in reasons[ids[1]]
    assert reasons[ids[2]] == "127.0.0.1 is a loopback address"  # the IPv4 inside the IPv6
    assert not [p.name for p in tmp_path.glob("*.log") if "s3cr3t-query" in p.read_text()]
    assert counted.get("refused") == events and "retry" not in counted


def test_workers_apply_each_keys_callback_policy(
        kirim_env: dict[str, str], tmp_path: Path, redis: Redis, live: Receiver) -> None:
    policies = {"shop": {"callback_http": True, "callback_hosts": ["127.0.0.1"]},
                "billing": {"callback_http": True, "callback_hosts": ["hooks.example.com"]},
                "python": {"callback_http": False}}
    env = {**kirim_env, **QUIET, "KIRIM_API_KEY_POLICIES": json.dumps(policies)}
    pool = Workers(env, tmp_path)
    try:
        pool.start()
        pool.beat()
        settings = settings_from_env(env)
        with KirimClient(settings, source="shop") as shop, \
                KirimClient(settings, source="billing") as billing, \
                KirimClient(settings, source="python") as python:
            allowed = shop.send_sms("6281255500001", "allowed", callback_url=live.url)
            off_list = billing.send_sms("6281255500002", "not listed", callback_url=live.url)
            plain = python.send_sms("6281255500003", "http", callback_url=live.url)
            wait_states(shop, [allowed, off_list, plain], {State.SENT})
            refused = len(life(shop, off_list)) + len(life(shop, plain))
            wait_for(lambda: all_posted_in_order(shop, live, [allowed]), 30, "shop's callbacks")
            wait_for(lambda: redis.hget(KEYS.callback_stats, "refused") == str(refused), 30,
                     f"{refused} events refused")
    finally:
        pool.stop_all()
    assert {json.loads(h["body"])["id"] for h in live.hits} == {allowed}
    assert all(h["status"] == 200 for h in live.hits)
    reasons = {line["message_id"]: line["reason"]
               for line in log_lines(pool, "status_callback_refused")}
    assert reasons == {
        off_list: "127.0.0.1 is not on the callback_hosts of key 'billing'",
        plain: "http:// is not allowed for key 'python' (https only)"}


def test_a_slow_lookup_or_many_dead_addresses_cost_one_connect_timeout() -> None:
    def slow(host: str, port: int) -> list[str]:
        time.sleep(3)
        return [PUBLIC]

    backend = Recording(slow)
    started = time.monotonic()
    with guarded_client(0.5, backend) as client, pytest.raises(httpx.ConnectTimeout):
        client.post("http://slow-dns.example/hook", content=b"{}")
    assert time.monotonic() - started < 1.5 and backend.opened == []
    many = Recording(Resolver([f"93.184.216.{n}" for n in range(1, 21)]))
    with guarded_client(0.5, many) as client, pytest.raises(httpx.ConnectError):
        client.post("http://many.example/hook", content=b"{}")
    assert len(many.opened) == 3  # MAX_ADDRESSES, not twenty
