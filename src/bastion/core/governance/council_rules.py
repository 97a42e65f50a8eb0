"""The council's rules as reads of the state (``bastion.core.governance.council`` has the module
docstring and the council's messages): parsing a council, who is a member, the stress gate's count
of valid attestations, the governed verdict of a stress report, steward parameters and their
bounds, and the ``set_council`` / ``set_steward_bounds`` changes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from bastion.core import events as ev
from bastion.core.errors import ProtocolError
from bastion.core.governance.changes import CRITICAL, Change, ParamGroup, ParamPath
from bastion.core.messages import (
    PostCounterReport, RegisterStressReport, SetCouncil, SetStewardBounds, normalize_address,
)
from bastion.core.state import Attestation, Council, Proposal, State, StewardBound
from bastion.core.units import (
    MAX_INTEGER_DIGITS, MS_PER_S, PPM, format_decimal, format_ppm, format_usdc, parse_decimal, parse_ppm, parse_usdc,
)

PASS, FAIL = "pass", "fail"
VERDICTS: Final = (PASS, FAIL)
GATED_CLASSES: Final = ("risk_increasing", "critical")
MAX_COUNCIL_MEMBERS: Final = 32
RELATIVE, ABSOLUTE = "relative", "absolute"
REPORT_HASH = re.compile(r"[0-9a-f]{64}")  # fullmatch: the whole string

# The unit of a steward parameter's decimal text: the grid of the governance action field that sets it.
LOTS, RATIO, SIGNED_RATIO, USDC_AMOUNT, COUNT = "lots", "ratio", "signed_ratio", "usdc", "count"
STEWARD_PARAMETERS: Final[dict[tuple[str, str], tuple[str, str]]] = {
    # (group, attribute): (field of the governance action that sets it, unit of its decimal text)
    ("markets", "max_open_interest_lots"): ("max_open_interest", LOTS),
    ("markets", "maker_fee_ppm"): ("maker_fee", SIGNED_RATIO),
    ("markets", "taker_fee_ppm"): ("taker_fee", RATIO),
    ("markets", "min_order_lots"): ("min_order_size", LOTS),
    ("liquidity_tiers", "initial_margin_ppm"): ("initial_margin", RATIO),
    ("liquidity_tiers", "maintenance_fraction_ppm"): ("maintenance_fraction", RATIO),
    ("liquidity_tiers", "oi_lower_cap_usdc"): ("oi_lower_cap", USDC_AMOUNT),
    ("liquidity_tiers", "oi_upper_cap_usdc"): ("oi_upper_cap", USDC_AMOUNT),
    ("fees", "insurance_share_ppm"): ("insurance_share", RATIO),
    ("liquidation", "max_liquidation_fee_ppm"): ("max_liquidation_fee", RATIO),
    ("liquidation", "max_insurance_loss_per_block_usdc"): ("max_insurance_loss_per_block", USDC_AMOUNT),
    ("liquidation", "withdrawal_pause_blocks"): ("withdrawal_pause_blocks", COUNT),
}


@dataclass(frozen=True, slots=True)
class StewardParameter:
    """A steward parameter's dotted ``name`` taken apart: ``target`` is the ticker, the tier id, or
    "" for the global groups; ``field`` and ``unit`` come from ``STEWARD_PARAMETERS``."""

    name: str
    group: str
    target: str
    field: str
    unit: str


# --------------------------------------------------------------------------------------- council
def parse_council(members: Any, threshold: Any, *, allow_empty: bool) -> Council:
    """A council from its members (addresses) and threshold; ``invalid_council`` otherwise. Only
    genesis may give no members (threshold 0)."""
    if not isinstance(members, list):
        raise ProtocolError("invalid_council", "members must be a list of addresses", field="members")
    addresses = [normalize_address(member, field=f"members[{i}]") for i, member in enumerate(members)]
    if len(set(addresses)) != len(addresses):
        raise ProtocolError("invalid_council", "members must be distinct", field="members")
    if len(addresses) > MAX_COUNCIL_MEMBERS:
        raise ProtocolError("invalid_council", f"a council has at most {MAX_COUNCIL_MEMBERS} members",
                            field="members")
    if not addresses and not allow_empty:
        raise ProtocolError("invalid_council", "a council has at least one member", field="members")
    low = 1 if addresses else 0
    if not isinstance(threshold, int) or isinstance(threshold, bool) or not low <= threshold <= len(addresses):
        raise ProtocolError("invalid_council", f"threshold must be an integer in [{low}, {len(addresses)}]",
                            field="threshold")
    return Council(tuple(sorted(addresses)), threshold)



def compute_set_council_changes(state: State, action: SetCouncil) -> list[Change]:
    """``set_council``: the members (a tuple of sorted addresses) and the threshold, both critical.
    Raises ``invalid_council``."""
    new = parse_council(action.members, action.threshold, allow_empty=False)
    old = state.council
    return [Change(ParamPath(ParamGroup.COUNCIL, "", "members"), old.members, new.members, CRITICAL),
            Change(ParamPath(ParamGroup.COUNCIL, "", "threshold"), old.threshold, new.threshold, CRITICAL)]




def is_council_member(state: State, address: str) -> bool:
    """True for a current member of the council."""
    return address in state.council.members


def require_member(state: State, sender: str) -> None:
    """``not_council_member`` unless ``sender`` is a current member."""
    if not is_council_member(state, sender):
        raise ProtocolError("not_council_member", f"{sender} is not a member of the council", field="sender")


def is_fresh(state: State, signed_ms: int) -> bool:
    """A council sign-off (attestation or approval) counts for ``attestation_max_age`` after it."""
    return state.time_ms - signed_ms <= state.governance.attestation_max_age_ms


# --------------------------------------------------------------------------------------- stress gate
def is_attestation_valid(state: State, proposal: Proposal, attestation: Attestation) -> bool:
    """A pass made since queueing (always so today: attesting needs a queued proposal) and fresh."""
    return (attestation.verdict == PASS and proposal.queued_ms is not None
            and attestation.attested_ms >= proposal.queued_ms and is_fresh(state, attestation.attested_ms))


def count_stress_passes(state: State, proposal: Proposal) -> dict[str, int]:
    """Valid pass attestations of current members, per report hash."""
    attestations = state.attestations.get(proposal.proposal_id, {})
    counts: dict[str, int] = {}
    for member in state.council.members:
        attestation = attestations.get(member)
        if attestation is not None and is_attestation_valid(state, proposal, attestation):
            counts[attestation.report_hash] = counts.get(attestation.report_hash, 0) + 1
    return counts


def check_stress_gate(state: State, proposal: Proposal) -> ev.StressGatePassed | None:
    """Raise ``stress_attestation_missing`` unless a gated proposal has k valid passes on one report
    hash, then ``counter_report_unanswered`` (``check_counter_reports``); return the
    ``stress_gate_passed`` event to emit (None for ungated classes)."""
    if proposal.risk_class not in GATED_CLASSES:
        return None
    ranked = sorted(count_stress_passes(state, proposal).items(), key=lambda item: (-item[1], item[0]))
    report_hash, passes = ranked[0] if ranked else ("", 0)
    threshold = state.council.threshold
    if passes == 0 or passes < threshold:
        raise ProtocolError("stress_attestation_missing", f"a {proposal.risk_class} proposal needs {threshold} "
                            f"current council members' pass attestations on one report hash, made since queueing "
                            f"and at most {state.governance.attestation_max_age_ms // MS_PER_S} s old; it has "
                            f"{passes}", field="proposal_id", passes=passes, threshold=threshold)
    check_counter_reports(state, proposal, report_hash)
    return ev.StressGatePassed(proposal_id=proposal.proposal_id, report_hash=report_hash, passes=passes,
                               threshold=threshold)



def check_counter_reports(state: State, proposal: Proposal, report_hash: str) -> None:
    """Raise ``counter_report_unanswered`` while a counter-report on the proposal that was not
    rejected (``bastion.core.governance.counter_reports``) has no answer, or an answer other than
    ``report_hash``, the report the gate passes on (field ``counter_ids``: the holding ones)."""
    holding = [r.counter_id for r in state.counter_reports.values()
               if r.proposal_id == proposal.proposal_id and r.status != "rejected" and r.answer_hash != report_hash]
    if holding:
        raise ProtocolError("counter_report_unanswered", f"counter-reports {holding} hold this proposal: the council "
                            "must pass a newer report that answers them, or judge them not reproduced",
                            field="proposal_id", counter_ids=holding)


# --------------------------------------------------------------------------------------- registered reports
def parse_headline_figures(msg: RegisterStressReport | PostCounterReport) -> tuple[int, int, int, int]:
    """A stress report's headline figures as integers: depletion probability (ppm), VaR 99 %, ES 99 %
    and the insurance funds' total (micro-USDC), as a registered report and a counter-report carry
    them. Raises ``invalid_decimal`` and ``invalid_field`` (a probability above 1, ES below VaR)."""
    depletion = parse_ppm(msg.depletion_probability, field="depletion_probability")
    if depletion > PPM:
        raise ProtocolError("invalid_field", "depletion_probability must be in [0, 1]", field="depletion_probability")
    var99 = parse_usdc(msg.var99_loss, field="var99_loss")
    es99 = parse_usdc(msg.es99_loss, field="es99_loss")
    total = parse_usdc(msg.insurance_funds_total, field="insurance_funds_total")
    if es99 < var99:
        raise ProtocolError("invalid_field", "es99_loss is the mean of the tail beyond var99_loss: never below it",
                            field="es99_loss")
    return depletion, var99, es99, total


def compute_governed_verdict(state: State, depletion_ppm: int, var99_usdc: int, es99_usdc: int,
                             insurance_total_usdc: int) -> bool:
    """True when the figures pass the governed stress thresholds (``bastion.stress.report.verdict``'s
    checks: the depletion probability at most its limit, VaR99 and ES99 at most their share of the
    insurance funds, compared by cross multiplication)."""
    g = state.governance
    return (depletion_ppm <= g.stress_max_depletion_probability_ppm
            and var99_usdc * PPM <= g.stress_max_var99_loss_ppm_of_fund * insurance_total_usdc
            and es99_usdc * PPM <= g.stress_max_es99_loss_ppm_of_fund * insurance_total_usdc)


REPORT_FIELDS: Final = ("report_hash", "verdict", "depletion_probability", "var99_loss", "es99_loss",
                        "insurance_funds_total")


# --------------------------------------------------------------------------------------- steward bounds
def get_steward_parameter(name: str, *, field: str = "param") -> StewardParameter:
    """Take a dotted parameter name apart; ``not_steward_parameter`` unless a steward may move it."""
    group, _, rest = name.partition(".")
    target, _, attr = rest.rpartition(".")
    spec = STEWARD_PARAMETERS.get((group, attr))
    canonical = {"markets": target != "",
                 "liquidity_tiers": (target.isascii() and target.isdigit() and len(target) <= MAX_INTEGER_DIGITS
                                     and str(int(target)) == target),
                 "fees": target == "", "liquidation": target == ""}.get(group, False)
    if spec is None or not canonical:
        raise ProtocolError("not_steward_parameter", f"{name!r} is not a parameter the council may change "
                            "(see STEWARD_PARAMETERS)", field=field)
    return StewardParameter(name, group, target, *spec)


def _check_target(state: State, param: StewardParameter, field: str) -> None:
    if param.group == "markets" and param.target not in state.markets:
        raise ProtocolError("unknown_market", f"unknown market {param.target!r}", field=field)
    if param.group == "liquidity_tiers" and int(param.target) not in state.tiers:
        raise ProtocolError("unknown_liquidity_tier", f"no liquidity tier {param.target}", field=field)


def parse_in_unit(state: State, param: StewardParameter, text: Any, *, field: str, signed: bool) -> int:
    """A decimal string on the grid of the parameter's governance action, as the parameter's integer."""
    if param.unit == LOTS:
        return parse_decimal(text, state.markets[param.target].size_decimals, field=field, signed=signed)
    if param.unit in (RATIO, SIGNED_RATIO):
        return parse_ppm(text, field=field, signed=signed)
    if param.unit == USDC_AMOUNT:
        return parse_usdc(text, field=field, signed=signed)
    return parse_decimal(text, 0, field=field, signed=signed)


def format_in_unit(state: State, param: StewardParameter, value: int) -> str:
    """The parameter's integer as the decimal text of its governance action (inverse of ``parse_in_unit``)."""
    if param.unit == LOTS:
        return format_decimal(value, state.markets[param.target].size_decimals)
    if param.unit in (RATIO, SIGNED_RATIO):
        return format_ppm(value)
    if param.unit == USDC_AMOUNT:
        return format_usdc(value)
    return str(value)


