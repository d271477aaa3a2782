"""A message's delivery report in NusaSMS's shape (`ref_no`, `status`, `sent_date`, `err_code`).

The drop-in's `cmd=DR` answers it, and a key's NusaSMS-style DR callback sends it, built from
kirim's own record of the message (docs/nusasms-api.md §1.6–1.8).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from producer.core.contract import State
from producer.core.records import MessageRecord

JAKARTA = timezone(timedelta(hours=7), "WIB")  # NusaSMS writes dates in Jakarta time
FIELDS = ("ref_no", "status", "sent_date", "err_code")

# A message's state as the delivery-status letter NusaSMS reports (§1.7). Before a final
# report a message is pending (P); `sent` (and `unknown`, sent as far as anyone can tell)
# is S; a message kirim gave up on (`dead`) is F, with the provider's refusal as err_code.
_LETTERS = {State.DELIVERED: "D", State.UNDELIVERED: "U", State.FAILED: "F",
            State.REJECTED: "R", State.EXPIRED: "E", State.DEAD: "F", State.SENT: "S",
            State.UNKNOWN: "S", State.READ: "D"}  # read (WhatsApp, API v1.0): delivered


def report_fields(record: MessageRecord, ref_no: str) -> dict[str, str]:
    """The DR command's (and the DR callback's) fields for a message, from its state."""
    f = record.fields
    state = State(record.state) if record.state in State._value2member_map_ else None
    letter = _LETTERS.get(state, "P") if state is not None else "P"
    if state == State.SENT and f.get("dr_letter"):
        letter = f["dr_letter"]  # a pending letter the provider reported (P, S, Q, A…)
    if state == State.DEAD:
        err_code = f.get("last_code") or "1"
    else:
        err_code = f.get("dr_err_code") or ("0" if letter in ("D", "P", "S") else "1")
    return {"ref_no": ref_no, "status": letter, "sent_date": sent_date(record),
            "err_code": err_code}


def sent_date(record: MessageRecord) -> str:
    """When the message went to NusaSMS, as NusaSMS writes it (`2017-09-25 17:49:05.0`)."""
    reported = record.fields.get("dr_sent_date")
    if reported:
        return reported
    at = next((e.get("at") for e in record.timeline if e.get("state") == State.SENT), None)
    if not isinstance(at, int | float):
        return ""
    return datetime.fromtimestamp(at, JAKARTA).strftime("%Y-%m-%d %H:%M:%S") + ".0"
