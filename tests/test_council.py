"""The council (``bastion.core.governance.council``): stress-gate attestations and bounded steward changes.

The chain of ``council_chain``: ALICE holds 100 BGOV (self-delegated), so she alone proposes and
passes anything. Every risk class has the same rules (``GOVERNANCE``): quorum 10%, approval 50%,
2-block votes, timelock 1 h, window 1 day; attestations and approvals count for 2 h
(``attestation_max_age_s``). A proposal submitted at height h is voted at h + 2, tallied at the end
of h + 3 and queued at h + 4. The council is ``COUNCIL`` (C1, C2, C3) with threshold 2; the
steward bounds are ``BOUNDS``. Markets (``builders``): BTC-USD (4 size decimals, fees 0.01% /
0.05%, an open-interest cap of 100 BTC here), ETH-USD (maker rebate 0.01%, tier 2: IMF 10%),
insurance share 10%, withdrawal pause 50 blocks.
"""
from __future__ import annotations

import copy
import json

import pytest

from bastion.core import governance, transparency
from bastion.core.governance import council_rules as council
from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.messages import decode_action
from bastion.core.snapshot import canonical_bytes, state_from_document, state_to_document
from bastion.core.state import Attestation, ParamHistoryEntry, ParamSource, StewardBound
from bastion.core.hashing import compute_state_hash_full
from builders import (
    ALICE, BOB, BTC, COUNCIL, ETH, REPORT, Chain, council_attest, register_stress_report, registered_report,
    default_accounts, execute, genesis, market, queue,
    steward_change, submit_proposal, vote,
)
from test_governance import ok

C1, C2, C3 = COUNCIL
HOUR_MS = 3_600_000
OTHER_REPORT = "cd" * 32
FAILED_REPORT = "0f" * 32      # registered at genesis with the verdict fail
GOVERNANCE = {
    "voting_delay_blocks": 1, "proposal_threshold": "10", "min_deposit": "5", "proposal_fee": "0",
    "execution_window_s": 86_400,
    "late_quorum_extension_blocks": 0, "attestation_max_age_s": 7_200,
    "max_live_proposals": 5,            # several proposals of one proposer at once (the default is 1)
    "tiers": {name: {"quorum": "0.1", "approval_threshold": "0.5", "voting_period_blocks": 2, "timelock_s": 3_600,
                     "min_holding_age_blocks": 0}
              for name in ("risk_reducing", "neutral", "risk_increasing", "critical")},
}
BOUNDS = {
    f"markets.{BTC}.max_open_interest_lots": {"max_change": "0.25", "cooldown_s": 86_400},
    f"markets.{BTC}.taker_fee_ppm": {"max_change_abs": "0.0001", "cooldown_s": 3_600},
    f"markets.{ETH}.maker_fee_ppm": {"max_change": "0.5", "cooldown_s": 3_600},
    "liquidity_tiers.2.initial_margin_ppm": {"max_change": "0.1", "cooldown_s": 3_600},
    "liquidity_tiers.0.oi_lower_cap_usdc": {"max_change": "1", "cooldown_s": 3_600},
    "fees.insurance_share_ppm": {"max_change": "1", "cooldown_s": 3_600},
    "liquidation.withdrawal_pause_blocks": {"max_change_abs": "10", "cooldown_s": 3_600},
}
LOWER_ETH_MARGIN = {"type": "set_market_params", "market": ETH, "liquidity_tier": 1}   # IMF 10% -> 5%: risk increasing
RAISE_INSURANCE_SHARE = {"type": "set_fee_params", "insurance_share": "0.2"}          # risk reducing


def council_genesis(**council_overrides) -> dict:
    accounts = default_accounts()
    accounts[0] = {**accounts[0], "bgov": "100", "delegate": ALICE}
    markets = [market(BTC, max_open_interest="100"), market(ETH), market("PEPE-USD")]
    return genesis(accounts=accounts, markets=markets, governance=copy.deepcopy(GOVERNANCE),
                   council={"members": list(COUNCIL), "threshold": 2, "steward_bounds": copy.deepcopy(BOUNDS),
                            "stress_reports": [registered_report(REPORT), registered_report(OTHER_REPORT),
                                               registered_report(FAILED_REPORT, "fail")],
                            **council_overrides})