def parse_steward_bounds(state: State, obj: Any, *, path: str,
                         allow_removal: bool) -> dict[str, StewardBound | None]:
    """Bounds by parameter name, sorted (``None``: remove, only in ``set_steward_bounds``). The same
    parser reads genesis and the action."""
    if not isinstance(obj, dict) or (allow_removal and not obj):
        raise ProtocolError("invalid_field", f"{path} must be an object naming parameters", field=path)
    bounds: dict[str, StewardBound | None] = {}
    for name in sorted(obj):
        spec, field = obj[name], f"{path}.{name}"
        param = get_steward_parameter(name, field=field)
        _check_target(state, param, field)
        if spec is None and allow_removal:
            bounds[name] = None
            continue
        if not isinstance(spec, dict):
            raise ProtocolError("invalid_field", f"{field} must be an object", field=field)
        for key in sorted(set(spec) - {"max_change", "max_change_abs", "cooldown_s"}):
            raise ProtocolError("unknown_field", f"{field} has no field {key!r}", field=f"{field}.{key}")
        if ("max_change" in spec) == ("max_change_abs" in spec):
            raise ProtocolError("invalid_steward_bound", f"{field} needs exactly one of max_change (a ratio of "
                                "the current value) and max_change_abs", field=field)
        if "max_change" in spec:
            kind, amount = RELATIVE, parse_ppm(spec["max_change"], field=f"{field}.max_change")
        else:
            kind, amount = ABSOLUTE, parse_in_unit(state, param, spec["max_change_abs"],
                                                   field=f"{field}.max_change_abs", signed=False)
        cooldown_s = spec.get("cooldown_s")
        if amount <= 0 or not isinstance(cooldown_s, int) or isinstance(cooldown_s, bool) or cooldown_s < 1:
            raise ProtocolError("invalid_steward_bound", f"{field} needs a positive max change and an integer "
                                "cooldown_s >= 1", field=field)
        bounds[name] = StewardBound(kind, amount, cooldown_s * MS_PER_S)
    return bounds


