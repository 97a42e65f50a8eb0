"""Disputes that go to a token vote (issue 18): appeals, escalations and the end-of-block step.

``appeal_dispute{dispute_id, upheld, award_usdc, bond}`` while a dispute is ``ruled`` and its appeal
window is open (block time < ``appeal_until_ms``): the owner may appeal any ruling that did not give
it its whole claim, anyone else only an upheld ruling (for the fund). Checks in order:
``unknown_dispute``, ``dispute_not_ruled``, ``appeal_window_closed``, ``not_a_party`` (an owner's
appeal asking for what it was given, or someone else appealing a rejection), ``invalid_award`` and
the decimal codes, ``same_as_ruling`` (the appeal asks for the ruling), ``appeal_against_own_side``
(the owner asks for more than the ruling gave, anyone else for less), ``bond_too_small`` (at least
``appeal_bond_multiple`` times the dispute's bond), then the bond checks of a withdrawal from the
sender's subaccount 0. The dispute becomes ``appealed`` and the protocol submits (proposer
``DISPUTE_PROPOSER``, an address without a key, exempt from the proposer threshold) a proposal
whose one action is ``resolve_dispute{dispute_id, upheld, award_usdc}`` (what the appellant asks),
voted by the rules of the governed ``disputes.appeal_tier`` class, with no deposit and no fee (the
bond stands in for both). Executed, it decides the dispute; defeated, vetoed,
cancelled or expired, the council's ruling stands and the appeal bond goes to the fund.

``advance_disputes`` (end of every block, last): records the block's targets and drops expired
ones (``bastion.core.disputes``); an ``open`` dispute whose ruling deadline has come **escalates**:
the protocol submits a proposal resolving it as claimed (upheld, award = claim); if
that vote does not execute, the dispute is rejected. A ``ruled`` dispute whose appeal window ended is
final as ruled. Incident programs past their claim period close (``bastion.core.incidents``).
"""
from __future__ import annotations

import copy
from typing import Any

from bastion.core import disputes, incidents
from bastion.core import events as ev
from bastion.core.dispute_state import APPEALED, DISPUTE_PROPOSER, ESCALATED, OPEN, RULED, Dispute
from bastion.core.errors import ProtocolError
from bastion.core.events import Events, emit
from bastion.core.governance.proposals import EXECUTED, TRANSITIONS, compute_proposal_id
from bastion.core.messages import AppealDispute, ResolveDispute
from bastion.core.state import Proposal, State
from bastion.core.units import format_usdc, parse_usdc


def submit_dispute_vote(state: State, dispute: Dispute, upheld: bool, award: int, events: Events) -> str:
    """Submit the protocol's proposal resolving ``dispute`` as (upheld, award); returns its id. Its
    proposer is ``DISPUTE_PROPOSER`` (no key, no proposer threshold)."""
    proposer = DISPUTE_PROPOSER
    params = state.governance
    action = ResolveDispute(dispute_id=dispute.dispute_id, upheld=upheld, award_usdc=format_usdc(award))
    risk_class = state.disputes.params.appeal_tier
    rules = copy.copy(params.tiers[risk_class])
    title = f"Dispute {dispute.dispute_id}: {'uphold' if upheld else 'reject'}"
    outcome = f"upheld with an award of {format_usdc(award)} USDC" if upheld else "rejected"
    description = (f"Token vote on dispute {dispute.dispute_id} ({dispute.claim_kind}, target {dispute.target_id}, "
                   f"{dispute.market}); yes resolves it as {outcome}.")
    actions = (action,)
    proposal_id = compute_proposal_id(state.chain_id, proposer, state.height, title, description, actions)
    snapshot = state.height + params.voting_delay_blocks
    proposal = Proposal(proposal_id=proposal_id, number=len(state.proposals) + 1, proposer=proposer, title=title,
                        description=description, actions=actions, deposit_bgov=0, risk_class=risk_class,
                        submitted_height=state.height, snapshot_height=snapshot,
                        deadline_height=snapshot + rules.voting_period_blocks, rules=rules)
    state.proposals[proposal_id] = proposal
    state.touch(("proposal", proposal_id))
    emit(events, ev.ProposalSubmitted, proposal_id=proposal_id, number=proposal.number, proposer=proposer,
         risk_class=risk_class, deposit=0, snapshot_height=snapshot, deadline_height=proposal.deadline_height, fee=0)
    dispute.proposal_id = proposal_id
    return proposal_id


