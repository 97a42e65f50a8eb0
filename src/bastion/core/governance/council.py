"""The council (DESIGN.md section 9, issue 5): stress-gate attestations and bounded steward changes.

The council is ``state.council``: ``members`` (n sorted addresses) and ``threshold`` k, 1 <= k <= n.
Genesis may give one (``"council": {"members", "threshold", "steward_bounds"}``); without it the
council has no members, no attestation can exist and **no risk_increasing or critical proposal can
ever execute** (not even a ``set_council``: a chain that wants either gives its council at genesis).
Governance replaces the council with the ``critical`` action ``set_council{members, threshold}``
(changes ``council.members``, a tuple of sorted addresses recorded in the parameter history
joined by commas, and ``council.threshold``).

**Stress gate** (``check_stress_gate``, called by ``governance.execute`` as its last check): a
proposal voted ``risk_increasing`` or ``critical`` executes only if at least k *current* members
hold a valid ``pass`` attestation naming the *same* report hash. Valid: made at a block time >= the
proposal's ``queued_ms`` and at most ``governance.attestation_max_age_s`` old at execution (age ==
max age still counts). Else ``stress_attestation_missing`` (fields ``passes``, the most valid passes
on one hash, and ``threshold``). A successful gate emits ``stress_gate_passed{proposal_id,
report_hash, passes, threshold}`` before the parameter changes; on a tie between hashes the smaller
hash is named.

**Registered reports** (issue 16): ``register_stress_report{report_hash, verdict,
depletion_probability, var99_loss, es99_loss, insurance_funds_total}`` puts a report's hash, its
verdict and headline figures on chain before anyone may attest it. Only a council member may send
it (the council is at most ``MAX_COUNCIL_MEMBERS`` addresses chosen by a critical vote, so
registration cannot be spammed and needs no bond). Checks, in order: ``not_council_member``,
``invalid_report_hash``, ``invalid_verdict``, the decimal codes (probability in [0, 1]: else
``invalid_field``; ``es99_loss`` below ``var99_loss``: ``invalid_field``), ``stress_report_exists`` (a
hash names one report: registered once, never changed), ``stress_verdict_mismatch`` (a ``pass``
whose figures fail the *governed* stress thresholds; a ``fail`` is always accepted, a report run with
stricter thresholds may fail figures the chain would pass). Event ``stress_report_registered``;
result ``{report_hash, verdict}``. Leaf ``("stress_report", hash)``.

``council_attest{proposal_id, report_hash, verdict}``: checks, in order, ``not_council_member``,
``unknown_proposal``, ``proposal_not_queued`` (any other status; the status is in the error),
``invalid_report_hash`` (64 lowercase hex: the SHA-256 of a stress report), ``invalid_verdict``
(``pass`` | ``fail``), ``unknown_stress_report`` (the hash is not registered), ``stress_report_failed``
(a ``pass`` naming a report registered as ``fail``; a ``fail`` may name it). A member's newer
attestation on a proposal replaces its older one. A ``fail``
is a recorded dissent that counts for nothing: it is not a veto (one member could otherwise block
a k-of-n council), it only withdraws that member's earlier pass. Attestations are accepted on any
queued proposal (they count only where the gate applies) and stay in the state as its record.
Event ``stress_attested{proposal_id, member, report_hash, verdict, passes, threshold}``, ``passes``
being the valid passes on that hash now; result ``{passes, threshold}``.

**Steward changes** (Aave RiskSteward): governance gives a parameter a bound with the ``critical``
action ``set_steward_bounds{bounds: {name: {max_change | max_change_abs, cooldown_s} | null}}``
(or in genesis). ``max_change`` is a ratio of the current value (``"0.25"`` = 25 %),
``max_change_abs`` a positive decimal in the unit the parameter's governance action takes (BTC for
an open-interest cap, a ratio for fees and margins, USDC, a whole number of blocks), ``cooldown_s``
an integer >= 1. A name the action omits keeps its bound; ``null`` removes it. Each named bound is
one change ``council.steward_bounds.<name>`` whose value is the text ``"kind=relative|absolute
max_change=<ppm or the parameter's integer unit> cooldown_ms=<ms>"`` ("" = no bound).

Steward parameters (``STEWARD_PARAMETERS``): ``markets.<T>.{max_open_interest_lots, maker_fee_ppm,
taker_fee_ppm, min_order_lots}``, ``liquidity_tiers.<id>.{initial_margin_ppm,
maintenance_fraction_ppm, oi_lower_cap_usdc, oi_upper_cap_usdc}``, ``fees.insurance_share_ppm``,
``liquidation.{max_liquidation_fee_ppm, max_insurance_loss_per_block_usdc,
withdrawal_pause_blocks}``; anything else (``governance.*``, ``council.*``, a market's tier or
status, ...) is ``not_steward_parameter``.

``steward_change{param, value}`` (``value`` as in the governance action, e.g. ``"0.0004"`` for a
taker fee) is one member's approval. Checks, in order, at every message: ``not_council_member``,
``not_steward_parameter``, ``no_steward_bound``, ``steward_cooldown`` (block time < last steward
change of that parameter + cooldown; at exactly the end it is allowed), the decimal codes,
``steward_zero_value`` (never to zero, whatever the bound), the governance action's own validation
(``invalid_fees``, ``invalid_tier``, ``market_delisted``, ...), ``steward_no_change`` (Aave accepts
an unchanged value and restarts the cooldown; we refuse it), ``steward_bound_exceeded``
(``|new - current| > |current| x max_change`` or ``> max_change_abs``: the boundary itself is
allowed; a current value of 0 allows no relative change). The member's approval (one per member and
parameter: a newer one, for any value, replaces it) is stored and announced
(``steward_change_approved{param, value, member, approvals, threshold}``). When k current members
hold approvals of that same value, none older than ``attestation_max_age_s``, the change applies in
that message through ``changes.change_param`` (source ``council``, ref the approvers joined by
commas), the parameter's cooldown starts at this block time, every pending approval of the
parameter is dropped, and ``steward_change_applied{param, value, old, approvers}`` follows the
``param_changed``. Result ``{approvals, applied}``. Values in events are the parameter's integers.
"""
from __future__ import annotations

