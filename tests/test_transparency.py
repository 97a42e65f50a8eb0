"""Transparency queries (``bastion.core.transparency``) with numbers worked by hand.

The chain of ``transparency_chain``: ALICE 100 BGOV and BOB 300 (each self-delegated), CAROL 200
(delegated to BOB unless told otherwise), DAVE 400 (not delegated): total supply 1,000 BGOV.
Rules (``GOVERNANCE``): voting delay 1 block, proposal threshold 10, deposit 5, every voting
period 3 blocks (a proposal submitted in block 1 has snapshot 2, takes votes in blocks 3..5 and is
tallied at the end of block 5); quorum per class risk_reducing 10%, neutral 20%, risk_increasing
30%, critical 50% of the total supply; holding age 2 blocks for risk_increasing and critical.
"""
from __future__ import annotations

from fractions import Fraction

import pytest

from bastion.core import transparency, votes
from bastion.core.errors import ProtocolError
from bastion.core.state import ParamHistoryEntry, ParamSource
from builders import ALICE, BOB, CAROL, DAVE, ETH, Chain, account, delegate, execute, genesis, queue, vote
from test_governance import ok, propose

BGOV = votes.BGOV
DAY_S = 86_400
GOVERNANCE = {
    "voting_delay_blocks": 1, "proposal_threshold": "10", "min_deposit": "5", "proposal_fee": "0",
    "execution_window_s": 3_600,
    "veto_threshold": "1/3", "late_quorum_extension_blocks": 0,
    "tiers": {
        "risk_reducing": {"quorum": "0.1", "approval_threshold": "0.5", "voting_period_blocks": 3,
                          "timelock_s": DAY_S, "min_holding_age_blocks": 0},
        "neutral": {"quorum": "0.2", "approval_threshold": "0.5", "voting_period_blocks": 3,
                    "timelock_s": 2 * DAY_S, "min_holding_age_blocks": 0},
        "risk_increasing": {"quorum": "0.3", "approval_threshold": "0.6", "voting_period_blocks": 3,
                            "timelock_s": 7 * DAY_S, "min_holding_age_blocks": 2},
        "critical": {"quorum": "0.5", "approval_threshold": "0.667", "voting_period_blocks": 3,
                     "timelock_s": 14 * DAY_S, "min_holding_age_blocks": 2},
    },
}
RAISE_INSURANCE_SHARE = {"type": "set_fee_params", "insurance_share": "0.2"}   # 0.1 -> 0.2: risk reducing
LOWER_INSURANCE_SHARE = {"type": "set_fee_params", "insurance_share": "0.05"}  # 0.1 -> 0.05: risk increasing
CHANGE_MIN_DEPOSIT = {"type": "set_governance_params", "params": {"min_deposit": "6"}}  # critical
RAISE_ETH_MIN_ORDER = {"type": "set_market_params", "market": ETH, "min_order_size": "0.01"}  # 10 -> 100 lots
CLASSES = ("risk_reducing", "neutral", "risk_increasing", "critical")


def transparency_chain(*, carol_delegate: str | None = BOB, delegations: dict[str, str] | None = None) -> Chain:
    delegates = {ALICE: ALICE, BOB: BOB, CAROL: carol_delegate} if delegations is None else delegations
    accounts = []
    for owner, amount in ((ALICE, "100"), (BOB, "300"), (CAROL, "200"), (DAVE, "400")):
        entry = {**account(owner), "bgov": amount}
        if delegates.get(owner):
            entry["delegate"] = delegates[owner]
        accounts.append(entry)
    return Chain(genesis(accounts=accounts, governance=GOVERNANCE))


# ------------------------------------------------------------------------------------- parameter history
def test_parameter_history_lists_every_change_with_its_proposal_and_block():
    chain = transparency_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE, RAISE_ETH_MIN_ORDER)   # block 1: risk reducing
    ok(chain)                                                         # block 2: snapshot
    ok(chain, (BOB, vote(pid, "yes")))                                # block 3: 500 yes >= quorum 100
    ok(chain)
    ok(chain)                                                         # block 5: tallied, succeeded
    ok(chain, (ALICE, queue(pid)))                                    # block 6
    ok(chain, (ALICE, execute(pid)), advance_s=DAY_S)                 # block 7: 1 day later, the timelock

    source = ParamSource("proposal", pid, 1)
    assert transparency.parameter_history(chain.state) == [
        ParamHistoryEntry("fees.insurance_share_ppm", 100_000, 200_000, 7, source),
        ParamHistoryEntry(f"markets.{ETH}.min_order_lots", 10, 100, 7, source),
    ]
    assert transparency.parameter_history(chain.state, f"markets.{ETH}.min_order_lots") == [
        ParamHistoryEntry(f"markets.{ETH}.min_order_lots", 10, 100, 7, source)]
    assert transparency.parameter_history(chain.state, "fees.unknown") == []


