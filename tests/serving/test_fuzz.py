"""Property-based fuzzing of the HTTP API against its own OpenAPI schema (schemathesis):
valid and invalid requests generated for every operation, every check (no 5xx, status
codes, content types, headers and bodies as documented, invalid data rejected, valid
data accepted). The bounded budget here runs in CI; the long run that the docs quote is
``benchmarks/fuzz.py``."""

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from lifelongrec.serving import create_app  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "schemathesis.toml"

WRITE_KEY = "write-key-0123456789"  # the keys fixture of conftest.py
EXAMPLES = 100  # per operation and mode


def _operations(service, keys):
    app = create_app(service, keys, max_body_bytes=200_000)
    config = SchemathesisConfig.from_path(CONFIG)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    return [result.ok() for result in schema.get_all_operations()]


def test_the_schema_lists_every_operation(service, keys):
    labels = sorted(op.label for op in _operations(service, keys))
    assert labels == [
        "DELETE /users/{user_id}",
        "GET /experiments",
        "GET /experiments/{experiment_id}",
        "GET /health",
        "GET /items/{item_id}",
        "GET /items/{item_id}/similar",
        "GET /metrics",
        "GET /models",
        "GET /online-metrics",
        "GET /users/{user_id}/recommendations",
        "POST /events",
        "POST /experiments",
        "POST /experiments/{experiment_id}/stop",
        "POST /models/rollback",
        "POST /models/{version}/promote",
        "PUT /items",
        "PUT /items/{item_id}",
    ]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(service, keys, mode):
    calls = []
    for operation in _operations(service, keys):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case):
            response = case.call_and_validate(headers={"X-API-Key": WRITE_KEY})
            calls.append(response.status_code)

        try:
            fuzz()
        except Unsatisfiable:
            # an operation without inputs has no invalid form (POST /models/rollback)
            assert mode == GenerationMode.NEGATIVE, operation.label
    assert len(calls) >= 100
    assert max(calls) < 500