from typing import Any

from bastion.core.errors import ProtocolError
from bastion.core import events as ev
from bastion.core.events import Events, emit
from bastion.core.governance import rollout
from bastion.core.governance.changes import Change, ParamPath, change_param
from bastion.core.governance.council_rules import (
    COUNT, PASS, REPORT_FIELDS, REPORT_HASH, RELATIVE, SIGNED_RATIO, VERDICTS, StewardParameter,
    compute_governed_verdict, count_stress_passes, get_steward_approvers, get_steward_parameter, parse_council,
    parse_headline_figures, parse_in_unit, parse_steward_bounds, require_member,
)
from bastion.core.governance.dispatch import compute_action_changes
from bastion.core.governance.proposals import ProposalStatus, get_proposal
from bastion.core.messages import (
    Action, CouncilAttest, RegisterStressReport, SetFeeParams, SetLiquidationParams, SetLiquidityTier, SetMarketParams,
    StewardChange,
)
from bastion.core.state import Attestation, ParamSource, State, StewardApproval, StressReportRecord
from bastion.core.units import PPM



def council_attest(state: State, sender: str, msg: CouncilAttest, events: Events) -> dict[str, Any]:
    """A member attests a stress report on a queued proposal (module docstring). Raises
    ``not_council_member``, ``unknown_proposal``, ``proposal_not_queued``, ``invalid_report_hash``,
    ``invalid_verdict``, ``unknown_stress_report``, ``stress_report_failed``."""
    # VALIDATION
    require_member(state, sender)
    proposal = get_proposal(state, msg.proposal_id)
    if proposal.status != ProposalStatus.QUEUED:
        raise ProtocolError("proposal_not_queued", f"only a queued proposal is attested; this one is "
                            f"{proposal.status}", field="proposal_id", status=proposal.status)
    if not REPORT_HASH.fullmatch(msg.report_hash):
        raise ProtocolError("invalid_report_hash", "report_hash must be 64 lowercase hex digits (SHA-256)",
                            field="report_hash")
    if msg.verdict not in VERDICTS:
        raise ProtocolError("invalid_verdict", f"verdict must be one of {VERDICTS}", field="verdict")
    report = state.stress_reports.get(msg.report_hash)
    if report is None:
        raise ProtocolError("unknown_stress_report", "no stress report with this hash is registered "
                            "(register_stress_report first)", field="report_hash")
    if msg.verdict == PASS and report.verdict != PASS:
        raise ProtocolError("stress_report_failed", "the registered verdict of this report is fail: it cannot be "
                            "attested as a pass", field="report_hash")
    # OPERATION
    state.attestations.setdefault(proposal.proposal_id, {})[sender] = Attestation(
        msg.report_hash, msg.verdict, state.time_ms, state.height)
    state.touch(("attestation", proposal.proposal_id, sender))
    passes = count_stress_passes(state, proposal).get(msg.report_hash, 0)
    threshold = state.council.threshold
    emit(events, ev.StressAttested, proposal_id=proposal.proposal_id, member=sender, report_hash=msg.report_hash,
         verdict=msg.verdict, passes=passes, threshold=threshold)
    return {"passes": passes, "threshold": threshold}



