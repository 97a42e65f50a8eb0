"""The guardian (``bastion.core.guardian`` and ``governance.guardian_veto``) with exact codes and times.

The chain of ``guardian_chain``: the governance chain of ``test_governance`` (ALICE 100 BGOV, BOB 300,
CAROL 200 self-delegated, DAVE 400; its ``GOVERNANCE`` rules) plus the guardian GUARDIAN (0x..e0, a
subaccount 0 with 100,000 USDC), appointed until genesis + 30 days, a maximum pause of 1,000 s and an
unpause grace of 600 s, and an oracle that never goes stale in these tests (30-day staleness).
Genesis is at T0 = 2026-01-01T00:00:00Z; each block is 1 s after the previous one unless stated.
"""
from __future__ import annotations

import pytest
from builders import (
    ALICE, BOB, BTC, CAROL, ETH, GENESIS_TIME_MS, ORACLE, PEPE, Chain, account, address, cancel_order, deposit,
    execute, genesis, oracle_update, place_order, queue, submit_proposal, subaccount, transfer, vote, withdraw,
)
from builders import change_rows
from test_governance import (
    DAY_S, RAISE_INSURANCE_SHARE, empty_blocks, gov_genesis, ok, pass_and_queue, propose, rejected,
)

from bastion.core import governance, guardian
from bastion.core.errors import ProtocolError
from bastion.core.genesis import GENESIS_DEFAULTS, build_state
from bastion.core.messages import ACTION_TYPES, SetFeeParams, SetGuardian, decode_action
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.state import Pause, ParamSource
from bastion.core.transition import apply_tx

GUARDIAN = address(0xE0)
T0 = GENESIS_TIME_MS
S = 1_000                                   # ms per second
TERM_END = "2026-01-31T00:00:00Z"
TERM_END_MS = T0 + 30 * DAY_S * S
MAX_PAUSE_S = 1_000
GRACE_S = 600


def guardian_genesis(*, expires: str = TERM_END, accounts: list | None = None, **governance) -> dict:
    doc = gov_genesis(guardian_max_pause_s=MAX_PAUSE_S, guardian_unpause_grace_s=GRACE_S, **governance)
    doc["oracle"]["max_staleness_s"] = 30 * DAY_S
    doc["accounts"] = (doc["accounts"] if accounts is None else accounts) + [account(GUARDIAN)]
    doc["guardian"] = {"address": GUARDIAN, "expires": expires}
    return doc


def guardian_chain(**overrides) -> Chain:
    return Chain(guardian_genesis(**overrides))


def pause(scope: str, duration_s: int = 100, market: str | None = None) -> dict:
    return {"type": "guardian_pause", "scope": scope, "duration_s": duration_s,
            **({} if market is None else {"market": market})}


def unpause(scope: str, market: str | None = None) -> dict:
    return {"type": "guardian_unpause", "scope": scope, **({} if market is None else {"market": market})}


def veto(proposal_id: str, reason: str = "the oracle of this market is being manipulated") -> dict:
    return {"type": "guardian_veto", "proposal_id": proposal_id, "reason": reason}


def events_of(result, kind: str) -> list[dict]:
    return [e for e in result.events if e["type"] == kind]


def renew(chain: Chain, address_text: str | None, expires: str | None) -> list[dict]:
    """Apply a ``set_guardian`` action's changes as an executed proposal would (a critical proposal
    is not executed in these tests: the council's stress gate will govern that); returns the events."""
    chain.open_block()
    action = SetGuardian(address_text, expires)
    changes = governance.compute_action_changes(chain.state, action)
    assert {change.risk for change in changes} == {"critical"}
    events: list[dict] = []
    for change in changes:
        governance.apply_effect(chain.state, change, ParamSource("proposal", "renewal", 1), events)
    chain.state.params_epoch += 1
    chain.end_block()
    return events


