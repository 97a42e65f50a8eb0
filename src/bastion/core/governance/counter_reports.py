"""Counter-reports: anyone may contest the stress gate of a queued proposal (DESIGN.md section 9, issue 20).

The council's attestation says "our stress report passes"; a counter-report says "here is a report,
run on the same state or on a harsher scenario set that I declare, that fails", and puts money
behind it. The chain cannot run the stress engine, so what it does is bookkeeping with incentives:

``post_counter_report{proposal_id, subaccount, report_hash, scenario_set_hash, verdict,
depletion_probability, var99_loss, es99_loss, insurance_funds_total}`` (anyone). Checks, in order:
``unknown_proposal``, ``proposal_not_queued``, ``proposal_not_gated`` (only a risk_increasing or
critical proposal has a stress gate to contest), ``counter_report_window_closed`` (accepted from
queueing until ``queued_ms + min(timelock, governance.counter_report_window_ms)``: the council keeps
the rest of the timelock to answer), ``too_many_counter_reports`` (at most
``MAX_COUNTER_REPORTS_PER_PROPOSAL``), ``invalid_report_hash`` (also for ``scenario_set_hash``: both
64 lowercase hex), ``counter_report_exists`` (a hash contests a proposal once), ``invalid_verdict``
(only ``fail``: a passing report contests nothing), the decimal codes and ``invalid_field`` as for
``register_stress_report``, ``counter_report_figures_pass`` (the figures must fail the *governed*
thresholds: a report failing only its own stricter thresholds holds nothing), then the bond
(``governance.counter_report_bond_usdc``) is taken from the sender's subaccount as a withdrawal is
(``invalid_subaccount``, ``subaccount_not_found``, ``withdrawals_paused``,
``insufficient_free_collateral``, ``too_many_open_orders``). The bond is escrowed in the record (the
collateral conservation check counts it). Event ``counter_report_posted``; result ``{counter_id, bond}``.

**The hold.** A counter-report that is not ``rejected`` holds the proposal's execution
(``council_rules.check_counter_reports``, the last check of the stress gate, ``counter_report_unanswered``)
until it is *answered*: the stress gate passes on a report hash that a member named as its answer.

``answer_counter_report{counter_id, report_hash}`` (a council member): checks ``not_council_member``,
``unknown_counter_report``, ``counter_report_rejected``, ``invalid_report_hash``,
``unknown_stress_report``, ``stress_report_failed`` (the answer must be a passing report),
``stress_report_not_newer`` (registered before the counter-report was posted: it cannot have
covered it). The member declares that the report covered the counter's scenario set (anyone
checks it with ``bastion stress --verify``); a later answer replaces the earlier one. The answer
alone lifts nothing: k members must attest a pass on that hash (``council_attest``). Event
``counter_report_answered``.

``judge_counter_report{counter_id, reproduced}`` (a council member): did the counter-report
reproduce byte for byte? Checks ``not_council_member``, ``unknown_counter_report``,
``counter_report_decided``. A member's newer judgement replaces its older one; when k current
members hold the same judgement, it is decided: ``reproduced`` returns the bond to the poster's
subaccount (an honest challenge never costs its poster, answered or not) and the hold stays until
answered; not reproduced moves the bond to the cross insurance fund and lifts the hold (status
``rejected``). Events ``counter_report_judged`` (each vote) and ``counter_report_decided``.
Counter-reports may be judged whatever became of their proposal. Leaf ``("counter_report", id)``.
"""
from __future__ import annotations

from typing import Any, Final

from bastion.core import accounts, staking
from bastion.core import events as ev
from bastion.core.enums import FundFlow
from bastion.core.errors import ProtocolError
from bastion.core.events import Events, emit
from bastion.core.governance.council_rules import (
    FAIL, GATED_CLASSES, PASS, REPORT_HASH, compute_governed_verdict, parse_headline_figures, require_member,
)
from bastion.core.governance.proposals import ProposalStatus, get_proposal
from bastion.core.messages import AnswerCounterReport, JudgeCounterReport, PostCounterReport
from bastion.core.state import CROSS_POOL, CounterReport, State

MAX_COUNTER_REPORTS_PER_PROPOSAL: Final = 16
OPEN: Final = "open"
REPRODUCED: Final = "reproduced"
REJECTED: Final = "rejected"


def get_counter_report(state: State, counter_id: int) -> CounterReport:
    """The counter-report ``counter_id``; ``unknown_counter_report`` otherwise."""
    record = state.counter_reports.get(counter_id)
    if record is None:
        raise ProtocolError("unknown_counter_report", f"no counter-report {counter_id}", field="counter_id")
    return record


