"""BGOV transfers, delegation and checkpointed voting power (``bastion.core.votes``), and the
concentration metrics, with exact numbers. Rows named ``V-nn`` re-express OpenZeppelin's
``Votes.behavior.js`` / ``ERC20Votes.test.js`` cases (the OpenZeppelin Governor reference vectors, section K;
see docs/governance_reference_map.md) in our units: 1 BGOV = 1,000,000 units, timepoints are block heights."""
from __future__ import annotations

from fractions import Fraction

import pytest

from bastion.core import votes
from bastion.core.errors import ProtocolError
from bastion.core.hashing import compute_state_hash_full
from bastion.core.votes import (
    BGOV, compute_concentration, compute_effective_voters, compute_gini, compute_hhi, compute_nakamoto_coefficient,
    compute_top_share, get_past_delegated_supply, get_past_total_supply, get_past_votes, get_votes,
    get_votes_with_holding_age, is_quorum_alone,
)
from builders import ALICE, BOB, CAROL, DAVE, STRANGER, Chain, account, delegate, genesis, transfer_bgov

ZERO = votes.ZERO_ADDRESS


def bgov_chain(balances: dict[str, str] | None = None, delegates: dict[str, str] | None = None) -> Chain:
    """ALICE holds 100 BGOV, BOB 50, CAROL and DAVE none (unless overridden); nobody delegated."""
    balances = {ALICE: "100", BOB: "50"} if balances is None else balances
    delegates = delegates or {}
    accounts = []
    for owner in (ALICE, BOB, CAROL, DAVE):
        entry = account(owner)
        if owner in balances:
            entry["bgov"] = balances[owner]
        if owner in delegates:
            entry["delegate"] = delegates[owner]
        accounts.append(entry)
    return Chain(genesis(accounts=accounts))


def run(chain: Chain, *txs: tuple[str, dict]) -> list[dict]:
    """Apply one block of txs; return the block's events (every tx must be accepted)."""
    result = chain.block(list(txs))
    assert all(r["ok"] for r in result.results), result.results
    assert result.state_hash == compute_state_hash_full(chain.state)
    return result.events


def vote_events(events: list[dict]) -> list[tuple]:
    return [(e["delegate"], e["previous_votes"], e["new_votes"])
            for e in events if e["type"] == "delegate_votes_changed"]


# --------------------------------------------------------------------------------------- ledger
def test_transfer_moves_balance_and_emits_event():
    chain = bgov_chain()

    events = run(chain, (ALICE, transfer_bgov(to=CAROL, amount="12.5")))

    assert chain.state.bgov == {ALICE: 87_500_000, BOB: 50 * BGOV, CAROL: 12_500_000}
    assert events == [{"type": "bgov_transfer", "from": ALICE, "to": CAROL, "amount": 12_500_000}]


def test_transfer_of_whole_balance_removes_the_holder():
    chain = bgov_chain()

    run(chain, (BOB, transfer_bgov(to=ALICE, amount="50")))

    assert chain.state.bgov == {ALICE: 150 * BGOV}
    assert votes.get_total_supply(chain.state) == 150 * BGOV


@pytest.mark.parametrize(("sender", "fields", "code"), [
    (ALICE, {"amount": "100.000001"}, "insufficient_bgov"),   # one unit more than the balance
    (STRANGER, {}, "insufficient_bgov"),                      # no balance at all
    (ALICE, {"to": ALICE}, "invalid_recipient"),              # to self
    (ALICE, {"to": "0x12"}, "invalid_address"),
    (ALICE, {"amount": "0"}, "non_positive_amount"),
    (ALICE, {"amount": "1.0000001"}, "too_many_decimals"),    # 7 decimals on a 6-decimal grid
    (ALICE, {"amount": "-1"}, "negative_value"),
])
def test_invalid_transfer_is_rejected_and_changes_nothing(sender, fields, code):
    chain = bgov_chain(delegates={ALICE: ALICE})
    chain.open_block()
    before = chain.full_hash()

    result = chain.submit(sender, transfer_bgov(**fields))

    assert (result["ok"], result["code"]) == (False, code)
    assert chain.full_hash() == before and chain.events == []


# --------------------------------------------------------------------------------------- delegation
def test_v01_transfer_between_undelegated_accounts_moves_no_votes():
    chain = bgov_chain()

    events = run(chain, (ALICE, transfer_bgov(to=BOB, amount="1")))

    assert [e["type"] for e in events] == ["bgov_transfer"]
    assert get_votes(chain.state, ALICE) == get_votes(chain.state, BOB) == 0
    assert chain.state.delegated_supply_checkpoints == []