# ------------------------------------------------------------------------------------------- pauses
def test_a_market_pause_refuses_orders_there_allows_cancels_and_expires_by_itself():
    chain = guardian_chain()
    ok(chain, (BOB, place_order(side="sell", price="51000", client_id=5)))            # height 1, T0 + 1 s
    result = chain.block([(GUARDIAN, pause("market", 100, BTC))])                     # height 2, T0 + 2 s
    assert result.results == [{"ok": True, "start_ms": T0 + 2 * S, "end_ms": T0 + 102 * S}]
    assert events_of(result, "guardian_paused") == [
        {"type": "guardian_paused", "scope": "market", "market": BTC, "start_ms": T0 + 2 * S,
         "end_ms": T0 + 102 * S, "extended": False}]
    assert chain.state.markets[BTC].status == "active"                                 # an overlay, not a status
    assert rejected(chain, ALICE, place_order()) == "market_paused_by_guardian"        # T0 + 3 s
    assert rejected(chain, ALICE, place_order(order_type="stop_market", time_in_force="ioc",
                                              trigger_price="52000")) == "market_paused_by_guardian"
    ok(chain, (ALICE, place_order(market=ETH, price="3000", size="1", client_id=2)))   # other markets trade
    ok(chain, (BOB, cancel_order(client_id=5)))                                        # cancels still work
    result = chain.block([(ALICE, place_order())], advance_s=95)                       # T0 + 101 s: in force
    assert result.results[0]["code"] == "market_paused_by_guardian"
    assert events_of(result, "pause_expired") == []
    result = chain.block([(ALICE, place_order())], advance_s=1)                        # T0 + 102 s = end
    assert result.results[0]["ok"] and result.results[0]["status"] == "open"
    assert events_of(result, "pause_expired") == [
        {"type": "pause_expired", "scope": "market", "market": BTC, "start_ms": T0 + 2 * S, "end_ms": T0 + 102 * S}]
    assert chain.state.pauses == {}


def test_a_trading_pause_halts_every_market():
    chain = guardian_chain()
    ok(chain, (GUARDIAN, pause("trading", 50)))                                       # T0 + 1 s .. T0 + 51 s
    assert rejected(chain, ALICE, place_order()) == "market_paused_by_guardian"
    assert rejected(chain, ALICE, place_order(market=ETH, price="3000", size="1")) == "market_paused_by_guardian"
    result = chain.block([(ALICE, place_order())], advance_s=47)                       # T0 + 50 s
    assert result.results[0]["code"] == "market_paused_by_guardian"
    result = chain.block([(ALICE, place_order())], advance_s=1)                        # T0 + 51 s = end
    assert result.results[0]["ok"]


def test_a_reduce_only_pause_accepts_and_matches_only_reducing_orders():
    position = {"market": BTC, "size": "0.1"}
    chain = guardian_chain(accounts=[
        account(ALICE, subaccount(positions=[position])),
        account(BOB, subaccount(positions=[{**position, "size": "-0.1"}])),
        account(CAROL)])
    ok(chain, (CAROL, place_order(side="buy", size="0.05", price="49900", client_id=1)),   # would open CAROL long
       (BOB, place_order(side="buy", size="0.05", price="49800", client_id=2)))            # reduces BOB's short
    ok(chain, (GUARDIAN, pause("reduce_only", 100, BTC)))
    assert rejected(chain, CAROL, place_order(client_id=3)) == "market_reduce_only"
    assert rejected(chain, ALICE, place_order(client_id=3)) == "market_reduce_only"        # adds to ALICE's long
    result = chain.block([(ALICE, place_order(side="sell", price="49000", time_in_force="ioc", client_id=4))])
    # CAROL's bid would increase her position: cancelled; BOB's reduces: 0.05 fills at 49,800
    cancelled = events_of(result, "order_cancelled")
    assert [(e["owner"], e["reason"]) for e in cancelled] == [(CAROL, "reduce_only"), (ALICE, "ioc_remainder")]
    fills = events_of(result, "fill")
    assert [(f["maker"]["owner"], f["size"], f["price"]) for f in fills] == [(BOB, 500, 498_000)]
    assert chain.state.markets[BTC].status == "active"


def test_a_withdrawals_pause_refuses_withdrawals_and_transfers_to_other_owners_only():
    chain = guardian_chain()
    ok(chain, (GUARDIAN, pause("withdrawals", 100)))
    assert rejected(chain, ALICE, withdraw()) == "withdrawals_paused_by_guardian"
    assert rejected(chain, ALICE, transfer(to_owner=BOB)) == "withdrawals_paused_by_guardian"
    ok(chain, (ALICE, transfer(to_owner=ALICE, to_subaccount=3, amount="250")),       # own subaccounts: allowed
       (address(0xB1), deposit(amount="7")))                                           # deposits too
    assert chain.subaccount(ALICE, 3).balance == 250_000_000
    assert chain.subaccount(ALICE, 0).balance == (100_000 - 250 + 7) * 1_000_000
    ok(chain, (ALICE, place_order()))                                                  # trading continues


