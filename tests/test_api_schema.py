"""schemathesis against ``/openapi.json`` (issue 7, "Proof"): every documented operation is called
in-process (the ASGI app of a signed node with a small genesis, a trade in its log and its read
models indexed) with requests generated from the schema, valid and invalid; every response must be
documented (status code, content type, body schema) and none may be a 5xx.

Deterministic (``derandomize``) and bounded (``max_examples`` per operation), so the run takes
seconds; the generated signed writes fail signature checks, which is what a fuzzer's envelopes
should do (the signed paths themselves are in ``test_api.py``)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from builders import place_order
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, negative_data_rejection, response_headers_conformance,
    response_schema_conformance, status_code_conformance,
)
from test_api import ALICE, BOB, NOW_MS, Clock, api_genesis

from bastion.app import ApiConfig, create_app
from bastion.node.node import Node

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    """A signed node with one BTC trade committed (block 1) and indexed, and the schema of its API."""
    clock = Clock()
    node = Node(tmp_path_factory.mktemp("schemathesis") / "n", api_genesis(), clock_ms=clock, read_models="default")
    try:
        for owner, order in ((BOB, place_order(side="sell", size="1", price="50000")),
                             (ALICE, place_order(size="0.4", time_in_force="ioc"))):
            node.submit({"sender": owner, "nonce": NOW_MS * 1_000, "msg": order})
        node.produce_block()
        assert node.indexer is not None and node.indexer.wait_idle(30)
        yield schemathesis.openapi.from_asgi("/openapi.json", create_app(node, ApiConfig(clock_ms=clock)))
    finally:
        node.close()


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=40, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_and_never_with_a_5xx(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)
