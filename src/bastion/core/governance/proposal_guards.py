"""Proposer and vote guards of governance (issue 16): power read from the past, one live proposal,
a burned fee, a proposer re-check that delegators cannot grief, bounded swing extensions and a
yes-only quorum for the risky tiers. ``bastion.core.governance`` calls these; they read the state
and raise ``ProtocolError`` before any effect, or apply one small effect each.

Proposer power (``get_submission_power``): the smaller of the proposer's votes at the end of the
block before submission and its current votes, minus the deposit and fee when they leave its own
votes (self-delegated). Tokens borrowed and repaid inside one block never appear at the end of the
previous block, so a flash loan cannot pass the threshold (OpenZeppelin ``proposalThreshold`` and
Compound Bravo read the previous block).

Proposer re-check (``get_window_power``, ``check_proposer_threshold``): at queue and at execution the
proposer must still meet the CURRENT proposal threshold with the minimum of its votes from the block
before submission to the snapshot (every checkpoint in between). Power rented for the submission
and returned before the snapshot fails it (Aave re-checks the proposer's power). Once the snapshot
is past, the figure is history: nobody, in particular no delegator of the proposer, can lower it
any more. That is the griefing rule: a delegator that undelegates after voting started neither
blocks the queue or the execution nor makes the proposal cancelable; a delegator that leaves during
the voting delay withdraws support before anybody voted, which is the same as never having given it.

Cancellation (``check_cancel``): the proposer may cancel while the proposal is pending, active,
succeeded or queued; anybody else only once the snapshot is past and the window power is below the
current threshold. The deposit: returned when the proposer cancels while pending or somebody
cancels a proposal whose proposer failed the re-check; BURNED when the proposer cancels after
voting started (``cancel_burns_deposit``), so a proposer facing a veto cannot escape the burn by
cancelling. The fee (``GovernanceParams.proposal_fee_bgov``) is burned at submission and no
outcome returns it: spam costs the fee per proposal, and one live proposal per proposer
(``check_live_proposals``, governed ``max_live_proposals``, default 1) bounds how many a proposer runs at once.

Votes at the bell (``extend_on_flip``): a vote that changes the outcome the tally would give now
(defeated / vetoed / succeeded) within the last ``late_quorum_extension_blocks`` of the period moves
the deadline to ``height + late_quorum_extension_blocks``, at most ``max_swing_extensions`` times per
proposal, so the voting period is at most ``period + (1 + max_swing_extensions) * extension`` blocks
(the late-quorum extension counted once). The other side always gets a full extension to answer.

Yes-only quorum (``get_quorum_count``): for ``risk_increasing`` and ``critical`` proposals only yes
votes count toward the quorum (Aave counts YES), so abstentions, a second address's or anyone's,
cannot carry a risky proposal over it; the other tiers count every vote (Compound Bravo).
"""
from __future__ import annotations

from typing import Final

from bastion.core.dispute_state import DISPUTE_PROPOSER
from bastion.core import votes
from bastion.core import events as ev
from bastion.core.events import Events, emit
from bastion.core.errors import ProtocolError
from bastion.core.state import Proposal, State

LIVE_STATUSES: Final = ("pending", "active", "succeeded", "queued")
YES_QUORUM_CLASSES: Final = ("risk_increasing", "critical")



def get_submission_power(state: State, sender: str, committed: int) -> int:
    """The proposer's votes for the threshold at submission: ``min(votes at the end of the
    previous block, current votes)`` less ``committed`` (deposit + fee) when its own balance votes
    for itself. 0 in a genesis-height block (there is no previous block)."""
    previous = votes.get_past_votes(state, sender, state.height - 1) if state.height > 0 else 0
    current = votes.get_votes(state, sender)
    return min(previous, current) - (committed if votes.get_delegate(state, sender) == sender else 0)


