"""The council (DESIGN.md section 9, issue 5): stress-gate attestations and bounded steward changes.

The council is ``state.council``: ``members`` (n sorted addresses) and ``threshold`` k, 1 <= k <= n.
Genesis may give one (``"council": {"members", "threshold", "steward_bounds"}``); without it the
council has no members, no attestation can exist and **no risk_increasing or critical proposal can
ever execute** (not even a ``set_council``: a chain that wants either gives its council at genesis).
Governance replaces the council with the ``critical`` action ``set_council{members, threshold}``
(changes ``council.members``, the sorted addresses joined by commas, and ``council.threshold``).

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
(a ``pass`` naming a report registered as ``fail``; a ``fail`` may name it). A member's newer attestation on a proposal replaces its older one. A ``fail``
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
that message through ``governance.change_param`` (source ``council``, ref the approvers joined by
commas), the parameter's cooldown starts at this block time, every pending approval of the
parameter is dropped, and ``steward_change_applied{param, value, old, approvers}`` follows the
``param_changed``. Result ``{approvals, applied}``. Values in events are the parameter's integers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from bastion.core import governance
from bastion.core.errors import InvariantViolation, ProtocolError
from bastion.core.messages import (
    Action, CouncilAttest, RegisterStressReport, SetCouncil, SetFeeParams, SetLiquidationParams, SetLiquidityTier, SetMarketParams,
    SetStewardBounds, StewardChange, normalize_address,
)
from bastion.core.state import (
    Attestation, Council, ParamSource, Proposal, State, StewardApproval, StewardBound, StressReportRecord,
)
from bastion.core.units import (
    MAX_INTEGER_DIGITS, MS_PER_S, PPM, format_decimal, format_ppm, format_usdc, parse_decimal, parse_ppm, parse_usdc,
)

Events = list[dict]
Change = tuple[str, Any, Any, str]

PASS, FAIL = "pass", "fail"
VERDICTS: Final = (PASS, FAIL)
GATED_CLASSES: Final = ("risk_increasing", "critical")
CRITICAL: Final = "critical"
MAX_COUNCIL_MEMBERS: Final = 32
RELATIVE, ABSOLUTE = "relative", "absolute"
_REPORT_HASH = re.compile(r"[0-9a-f]{64}")  # fullmatch: the whole string
_BOUND_PREFIX: Final = "steward_bounds."

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


def format_members(members: tuple[str, ...]) -> str:
    """The value of ``council.members`` in the parameter history: sorted addresses, comma-joined."""
    return ",".join(members)


def compute_set_council_changes(state: State, action: SetCouncil) -> list[Change]:
    new = parse_council(action.members, action.threshold, allow_empty=False)
    old = state.council
    return [("council.members", format_members(old.members), format_members(new.members), CRITICAL),
            ("council.threshold", old.threshold, new.threshold, CRITICAL)]


def apply_council_change(state: State, name: str, value: Any) -> None:
    """Set one ``council.*`` parameter (``governance.apply_change`` delegates here)."""
    if name == "members":
        state.council = Council(tuple(value.split(",")) if value else (), state.council.threshold)
        state.touch(("council",))
    elif name == "threshold":
        state.council = Council(state.council.members, value)
        state.touch(("council",))
    elif name.startswith(_BOUND_PREFIX):
        param = name[len(_BOUND_PREFIX):]
        if value:
            state.steward_bounds[param] = parse_bound_text(value)
        else:
            state.steward_bounds.pop(param, None)
        state.touch(("steward_bound", param))
    else:
        raise InvariantViolation(f"unknown council parameter {name!r}")


def is_council_member(state: State, address: str) -> bool:
    return address in state.council.members


def _require_member(state: State, sender: str) -> None:
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


def check_stress_gate(state: State, proposal: Proposal) -> dict | None:
    """Raise ``stress_attestation_missing`` unless a gated proposal has k valid passes on one report
    hash; return the ``stress_gate_passed`` event to emit (None for ungated classes)."""
    if proposal.risk_class not in GATED_CLASSES:
        return None
    ranked = sorted(count_stress_passes(state, proposal).items(), key=lambda item: (-item[1], item[0]))
    report_hash, passes = ranked[0] if ranked else (None, 0)
    threshold = state.council.threshold
    if passes == 0 or passes < threshold:
        raise ProtocolError("stress_attestation_missing", f"a {proposal.risk_class} proposal needs {threshold} "
                            f"current council members' pass attestations on one report hash, made since queueing "
                            f"and at most {state.governance.attestation_max_age_ms // MS_PER_S} s old; it has "
                            f"{passes}", field="proposal_id", passes=passes, threshold=threshold)
    return {"type": "stress_gate_passed", "proposal_id": proposal.proposal_id, "report_hash": report_hash,
            "passes": passes, "threshold": threshold}


def council_attest(state: State, sender: str, msg: CouncilAttest, events: Events) -> dict:
    # VALIDATION
    _require_member(state, sender)
    proposal = governance.get_proposal(state, msg.proposal_id)
    if proposal.status != governance.QUEUED:
        raise ProtocolError("proposal_not_queued", f"only a queued proposal is attested; this one is "
                            f"{proposal.status}", field="proposal_id", status=proposal.status)
    if not _REPORT_HASH.fullmatch(msg.report_hash):
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
    events.append({"type": "stress_attested", "proposal_id": proposal.proposal_id, "member": sender,
                   "report_hash": msg.report_hash, "verdict": msg.verdict, "passes": passes, "threshold": threshold})
    return {"passes": passes, "threshold": threshold}


# --------------------------------------------------------------------------------------- registered reports
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


def register_stress_report(state: State, sender: str, msg: RegisterStressReport, events: Events) -> dict:
    """Put a stress report's hash, verdict and headline figures on chain (module docstring)."""
    _require_member(state, sender)
    return _validate_and_register(state, sender, msg, events)