def held_bonds(state: State) -> int:
    """Micro-USDC escrowed in counter-reports not decided yet (collateral conservation counts it)."""
    return sum(record.bond_usdc for record in state.counter_reports.values() if record.decided_height is None)


def _check_hash(text: str, field: str) -> None:
    if not REPORT_HASH.fullmatch(text):
        raise ProtocolError("invalid_report_hash", f"{field} must be 64 lowercase hex digits (SHA-256)", field=field)


def post_counter_report(state: State, sender: str, msg: PostCounterReport, events: Events) -> dict[str, Any]:
    """Contest a queued proposal's stress gate with a bonded failing report (module docstring).
    Raises ``unknown_proposal``, ``proposal_not_queued``, ``proposal_not_gated``,
    ``counter_report_window_closed``, ``too_many_counter_reports``, ``invalid_report_hash``,
    ``counter_report_exists``, ``invalid_verdict``, ``invalid_field`` and the decimal codes,
    ``counter_report_figures_pass``, ``invalid_subaccount``, ``subaccount_not_found``,
    ``withdrawals_paused``, ``insufficient_free_collateral``, ``too_many_open_orders``."""
    # VALIDATION
    proposal = get_proposal(state, msg.proposal_id)
    if proposal.status != ProposalStatus.QUEUED or proposal.queued_ms is None:
        raise ProtocolError("proposal_not_queued", f"a counter-report contests a queued proposal; this one is "
                            f"{proposal.status}", field="proposal_id", status=proposal.status)
    if proposal.risk_class not in GATED_CLASSES:
        raise ProtocolError("proposal_not_gated", f"a {proposal.risk_class} proposal has no stress gate to contest",
                            field="proposal_id")
    closes_ms = proposal.queued_ms + min(proposal.rules.timelock_ms, state.governance.counter_report_window_ms)
    if state.time_ms >= closes_ms:
        raise ProtocolError("counter_report_window_closed", f"counter-reports on this proposal were accepted until "
                            f"block time {closes_ms} ms", field="proposal_id", closed_ms=closes_ms)
    mine = [r for r in state.counter_reports.values() if r.proposal_id == proposal.proposal_id]
    if len(mine) >= MAX_COUNTER_REPORTS_PER_PROPOSAL:
        raise ProtocolError("too_many_counter_reports", f"a proposal takes at most {MAX_COUNTER_REPORTS_PER_PROPOSAL} "
                            "counter-reports", field="proposal_id")
    _check_hash(msg.report_hash, "report_hash")
    _check_hash(msg.scenario_set_hash, "scenario_set_hash")
    if any(r.report_hash == msg.report_hash for r in mine):
        raise ProtocolError("counter_report_exists", "this report already contests this proposal",
                            field="report_hash")
    if msg.verdict != FAIL:
        raise ProtocolError("invalid_verdict", "a counter-report's verdict is fail (a passing report contests "
                            "nothing)", field="verdict")
    depletion, var99, es99, total = parse_headline_figures(msg)
    if compute_governed_verdict(state, depletion, var99, es99, total):
        raise ProtocolError("counter_report_figures_pass", "these figures pass the governed stress thresholds: "
                            "they contest nothing", field="verdict")
    bond = state.governance.counter_report_bond_usdc
    sub = accounts.get_own_subaccount(state, sender, msg.subaccount)
    accounts.check_withdrawals_open(state, sub)
    accounts.check_free_collateral(state, sub, bond)
    accounts.check_open_orders_covered(state, sub, bond)
    # OPERATION
    accounts.settle_funding(state, sub, events)
    sub.balance -= bond
    state.touch(sub.key)
    counter_id = len(state.counter_reports) + 1
    state.counter_reports[counter_id] = CounterReport(
        counter_id, proposal.proposal_id, sender, msg.subaccount, msg.report_hash, msg.scenario_set_hash, depletion,
        var99, es99, total, bond, state.time_ms, state.height)
    state.touch(("counter_report", counter_id))
    emit(events, ev.CounterReportPosted, counter_id=counter_id, proposal_id=proposal.proposal_id, poster=sender,
         number=msg.subaccount, report_hash=msg.report_hash, scenario_set_hash=msg.scenario_set_hash,
         depletion_probability_ppm=depletion, var99_loss=var99, es99_loss=es99, insurance_funds_total=total,
         bond=bond)
    return {"counter_id": counter_id, "bond": bond}


