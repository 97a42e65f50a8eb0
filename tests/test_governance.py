"""Governance proposals (``bastion.core.governance``) with exact numbers.

The chain of ``gov_chain``: ALICE 100 BGOV, BOB 300, CAROL 200 (each self-delegated), DAVE 400 (not
delegated): total supply 1,000 BGOV. Rules (``GOVERNANCE``): voting delay 1 block, proposal
threshold 10 BGOV, min deposit 5, execution window 1 h, late-quorum extension 3 blocks; quorum /
approval / period / timelock / holding age per class: risk_reducing 10% / 50% / 5 blocks / 1 d / 0,
neutral 10% / 50% / 5 / 2 d / 0, risk_increasing 20% / 60% / 10 / 7 d / 2, critical 30% / 66.7% /
10 / 14 d / 5. A proposal submitted in block 1 has snapshot 2 and takes votes in blocks 3..deadline
(7 for 5-block periods, 12 for 10-block ones); the deposit (5) leaves the proposer's votes. The
council is ``COUNCIL`` with threshold 2: a risk_increasing or critical proposal executes only with
two of its pass attestations (``bastion.core.governance.council``, tested in ``test_council.py``).
"""
from __future__ import annotations

import copy
import json

import pytest

from bastion.core import governance, transparency, votes
from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import decode_action
from bastion.core.snapshot import canonical_bytes, state_from_document, state_to_document
from bastion.core.state import ParamHistoryEntry, ParamSource
from builders import (
    ALICE, BOB, BTC, CAROL, COUNCIL, DAVE, ETH, ORACLE, Chain, account, cancel_proposal, council_attest, delegate,
    execute, genesis, queue, oracle_update, registered_report, submit_proposal, transfer_bgov, vote,
)
from builders import change_rows

BGOV = votes.BGOV
DAY_S = 86_400
GOVERNANCE = {
    "voting_delay_blocks": 1, "proposal_threshold": "10", "min_deposit": "5", "proposal_fee": "0",
    "execution_window_s": 3600,
    "veto_threshold": "1/3", "late_quorum_extension_blocks": 3,
    "max_live_proposals": 3,            # several proposals of one proposer at once (the default is 1)
    "tiers": {
        "risk_reducing": {"quorum": "0.1", "approval_threshold": "0.5", "voting_period_blocks": 5,
                          "timelock_s": DAY_S, "min_holding_age_blocks": 0},
        "neutral": {"quorum": "0.1", "approval_threshold": "0.5", "voting_period_blocks": 5,
                    "timelock_s": 2 * DAY_S, "min_holding_age_blocks": 0},
        "risk_increasing": {"quorum": "0.2", "approval_threshold": "0.6", "voting_period_blocks": 10,
                            "timelock_s": 7 * DAY_S, "min_holding_age_blocks": 2},
        "critical": {"quorum": "0.3", "approval_threshold": "0.667", "voting_period_blocks": 10,
                     "timelock_s": 14 * DAY_S, "min_holding_age_blocks": 5},
    },
}
RAISE_INSURANCE_SHARE = {"type": "set_fee_params", "insurance_share": "0.2"}   # 0.1 -> 0.2: risk reducing


def gov_genesis(**governance_overrides) -> dict:
    accounts = []
    for owner, amount, delegatee in ((ALICE, "100", ALICE), (BOB, "300", BOB), (CAROL, "200", CAROL),
                                     (DAVE, "400", None)):
        entry = {**account(owner), "bgov": amount}
        if delegatee:
            entry["delegate"] = delegatee
        accounts.append(entry)
    return genesis(accounts=accounts, governance={**copy.deepcopy(GOVERNANCE), **governance_overrides},
                   council={"members": list(COUNCIL), "threshold": 2, "stress_reports": [registered_report()]})


def gov_chain(**governance_overrides) -> Chain:
    return Chain(gov_genesis(**governance_overrides))


def ok(chain: Chain, *txs, advance_s: int = 1) -> list[dict]:
    """One block; every tx must be accepted; returns the results."""
    result = chain.block(list(txs), advance_s=advance_s)
    assert all(r["ok"] for r in result.results), result.results
    return result.results


def rejected(chain: Chain, sender: str, msg: dict) -> str:
    """Submit in an open block; the rejection must leave the state hash unchanged; returns the code."""
    chain.open_block()
    before = chain.full_hash()
    result = chain.submit(sender, msg)
    assert not result["ok"]
    assert chain.full_hash() == before
    chain.end_block()
    return result["code"]


def empty_blocks(chain: Chain, count: int) -> None:
    for _ in range(count):
        ok(chain)


def propose(chain: Chain, *actions: dict, sender: str = ALICE) -> str:
    return ok(chain, (sender, submit_proposal(*actions)))[0]["proposal_id"]


def proposal(chain: Chain, proposal_id: str):
    return chain.state.proposals[proposal_id]