def halted_liquidation_chain(usdc: str) -> Chain:
    """ALICE long 1 BTC (entry 50,000) with ``usdc``; BOB short 1 with a resting bid of 1 BTC at
    48,900 (the deep bid a harvester would rest); the cross fund 100,000 USDC; grace 1,800 s."""
    chain = guardian_chain(accounts=[
        account(ALICE, subaccount(usdc=usdc, positions=[{"market": BTC, "size": "1"}])),
        account(BOB, subaccount(usdc="100000", positions=[{"market": BTC, "size": "-1"}]))])
    ok(chain, (BOB, place_order(side="buy", size="1", price="48900", client_id=9)))
    return chain


def test_no_liquidation_fills_into_a_halted_book_nor_during_the_grace_after_it():
    chain = halted_liquidation_chain("-48800")
    ok(chain, (GUARDIAN, pause("trading", 100)))                                     # T0 + 2 s .. T0 + 102 s
    # 50,000 -> 49,000: ALICE's TNC -48,800 + 49,000 = 200 < MMR 588 (test_liquidation) but > 0: she waits
    result = chain.block([(ORACLE, oracle_update({BTC: "49000"}))])
    assert events_of(result, "liquidation") == [] and events_of(result, "backstop_takeover") == []
    assert [(e["owner"], e["reason"], e["markets"]) for e in events_of(result, "liquidation_deferred")] == [
        (ALICE, "guardian_pause", [BTC])]
    assert len(chain.state.markets[BTC].book) == 1                                    # BOB's bid untouched
    result = chain.block([], advance_s=99)                                            # T0 + 102 s: pause over
    assert [(e["markets"], e["until_ms"]) for e in events_of(result, "liquidation_grace")] == [
        ([BTC, ETH, PEPE], T0 + 102 * S + 1_800 * S)]
    assert [e["reason"] for e in events_of(result, "liquidation_deferred")] == ["liquidation_grace"]
    assert chain.state.liquidation_grace_until[BTC] == T0 + 1_902 * S
    assert chain.state.liquidation_stalls == {}                                       # waiting is no stall
    result = chain.block([], advance_s=1_799)                                         # T0 + 1,901 s: still grace
    assert events_of(result, "liquidation") == []
    result = chain.block([])                                                          # T0 + 1,902 s: grace over
    assert chain.state.liquidation_grace_until == {}
    assert [(e["owner"], e["maker"]["owner"], e["size"], e["fill_price"]) for e in events_of(result, "liquidation")] \
        == [(ALICE, BOB, 1000, 489_000)]                                              # 0.1 BTC, as without a pause


def test_a_bankrupt_account_in_a_halted_market_goes_to_the_backstop_at_the_oracle_price():
    chain = halted_liquidation_chain("-48800")
    ok(chain, (GUARDIAN, pause("market", 100, BTC)))
    # 50,000 -> 48,700: TNC -48,800 + 48,700 = -100 <= 0. The whole long goes to the cross backstop at the
    # oracle: ALICE receives her bankruptcy quote 48,700 - (-100) = 48,800 (balance 0), the fund pays 100
    result = chain.block([(ORACLE, oracle_update({BTC: "48700"}))])
    assert events_of(result, "liquidation") == []
    (takeover,) = events_of(result, "backstop_takeover")
    assert (takeover["size"], takeover["oracle_price"], takeover["bankruptcy_quote"], takeover["fund_delta"]) == (
        10_000, 487_000, 48_800_000_000, -100_000_000)                             # ticks of 0.1
    assert chain.subaccount(ALICE).balance == 0 and not chain.subaccount(ALICE).positions
    assert chain.state.insurance_funds["cross"] == 99_900_000_000
    assert len(chain.state.markets[BTC].book) == 1 and chain.subaccount(BOB).positions[BTC].size == -10_000


