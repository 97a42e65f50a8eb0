"""Disputes (issue 18) beyond the golden scenarios: an engine-deviation claim decided by replaying
the disputed block from a node's log (``bastion.node.dispute_check``, ``bastion dispute check``),
the dispute book through a snapshot, an escalated dispute whose token vote fails, the refusals of
the governance actions, and the API/CLI views."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.core import liquidation
from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.governance import compute_action_changes
from bastion.core.messages import OpenIncidentProgram, ResolveDispute, decode_message
from bastion.core.snapshot import canonical_bytes, state_from_document, state_to_document
from bastion.core.state import State
from bastion.core.transition import apply_block, check_invariants
from bastion.node.dispute_check import check_dispute
from bastion.node.node import Node
from test_api_sdk import live  # noqa: F401  (the SDK test's live node: uvicorn on a loopback port)

SCENARIOS = Path(__file__).parent / "scenarios"
A0, C1, C2 = (f"0x{'0' * 38}{x}" for x in ("a0", "c1", "c2"))


def scenario(name: str) -> dict[str, Any]:
    return json.loads((SCENARIOS / f"{name}.json").read_text())


def run_blocks(doc: dict[str, Any], count: int | None = None) -> State:
    """The scenario's state after its first ``count`` blocks (all by default)."""
    state = build_state(doc["genesis"])
    for block in doc["blocks"][:count]:
        txs = [(tx["sender"], decode_message(tx["msg"])) for tx in block["txs"]]
        apply_block(state, state.time_ms + block["advance"] * 1000, txs)
        check_invariants(state)
    return state


# --------------------------------------------------------------------------------------- replay check
@pytest.fixture(scope="module")
def disputed_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node that ran dispute_engine_deviation_by_replay's first two blocks: the glitch liquidation,
    then a0's engine-deviation dispute of it."""
    doc = scenario("dispute_engine_deviation_by_replay")
    data = tmp_path_factory.mktemp("disputes") / "node"
    clock = iter(range(1_767_225_601_000, 10**15, 1_000)).__next__   # 2026-01-01T00:00:01Z, then +1 s
    node = Node(data, doc["genesis"], clock_ms=clock)
    nonces: dict[str, int] = {}
    for block in doc["blocks"][:2]:
        for tx in block["txs"]:
            msg = tx["msg"]
            nonces[tx["sender"]] = nonces.get(tx["sender"], 0) + 1
            node.submit({"sender": tx["sender"], "nonce": nonces[tx["sender"]], "msg": msg})
        node.produce_block()
    node.close()
    return data


def test_the_replay_finds_no_deviation_and_lays_out_the_evidence(disputed_chain: Path) -> None:
    report = check_dispute(disputed_chain, 1)
    assert report["deviation"] is False and report["state_hash_matches"] is True
    assert report["height"] == 1 and report["kind"] == "liquidation" and report["owner"] == A0
    assert report["recorded"] == report["replayed"] and len(report["recorded"]) == 1
    assert report["recorded"][0]["fill_price"] == 48990 and report["recorded"][0]["insurance_delta"] == 73_485_000
    oracle = [e for e in report["evidence"]["oracle"] if e["type"] == "oracle_price"]
    assert [(e["previous"], e["price"]) for e in oracle] == [(50000, 49000)]
    assert report["evidence"]["book_before_block"] == {"bids": [], "asks": []}   # c0's bid came in the block
    assert report["evidence"]["risk_inputs"][0]["net_collateral"] == 1_400_000_000
    assert report["evidence"]["waterfall_rung"].startswith("1:")