def council_chain(**council_overrides) -> Chain:
    return Chain(council_genesis(**council_overrides))


def ok_events(chain: Chain, *txs, advance_s: int = 1) -> list[dict]:
    """One block; every tx must be accepted; returns its events."""
    result = chain.block(list(txs), advance_s=advance_s)
    assert all(r["ok"] for r in result.results), result.results
    return result.events


def rejected(chain: Chain, sender: str, msg: dict, *, at_ms: int | None = None) -> dict:
    """Submit in a fresh block (at ``at_ms`` if given); the rejection must leave the state hash
    unchanged; returns the result (``code`` and ``message``)."""
    if at_ms is not None:
        chain.next_time_ms = at_ms
    chain.open_block()
    before = chain.full_hash()
    result = chain.submit(sender, msg)
    assert not result["ok"], result
    assert chain.full_hash() == before
    chain.end_block()
    return result


def code(chain: Chain, sender: str, msg: dict, *, at_ms: int | None = None) -> str:
    return rejected(chain, sender, msg, at_ms=at_ms)["code"]


def queued(chain: Chain, *actions: dict) -> str:
    """Submit, vote, tally and queue a proposal; returns its id (queued at the current block time)."""
    pid = ok(chain, (ALICE, submit_proposal(*actions)))[0]["proposal_id"]
    ok(chain)
    ok(chain, (ALICE, vote(pid, "yes")))
    ok(chain)
    ok(chain, (BOB, queue(pid)))
    assert chain.state.proposals[pid].status == "queued"
    return pid


def at(chain: Chain, time_ms: int, *txs) -> list[dict]:
    """One block at ``time_ms``; every tx accepted."""
    chain.next_time_ms = time_ms
    chain.open_block()
    results = [chain.submit(sender, msg) for sender, msg in txs]
    chain.end_block()
    assert all(r["ok"] for r in results), results
    return results


# ------------------------------------------------------------------------------------------- stress gate
def test_a_risk_increasing_proposal_is_blocked_without_attestations_and_executes_with_k_of_them():
    chain = council_chain()
    pid = queued(chain, LOWER_ETH_MARGIN)
    eta = chain.state.proposals[pid].queued_ms + HOUR_MS
    error = rejected(chain, ALICE, execute(pid), at_ms=eta)
    assert error["code"] == "stress_attestation_missing"
    assert "needs 2 current council members' pass attestations" in error["message"] and "has 0" in error["message"]
    results = at(chain, eta + 1_000, (C1, council_attest(pid)))
    assert results == [{"ok": True, "passes": 1, "threshold": 2}]
    assert code(chain, ALICE, execute(pid)) == "stress_attestation_missing"           # k - 1
    ok(chain, (C3, council_attest(pid)))
    events = ok_events(chain, (ALICE, execute(pid)))                                  # k
    assert events[0] == {"type": "stress_gate_passed", "proposal_id": pid, "report_hash": REPORT, "passes": 2,
                         "threshold": 2}
    assert chain.state.markets[ETH].tier_id == 1
    assert chain.state.proposals[pid].status == "executed"


def test_a_risk_reducing_proposal_needs_no_attestation():
    chain = council_chain()
    pid = queued(chain, RAISE_INSURANCE_SHARE)
    events = ok_events(chain, (ALICE, execute(pid)), advance_s=3_600)
    assert not [e for e in events if e["type"] == "stress_gate_passed"]
    assert chain.state.fees.insurance_share_ppm == 200_000


def test_attestations_on_different_report_hashes_do_not_add_up():
    chain = council_chain()
    pid = queued(chain, LOWER_ETH_MARGIN)
    ok(chain, (C1, council_attest(pid, REPORT)), (C2, council_attest(pid, OTHER_REPORT)), advance_s=3_600)
    assert council.count_stress_passes(chain.state, chain.state.proposals[pid]) == {REPORT: 1, OTHER_REPORT: 1}
    assert code(chain, ALICE, execute(pid)) == "stress_attestation_missing"
    ok(chain, (C2, council_attest(pid, REPORT)))                                      # C2's newer one replaces
    assert ok_events(chain, (ALICE, execute(pid)))[0]["report_hash"] == REPORT


