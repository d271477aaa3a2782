"""The drop-in's reply bodies, in NusaSMS's own shapes (docs/nusasms-api.md §1.3–1.8).

Send replies are `{"results":[{"status","messageid","destination"}]}` or the XML
`<results><result>…</result></results>`; flat objects (CREDITS, DR) are flat JSON, and in XML
one result in the same wrapper, as the sandbox answers. Always HTTP 200.
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape

from fastapi import Request, Response
from fastapi.responses import JSONResponse

XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'

# Characters XML 1.0 cannot carry at all (escaping does not help): a refused GSM is echoed
# back as the caller sent it, and a control character in it made the reply unparseable.
_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def wants_json(params: dict[str, str]) -> bool:
    """output=json (any case); anything else gets the provider's default, XML."""
    return params.get("output", "xml").lower() == "json"


def xml_text(value: object) -> str:
    """`value` as XML text, with characters XML cannot hold replaced by U+FFFD."""
    return escape(_XML_INVALID.sub("\ufffd", "" if value is None else str(value)))


def results(request: Request, params: dict[str, str], fields: dict[str, Any]) -> Response:
    """One result in the `results` wrapper; notes `status` as the request's outcome."""
    request.state.outcome = str(fields.get("status", ""))
    if wants_json(params):
        return JSONResponse({"results": [fields]})
    inner = "".join(f"<{k}>{xml_text(v)}</{k}>" for k, v in fields.items())
    return Response(f"{XML_HEAD}<results><result>{inner}</result></results>",
                    media_type="application/xml")


def flat(request: Request, params: dict[str, str], fields: dict[str, Any]) -> Response:
    """A flat object (CREDITS, DR): plain JSON, or one wrapped result in XML."""
    if wants_json(params):
        request.state.outcome = "0"
        return JSONResponse(fields)
    response = results(request, params, fields)
    request.state.outcome = "0"
    return response