# ------------------------------------------------------------------------------------------- tally
def test_tally_counts_each_option_and_returns_the_deposit():
    chain = gov_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)                       # height 1: ALICE 100 -> 95 votes
    assert votes.get_balance(chain.state, ALICE) == 95 * BGOV
    ok(chain)                                                         # height 2: snapshot, active at its end
    ok(chain, (ALICE, vote(pid, "yes")), (BOB, vote(pid, "no")), (CAROL, vote(pid, "abstain")))
    p = proposal(chain, pid)
    assert (p.yes, p.no, p.abstain, p.veto) == (95 * BGOV, 300 * BGOV, 200 * BGOV, 0)
    empty_blocks(chain, 4)                                            # heights 4..7: tallied at the end of 7
    # quorum 10% of 1,000 = 100 <= 595 cast; approval 95 / 395 = 24% <= 50%: defeated
    assert p.status == "defeated" and p.closed_height == 7
    assert p.deposit_state == "returned" and votes.get_balance(chain.state, ALICE) == 100 * BGOV
    assert votes.get_votes(chain.state, ALICE) == 100 * BGOV


def test_approval_must_exceed_the_threshold_strictly():
    chain = gov_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE, sender=BOB)           # BOB 300 -> 295 votes
    ok(chain)
    ok(chain, (CAROL, vote(pid, "yes")), (ALICE, vote(pid, "no")), (DAVE, delegate(delegatee=DAVE)))
    empty_blocks(chain, 4)
    # 200 yes / (200 + 100) = 66.7% > 50%: succeeded (DAVE's delegation after the snapshot counts for nothing)
    assert proposal(chain, pid).status == "succeeded"
    chain2 = gov_chain()
    pid2 = propose(chain2, RAISE_INSURANCE_SHARE, sender=BOB)
    ok(chain2)
    ok(chain2, (ALICE, vote(pid2, "yes")), (CAROL, vote(pid2, "abstain")))
    empty_blocks(chain2, 4)
    assert proposal(chain2, pid2).status == "succeeded"                # 100 / 100 > 50%


@pytest.mark.parametrize("quorum, status", [
    ("0.095", "succeeded"),   # quorum 95 BGOV, ALICE's 95 alone reach it (>=)
    ("0.096", "defeated"),    # quorum 96 BGOV: one unit short
])
def test_quorum_is_reached_at_equality(quorum, status):
    tiers = copy.deepcopy(GOVERNANCE["tiers"])
    tiers["risk_reducing"]["quorum"] = quorum
    tiers["neutral"]["quorum"] = "0.1"
    chain = gov_chain(tiers=tiers)
    pid = propose(chain, RAISE_INSURANCE_SHARE)
    ok(chain)
    ok(chain, (ALICE, vote(pid, "yes")))
    empty_blocks(chain, 4)
    assert proposal(chain, pid).status == status


def test_quorum_counts_abstain_votes():
    chain = gov_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)
    ok(chain)
    ok(chain, (ALICE, vote(pid, "yes")), (CAROL, vote(pid, "abstain")))
    empty_blocks(chain, 4)
    # 95 yes alone would miss the 100 quorum; with 200 abstaining 295 >= 100; approval 95 / 95
    assert proposal(chain, pid).status == "succeeded"


# ------------------------------------------------------------------------------------------- veto
def test_a_veto_share_above_one_third_vetoes_and_burns_the_deposit():
    chain = gov_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)
    ok(chain)
    ok(chain, (ALICE, vote(pid, "yes")), (CAROL, vote(pid, "yes")), (BOB, vote(pid, "veto")))
    empty_blocks(chain, 4)
    p = proposal(chain, pid)
    # veto 300 / (95 + 200 + 300) = 50.4% > 1/3
    assert p.status == "vetoed" and p.deposit_state == "burned"
    assert votes.get_total_supply(chain.state) == 995 * BGOV
    assert votes.get_balance(chain.state, ALICE) == 95 * BGOV
    assert votes.get_past_total_supply(chain.state, 2) == 1000 * BGOV       # the snapshot's quorum stays exact
    assert chain.state.total_supply_checkpoints[-1] == (7, 995 * BGOV)


def test_a_veto_share_of_exactly_one_third_is_not_a_veto_and_abstain_does_not_dilute_it():
    chain = gov_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE, sender=BOB)           # BOB 295 votes
    ok(chain)
    ok(chain, (ALICE, vote(pid, "veto")), (CAROL, vote(pid, "yes")), (BOB, vote(pid, "abstain")))
    empty_blocks(chain, 4)
    # veto 100 / (200 + 0 + 100) = exactly 1/3: not above; the 295 abstaining do not enter the share
    assert proposal(chain, pid).status == "succeeded"


