"""``bastion stress --verify HASH`` (issue 20, ``bastion.stress.verify``): a report recomputed from
the chain's data (the state at its recorded height from the log, its scenario set and seed) either
reproduces byte for byte (exit 0) or not (exit 1, with the first difference); missing inputs exit 2.

The chain is a node over ``test_stress_cli.btc_genesis`` whose report is taken at height 1 and which
then moves on (two more oracle updates), so the verification must rebuild the past state; the set is
the small ``test_stress_cli.SET`` (8 scenarios), one worker."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from builders import BTC, ORACLE
from test_stress_cli import SET, btc_genesis, stress
from fastapi.testclient import TestClient

from bastion.app import ApiConfig, create_app
from bastion.core.snapshot import canonical_bytes
from bastion.node.node import Node
from bastion.stress.verify import find_difference


@pytest.fixture
def chain(tmp_path: Path) -> dict[str, Path | str]:
    """A node data directory, a report of its height-1 state in its report store and out/, the set file."""
    (tmp_path / "set.json").write_text(json.dumps(SET))
    clock = iter(range(1_767_225_601_000, 10**15, 1_000)).__next__
    node = Node(tmp_path / "node", btc_genesis("1000000"), clock_ms=clock, snapshot_every=0)
    node.submit({"sender": ORACLE, "nonce": 1, "msg": {"type": "oracle_update", "prices": {BTC: "49000"}}})
    node.produce_block()
    node.close()
    made = stress("--data", str(tmp_path / "node"), "--scenarios", str(tmp_path / "set.json"), "--workers", "1",
                  "--out", str(tmp_path / "out"))
    assert made.exit_code == 0, made.output
    report_hash = json.loads(made.stdout)["report_hash"]
    node = Node(tmp_path / "node", clock_ms=clock, snapshot_every=0)
    for nonce, price in ((2, "47000"), (3, "45000")):     # the chain moves on after the report
        node.submit({"sender": ORACLE, "nonce": nonce, "msg": {"type": "oracle_update", "prices": {BTC: price}}})
        node.produce_block()
    node.write_snapshot()                                 # a snapshot above the report's height is skipped
    node.close()
    return {"data": tmp_path / "node", "set": tmp_path / "set.json", "report": tmp_path / "out" / "report.json",
            "hash": report_hash, "tmp": tmp_path}


def test_a_report_recomputed_from_the_log_at_its_height_reproduces_byte_for_byte(chain):
    result = stress("--verify", chain["hash"], "--data", str(chain["data"]), "--report", str(chain["report"]),
                    "--scenarios", str(chain["set"]))
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["reproduced"] is True and outcome["recomputed_hash"] == chain["hash"]
    assert outcome["height"] == 1 and outcome["difference"] is None and outcome["proposal_id"] is None
    assert outcome["scenario_set"]["name"] == "cli-test" and outcome["scenario_set"]["seed"] == 11


def test_a_doctored_report_does_not_reproduce_and_names_the_first_difference(chain):
    document = json.loads(chain["report"].read_bytes())
    document["summary"]["var99_loss_usdc"] -= 1           # a rosier figure than the sweep gives
    raw = canonical_bytes(document)
    doctored = chain["tmp"] / "doctored.json"
    doctored.write_bytes(raw)
    doctored_hash = hashlib.sha256(raw).hexdigest()
    result = stress("--verify", doctored_hash, "--data", str(chain["data"]), "--report", str(doctored),
                    "--scenarios", str(chain["set"]))
    assert result.exit_code == 1, result.output
    outcome = json.loads(result.stdout)
    assert outcome["reproduced"] is False and outcome["recomputed_hash"] == chain["hash"]
    assert outcome["difference"] == "summary.var99_loss_usdc"


@pytest.mark.parametrize(("args", "message"), [
    (["--report", "{report}"], "not the report's scenario set"),         # the shipped set is not this one
    (["--scenarios", "{set}"], "no report"),                             # not in the node's store, no file
    (["--report", "{set}", "--scenarios", "{set}"], "SHA-256 differs"),  # another file
])
def test_what_cannot_be_recomputed_exits_2(chain, args, message):
    filled = [str(chain[a[1:-1]]) if a.startswith("{") else a for a in args]
    result = stress("--verify", chain["hash"], "--data", str(chain["data"]), *filled)
    assert result.exit_code == 2 and message in result.output


def test_find_difference_walks_objects_and_lists():
    assert find_difference({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]}) == "a[1].b"
    assert find_difference({"a": 1}, {"a": 1, "c": 2}) == "c"
    assert find_difference([1], [1, 2]) == "[len]"
    assert find_difference({"a": 1}, {"a": 1}) is None


def test_the_api_refuses_what_it_does_not_hold_or_cannot_recompute(chain):
    node = Node(chain["data"], snapshot_every=0)
    try:
        client = TestClient(create_app(node, ApiConfig()))
        assert client.get(f"/v1/stress/reports/{chain['hash']}/verify").json()["code"] == "report_not_found"
        stored = client.post("/v1/stress/reports", content=chain["report"].read_bytes(),
                             headers={"content-type": "application/json"})
        assert stored.status_code == 201, stored.text
        # the small set's report cannot be recomputed here: the API runs only the shipped set
        refused = client.get(f"/v1/stress/reports/{chain['hash']}/verify")
        assert refused.status_code == 422 and refused.json()["code"] == "report_not_verifiable"
        assert "--scenarios" in refused.json()["message"]
    finally:
        node.close()


@pytest.mark.slow
def test_the_api_verifies_a_report_of_the_shipped_set_held_in_the_node_store(chain):
    """The shipped gate set (1,000 scenarios, about 3 s a sweep, twice): a report of the node's head."""
    made = stress("--data", str(chain["data"]), "--workers", "1", "--out", str(chain["tmp"] / "gate"))
    assert made.exit_code == 0, made.output
    gate_hash = json.loads(made.stdout)["report_hash"]
    node = Node(chain["data"], snapshot_every=0)
    try:
        client = TestClient(create_app(node, ApiConfig()))
        stored = client.post("/v1/stress/reports", content=(chain["tmp"] / "gate" / "report.json").read_bytes(),
                             headers={"content-type": "application/json"})
        assert stored.status_code == 201, stored.text
        answer = client.get(f"/v1/stress/reports/{gate_hash}/verify")
        assert answer.status_code == 200, answer.text
        assert answer.json()["reproduced"] is True and answer.json()["height"] == 3
        assert answer.json()["recomputed_hash"] == gate_hash
    finally:
        node.close()
