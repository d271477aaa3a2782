"""The API v1.0 key check a worker makes at start (`GET /auth/api_key`), before any send.

A key NusaSMS refuses stops the worker loudly (ConfigError → SystemExit in worker_init); a
provider that cannot be reached right now does not (the send path handles that per message,
and the circuit stops WhatsApp if the key turns out wrong).
"""

from __future__ import annotations

import structlog

from producer.core.errors import ConfigError
from producer.core.settings import Settings
from worker.nusasms import (
    Action,
    NusaSMSError,
    NusaSMSV1Client,
    ProviderRejected,
    V1Config,
    build_http_client,
)

log = structlog.get_logger("kirim.key_check")


def check_wa_key(settings: Settings) -> None:
    """Ask NusaSMS whether KIRIM_NUSASMS_API_KEY works, when WhatsApp goes through v1.0."""
    if settings.wa_api_resolved != "v1":
        return
    http = build_http_client(settings.nusasms_connect_timeout_s,
                             settings.nusasms_read_timeout_s, 1)
    with http:
        client = NusaSMSV1Client(V1Config(settings.nusasms_v1_url, settings.api_key_value), http)
        try:
            info = client.check_key()
        except ProviderRejected as exc:
            if exc.action != Action.PAUSE:
                log.warning("wa_key_check_failed", error=str(exc))
                return
            raise ConfigError(
                f"NusaSMS API v1.0 refused KIRIM_NUSASMS_API_KEY at {settings.nusasms_v1_url}"
                f" ({exc.status.code} {exc.status.name}): set the API key from the NusaSMS web"
                " app (and check KIRIM_NUSASMS_V1_URL), or KIRIM_WA_API=v3 to send WhatsApp"
                " through the legacy API"
            ) from None
        except NusaSMSError as exc:
            log.warning("wa_key_check_failed", error=str(exc),
                        hint="NusaSMS API v1.0 could not be asked now; WhatsApp sends go ahead")
            return
    log.info("wa_key_checked", userid=info.userid, api_url=settings.nusasms_v1_url)
