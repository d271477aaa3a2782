"""The NusaSMS provider client: typed httpx calls, reply parsing, the status table.

No Celery, no Redis: callers inject an `httpx.Client` and decide from `.action`.
"""

from worker.nusasms.client import (
    COMMAND_PATH,
    SEND_GROUP_PATH,
    SEND_SMS_PATH,
    SEND_WA_PATH,
    NusaSMSClient,
    NusaSMSConfig,
    build_http_client,
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

__all__ = [
    "COMMAND_PATH",
    "DR_LETTERS",
    "OTP_SEND_OVERRIDES",
    "SEND_GROUP_PATH",
    "SEND_SMS_PATH",
    "SEND_WA_PATH",
    "STATUS_TABLE",
    "Action",
    "ClientMisconfigured",
    "Credits",
    "DeliveryReport",
    "DeliveryState",
    "GroupResult",
    "NusaSMSClient",
    "NusaSMSConfig",
    "NusaSMSError",
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
    "build_http_client",
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
