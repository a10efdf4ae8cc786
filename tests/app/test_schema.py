"""Schemathesis against a real server: generated requests for every operation of /openapi.json
get no 5xx and no answer that breaks the documented schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.conftest import build_store, image_bytes
from tests.server import running_server

KEY = "schema"
# No 5xx, and every answer as documented. Not "every schema-valid request is accepted": an
# OpenAPI binary field cannot say "a decodable photo", so random bytes are rightly refused (4xx).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def api_schema(
    tiny_encoder_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    root = tmp_path_factory.mktemp("schema")
    for i in range(6):
        (root / "photos" / "c").mkdir(parents=True, exist_ok=True)
        (root / "photos" / "c" / f"S{i}.jpg").write_bytes(image_bytes(300 + i))
    build_store(root / "photos", tiny_encoder_path, root / "store")
    with running_server(tiny_encoder_path, root / "store", LOOKALIKE_API_KEYS=KEY) as (base, _):
        yield schemathesis.openapi.from_url(f"{base}/openapi.json")


def test_no_server_error_and_answers_match_the_schema(api_schema: schemathesis.BaseSchema) -> None:
    labels = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"X-API-Key": KEY}, checks=CHECKS, timeout=60)

        check()
    assert "POST /search" in labels and "POST /index" in labels and len(labels) >= 15
