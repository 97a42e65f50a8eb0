"""Governance proposals (DESIGN.md section 9, issue 5): submit, vote, queue, execute, cancel.

Proposal number: 1, 2, ... in submission order (a short name for people; ``param_changed`` events
carry it as ``proposal_number`` beside the ``proposal_id``).

Proposal id: ``SHA-256`` (hex) of the canonical JSON (keys sorted, compact, ASCII) of
``{"chain_id", "title", "description", "actions", "proposer", "height"}``, where ``actions`` are
the decoded actions as objects with their ``type`` and every field (null when omitted; fields added
to an action later appear only when set, ``messages.canonical_action``) and ``height`` the
submission block. The same content submitted twice in one block by the same
proposer is ``duplicate_proposal``.

Actions are typed data (``bastion.core.messages``). ``dispatch.compute_action_changes(state,
action)`` validates one against the current state and returns its effects (``changes.Change``
and the operations, each with its risk class); it is THE validation, run at submission and again
at execution. Execution is atomic: every action is validated against the state first, then all
effects are applied (``dispatch.apply_effect``; a ``start_rollout``'s planned change starts a
rollout instead, ``bastion.core.governance.rollout``). Statuses are ``ProposalStatus`` (stored as
their plain strings) and move only along ``TRANSITIONS``.

Risk classes are computed by the protocol, never declared, by the proposal's effect on the
exchange with every other pending proposal applied (``bastion.core.governance.classify``: the field classes
below plus the effect rules of its ``RULES`` table, docs/protocol.md): each change is ``risk_reducing``,
``neutral`` (no change) or ``risk_increasing``
(lower margins or fees, higher caps, a more active status, a lower liquidation fee, ...), any
governance change is ``critical``; a proposal takes the strictest class of its changes (``neutral``
only when nothing changes, see ``strictest``) and copies
that class's rules (quorum, approval threshold, voting period, timelock, holding age) at
submission. Execution refuses a proposal whose actions now classify stricter than at submission
(``risk_class_escalated``).

Lifecycle (``TRANSITIONS``)::

    pending --(end of block snapshot)--> active --(end of block deadline)--> defeated | vetoed | succeeded
    succeeded --queue--> queued --execute--> executed
    queued --(end of a block whose time is past queued + timelock + window)--> expired
    pending | active | succeeded | queued --cancel_proposal--> canceled
    succeeded | queued --guardian_veto--> vetoed_by_guardian

Votes are accepted in blocks ``snapshot + 1 .. deadline`` (``snapshot = submission height +
voting_delay``, ``deadline = snapshot + voting_period``), weighted by
``get_votes_with_holding_age(voter, snapshot, min_holding_age)`` (the minimum over the holding
window). Quorum counts all votes (abstain too; yes only for ``risk_increasing`` and ``critical``,
``proposal_guards.get_quorum_count``) against ``ceil(total supply at the snapshot * quorum_ppm / 1e6)``;
then a veto share
above ``veto_threshold`` of ``yes + no + veto`` vetoes (deposit burned: the BGOV total supply
falls), else ``yes / (yes + no + veto) > approval_threshold`` succeeds, else defeated. The deposit
comes back when the vote ends without a veto, or on cancellation, except that a proposer cancelling
after voting started forfeits it. The proposer threshold (at submission, and again at queue and
execution), one live proposal per proposer, the burned fee, who may cancel and the outcome-flip
extension are ``bastion.core.governance.proposal_guards``. A vote that first reaches the
quorum within the last ``late_quorum_extension_blocks`` of the period moves the deadline to
``height + extension``, once. Execution is allowed while ``queued + timelock <= block time <=
queued + timelock + execution_window`` (ms of block time); after it ``execute`` is
``proposal_expired`` at once and the proposal becomes ``expired`` at the end of the block.

``guardian_veto{proposal_id, reason}`` (the guardian of ``bastion.core.guardian``, before its
expiry): a succeeded or queued proposal becomes ``vetoed_by_guardian`` (final), the reason (1 to
``MAX_REASON_CHARS`` characters) in its ``proposal_status`` event. The deposit was already returned
when the vote ended, so the guardian neither burns nor moves it. Vetoing while the vote runs is for
the voters (unlike OpenZeppelin's proposal guardian, which may cancel an active proposal). A
proposal that *replaces* the guardian (``set_guardian`` with an address) is vetoable: a captured
governance handing the emergency powers to itself is exactly what the veto is for. A proposal whose
every action *removes* the guardian (``set_guardian{address: null}``) is not
(``guardian_change_not_vetoable``): the guardian cannot keep governance from removing it, and its
power lapses at its expiry anyway, so it cannot entrench itself.
``proposal_expired`` at once and the proposal becomes ``expired`` at the end of the block. A
``risk_increasing`` or ``critical`` proposal also needs the council's stress attestations
(``council_rules.check_stress_gate``, the last check before anything changes).
"""
from __future__ import annotations