def answer_counter_report(state: State, sender: str, msg: AnswerCounterReport, events: Events) -> dict[str, Any]:
    """A member names a newer registered passing report that covered a counter-report (module
    docstring). Raises ``not_council_member``, ``unknown_counter_report``, ``counter_report_rejected``,
    ``invalid_report_hash``, ``unknown_stress_report``, ``stress_report_failed``,
    ``stress_report_not_newer``."""
    # VALIDATION
    require_member(state, sender)
    record = get_counter_report(state, msg.counter_id)
    if record.status == REJECTED:
        raise ProtocolError("counter_report_rejected", "this counter-report did not reproduce: it holds nothing",
                            field="counter_id")
    _check_hash(msg.report_hash, "report_hash")
    report = state.stress_reports.get(msg.report_hash)
    if report is None:
        raise ProtocolError("unknown_stress_report", "no stress report with this hash is registered",
                            field="report_hash")
    if report.verdict != PASS:
        raise ProtocolError("stress_report_failed", "the answer must be a report registered as pass",
                            field="report_hash")
    if report.registered_ms < record.posted_ms:
        raise ProtocolError("stress_report_not_newer", f"the report was registered at {report.registered_ms} ms, "
                            f"before the counter-report ({record.posted_ms} ms): it cannot have covered it",
                            field="report_hash")
    # OPERATION
    record.answer_hash = msg.report_hash
    state.touch(("counter_report", record.counter_id))
    emit(events, ev.CounterReportAnswered, counter_id=record.counter_id, proposal_id=record.proposal_id,
         report_hash=msg.report_hash, member=sender)
    return {}


def judge_counter_report(state: State, sender: str, msg: JudgeCounterReport, events: Events) -> dict[str, Any]:
    """A member's judgement of whether a counter-report reproduced; the k-th matching one decides and
    moves the bond (module docstring). Raises ``not_council_member``, ``unknown_counter_report``,
    ``counter_report_decided``."""
    # VALIDATION
    require_member(state, sender)
    record = get_counter_report(state, msg.counter_id)
    if record.decided_height is not None:
        raise ProtocolError("counter_report_decided", f"counter-report {record.counter_id} was decided at block "
                            f"{record.decided_height} ({record.status})", field="counter_id")
    # OPERATION
    record.judge_votes[sender] = msg.reproduced
    state.touch(("counter_report", record.counter_id))
    votes = sum(1 for member in state.council.members if record.judge_votes.get(member) is msg.reproduced)
    threshold = state.council.threshold
    emit(events, ev.CounterReportJudged, counter_id=record.counter_id, member=sender, reproduced=msg.reproduced,
         votes=votes, threshold=threshold)
    decided = votes >= threshold
    if decided:
        _decide(state, record, msg.reproduced, events)
    return {"votes": votes, "threshold": threshold, "decided": decided}


def _decide(state: State, record: CounterReport, reproduced: bool, events: Events) -> None:
    """Move the bond: back to the poster's subaccount, or into the cross insurance fund."""
    record.status = REPRODUCED if reproduced else REJECTED
    record.decided_height = state.height
    if reproduced:
        sub = accounts.get_or_create_subaccount(state, record.poster, record.number)
        accounts.settle_funding(state, sub, events)
        sub.balance += record.bond_usdc
        state.touch(sub.key)
        to = "poster"
    else:   # like a dispute's forfeited bond: a result of the fund, shared with its stakers (core.staking)
        staking.move_fund(state, CROSS_POOL, record.bond_usdc, FundFlow.RESULT, events)
        state.touch(("global",))
        to = CROSS_POOL
    emit(events, ev.CounterReportDecided, counter_id=record.counter_id, proposal_id=record.proposal_id,
         reproduced=reproduced, bond=record.bond_usdc, to=to, insurance_fund=state.insurance_funds[CROSS_POOL])


def describe_counter_reports(state: State, proposal_id: str | None = None) -> list[dict[str, Any]]:
    """The counter-reports (of one proposal, or all), integers as stored, for the API and the CLI."""
    return [{"counter_id": r.counter_id, "proposal_id": r.proposal_id, "poster": r.poster, "subaccount": r.number,
             "report_hash": r.report_hash, "scenario_set_hash": r.scenario_set_hash,
             "depletion_probability_ppm": r.depletion_probability_ppm, "var99_loss_usdc": r.var99_loss_usdc,
             "es99_loss_usdc": r.es99_loss_usdc, "insurance_funds_total_usdc": r.insurance_funds_total_usdc,
             "bond_usdc": r.bond_usdc, "posted_ms": r.posted_ms, "height": r.height, "status": r.status,
             "answer_hash": r.answer_hash or None, "judge_votes": dict(sorted(r.judge_votes.items())),
             "decided_height": r.decided_height}
            for r in state.counter_reports.values() if proposal_id is None or r.proposal_id == proposal_id]
