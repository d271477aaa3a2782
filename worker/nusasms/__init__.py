"""The NusaSMS provider client: typed httpx calls, reply parsing, the status table.

No Celery, no Redis: callers inject the HTTP client (`build_send_client`, `build_http_client`)
and decide from `.action`.
"""

from worker.nusasms.client import (
    COMMAND_PATH,
    SEND_GROUP_PATH,
    SEND_SMS_PATH,
    SEND_WA_PATH,
    NusaSMSClient,
    NusaSMSConfig,
    build_http_client,
    build_send_client,
)
from worker.nusasms.errors import (
    ClientMisconfigured,
    NusaSMSError,
    OutcomeUnknown,
    ProtocolError,
    ProviderHTTPError,
    ProviderRejected,
    ProviderThrottled,
    ReplyLost,
    RequestNotSent,
    scrub,
)
from worker.nusasms.gsm7 import is_gsm7, needs_unicode
from worker.nusasms.replies import (
    parse_credits,
    parse_delivery_report,
    parse_group_reply,
    parse_send_reply,
    report_from_fields,
)
from worker.nusasms.results import Credits, DeliveryReport, GroupResult, SendResult
from worker.nusasms.status import (
    DR_LETTERS,
    OTP_SEND_OVERRIDES,
    STATUS_TABLE,
    Action,
    DeliveryState,
    Scope,
    StatusInfo,
    lookup,
    lookup_letter,
)
from worker.nusasms.transport import httpx_errors
from worker.nusasms.v1 import (
    DEFAULT_V1_URL,
    MAX_MEDIA_BYTES,
    ApiKeyInfo,
    Balances,
    NusaSMSV1Client,
    V1Config,
    WAStatus,
)

__all__ = [
    "COMMAND_PATH",
    "DEFAULT_V1_URL",
    "DR_LETTERS",
    "MAX_MEDIA_BYTES",
    "OTP_SEND_OVERRIDES",
    "SEND_GROUP_PATH",
    "SEND_SMS_PATH",
    "SEND_WA_PATH",
    "STATUS_TABLE",
    "Action",
    "ApiKeyInfo",
    "Balances",
    "ClientMisconfigured",
    "Credits",
    "DeliveryReport",
    "DeliveryState",
    "GroupResult",
    "NusaSMSClient",
    "NusaSMSConfig",
    "NusaSMSError",
    "NusaSMSV1Client",
    "OutcomeUnknown",
    "ProtocolError",
    "ProviderHTTPError",
    "ProviderRejected",
    "ProviderThrottled",
    "ReplyLost",
    "RequestNotSent",
    "Scope",
    "SendResult",
    "StatusInfo",
    "V1Config",
    "WAStatus",
    "build_http_client",
    "build_send_client",
    "httpx_errors",
    "is_gsm7",
    "lookup",
    "lookup_letter",
    "needs_unicode",
    "parse_credits",
    "parse_delivery_report",
    "parse_group_reply",
    "parse_send_reply",
    "report_from_fields",
    "scrub",
]