import copy
import hashlib
import json
from enum import StrEnum
from typing import Any, Final

from bastion.core import exposure, guardian, votes
from bastion.core import events as ev
from bastion.core.events import Events, emit
from bastion.core.errors import InvariantViolation, ProtocolError
from bastion.core.governance import classify, council_rules, proposal_guards, rollout
from bastion.core.governance.changes import CRITICAL, Effect, PlannedRollout
from bastion.core.governance.dispatch import apply_effect, compute_action_changes
from bastion.core.messages import (
    MAX_DESCRIPTION_CHARS, MAX_REASON_CHARS, MAX_TITLE_CHARS, Action, CancelProposal, Execute, GuardianVeto, Queue,
    SetGuardian, SubmitProposal, Vote, canonical_action,
)
from bastion.core.params import RISK_CLASSES
from bastion.core.state import ParamSource, Proposal, State
from bastion.core.units import PPM, parse_decimal


VOTE_OPTIONS: Final = ("yes", "no", "abstain", "veto")


class ProposalStatus(StrEnum):
    """A proposal's status (stored and hashed as its string value)."""

    PENDING = "pending"
    ACTIVE = "active"
    DEFEATED = "defeated"
    VETOED = "vetoed"
    SUCCEEDED = "succeeded"
    QUEUED = "queued"
    EXECUTED = "executed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    VETOED_BY_GUARDIAN = "vetoed_by_guardian"


PENDING, ACTIVE_VOTE, DEFEATED, VETOED, SUCCEEDED = (
    ProposalStatus.PENDING, ProposalStatus.ACTIVE, ProposalStatus.DEFEATED, ProposalStatus.VETOED,
    ProposalStatus.SUCCEEDED)
QUEUED, EXECUTED, EXPIRED, CANCELED = (
    ProposalStatus.QUEUED, ProposalStatus.EXECUTED, ProposalStatus.EXPIRED, ProposalStatus.CANCELED)
VETOED_BY_GUARDIAN = ProposalStatus.VETOED_BY_GUARDIAN
# the transition table: the statuses each status may move to (none: final)
TRANSITIONS: Final[dict[str, frozenset[ProposalStatus]]] = {
    PENDING: frozenset({ACTIVE_VOTE, CANCELED}),
    ACTIVE_VOTE: frozenset({DEFEATED, VETOED, SUCCEEDED, CANCELED}),
    SUCCEEDED: frozenset({QUEUED, CANCELED, VETOED_BY_GUARDIAN}),
    QUEUED: frozenset({EXECUTED, EXPIRED, CANCELED, VETOED_BY_GUARDIAN}),
    DEFEATED: frozenset(), VETOED: frozenset(), EXECUTED: frozenset(), EXPIRED: frozenset(), CANCELED: frozenset(),
    VETOED_BY_GUARDIAN: frozenset(),
}


# --------------------------------------------------------------------------------------- queries
def compute_proposal_id(chain_id: str, proposer: str, height: int, title: str, description: str,
                        actions: tuple[Action, ...], evidence: tuple[str, ...] = ()) -> str:
    """The proposal id (module docstring): SHA-256 hex of the canonical JSON of the content (the cited
    ``evidence`` only when there is some, so that an id without it stays what it was)."""
    content: dict[str, Any] = {"chain_id": chain_id, "title": title, "description": description, "proposer": proposer,
                               "height": height, "actions": [canonical_action(a) for a in actions]}
    if evidence:
        content["evidence"] = list(evidence)
    data = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hashlib.sha256(data).hexdigest()


def get_proposal(state: State, proposal_id: str) -> Proposal:
    """The proposal with this id; ``unknown_proposal`` otherwise."""
    proposal = state.proposals.get(proposal_id)
    if proposal is None:
        raise ProtocolError("unknown_proposal", f"no proposal {proposal_id!r}", field="proposal_id")
    return proposal