def _validate_and_register(state: State, sender: str, msg: RegisterStressReport, events: Events) -> dict:
    # VALIDATION
    if not _REPORT_HASH.match(msg.report_hash):
        raise ProtocolError("invalid_report_hash", "report_hash must be 64 lowercase hex digits (SHA-256)",
                            field="report_hash")
    if msg.verdict not in VERDICTS:
        raise ProtocolError("invalid_verdict", f"verdict must be one of {VERDICTS}", field="verdict")
    depletion = parse_ppm(msg.depletion_probability, field="depletion_probability")
    if depletion > PPM:
        raise ProtocolError("invalid_field", "depletion_probability must be in [0, 1]", field="depletion_probability")
    var99 = parse_usdc(msg.var99_loss, field="var99_loss")
    es99 = parse_usdc(msg.es99_loss, field="es99_loss")
    total = parse_usdc(msg.insurance_funds_total, field="insurance_funds_total")
    if es99 < var99:
        raise ProtocolError("invalid_field", "es99_loss is the mean of the tail beyond var99_loss: never below it",
                            field="es99_loss")
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
    events.append({"type": "stress_report_registered", "report_hash": msg.report_hash, "verdict": msg.verdict,
                   "depletion_probability_ppm": depletion, "var99_loss": var99, "es99_loss": es99,
                   "insurance_funds_total": total, "by": sender})
    return {"report_hash": msg.report_hash, "verdict": msg.verdict}


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


def format_bound_text(bound: StewardBound | None) -> str:
    """A bound as the value of ``council.steward_bounds.<name>`` ("" = no bound)."""
    if bound is None:
        return ""
    return f"kind={bound.kind} max_change={bound.max_change} cooldown_ms={bound.cooldown_ms}"


def parse_bound_text(text: str) -> StewardBound:
    values = dict(item.split("=") for item in text.split(" "))
    return StewardBound(values["kind"], int(values["max_change"]), int(values["cooldown_ms"]))


def compute_steward_bounds_changes(state: State, action: SetStewardBounds) -> list[Change]:
    bounds = parse_steward_bounds(state, action.bounds, path="bounds", allow_removal=True)
    return [(f"council.{_BOUND_PREFIX}{name}", format_bound_text(state.steward_bounds.get(name)),
             format_bound_text(bound), CRITICAL) for name, bound in bounds.items()]


def format_bound(state: State, name: str, bound: StewardBound) -> dict[str, Any]:
    """A bound in its genesis / action form."""
    if bound.kind == RELATIVE:
        return {"max_change": format_ppm(bound.max_change), "cooldown_s": bound.cooldown_ms // MS_PER_S}
    return {"max_change_abs": format_in_unit(state, get_steward_parameter(name), bound.max_change),
            "cooldown_s": bound.cooldown_ms // MS_PER_S}


# --------------------------------------------------------------------------------------- steward changes
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
    changes = governance.compute_action_changes(state, _steward_action(param, text, new))
    old = next((change[1] for change in changes if change[0] == name), new)  # a tier reports no unchanged field
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


def get_steward_approvers(state: State, name: str, value: int) -> list[str]:
    """Current members whose latest, fresh approval of ``name`` is ``value`` (sorted)."""
    approvals = state.steward_approvals.get(name, {})
    return [member for member in state.council.members
            if (approval := approvals.get(member)) is not None and approval.value == value
            and is_fresh(state, approval.approved_ms)]


def steward_change(state: State, sender: str, msg: StewardChange, events: Events) -> dict:
    # VALIDATION
    _require_member(state, sender)
    old, new = compute_steward_change(state, msg.param, msg.value)
    # OPERATION
    state.steward_approvals.setdefault(msg.param, {})[sender] = StewardApproval(new, state.time_ms, state.height)
    state.touch(("steward_approval", msg.param, sender))
    approvers = get_steward_approvers(state, msg.param, new)
    threshold = state.council.threshold
    events.append({"type": "steward_change_approved", "param": msg.param, "value": new, "member": sender,
                   "approvals": len(approvers), "threshold": threshold})
    if len(approvers) < threshold:
        return {"approvals": len(approvers), "applied": False}
    governance.change_param(state, msg.param, old, new, ParamSource("council", ",".join(approvers)), events)
    state.params_epoch += 1
    state.touch(("global",))
    state.steward_last_change_ms[msg.param] = state.time_ms
    state.touch(("steward_cooldown", msg.param))
    for member in state.steward_approvals.pop(msg.param):
        state.touch(("steward_approval", msg.param, member))
    events.append({"type": "steward_change_applied", "param": msg.param, "value": new, "old": old,
                   "approvers": approvers})
    return {"approvals": len(approvers), "applied": True}


# --------------------------------------------------------------------------------------- genesis and output
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


def describe_council(state: State) -> dict[str, Any]:
    """The council in its genesis form, plus the live record: attestations, steward cooldowns (block
    time of each parameter's last steward change) and pending approvals (values as integers)."""
    return {
        "members": list(state.council.members), "threshold": state.council.threshold,
        "steward_bounds": {name: format_bound(state, name, bound) for name, bound in sorted(state.steward_bounds.items())},
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