def test_v02_sender_delegated_loses_votes():
    chain = bgov_chain()
    run(chain, (ALICE, delegate(delegatee=ALICE)))

    events = run(chain, (ALICE, transfer_bgov(to=BOB, amount="1")))

    assert vote_events(events) == [(ALICE, 100 * BGOV, 99 * BGOV)]
    assert get_votes(chain.state, BOB) == 0
    assert votes.get_delegated_supply(chain.state) == 99 * BGOV


def test_v03_receiver_delegated_gains_votes():
    chain = bgov_chain()
    run(chain, (BOB, delegate(delegatee=BOB)))

    events = run(chain, (ALICE, transfer_bgov(to=BOB, amount="1")))

    assert vote_events(events) == [(BOB, 50 * BGOV, 51 * BGOV)]
    assert votes.get_delegated_supply(chain.state) == 51 * BGOV


def test_transfer_between_two_delegates_moves_votes_but_not_delegated_supply():
    chain = bgov_chain()
    run(chain, (ALICE, delegate(delegatee=CAROL)), (BOB, delegate(delegatee=DAVE)))

    events = run(chain, (ALICE, transfer_bgov(to=BOB, amount="30")))

    assert vote_events(events) == [(CAROL, 100 * BGOV, 70 * BGOV), (DAVE, 50 * BGOV, 80 * BGOV)]
    assert chain.state.delegated_supply_checkpoints == [(1, 150 * BGOV)]


def test_v04_delegation_counts_from_its_block():
    chain = bgov_chain()
    run(chain)                                               # height 1
    events = run(chain, (ALICE, delegate(delegatee=ALICE)))  # height 2
    run(chain)                                               # height 3

    assert events == [
        {"type": "delegate_changed", "delegator": ALICE, "from_delegate": None, "to_delegate": ALICE},
        {"type": "delegate_votes_changed", "delegate": ALICE, "previous_votes": 0, "new_votes": 100 * BGOV}]
    assert get_past_votes(chain.state, ALICE, 1) == 0
    assert get_past_votes(chain.state, ALICE, 2) == 100 * BGOV
    assert get_past_total_supply(chain.state, 1) == 150 * BGOV
    assert get_past_delegated_supply(chain.state, 1) == 0
    assert get_past_delegated_supply(chain.state, 2) == 100 * BGOV


def test_v05_redelegation_moves_power_and_keeps_history():
    chain = bgov_chain()
    run(chain, (ALICE, delegate(delegatee=ALICE)))           # height 1
    events = run(chain, (ALICE, delegate(delegatee=BOB)))    # height 2
    run(chain)

    assert vote_events(events) == [(ALICE, 100 * BGOV, 0), (BOB, 0, 100 * BGOV)]
    assert (get_past_votes(chain.state, ALICE, 1), get_past_votes(chain.state, BOB, 1)) == (100 * BGOV, 0)
    assert (get_past_votes(chain.state, ALICE, 2), get_past_votes(chain.state, BOB, 2)) == (0, 100 * BGOV)
    assert get_past_delegated_supply(chain.state, 2) == 100 * BGOV  # moved, not added


def test_v06_delegation_without_tokens_emits_only_delegate_changed():
    chain = bgov_chain()

    events = run(chain, (CAROL, delegate(delegatee=CAROL)))

    assert [e["type"] for e in events] == ["delegate_changed"]
    assert chain.state.bgov_delegates == {CAROL: CAROL}
    assert chain.state.vote_checkpoints == {}


def test_delegating_to_the_zero_address_removes_the_delegation():
    chain = bgov_chain()
    run(chain, (ALICE, delegate(delegatee=ALICE)))

    events = run(chain, (ALICE, delegate(delegatee=ZERO)))

    assert vote_events(events) == [(ALICE, 100 * BGOV, 0)]
    assert events[0]["to_delegate"] is None
    assert chain.state.bgov_delegates == {}
    assert votes.get_delegated_supply(chain.state) == 0


@pytest.mark.parametrize(("delegates", "target"), [
    ({ALICE: ALICE}, ALICE),   # already delegated to that address
    ({}, ZERO),                # undelegating while not delegated
])
def test_unchanged_delegation_is_rejected(delegates, target):
    chain = bgov_chain(delegates=delegates)
    chain.open_block()
    before = chain.full_hash()

    result = chain.submit(ALICE, delegate(delegatee=target))

    assert (result["ok"], result["code"]) == (False, "delegate_unchanged")
    assert chain.full_hash() == before