def test_parameter_history_is_empty_before_any_change():
    assert transparency.parameter_history(transparency_chain().state) == []


# ------------------------------------------------------------------------------------- concentration
def test_voting_concentration_over_current_powers_alerts_on_every_quorum_the_largest_delegate_meets():
    chain = transparency_chain()                                      # ALICE 100, BOB 300 + CAROL's 200

    concentration = transparency.get_voting_concentration(chain.state)

    # powers [500, 100] of 600: 500 alone exceeds 1/3 and 1/2; Gini |500 - 100| * 2 / (2 * 2 * 600) = 1/3;
    # HHI (500^2 + 100^2) / 600^2 = 260,000 / 360,000 = 13/18, effective voters 18/13
    assert concentration.metrics == votes.Concentration(
        holders=2, total=600 * BGOV, nakamoto_one_third=1, nakamoto_one_half=1, gini=Fraction(1, 3),
        hhi=Fraction(13, 18), effective_voters=Fraction(18, 13), top10_share=Fraction(1))
    assert (concentration.largest_delegate, concentration.largest_votes) == (BOB, 500 * BGOV)
    # quorums of the 1,000 BGOV supply: 10%, 20%, 30%, 50%; BOB's 500 meets all four (50% at equality)
    assert concentration.quorum_votes == {"risk_reducing": 100 * BGOV, "neutral": 200 * BGOV,
                                          "risk_increasing": 300 * BGOV, "critical": 500 * BGOV}
    assert concentration.quorum_alone == CLASSES


def test_quorum_alert_stops_at_the_first_quorum_above_the_largest_delegate():
    chain = transparency_chain(carol_delegate=CAROL)                  # ALICE 100, BOB 300, CAROL 200

    concentration = transparency.get_voting_concentration(chain.state)

    # BOB's 300 meets 100, 200 and 300 (equality), not the critical 500
    assert concentration.quorum_alone == ("risk_reducing", "neutral", "risk_increasing")
    assert concentration.metrics.nakamoto_one_half == 2               # 300 is not above 300; 300 + 200 is


def test_equal_largest_delegates_name_the_lowest_address():
    chain = transparency_chain(delegations={ALICE: ALICE, BOB: BOB, CAROL: ALICE})  # ALICE 300, BOB 300

    concentration = transparency.get_voting_concentration(chain.state)

    assert (concentration.largest_delegate, concentration.largest_votes) == (ALICE, 300 * BGOV)


def test_voting_concentration_without_any_delegation_has_no_alert():
    chain = transparency_chain(delegations={})

    concentration = transparency.get_voting_concentration(chain.state)

    assert concentration.metrics == votes.Concentration(0, 0, 0, 0, Fraction(0), Fraction(0), Fraction(0),
                                                        Fraction(0))
    assert (concentration.largest_delegate, concentration.largest_votes) == (None, 0)
    assert concentration.quorum_alone == ()


def test_current_quorums_follow_a_burned_deposit():
    chain = transparency_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)
    ok(chain)
    ok(chain, (BOB, vote(pid, "veto")))                                # 500 veto of 500 decisive > 1/3
    ok(chain)
    ok(chain)                                                         # block 5: vetoed, 5 BGOV burned

    concentration = transparency.get_voting_concentration(chain.state)

    # supply 995 BGOV: 10% = 99.5, 20% = 199, 30% = 298.5, 50% = 497.5
    assert concentration.quorum_votes == {"risk_reducing": 99_500_000, "neutral": 199_000_000,
                                          "risk_increasing": 298_500_000, "critical": 497_500_000}
    # ... while the vetoed proposal keeps its snapshot's 1,000 BGOV (quorum 100)
    participation = transparency.get_proposal_participation(chain.state, pid)
    assert (participation.total_supply, participation.quorum_votes) == (1_000 * BGOV, 100 * BGOV)


# ------------------------------------------------------------------------------------- turnout and participation
def test_turnout_and_delegate_participation_are_read_at_the_snapshot():
    chain = transparency_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)                       # block 1: ALICE 100 -> 95 votes
    ok(chain, (CAROL, delegate(delegatee=CAROL)))                     # block 2 (snapshot): BOB 300, CAROL 200
    ok(chain, (ALICE, vote(pid, "yes")), (BOB, vote(pid, "no")),      # block 3
       (DAVE, delegate(delegatee=DAVE)))                              # after the snapshot: counts for nothing

    participation = transparency.get_proposal_participation(chain.state, pid)

    # at the snapshot: total 1,000 (the escrowed deposit is still supply), delegated 95 + 300 + 200 = 595;
    # cast 95 + 300 = 395: turnout 395 / 1,000 = 79/200 and 395 / 595 = 79/119; 2 of 3 delegates voted,
    # holding 395 of 595; quorum 10% = 100, which BOB's 300 meets alone
    assert participation == transparency.ProposalParticipation(
        proposal_id=pid, number=1, snapshot_height=2, votes_cast=395 * BGOV, total_supply=1_000 * BGOV,
        delegated_supply=595 * BGOV, turnout_of_supply=Fraction(79, 200), turnout_of_delegated=Fraction(79, 119),
        delegates=3, delegates_voted=2, voted_power=395 * BGOV, voted_power_share=Fraction(79, 119),
        quorum_votes=100 * BGOV, largest_delegate_votes=300 * BGOV, quorum_alone=True)


