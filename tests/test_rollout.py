"""Staged rollouts (``bastion.core.governance.rollout``) with exact numbers.

The chain is ``test_governance.gov_chain`` (ALICE 100 BGOV, BOB 300, CAROL 200, DAVE 400; risk
reducing: 10% quorum, 5-block vote, 1-day timelock). ETH-USD has 4 size decimals and an open
interest cap of 20 ETH = 200,000 lots; BTC-USD a minimum order size of 0.0001 = 1 lot; the cross
insurance fund holds 100,000 USDC. ``begin`` creates a rollout directly (as the execution of a
proposal does), so that risk-increasing rollouts run here without the stress gate's attestations.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from bastion.core import governance, transparency
from bastion.core.governance import rollout
from bastion.core.errors import ProtocolError
from bastion.core.hashing import serialize_leaf
from bastion.core.messages import decode_action
from bastion.core.snapshot import canonical_bytes, state_from_document, state_to_document
from bastion.core.state import ParamHistoryEntry, ParamSource
from bastion.core.units import USDC
from builders import ALICE, BOB, BTC, ETH, Chain, execute, submit_proposal
from test_governance import DAY_S, gov_chain, gov_genesis, ok, pass_and_queue, rejected
from test_guardian import GUARDIAN, guardian_genesis, pause

ETH_CAP = 200_000                          # lots: 20 ETH
CAP_NAME = f"markets.{ETH}.max_open_interest_lots"
ROLLOUT = {"type": "start_rollout", "market": ETH, "param": "max_open_interest", "target": "30", "steps": 4,
           "interval_s": 60, "gates": {"max_liquidations": 0}}


def start_rollout(**fields) -> dict:
    return {**ROLLOUT, **fields}


def begin(chain: Chain, **fields) -> rollout.Rollout:
    """Validate and start a rollout in a block of its own (as a proposal's execution would)."""
    action = decode_action(start_rollout(**fields), 0)
    chain.open_block()
    governance.compute_action_changes(chain.state, action)
    rollout.start_rollouts(chain.state, SimpleNamespace(proposal_id="p", actions=(action,)), chain.events,
                           governance.compute_action_changes)
    chain.end_block()
    return chain.state.rollouts[len(chain.state.rollouts)]


def at(chain: Chain, time_ms: int) -> list[dict]:
    """An empty block at ``time_ms``; returns its events. The incremental hash must match a full one."""
    chain.next_time_ms = time_ms
    chain.open_block()
    chain.end_block()
    assert chain.state.state_hash == chain.full_hash()
    return chain.events


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


def cap(chain: Chain) -> int:
    return chain.state.markets[ETH].max_open_interest_lots


# ------------------------------------------------------------------------------------------- step values
@pytest.mark.parametrize("start, target, steps, values", [
    (200_000, 300_000, 4, [225_000, 250_000, 275_000, 300_000]),   # exact quarters
    (10, 20, 3, [13, 16, 20]),          # +3.33.. -> 13, +6.66.. -> 16 (toward the start), last exactly 20
    (20, 10, 3, [17, 14, 10]),          # -3.33.. -> 17, -6.66.. -> 14 (toward the start, i.e. up), then 10
    (7, 12, 5, [8, 9, 10, 11, 12]),     # one lot per step, the smallest move allowed
    (100, 1, 1, [1]),                   # one step: straight to the target
])
def test_step_values_round_toward_the_start_and_end_exactly_on_the_target(start, target, steps, values):
    assert [rollout.compute_step_value(start, target, i, steps) for i in range(1, steps + 1)] == values


# ------------------------------------------------------------------------------------------- validation
VALIDATION = [
    # (fields of start_rollout, code, field)
    ({"market": "DOGE-USD"}, "unknown_market", "market"),
    ({"param": "taker_fee"}, "unknown_rollout_param", "param"),
    ({"target": "0"}, "non_positive_value", "target"),
    ({"target": "20"}, "rollout_target_unchanged", "target"),                 # the current cap
    ({"target": "30.00001"}, "too_many_decimals", "target"),                   # finer than the lot (4 decimals)
    ({"steps": 0}, "invalid_rollout_steps", "steps"),
    ({"steps": 21}, "invalid_rollout_steps", "steps"),                         # governance max_rollout_steps 20
    ({"target": "20.0003", "steps": 4}, "rollout_step_below_grid", "steps"),  # 3 lots cannot make 4 moves
    ({"interval_s": 0}, "invalid_rollout_interval", "interval_s"),
    ({"gates": {}}, "rollout_without_gates", "gates"),
    ({"gates": {"max_drawdown": "1"}}, "unknown_field", "gates.max_drawdown"),
    ({"gates": {"max_liquidations": -1}}, "invalid_field", "gates.max_liquidations"),
    ({"gates": {"max_liquidations": True}}, "invalid_field", "gates.max_liquidations"),
    ({"gates": {"min_insurance_fund": "-1"}}, "negative_value", "gates.min_insurance_fund"),
    ({"gates": {"max_bad_debt": 5}}, "invalid_decimal", "gates.max_bad_debt"),    # USDC amounts are strings
]


@pytest.mark.parametrize("fields, code, field", VALIDATION)
def test_an_invalid_start_rollout_is_refused_with_its_code(fields, code, field):
    state = gov_chain().state
    with pytest.raises(ProtocolError) as error:
        governance.compute_action_changes(state, decode_action(start_rollout(**fields), 0))
    assert (error.value.code, error.value.fields.get("field")) == (code, field)


def test_twenty_steps_are_allowed_and_the_maximum_is_governed():
    state = gov_chain().state
    governance.compute_action_changes(state, decode_action(start_rollout(steps=20), 0))
    state = Chain(gov_genesis(max_rollout_steps=4)).state
    with pytest.raises(ProtocolError) as error:
        governance.compute_action_changes(state, decode_action(start_rollout(steps=5), 0))
    assert (error.value.code, error.value.fields["maximum"]) == ("invalid_rollout_steps", 4)


@pytest.mark.parametrize("fields, risk_class", [
    ({}, "risk_increasing"),                                                    # cap 20 -> 30
    ({"target": "16"}, "risk_reducing"),                                        # cap 20 -> 16
    ({"market": BTC, "param": "min_order_size", "target": "0.001", "steps": 2}, "risk_reducing"),  # 1 -> 10 lots
])
def test_the_class_is_that_of_moving_the_parameter_to_the_target(fields, risk_class):
    state = gov_chain().state
    changes, risk = governance.compute_proposal_changes(state, (decode_action(start_rollout(**fields), 0),))
    assert risk == risk_class
    assert len(changes) == 1 and isinstance(changes[0], governance.PlannedRollout)
    action = decode_action(start_rollout(**fields), 0)
    assert changes[0].name == f"rollout:markets.{action.market}.{rollout.PARAMS[action.param][0]}"


def test_a_market_that_is_not_active_cannot_start_a_rollout():
    state = gov_chain().state
    state.markets[ETH].status = "paused"
    with pytest.raises(ProtocolError) as error:
        governance.compute_action_changes(state, decode_action(start_rollout(), 0))
    assert (error.value.code, error.value.fields["status"]) == ("market_not_active", "paused")


def test_one_active_rollout_per_market_and_parameter():
    chain = gov_chain()
    begin(chain)
    with pytest.raises(ProtocolError) as error:
        governance.compute_action_changes(chain.state, decode_action(start_rollout(target="25"), 0))
    assert error.value.code == "rollout_in_progress"
    other = decode_action(start_rollout(market=BTC, param="min_order_size", target="0.001", steps=2), 0)
    governance.compute_action_changes(chain.state, other)                      # another parameter: fine


@pytest.mark.parametrize("other", [
    start_rollout(target="25"),                                                 # a second rollout of the cap
    {"type": "set_market_params", "market": ETH, "max_open_interest": "10"},    # a direct change of the cap
])
def test_a_proposal_may_not_start_a_rollout_of_a_parameter_it_also_changes(other):
    state = gov_chain().state
    actions = (decode_action(start_rollout(target="16"), 0), decode_action(other, 1))
    with pytest.raises(ProtocolError) as error:
        governance.compute_proposal_changes(state, actions)
    assert error.value.code == "conflicting_rollout"


# ------------------------------------------------------------------------------------------- through a proposal
def test_a_risk_reducing_rollout_runs_from_a_proposal_to_completion():
    chain = gov_chain()
    pid = pass_and_queue(chain, start_rollout(target="16", gates={"min_insurance_fund": "100000"}))
    assert chain.state.proposals[pid].risk_class == "risk_reducing"
    result = chain.block([(ALICE, execute(pid))], advance_s=DAY_S)
    assert result.results == [{"ok": True}]
    executed_ms = chain.state.time_ms
    assert of_type(result.events, "rollout_started") == [
        {"type": "rollout_started", "rollout_id": 1, "market": ETH, "param": "max_open_interest", "start": ETH_CAP,
         "target": 160_000, "steps": 4, "interval_s": 60, "next_step_ms": executed_ms + 60_000, "proposal_id": pid}]
    assert of_type(result.events, "param_changed") == [] and cap(chain) == ETH_CAP   # nothing moves yet
    values = []
    for step in range(1, 5):
        events = at(chain, executed_ms + step * 60_000)
        values.append(cap(chain))
        assert of_type(events, "rollout_step")[0]["step"] == step
    assert values == [190_000, 180_000, 170_000, 160_000]
    assert of_type(events, "rollout_completed") == [
        {"type": "rollout_completed", "rollout_id": 1, "market": ETH, "param": "max_open_interest", "value": 160_000}]
    record = chain.state.rollouts[1]
    assert (record.status, record.step, record.ended_height) == ("completed", 4, chain.state.height)
    source = ParamSource("rollout", "1")
    assert transparency.parameter_history(chain.state, CAP_NAME) == [
        ParamHistoryEntry(CAP_NAME, 200_000 - 10_000 * (i - 1), 200_000 - 10_000 * i, 9 + i, source)
        for i in range(1, 5)]


def test_a_direct_change_of_the_parameter_halts_its_rollout():
    chain = gov_chain()
    begin(chain, target="16", steps=20, interval_s=1)                         # 2,000 lots per second
    pid = pass_and_queue(chain, {"type": "set_market_params", "market": ETH, "max_open_interest": "10"})
    steps = chain.state.rollouts[1].step
    assert steps == 8 and cap(chain) == ETH_CAP - 8 * 2_000                    # one step per block of the vote
    result = chain.block([(ALICE, execute(pid))], advance_s=DAY_S)
    assert of_type(result.events, "rollout_halted") == [
        {"type": "rollout_halted", "rollout_id": 1, "market": ETH, "param": "max_open_interest", "step": steps,
         "reason": "superseded", "source": "proposal", "ref": pid}]
    assert of_type(result.events, "rollout_step") == []
    assert cap(chain) == 100_000 and chain.state.rollouts[1].status == "halted"


def test_setting_the_parameter_to_its_current_value_freezes_the_rollout():
    chain = gov_chain()
    begin(chain, target="16", steps=2, interval_s=3 * DAY_S)
    at(chain, chain.state.time_ms + 3 * DAY_S * 1000)                          # step 1: 180,000; step 2 in 3 days
    pid = pass_and_queue(chain, {"type": "set_market_params", "market": ETH, "max_open_interest": "18"})
    assert chain.state.proposals[pid].risk_class == "neutral"
    ok(chain, (BOB, execute(pid)), advance_s=2 * DAY_S)
    assert (chain.state.rollouts[1].status, chain.state.rollouts[1].halt_reason) == ("halted", "superseded")
    assert cap(chain) == 180_000


# ------------------------------------------------------------------------------------------- timing
def test_a_step_waits_for_its_interval_of_block_time():
    chain = gov_chain()
    started = begin(chain, interval_s=60)
    created_ms = chain.state.time_ms
    assert started.next_step_ms == created_ms + 60_000
    assert of_type(at(chain, created_ms + 59_999), "rollout_step") == []     # one millisecond early
    assert of_type(at(chain, created_ms + 60_000), "rollout_step")[0]["value"] == 225_000
    late_ms = created_ms + 60_000 + 500_000                                    # a late block: one step only,
    assert [e["value"] for e in of_type(at(chain, late_ms), "rollout_step")] == [250_000]
    assert chain.state.rollouts[1].next_step_ms == late_ms + 60_000            # the next counts from this step
    assert of_type(at(chain, late_ms + 59_000), "rollout_step") == []


# ------------------------------------------------------------------------------------------- gates
def bump(chain: Chain, *, fund: int = 0, bad_debt: int = 0, liquidations: int = 0) -> None:
    """Move the gates' inputs as the liquidation engine would (in micro-USDC and events)."""
    state = chain.state
    state.insurance_funds["cross"] += fund
    state.bad_debt["cross"] = state.bad_debt.get("cross", 0) + bad_debt
    state.liquidation_counts[ETH] = state.liquidation_counts.get(ETH, 0) + liquidations
    state.touch(("global",))
    state.touch(("liquidations", ETH))


GATE_CASES = [
    # (gates, inputs before step 1 (at the bound: holds), then before step 2 (one unit past it), observed, limit)
    ({"min_insurance_fund": "99999"}, {"fund": -USDC}, {"fund": -1}, 99_998_999_999, 99_999_000_000),
    ({"max_bad_debt": "5"}, {"bad_debt": 5 * USDC}, {"bad_debt": 5 * USDC + 1}, 5_000_001, 5_000_000),
    ({"max_liquidations": 2}, {"liquidations": 2}, {"liquidations": 3}, 3, 2),
]


@pytest.mark.parametrize("gates, holds, breaks, observed, limit", GATE_CASES)
def test_each_gate_holds_at_its_bound_and_breaks_one_unit_past_it(gates, holds, breaks, observed, limit):
    chain = gov_chain()
    begin(chain, gates=gates, interval_s=10)
    bump(chain, **holds)
    assert of_type(at(chain, chain.state.time_ms + 10_000), "rollout_step")[0]["step"] == 1
    bump(chain, **breaks)
    events = at(chain, chain.state.time_ms + 10_000)
    gate = next(iter(gates))
    assert of_type(events, "rollout_halted") == [
        {"type": "rollout_halted", "rollout_id": 1, "market": ETH, "param": "max_open_interest", "step": 1,
         "reason": gate, "gate": gate, "observed": observed, "limit": limit}]
    assert of_type(events, "rollout_step") == [] and cap(chain) == 225_000     # halted where it stood


def test_counters_are_measured_since_the_previous_step():
    chain = gov_chain()
    begin(chain, gates={"max_liquidations": 1, "max_bad_debt": "1"}, interval_s=10)
    for _ in range(3):                                                         # one of each per window: fine
        bump(chain, liquidations=1, bad_debt=USDC)
        assert of_type(at(chain, chain.state.time_ms + 10_000), "rollout_step")
    assert chain.state.rollouts[1].step == 3 and chain.state.liquidation_counts[ETH] == 3


def test_a_breach_with_revert_puts_the_start_value_back():
    chain = gov_chain()
    begin(chain, revert_on_breach=True, interval_s=10)
    at(chain, chain.state.time_ms + 10_000)
    at(chain, chain.state.time_ms + 10_000)
    assert cap(chain) == 250_000
    bump(chain, liquidations=1)
    events = at(chain, chain.state.time_ms + 10_000)
    assert [e["type"] for e in events if e["type"].startswith(("rollout", "param"))] == [
        "rollout_halted", "param_changed", "rollout_reverted"]
    assert of_type(events, "param_changed") == [{
        "type": "param_changed", "name": CAP_NAME, "value": ETH_CAP, "old": 250_000, "height": chain.state.height,
        "source": "rollout", "proposal_id": None, "proposal_number": None, "ref": "1"}]
    assert of_type(events, "rollout_reverted")[0]["value"] == ETH_CAP
    record = chain.state.rollouts[1]
    assert (cap(chain), record.status, record.halt_reason, record.reverted) == (
        ETH_CAP, "halted", "max_liquidations", True)


def test_a_breach_before_the_first_step_has_nothing_to_revert():
    chain = gov_chain()
    begin(chain, revert_on_breach=True, interval_s=10)
    bump(chain, liquidations=1)
    events = at(chain, chain.state.time_ms + 10_000)
    assert [e["type"] for e in events if e["type"].startswith(("rollout", "param"))] == ["rollout_halted"]
    assert chain.state.rollouts[1].reverted is False and cap(chain) == ETH_CAP


def test_a_breach_without_revert_leaves_the_value_where_it_stood():
    chain = gov_chain()
    begin(chain, interval_s=10)
    at(chain, chain.state.time_ms + 10_000)
    bump(chain, liquidations=1)
    at(chain, chain.state.time_ms + 10_000)
    assert (cap(chain), chain.state.rollouts[1].status) == (225_000, "halted")


# ------------------------------------------------------------------------------------------- market status
def test_a_market_that_leaves_active_halts_its_rollout_at_the_end_of_the_block():
    chain = gov_chain()
    begin(chain, interval_s=10, revert_on_breach=True)
    at(chain, chain.state.time_ms + 10_000)                                    # step 1
    # as a governance pause would
    governance.apply_change(chain.state, governance.ParamPath(governance.ParamGroup.MARKET, ETH, "status"), "paused")
    events = at(chain, chain.state.time_ms + 1_000)                            # before the next step is due
    assert of_type(events, "rollout_halted") == [
        {"type": "rollout_halted", "rollout_id": 1, "market": ETH, "param": "max_open_interest", "step": 1,
         "reason": "market_not_active", "status": "paused"}]
    assert cap(chain) == 225_000                                               # no revert: not a gate breach


@pytest.mark.parametrize("scope, market", [("market", ETH), ("trading", None), ("reduce_only", ETH)])
def test_a_due_step_waits_while_a_guardian_pause_restricts_the_market(scope, market):
    chain = Chain(guardian_genesis())
    begin(chain, interval_s=10)
    due_ms = chain.state.rollouts[1].next_step_ms
    ok(chain, (GUARDIAN, pause(scope, 100, market)))                          # in force until start + 100 s
    pause_end_ms = chain.state.time_ms + 100_000
    assert of_type(at(chain, due_ms), "rollout_step") == []                    # due, but the market is restricted
    assert of_type(at(chain, pause_end_ms - 1), "rollout_step") == []
    record = chain.state.rollouts[1]
    assert (cap(chain), record.status, record.step) == (ETH_CAP, "active", 0)  # waiting, not halted
    events = at(chain, pause_end_ms)                                           # the pause is over: the step runs
    assert [e["type"] for e in events if e["type"] in ("pause_expired", "rollout_step")] == [
        "pause_expired", "rollout_step"]
    assert of_type(events, "rollout_step")[0]["value"] == 225_000 and record.next_step_ms == pause_end_ms + 10_000


def test_a_guardian_pause_of_another_market_does_not_hold_a_rollout():
    chain = Chain(guardian_genesis())
    begin(chain, interval_s=10)
    due_ms = chain.state.rollouts[1].next_step_ms
    ok(chain, (GUARDIAN, pause("market", 100, BTC)), (GUARDIAN, pause("withdrawals", 100)))
    assert of_type(at(chain, due_ms), "rollout_step")[0]["value"] == 225_000


def test_delisting_the_market_halts_its_rollout():
    chain = gov_chain()
    begin(chain, target="16")
    pid = pass_and_queue(chain, {"type": "delist_market", "market": ETH})
    result = chain.block([(ALICE, execute(pid))], advance_s=DAY_S)
    halted = of_type(result.events, "rollout_halted")
    assert [(e["reason"], e["status"]) for e in halted] == [("market_not_active", "final_settlement")]
    assert chain.state.rollouts[1].ended_height == chain.state.height


# ------------------------------------------------------------------------------------------- state
def test_rollouts_and_liquidation_counts_survive_a_snapshot():
    chain = gov_chain()
    begin(chain, gates={"max_liquidations": 5, "min_insurance_fund": "1", "max_bad_debt": "2"}, interval_s=10)
    bump(chain, liquidations=2)
    at(chain, chain.state.time_ms + 10_000)
    document = state_to_document(chain.state)
    restored = state_from_document(document)
    assert restored.state_hash == chain.state.state_hash
    assert restored.rollouts == chain.state.rollouts and restored.liquidation_counts == {ETH: 2}
    assert canonical_bytes(state_to_document(restored)) == canonical_bytes(document)


def test_a_refused_submission_changes_nothing():
    assert rejected(gov_chain(), ALICE, submit_proposal(start_rollout(steps=0))) == "invalid_rollout_steps"


def test_the_proposal_leaf_does_not_depend_on_the_order_of_gate_keys():
    leaves = []
    for gates in ({"min_insurance_fund": "1", "max_bad_debt": "2"}, {"max_bad_debt": "2", "min_insurance_fund": "1"}):
        chain = gov_chain()
        pid = ok(chain, (ALICE, submit_proposal(start_rollout(target="16", gates=gates))))[0]["proposal_id"]
        leaves.append((pid, serialize_leaf(chain.state, ("proposal", pid))))
    assert leaves[0] == leaves[1]                  # the same id (keys sorted) and the same hashed value