def test_v07_future_lookup_is_an_error():
    chain = bgov_chain()
    run(chain)
    run(chain)  # height 2

    for lookup in (lambda h: get_past_votes(chain.state, ALICE, h), lambda h: get_past_total_supply(chain.state, h),
                   lambda h: get_past_delegated_supply(chain.state, h)):
        assert lookup(1) in (0, 150 * BGOV)
        with pytest.raises(ProtocolError) as error:
            lookup(2)
        assert error.value.code == "future_lookup"
        assert error.value.fields == {"field": "height", "height": 2, "current_height": 2}


def test_v08_several_changes_in_one_block_give_one_checkpoint():
    chain = bgov_chain()
    # in one block: ALICE (100) delegates to CAROL, then transfers 10 twice to BOB (undelegated)
    events = run(chain, (ALICE, delegate(delegatee=CAROL)), (ALICE, transfer_bgov(amount="10")),
                 (ALICE, transfer_bgov(amount="10")))
    assert vote_events(events) == [(CAROL, 0, 100 * BGOV), (CAROL, 100 * BGOV, 90 * BGOV),
                                   (CAROL, 90 * BGOV, 80 * BGOV)]
    assert chain.state.vote_checkpoints[CAROL] == [(1, 80 * BGOV)]      # end of block wins

    run(chain, (BOB, transfer_bgov(to=ALICE, amount="20")))              # next block: back to 100

    assert chain.state.vote_checkpoints[CAROL] == [(1, 80 * BGOV), (2, 100 * BGOV)]
    assert chain.state.delegated_supply_checkpoints == [(1, 80 * BGOV), (2, 100 * BGOV)]