def test_the_liquidation_grace_is_governed_bounded_and_starts_at_an_unpause():
    chain = halted_liquidation_chain("-48800")
    assert chain.state.liquidation.liquidation_grace_ms == 1_800_000
    ok(chain, (GUARDIAN, pause("market", 100, BTC)))
    result = chain.block([(GUARDIAN, unpause("market", BTC))], advance_s=10)          # T0 + 12 s
    assert [(e["scope"], e["markets"], e["until_ms"]) for e in events_of(result, "liquidation_grace")] == [
        ("market", [BTC], T0 + 12 * S + 1_800 * S)]
    with pytest.raises(ProtocolError) as error:
        build_state(guardian_genesis() | {"liquidation": {"liquidation_grace_s": 4 * 3600 + 1}})
    assert error.value.code == "invalid_genesis"
    assert build_state(guardian_genesis() | {"liquidation": {"liquidation_grace_s": 4 * 3600}}).liquidation \
        .liquidation_grace_ms == 14_400_000


def test_conditional_orders_wait_while_the_market_is_halted_and_trigger_after():
    chain = guardian_chain()
    ok(chain, (ALICE, place_order(side="sell", size="0.1", price="60000", client_id=1)),
       (BOB, place_order(order_type="stop_market", time_in_force="ioc", price="60000", trigger_price="50500",
                         client_id=2)))
    ok(chain, (GUARDIAN, pause("market", 10, BTC)))                                   # T0 + 2 s .. T0 + 12 s
    result = chain.block([(ORACLE, oracle_update({BTC: "51000"}))])                   # past the trigger
    assert events_of(result, "conditional_order_triggered") == []
    assert len(chain.state.conditional_orders) == 1
    result = chain.block([], advance_s=9)                                              # T0 + 12 s: pause over
    assert [e["type"] for e in result.events][:1] == ["pause_expired"]
    assert [e["order_id"] for e in events_of(result, "conditional_order_triggered")] == [2]
    assert [(f["taker"]["owner"], f["size"], f["price"]) for f in events_of(result, "fill")] == [
        (BOB, 1000, 600_000)]


# ------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("sender, msg, code", [
    (ALICE, pause("market", 100, BTC), "not_guardian"),                   # an ordinary account
    (GUARDIAN, pause("everything", 100), "invalid_pause_scope"),
    (GUARDIAN, pause("market", 100), "missing_field"),                    # market scope without a market
    (GUARDIAN, pause("trading", 100, BTC), "invalid_field"),              # trading takes no market
    (GUARDIAN, pause("reduce_only", 100, "DOGE-USD"), "unknown_market"),
    (GUARDIAN, pause("market", 0, BTC), "invalid_pause_duration"),
    (GUARDIAN, pause("withdrawals", MAX_PAUSE_S + 1), "invalid_pause_duration"),  # one second above the maximum
    (ALICE, unpause("market", BTC), "not_guardian"),
    (GUARDIAN, unpause("market", BTC), "not_paused"),
    (GUARDIAN, unpause("trading", BTC), "invalid_field"),
    (ALICE, veto("00" * 32), "not_guardian"),
    (GUARDIAN, veto("00" * 32), "unknown_proposal"),
    (GUARDIAN, veto("00" * 32, reason=""), "reason_required"),
    (GUARDIAN, veto("00" * 32, reason="x" * 1_001), "reason_too_long"),
])
def test_every_refusal_has_its_code_and_changes_nothing(sender, msg, code):
    assert rejected(guardian_chain(), sender, msg) == code


def test_the_maximum_pause_is_allowed_exactly():
    chain = guardian_chain()
    result = chain.block([(GUARDIAN, pause("withdrawals", MAX_PAUSE_S))])
    assert result.results[0]["end_ms"] == T0 + (1 + MAX_PAUSE_S) * S


