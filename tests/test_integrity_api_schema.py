"""Schemathesis on the integrity routes only (the whole-API run spreads its examples thin):
whatever a role sends to them, no answer is a 5xx and every answer matches the schema."""

from __future__ import annotations

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.receipts_fixtures import operator_key
from tests.test_api_schema import CHECKS, served_api

__all__ = ["operator_key", "served_api"]  # fixtures used by name

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("role", ["admin", "supervisor", "bank-a"])
def test_integrity_routes_get_no_5xx_and_match_the_schema(
    served_api: str, api_keys: dict[str, str], role: str
) -> None:
    raw = requests.get(f"{served_api}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(raw).include(path_regex=r"/(shipments|integrity)")
    headers = {"Authorization": f"Bearer {api_keys[role]}"}
    cases = st.one_of(schema.as_strategy(GenerationMode.POSITIVE),
                      schema.as_strategy(GenerationMode.NEGATIVE))
    session = requests.Session()

    @given(case=cases)
    @hypothesis.settings(max_examples=80, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(HealthCheck),
                         phases=[hypothesis.Phase.generate])
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=served_api, session=session, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    check()
