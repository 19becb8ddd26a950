"""schemathesis (property-based, from the OpenAPI document) against the ASGI app in-process, with an admin key and
loaded, allocated data: no 5xx, and every response conforms to the documented schema (status codes, problem+json
bodies, models)."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from app.access import create_key
from app.api import create_app
from tests.helpers import allocated_samples
from tests.test_allocation import RULES


@pytest.fixture(scope="module")
def loaded_rt(tmp_path_factory, samples):
    rt = allocated_samples(tmp_path_factory.mktemp("st") / "data", samples, RULES)
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def admin_headers(loaded_rt):
    return {"Authorization": f"Bearer {create_key(loaded_rt, 'schemathesis', 'admin')[1]}"}


def operations(schema):
    for result in schema.get_all_operations():
        yield result.ok()


def test_api_conforms_to_its_openapi(loaded_rt, admin_headers):
    """Every operation, positive and negative generated requests (schemathesis strategies run by hypothesis here:
    its pytest plugin does not load under pytest 9)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(loaded_rt))
    checks = [not_a_server_error, response_schema_conformance, status_code_conformance]
    seen = []
    for op in operations(schema):
        seen.append(f"{op.method.upper()} {op.path}")
        strategy = op.as_strategy() | op.as_strategy(generation_mode=GenerationMode.NEGATIVE)

        @given(strategy)
        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                         HealthCheck.data_too_large])
        def check(case):
            if case.path == "/v1/sources/{name}/runs":  # would start real background ingests
                case.path_parameters = {"name": "no-such-source"}
            case.call_and_validate(headers=admin_headers, checks=checks)

        check()
    assert "GET /v1/costs" in seen and "GET /v1/finance/monthly-totals" in seen and len(seen) >= 25


def test_unauthenticated_requests_are_documented_401s(loaded_rt):
    """Every /v1 operation documents 401 and answers it without a key."""
    from fastapi.testclient import TestClient

    with TestClient(create_app(loaded_rt)) as c:
        spec = c.get("/openapi.json").json()
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                if not path.startswith("/v1"):
                    continue
                assert {"400", "401", "403"} <= set(op["responses"]), (method, path)
                url = path.replace("{name}", "x").replace("{delivery_id}", "x").replace("{key_id}", "x").replace(
                    "{month}", "2026-05")
                r = c.request(method.upper(), url)
                assert r.status_code == 401, (method, path, r.status_code)
                assert r.headers["content-type"] == "application/problem+json"
