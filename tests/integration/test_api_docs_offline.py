"""/docs works without internet: Swagger UI's assets come from the API itself (the
swagger-ui-bundle package), and the OpenAPI doc declares how to authenticate."""

from __future__ import annotations

import re
from typing import Any

from tests.support.flower import headless

# Every host name fails to resolve, except the API's loopback address: no CDN, no internet.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"


def test_openapi_declares_bearer_and_api_key_on_every_v1_route(api: Any) -> None:
    spec = api.anon.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "apiKey", "in": "header",
                                 "name": "X-API-Key"}
    v1 = [(path, op) for path, ops in spec["paths"].items() if path.startswith("/v1/")
          for op in ops.values()]
    assert len(v1) >= 6
    for path, op in v1:
        assert {"bearer": []} in op["security"] and {"apiKey": []} in op["security"], path
    assert "security" not in spec["paths"]["/healthz"]["get"]
    assert "/redoc" not in spec["paths"] and api.anon.get("/redoc").status_code == 404


def test_auth_answers_are_unchanged_by_the_declarations(api: Any) -> None:
    missing = api.anon.get("/v1/credits")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "unauthorized"
    assert "missing API key" in missing.json()["error"]["message"]
    basic = api.anon.get("/v1/credits", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401 and "missing API key" in basic.json()["error"]["message"]
    wrong = api.anon.get("/v1/credits", headers={"X-API-Key": "not-a-key"})
    assert wrong.status_code == 401 and "not recognised" in wrong.json()["error"]["message"]


def test_docs_render_offline_in_headless_chromium(api: Any) -> None:
    html = api.anon.get("/docs").text
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", html)
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
    for asset in assets:
        assert api.anon.get(asset).status_code == 200, asset
    assert api.anon.get("/docs/openapi.json").json()["paths"].keys() == \
        api.anon.get("/openapi.json").json()["paths"].keys()

    page = headless(f"{api.url}/docs", "--dump-dom", OFFLINE)
    dom = page.stdout
    assert dom.count('class="opblock ') >= 6 or dom.count("opblock-summary-path") >= 6, \
        page.stderr[-3000:] + dom[-3000:]
    assert "/v1/messages" in dom and "/v1/dead-letters" in dom
    assert "authorize" in dom.lower(), "no Authorize button"
    assert "Unable to render" not in dom and "Failed to load API definition" not in dom