def test_a_pause_in_force_may_be_extended_up_to_max_pause_from_its_start_but_never_shortened():
    chain = guardian_chain()
    ok(chain, (GUARDIAN, pause("market", 100, BTC)))                                  # T0 + 1 s .. T0 + 101 s
    assert rejected(chain, GUARDIAN, pause("market", 98, BTC)) == "pause_would_shorten"   # at T0 + 2 s: ends 100
    result = chain.block([(GUARDIAN, pause("market", 500, BTC))], advance_s=49)         # T0 + 51 s
    assert events_of(result, "guardian_paused") == [
        {"type": "guardian_paused", "scope": "market", "market": BTC, "start_ms": T0 + S, "end_ms": T0 + 551 * S,
         "extended": True}]
    # at T0 + 52 s the latest end is T0 + 1 s + 1,000 s = T0 + 1,001 s: duration 950 is too long, 949 fits
    assert rejected(chain, GUARDIAN, pause("market", 950, BTC)) == "pause_too_long"
    ok(chain, (GUARDIAN, pause("market", 949, BTC)), advance_s=0)
    assert chain.state.pauses[("market", BTC)] == Pause("market", BTC, T0 + S, T0 + 1_001 * S)


def test_a_key_is_paused_once_per_term_and_a_renewal_re_arms_it():
    chain = guardian_chain()
    ok(chain, (GUARDIAN, pause("market", 10, BTC)))                                   # T0 + 1 s .. T0 + 11 s
    ok(chain, advance_s=10)                                                            # expired at T0 + 11 s
    assert chain.state.pauses == {}
    assert rejected(chain, GUARDIAN, pause("market", 10, BTC)) == "pause_already_used"
    ok(chain, (GUARDIAN, pause("reduce_only", 10, BTC)), (GUARDIAN, pause("market", 10, ETH)))  # other keys
    renew(chain, GUARDIAN, "2026-03-01T00:00:00Z")
    ok(chain, (GUARDIAN, pause("market", 10, BTC)))


def test_an_unpause_is_allowed_until_the_grace_ends_exactly_and_spends_the_key():
    chain = guardian_chain()
    ok(chain, (GUARDIAN, pause("market", 1_000, BTC)), (GUARDIAN, pause("market", 1_000, ETH)))  # start T0 + 1 s
    result = chain.block([(GUARDIAN, unpause("market", BTC))], advance_s=GRACE_S)     # T0 + 601 s: start + grace
    assert events_of(result, "guardian_unpaused") == [
        {"type": "guardian_unpaused", "scope": "market", "market": BTC, "start_ms": T0 + S, "end_ms": T0 + 1_001 * S}]
    assert rejected(chain, GUARDIAN, unpause("market", ETH)) == "unpause_grace_over"  # T0 + 602 s > T0 + 601 s
    assert chain.state.time_ms == T0 + 602 * S
    ok(chain, (ALICE, place_order()))                                                  # BTC trades again
    assert rejected(chain, GUARDIAN, pause("market", 10, BTC)) == "pause_already_used"


def test_the_guardian_lapses_at_its_expiry_but_its_pauses_run_their_course():
    chain = guardian_chain(expires="2026-01-01T00:00:10Z")
    ok(chain, (GUARDIAN, pause("market", 100, BTC)), advance_s=9)                     # T0 + 9 s: still in power
    assert rejected(chain, GUARDIAN, pause("market", 100, ETH)) == "guardian_expired"  # T0 + 10 s = expiry
    assert rejected(chain, GUARDIAN, unpause("market", BTC)) == "guardian_expired"
    assert rejected(chain, ALICE, pause("market", 100, ETH)) == "not_guardian"
    assert rejected(chain, ALICE, place_order()) == "market_paused_by_guardian"      # the pause runs on
    renew(chain, GUARDIAN, "2026-02-01T00:00:00Z")
    ok(chain, (GUARDIAN, pause("market", 100, ETH)))


def test_governance_removes_the_guardian():
    chain = guardian_chain()
    events = renew(chain, None, None)
    assert [(e["name"], e["old"], e["value"]) for e in events] == [
        ("guardian.address", GUARDIAN, None), ("guardian.expires_ms", TERM_END_MS, None)]
    assert rejected(chain, GUARDIAN, pause("trading", 10)) == "not_guardian"


# ------------------------------------------------------------------------------------------- set_guardian
def test_set_guardian_is_a_critical_action():
    chain = guardian_chain()
    empty_blocks(chain, 6)
    result = chain.block([(ALICE, submit_proposal({"type": "set_guardian", "address": CAROL,
                                                   "expires": "2027-01-01T00:00:00Z"}))])
    assert result.results[0]["risk_class"] == "critical"
    state = chain.state
    assert change_rows(governance.compute_action_changes(state, SetGuardian(CAROL.upper().replace("0X", "0x"),
                                                                            "2027-01-01T00:00:00Z"))) == [
        ("guardian.address", GUARDIAN, CAROL, "critical"),
        ("guardian.expires_ms", TERM_END_MS, T0 + 365 * DAY_S * S, "critical")]