def test_v09_history_of_past_votes():
    chain = bgov_chain(balances={ALICE: "100"})
    run(chain)                                                        # height 1
    run(chain, (ALICE, delegate(delegatee=ALICE)))                    # t1 = 2
    run(chain, (ALICE, transfer_bgov(amount="10")))                   # t2 = 3
    run(chain, (ALICE, transfer_bgov(amount="10")))                   # t3 = 4
    run(chain, (BOB, transfer_bgov(to=ALICE, amount="20")))           # t4 = 5
    run(chain)                                                        # height 6

    past = [get_past_votes(chain.state, ALICE, h) // BGOV for h in range(1, 6)]
    assert past == [0, 100, 90, 80, 100]
    assert get_votes(chain.state, ALICE) == 100 * BGOV


def test_flash_acquired_tokens_count_for_nothing_at_a_past_snapshot():
    # Beanstalk: BOB borrows ALICE's 100 at height 3 (after the snapshot 2), delegates and votes
    chain = bgov_chain(delegates={ALICE: ALICE})
    run(chain)
    run(chain)                                                                     # snapshot = 2
    run(chain, (ALICE, transfer_bgov(to=BOB, amount="100")), (BOB, delegate(delegatee=BOB)))  # 3
    run(chain, (BOB, transfer_bgov(to=ALICE, amount="100")))                       # 4: repaid

    assert get_past_votes(chain.state, BOB, 2) == 0
    assert get_past_votes(chain.state, BOB, 3) == 150 * BGOV
    assert get_past_votes(chain.state, ALICE, 2) == 100 * BGOV


def test_holding_age_ignores_power_acquired_within_the_minimum_age():
    # BOB (50) self-delegates at height 1, buys 100 more from ALICE at height 5; snapshot 6
    chain = bgov_chain()
    run(chain, (BOB, delegate(delegatee=BOB)))                                     # 1
    for _ in range(3):
        run(chain)                                                                 # 2..4
    run(chain, (ALICE, transfer_bgov(to=BOB, amount="100")))                       # 5
    run(chain)                                                                     # 6 (snapshot)
    run(chain)                                                                     # 7

    assert get_past_votes(chain.state, BOB, 6) == 150 * BGOV
    assert get_votes_with_holding_age(chain.state, BOB, 6, 0) == 150 * BGOV
    assert get_votes_with_holding_age(chain.state, BOB, 6, 1) == 150 * BGOV   # min(votes@6, votes@5)
    assert get_votes_with_holding_age(chain.state, BOB, 6, 2) == 50 * BGOV    # votes@4 = 50
    assert get_votes_with_holding_age(chain.state, BOB, 6, 6) == 0            # votes@0 = 0 (delegated at 1)
    assert get_votes_with_holding_age(chain.state, BOB, 6, 100) == 0         # clamped at height 0
    with pytest.raises(ProtocolError, match="not in the past"):
        get_votes_with_holding_age(chain.state, BOB, 7, 1)


def test_holding_age_counts_genesis_delegations_from_height_zero():
    chain = bgov_chain(delegates={ALICE: ALICE, BOB: CAROL})
    run(chain)
    run(chain)

    assert get_votes_with_holding_age(chain.state, ALICE, 1, 10) == 100 * BGOV
    assert get_votes(chain.state, CAROL) == 50 * BGOV
    assert chain.state.vote_checkpoints == {ALICE: [(0, 100 * BGOV)], CAROL: [(0, 50 * BGOV)]}
    assert chain.state.delegated_supply_checkpoints == [(0, 150 * BGOV)]


def test_genesis_rejects_two_delegations_for_one_address():
    doc = genesis(accounts=[{**account(ALICE), "bgov": "1", "delegate": ALICE},
                            {"address": ALICE, "subaccounts": [], "delegate": BOB}])
    with pytest.raises(ProtocolError, match="already delegated"):
        Chain(doc)


def test_a_transfer_touches_only_the_two_accounts_and_their_delegates_checkpoints():
    chain = bgov_chain(delegates={ALICE: CAROL, BOB: DAVE})
    for _ in range(5):
        run(chain, (ALICE, transfer_bgov(to=BOB, amount="1")))
    chain.open_block()
    chain.state.dirty.clear()

    assert chain.submit(ALICE, transfer_bgov(to=BOB, amount="1"))["ok"]

    assert set(chain.state.dirty) == {("bgov", ALICE), ("bgov", BOB), ("votes", CAROL, 6), ("votes", DAVE, 6)}


# --------------------------------------------------------------------------------------- concentration
def test_concentration_of_50_30_20():
    powers = [20, 50, 30]
    # 1/3 of 100 is 33.3: 50 exceeds it alone; 1/2 is 50: 50 does not exceed it (strict), 50 + 30 does
    assert compute_nakamoto_coefficient(powers, Fraction(1, 3)) == 1
    assert compute_nakamoto_coefficient(powers, Fraction(1, 2)) == 2
    # sum |xi - xj| over ordered pairs = 2 * (20 + 30 + 10) = 120; / (2 * 3 * 100) = 1/5
    assert compute_gini(powers) == Fraction(1, 5)
    # 0.25 + 0.09 + 0.04 = 0.38 = 19/50; effective voters 50/19 (about 2.63)
    assert compute_hhi(powers) == Fraction(19, 50)
    assert compute_effective_voters(powers) == Fraction(50, 19)
    assert compute_top_share(powers, 10) == 1
    assert compute_top_share(powers, 1) == Fraction(1, 2)


@pytest.mark.parametrize(("powers", "one_third", "one_half", "gini", "hhi"), [
    ([25, 25, 25, 25], 2, 3, Fraction(0), Fraction(1, 4)),           # 50 > 33.3 with 2; 75 > 50 needs 3
    ([51, 49], 1, 1, Fraction(1, 100), Fraction(5002, 10000)),        # 51 > 50; gini 2/(2*2*100)
    ([100], 1, 1, Fraction(0), Fraction(1)),                          # one holder
    ([1, 0, 0, 0], 1, 1, Fraction(3, 4), Fraction(1)),                 # zeros count as holders for Gini
    ([], 0, 0, Fraction(0), Fraction(0)),                             # no power at all
    ([0, 0], 0, 0, Fraction(0), Fraction(0)),
])
def test_concentration_edges(powers, one_third, one_half, gini, hhi):
    assert compute_nakamoto_coefficient(powers, Fraction(1, 3)) == one_third
    assert compute_nakamoto_coefficient(powers, Fraction(1, 2)) == one_half
    assert compute_gini(powers) == gini
    assert compute_hhi(powers) == hhi


def test_top10_share_uses_only_the_ten_largest():
    powers = list(range(1, 13))  # 1..12, total 78; top ten 3..12 = 75
    assert compute_top_share(powers) == Fraction(75, 78)


@pytest.mark.parametrize(("powers", "quorum", "alert"), [
    ([40, 30], 40, True),    # reaches the quorum alone (a quorum is met at equality)
    ([40, 30], 41, False),
    ([], 0, False),          # nobody
    ([0], 0, False),         # nobody with power
])
def test_single_delegate_quorum_alert(powers, quorum, alert):
    assert is_quorum_alone(powers, quorum) is alert


def test_compute_concentration_over_a_chain():
    chain = bgov_chain(balances={ALICE: "50", BOB: "30", CAROL: "20"},
                       delegates={ALICE: ALICE, BOB: BOB, CAROL: CAROL})

    metrics = compute_concentration(votes.get_voting_powers(chain.state).values())

    assert metrics == votes.Concentration(holders=3, total=100 * BGOV, nakamoto_one_third=1, nakamoto_one_half=2,
                                          gini=Fraction(1, 5), hhi=Fraction(19, 50),
                                          effective_voters=Fraction(50, 19), top10_share=Fraction(1))


def test_negative_powers_are_refused():
    with pytest.raises(ValueError):
        compute_gini([1, -1])
