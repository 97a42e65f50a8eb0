"""Counter-reports against the stress gate (issue 20, ``bastion.core.governance.counter_reports``):
who may post, what holds a proposal, how the council's judgement moves the bond and how an answer
lifts the hold. The golden scenarios ``counter_report_*`` play the whole story with hand-worked
numbers; these tests pin the rules around it (several counter-reports, changed judgements, the
collateral conservation with a bond escrowed, the snapshot, the governed bond and window)."""
from __future__ import annotations

import copy

import pytest
from builders import ALICE, BOB, CAROL, COUNCIL, ETH, Chain, council_attest, execute, register_stress_report
from test_council import (
    HOUR_MS, LOWER_ETH_MARGIN, RAISE_INSURANCE_SHARE, at, code, council_genesis, ok_events, queued, rejected,
)

from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.governance import classify
from bastion.core.governance.counter_reports import describe_counter_reports
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import decode_action
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.transition import check_invariants
from bastion.core.units import USDC

C1, C2, C3 = COUNCIL
NEW_REPORT = "e1" * 32
BOND = 1_000 * USDC                   # the default governed bond


def post(pid: str, report_hash: str = "c0" * 32, *, subaccount: int = 0, **over: str) -> dict:
    msg = {"type": "post_counter_report", "proposal_id": pid, "subaccount": subaccount, "report_hash": report_hash,
           "scenario_set_hash": "5e" * 32, "verdict": "fail", "depletion_probability": "0.2", "var99_loss": "0",
           "es99_loss": "0", "insurance_funds_total": "0"}
    return {**msg, **over}


def judge(counter_id: int, reproduced: bool) -> dict:
    return {"type": "judge_counter_report", "counter_id": counter_id, "reproduced": reproduced}


def answer(counter_id: int, report_hash: str) -> dict:
    return {"type": "answer_counter_report", "counter_id": counter_id, "report_hash": report_hash}


def contested() -> tuple[Chain, str, int]:
    """A queued risk-increasing proposal with 2 of 3 passes on REPORT; its executable time."""
    chain = Chain(council_genesis())
    pid = queued(chain, LOWER_ETH_MARGIN)
    eta = chain.state.proposals[pid].queued_ms + HOUR_MS
    return chain, pid, eta


def test_two_counter_reports_hold_until_each_is_answered_or_rejected_and_the_bond_stays_counted():
    chain, pid, eta = contested()
    bob_before = chain.state.subaccounts[(BOB, 0)].balance
    results = at(chain, chain.state.time_ms + 1_000, (BOB, post(pid)), (CAROL, post(pid, "c1" * 32)))
    assert results == [{"ok": True, "counter_id": 1, "bond": BOND}, {"ok": True, "counter_id": 2, "bond": BOND}]
    assert chain.state.subaccounts[(BOB, 0)].balance == bob_before - BOND
    check_invariants(chain.state)               # 2,000 USDC escrowed: still conserved
    at(chain, eta - 1_000, (C1, council_attest(pid)), (C2, council_attest(pid)))
    error = rejected(chain, ALICE, execute(pid), at_ms=eta)
    assert error["code"] == "counter_report_unanswered" and "[1, 2]" in error["message"]
    # a newer passing report answers counter 1 only: counter 2 still holds
    at(chain, eta + 1_000, (C1, register_stress_report(NEW_REPORT)), (C1, answer(1, NEW_REPORT)),
       (C1, council_attest(pid, NEW_REPORT)), (C2, council_attest(pid, NEW_REPORT)))
    error = rejected(chain, ALICE, execute(pid))
    assert error["code"] == "counter_report_unanswered" and "[2]" in error["message"]
    # c1 changes its mind about counter 2 (its newer judgement replaces the older one); c3 agrees: rejected
    at(chain, chain.next_time_ms, (C1, judge(2, True)))
    events = ok_events(chain, (C1, judge(2, False)), (C3, judge(2, False)))
    assert [e["votes"] for e in events if e["type"] == "counter_report_judged"] == [1, 2]
    decided = next(e for e in events if e["type"] == "counter_report_decided")
    assert decided["to"] == "cross" and decided["bond"] == BOND
    assert chain.state.counter_reports[2].judge_votes == {C1: False, C3: False}
    events = ok_events(chain, (ALICE, execute(pid)))
    assert events[0]["report_hash"] == NEW_REPORT and chain.state.markets[ETH].tier_id == 1
    check_invariants(chain.state)               # counter 1 still escrows its bond (never judged)
    assert chain.state.counter_reports[1].decided_height is None and chain.state.counter_reports[1].status == "open"
    # counter 1 can still be judged after the proposal executed: reproduced, the bond goes back to Bob
    ok_events(chain, (C2, judge(1, True)), (C3, judge(1, True)))
    assert chain.state.subaccounts[(BOB, 0)].balance == bob_before
    assert compute_state_hash_full(chain.state) == chain.state.state_hash
    assert [(r["counter_id"], r["status"], r["answer_hash"]) for r in describe_counter_reports(chain.state)] == [
        (1, "reproduced", NEW_REPORT), (2, "rejected", None)]