def compute_steward_bounds_changes(state: State, action: SetStewardBounds) -> list[Change]:
    """``set_steward_bounds``: one critical change per named bound (None removes it). Raises
    ``invalid_field``, ``unknown_field``, ``not_steward_parameter``, ``unknown_market``,
    ``unknown_liquidity_tier``, ``invalid_steward_bound`` and the decimal codes."""
    bounds = parse_steward_bounds(state, action.bounds, path="bounds", allow_removal=True)
    return [Change(ParamPath(ParamGroup.STEWARD_BOUND, name), state.steward_bounds.get(name), bound, CRITICAL)
            for name, bound in bounds.items()]


def format_bound(state: State, name: str, bound: StewardBound) -> dict[str, Any]:
    """A bound in its genesis / action form."""
    if bound.kind == RELATIVE:
        return {"max_change": format_ppm(bound.max_change), "cooldown_s": bound.cooldown_ms // MS_PER_S}
    return {"max_change_abs": format_in_unit(state, get_steward_parameter(name), bound.max_change),
            "cooldown_s": bound.cooldown_ms // MS_PER_S}



def get_steward_approvers(state: State, name: str, value: int) -> list[str]:
    """Current members whose latest, fresh approval of ``name`` is ``value`` (sorted)."""
    approvals = state.steward_approvals.get(name, {})
    return [member for member in state.council.members
            if (approval := approvals.get(member)) is not None and approval.value == value
            and is_fresh(state, approval.approved_ms)]



def describe_council(state: State) -> dict[str, Any]:
    """The council in its genesis form, plus the live record: attestations, steward cooldowns (block
    time of each parameter's last steward change) and pending approvals (values as integers)."""
    return {
        "members": list(state.council.members), "threshold": state.council.threshold,
        "steward_bounds": {name: format_bound(state, name, bound)
                           for name, bound in sorted(state.steward_bounds.items())},
        "attestations": [{"proposal_id": pid, "member": member, "report_hash": a.report_hash, "verdict": a.verdict,
                          "attested_ms": a.attested_ms}
                         for pid, by_member in state.attestations.items() for member, a in by_member.items()],
        "stress_reports": [{"report_hash": h, "verdict": r.verdict,
                            "depletion_probability": format_ppm(r.depletion_probability_ppm),
                            "var99_loss": format_usdc(r.var99_loss_usdc), "es99_loss": format_usdc(r.es99_loss_usdc),
                            "insurance_funds_total": format_usdc(r.insurance_funds_total_usdc),
                            "registered_by": r.registered_by, "registered_ms": r.registered_ms}
                           for h, r in state.stress_reports.items()],
        "steward_last_change_ms": dict(sorted(state.steward_last_change_ms.items())),
        "steward_approvals": [{"param": name, "member": member, "value": a.value, "approved_ms": a.approved_ms}
                              for name, by_member in state.steward_approvals.items()
                              for member, a in by_member.items()],
    }