# ------------------------------------------------------------------------------------------- late quorum
def test_a_quorum_first_reached_late_extends_the_deadline_once():
    chain = gov_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)                       # deadline 2 + 5 = 7
    empty_blocks(chain, 4)                                            # heights 2..5
    ok(chain, (BOB, vote(pid, "yes")))                                # height 6 > 7 - 3: deadline 6 + 3 = 9
    p = proposal(chain, pid)
    assert (p.quorum_height, p.deadline_height, p.extended) == (6, 9, True)
    empty_blocks(chain, 1)                                            # height 7: still active
    assert p.status == "active"
    ok(chain, (CAROL, vote(pid, "no")))                               # height 8: accepted
    assert p.deadline_height == 9                                     # the quorum was already reached: no second move
    ok(chain)                                                         # height 9: tallied
    assert p.status == "succeeded"                                    # 300 / 500 = 60%
    assert rejected(chain, ALICE, vote(pid, "no")) == "voting_closed"


def test_a_quorum_reached_before_the_last_blocks_does_not_extend():
    chain = gov_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)
    empty_blocks(chain, 2)                                            # heights 2..3
    ok(chain, (BOB, vote(pid, "yes")))                                # height 4 = 7 - 3: not within the last 3
    p = proposal(chain, pid)
    assert (p.quorum_height, p.deadline_height, p.extended) == (4, 7, False)


# ------------------------------------------------------------------------------------------- timelocks
TIER_CASES = [
    # (action, risk class, voting period, timelock seconds)
    (RAISE_INSURANCE_SHARE, "risk_reducing", 5, DAY_S),
    ({"type": "set_fee_params", "insurance_share": "0.1"}, "neutral", 5, 2 * DAY_S),      # unchanged
    ({"type": "set_market_params", "market": BTC, "taker_fee": "0.0004"}, "risk_increasing", 10, 7 * DAY_S),
    ({"type": "set_governance_params", "params": {"voting_delay_blocks": 2}}, "critical", 10, 14 * DAY_S),
]


@pytest.mark.parametrize("action, risk_class, period, timelock_s", TIER_CASES)
def test_each_risk_class_waits_its_own_timelock(action, risk_class, period, timelock_s):
    chain = gov_chain()
    result = ok(chain, (ALICE, submit_proposal(action)))[0]
    pid = result["proposal_id"]
    assert result["risk_class"] == risk_class
    ok(chain)
    ok(chain, (ALICE, vote(pid, "yes")), (BOB, vote(pid, "yes")))     # 395 of 1,000: above every quorum
    empty_blocks(chain, period - 1)                                   # tallied at the end of 2 + period
    assert proposal(chain, pid).status == "succeeded"
    ok(chain, (CAROL, queue(pid)))
    queued_ms = chain.state.time_ms
    if risk_class in ("risk_increasing", "critical"):                 # the stress gate: 2 of 3, 2 s before
        ok(chain, *[(member, council_attest(pid)) for member in COUNCIL[:2]], advance_s=timelock_s - 2)
    chain.next_time_ms = queued_ms + timelock_s * 1000 - 1000         # one second early
    assert rejected(chain, ALICE, execute(pid)) == "timelock_not_elapsed"
    chain.next_time_ms = queued_ms + timelock_s * 1000                # exactly at the timelock
    chain.open_block()
    assert chain.submit(DAVE, execute(pid))["ok"]
    chain.end_block()
    assert proposal(chain, pid).status == "executed"


def test_execution_after_the_window_is_too_late_and_the_proposal_expires():
    chain = gov_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)
    ok(chain)
    ok(chain, (BOB, vote(pid, "yes")))
    empty_blocks(chain, 4)
    ok(chain, (BOB, queue(pid)))
    last_ms = chain.state.time_ms + DAY_S * 1000 + 3600 * 1000        # timelock 1 d, window 1 h (inclusive)
    chain.next_time_ms = last_ms + 1000
    assert rejected(chain, ALICE, execute(pid)) == "proposal_expired"  # lazily too late ...
    assert proposal(chain, pid).status == "expired"                    # ... and expired at the end of that block
    assert rejected(chain, ALICE, execute(pid)) == "proposal_not_executable"


