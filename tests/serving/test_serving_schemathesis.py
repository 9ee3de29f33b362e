"""Property-based tests of the running server against its own OpenAPI schema (schemathesis):
requests generated from the schema, valid and invalid, never get a 5xx, and every answer matches
the schema (status code, content type, body).

schemathesis' own pytest loader (`from_fixture`) fails under pytest 9, so each operation's
strategy is driven with Hypothesis directly.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

OPERATIONS = [
    ("POST", "/predict"),
    ("POST", "/predict/batch"),
    ("POST", "/predict/explain"),
    ("POST", "/predict/image"),
    ("POST", "/predict/number"),
    ("POST", "/predict/strokes"),
    ("POST", "/feedback"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/model"),
]
MAX_EXAMPLES = 50
# A schema cannot say "a PNG or JPEG holding a digit", nor "not blank": schema-valid uploads of
# random bytes and all-background vectors are rightly refused (415/422 with a message), so there a
# refusal of valid data is expected.
SEMANTIC_BODIES = {
    ("POST", "/predict/image"),
    ("POST", "/predict/number"),
    ("POST", "/predict/strokes"),  # a schema cannot say "near the pad" nor bound the points of all strokes
    ("POST", "/feedback"),  # nor for a correction's optional strokes
    ("POST", "/predict"),
    ("POST", "/predict/batch"),
    ("POST", "/predict/explain"),
}


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


def test_every_operation_is_covered(api_schema):
    documented = {
        (method.upper(), path) for path, item in api_schema.raw_schema["paths"].items() for method in item
    }
    assert documented == set(OPERATIONS)


# Negative cases need something to break: a body. The GET routes take no input at all.
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or method == "POST"
]


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g}" for m, p, g in CASES])
def test_operation_conforms_to_the_schema(api_schema, server, method, path, mode):
    operation = api_schema[path][method]
    statuses: list[int] = []
    excluded = [positive_data_acceptance] if (method, path) in SEMANTIC_BODIES else []
    if mode is GenerationMode.NEGATIVE:
        # schemathesis' own rejection check does not count 413 as a rejection, but a fuzzed body
        # over the size limit is rightly refused with it; every status is checked to be 4xx below.
        excluded.append(negative_data_rejection)

    with requests.Session() as session:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            # 784-number bodies are large by Hypothesis' standards, and slow to generate.
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            response = case.call_and_validate(base_url=server.url, session=session, excluded_checks=excluded)
            statuses.append(response.status_code)
            assert response.status_code < 500

        check()

    assert statuses, "no request was sent"
    if mode is GenerationMode.NEGATIVE:
        assert all(400 <= status < 500 for status in statuses), sorted(set(statuses))
    # The server still serves after everything it was sent.
    assert requests.get(server.url + "/readyz", timeout=10).status_code == 200