@pytest.mark.parametrize("address_text, expires, code", [
    (CAROL, None, "missing_field"),
    (None, TERM_END, "invalid_field"),                                    # removing takes no expiry
    ("0x1234", TERM_END, "invalid_address"),
    (CAROL, "2026-01-01T00:00:00Z", "invalid_guardian_expiry"),           # not after the block time (T0)
    (CAROL, "tomorrow", "invalid_time"),
])
def test_set_guardian_validation(address_text, expires, code):
    with pytest.raises(ProtocolError) as error:
        governance.compute_action_changes(build_state(guardian_genesis()), SetGuardian(address_text, expires))
    assert error.value.code == code


def test_the_guardian_parameters_are_critical_governance_params_with_bounds():
    assert GENESIS_DEFAULTS["governance"]["guardian_max_pause_s"] == 259_200
    assert GENESIS_DEFAULTS["governance"]["guardian_unpause_grace_s"] == 600
    assert GENESIS_DEFAULTS["guardian"] is None
    state = build_state(guardian_genesis())
    action = decode_action({"type": "set_governance_params", "params": {"guardian_max_pause_s": 7_200}}, 0)
    changes = change_rows(c for c in governance.compute_action_changes(state, action) if c.old != c.new)
    assert changes == [("governance.guardian_max_pause_ms", 1_000_000, 7_200_000, "critical")]
    too_long = decode_action({"type": "set_governance_params", "params": {"guardian_unpause_grace_s": 1_001}}, 0)
    with pytest.raises(ProtocolError) as error:
        governance.compute_action_changes(state, too_long)
    assert (error.value.code, error.value.fields["field"]) == ("invalid_field", "params.guardian_unpause_grace_s")


@pytest.mark.parametrize("guardian_doc, field", [
    ({"address": GUARDIAN, "expires": "2026-01-01T00:00:00Z"}, "genesis.guardian.expires"),   # at genesis time
    ({"address": GUARDIAN}, "genesis.guardian.expires"),
    ({"address": GUARDIAN, "expires": TERM_END, "powers": []}, "genesis.guardian.powers"),
])
def test_an_invalid_genesis_guardian_is_refused(guardian_doc, field):
    with pytest.raises(ProtocolError) as error:
        build_state(genesis(guardian=guardian_doc))
    assert (error.value.code, error.value.fields["field"]) == ("invalid_genesis", field)


# ------------------------------------------------------------------------------------------- veto
def test_the_guardian_vetoes_a_queued_proposal_which_then_cannot_execute():
    chain = guardian_chain()
    pid = pass_and_queue(chain, RAISE_INSURANCE_SHARE)                                 # queued at height 8
    reason = "raises the insurance share while the fund is being drained"
    result = chain.block([(GUARDIAN, veto(pid, reason))])
    assert result.results == [{"ok": True}]
    assert events_of(result, "proposal_status") == [
        {"type": "proposal_status", "proposal_id": pid, "from": "queued", "to": "vetoed_by_guardian",
         "by": GUARDIAN, "reason": reason}]
    p = chain.state.proposals[pid]
    assert (p.status, p.closed_height, p.deposit_state) == ("vetoed_by_guardian", 9, "returned")
    assert rejected(chain, ALICE, execute(pid)) == "proposal_not_executable"
    chain.block([], advance_s=DAY_S)
    assert rejected(chain, ALICE, execute(pid)) == "proposal_not_executable"         # after the timelock too
    assert chain.state.fees.insurance_share_ppm == 100_000
    assert rejected(chain, GUARDIAN, veto(pid)) == "proposal_not_vetoable"           # final


def test_the_guardian_vetoes_a_succeeded_proposal_but_not_a_running_vote():
    chain = guardian_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)                                        # height 1: pending
    assert rejected(chain, GUARDIAN, veto(pid)) == "proposal_not_vetoable"
    ok(chain, (BOB, vote(pid, "yes")), advance_s=1)                                   # height 3: active
    assert chain.state.proposals[pid].status == "active"
    assert rejected(chain, GUARDIAN, veto(pid)) == "proposal_not_vetoable"
    empty_blocks(chain, 4)                                                             # end of 7: succeeded
    ok(chain, (GUARDIAN, veto(pid)))
    assert rejected(chain, ALICE, queue(pid)) == "proposal_not_succeeded"