def test_only_a_queued_gated_proposal_inside_the_window_takes_a_failing_counter_report():
    chain = Chain(council_genesis())
    reducing = queued(chain, RAISE_INSURANCE_SHARE)
    assert code(chain, BOB, post(reducing)) == "proposal_not_gated"
    pid = queued(chain, LOWER_ETH_MARGIN)
    queued_ms = chain.state.proposals[pid].queued_ms
    assert code(chain, BOB, post(pid, depletion_probability="0.01")) == "counter_report_figures_pass"
    assert code(chain, BOB, post(pid, var99_loss="1")) == "invalid_field"              # es99 0 < var99 1
    assert code(chain, BOB, post(pid, report_hash="C0" * 32)) == "invalid_report_hash"
    # timelock 1 h < the 5 d window: the window closes with the timelock
    assert code(chain, BOB, post(pid), at_ms=queued_ms + HOUR_MS) == "counter_report_window_closed"


def test_the_bond_is_taken_like_a_withdrawal():
    genesis = council_genesis()
    genesis["governance"]["counter_report_bond"] = "100001"     # more than Bob's 100,000 USDC
    chain = Chain(genesis)
    pid = queued(chain, LOWER_ETH_MARGIN)
    assert code(chain, BOB, post(pid)) == "insufficient_free_collateral"
    assert code(chain, BOB, post(pid, subaccount=5)) == "subaccount_not_found"
    assert chain.state.counter_reports == {}


def test_counter_reports_survive_a_snapshot_and_their_leaf_follows_every_change():
    chain, pid, _ = contested()
    at(chain, chain.state.time_ms + 1_000, (BOB, post(pid)))
    at(chain, chain.next_time_ms, (C1, judge(1, True)), (C1, register_stress_report(NEW_REPORT)),
       (C2, answer(1, NEW_REPORT)))
    assert compute_state_hash_full(chain.state) == chain.state.state_hash
    restored = state_from_document(copy.deepcopy(state_to_document(chain.state)))
    assert restored.state_hash == chain.state.state_hash
    assert restored.counter_reports == chain.state.counter_reports
    record = restored.counter_reports[1]
    assert record.answer_hash == NEW_REPORT and record.judge_votes == {C1: True}


def test_the_bond_and_window_are_governed_critical_parameters():
    state = build_state(council_genesis())
    assert (state.governance.counter_report_bond_usdc, state.governance.counter_report_window_ms) == (
        BOND, 5 * 86_400_000)
    action = decode_action({"type": "set_governance_params",
                            "params": {"counter_report_bond": "250", "counter_report_window_s": 3_600}}, 0)
    changes, risk = classify.classify_proposal(state, (action,))
    assert risk == "critical"
    assert sorted((c.name, c.old, c.new) for c in changes if c.old != c.new) == [
        ("governance.counter_report_bond_usdc", BOND, 250 * USDC),
        ("governance.counter_report_window_ms", 5 * 86_400_000, 3_600_000)]
    bad = decode_action({"type": "set_governance_params", "params": {"counter_report_window_s": 0}}, 0)
    with pytest.raises(ProtocolError) as refused:
        classify.classify_proposal(state, (bad,))
    assert refused.value.code == "invalid_field"
    assert refused.value.fields["field"] == "params.counter_report_window_s"


# --------------------------------------------------------------------------------------- the governance page
def test_the_governance_page_shows_a_counter_report_holding_then_answered(tmp_path) -> None:
    """counter_report_holds_then_answered on a node: after the post (block 15) the proposal shows d0's
    counter-report with its bond and figures, holding execution; after the council judged it
    reproduced and answered it (block 18), the page shows the judgements and the answer instead."""
    import json
    from pathlib import Path

    from builders import node_from_scenario
    from fastapi.testclient import TestClient

    from bastion.app import ApiConfig, create_app

    doc = json.loads((Path(__file__).parent / "scenarios" / "counter_report_holds_then_answered.json").read_text())
    posted = doc["blocks"][14]["txs"][0]
    node, clock = node_from_scenario(tmp_path / "node", doc, 15, snapshot_every=0)
    client = TestClient(create_app(node, ApiConfig(clock_ms=clock)))

    def section() -> str:
        page = client.get("/governance").text
        start = page.index('class="counter-report')
        return page[start:page.index('<div class="actions"', start)]

    held = section()
    assert 'data-counter-id="1"' in held and posted["sender"] in held and "holds execution" in held
    assert "bond $100.00" in held                       # the scenario's governed bond: 100 USDC
    assert posted["msg"]["depletion_probability"] == "0.05" and "depletion probability 5%" in held
    assert "answered by report" not in held and "council:" not in held
    clock.play(node)   # the judgements, the answer, the attestations and the execution
    answered = section()
    node.close()
    judged = [tx for block in doc["blocks"][15:] for tx in block["txs"] if tx["msg"]["type"] == "judge_counter_report"]
    assert len(judged) == 2 and all(tx["msg"]["reproduced"] for tx in judged)
    assert 'status-reproduced' in answered and "holds execution" not in answered
    assert answered.count('data-reproduced="true"') == 2 and 'data-reproduced="false"' not in answered
    assert all(tx["sender"] in answered for tx in judged)
    assert "reproduced, the bond went back to its poster" in answered
    answer_hash = next(tx["msg"]["report_hash"] for tx in doc["blocks"][17]["txs"]
                       if tx["msg"]["type"] == "answer_counter_report")
    assert f'answered by report <code title="{answer_hash}">' in answered