# ------------------------------------------------------------------------------------------- classification
CLASSIFICATION = [
    # set_market_params (BTC: tier 0 IMF 2%, fees 0.01% / 0.05%, min size 0.0001, no OI cap; ETH: tier 2, OI cap 20)
    ({"type": "set_market_params", "market": ETH, "liquidity_tier": 1}, "risk_increasing"),   # IMF 10% -> 5%
    ({"type": "set_market_params", "market": BTC, "liquidity_tier": 1}, "risk_reducing"),     # IMF 2% -> 5%, caps set
    ({"type": "set_market_params", "market": BTC, "liquidity_tier": 0}, "neutral"),           # same tier
    # IMF 2% -> 10% and maintenance 2% x 0.6 = 1.2% -> 10% x 0.5 = 5%: both margins rise although the
    # maintenance fraction falls (the product is compared, not the fraction)
    ({"type": "set_market_params", "market": BTC, "liquidity_tier": 2}, "risk_reducing"),
    ({"type": "set_market_params", "market": ETH, "max_open_interest": "30"}, "risk_increasing"),  # higher cap
    ({"type": "set_market_params", "market": ETH, "max_open_interest": "10"}, "risk_reducing"),    # lower cap
    ({"type": "set_market_params", "market": BTC, "maker_fee": "0"}, "risk_increasing"),      # lower fee
    ({"type": "set_market_params", "market": BTC, "taker_fee": "0.001"}, "risk_reducing"),    # higher fee
    ({"type": "set_market_params", "market": BTC, "min_order_size": "0.001"}, "risk_reducing"),  # larger minimum
    ({"type": "set_market_params", "market": BTC, "status": "paused"}, "risk_reducing"),      # pause
    ({"type": "set_market_params", "market": BTC, "status": "active"}, "neutral"),            # already active
    # strictest
    ({"type": "set_market_params", "market": BTC, "taker_fee": "0.001", "maker_fee": "0"}, "risk_increasing"),
    # set_liquidity_tier (tier 1: IMF 5%, maintenance 0.6, caps 40M / 100M)
    ({"type": "set_liquidity_tier", "tier": 1, "initial_margin": "0.04"}, "risk_increasing"),
    ({"type": "set_liquidity_tier", "tier": 1, "maintenance_fraction": "0.7"}, "risk_reducing"),
    ({"type": "set_liquidity_tier", "tier": 1, "oi_upper_cap": "200000000"}, "risk_increasing"),
    ({"type": "set_liquidity_tier", "tier": 1, "oi_lower_cap": "10000000"}, "risk_reducing"),
    ({"type": "set_liquidity_tier", "tier": 1, "oi_upper_cap": "0"}, "risk_increasing"),     # 0 = no cap
    # judged as one tier: IMF 5% -> 10% with fraction 0.6 -> 0.5 raises maintenance 3% -> 5% (the fraction
    # alone falls); IMF 5% -> 6% with fraction 0.6 -> 0.4 lowers maintenance 3% -> 2.4%
    ({"type": "set_liquidity_tier", "tier": 1, "initial_margin": "0.1", "maintenance_fraction": "0.5"},
     "risk_reducing"),
    ({"type": "set_liquidity_tier", "tier": 1, "initial_margin": "0.06", "maintenance_fraction": "0.4"},
     "risk_increasing"),
    # set_fee_params (insurance share 10%)
    ({"type": "set_fee_params", "insurance_share": "0.05"}, "risk_increasing"),
    ({"type": "set_fee_params", "insurance_share": "0.2"}, "risk_reducing"),
    # set_liquidation_params (max fee 1.5%, loss per block 1,000,000, pause 50 blocks)
    ({"type": "set_liquidation_params", "max_liquidation_fee": "0.01"}, "risk_increasing"),
    ({"type": "set_liquidation_params", "max_liquidation_fee": "0.02"}, "risk_reducing"),
    ({"type": "set_liquidation_params", "max_insurance_loss_per_block": "2000000"}, "risk_increasing"),
    ({"type": "set_liquidation_params", "withdrawal_pause_blocks": 100}, "risk_reducing"),
    # set_governance_params: always critical, even unchanged
    ({"type": "set_governance_params", "params": {}}, "critical"),
    # delist_market
    ({"type": "delist_market", "market": ETH}, "risk_reducing"),
]


@pytest.mark.parametrize("action, risk_class", CLASSIFICATION)
def test_the_protocol_classifies_each_action(action, risk_class):
    state = build_state(gov_genesis())
    assert governance.compute_proposal_changes(state, (decode_action(action, 0),))[1] == risk_class


def test_a_proposal_takes_the_strictest_class_of_its_actions():
    state = build_state(gov_genesis())
    actions = (decode_action(RAISE_INSURANCE_SHARE, 0),
               decode_action({"type": "set_market_params", "market": BTC, "maker_fee": "0"}, 1))
    assert governance.compute_proposal_changes(state, actions)[1] == "risk_increasing"


@pytest.mark.parametrize("tiers, field", [
    ({"critical": {"quorum": "0.19"}}, "params.tiers.critical.quorum_ppm"),              # below risk_increasing's 20%
    ({"neutral": {"timelock_s": 3600}}, "params.tiers.neutral.timelock_ms"),             # shorter than risk_reducing's
    # lower tier stricter
    ({"risk_reducing": {"voting_period_blocks": 6}}, "params.tiers.neutral.voting_period_blocks"),
])
def test_governance_params_where_a_higher_tier_is_laxer_are_refused(tiers, field):
    state = build_state(gov_genesis())
    action = decode_action({"type": "set_governance_params", "params": {"tiers": tiers}}, 0)
    with pytest.raises(ProtocolError) as error:
        governance.compute_action_changes(state, action)
    assert (error.value.code, error.value.fields["field"]) == ("laxer_higher_tier", field)


def test_the_late_quorum_extension_is_bounded_by_the_shortest_voting_period():
    state = build_state(gov_genesis())
    shortest = min(t.voting_period_blocks for t in state.governance.tiers.values())
    at_bound = decode_action({"type": "set_governance_params", "params": {"late_quorum_extension_blocks": shortest}}, 0)
    assert ("governance.late_quorum_extension_blocks", state.governance.late_quorum_extension_blocks, shortest,
            "critical") in change_rows(governance.compute_action_changes(state, at_bound))
    above = decode_action({"type": "set_governance_params",
                           "params": {"late_quorum_extension_blocks": shortest + 1}}, 0)
    with pytest.raises(ProtocolError) as error:
        governance.compute_action_changes(state, above)
    assert (error.value.code, error.value.fields["field"]) == ("invalid_field", "params.late_quorum_extension_blocks")


