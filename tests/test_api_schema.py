"""Schemathesis against the real app and database, with each role's key: whatever it sends,
no answer is a 5xx, and every answer matches what /openapi.json declares for it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import hypothesis
import psycopg
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from cloud.api.app import create_app
from cloud.apikeys import create_key
from cloud.settings import Settings
from tests.conftest import free_port
from tests.receipts_fixtures import operator_key

__all__ = ["operator_key"]  # a fixture used by name: receipts can be signed

pytestmark = pytest.mark.integration

# 5 roles: about 1,250 requests in `make test`; PW_SCHEMATHESIS_EXAMPLES runs a deeper search.
EXAMPLES_PER_ROLE = int(os.environ.get("PW_SCHEMATHESIS_EXAMPLES", "250"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture
def served_api(database_url: str, api_keys: dict[str, str], register_gateway,  # type: ignore[no-untyped-def]
               operator_key, mqtt_broker) -> Iterator[str]:
    """The whole app on a free port, served from its own thread (schemathesis calls are sync)."""
    gateway = register_gateway()
    with psycopg.connect(database_url, autocommit=True) as conn:
        api_keys["gateway"] = create_key(conn, "gateway", gateway_id=gateway.gateway)
    app = create_app(Settings(database_url=database_url, mqtt_url=mqtt_broker.url))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the API did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.mark.parametrize("role", ["admin", "supervisor", "bank-a", "gateway", None])
def test_generated_requests_get_no_5xx_and_answers_match_the_schema(
    served_api: str, api_keys: dict[str, str], role: str | None
) -> None:
    raw = requests.get(f"{served_api}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(raw)
    headers = {"Authorization": f"Bearer {api_keys[role]}"} if role else {}
    cases = st.one_of(schema.as_strategy(GenerationMode.POSITIVE),
                      schema.as_strategy(GenerationMode.NEGATIVE))
    session = requests.Session()

    @given(case=cases)
    @hypothesis.settings(max_examples=EXAMPLES_PER_ROLE, deadline=None, database=None,
                         derandomize=True, suppress_health_check=list(HealthCheck),
                         phases=[hypothesis.Phase.generate])
    def check(case):  # type: ignore[no-untyped-def]
        response = case.call(base_url=served_api, session=session, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    check()