def test_a_fail_verdict_withdraws_the_members_pass_and_counts_for_nothing():
    chain = council_chain()
    pid = queued(chain, LOWER_ETH_MARGIN)
    ok(chain, (C1, council_attest(pid)), (C2, council_attest(pid)), advance_s=3_600)
    events = ok_events(chain, (C2, council_attest(pid, verdict="fail")))
    assert events == [{"type": "stress_attested", "proposal_id": pid, "member": C2, "report_hash": REPORT,
                       "verdict": "fail", "passes": 1, "threshold": 2}]
    assert code(chain, ALICE, execute(pid)) == "stress_attestation_missing"
    ok(chain, (C3, council_attest(pid)))                                              # a fail is no veto
    ok(chain, (ALICE, execute(pid)))


def test_an_attestation_is_refused_before_queueing_and_one_dated_before_queueing_does_not_count():
    chain = council_chain()
    pid = ok(chain, (ALICE, submit_proposal(LOWER_ETH_MARGIN)))[0]["proposal_id"]
    assert code(chain, C1, council_attest(pid)) == "proposal_not_queued"              # pending
    ok(chain, (ALICE, vote(pid, "yes")))
    ok(chain)                                                                         # succeeded at the end
    chain.open_block()
    assert chain.submit(C1, council_attest(pid))["code"] == "proposal_not_queued"     # succeeded, same block as ...
    assert chain.submit(BOB, queue(pid))["ok"]                                        # ... the queueing
    chain.end_block()
    proposal = chain.state.proposals[pid]
    # the gate's own rule, should an attestation older than the queueing ever exist
    early = Attestation(REPORT, "pass", proposal.queued_ms - 1, chain.state.height)
    chain.state.attestations[pid] = {C1: early, C2: early}
    assert not council.is_attestation_valid(chain.state, proposal, early)
    assert council.count_stress_passes(chain.state, proposal) == {}


def test_an_attestation_counts_for_exactly_the_governed_age():
    chain = council_chain()
    pid = queued(chain, LOWER_ETH_MARGIN)
    attested_ms = chain.state.time_ms + 1_000
    ok(chain, (C1, council_attest(pid)), (C2, council_attest(pid)))
    too_old_ms = attested_ms + 7_200_000 + 1
    assert code(chain, ALICE, execute(pid), at_ms=too_old_ms) == "stress_attestation_missing"
    chain2 = council_chain()
    pid2 = queued(chain2, LOWER_ETH_MARGIN)
    ok(chain2, (C1, council_attest(pid2)), (C2, council_attest(pid2)))
    at(chain2, attested_ms + 7_200_000, (ALICE, execute(pid2)))                       # age == max age: counts
    assert chain2.state.proposals[pid2].status == "executed"


def test_a_member_removed_by_set_council_no_longer_counts():
    chain = council_chain()
    remove_c3 = queued(chain, {"type": "set_council", "members": [C2, C1], "threshold": 2})
    assert chain.state.proposals[remove_c3].risk_class == "critical"
    lower = queued(chain, LOWER_ETH_MARGIN)
    ok(chain, (C2, council_attest(lower)), (C3, council_attest(lower)), (C1, council_attest(remove_c3)),
       (C3, council_attest(remove_c3)), advance_s=3_600)
    assert council.count_stress_passes(chain.state, chain.state.proposals[lower]) == {REPORT: 2}
    events = ok_events(chain, (ALICE, execute(remove_c3)))
    assert [(e["name"], e["old"], e["value"]) for e in events if e["type"] == "param_changed"] == [
        ("council.members", f"{C1},{C2},{C3}", f"{C1},{C2}")]               # the threshold stays 2: no event
    assert chain.state.council.members == (C1, C2)
    assert council.count_stress_passes(chain.state, chain.state.proposals[lower]) == {REPORT: 1}
    assert code(chain, ALICE, execute(lower)) == "stress_attestation_missing"
    assert code(chain, C3, council_attest(lower)) == "not_council_member"
    ok(chain, (C1, council_attest(lower)))
    ok(chain, (ALICE, execute(lower)))


