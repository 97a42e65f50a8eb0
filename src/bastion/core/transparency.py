"""Transparency queries (DESIGN.md section 9, issue 5): pure reads of a committed state for the API.

* ``parameter_history(state, name=None)``: every change of a governed parameter, oldest first, with
  its old and new value, the block height and its source (the proposal's hash id and number, or
  the council, a rollout, the guardian).
* ``get_voting_concentration(state)``: the concentration metrics of ``votes.compute_concentration``
  over the current voting powers (every delegatee with votes), and the **alert**: the risk classes
  whose quorum, ``ceil(current total supply x quorum)``, the largest delegate reaches alone (at
  equality too, as a quorum is met at equality: ``votes.is_quorum_alone``).
* ``get_proposal_participation(state, proposal_id)``: per proposal, read at its snapshot,
  **turnout** (votes cast over the total supply and over the delegated supply, exact ``Fraction``)
  and **delegate participation** (of the delegatees with voting power at the snapshot, how many
  voted and the share of the delegated supply they held), with the same alert against the
  proposal's own quorum.

These queries read a committed state, between blocks (as the API does): block ``state.height`` is
finished, so a snapshot at or below it is final. Every number is an ``int`` (BGOV units) or an
exact ``Fraction``; a ratio over nothing (no supply) is 0. Nothing here changes the state.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from bastion.core import governance, votes
from bastion.core.errors import ProtocolError
from bastion.core.params import RISK_CLASSES
from bastion.core.state import ParamHistoryEntry, State
from bastion.core.units import ppm_of_up


@dataclass(frozen=True, slots=True)
class VotingConcentration:
    """How concentrated the current voting power is, and which quorums one delegate meets alone."""

    metrics: votes.Concentration
    largest_delegate: str | None           # the delegatee with the most votes (ties: the lowest address)
    largest_votes: int
    quorum_votes: dict[str, int]           # per risk class: ceil(current total supply x its quorum)
    quorum_alone: tuple[str, ...]          # the risk classes whose quorum the largest delegate meets alone


@dataclass(frozen=True, slots=True)
class ProposalParticipation:
    """Turnout and delegate participation of one proposal, read at its snapshot.

    ``votes_cast`` are the ballots' weights (holding age applied); ``voted_power`` is the full
    snapshot voting power of the delegatees who voted, so that ``voted_power_share`` says which
    part of the delegated supply took part, whatever the holding-age rule discounted.
    """

    proposal_id: str
    number: int
    snapshot_height: int
    votes_cast: int                        # yes + no + abstain + veto
    total_supply: int                      # BGOV total supply at the snapshot
    delegated_supply: int                  # BGOV delegated at the snapshot
    turnout_of_supply: Fraction            # votes_cast / total_supply
    turnout_of_delegated: Fraction         # votes_cast / delegated_supply
    delegates: int                         # delegatees with voting power at the snapshot
    delegates_voted: int                   # of them, how many voted
    voted_power: int                       # their voting power at the snapshot
    voted_power_share: Fraction            # voted_power / delegated_supply
    quorum_votes: int                      # the proposal's quorum
    largest_delegate_votes: int            # the largest voting power at the snapshot
    quorum_alone: bool                     # alert: one delegate alone held the quorum at the snapshot


def parameter_history(state: State, name: str | None = None) -> list[ParamHistoryEntry]:
    """Every recorded change (``governance.change_param``), oldest first; of one parameter (its
    dotted name, e.g. ``markets.BTC-USD.taker_fee_ppm``) when ``name`` is given."""
    return [entry for entry in state.param_history if name is None or entry.name == name]


def get_voting_concentration(state: State) -> VotingConcentration:
    """Concentration of the current voting powers, with the single-delegate quorum alert per risk class."""
    powers = votes.get_voting_powers(state)  # sorted by address: max keeps the lowest address on a tie
    largest = max(powers, key=lambda account: powers[account], default=None)
    largest_votes = powers[largest] if largest is not None else 0
    supply = votes.get_total_supply(state)
    quorums = {name: ppm_of_up(supply, state.governance.tiers[name].quorum_ppm) for name in RISK_CLASSES}
    return VotingConcentration(
        metrics=votes.compute_concentration(powers.values()), largest_delegate=largest, largest_votes=largest_votes,
        quorum_votes=quorums,
        quorum_alone=tuple(name for name in RISK_CLASSES if votes.is_quorum_alone([largest_votes], quorums[name])))


def get_proposal_participation(state: State, proposal_id: str) -> ProposalParticipation:
    """Turnout and delegate participation of a proposal whose snapshot is taken (``unknown_proposal``,
    ``snapshot_not_taken`` while its snapshot block is still ahead)."""
    proposal = governance.get_proposal(state, proposal_id)
    snapshot = proposal.snapshot_height
    if snapshot > state.height:
        raise ProtocolError("snapshot_not_taken", f"the snapshot is taken at the end of block {snapshot}",
                            field="proposal_id", snapshot_height=snapshot)
    powers = {account: power for account, checkpoints in state.vote_checkpoints.items()
              if (power := votes.compute_checkpoint_lookup(checkpoints, snapshot))}
    total_supply = votes.compute_checkpoint_lookup(state.total_supply_checkpoints, snapshot)
    delegated_supply = votes.compute_checkpoint_lookup(state.delegated_supply_checkpoints, snapshot)
    cast = governance.get_votes_cast(proposal)
    voted_power = sum(powers.get(voter, 0) for voter in proposal.ballots)
    quorum = governance.compute_quorum_votes(state, proposal)
    largest = max(powers.values(), default=0)
    return ProposalParticipation(
        proposal_id=proposal.proposal_id, number=proposal.number, snapshot_height=snapshot, votes_cast=cast,
        total_supply=total_supply, delegated_supply=delegated_supply,
        turnout_of_supply=_ratio(cast, total_supply), turnout_of_delegated=_ratio(cast, delegated_supply),
        delegates=len(powers), delegates_voted=sum(voter in powers for voter in proposal.ballots),
        voted_power=voted_power, voted_power_share=_ratio(voted_power, delegated_supply), quorum_votes=quorum,
        largest_delegate_votes=largest, quorum_alone=votes.is_quorum_alone([largest], quorum))


def _ratio(part: int, whole: int) -> Fraction:
    return Fraction(part, whole) if whole else Fraction(0)