def register_stress_report(state: State, sender: str, msg: RegisterStressReport, events: Events) -> dict[str, Any]:
    """Put a stress report's hash, verdict and headline figures on chain (module docstring). Raises
    ``not_council_member``, ``invalid_report_hash``, ``invalid_verdict``, ``invalid_field`` and the
    decimal codes, ``stress_report_exists``, ``stress_verdict_mismatch``."""
    require_member(state, sender)
    return _validate_and_register(state, sender, msg, events)


def _validate_and_register(state: State, sender: str, msg: RegisterStressReport, events: Events) -> dict[str, Any]:
    # VALIDATION
    if not REPORT_HASH.match(msg.report_hash):
        raise ProtocolError("invalid_report_hash", "report_hash must be 64 lowercase hex digits (SHA-256)",
                            field="report_hash")
    if msg.verdict not in VERDICTS:
        raise ProtocolError("invalid_verdict", f"verdict must be one of {VERDICTS}", field="verdict")
    depletion, var99, es99, total = parse_headline_figures(msg)
    if msg.report_hash in state.stress_reports:
        raise ProtocolError("stress_report_exists", "this report is already registered (a hash names one report)",
                            field="report_hash")
    if msg.verdict == PASS and not compute_governed_verdict(state, depletion, var99, es99, total):
        raise ProtocolError("stress_verdict_mismatch", "the figures fail the governed stress thresholds: the "
                            "verdict cannot be pass", field="verdict")
    # OPERATION
    state.stress_reports[msg.report_hash] = StressReportRecord(msg.verdict, depletion, var99, es99, total, sender,
                                                               state.time_ms, state.height)
    state.touch(("stress_report", msg.report_hash))
    emit(events, ev.StressReportRegistered, report_hash=msg.report_hash, verdict=msg.verdict,
         depletion_probability_ppm=depletion, var99_loss=var99, es99_loss=es99, insurance_funds_total=total,
         by=sender)
    return {"report_hash": msg.report_hash, "verdict": msg.verdict}



def _steward_action(param: StewardParameter, text: str, value: int) -> Action:
    """The governance action that would set ``param`` to ``text``: its validation is reused."""
    arguments: dict[str, Any] = {param.field: value if param.unit == COUNT else text}
    if param.group == "markets":
        return SetMarketParams(market=param.target, **arguments)
    if param.group == "liquidity_tiers":
        return SetLiquidityTier(tier=int(param.target), **arguments)
    if param.group == "fees":
        return SetFeeParams(**arguments)
    return SetLiquidationParams(**arguments)


def compute_steward_change(state: State, name: str, text: str) -> tuple[int, int]:
    """Validate a steward change of ``name`` to the decimal ``text`` now; return (current, new)."""
    param = get_steward_parameter(name)
    bound = state.steward_bounds.get(name)
    if bound is None:
        raise ProtocolError("no_steward_bound", f"governance has set no steward bound for {name}", field="param")
    last_ms = state.steward_last_change_ms.get(name)
    if last_ms is not None and state.time_ms < last_ms + bound.cooldown_ms:
        raise ProtocolError("steward_cooldown", f"{name} changed at block time {last_ms} ms; the next steward "
                            f"change is allowed from {last_ms + bound.cooldown_ms} ms", field="param",
                            allowed_from_ms=last_ms + bound.cooldown_ms)
    new = parse_in_unit(state, param, text, field="value", signed=param.unit == SIGNED_RATIO)
    if new == 0:
        raise ProtocolError("steward_zero_value", "a steward change never sets a parameter to zero", field="value")
    changes = compute_action_changes(state, _steward_action(param, text, new))
    # a tier reports no unchanged field
    old = next((change.old for change in changes if isinstance(change, Change) and change.name == name), new)
    if old == new:
        raise ProtocolError("steward_no_change", f"{name} is already {new}", field="value")
    if bound.kind == RELATIVE:
        exceeded = abs(new - old) * PPM > abs(old) * bound.max_change
    else:
        exceeded = abs(new - old) > bound.max_change
    if exceeded:
        allowed = f"{bound.max_change} ppm of |{old}|" if bound.kind == RELATIVE else str(bound.max_change)
        raise ProtocolError("steward_bound_exceeded", f"{name}: {old} -> {new} moves {abs(new - old)}, more than "
                            f"the bound allows ({allowed})", field="value", current=old, bound=bound.max_change)
    return old, new