def test_without_a_council_no_gated_proposal_can_ever_execute():
    chain = Chain(council_genesis(members=[], threshold=0, steward_bounds={}))
    pid = queued(chain, LOWER_ETH_MARGIN)
    error = rejected(chain, ALICE, execute(pid), at_ms=chain.state.time_ms + HOUR_MS)
    assert error["code"] == "stress_attestation_missing" and "needs 0" in error["message"]
    assert code(chain, C1, council_attest(pid)) == "not_council_member"


@pytest.mark.parametrize("msg, expected", [
    (council_attest("00" * 32), "unknown_proposal"),
    (council_attest("QUEUED", report_hash="AB" * 32), "invalid_report_hash"),        # upper case
    (council_attest("QUEUED", report_hash="ab" * 31), "invalid_report_hash"),        # 62 digits
    (council_attest("QUEUED", verdict="abstain"), "invalid_verdict"),
    (council_attest("EXECUTED"), "proposal_not_queued"),                             # a final state
    (council_attest("QUEUED", report_hash="ef" * 32), "unknown_stress_report"),      # never registered
    (council_attest("QUEUED", report_hash=FAILED_REPORT), "stress_report_failed"),   # registered as fail
])
def test_bad_attestations_are_refused_and_change_nothing(msg, expected):
    chain = council_chain()
    ids = {"QUEUED": queued(chain, LOWER_ETH_MARGIN), "EXECUTED": queued(chain, RAISE_INSURANCE_SHARE)}
    ok(chain, (ALICE, execute(ids["EXECUTED"])), advance_s=3_600)
    msg = {**msg, "proposal_id": ids.get(msg["proposal_id"], msg["proposal_id"])}
    assert code(chain, C1, msg) == expected
    assert code(chain, BOB, msg) == "not_council_member"                            # checked first


def test_a_fail_attestation_may_name_a_failed_report():
    chain = council_chain()
    pid = queued(chain, LOWER_ETH_MARGIN)
    ok(chain, (C1, council_attest(pid, FAILED_REPORT, "fail")))
    assert chain.state.attestations[pid][C1].verdict == "fail"


@pytest.mark.parametrize("msg, expected", [
    (register_stress_report("AB" * 32), "invalid_report_hash"),
    (register_stress_report(verdict="maybe"), "invalid_verdict"),
    (register_stress_report(depletion_probability="1.5"), "invalid_field"),
    (register_stress_report(depletion_probability="-0.1"), "negative_value"),
    (register_stress_report(var99_loss="x"), "invalid_decimal"),
    (register_stress_report(var99_loss="2", es99_loss="1"), "invalid_field"),        # ES99 below VaR99
    (register_stress_report(REPORT), "stress_report_exists"),                        # registered at genesis
    (register_stress_report("ef" * 32, depletion_probability="0.02"), "stress_verdict_mismatch"),  # > 1%
    (register_stress_report("ef" * 32, var99_loss="50001", es99_loss="50001", insurance_funds_total="100000"),
     "stress_verdict_mismatch"),                                                     # VaR99 > 50% of the funds
])
def test_bad_registrations_are_refused_and_change_nothing(msg, expected):
    chain = council_chain()
    assert code(chain, C1, msg) == expected
    assert code(chain, BOB, msg) == "not_council_member"                            # checked first


def test_a_registration_records_the_figures_and_a_failing_one_may_say_fail():
    chain = council_chain()
    events = ok_events(chain, (C2, register_stress_report("ef" * 32, var99_loss="50000", es99_loss="100000",
                                                          insurance_funds_total="100000")))
    assert events == [{"type": "stress_report_registered", "report_hash": "ef" * 32, "verdict": "pass",
                       "depletion_probability_ppm": 0, "var99_loss": 50_000_000_000, "es99_loss": 100_000_000_000,
                       "insurance_funds_total": 100_000_000_000, "by": C2}]          # both limits met exactly
    record = chain.state.stress_reports["ef" * 32]
    assert (record.verdict, record.registered_by, record.height) == ("pass", C2, chain.state.height)
    ok(chain, (C1, register_stress_report("12" * 32, "fail")))                       # fail: always accepted
    assert chain.state.stress_reports["12" * 32].verdict == "fail"
    assert chain.full_hash() == chain.state.state_hash
    restored = state_from_document(state_to_document(chain.state))             # snapshot format 7
    assert restored.stress_reports == chain.state.stress_reports
    assert compute_state_hash_full(restored) == chain.full_hash()


