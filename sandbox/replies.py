"""Reply bodies in the provider's shapes (spec §1.4), JSON or XML.

Send replies: ``{"results":[{"status":"0","messageid":"…","destination":"…"}]}`` or the XML
``<results><result>…</result></results>``; status and messageid are strings, and on error
messageid is "" while destination echoes what was sent. Flat objects (CREDITS, DR) are flat
JSON; in XML they use the same ``<results><result>`` wrapper as every other reply [decision].
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape

XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'
JSON_TYPE = "application/json"
XML_TYPE = "text/xml; charset=UTF-8"


def wants_json(output: str | None) -> bool:
    """True for output=json (any case); everything else gets the default XML."""
    return (output or "").lower() == "json"


def content_type(as_json: bool) -> str:
    """Content-Type of a reply in that format."""
    return JSON_TYPE if as_json else XML_TYPE


def dumps(data: Any) -> bytes:
    """Compact JSON, as the provider's examples are written."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _xml_fields(fields: dict[str, Any]) -> str:
    return "".join(f"<{k}>{escape(_scalar(v))}</{k}>" for k, v in fields.items())


def _scalar(value: Any) -> str:
    return "" if value is None else str(value)


def results(fields: dict[str, Any], as_json: bool) -> bytes:
    """One result in the results wrapper."""
    if as_json:
        return dumps({"results": [fields]})
    return f"{XML_HEAD}<results><result>{_xml_fields(fields)}</result></results>".encode()


def send_result(status: int, messageid: str, destination: str, as_json: bool) -> bytes:
    """The reply to a send: status and messageid as strings."""
    fields = {"status": str(status), "messageid": messageid, "destination": destination}
    return results(fields, as_json)


def group_result(status: int, campaign_name: str, group: str, as_json: bool) -> bytes:
    """The reply to a group send (campaign_name is "" on error)."""
    fields = {"status": str(status), "campaign_name": campaign_name, "group": group}
    return results(fields, as_json)


def flat(fields: dict[str, Any], as_json: bool) -> bytes:
    """A flat object (CREDITS, DR): plain JSON, or one wrapped result in XML."""
    if as_json:
        return dumps(fields)
    return results(fields, as_json=False)
