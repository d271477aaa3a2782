"""KIRIM_REDIS_SENTINELS and friends: validation that says what is wrong, the broker, RedBeat
and client options built from them, and no secret in anything Celery can show."""

from __future__ import annotations

import ssl

import pytest

from producer.core.broker import broker_transport_options, make_celery
from producer.core.durability import Durability, NotReplicated
from producer.core.errors import ConfigError
from producer.core.logs import secrets_of
from producer.core.redis_connect import (
    broker_url,
    broker_use_ssl,
    master_options,
    sentinel_options,
)
from producer.core.settings import load_settings
from worker.beat import redbeat_settings
from worker.broker_transport import transport_for

SENTINELS = "10.0.0.1:26379,sentinel-2:26380,[fd00::3]:26381"


@pytest.mark.parametrize(("value", "bad"), [
    ("10.0.0.1", "'10.0.0.1'"), ("host:port", "'host:port'"), ("h:0", "'h:0'"),
    ("h:70000", "'h:70000'"), (":26379", "':26379'"), ("h:26379,other", "'other'"),
])
def test_a_bad_sentinel_names_the_entry_and_the_form(value, bad):
    with pytest.raises(ConfigError, match=r"KIRIM_REDIS_SENTINELS: .*") as raised:
        load_settings(redis_sentinels=value)
    assert bad in str(raised.value) and "host:port" in str(raised.value)


def test_sentinels_are_parsed_with_ipv6():
    settings = load_settings(redis_sentinels=SENTINELS)
    assert settings.sentinel_nodes == [("10.0.0.1", 26379), ("sentinel-2", 26380),
                                       ("fd00::3", 26381)]
    assert load_settings().sentinel_nodes == []


def test_master_name_and_unix_socket_are_refused_with_what_to_do():
    with pytest.raises(ConfigError, match="KIRIM_REDIS_MASTER_NAME"):
        load_settings(redis_sentinels=SENTINELS, redis_master_name="my master")
    with pytest.raises(ConfigError, match=r"unix:// socket cannot be combined"):
        load_settings(redis_sentinels=SENTINELS, redis_url="unix:///run/redis.sock")


@pytest.mark.parametrize(("name", "value"), [("redis_min_replicas", -1),
                                             ("redis_wait_timeout_ms", 0)])
def test_durability_bounds(name, value):
    with pytest.raises(ConfigError, match=f"KIRIM_{name.upper()}"):
        load_settings(**{name: value})


def test_broker_url_lists_every_sentinel_with_credentials_in_the_first_only():
    settings = load_settings(redis_sentinels=SENTINELS, redis_url="redis://kirim:p%40ss@x/4")
    assert broker_url(settings) == ("sentinel://kirim:p%40ss@10.0.0.1:26379/4;"
                                    "sentinel://sentinel-2:26380/4;sentinel://[fd00::3]:26381/4")
    options = broker_transport_options(settings)
    assert options["master_name"] == "kirim"
    assert transport_for(True).endswith(":SentinelTransport")
    assert transport_for(False).endswith(":Transport")
    plain = load_settings(redis_url="redis://x:6379/0")
    assert broker_url(plain) == "redis://x:6379/0" and "master_name" not in \
        broker_transport_options(plain)


def test_tls_master_options_and_broker_ssl():
    settings = load_settings(redis_sentinels=SENTINELS,
                             redis_url="rediss://api:pw@ignored/2?ssl_ca_certs=/etc/ca.pem")
    master = master_options(settings)
    assert master == {"username": "api", "password": "pw", "db": 2, "ssl": True,
                      "ssl_ca_certs": "/etc/ca.pem"}
    assert broker_use_ssl(settings) == {"ssl_cert_reqs": ssl.CERT_REQUIRED,
                                        "ssl_ca_certs": "/etc/ca.pem"}
    assert sentinel_options(settings)["ssl"] is True
    app = make_celery(settings)
    assert app.conf.broker_use_ssl["ssl_cert_reqs"] == ssl.CERT_REQUIRED


def test_no_password_in_what_celery_shows():
    settings = load_settings(redis_sentinels=SENTINELS, redis_url="redis://u:master-pw-1@x/0",
                             redis_sentinel_password="sentinel-pw-1")
    beat = redbeat_settings(settings)
    shown = repr(beat) + repr(broker_transport_options(settings)) + settings.safe_redis_url
    assert "master-pw-1" not in shown and "sentinel-pw-1" not in shown
    assert beat["redbeat_redis_url"] == "redis-sentinel://kirim"
    options = beat["redbeat_redis_options"]
    assert options["sentinels"] == settings.sentinel_nodes and options["service_name"] == "kirim"
    assert options["credential_provider"].get_credentials() == ("u", "master-pw-1")
    assert options["sentinel_kwargs"]["credential_provider"].get_credentials() == \
        ("sentinel-pw-1",)
    assert "sentinel-pw-1" in secrets_of(settings)  # scrubbed from every log line
    assert "master-pw-1" not in settings.safe_redis_url
    assert "via Sentinels" in settings.safe_redis_url


def test_durability_from_settings():
    assert not Durability.from_settings(load_settings()).enabled
    durable = Durability.from_settings(load_settings(redis_min_replicas=2,
                                                     redis_wait_timeout_ms=250))
    assert durable == Durability(2, 250) and durable.enabled
    with pytest.raises(NotReplicated, match="1 replica"):
        durable.check(1)
    with pytest.raises(NotReplicated, match="no answer"):
        durable.check(RuntimeError("LOADING"))
    durable.check(2)