# ------------------------------------------------------------------------------------------- set_council
@pytest.mark.parametrize("members, threshold, field", [
    ([], 1, "members"),                       # at least one member
    ([C1, C1.upper().replace("0X", "0x")], 1, "members"),   # the same address twice
    ([C1, C2], 0, "threshold"),
    ([C1, C2], 3, "threshold"),               # k > n
])
def test_set_council_is_validated(members, threshold, field):
    state = build_state(council_genesis())
    action = decode_action({"type": "set_council", "members": members, "threshold": threshold}, 0)
    with pytest.raises(ProtocolError) as error:
        governance.compute_action_changes(state, action)
    assert (error.value.code, error.value.fields["field"]) == ("invalid_council", field)


def test_set_council_and_set_steward_bounds_are_critical():
    state = build_state(council_genesis())
    for action in ({"type": "set_council", "members": list(COUNCIL), "threshold": 2},
                   {"type": "set_steward_bounds", "bounds": {"fees.insurance_share_ppm": None}}):
        assert governance.compute_proposal_changes(state, (decode_action(action, 0),))[1] == "critical"


# ------------------------------------------------------------------------------------------- steward bounds
def test_set_steward_bounds_merges_and_null_removes():
    chain = council_chain()
    name = f"markets.{BTC}.taker_fee_ppm"
    pid = queued(chain, {"type": "set_steward_bounds", "bounds": {
        name: {"max_change": "0.1", "cooldown_s": 60}, "fees.insurance_share_ppm": None,
        f"markets.{BTC}.maker_fee_ppm": {"max_change_abs": "0.00005", "cooldown_s": 7_200}}})
    ok(chain, (C1, council_attest(pid)), (C2, council_attest(pid)), advance_s=3_600)
    events = ok_events(chain, (ALICE, execute(pid)))
    assert [(e["name"], e["old"], e["value"]) for e in events if e["type"] == "param_changed"] == [
        ("council.steward_bounds.fees.insurance_share_ppm", "kind=relative max_change=1000000 cooldown_ms=3600000", ""),
        (f"council.steward_bounds.markets.{BTC}.maker_fee_ppm", "", "kind=absolute max_change=50 cooldown_ms=7200000"),
        (f"council.steward_bounds.{name}", "kind=absolute max_change=100 cooldown_ms=3600000",
         "kind=relative max_change=100000 cooldown_ms=60000"),
    ]
    bounds = chain.state.steward_bounds
    assert bounds[name] == StewardBound("relative", 100_000, 60_000)
    assert bounds[f"markets.{BTC}.maker_fee_ppm"] == StewardBound("absolute", 50, 7_200_000)
    assert "fees.insurance_share_ppm" not in bounds
    assert bounds["liquidation.withdrawal_pause_blocks"] == StewardBound("absolute", 10, 3_600_000)  # not named: kept
    assert code(chain, C1, steward_change("fees.insurance_share_ppm", "0.15")) == "no_steward_bound"


@pytest.mark.parametrize("bounds, expected", [
    ({}, "invalid_field"),                                                              # names nothing
    ({"governance.voting_delay_blocks": {"max_change": "0.1", "cooldown_s": 1}}, "not_steward_parameter"),
    ({"markets.DOGE-USD.taker_fee_ppm": {"max_change": "0.1", "cooldown_s": 1}}, "unknown_market"),
    ({"liquidity_tiers.9.initial_margin_ppm": {"max_change": "0.1", "cooldown_s": 1}}, "unknown_liquidity_tier"),
    ({"fees.insurance_share_ppm": {"max_change": "0.1", "max_change_abs": "0.01", "cooldown_s": 1}},
     "invalid_steward_bound"),                                                           # both kinds
    ({"fees.insurance_share_ppm": {"cooldown_s": 1}}, "invalid_steward_bound"),        # neither
    ({"fees.insurance_share_ppm": {"max_change": "0", "cooldown_s": 1}}, "invalid_steward_bound"),
    ({"fees.insurance_share_ppm": {"max_change": "0.1", "cooldown_s": 0}}, "invalid_steward_bound"),
    ({"fees.insurance_share_ppm": {"max_change": "0.1"}}, "invalid_steward_bound"),   # no cooldown
    ({"fees.insurance_share_ppm": {"max_change": "0.1", "cooldown_s": 1, "x": 1}}, "unknown_field"),
    ({f"markets.{BTC}.max_open_interest_lots": {"max_change_abs": "0.00001", "cooldown_s": 1}},
     "too_many_decimals"),                                                               # off BTC's lot grid
    ({"fees.insurance_share_ppm": "0.1"}, "invalid_field"),
])
def test_bad_steward_bounds_are_refused(bounds, expected):
    state = build_state(council_genesis())
    with pytest.raises(ProtocolError) as error:
        governance.compute_action_changes(state, decode_action({"type": "set_steward_bounds", "bounds": bounds}, 0))
    assert error.value.code == expected