def get_window_power(state: State, proposal: Proposal) -> int:
    """The minimum of the proposer's votes from the block before submission to the snapshot (or to
    the last finished block while the snapshot is ahead)."""
    end = min(proposal.snapshot_height, state.height - 1)
    return votes.get_min_past_votes(state, proposal.proposer, proposal.submitted_height - 1, end)


def is_proposer_below_threshold(state: State, proposal: Proposal) -> bool:
    """Past the snapshot, the window power is below the current proposal threshold (never for the
    protocol's dispute votes, ``dispute_state.DISPUTE_PROPOSER``)."""
    if state.height <= proposal.snapshot_height or proposal.proposer == DISPUTE_PROPOSER:
        return False
    return get_window_power(state, proposal) < state.governance.proposal_threshold_bgov


def check_proposer_threshold(state: State, proposal: Proposal) -> None:
    """Queue and execution: ``proposer_below_threshold`` when the re-check fails."""
    if is_proposer_below_threshold(state, proposal):
        power = get_window_power(state, proposal)
        raise ProtocolError("proposer_below_threshold", f"the proposer's votes from the block before submission to "
                            f"the snapshot fell to {power} units, below the proposal threshold "
                            f"({state.governance.proposal_threshold_bgov})", field="proposal_id", power=power)


def check_live_proposals(state: State, sender: str) -> None:
    """A proposer has at most ``max_live_proposals`` (default 1) pending, active, succeeded or
    queued proposals."""
    live = [p for p in state.proposals.values() if p.proposer == sender and p.status in LIVE_STATUSES]
    if len(live) >= state.governance.max_live_proposals:
        raise ProtocolError("proposer_has_live_proposal", f"proposal {live[-1].number} of this proposer is still "
                            f"{live[-1].status} (at most {state.governance.max_live_proposals} live per proposer)",
                            field="sender", proposal_id=live[-1].proposal_id)


def check_cancel(state: State, sender: str, proposal: Proposal) -> None:
    """The proposer may cancel; anybody else only when the proposer failed the re-check."""
    if sender != proposal.proposer and not is_proposer_below_threshold(state, proposal):
        raise ProtocolError("proposer_above_threshold", "only the proposer may cancel, unless the proposer's votes "
                            "from the block before submission to the snapshot are below the proposal threshold",
                            field="sender")


def cancel_burns_deposit(sender: str, proposal: Proposal) -> bool:
    """The proposer cancelling after voting started forfeits an escrowed deposit."""
    return sender == proposal.proposer and proposal.status != "pending"


def burn_fee(state: State, sender: str, fee: int, events: Events) -> None:
    """The submission fee leaves the proposer's balance, its delegatee's votes and the total supply."""
    if fee == 0:
        return
    votes.set_balance(state, sender, votes.get_balance(state, sender) - fee)
    votes.move_voting_power(state, votes.get_delegate(state, sender), None, fee, events)
    votes.write_checkpoint(state, state.total_supply_checkpoints, votes.get_total_supply(state) - fee,
                           ("total_supply",))


def get_quorum_count(proposal: Proposal) -> int:
    """The votes that count toward the quorum: yes only for the risky tiers, all cast otherwise."""
    if proposal.risk_class in YES_QUORUM_CLASSES:
        return proposal.yes
    return proposal.yes + proposal.no + proposal.abstain + proposal.veto


def extend_on_flip(state: State, proposal: Proposal, before: str, after: str, events: Events) -> None:
    """Move the deadline when this block's vote flipped the outcome inside the final window."""
    params = state.governance
    extension = params.late_quorum_extension_blocks
    if (before == after or extension == 0 or proposal.swing_extensions >= params.max_swing_extensions
            or state.height + extension <= proposal.deadline_height):
        return
    proposal.swing_extensions += 1
    proposal.deadline_height = state.height + extension
    state.touch(("proposal", proposal.proposal_id))
    emit(events, ev.ProposalExtended, proposal_id=proposal.proposal_id, deadline_height=proposal.deadline_height,
         reason="outcome_flip", from_outcome=before, to_outcome=after)