def steward_change(state: State, sender: str, msg: StewardChange, events: Events) -> dict[str, Any]:
    """A member's approval of a bounded parameter change; the k-th matching approval applies it
    (module docstring). Raises ``not_council_member``, ``not_steward_parameter``, ``no_steward_bound``,
    ``steward_cooldown``, ``steward_zero_value``, ``steward_no_change``, ``steward_bound_exceeded``,
    the decimal codes and the codes of the governance action's validation."""
    # VALIDATION
    require_member(state, sender)
    old, new = compute_steward_change(state, msg.param, msg.value)
    # OPERATION
    state.steward_approvals.setdefault(msg.param, {})[sender] = StewardApproval(new, state.time_ms, state.height)
    state.touch(("steward_approval", msg.param, sender))
    approvers = get_steward_approvers(state, msg.param, new)
    threshold = state.council.threshold
    emit(events, ev.StewardChangeApproved, param=msg.param, value=new, member=sender, approvals=len(approvers),
         threshold=threshold)
    if len(approvers) < threshold:
        return {"approvals": len(approvers), "applied": False}
    path, source = ParamPath.parse(msg.param), ParamSource("council", ",".join(approvers))
    rollout.halt_superseded_rollouts(state, path, source, events)
    change_param(state, path, old, new, source, events)
    state.params_epoch += 1
    state.touch(("global",))
    state.steward_last_change_ms[msg.param] = state.time_ms
    state.touch(("steward_cooldown", msg.param))
    for member in state.steward_approvals.pop(msg.param):
        state.touch(("steward_approval", msg.param, member))
    emit(events, ev.StewardChangeApplied, param=msg.param, value=new, old=old, approvers=tuple(approvers))
    return {"approvals": len(approvers), "applied": True}



def parse_genesis_council(state: State, obj: Any) -> None:
    """Genesis ``council`` section (``{"members", "threshold", "steward_bounds", "stress_reports"}``,
    all optional). ``stress_reports`` lists reports registered at genesis, each as the fields of
    ``register_stress_report`` (``registered_by`` ``"genesis"``, at the genesis time and height 0)."""
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_field", "council must be an object", field="council")
    for key in sorted(set(obj) - {"members", "threshold", "steward_bounds", "stress_reports"}):
        raise ProtocolError("unknown_field", f"council has no field {key!r}", field=f"council.{key}")
    state.council = parse_council(obj.get("members", []), obj.get("threshold", 0), allow_empty=True)
    bounds = parse_steward_bounds(state, obj.get("steward_bounds", {}), path="steward_bounds", allow_removal=False)
    state.steward_bounds = {name: bound for name, bound in bounds.items() if bound is not None}
    reports = obj.get("stress_reports", [])
    if not isinstance(reports, list):
        raise ProtocolError("invalid_field", "stress_reports must be a list", field="stress_reports")
    for index, report in enumerate(reports):
        if not isinstance(report, dict) or set(report) != set(REPORT_FIELDS):
            raise ProtocolError("invalid_field", f"stress_reports[{index}] must have exactly the fields "
                                f"{list(REPORT_FIELDS)}", field=f"stress_reports[{index}]")
        if not all(isinstance(value, str) for value in report.values()):
            raise ProtocolError("invalid_field", f"stress_reports[{index}]: every field is a string",
                                field=f"stress_reports[{index}]")
        _validate_and_register(state, "genesis", RegisterStressReport(**report), [])