# ------------------------------------------------------------------------------------------- stress thresholds
def test_the_stress_thresholds_are_governance_parameters_with_genesis_defaults():
    state = build_state(gov_genesis())
    g = state.governance

    assert (g.stress_max_depletion_probability_ppm, g.stress_max_var99_loss_ppm_of_fund,
            g.stress_max_es99_loss_ppm_of_fund) == (10_000, 500_000, 1_000_000)   # 1%, 50% and 100%
    assert g.stress_max_loss_to_traders_usdc == 0                                  # no loss moved onto traders
    assert governance.format_governance_params(g)["stress"] == {
        "max_depletion_probability": "0.01", "max_var99_loss_of_fund": "0.5", "max_es99_loss_of_fund": "1",
        "max_loss_to_traders": "0"}


def test_genesis_stress_thresholds_round_trip_through_the_hash_and_a_snapshot():
    stress = {"max_depletion_probability": "0.002", "max_var99_loss_of_fund": "2.5"}
    state = build_state(gov_genesis(stress=stress))
    default = build_state(gov_genesis())

    assert (state.governance.stress_max_depletion_probability_ppm, state.governance.stress_max_var99_loss_ppm_of_fund,
            state.governance.stress_max_es99_loss_ppm_of_fund) == (2_000, 2_500_000, 1_000_000)  # es99 kept
    assert state.state_hash != default.state_hash            # the ("governance",) leaf holds them
    restored = state_from_document(json.loads(canonical_bytes(state_to_document(state))))
    assert restored.governance == state.governance
    assert restored.state_hash == compute_state_hash_full(restored) == state.state_hash
    assert build_state(gov_genesis(stress=governance.format_governance_params(state.governance)["stress"])
                       ).state_hash == state.state_hash


def test_set_governance_params_changes_the_stress_thresholds_as_critical_changes():
    state = build_state(gov_genesis())
    action = decode_action({"type": "set_governance_params", "params": {"stress": {
        "max_depletion_probability": "0", "max_es99_loss_of_fund": "0.75"}}}, 0)

    changes = [c for c in governance.compute_action_changes(state, action) if c.old != c.new]

    assert change_rows(changes) == [("governance.stress_max_depletion_probability_ppm", 10_000, 0, "critical"),
                                    ("governance.stress_max_es99_loss_ppm_of_fund", 1_000_000, 750_000, "critical")]
    governance.apply_change(state, changes[1].path, changes[1].new)
    assert state.governance.stress_max_es99_loss_ppm_of_fund == 750_000
    assert compute_state_hash_full(state) != build_state(gov_genesis()).state_hash


@pytest.mark.parametrize("stress, code, field", [
    ({"max_depletion_probability": "1.000001"}, "invalid_field", "params.stress.max_depletion_probability"),
    ({"max_var99_loss_of_fund": "-0.1"}, "negative_value", "params.stress.max_var99_loss_of_fund"),
    ({"max_es99_loss_of_fund": "0.0000001"}, "too_many_decimals", "params.stress.max_es99_loss_of_fund"),
    ({"max_es99_loss_of_fund": 1}, "invalid_decimal", "params.stress.max_es99_loss_of_fund"),
    ({"max_loss": "0.1"}, "unknown_field", "params.stress.max_loss"),
    ("0.01", "invalid_field", "params.stress"),
])
def test_bad_stress_thresholds_are_refused(stress, code, field):
    state = build_state(gov_genesis())
    action = decode_action({"type": "set_governance_params", "params": {"stress": stress}}, 0)
    with pytest.raises(ProtocolError) as error:
        governance.compute_action_changes(state, action)
    assert (error.value.code, error.value.fields["field"]) == (code, field)


# ------------------------------------------------------------------------------------------- execution
def pass_and_queue(chain: Chain, *actions: dict) -> str:
    pid = propose(chain, *actions)
    ok(chain)
    ok(chain, (BOB, vote(pid, "yes")))
    empty_blocks(chain, 4)
    ok(chain, (BOB, queue(pid)))
    return pid