def test_a_genesis_council_is_validated():
    with pytest.raises(ProtocolError) as error:
        build_state(council_genesis(threshold=4))
    assert error.value.code == "invalid_genesis" and "genesis.council" in error.value.message
    with pytest.raises(ProtocolError) as error:
        build_state(council_genesis(steward_bounds={"fees.insurance_share_ppm": None}))
    assert error.value.code == "invalid_genesis"


# ------------------------------------------------------------------------------------------- steward changes
def test_a_steward_change_applies_at_the_kth_approval_through_change_param():
    chain = council_chain()
    name = "fees.insurance_share_ppm"
    results = ok(chain, (C3, steward_change(name, "0.15")))
    assert results == [{"ok": True, "approvals": 1, "applied": False}]
    assert chain.state.fees.insurance_share_ppm == 100_000
    epoch = chain.state.params_epoch
    result = chain.block([(C1, steward_change(name, "0.15"))])
    assert result.results == [{"ok": True, "approvals": 2, "applied": True}]
    assert result.events == [
        {"type": "steward_change_approved", "param": name, "value": 150_000, "member": C1, "approvals": 2,
         "threshold": 2},
        {"type": "param_changed", "name": name, "value": 150_000, "old": 100_000, "height": 2, "source": "council",
         "proposal_id": None, "proposal_number": None, "ref": f"{C1},{C3}"},
        {"type": "steward_change_applied", "param": name, "value": 150_000, "old": 100_000, "approvers": [C1, C3]},
    ]
    assert chain.state.fees.insurance_share_ppm == 150_000 and chain.state.params_epoch == epoch + 1
    assert transparency.parameter_history(chain.state, name) == [
        ParamHistoryEntry(name, 100_000, 150_000, 2, ParamSource("council", f"{C1},{C3}"))]
    assert chain.state.steward_last_change_ms == {name: chain.state.time_ms}
    assert chain.state.steward_approvals == {}                                        # all pending dropped


def test_approvals_of_different_values_do_not_add_up_and_a_newer_one_replaces():
    chain = council_chain()
    name = "fees.insurance_share_ppm"
    ok(chain, (C1, steward_change(name, "0.15")), (C2, steward_change(name, "0.16")))
    assert chain.state.fees.insurance_share_ppm == 100_000
    assert council.get_steward_approvers(chain.state, name, 150_000) == [C1]
    ok(chain, (C2, steward_change(name, "0.150000")))                                 # the same value, written longer
    assert chain.state.fees.insurance_share_ppm == 150_000


def test_a_stale_approval_or_one_of_a_removed_member_does_not_count():
    chain = council_chain()
    name = "fees.insurance_share_ppm"
    ok(chain, (C1, steward_change(name, "0.15")))
    approved_ms = chain.state.time_ms
    results = at(chain, approved_ms + 7_200_001, (C2, steward_change(name, "0.15")))   # C1's is 2 h + 1 ms old
    assert results == [{"ok": True, "approvals": 1, "applied": False}]
    chain2 = council_chain(members=[C1, C2], threshold=2)
    ok(chain2, (C1, steward_change(name, "0.15")))
    at(chain2, chain2.state.time_ms + 7_200_000, (C2, steward_change(name, "0.15")))  # exactly 2 h old: counts
    assert chain2.state.fees.insurance_share_ppm == 150_000
    state = build_state(council_genesis())
    state.steward_approvals[name] = {}
    assert council.get_steward_approvers(state, name, 150_000) == []


