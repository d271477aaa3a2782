"""schemathesis against kirim's own OpenAPI, over real HTTP to the live uvicorn process.

Driven from hypothesis directly (one strategy per operation): schemathesis's pytest plugin
(`from_fixture`) does not run under pytest 9 (AttributeError `_nodeid`).
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

pytestmark = pytest.mark.timeout(120)

EXAMPLES_PER_OPERATION = 100


def test_every_operation_conforms_to_its_schema_and_never_5xx(api, kirim):
    # GET /v1/credits answers a documented 503 until the poller stored a reading.
    kirim.redis.hset(kirim.keys.credits, mapping={"value": "125000", "read_at": time.time()})
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    headers = {"Authorization": f"Bearer {api.key}"}
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    ran: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        label = f"{operation.method.upper()} {operation.path}"
        ran[label] = 0

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case) -> None:
            case.call_and_validate(headers=headers, checks=checks)
            ran[case.operation.method.upper() + " " + case.operation.path] += 1

        call()
    print(f"[schemathesis] calls per operation: {ran}")
    assert len(ran) >= 8 and all(ran.values()), ran