def test_participation_counts_full_snapshot_power_while_turnout_counts_held_votes():
    chain = transparency_chain(carol_delegate=None)                   # ALICE 100, BOB 300; CAROL, DAVE idle
    pid = propose(chain, LOWER_INSURANCE_SHARE)                       # block 1: risk increasing, holding age 2
    ok(chain, (CAROL, delegate(delegatee=BOB)))                       # block 2 (snapshot): BOB 500
    ok(chain, (ALICE, vote(pid, "yes")), (BOB, vote(pid, "yes")))     # block 3

    participation = transparency.get_proposal_participation(chain.state, pid)

    # weights min(at snapshot 2, at height 0): ALICE min(95, 100) = 95, BOB min(500, 300) = 300: cast 395;
    # both delegates voted with their full snapshot power 95 + 500 = 595 = the delegated supply;
    # quorum 30% of 1,000 = 300, BOB's 500 meets it alone
    assert (participation.votes_cast, participation.delegated_supply) == (395 * BGOV, 595 * BGOV)
    assert participation.turnout_of_supply == Fraction(79, 200)
    assert participation.turnout_of_delegated == Fraction(79, 119)
    assert (participation.delegates, participation.delegates_voted) == (2, 2)
    assert (participation.voted_power, participation.voted_power_share) == (595 * BGOV, Fraction(1))
    assert (participation.quorum_votes, participation.largest_delegate_votes) == (300 * BGOV, 500 * BGOV)
    assert participation.quorum_alone is True


def test_participation_before_any_vote_is_zero_and_the_alert_needs_the_quorum():
    chain = transparency_chain(carol_delegate=CAROL)
    pid = propose(chain, LOWER_INSURANCE_SHARE)                       # quorum 30% = 300
    ok(chain, (BOB, delegate(delegatee=ALICE)))                       # block 2 (snapshot): ALICE 395, CAROL 200

    participation = transparency.get_proposal_participation(chain.state, pid)   # the snapshot block is done

    assert (participation.votes_cast, participation.turnout_of_supply, participation.turnout_of_delegated) == (
        0, Fraction(0), Fraction(0))
    assert (participation.delegates, participation.delegates_voted, participation.voted_power) == (2, 0, 0)
    assert (participation.largest_delegate_votes, participation.quorum_alone) == (395 * BGOV, True)
    chain2 = transparency_chain(carol_delegate=CAROL)
    pid2 = propose(chain2, LOWER_INSURANCE_SHARE)
    ok(chain2)                                                        # snapshot: ALICE 95, BOB 300, CAROL 200
    assert transparency.get_proposal_participation(chain2.state, pid2).quorum_alone is True   # 300 >= 300
    chain3 = transparency_chain(carol_delegate=CAROL)
    pid3 = propose(chain3, CHANGE_MIN_DEPOSIT)                        # critical: quorum 50% = 500
    ok(chain3)
    assert transparency.get_proposal_participation(chain3.state, pid3).quorum_alone is False   # 300 < 500


def test_participation_with_nobody_delegated_is_zero_not_a_division_by_zero():
    chain = transparency_chain(delegations={DAVE: DAVE})              # only DAVE (400) votes...
    pid = propose(chain, RAISE_INSURANCE_SHARE, sender=DAVE)          # ... and proposes: 395 votes left
    ok(chain, (DAVE, delegate(delegatee="0x" + "0" * 40)))            # snapshot: nobody delegated

    participation = transparency.get_proposal_participation(chain.state, pid)

    assert (participation.delegated_supply, participation.turnout_of_delegated) == (0, Fraction(0))
    assert (participation.voted_power_share, participation.delegates, participation.quorum_alone) == (
        Fraction(0), 0, False)


def test_participation_before_the_snapshot_is_refused():
    chain = transparency_chain()
    pid = propose(chain, RAISE_INSURANCE_SHARE)                       # block 1 done; snapshot at the end of 2

    with pytest.raises(ProtocolError) as error:
        transparency.get_proposal_participation(chain.state, pid)
    assert error.value.code == "snapshot_not_taken"
    with pytest.raises(ProtocolError) as error:
        transparency.get_proposal_participation(chain.state, "0" * 64)
    assert error.value.code == "unknown_proposal"