def test_a_node_that_did_not_follow_the_rules_is_caught_by_the_replay(disputed_chain: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # the rules as the replay knows them now charge no liquidation fee: the logged fill (fee 73.485) deviates
    monkeypatch.setattr(liquidation, "insurance_fund_delta", lambda *args: 0)
    report = check_dispute(disputed_chain, 1)
    assert report["deviation"] is True and report["state_hash_matches"] is False
    assert report["recorded"][0]["insurance_delta"] == 73_485_000 and report["replayed"][0]["insurance_delta"] == 0


def test_the_cli_checks_and_shows_a_dispute(disputed_chain: Path) -> None:
    runner = CliRunner()
    checked = runner.invoke(app, ["dispute", "check", "1", "--data", str(disputed_chain), "--json"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["deviation"] is False
    shown = runner.invoke(app, ["dispute", "show", "1", "--data", str(disputed_chain), "--json"])
    assert shown.exit_code == 0, shown.output
    dispute = json.loads(shown.output)
    assert dispute["status"] == "open" and dispute["claim_kind"] == "engine_deviation" and dispute["claim"] == "174.485"
    missing = runner.invoke(app, ["dispute", "check", "7", "--data", str(disputed_chain)])
    assert missing.exit_code == 2 and "unknown_dispute" in missing.output


# --------------------------------------------------------------------------------------- state
def test_the_dispute_book_survives_a_snapshot_mid_flight() -> None:
    for name, blocks in (("dispute_bad_input", None), ("dispute_incident_program_pro_rata", 10),
                         ("dispute_appeal_reverses_council", 5)):
        state = run_blocks(scenario(name), blocks)
        document = json.loads(canonical_bytes(state_to_document(state)))
        restored = state_from_document(document)
        assert restored.state_hash == state.state_hash
        assert restored.disputes == state.disputes and list(restored.disputes.live) == list(state.disputes.live)
        # the restored state goes on exactly as the original
        apply_block(state, state.time_ms + 120_000, [])
        apply_block(restored, restored.time_ms + 120_000, [])
        assert restored.state_hash == state.state_hash


def test_an_escalated_dispute_whose_vote_fails_is_rejected_and_its_bond_goes_to_the_fund() -> None:
    doc = scenario("dispute_bad_input")     # dispute 1 (claim 100, bond 15) escalated at t = 3,603 s
    doc["genesis"]["governance"] = scenario("dispute_appeal_reverses_council")["genesis"]["governance"]  # 3-block votes
    state = run_blocks(doc)
    dispute = state.disputes.disputes[1]
    assert dispute.status == "escalated" and dispute.proposal_id is not None
    proposal = state.proposals[dispute.proposal_id]
    assert proposal.risk_class == "neutral" and proposal.deposit_bgov == 0
    fund = state.insurance_funds["cross"]
    for _ in range(proposal.deadline_height - state.height + 1):  # nobody votes: defeated at its deadline
        apply_block(state, state.time_ms + 1000, [])
    assert proposal.status == "defeated"
    assert dispute.status == "rejected" and dispute.paid_usdc == 0
    assert state.insurance_funds["cross"] == fund + 15_000_000 and state.disputes.escrow_usdc == 0
    check_invariants(state)


def test_the_governance_actions_refuse_bad_input() -> None:
    state = run_blocks(scenario("dispute_glitch_upheld"), 2)    # dispute 1 open, not appealed
    with pytest.raises(ProtocolError) as caught:
        compute_action_changes(state, ResolveDispute(dispute_id=1, upheld=True, award_usdc="1"))
    assert caught.value.code == "dispute_not_appealed"
    with pytest.raises(ProtocolError) as caught:
        compute_action_changes(state, ResolveDispute(dispute_id=9, upheld=True, award_usdc="1"))
    assert caught.value.code == "unknown_dispute"
    cases = [({"market": "ETH-USD"}, "unknown_market"), ({"to_height": 99}, "invalid_window"),
             ({"reference": "twap"}, "invalid_reference"), ({"reference": "fixed"}, "invalid_reference"),
             ({"reference_price": "50000"}, "invalid_reference"),
             ({"reference": "sources_median"}, "invalid_reference"),
             ({"exclude_sources": [C1]}, "invalid_reference"),
             ({"reference": "sources_median", "exclude_sources": ["0x12"]}, "invalid_address"),
             ({"budget": "0"}, "non_positive_amount"),
             ({"budget": "1000000"}, "insufficient_insurance_fund")]
    for change, code in cases:
        fields = {"market": "BTC-USD", "from_height": 1, "to_height": 1, "reference": "pre_block", "budget": "10",
                  **change}
        with pytest.raises(ProtocolError) as caught:
            compute_action_changes(state, OpenIncidentProgram(**fields))
        assert caught.value.code == code, change
    [effect] = compute_action_changes(state, OpenIncidentProgram(market="BTC-USD", from_height=1, to_height=1,
                                                                 reference="fixed", reference_price="49500",
                                                                 budget="10"))
    assert effect.risk == "critical" and effect.reference_price == 49500


# --------------------------------------------------------------------------------------- API and pages
def test_the_api_and_the_pages_lay_out_a_dispute_and_its_evidence(disputed_chain: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from bastion.app import ApiConfig, create_app

    data = tmp_path / "node"
    data.mkdir()
    (data / "blocks.db").write_bytes((disputed_chain / "blocks.db").read_bytes())
    node = Node(data, None, clock_ms=iter(range(1_767_225_700_000, 10**15, 1_000)).__next__)
    try:
        client = TestClient(create_app(node, ApiConfig()))
        listed = client.get("/v1/disputes").json()
        assert [(d["dispute_id"], d["status"], d["claim"], d["bond"]) for d in listed["disputes"]] == [
            (1, "open", "174.485", "20")]
        assert client.get("/v1/disputes", params={"owner": C1}).json()["disputes"] == []
        assert listed["next_cursor"] is None                     # bounded pages: limit and cursor
        assert client.get("/v1/disputes", params={"cursor": "1"}).json()["disputes"] == []
        assert client.get("/v1/dispute-targets", params={"limit": 0}).status_code == 400   # the API's bad-input status
        bad = client.get("/v1/dispute-targets", params={"cursor": "x"})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
        targets = client.get("/v1/dispute-targets").json()["targets"]
        assert [(t["target_id"], t["loss"], t["reference_price"], t["claimed_by"]) for t in targets] == [
            (1, "174.485", "50000", "dispute:1")]
        check = client.get("/v1/disputes/1/check").json()
        assert check["deviation"] is False and check["recorded"] == check["replayed"]
        missing = client.get("/v1/disputes/9")
        assert missing.status_code == 404 and missing.json()["code"] == "unknown_dispute"
        assert client.get("/v1/incidents").json()["programs"] == []
        page = client.get("/disputes")
        assert page.status_code == 200 and 'href="/disputes/1"' in page.text and "174.485" in page.text
        detail = client.get("/disputes/1")
        assert detail.status_code == 200 and "the recorded outcome equals the rules" in detail.text
        assert "oracle_price" in detail.text and "49000" in detail.text and "1: liquidation order" in detail.text
        assert client.get("/disputes/9").status_code == 404
    finally:
        node.close()


def test_the_demo_holds_one_disputed_liquidation_in_flight(tmp_path: Path) -> None:
    from test_demo import KEYS, Demo

    demo = Demo(tmp_path / "demo")
    try:
        dave = KEYS["dave"].address
        for _ in range(160):      # 80 s of demo time: dave's first long is liquidated, then he disputes it
            demo.step()
            if demo.node.state.disputes.disputes:
                break
        [dispute] = demo.node.state.disputes.disputes.values()
        target = demo.node.state.disputes.targets[dispute.target_id]
        assert (dispute.owner, dispute.status, dispute.claim_kind) == (dave, "open", "oracle_glitch")
        assert dispute.claim_usdc == target.loss_usdc > 0 and target.kind == "liquidation"
        assert target.claimed_by == "dispute:1"
        page = demo.client.get("/disputes")
        assert page.status_code == 200 and 'href="/disputes/1"' in page.text
    finally:
        demo.close()


def test_governance_moves_the_dispute_parameters_classified_by_their_effect() -> None:
    from bastion.core.governance import apply_effect
    from bastion.core.messages import SetDisputeParams
    from bastion.core.state import ParamSource

    state = run_blocks(scenario("dispute_glitch_upheld"), 1)   # max_award 100,000, bond floor 10 (genesis)
    looser = compute_action_changes(state, SetDisputeParams(params={"max_award": "200000", "bond_floor": "5",
                                                                    "appeal_tier": "risk_reducing"}))
    assert [(str(c.path), c.old, c.new, c.risk) for c in looser] == [
        ("disputes.bond_floor_usdc", 10_000_000, 5_000_000, "risk_increasing"),
        ("disputes.appeal_tier", "neutral", "risk_reducing", "risk_increasing"),
        ("disputes.max_award_usdc", 100_000_000_000, 200_000_000_000, "risk_increasing")]
    [tighter] = compute_action_changes(state, SetDisputeParams(params={"max_epoch_award": "1000"}))
    assert tighter.risk == "risk_reducing"
    [neutral] = compute_action_changes(state, SetDisputeParams(params={"record_retention_s": 7200}))
    assert neutral.risk == "neutral"
    for bad, code in (({"max_awards": "1"}, "unknown_field"), ({"window_s": 0}, "invalid_field"),
                      ({"window_s": 2_592_001}, "invalid_field"), ({"bond_claim": "2"}, "invalid_field")):
        with pytest.raises(ProtocolError) as caught:
            compute_action_changes(state, SetDisputeParams(params=bad))
        assert caught.value.code == code, bad
    for change in looser:
        apply_effect(state, change, ParamSource("proposal", "p", 1), [])
    params = state.disputes.params
    assert params.max_award_usdc == 200_000_000_000 and params.bond_floor_usdc == 5_000_000
    assert [entry.name for entry in state.param_history][-3:] == [
        "disputes.bond_floor_usdc", "disputes.appeal_tier", "disputes.max_award_usdc"]


def test_an_appeal_goes_against_the_ruling_from_the_appellants_side() -> None:
    from bastion.core.governance.dispute_votes import appeal_dispute
    from bastion.core.messages import AppealDispute

    doc = scenario("dispute_glitch_upheld")
    for tx in doc["blocks"][2]["txs"]:        # the council upholds 100 of the 174.485 claimed
        tx["msg"]["award_usdc"] = "100"
    state = run_blocks(doc, 3)
    b0 = f"0x{'0' * 38}b0"
    cases = [(A0, True, "50", "appeal_against_own_side"),      # the owner asks for less than it got
             (b0, True, "150", "appeal_against_own_side"),     # someone else asks the fund to pay more
             (A0, True, "100", "same_as_ruling"), (A0, True, "174.485001", "invalid_award"),
             (A0, True, "174.485", "bond_too_small")]
    for sender, upheld, award, code in cases:
        with pytest.raises(ProtocolError) as caught:
            appeal_dispute(state, sender, AppealDispute(dispute_id=1, upheld=upheld, award_usdc=award,
                                                        bond="39.99" if code == "bond_too_small" else "40"), [])
        assert caught.value.code == code, (sender, award)
    result = appeal_dispute(state, b0, AppealDispute(dispute_id=1, upheld=False, award_usdc="0", bond="40"), [])
    assert state.disputes.disputes[1].status == "appealed" and result["bond"] == 40_000_000


def test_the_sdk_builds_signs_and_reads_disputes(live: tuple[str, Node]) -> None:  # noqa: F811
    from test_api import ALICE, ALICE_KEY

    from bastion.client import BastionError, Client

    url, _ = live
    with Client(url, ALICE_KEY) as alice:
        answer = alice.open_dispute(target=7, claim_kind="oracle_glitch", claim="10", bond="20", statement="x",
                                    wait_ms=5_000)
        assert answer["status"] == "committed" and answer["result"]["code"] == "unknown_target"
        ruled = alice.rule_dispute(dispute_id=1, upheld=True, award="1", wait_ms=5_000)
        assert ruled["result"]["code"] == "not_council_member"
        appealed = alice.appeal_dispute(dispute_id=1, upheld=True, award="1", bond="1", wait_ms=5_000)
        assert appealed["result"]["code"] == "unknown_dispute"
        claimed = alice.claim_incident(program_id=1, wait_ms=5_000)
        assert claimed["result"]["code"] == "unknown_program"
        assert alice.disputes(owner=ALICE)["disputes"] == [] and alice.dispute_targets()["targets"] == []
        assert alice.incident_programs()["programs"] == []
        with pytest.raises(BastionError) as missing:
            alice.dispute(1)
        assert (missing.value.status, missing.value.code) == (404, "unknown_dispute")


def test_an_escalated_dispute_whose_vote_executes_pays_the_whole_claim() -> None:
    from bastion.core.messages import Execute, Queue, Vote

    doc = scenario("dispute_bad_input")     # dispute 1 (claim 100, bond 15) escalated at t = 3,603 s
    doc["genesis"]["governance"] = scenario("dispute_appeal_reverses_council")["genesis"]["governance"]
    c0 = f"0x{'0' * 38}c0"
    holder = next(a for a in doc["genesis"]["accounts"] if a["address"] == c0)
    holder.update({"bgov": "1000", "delegate": c0})
    state = run_blocks(doc)
    dispute = state.disputes.disputes[1]
    assert dispute.status == "escalated" and dispute.proposal_id is not None
    pid = dispute.proposal_id
    fund, a0_usdc = state.insurance_funds["cross"], state.subaccounts[(A0, 0)].balance

    def block(txs: list[tuple[str, Any]], advance_ms: int = 1000) -> dict[str, Any]:
        results = apply_block(state, state.time_ms + advance_ms, txs).results
        return results[0] if results else {}

    block([])                                        # the snapshot block: the vote opens at its end
    voted = block([(c0, Vote(proposal_id=pid, option="yes"))])
    assert voted["ok"], voted
    while state.proposals[pid].status == "active":
        block([])
    assert block([(c0, Queue(proposal_id=pid))])["ok"]
    assert block([(c0, Execute(proposal_id=pid))], advance_ms=60_000)["ok"]
    assert (dispute.status, dispute.paid_usdc, dispute.capped_by) == ("upheld", 100_000_000, None)
    assert state.subaccounts[(A0, 0)].balance == a0_usdc + 100_000_000 + 15_000_000   # the claim and the bond
    assert state.insurance_funds["cross"] == fund - 100_000_000 and state.disputes.escrow_usdc == 0
    check_invariants(state)


def test_dispute_checks_run_one_replay_at_a_time_and_keep_their_answers(disputed_chain: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A check replays a past block: a second caller during a replay is told to come back (429
    ``check_busy`` on the API) instead of starting another, and a finished answer is served again
    without a replay (a flood of checks costs one replay)."""
    import threading

    from fastapi.testclient import TestClient

    from bastion.app import ApiConfig, create_app
    from bastion.node import dispute_check

    data = tmp_path / "node"
    data.mkdir()
    (data / "blocks.db").write_bytes((disputed_chain / "blocks.db").read_bytes())
    node = Node(data, None, clock_ms=iter(range(1_767_225_700_000, 10**15, 1_000)).__next__)
    replays, entered, release = [], threading.Event(), threading.Event()
    real = dispute_check.check_dispute_target

    def slow_replay(data_dir: Path, dispute: object) -> dict:
        replays.append(dispute)
        entered.set()
        release.wait(10)
        return real(data_dir, dispute)

    monkeypatch.setattr(dispute_check, "check_dispute_target", slow_replay)
    try:
        client = TestClient(create_app(node, ApiConfig()))
        first: list = []
        worker = threading.Thread(target=lambda: first.append(client.get("/v1/disputes/1/check")))
        worker.start()
        assert entered.wait(10)
        busy = client.get("/v1/disputes/1/check")
        assert busy.status_code == 429 and busy.json()["code"] == "check_busy"
        release.set()
        worker.join(10)
        assert first[0].status_code == 200 and first[0].json()["deviation"] is False
        for _ in range(5):
            assert client.get("/v1/disputes/1/check").json() == first[0].json()
        assert client.get("/disputes/1").status_code == 200
        assert len(replays) == 1
    finally:
        release.set()
        node.close()