@pytest.mark.parametrize("name, value, expected", [
    # relative 25% of the 100 BTC cap (1,000,000 lots): 125 BTC is the boundary, one lot more exceeds
    (f"markets.{BTC}.max_open_interest_lots", "125", 1_250_000),
    (f"markets.{BTC}.max_open_interest_lots", "125.0001", "steward_bound_exceeded"),
    (f"markets.{BTC}.max_open_interest_lots", "75", 750_000),
    (f"markets.{BTC}.max_open_interest_lots", "74.9999", "steward_bound_exceeded"),
    # absolute 0.0001 (100 ppm) on the 0.05% taker fee (500 ppm)
    (f"markets.{BTC}.taker_fee_ppm", "0.0006", 600),
    (f"markets.{BTC}.taker_fee_ppm", "0.000601", "steward_bound_exceeded"),
    (f"markets.{BTC}.taker_fee_ppm", "0.0004", 400),
    (f"markets.{BTC}.taker_fee_ppm", "0.000399", "steward_bound_exceeded"),
    # relative 50% of a -100 ppm maker rebate: |diff| <= 50
    (f"markets.{ETH}.maker_fee_ppm", "-0.00015", -150),
    (f"markets.{ETH}.maker_fee_ppm", "-0.000151", "steward_bound_exceeded"),
    (f"markets.{ETH}.maker_fee_ppm", "-0.00005", -50),
    # relative 10% of IMF 10% (100,000 ppm)
    ("liquidity_tiers.2.initial_margin_ppm", "0.09", 90_000),
    ("liquidity_tiers.2.initial_margin_ppm", "0.089999", "steward_bound_exceeded"),
    # absolute 10 blocks on 50
    ("liquidation.withdrawal_pause_blocks", "60", 60),
    ("liquidation.withdrawal_pause_blocks", "61", "steward_bound_exceeded"),
    # relative 100% of a current 0 allows nothing (Aave RS-09)
    ("liquidity_tiers.0.oi_lower_cap_usdc", "1", "steward_bound_exceeded"),
    # never to zero, whatever the bound (the 100% bound would allow 0.1 -> 0)
    ("fees.insurance_share_ppm", "0", "steward_zero_value"),
    ("fees.insurance_share_ppm", "0.1", "steward_no_change"),
    ("fees.insurance_share_ppm", "0.1000001", "too_many_decimals"),
    ("fees.insurance_share_ppm", "-0.1", "negative_value"),
    # the governance action's own validation
    (f"markets.{BTC}.taker_fee_ppm", "-0.0001", "negative_value"),
])
def test_steward_bounds_at_the_exact_boundary(name, value, expected):
    chain = council_chain()
    if isinstance(expected, str):
        assert code(chain, C1, steward_change(name, value)) == expected
        return
    ok(chain, (C1, steward_change(name, value)), (C2, steward_change(name, value)))
    assert chain.state.param_history[-1].name == name and chain.state.param_history[-1].new == expected


def test_a_steward_change_may_not_break_the_actions_rules():
    chain = council_chain(steward_bounds={f"markets.{ETH}.maker_fee_ppm": {"max_change": "10", "cooldown_s": 60}})
    # a rebate of 0.06% would exceed ETH's 0.05% taker fee: the set_market_params rule
    assert code(chain, C1, steward_change(f"markets.{ETH}.maker_fee_ppm", "-0.0006")) == "invalid_fees"


@pytest.mark.parametrize("name", [
    "governance.voting_delay_blocks", "governance.tiers.critical.quorum_ppm", "council.threshold",
    "council.steward_bounds.fees.insurance_share_ppm", "guardian.address", f"markets.{BTC}.tier_id",
    f"markets.{BTC}.status", "liquidity_tiers.01.initial_margin_ppm", "liquidity_tiers.x.initial_margin_ppm",
    "fees.BTC-USD.insurance_share_ppm", "markets.maker_fee_ppm", "liquidation.bankruptcy_adjustment_ppm", "fees", "",
])
def test_only_listed_numeric_parameters_are_steward_parameters(name):
    assert code(council_chain(), C1, steward_change(name, "1")) == "not_steward_parameter"