def appeal_dispute(state: State, sender: str, msg: AppealDispute, events: Events) -> dict[str, Any]:
    """Appeal a council ruling to a token vote (module docstring). Raises ``unknown_dispute``,
    ``dispute_not_ruled``, ``appeal_window_closed``, ``not_a_party``, ``invalid_award``,
    ``same_as_ruling``, ``appeal_against_own_side``, ``bond_too_small``, ``subaccount_not_found``,
    ``insufficient_free_collateral``, ``too_many_open_orders`` and the decimal codes."""
    dispute = disputes.get_dispute(state, msg.dispute_id)
    if dispute.status != RULED or dispute.appeal_until_ms is None:
        raise ProtocolError("dispute_not_ruled", f"dispute {dispute.dispute_id} is {dispute.status}: only a ruling "
                            "can be appealed", field="dispute_id", status=dispute.status)
    if state.time_ms >= dispute.appeal_until_ms:
        raise ProtocolError("appeal_window_closed", f"appeals closed at {dispute.appeal_until_ms} ms",
                            field="dispute_id")
    owner_side = sender == dispute.owner
    fully_paid = dispute.ruling_upheld and dispute.ruling_award_usdc == dispute.claim_usdc
    if (owner_side and fully_paid) or (not owner_side and not dispute.ruling_upheld):
        raise ProtocolError("not_a_party", "the owner appeals a ruling short of its claim; anyone else only an "
                            "upheld ruling", field="sender")
    award = disputes.parse_award(dispute, msg.upheld, msg.award_usdc)
    if (msg.upheld, award) == (dispute.ruling_upheld, dispute.ruling_award_usdc):
        raise ProtocolError("same_as_ruling", "an appeal asks for another outcome than the ruling", field="award_usdc")
    ruled = dispute.ruling_award_usdc if dispute.ruling_upheld else 0
    if (award > ruled) != owner_side:
        raise ProtocolError("appeal_against_own_side", "the owner appeals for more than the ruling gave, anyone "
                            "else for less", field="award_usdc")
    bond = parse_usdc(msg.bond, field="bond")
    needed = dispute.bond_usdc * state.disputes.params.appeal_bond_multiple
    if bond < needed:
        raise ProtocolError("bond_too_small", f"an appeal's bond must be at least {needed} micro-USDC", field="bond",
                            required=needed)
    disputes.take_bond(state, sender, 0, bond, events)
    dispute.status = APPEALED
    dispute.appellant, dispute.appeal_bond_usdc = sender, bond
    proposal_id = submit_dispute_vote(state, dispute, msg.upheld, award, events)
    state.touch(("dispute", dispute.dispute_id))
    emit(events, ev.DisputeEscalated, dispute_id=dispute.dispute_id, reason="appeal", proposal_id=proposal_id,
         appellant=sender, appeal_bond=bond, upheld=msg.upheld, award=award)
    return {"proposal_id": proposal_id, "bond": bond}


def advance_disputes(state: State, events: Events) -> None:
    """End-of-block step (module docstring)."""
    disputes.record_targets(state, events)
    disputes.expire_targets(state)
    book = state.disputes
    for dispute_id in list(book.live):
        dispute = book.disputes[dispute_id]
        if dispute.status == OPEN and state.time_ms >= dispute.deadline_ms:
            dispute.status = ESCALATED
            proposal_id = submit_dispute_vote(state, dispute, True, dispute.claim_usdc, events)
            state.touch(("dispute", dispute_id))
            emit(events, ev.DisputeEscalated, dispute_id=dispute_id, reason="deadline", proposal_id=proposal_id,
                 appeal_bond=0, upheld=True, award=dispute.claim_usdc)
        elif dispute.status == RULED and dispute.appeal_until_ms is not None \
                and state.time_ms >= dispute.appeal_until_ms:
            disputes.finalize(state, dispute, bool(dispute.ruling_upheld), dispute.ruling_award_usdc, "council",
                              events)
        elif dispute.status in (APPEALED, ESCALATED) and dispute.proposal_id is not None:
            status = state.proposals[dispute.proposal_id].status
            if status != EXECUTED and not TRANSITIONS[status]:  # the vote ended without deciding
                if dispute.status == APPEALED:
                    disputes.finalize(state, dispute, bool(dispute.ruling_upheld), dispute.ruling_award_usdc,
                                      "council", events)
                else:
                    disputes.finalize(state, dispute, False, 0, "token_vote", events)
    incidents.close_expired(state, events)
