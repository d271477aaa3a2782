"""The provider's endpoints (spec §1.1-1.6): params in, an `Answer` out.

Parameter names are case-sensitive, as the spec spells them: SMS and group sends and
commands take `user`; WhatsApp takes `username` or `user`. Group sends go to
`/api/v3/sendsms/group` [decision, §1.3]; a group error replies in the group shape with an
empty campaign_name. `cmd=CREDITS` answers the pool named by `type` (§1.6): `sms` (also
when `type` is missing or empty) or `wa`, in any case; another type answers -22 in the
results shape [decision: the spec shows only type=sms].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandbox import magic, replies, rules, segments
from sandbox.push import report_fields
from sandbox.state import PRODUCTS

if TYPE_CHECKING:
    from sandbox.app import Sandbox

Params = dict[str, str]
WA_SEGMENTS_ENCODING = "whatsapp"


@dataclass(slots=True)
class Answer:
    """An endpoint's answer before faults: body, status for the log, magic effects."""

    body: bytes
    status: str
    as_json: bool
    delay_s: float = 0.0
    abort: bool = False


def is_yes(value: str | None) -> bool:
    """True for the truthy spellings of a flag (True, true, 1, yes, y)."""
    return (value or "").lower() in {"true", "1", "yes", "y"}


def sms_send(gsm: str, params: Params) -> rules.Send:
    """An SMS send from its params: otp=Y, unicode=True (or the older encoding=U), sender."""
    unicode = is_yes(params.get("unicode")) or params.get("encoding", "").upper() == "U"
    return rules.Send("sms", gsm, params.get("SMSText", ""),
                      otp=params.get("otp", "").upper() == "Y", unicode=unicode,
                      sender=params.get("sender"))


def send_error(status: int, destination: str, as_json: bool) -> Answer:
    """A send refused with status: empty messageid, destination echoed."""
    return Answer(replies.send_result(status, "", destination, as_json), str(status), as_json)


def send_sms(sb: Sandbox, params: Params) -> Answer:
    """/api/v3/sendsms/plain."""
    as_json = replies.wants_json(params.get("output"))
    gsm = params.get("GSM", "")
    if not rules.credentials_ok(sb.config, params.get("user"), params.get("password")):
        return send_error(rules.INVALID_USER_OR_PASS, gsm, as_json)
    return send_one(sb, sms_send(gsm, params), as_json)


def send_wa(sb: Sandbox, params: Params) -> Answer:
    """/api/v3/sendwa/plain (accepts `username` or `user`)."""
    as_json = replies.wants_json(params.get("output"))
    gsm = params.get("GSM", "")
    user = params.get("username", params.get("user"))
    if not rules.credentials_ok(sb.config, user, params.get("password")):
        return send_error(rules.INVALID_USER_OR_PASS, gsm, as_json)
    return send_one(sb, rules.Send("wa", gsm, params.get("text", "")), as_json)


def send_one(sb: Sandbox, send: rules.Send, as_json: bool) -> Answer:
    """Check one send against the rules; accept it or answer its status."""
    found = magic.parse(send.gsm)
    check = rules.Check(sb.state, sb.config, send, found, text_segments(sb, send),
                        sb.state.clock.now())
    status = rules.check(check)
    if status != rules.OK:
        return dataclasses.replace(send_error(status, send.gsm, as_json), delay_s=found.latency_s)
    message = rules.accept(check, sb.ids.new())
    body = replies.send_result(0, message.messageid, send.gsm, as_json)
    delay_s = found.latency_s + (sb.config.hang_s if found.hang else 0.0)
    return Answer(body, "0", as_json, delay_s=delay_s, abort=found.drop)


def text_segments(sb: Sandbox, send: rules.Send) -> segments.Segments:
    """Parts of an SMS by the provider's counting; a WhatsApp message is always one."""
    if send.channel == "wa":
        return segments.Segments(WA_SEGMENTS_ENCODING, len(send.text), 1)
    return segments.count(send.text, send.unicode, sb.config.newline_counts_double)


def send_group(sb: Sandbox, params: Params) -> Answer:
    """/api/v3/sendsms/group: one message per member of a configured group."""
    as_json = replies.wants_json(params.get("output"))
    name = params.get("group", "")
    if not rules.credentials_ok(sb.config, params.get("user"), params.get("password")):
        return group_error(rules.INVALID_USER_OR_PASS, name, as_json)
    members = sb.config.groups.get(name) or []
    if not members:
        return group_error(rules.GROUP_NOT_FOUND, name, as_json)
    send = sms_send(members[0], params)
    check = rules.Check(sb.state, sb.config, send, magic.NONE, text_segments(sb, send),
                        sb.state.clock.now())
    status = rules.check_group(check, len(members))
    if status != rules.OK:
        return group_error(status, name, as_json)
    for gsm in members:
        member = dataclasses.replace(send, gsm=gsm)
        letter_only = magic.Magic(dr_letter=magic.parse(gsm).dr_letter)
        rules.accept(dataclasses.replace(check, send=member, magic=letter_only), sb.ids.new(),
                     group=name)
    campaign = f"Group-Api-Campaign-{int(check.now_s)}"
    return Answer(replies.group_result(0, campaign, name, as_json), "0", as_json)


def group_error(status: int, name: str, as_json: bool) -> Answer:
    """A group send refused with status."""
    return Answer(replies.group_result(status, "", name, as_json), str(status), as_json)


def command(sb: Sandbox, params: Params) -> Answer:
    """/api/command: cmd=CREDITS or cmd=DR; anything else is -22."""
    as_json = replies.wants_json(params.get("output"))
    if not rules.credentials_ok(sb.config, params.get("user"), params.get("password")):
        return send_error(rules.INVALID_USER_OR_PASS, "", as_json)
    cmd = params.get("cmd", "").upper()
    sb.state.stats.commands[cmd or "(none)"] += 1
    if cmd == "CREDITS":
        return credits(sb, params.get("type") or "sms", as_json)
    if cmd == "DR":
        return delivery_report(sb, params.get("ref_no", ""), as_json)
    return send_error(rules.SYNTAX_ERROR, "", as_json)


def credits(sb: Sandbox, product: str, as_json: bool) -> Answer:
    """The balance of one product's pool and its expiry date, flat; -22 for another type."""
    if product.lower() not in PRODUCTS:
        return send_error(rules.SYNTAX_ERROR, "", as_json)
    pool = sb.state.account.pool(product.lower())
    value: int | str = str(pool.credits) if sb.config.credits_as_string else pool.credits
    fields = {"value": value, "expiredDate": pool.expired_date.isoformat()}
    return Answer(replies.flat(fields, as_json), "0", as_json)


def delivery_report(sb: Sandbox, ref_no: str, as_json: bool) -> Answer:
    """The report of one message, flat; -22 for an unknown ref_no."""
    message = sb.state.messages.get(ref_no)
    if message is None:
        return send_error(rules.SYNTAX_ERROR, "", as_json)
    fields = report_fields(message, sb.state.clock.now())
    return Answer(replies.flat(fields, as_json), "0", as_json)