def test_steward_errors_are_checked_in_order_and_change_nothing():
    chain = council_chain()
    assert code(chain, BOB, steward_change("governance.voting_delay_blocks", "1")) == "not_council_member"
    assert code(chain, C1, steward_change(f"markets.{BTC}.maker_fee_ppm", "0")) == "no_steward_bound"
    assert code(chain, C1, steward_change("liquidation.withdrawal_pause_blocks", "1.5")) == "too_many_decimals"


def test_the_cooldown_runs_from_the_applied_change_to_the_exact_millisecond():
    chain = council_chain()
    name = "fees.insurance_share_ppm"
    ok(chain, (C1, steward_change(name, "0.15")), (C2, steward_change(name, "0.15")))
    applied_ms = chain.state.time_ms
    error = rejected(chain, C1, steward_change(name, "0.2"), at_ms=applied_ms + HOUR_MS - 1)
    assert error["code"] == "steward_cooldown" and str(applied_ms + HOUR_MS) in error["message"]
    at(chain, applied_ms + HOUR_MS, (C1, steward_change(name, "0.2")), (C3, steward_change(name, "0.2")))
    assert chain.state.fees.insurance_share_ppm == 200_000                            # +33%, within 100%


def test_each_parameter_has_its_own_cooldown():
    chain = council_chain()
    ok(chain, (C1, steward_change("fees.insurance_share_ppm", "0.15")),
       (C2, steward_change("fees.insurance_share_ppm", "0.15")),
       (C1, steward_change("liquidation.withdrawal_pause_blocks", "55")),
       (C2, steward_change("liquidation.withdrawal_pause_blocks", "55")))
    assert (chain.state.fees.insurance_share_ppm, chain.state.liquidation.withdrawal_pause_blocks) == (150_000, 55)


def test_a_steward_change_of_a_tier_margin_invalidates_the_margin_caches():
    chain = council_chain()
    epoch = chain.state.params_epoch
    ok(chain, (C1, steward_change("liquidity_tiers.2.initial_margin_ppm", "0.09")),
       (C2, steward_change("liquidity_tiers.2.initial_margin_ppm", "0.09")))
    assert chain.state.tiers[2].initial_margin_ppm == 90_000 and chain.state.params_epoch == epoch + 1


# ------------------------------------------------------------------------------------------- state
def test_council_state_is_hashed_and_survives_a_snapshot():
    chain = council_chain()
    pid = queued(chain, LOWER_ETH_MARGIN)
    ok(chain, (C1, council_attest(pid)), (C1, steward_change("fees.insurance_share_ppm", "0.15")),
       (C2, steward_change("liquidation.withdrawal_pause_blocks", "55")),
       (C3, steward_change("liquidation.withdrawal_pause_blocks", "55")))
    state = chain.state
    assert chain.full_hash() == state.state_hash
    restored = state_from_document(json.loads(canonical_bytes(state_to_document(state))))
    assert restored.state_hash == state.state_hash
    assert (restored.council, restored.attestations, restored.steward_bounds, restored.steward_last_change_ms,
            restored.steward_approvals) == (state.council, state.attestations, state.steward_bounds,
                                            state.steward_last_change_ms, state.steward_approvals)
    described = council.describe_council(state)
    assert described["steward_bounds"]["liquidation.withdrawal_pause_blocks"] == {"max_change_abs": "10",
                                                                                  "cooldown_s": 3_600}
    assert described["steward_bounds"][f"markets.{BTC}.max_open_interest_lots"] == {"max_change": "0.25",
                                                                                    "cooldown_s": 86_400}
    assert described["steward_approvals"] == [{"param": "fees.insurance_share_ppm", "member": C1, "value": 150_000,
                                               "approved_ms": state.time_ms}]
    assert described["attestations"] == [{"proposal_id": pid, "member": C1, "report_hash": REPORT,
                                          "verdict": "pass", "attested_ms": state.time_ms}]
    assert described["steward_last_change_ms"] == {"liquidation.withdrawal_pause_blocks": state.time_ms}