def test_execution_applies_every_change_and_emits_param_changed():
    chain = gov_chain()
    pid = pass_and_queue(chain, RAISE_INSURANCE_SHARE,
                         {"type": "set_market_params", "market": ETH, "min_order_size": "0.01"})
    epoch = chain.state.params_epoch
    result = chain.block([(ALICE, execute(pid))], advance_s=DAY_S)
    assert result.results == [{"ok": True}]
    assert chain.state.fees.insurance_share_ppm == 200_000
    assert chain.state.markets[ETH].min_order_lots == 100                # 0.01 with 4 size decimals
    assert chain.state.params_epoch == epoch + 1
    changed = [e for e in result.events if e["type"] == "param_changed"]
    assert changed == [
        {"type": "param_changed", "name": "fees.insurance_share_ppm", "value": 200_000, "old": 100_000, "height": 9,
         "source": "proposal", "proposal_id": pid, "proposal_number": 1},
        {"type": "param_changed", "name": f"markets.{ETH}.min_order_lots", "value": 100, "old": 10, "height": 9,
         "source": "proposal", "proposal_id": pid, "proposal_number": 1},
    ]
    source = ParamSource("proposal", pid, 1)
    assert transparency.parameter_history(chain.state) == [
        ParamHistoryEntry("fees.insurance_share_ppm", 100_000, 200_000, 9, source),
        ParamHistoryEntry(f"markets.{ETH}.min_order_lots", 10, 100, 9, source),
    ]
    assert transparency.parameter_history(chain.state, "fees.insurance_share_ppm") == [
        ParamHistoryEntry("fees.insurance_share_ppm", 100_000, 200_000, 9, source)]


def test_a_proposal_with_one_action_invalid_at_execution_changes_nothing():
    chain = gov_chain()
    delist = pass_and_queue(chain, {"type": "delist_market", "market": ETH})
    both = pass_and_queue(chain, RAISE_INSURANCE_SHARE,
                          {"type": "set_market_params", "market": ETH, "min_order_size": "0.01"})
    ok(chain, (ALICE, execute(delist)), advance_s=DAY_S)              # ETH is delisted (and settled at block end)
    assert chain.state.markets[ETH].status in ("final_settlement", "settled")
    assert rejected(chain, ALICE, execute(both)) == "market_delisted"
    assert chain.state.fees.insurance_share_ppm == 100_000              # the valid first action did not apply
    assert proposal(chain, both).status == "queued"


def test_delisting_puts_the_market_in_final_settlement_and_the_engine_settles_it():
    chain = gov_chain()
    pid = pass_and_queue(chain, {"type": "delist_market", "market": ETH})
    result = chain.block([(ALICE, execute(pid))], advance_s=DAY_S)
    assert {"type": "param_changed", "name": f"markets.{ETH}.status", "value": "final_settlement",
            "old": "active", "height": chain.state.height, "source": "proposal", "proposal_id": pid,
            "proposal_number": 1} in result.events
    assert chain.state.markets[ETH].status == "final_settlement"     # its oracle is stale after a day
    ok(chain, (ORACLE, oracle_update({ETH: "3000"})))
    assert chain.state.markets[ETH].status == "settled"


# ------------------------------------------------------------------------------------------- cancel
def test_anyone_may_cancel_once_the_proposer_fell_below_the_threshold_before_the_snapshot():
    chain = gov_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)                       # height 1: ALICE keeps 95 votes >= 10
    # height 2, the snapshot block: ALICE drops to 5 votes; while the snapshot is ahead only she may cancel
    chain.open_block()
    assert chain.submit(ALICE, transfer_bgov(to=DAVE, amount="90"))["ok"]
    assert chain.submit(BOB, cancel_proposal(pid))["code"] == "proposer_above_threshold"
    chain.end_block()
    # height 3: her votes over heights 0..2 fell to 5 < 10: anybody may cancel, the deposit comes back
    ok(chain, (BOB, cancel_proposal(pid)))
    p = proposal(chain, pid)
    assert p.status == "canceled" and p.deposit_state == "returned"
    assert votes.get_balance(chain.state, ALICE) == 10 * BGOV
    assert rejected(chain, BOB, cancel_proposal(pid)) == "proposal_not_cancelable"


def test_dropping_below_the_threshold_after_the_snapshot_neither_blocks_nor_opens_a_cancel():
    chain = gov_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)                       # height 1, snapshot 2
    ok(chain)
    ok(chain, (BOB, vote(pid, "yes")))                                # height 3
    ok(chain, (ALICE, transfer_bgov(to=DAVE, amount="90")))           # height 4: 5 votes now, 95 over 0..2
    assert rejected(chain, BOB, cancel_proposal(pid)) == "proposer_above_threshold"
    empty_blocks(chain, 3)                                            # tallied at the end of height 7
    ok(chain, (BOB, queue(pid)))                                      # the re-check at queue passes
    ok(chain, (BOB, execute(pid)), advance_s=DAY_S)
    assert chain.state.fees.insurance_share_ppm == 200_000


def test_the_proposer_cancelling_after_voting_started_burns_the_deposit():
    chain = gov_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)
    ok(chain)
    ok(chain, (ALICE, cancel_proposal(pid)))                          # height 3: active
    p = proposal(chain, pid)
    assert p.status == "canceled" and p.deposit_state == "burned"
    assert votes.get_balance(chain.state, ALICE) == 95 * BGOV
    assert votes.get_total_supply(chain.state) == 995 * BGOV