def test_the_guardian_vetoes_its_replacement_but_not_its_removal():
    """Issue 16: a captured governance handing the emergency powers to a new address is what the
    veto is for; removing the guardian is not vetoable (it cannot entrench itself)."""
    chain = guardian_chain()
    empty_blocks(chain, 6)                                                             # holding age 5 blocks
    new_guardian = {"type": "set_guardian", "address": CAROL, "expires": "2027-01-01T00:00:00Z"}
    removal = {"type": "set_guardian", "address": None}
    replace = propose(chain, new_guardian)                                             # height 7, critical
    remove = propose(chain, removal)                                                   # height 8
    bundled = propose(chain, removal, RAISE_INSURANCE_SHARE)                           # height 9
    ok(chain, (BOB, vote(replace)), (CAROL, vote(replace)))                            # height 10
    ok(chain, (BOB, vote(remove)), (CAROL, vote(remove)))                              # height 11
    ok(chain, (BOB, vote(bundled)), (CAROL, vote(bundled)))                            # height 12
    empty_blocks(chain, 9)                                                             # deadlines 18, 19, 20
    assert [chain.state.proposals[p].status for p in (replace, remove, bundled)] == ["succeeded"] * 3
    ok(chain, (GUARDIAN, veto(replace)))
    assert chain.state.proposals[replace].status == "vetoed_by_guardian"
    assert rejected(chain, GUARDIAN, veto(remove)) == "guardian_change_not_vetoable"
    ok(chain, (GUARDIAN, veto(bundled)))


# ------------------------------------------------------------------------------------------- funds
@pytest.mark.parametrize("action_type", sorted(ACTION_TYPES))
@pytest.mark.parametrize("sender", [GUARDIAN, ALICE])
def test_a_governance_action_sent_as_a_transaction_is_refused(action_type, sender):
    chain = guardian_chain()
    result = chain.submit(sender, {"type": action_type})
    assert result["code"] == "action_requires_proposal"
    assert result["message"] == f"{action_type} is a governance action: only an executed proposal applies it"


def test_the_dispatcher_refuses_a_typed_action_too():
    chain = guardian_chain()
    chain.open_block()
    before = chain.full_hash()
    result = apply_tx(chain.state, GUARDIAN, SetFeeParams("0"), chain.events)  # type: ignore[arg-type]
    assert (result["ok"], result["code"]) == (False, "action_requires_proposal")
    assert chain.full_hash() == before


def test_the_guardian_moves_only_its_own_funds():
    chain = guardian_chain(accounts=[account(ALICE, subaccount(), subaccount(7, usdc="500"))])
    # a withdraw or transfer names a subaccount number of its sender: ALICE's subaccount 7 is out of reach
    assert rejected(chain, GUARDIAN, withdraw(subaccount=7, amount="1")) == "subaccount_not_found"
    assert rejected(chain, GUARDIAN, transfer(subaccount=7, to_owner=GUARDIAN, amount="1")) == "subaccount_not_found"
    ok(chain, (GUARDIAN, withdraw(amount="1")), (GUARDIAN, transfer(to_owner=ALICE, amount="2")))
    assert chain.subaccount(GUARDIAN).balance == (100_000 - 3) * 1_000_000
    assert chain.subaccount(ALICE).balance == (100_000 + 2) * 1_000_000
    assert chain.subaccount(ALICE, 7).balance == 500 * 1_000_000


def test_pauses_are_hashed_and_restored_from_a_snapshot():
    chain = guardian_chain()
    ok(chain, (GUARDIAN, pause("reduce_only", 100, PEPE)), (GUARDIAN, pause("withdrawals", 50)))
    restored = state_from_document(state_to_document(chain.state))
    assert restored.state_hash == chain.state.state_hash
    assert list(restored.pauses) == [("reduce_only", PEPE), ("withdrawals", None)]
    assert restored.guardian == chain.state.guardian
    assert guardian.is_reduce_only(restored, PEPE) and not guardian.is_market_halted(restored, PEPE)