def compute_quorum_votes(state: State, proposal: Proposal) -> int:
    """``ceil(total supply at the snapshot * quorum_ppm / 1e6)`` BGOV units of votes."""
    supply = votes.compute_checkpoint_lookup(state.total_supply_checkpoints, proposal.snapshot_height)
    return -((-supply * proposal.rules.quorum_ppm) // PPM)


def get_votes_cast(proposal: Proposal) -> int:
    """All votes cast on the proposal (yes, no, abstain and veto)."""
    return proposal.yes + proposal.no + proposal.abstain + proposal.veto


def compute_outcome(state: State, proposal: Proposal) -> ProposalStatus:
    """defeated (no quorum, or approval not above the threshold), vetoed, or succeeded."""
    if proposal_guards.get_quorum_count(proposal) < compute_quorum_votes(state, proposal):
        return DEFEATED
    decisive = proposal.yes + proposal.no + proposal.veto
    params = state.governance
    if proposal.veto * params.veto_threshold_denominator > params.veto_threshold_numerator * decisive:
        return VETOED
    if proposal.yes * PPM > proposal.rules.approval_threshold_ppm * decisive:
        return SUCCEEDED
    return DEFEATED


def get_execution_window(state: State, proposal: Proposal) -> tuple[int, int]:
    """First and last block time (ms) at which a queued proposal may execute."""
    if proposal.queued_ms is None:
        raise InvariantViolation(f"proposal {proposal.proposal_id} is not queued")
    eta = proposal.queued_ms + proposal.rules.timelock_ms
    return eta, eta + state.governance.execution_window_ms


# --------------------------------------------------------------------------------------- mutation
def set_status(state: State, proposal: Proposal, status: ProposalStatus, events: Events, **details: Any) -> None:
    """Move ``proposal`` to ``status`` by the transition table (``InvariantViolation`` otherwise)."""
    if status not in TRANSITIONS[proposal.status]:
        raise InvariantViolation(f"proposal {proposal.proposal_id}: {proposal.status} -> {status} is not allowed")
    emit(events, ev.ProposalStatus, proposal_id=proposal.proposal_id, from_=proposal.status, to=status.value,
         **details)
    proposal.status = status.value          # state, events and errors carry the plain string
    if status not in (ACTIVE_VOTE, SUCCEEDED, QUEUED):
        proposal.closed_height = state.height
    state.touch(("proposal", proposal.proposal_id))


def return_deposit(state: State, proposal: Proposal, events: Events) -> None:
    """Give an escrowed deposit back to the proposer (and its voting power to their delegate)."""
    if proposal.deposit_state != "escrowed":
        return
    proposer, amount = proposal.proposer, proposal.deposit_bgov
    votes.set_balance(state, proposer, votes.get_balance(state, proposer) + amount)
    votes.move_voting_power(state, None, votes.get_delegate(state, proposer), amount, events)
    proposal.deposit_state = "returned"
    state.touch(("proposal", proposal.proposal_id))
    emit(events, ev.DepositReturned, proposal_id=proposal.proposal_id, to=proposer, amount=amount)


def burn_deposit(state: State, proposal: Proposal, events: Events) -> None:
    """The escrowed deposit leaves the supply: a new total-supply checkpoint (past quorums stay exact)."""
    amount = proposal.deposit_bgov
    votes.write_checkpoint(state, state.total_supply_checkpoints, votes.get_total_supply(state) - amount,
                           ("total_supply",))
    proposal.deposit_state = "burned"
    state.touch(("proposal", proposal.proposal_id))
    emit(events, ev.DepositBurned, proposal_id=proposal.proposal_id, amount=amount)


def process_proposals(state: State, events: Events) -> None:
    """End-of-block step: start votes, tally ended votes, expire queued proposals past their window."""
    for proposal in state.proposals.values():
        if not TRANSITIONS[proposal.status]:
            continue
        if proposal.status == PENDING and state.height >= proposal.snapshot_height:
            set_status(state, proposal, ACTIVE_VOTE, events)
            exposure.freeze_disclosure(state, proposal.proposal_id, get_proposal_effects(state, proposal),
                                       proposal.snapshot_height)
        if proposal.status == ACTIVE_VOTE and state.height >= proposal.deadline_height:
            outcome = compute_outcome(state, proposal)
            set_status(state, proposal, outcome, events, yes=proposal.yes, no=proposal.no,
                       abstain=proposal.abstain, veto=proposal.veto,
                       quorum_votes=compute_quorum_votes(state, proposal))
            if outcome == VETOED:
                burn_deposit(state, proposal, events)
            else:
                return_deposit(state, proposal, events)
        if proposal.status == QUEUED and state.time_ms > get_execution_window(state, proposal)[1]:
            set_status(state, proposal, EXPIRED, events)


# --------------------------------------------------------------------------------------- handlers
def submit_proposal(state: State, sender: str, msg: SubmitProposal, events: Events) -> dict[str, Any]:
    """Submit a proposal: escrow the deposit, burn the fee, classify its actions. Raises
    ``invalid_title``, ``description_too_long``, ``deposit_below_minimum``, ``insufficient_bgov``,
    ``below_proposal_threshold``, ``duplicate_proposal``, ``proposer_has_live_proposal``, the decimal
    codes and every code of the actions' validation (``dispatch.compute_action_changes``)."""
    # VALIDATION
    params = state.governance
    if not msg.title or len(msg.title) > MAX_TITLE_CHARS:
        raise ProtocolError("invalid_title", f"title must have 1 to {MAX_TITLE_CHARS} characters", field="title")
    if len(msg.description) > MAX_DESCRIPTION_CHARS:
        raise ProtocolError("description_too_long", f"description has at most {MAX_DESCRIPTION_CHARS} characters",
                            field="description")
    deposit = parse_decimal(msg.deposit, votes.BGOV_DECIMALS, field="deposit")
    if deposit < params.min_deposit_bgov:
        raise ProtocolError("deposit_below_minimum", f"deposit must be at least {params.min_deposit_bgov} units",
                            field="deposit", minimum=params.min_deposit_bgov)
    balance = votes.get_balance(state, sender)
    fee = params.proposal_fee_bgov
    if deposit + fee > balance:
        raise ProtocolError("insufficient_bgov", f"deposit plus the proposal fee ({fee} units) exceed the BGOV "
                            f"balance ({balance} units)", field="deposit", balance=balance, fee=fee)
    own_votes = proposal_guards.get_submission_power(state, sender, deposit + fee)
    if own_votes < params.proposal_threshold_bgov:
        raise ProtocolError("below_proposal_threshold", f"votes at the previous block after the deposit and fee "
                            f"({own_votes} units) are below the proposal threshold "
                            f"({params.proposal_threshold_bgov})", field="sender")
    _, risk_class = classify.classify_proposal(state, msg.actions)
    evidence = tuple(msg.evidence or ())
    proposal_id = compute_proposal_id(state.chain_id, sender, state.height, msg.title, msg.description, msg.actions,
                                      evidence)
    if proposal_id in state.proposals:
        raise ProtocolError("duplicate_proposal", "the same proposal was already submitted in this block",
                            field="proposal_id")
    proposal_guards.check_live_proposals(state, sender)
    # OPERATION
    rules = copy.copy(params.tiers[risk_class])
    snapshot = state.height + params.voting_delay_blocks
    proposal = Proposal(proposal_id=proposal_id, number=len(state.proposals) + 1, proposer=sender, title=msg.title,
                        description=msg.description,
                        actions=msg.actions, deposit_bgov=deposit, risk_class=risk_class,
                        submitted_height=state.height, snapshot_height=snapshot,
                        deadline_height=snapshot + rules.voting_period_blocks, rules=rules, fee_bgov=fee,
                        evidence=evidence)
    state.proposals[proposal_id] = proposal
    state.touch(("proposal", proposal_id))
    votes.set_balance(state, sender, balance - deposit)
    emit(events, ev.ProposalSubmitted, proposal_id=proposal_id, number=proposal.number, proposer=sender,
         risk_class=risk_class, deposit=deposit, snapshot_height=snapshot, deadline_height=proposal.deadline_height,
         fee=fee)
    votes.move_voting_power(state, votes.get_delegate(state, sender), None, deposit, events)
    proposal_guards.burn_fee(state, sender, fee, events)
    return {"proposal_id": proposal_id, "risk_class": risk_class}


def vote(state: State, sender: str, msg: Vote, events: Events) -> dict[str, Any]:
    """Cast a ballot weighted by the votes held at the snapshot (in the critical tier, with the exposure
    option on, discounted for a voter directly exposed at the snapshot: ``bastion.core.exposure``).
    Raises ``unknown_proposal``, ``voting_not_started``, ``voting_closed``, ``invalid_vote_option``,
    ``reason_too_long``, ``already_voted``, ``no_voting_power``."""
    # VALIDATION
    proposal = get_proposal(state, msg.proposal_id)
    if proposal.status == PENDING:
        raise ProtocolError("voting_not_started", f"voting starts after block {proposal.snapshot_height}",
                            field="proposal_id")
    if proposal.status != ACTIVE_VOTE:
        raise ProtocolError("voting_closed", f"the proposal is {proposal.status}", field="proposal_id")
    if msg.option not in VOTE_OPTIONS:
        raise ProtocolError("invalid_vote_option", f"option must be one of {VOTE_OPTIONS}", field="option")
    reason = msg.reason or ""
    if len(reason) > MAX_REASON_CHARS:
        raise ProtocolError("reason_too_long", f"reason has at most {MAX_REASON_CHARS} characters", field="reason")
    if sender in proposal.ballots:
        raise ProtocolError("already_voted", "one vote per address and proposal", field="sender")
    weight = votes.get_votes_with_holding_age(state, sender, proposal.snapshot_height,
                                              proposal.rules.min_holding_age_blocks)
    if weight == 0:
        raise ProtocolError("no_voting_power", f"no votes at the snapshot (block {proposal.snapshot_height}) held "
                            f"for {proposal.rules.min_holding_age_blocks} blocks", field="sender")
    full_weight = weight
    if proposal.risk_class == CRITICAL and state.governance.exposed_vote_weight_ppm < PPM:
        weight = exposure.discounted_weight(state, proposal.proposal_id, sender, weight, proposal.risk_class)
    # OPERATION
    outcome_before = compute_outcome(state, proposal)
    proposal.ballots[sender] = (msg.option, weight, reason)
    setattr(proposal, msg.option, getattr(proposal, msg.option) + weight)
    state.touch(("ballot", proposal.proposal_id, sender))
    state.touch(("proposal", proposal.proposal_id))
    emit(events, ev.VoteCast, proposal_id=proposal.proposal_id, voter=sender, option=msg.option, weight=weight,
         reason=reason)
    if (proposal.quorum_height is None
            and proposal_guards.get_quorum_count(proposal) >= compute_quorum_votes(state, proposal)):
        proposal.quorum_height = state.height
        extension = state.governance.late_quorum_extension_blocks
        if not proposal.extended and state.height + extension > proposal.deadline_height:
            proposal.extended = True
            proposal.deadline_height = state.height + extension
            emit(events, ev.ProposalExtended, proposal_id=proposal.proposal_id,
                 deadline_height=proposal.deadline_height)
    proposal_guards.extend_on_flip(state, proposal, outcome_before, compute_outcome(state, proposal), events)
    return {"weight": weight} if weight == full_weight else {"weight": weight, "exposed_full_weight": full_weight}


def get_proposal_effects(state: State, proposal: Proposal) -> list[Effect]:
    """``proposal``'s effects, each action validated against the current state; an action that no
    longer validates has none here (it would fail at execution anyway). What the exposure disclosure
    and the vote discount read (``bastion.core.exposure``)."""
    effects: list[Effect] = []
    for action in proposal.actions:
        try:
            effects.extend(compute_action_changes(state, action))
        except ProtocolError:
            continue
    return effects


def queue(state: State, sender: str, msg: Queue, events: Events) -> dict[str, Any]:
    """Queue a succeeded proposal; its timelock starts. Raises ``unknown_proposal``,
    ``voting_not_ended``, ``proposal_not_succeeded``, ``proposer_below_threshold``."""
    # VALIDATION
    proposal = get_proposal(state, msg.proposal_id)
    if proposal.status in (PENDING, ACTIVE_VOTE):
        raise ProtocolError("voting_not_ended", f"voting ends after block {proposal.deadline_height}",
                            field="proposal_id")
    if proposal.status != SUCCEEDED:
        raise ProtocolError("proposal_not_succeeded", f"the proposal is {proposal.status}", field="proposal_id",
                            status=proposal.status)
    proposal_guards.check_proposer_threshold(state, proposal)
    # OPERATION
    proposal.queued_ms = state.time_ms
    eta, last = get_execution_window(state, proposal)
    set_status(state, proposal, QUEUED, events, executable_from_ms=eta, executable_until_ms=last)
    return {"executable_from_ms": eta}


def execute(state: State, sender: str, msg: Execute, events: Events) -> dict[str, Any]:
    """Execute a queued proposal inside its window: every action validated again, then rollouts
    started and every effect applied (``dispatch.apply_effect``). Raises ``unknown_proposal``,
    ``proposal_not_queued``, ``proposal_not_executable``, ``timelock_not_elapsed``,
    ``proposal_expired``, ``proposer_below_threshold``, ``risk_class_escalated``,
    ``stress_attestation_missing``, ``counter_report_unanswered`` and every code of the actions' validation."""
    # VALIDATION
    proposal = get_proposal(state, msg.proposal_id)
    if proposal.status in (PENDING, ACTIVE_VOTE, SUCCEEDED):
        raise ProtocolError("proposal_not_queued", f"the proposal is {proposal.status}", field="proposal_id",
                            status=proposal.status)
    if proposal.status != QUEUED:
        raise ProtocolError("proposal_not_executable", f"the proposal is {proposal.status}", field="proposal_id",
                            status=proposal.status)
    eta, last = get_execution_window(state, proposal)
    if state.time_ms < eta:
        raise ProtocolError("timelock_not_elapsed", f"executable from block time {eta} ms", field="proposal_id",
                            executable_from_ms=eta)
    if state.time_ms > last:
        raise ProtocolError("proposal_expired", f"the execution window ended at block time {last} ms",
                            field="proposal_id", executable_until_ms=last)
    proposal_guards.check_proposer_threshold(state, proposal)
    changes, risk_class = classify.classify_proposal(state, proposal.actions, exclude=proposal.proposal_id)
    if RISK_CLASSES.index(risk_class) > RISK_CLASSES.index(proposal.risk_class):
        raise ProtocolError("risk_class_escalated", f"the actions are now {risk_class}, voted as "
                            f"{proposal.risk_class}", field="proposal_id")
    gate_event = council_rules.check_stress_gate(state, proposal)
    # OPERATION
    if gate_event is not None:
        events.append(ev.to_json_dict(gate_event))
    source = ParamSource("proposal", proposal.proposal_id, proposal.number)
    rollout.start_rollouts(state, proposal, events, compute_action_changes)
    for change in changes:
        if not isinstance(change, PlannedRollout):
            apply_effect(state, change, source, events)
    state.params_epoch += 1
    state.touch(("global",))
    set_status(state, proposal, EXECUTED, events)
    return {}


def cancel_proposal(state: State, sender: str, msg: CancelProposal, events: Events) -> dict[str, Any]:
    """Cancel a live proposal (who may: ``proposal_guards.check_cancel``). Raises
    ``unknown_proposal``, ``proposal_not_cancelable``, ``proposer_above_threshold``."""
    # VALIDATION
    proposal = get_proposal(state, msg.proposal_id)
    if CANCELED not in TRANSITIONS[proposal.status]:
        raise ProtocolError("proposal_not_cancelable", f"the proposal is {proposal.status}", field="proposal_id",
                            status=proposal.status)
    proposal_guards.check_cancel(state, sender, proposal)
    # OPERATION
    burn = proposal.deposit_state == "escrowed" and proposal_guards.cancel_burns_deposit(sender, proposal)
    set_status(state, proposal, CANCELED, events, by=sender)
    if burn:
        burn_deposit(state, proposal, events)
    else:
        return_deposit(state, proposal, events)
    return {}


def guardian_veto(state: State, sender: str, msg: GuardianVeto, events: Events) -> dict[str, Any]:
    """The guardian vetoes a succeeded or queued proposal (module docstring). Raises
    ``not_guardian``, ``guardian_expired``, ``reason_required``, ``reason_too_long``,
    ``unknown_proposal``, ``proposal_not_vetoable``, ``guardian_change_not_vetoable``."""
    # VALIDATION
    guardian.check_guardian(state, sender)
    if not msg.reason:
        raise ProtocolError("reason_required", "a guardian veto needs a reason", field="reason")
    if len(msg.reason) > MAX_REASON_CHARS:
        raise ProtocolError("reason_too_long", f"reason has at most {MAX_REASON_CHARS} characters", field="reason")
    proposal = get_proposal(state, msg.proposal_id)
    if VETOED_BY_GUARDIAN not in TRANSITIONS[proposal.status]:
        raise ProtocolError("proposal_not_vetoable", "the guardian vetoes only succeeded or queued proposals; this one "
                            f"is {proposal.status}", field="proposal_id", status=proposal.status)
    if all(isinstance(action, SetGuardian) and action.address is None for action in proposal.actions):
        raise ProtocolError("guardian_change_not_vetoable", "the guardian may not veto a proposal that only removes "
                            "the guardian", field="proposal_id")
    # OPERATION
    set_status(state, proposal, VETOED_BY_GUARDIAN, events, by=sender, reason=msg.reason)
    return {}