def test_a_flash_loan_inside_the_submission_block_does_not_pass_the_threshold():
    chain = gov_chain(proposal_threshold="300")                       # CAROL has 200 votes: below it
    chain.open_block()                                                # DAVE (400, undelegated) lends CAROL ...
    assert chain.submit(DAVE, transfer_bgov(to=CAROL, amount="400"))["ok"]     # ... 600 votes right now
    assert chain.submit(CAROL, submit_proposal(RAISE_INSURANCE_SHARE))["code"] == "below_proposal_threshold"
    assert chain.submit(CAROL, transfer_bgov(to=DAVE, amount="400"))["ok"]     # repaid in the same block
    chain.end_block()
    assert chain.state.proposals == {}
    ok(chain, (DAVE, transfer_bgov(to=CAROL, amount="400")))          # held over a block boundary: it counts
    assert ok(chain, (CAROL, submit_proposal(RAISE_INSURANCE_SHARE)))[0]["risk_class"] == "risk_reducing"


def test_one_live_proposal_per_proposer_by_default_and_the_fee_is_burned():
    chain = gov_chain(max_live_proposals=1, proposal_fee="2", voting_delay_blocks=3)   # pending through height 4
    pid = propose(chain, RAISE_INSURANCE_SHARE)
    assert rejected(chain, ALICE, submit_proposal({"type": "set_fee_params", "insurance_share": "0.3"})) == \
        "proposer_has_live_proposal"
    assert votes.get_balance(chain.state, ALICE) == (100 - 5 - 2) * BGOV
    assert votes.get_total_supply(chain.state) == 998 * BGOV
    ok(chain, (ALICE, cancel_proposal(pid)))                          # pending: deposit back, the fee is not
    assert votes.get_balance(chain.state, ALICE) == 98 * BGOV
    propose(chain, {"type": "set_fee_params", "insurance_share": "0.3"})   # no live proposal any more


def test_the_proposer_may_cancel_while_pending():
    chain = gov_chain()
    chain.open_block()
    pid = chain.submit(ALICE, submit_proposal(RAISE_INSURANCE_SHARE))["proposal_id"]
    assert chain.submit(ALICE, cancel_proposal(pid))["ok"]
    chain.end_block()
    assert proposal(chain, pid).status == "canceled"


# ------------------------------------------------------------------------------------------- errors
def test_nonexistent_versus_wrong_state_and_too_early_versus_too_late():
    chain = gov_chain()
    assert rejected(chain, ALICE, vote("00" * 32)) == "unknown_proposal"
    assert rejected(chain, ALICE, queue("00" * 32)) == "unknown_proposal"
    assert rejected(chain, ALICE, execute("00" * 32)) == "unknown_proposal"
    chain.open_block()
    pid = chain.submit(ALICE, submit_proposal(RAISE_INSURANCE_SHARE))["proposal_id"]
    chain.end_block()                                                  # height 1: pending
    assert rejected(chain, BOB, vote(pid)) == "voting_not_started"     # height 2 = snapshot: too early
    assert rejected(chain, BOB, queue(pid)) == "voting_not_ended"
    assert rejected(chain, BOB, execute(pid)) == "proposal_not_queued"
    ok(chain, (BOB, vote(pid, "no")))                                  # height 4
    assert rejected(chain, BOB, vote(pid, "yes")) == "already_voted"
    assert rejected(chain, DAVE, vote(pid, "yes")) == "no_voting_power"
    assert rejected(chain, CAROL, vote(pid, "maybe")) == "invalid_vote_option"
    empty_blocks(chain, 2)                                             # tallied at the end of 7: defeated
    assert rejected(chain, CAROL, vote(pid)) == "voting_closed"         # too late
    assert rejected(chain, CAROL, queue(pid)) == "proposal_not_succeeded"
    assert rejected(chain, CAROL, execute(pid)) == "proposal_not_executable"


def test_tokens_acquired_after_the_snapshot_count_for_nothing():
    chain = gov_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)
    ok(chain)                                                          # snapshot 2
    ok(chain, (DAVE, delegate(delegatee=DAVE)), (BOB, transfer_bgov(to=CAROL, amount="300")))
    assert rejected(chain, DAVE, vote(pid)) == "no_voting_power"
    ok(chain, (BOB, vote(pid, "yes")), (CAROL, vote(pid, "no")))       # weights at the snapshot: 300 and 200
    p = proposal(chain, pid)
    assert (p.yes, p.no) == (300 * BGOV, 200 * BGOV)


def test_the_holding_age_of_the_high_tiers_ignores_fresh_delegations():
    chain = gov_chain()
    ok(chain)                                                          # height 1
    ok(chain, (DAVE, delegate(delegatee=DAVE)))                        # height 2: DAVE 400 votes
    pid = propose(chain, {"type": "set_market_params", "market": BTC, "taker_fee": "0.0004"})  # height 3, snapshot 4
    ok(chain)
    # risk_increasing: min(votes at 4, votes at 4 - 2 = 2) = min(400, 400): held 2 blocks, counts
    assert ok(chain, (DAVE, vote(pid, "yes")))[0]["weight"] == 400 * BGOV
    chain2 = gov_chain()
    empty_blocks(chain2, 2)                                            # heights 1..2
    results = ok(chain2, (DAVE, delegate(delegatee=DAVE)),              # height 3: DAVE 400 votes ...
                 (ALICE, submit_proposal({"type": "set_market_params", "market": BTC, "taker_fee": "0.0004"})),
                 (ALICE, submit_proposal(RAISE_INSURANCE_SHARE)))
    increasing, reducing = results[1]["proposal_id"], results[2]["proposal_id"]
    ok(chain2)                                                         # height 4: both snapshots
    # ... held 1 block at snapshot 4: risk_increasing counts min(400, votes at 2 = 0) = 0; risk_reducing all 400
    assert rejected(chain2, DAVE, vote(increasing)) == "no_voting_power"
    assert ok(chain2, (DAVE, vote(reducing)))[0]["weight"] == 400 * BGOV


def test_submission_checks_threshold_deposit_and_actions():
    chain = gov_chain()
    assert rejected(chain, DAVE, submit_proposal(RAISE_INSURANCE_SHARE)) == "below_proposal_threshold"
    assert rejected(chain, ALICE, submit_proposal(RAISE_INSURANCE_SHARE, deposit="4.999999")) == "deposit_below_minimum"
    assert rejected(chain, ALICE, submit_proposal(RAISE_INSURANCE_SHARE, deposit="100.000001")) == "insufficient_bgov"
    assert rejected(chain, ALICE, submit_proposal(RAISE_INSURANCE_SHARE, deposit="91")) == "below_proposal_threshold"
    assert rejected(chain, ALICE, submit_proposal({"type": "delist_market", "market": "DOGE-USD"})) == "unknown_market"
    assert rejected(chain, ALICE, submit_proposal(RAISE_INSURANCE_SHARE, title="")) == "invalid_title"


def test_the_proposal_id_is_the_hash_of_chain_id_and_content():
    chain = gov_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)
    expected = governance.compute_proposal_id("bastion-test", ALICE, 1, "p", "",
                                              (decode_action(RAISE_INSURANCE_SHARE, 0),))
    assert pid == expected and len(pid) == 64
    chain.open_block()
    first = chain.submit(BOB, submit_proposal(RAISE_INSURANCE_SHARE))
    assert chain.submit(BOB, submit_proposal(RAISE_INSURANCE_SHARE))["code"] == "duplicate_proposal"
    assert first["proposal_id"] != pid                                 # another proposer and height


def test_an_action_that_became_riskier_since_the_vote_is_refused():
    chain = gov_chain()
    to_ten = pass_and_queue(chain, {"type": "set_market_params", "market": ETH, "max_open_interest": "10"})
    to_five = pass_and_queue(chain, {"type": "set_market_params", "market": ETH, "max_open_interest": "5"})
    assert proposal(chain, to_ten).risk_class == "risk_reducing"       # 20 -> 10 when voted
    ok(chain, (ALICE, execute(to_five)), advance_s=DAY_S)
    # 5 -> 10 is now a higher cap: risk increasing, stricter than the class it was voted under
    assert rejected(chain, ALICE, execute(to_ten)) == "risk_class_escalated"
    assert chain.state.markets[ETH].max_open_interest_lots == 50_000


# ------------------------------------------------------------------------------------------- votes at the bell
def test_an_outcome_flip_in_the_last_blocks_extends_at_most_max_swing_extensions_times():
    chain = gov_chain(max_swing_extensions=1)
    pid = propose(chain, RAISE_INSURANCE_SHARE)                       # height 1: snapshot 2, deadline 7
    ok(chain)
    ok(chain, (CAROL, vote(pid, "abstain")))                          # height 3: quorum 100 met early, no extension
    empty_blocks(chain, 3)                                            # heights 4..6
    ok(chain, (ALICE, vote(pid, "yes")))                              # height 7: defeated -> succeeded: deadline 10
    assert (proposal(chain, pid).deadline_height, proposal(chain, pid).swing_extensions) == (10, 1)
    ok(chain, (BOB, vote(pid, "no")))                                 # height 8: flips back, but the one is used
    assert (proposal(chain, pid).deadline_height, proposal(chain, pid).swing_extensions) == (10, 1)
    empty_blocks(chain, 2)                                            # tallied at the end of height 10
    assert proposal(chain, pid).status == "defeated"


def test_the_holding_window_counts_its_lowest_level_not_two_points():
    checkpoints = [(0, 400), (5, 0), (6, 400), (9, 100)]
    assert votes.compute_checkpoint_minimum(checkpoints, 4, 6) == 0     # sold at 5, back at 6
    assert votes.compute_checkpoint_minimum(checkpoints, 6, 8) == 400
    assert votes.compute_checkpoint_minimum(checkpoints, 0, 9) == 0
    assert votes.compute_checkpoint_minimum(checkpoints, 7, 9) == 100
    assert votes.compute_checkpoint_minimum([], 0, 3) == 0
