"""Governance proposals (DESIGN.md section 9, issue 5): submit, vote, queue, execute, cancel.

Proposal number: 1, 2, ... in submission order (a short name for people; ``param_changed`` events
carry it as ``proposal_number`` beside the ``proposal_id``).

Proposal id: ``SHA-256`` (hex) of the canonical JSON (keys sorted, compact, ASCII) of
``{"chain_id", "title", "description", "actions", "proposer", "height"}``, where ``actions`` are
the decoded actions as objects with their ``type`` and every field (null when omitted; fields added
to an action later appear only when set, ``messages.canonical_action``) and ``height`` the
submission block. The same content submitted twice in one block by the same
proposer is ``duplicate_proposal``.

Actions are typed data (``bastion.core.messages``). ``compute_action_changes(state, action)``
validates one against the current state and returns its parameter changes ``(name, old, new,
risk_class)``; it is THE validation, run at submission and again at execution. Execution is
atomic: every action is validated against the state first, then all changes are applied (a
``start_rollout``'s planned change starts a rollout instead, ``bastion.core.rollout``).

Risk classes are computed by the protocol, never declared, by the proposal's effect on the
exchange with every other pending proposal applied (``bastion.core.classify``: the field classes
below plus the effect rules of its ``RULES`` table, docs/protocol.md): each change is ``risk_reducing``, ``neutral`` (no change) or ``risk_increasing``
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
``proposal_guards.get_quorum_count``) against ``ceil(total supply at the snapshot * quorum_ppm / 1e6)``; then a veto share
above ``veto_threshold`` of ``yes + no + veto`` vetoes (deposit burned: the BGOV total supply
falls), else ``yes / (yes + no + veto) > approval_threshold`` succeeds, else defeated. The deposit
comes back when the vote ends without a veto, or on cancellation, except that a proposer cancelling
after voting started forfeits it. The proposer threshold (at submission, and again at queue and
execution), one live proposal per proposer, the burned fee, who may cancel and the outcome-flip
extension are ``bastion.core.proposal_guards``. A vote that first reaches the
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
(``bastion.core.council.check_stress_gate``, the last check before anything changes).
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import fields
from typing import Any, Final

from bastion.core import actions, classify, council, guardian, orders, proposal_guards, rollout, votes
from bastion.core.errors import InvariantViolation, ProtocolError
from bastion.core.messages import (
    MAX_DESCRIPTION_CHARS, MAX_REASON_CHARS, MAX_TITLE_CHARS, Action, CancelProposal, DelistMarket, Execute,
    GuardianVeto, InsuranceTransfer, ListMarket, Queue, SetCouncil, SetFeeParams, SetGovernanceParams, SetGuardian,
    SetLiquidationParams, SetListingParams, SetLiquidityTier, SetMarketParams, SetOracleOperators, SetOrderLimits,
    SetStewardBounds, StartRollout, SubmitProposal, TreasurySpend, UpgradeIsolatedToCross, Vote, canonical_action,
)
from bastion.core.params import RISK_CLASSES, GovernanceParams, GovernanceTier, OrderLimitParams, open_order_limit
from bastion.core.state import (
    ACTIVE, MAX_ORDER_LOTS, PAUSED, REDUCE_ONLY, ParamHistoryEntry, ParamSource, Proposal, State,
)
from bastion.core.units import (
    MAX_INTEGER_DIGITS, MS_PER_S, PPM, format_decimal, format_ppm, parse_decimal, parse_digits, parse_ppm, parse_usdc,
)

Events = list[dict]
Change = tuple[str, Any, Any, str]        # (dotted parameter name, old value, new value, risk class)

RISK_REDUCING, NEUTRAL, RISK_INCREASING, CRITICAL = RISK_CLASSES
FINAL_SETTLEMENT: Final = "final_settlement"
VOTE_OPTIONS: Final = ("yes", "no", "abstain", "veto")
MAX_SWING_EXTENSIONS: Final = 10                # cap of the governed max_swing_extensions

PENDING, ACTIVE_VOTE, DEFEATED, VETOED, SUCCEEDED = "pending", "active", "defeated", "vetoed", "succeeded"
QUEUED, EXECUTED, EXPIRED, CANCELED = "queued", "executed", "expired", "canceled"
VETOED_BY_GUARDIAN = "vetoed_by_guardian"
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    PENDING: frozenset({ACTIVE_VOTE, CANCELED}),
    ACTIVE_VOTE: frozenset({DEFEATED, VETOED, SUCCEEDED, CANCELED}),
    SUCCEEDED: frozenset({QUEUED, CANCELED, VETOED_BY_GUARDIAN}),
    QUEUED: frozenset({EXECUTED, EXPIRED, CANCELED, VETOED_BY_GUARDIAN}),
    DEFEATED: frozenset(), VETOED: frozenset(), EXECUTED: frozenset(), EXPIRED: frozenset(), CANCELED: frozenset(),
    VETOED_BY_GUARDIAN: frozenset(),
}
_STATUS_RANK: Final = {PAUSED: 0, REDUCE_ONLY: 1, ACTIVE: 2}  # a more active market takes more risk
_NO_CAP: Final = 1 << 256


# --------------------------------------------------------------------------------------- parameters
def parse_governance_params(obj: Any, base: GovernanceParams, path: str) -> GovernanceParams:
    """A (partial) genesis ``governance`` section merged over ``base``; the same parser validates
    genesis and ``set_governance_params``. Errors name the field path."""
    result = copy.deepcopy(base)
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_field", f"{path} must be an object", field=path)
    known = {"voting_delay_blocks", "proposal_threshold", "min_deposit", "execution_window_s", "veto_threshold",
             "late_quorum_extension_blocks", "max_swing_extensions", "proposal_fee", "max_live_proposals", "max_rollout_steps", "guardian_max_pause_s", "guardian_unpause_grace_s",
             "attestation_max_age_s", "stress", "tiers"}
    for key in sorted(set(obj) - known):
        raise ProtocolError("unknown_field", f"{path} has no field {key!r}", field=f"{path}.{key}")
    if "stress" in obj:
        result = parse_stress_thresholds(obj["stress"], result, f"{path}.stress")
    if "voting_delay_blocks" in obj:
        result.voting_delay_blocks = _count(obj["voting_delay_blocks"], f"{path}.voting_delay_blocks", minimum=0)
    if "late_quorum_extension_blocks" in obj:
        result.late_quorum_extension_blocks = _count(obj["late_quorum_extension_blocks"],
                                                     f"{path}.late_quorum_extension_blocks", minimum=0)
    if "max_swing_extensions" in obj:
        result.max_swing_extensions = _count(obj["max_swing_extensions"], f"{path}.max_swing_extensions", minimum=0)
        if result.max_swing_extensions > MAX_SWING_EXTENSIONS:
            raise ProtocolError("invalid_field", f"{path}.max_swing_extensions must be at most {MAX_SWING_EXTENSIONS}",
                                field=f"{path}.max_swing_extensions")
    if "max_live_proposals" in obj:
        result.max_live_proposals = _count(obj["max_live_proposals"], f"{path}.max_live_proposals", minimum=1)
    if "proposal_fee" in obj:
        result.proposal_fee_bgov = parse_decimal(obj["proposal_fee"], votes.BGOV_DECIMALS, field=f"{path}.proposal_fee")
    if "max_rollout_steps" in obj:
        result.max_rollout_steps = _count(obj["max_rollout_steps"], f"{path}.max_rollout_steps", minimum=1)
    if "execution_window_s" in obj:
        result.execution_window_ms = _count(obj["execution_window_s"], f"{path}.execution_window_s",
                                            minimum=1) * MS_PER_S
    if "attestation_max_age_s" in obj:
        result.attestation_max_age_ms = _count(obj["attestation_max_age_s"], f"{path}.attestation_max_age_s",
                                               minimum=1) * MS_PER_S
    if "proposal_threshold" in obj:
        result.proposal_threshold_bgov = parse_decimal(obj["proposal_threshold"], votes.BGOV_DECIMALS,
                                                       field=f"{path}.proposal_threshold")
    if "min_deposit" in obj:
        result.min_deposit_bgov = parse_decimal(obj["min_deposit"], votes.BGOV_DECIMALS, field=f"{path}.min_deposit")
    if "veto_threshold" in obj:
        result.veto_threshold_numerator, result.veto_threshold_denominator = _fraction(
            obj["veto_threshold"], f"{path}.veto_threshold")
    if "guardian_max_pause_s" in obj:
        result.guardian_max_pause_ms = _count(obj["guardian_max_pause_s"], f"{path}.guardian_max_pause_s",
                                              minimum=1) * MS_PER_S
    if "guardian_unpause_grace_s" in obj:
        result.guardian_unpause_grace_ms = _count(obj["guardian_unpause_grace_s"], f"{path}.guardian_unpause_grace_s",
                                                  minimum=0) * MS_PER_S
    guardian.check_grace_within_max_pause(result.guardian_max_pause_ms, result.guardian_unpause_grace_ms, path)
    tiers = obj.get("tiers", {})
    if not isinstance(tiers, dict):
        raise ProtocolError("invalid_field", f"{path}.tiers must be an object", field=f"{path}.tiers")
    for name, tier_obj in tiers.items():
        tpath = f"{path}.tiers.{name}"
        if name not in RISK_CLASSES:
            raise ProtocolError("unknown_field", f"{tpath}: not a risk class {RISK_CLASSES}", field=tpath)
        if not isinstance(tier_obj, dict):
            raise ProtocolError("invalid_field", f"{tpath} must be an object", field=tpath)
        tier = result.tiers[name]
        for key in sorted(set(tier_obj) - {"quorum", "approval_threshold", "voting_period_blocks", "timelock_s",
                                          "min_holding_age_blocks"}):
            raise ProtocolError("unknown_field", f"{tpath} has no field {key!r}", field=f"{tpath}.{key}")
        if "quorum" in tier_obj:
            tier.quorum_ppm = _ratio(tier_obj["quorum"], f"{tpath}.quorum")
        if "approval_threshold" in tier_obj:
            tier.approval_threshold_ppm = _ratio(tier_obj["approval_threshold"], f"{tpath}.approval_threshold")
            if tier.approval_threshold_ppm >= PPM:
                raise ProtocolError("invalid_field", f"{tpath}.approval_threshold must be below 1",
                                    field=f"{tpath}.approval_threshold")
        if "voting_period_blocks" in tier_obj:
            tier.voting_period_blocks = _count(tier_obj["voting_period_blocks"], f"{tpath}.voting_period_blocks",
                                               minimum=1)
        if "timelock_s" in tier_obj:
            tier.timelock_ms = _count(tier_obj["timelock_s"], f"{tpath}.timelock_s", minimum=0) * MS_PER_S
        if "min_holding_age_blocks" in tier_obj:
            tier.min_holding_age_blocks = _count(tier_obj["min_holding_age_blocks"],
                                                 f"{tpath}.min_holding_age_blocks", minimum=0)
    check_tiers_ordered(result, path)
    shortest = min(tier.voting_period_blocks for tier in result.tiers.values())
    if result.late_quorum_extension_blocks > shortest:  # bounded (OpenZeppelin PreventLateQuorum, LQ-05)
        raise ProtocolError("invalid_field", f"{path}.late_quorum_extension_blocks must be at most the shortest "
                            f"voting period ({shortest} blocks)", field=f"{path}.late_quorum_extension_blocks")
    return result


# The ``stress`` section: its keys and the ``GovernanceParams`` attribute (ppm) each one sets
STRESS_THRESHOLDS: Final = {"max_depletion_probability": "stress_max_depletion_probability_ppm",
                            "max_var99_loss_of_fund": "stress_max_var99_loss_ppm_of_fund",
                            "max_es99_loss_of_fund": "stress_max_es99_loss_ppm_of_fund"}


def parse_stress_thresholds(obj: Any, base: GovernanceParams, path: str) -> GovernanceParams:
    """The ``stress`` section (the stress gate's verdict thresholds, ``bastion.stress.report``) merged
    over ``base``: decimal strings, the depletion probability in [0, 1], the loss limits as
    non-negative shares of the total insurance funds (above 1 allowed). ``bastion stress
    --thresholds`` files take the same form."""
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_field", f"{path} must be an object", field=path)
    for key in sorted(set(obj) - set(STRESS_THRESHOLDS)):
        raise ProtocolError("unknown_field", f"{path} has no field {key!r} (it takes {sorted(STRESS_THRESHOLDS)})",
                            field=f"{path}.{key}")
    result = copy.deepcopy(base)
    for key, attribute in STRESS_THRESHOLDS.items():
        if key in obj:
            field = f"{path}.{key}"
            setattr(result, attribute, _ratio(obj[key], field) if key == "max_depletion_probability"
                    else parse_ppm(obj[key], field=field))
    return result


def check_tiers_ordered(params: GovernanceParams, path: str) -> None:
    """A higher risk class is never laxer than a lower one, in any rule (Aave levels)."""
    for lower, higher in zip(RISK_CLASSES, RISK_CLASSES[1:]):
        for spec in fields(GovernanceTier):
            if getattr(params.tiers[higher], spec.name) < getattr(params.tiers[lower], spec.name):
                raise ProtocolError("laxer_higher_tier", f"{path}.tiers.{higher}.{spec.name} is laxer than "
                                    f"{lower}'s", field=f"{path}.tiers.{higher}.{spec.name}")


def format_governance_params(params: GovernanceParams) -> dict[str, Any]:
    """The genesis form of ``params`` (``bastion scenario defaults``, ``describe_state``)."""
    return {
        "voting_delay_blocks": params.voting_delay_blocks,
        "proposal_threshold": format_decimal(params.proposal_threshold_bgov, votes.BGOV_DECIMALS),
        "min_deposit": format_decimal(params.min_deposit_bgov, votes.BGOV_DECIMALS),
        "execution_window_s": params.execution_window_ms // MS_PER_S,
        "veto_threshold": f"{params.veto_threshold_numerator}/{params.veto_threshold_denominator}",
        "late_quorum_extension_blocks": params.late_quorum_extension_blocks,
        "max_swing_extensions": params.max_swing_extensions,
        "proposal_fee": format_decimal(params.proposal_fee_bgov, votes.BGOV_DECIMALS),
        "max_live_proposals": params.max_live_proposals,
        "max_rollout_steps": params.max_rollout_steps,
        "guardian_max_pause_s": params.guardian_max_pause_ms // MS_PER_S,
        "guardian_unpause_grace_s": params.guardian_unpause_grace_ms // MS_PER_S,
        "attestation_max_age_s": params.attestation_max_age_ms // MS_PER_S,
        "stress": {key: format_ppm(getattr(params, attribute)) for key, attribute in STRESS_THRESHOLDS.items()},
        "tiers": {name: {"quorum": format_ppm(t.quorum_ppm), "approval_threshold": format_ppm(t.approval_threshold_ppm),
                         "voting_period_blocks": t.voting_period_blocks, "timelock_s": t.timelock_ms // MS_PER_S,
                         "min_holding_age_blocks": t.min_holding_age_blocks}
                  for name, t in ((n, params.tiers[n]) for n in RISK_CLASSES)},
    }


def _count(value: Any, field: str, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ProtocolError("invalid_field", f"{field} must be an integer >= {minimum}, got {value!r}", field=field)
    return value


def _ratio(value: Any, field: str) -> int:
    ppm = parse_ppm(value, field=field)
    if ppm > PPM:
        raise ProtocolError("invalid_field", f"{field} must be in [0, 1]", field=field)
    return ppm


def _fraction(value: Any, field: str) -> tuple[int, int]:
    """``"1/3"``: a ratio in (0, 1) as numerator and denominator (exact, no rounding)."""
    parts = value.split("/") if isinstance(value, str) and len(value) <= 2 * MAX_INTEGER_DIGITS + 1 else []
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ProtocolError("invalid_field", f"{field} must be a fraction like \"1/3\", got {value!r:.80}",
                            field=field)
    numerator, denominator = parse_digits(parts[0], field=field), parse_digits(parts[1], field=field)
    if not 0 < numerator < denominator:
        raise ProtocolError("invalid_field", f"{field} must be strictly between 0 and 1", field=field)
    return numerator, denominator


# --------------------------------------------------------------------------------------- actions
def compare_risk(old: int, new: int, *, riskier_when_higher: bool) -> str:
    if new == old:
        return NEUTRAL
    return RISK_INCREASING if (new > old) == riskier_when_higher else RISK_REDUCING


def strictest(classes: list[str]) -> str:
    """The strictest class of some changes. ``neutral`` means "no change", so it counts only when
    nothing changes: raising one margin and leaving another as it is reduces risk."""
    changed = [c for c in classes if c != NEUTRAL]
    return max(changed, key=RISK_CLASSES.index) if changed else NEUTRAL


def _market(state: State, ticker: str) -> Any:
    market = state.markets.get(ticker)
    if market is None:
        raise ProtocolError("unknown_market", f"unknown market {ticker!r}", field="market")
    if market.status in (FINAL_SETTLEMENT, "settled"):
        raise ProtocolError("market_delisted", f"{ticker} is delisted ({market.status})", field="market")
    return market


def _caps(tier: Any) -> tuple[int, int]:
    """Open-interest caps as compared: an upper cap of 0 means margins never scale up, as if both
    caps were infinite."""
    if tier.oi_upper_cap_usdc == 0:
        return _NO_CAP, _NO_CAP
    return tier.oi_lower_cap_usdc, tier.oi_upper_cap_usdc


def _tier_risk(old: Any, new: Any) -> str:
    """Moving to a tier (or changing one) with a lower margin or a higher open-interest cap (margins
    start rising later) is riskier. The maintenance margin compared is the product IMF x fraction
    (section 4), not the fraction alone: 5% x 0.6 = 3% -> 10% x 0.5 = 5% raises both margins."""
    (old_lower, old_upper), (new_lower, new_upper) = _caps(old), _caps(new)
    return strictest([
        compare_risk(old.initial_margin_ppm, new.initial_margin_ppm, riskier_when_higher=False),
        compare_risk(old.initial_margin_ppm * old.maintenance_fraction_ppm,
                     new.initial_margin_ppm * new.maintenance_fraction_ppm, riskier_when_higher=False),
        compare_risk(old_lower, new_lower, riskier_when_higher=True),
        compare_risk(old_upper, new_upper, riskier_when_higher=True),
    ])


def _positive(value: int, field: str) -> int:
    if value <= 0:
        raise ProtocolError("non_positive_value", f"{field} must be positive", field=field)
    return value


def compute_action_changes(state: State, action: Action) -> list[Change]:
    """Validate ``action`` against the current state and return its changes (raises ProtocolError).
    Run at submission and again at execution."""
    changes: list[Change] = []
    match action:
        case SetMarketParams():
            market = _market(state, action.market)
            prefix = f"markets.{market.ticker}."
            if action.liquidity_tier is not None:
                tier = state.tiers.get(action.liquidity_tier)
                if tier is None:
                    raise ProtocolError("unknown_liquidity_tier", f"no liquidity tier {action.liquidity_tier}",
                                        field="liquidity_tier")
                changes.append((prefix + "tier_id", market.tier_id, tier.tier_id,
                                _tier_risk(state.tiers[market.tier_id], tier)))
            if action.max_open_interest is not None:
                lots = _positive(parse_decimal(action.max_open_interest, market.size_decimals,
                                               field="max_open_interest"), "max_open_interest")
                changes.append((prefix + "max_open_interest_lots", market.max_open_interest_lots, lots,
                                compare_risk(market.max_open_interest_lots, lots, riskier_when_higher=True)))
            maker = market.maker_fee_ppm if action.maker_fee is None else parse_ppm(action.maker_fee, field="maker_fee",
                                                                                    signed=True)
            taker = market.taker_fee_ppm if action.taker_fee is None else parse_ppm(action.taker_fee, field="taker_fee",
                                                                                    signed=True)
            if taker < 0 or taker + maker < 0 or taker > PPM or maker > PPM:
                raise ProtocolError("invalid_fees", "fees must be at most 1, the taker fee non-negative and a maker "
                                    "rebate at most the taker fee", field="maker_fee")
            if action.maker_fee is not None:
                changes.append((prefix + "maker_fee_ppm", market.maker_fee_ppm, maker,
                                compare_risk(market.maker_fee_ppm, maker, riskier_when_higher=False)))
            if action.taker_fee is not None:
                changes.append((prefix + "taker_fee_ppm", market.taker_fee_ppm, taker,
                                compare_risk(market.taker_fee_ppm, taker, riskier_when_higher=False)))
            if action.min_order_size is not None:
                lots = _positive(parse_decimal(action.min_order_size, market.size_decimals, field="min_order_size"),
                                 "min_order_size")
                changes.append((prefix + "min_order_lots", market.min_order_lots, lots,
                                compare_risk(market.min_order_lots, lots, riskier_when_higher=False)))
            if action.max_order_size is not None or action.min_order_size is not None:
                # the bounds stay ordered: min_order_size <= max_order_size <= MAX_ORDER_LOTS
                smallest = market.min_order_lots if action.min_order_size is None else parse_decimal(
                    action.min_order_size, market.size_decimals, field="min_order_size")
                largest = market.max_order_lots if action.max_order_size is None else parse_decimal(
                    action.max_order_size, market.size_decimals, field="max_order_size")
                if not smallest <= largest <= MAX_ORDER_LOTS:
                    raise ProtocolError("invalid_field", "max_order_size must be at least min_order_size and at most "
                                        f"{MAX_ORDER_LOTS} lots", field="max_order_size")
            if action.max_order_size is not None:
                lots = _positive(parse_decimal(action.max_order_size, market.size_decimals, field="max_order_size"),
                                 "max_order_size")
                changes.append((prefix + "max_order_lots", market.max_order_lots, lots,
                                compare_risk(market.max_order_lots, lots, riskier_when_higher=True)))
            if action.status is not None:
                if action.status not in _STATUS_RANK:
                    raise ProtocolError("invalid_status", f"status must be one of {sorted(_STATUS_RANK)} "
                                        "(delist_market for final settlement)", field="status")
                changes.append((prefix + "status", market.status, action.status,
                                compare_risk(_STATUS_RANK[market.status], _STATUS_RANK[action.status],
                                             riskier_when_higher=True)))
            changes.extend(actions.compute_market_oracle_changes(market, action))
        case SetLiquidityTier():
            old = state.tiers.get(action.tier)
            if old is None:
                raise ProtocolError("unknown_liquidity_tier", f"no liquidity tier {action.tier}", field="tier")
            new = copy.copy(old)
            if action.initial_margin is not None:
                new.initial_margin_ppm = parse_ppm(action.initial_margin, field="initial_margin")
            if action.maintenance_fraction is not None:
                new.maintenance_fraction_ppm = parse_ppm(action.maintenance_fraction, field="maintenance_fraction")
            if action.oi_lower_cap is not None:
                new.oi_lower_cap_usdc = parse_usdc(action.oi_lower_cap, field="oi_lower_cap")
            if action.oi_upper_cap is not None:
                new.oi_upper_cap_usdc = parse_usdc(action.oi_upper_cap, field="oi_upper_cap")
            if not 0 < new.initial_margin_ppm <= PPM or new.maintenance_fraction_ppm > PPM:
                raise ProtocolError("invalid_tier", "initial_margin must be in (0, 1] and maintenance_fraction in "
                                    "[0, 1]", field="initial_margin")
            if new.oi_upper_cap_usdc and new.oi_upper_cap_usdc <= new.oi_lower_cap_usdc:
                raise ProtocolError("invalid_tier", "oi_upper_cap must exceed oi_lower_cap (or be 0 for no cap)",
                                    field="oi_upper_cap")
            prefix = f"liquidity_tiers.{old.tier_id}."
            # the fields act together (the maintenance margin is IMF x fraction), so every changed field
            # carries the class of the whole new tier against the old one, not of itself alone
            risk = _tier_risk(old, new)
            for attr in ("initial_margin_ppm", "maintenance_fraction_ppm", "oi_lower_cap_usdc", "oi_upper_cap_usdc"):
                if getattr(old, attr) != getattr(new, attr):
                    changes.append((prefix + attr, getattr(old, attr), getattr(new, attr), risk))
        case SetOrderLimits():
            changes.extend(compute_order_limits_changes(state, action))
        case SetFeeParams():
            share = _ratio(action.insurance_share, "insurance_share")
            changes.append(("fees.insurance_share_ppm", state.fees.insurance_share_ppm, share,
                            compare_risk(state.fees.insurance_share_ppm, share, riskier_when_higher=False)))
        case (SetLiquidationParams() | ListMarket() | SetListingParams() | SetOracleOperators() | TreasurySpend()
              | InsuranceTransfer() | UpgradeIsolatedToCross()):
            changes.extend(actions.compute_changes(state, action))
        case SetGovernanceParams():
            new_params = parse_governance_params(action.params, state.governance, "params")
            old_doc, new_doc = _flatten(state.governance), _flatten(new_params)
            changes.extend(("governance." + name, old_doc[name], value, CRITICAL) for name, value in new_doc.items())
        case DelistMarket():
            market = _market(state, action.market)
            changes.append((f"markets.{market.ticker}.status", market.status, FINAL_SETTLEMENT, RISK_REDUCING))
        case StartRollout():
            changes.extend(rollout.compute_start_rollout_changes(state, action))
        case SetGuardian():
            changes.extend(guardian.compute_set_guardian_changes(state, action))
        case SetCouncil():
            changes.extend(council.compute_set_council_changes(state, action))
        case SetStewardBounds():
            changes.extend(council.compute_steward_bounds_changes(state, action))
        case _:
            raise InvariantViolation(f"unhandled action {action!r}")
    return changes


def compute_order_limits_changes(state: State, action: SetOrderLimits) -> list[Change]:
    """``set_order_limits``: validated by the genesis parser (``orders.parse_order_limits``); looser
    limits (more open orders for some equity, a lower minimum notional) increase risk."""
    section = {name: value for name, value in (("open_order_tiers", action.open_order_tiers),
                                               ("max_open_orders", action.max_open_orders),
                                               ("min_order_notional", action.min_order_notional))
               if value is not None}
    old = state.order_limits
    new = orders.parse_order_limits(section, old, "set_order_limits")
    changes: list[Change] = []
    if action.open_order_tiers is not None:
        # compare the limits at every step of either list: the limit is constant between steps
        points = sorted({0, *(equity for equity, _ in old.open_order_tiers), *(e for e, _ in new.open_order_tiers)})
        before = OrderLimitParams(old.open_order_tiers, _NO_CAP, 0)   # the tiers alone, without the hard maximum
        after = OrderLimitParams(new.open_order_tiers, _NO_CAP, 0)
        classes = [compare_risk(open_order_limit(before, e)[0], open_order_limit(after, e)[0], riskier_when_higher=True)
                   for e in points]
        changes.append(("order_limits.open_order_tiers", [list(step) for step in old.open_order_tiers],
                        new.open_order_tiers, strictest(classes)))
    if action.max_open_orders is not None:
        changes.append(("order_limits.max_open_orders", old.max_open_orders, new.max_open_orders,
                        compare_risk(old.max_open_orders, new.max_open_orders, riskier_when_higher=True)))
    if action.min_order_notional is not None:
        changes.append(("order_limits.min_order_notional_usdc", old.min_order_notional_usdc,
                        new.min_order_notional_usdc,
                        compare_risk(old.min_order_notional_usdc, new.min_order_notional_usdc,
                                     riskier_when_higher=False)))
    return changes


def _flatten(params: GovernanceParams) -> dict[str, int]:
    flat = {f.name: getattr(params, f.name) for f in fields(params) if f.name != "tiers"}
    for name in RISK_CLASSES:
        tier = params.tiers[name]
        flat.update({f"tiers.{name}.{f.name}": getattr(tier, f.name) for f in fields(tier)})
    return flat


def compute_proposal_changes(state: State, proposal_actions: tuple) -> tuple[list[Change], str]:
    """Every action validated against the current state (none applied), and the strictest class."""
    changes = [change for action in proposal_actions for change in compute_action_changes(state, action)]
    rollout.check_rollout_conflicts(changes)
    actions.check_proposal_changes(state, changes)
    return changes, strictest([change[3] for change in changes])


def change_param(state: State, name: str, old: Any, new: Any, source: ParamSource, events: Events) -> None:
    """THE way a governed parameter changes (proposal execution, council steward change, rollout
    step, ...): set it, append it to ``state.param_history`` and emit ``param_changed``. A change
    to the same value is applied (harmless) but neither recorded nor announced. The caller bumps
    ``state.params_epoch`` once per batch of changes. An operation (a listing, a money move:
    ``actions.is_operation``) is applied by ``actions.apply_operation`` with its own event instead.
    A change from outside a rollout halts the active rollout of the same parameter
    (``bastion.core.rollout``)."""
    if actions.is_operation(name):
        actions.apply_operation(state, name, new, source, events)
        return
    if source.kind != "rollout":
        rollout.halt_superseded_rollouts(state, name, source, events)
    apply_change(state, name, new)
    if old == new:
        return
    entry = ParamHistoryEntry(name=name, old=old, new=new, height=state.height, source=source)
    state.param_history.append(entry)
    state.touch(("param_history", len(state.param_history) - 1))
    # the indexer's shape: ``proposal_id`` (None for changes without a proposal), and the source
    events.append({"type": "param_changed", "name": name, "value": new, "old": old, "height": state.height,
                   "source": source.kind, "proposal_id": source.ref if source.kind == "proposal" else None,
                   "proposal_number": source.number if source.kind == "proposal" else None,
                   **({} if source.kind == "proposal" else {"ref": source.ref})})


def apply_change(state: State, name: str, value: Any) -> None:
    """Set one governed parameter by its dotted name and touch its leaf."""
    group, _, rest = name.partition(".")
    if group == "markets" and rest.rsplit(".", 2)[-2] == "oracle":   # tickers are upper case
        ticker, _, attr = rest.rsplit(".", 2)
        target: Any = state.markets[ticker].oracle_params
        key: tuple = state.markets[ticker].key
    elif group == "markets":
        ticker, attr = rest.rsplit(".", 1)
        target, key = state.markets[ticker], state.markets[ticker].key
    elif group == "liquidity_tiers":
        tier_id, attr = rest.split(".")
        target, key = state.tiers[int(tier_id)], ("global",)
    elif group in ("fees", "liquidation"):
        target, key, attr = getattr(state, group), ("global",), rest
    elif group == "listing":
        target, key, attr = state.listing, ("listing",), rest
    elif group == "order_limits":
        target, key, attr = state.order_limits, ("order_limits",), rest
    elif group == "oracle_operators":
        actions.set_oracle_operators(state, value)
        return
    elif group == "governance" and rest.startswith("tiers."):
        _, tier_name, attr = rest.split(".")
        target, key = state.governance.tiers[tier_name], ("governance",)
    elif group == "governance":
        target, key, attr = state.governance, ("governance",), rest
    elif group == "guardian":
        target, key, attr = state.guardian, ("guardian",), rest
    elif group == "council":
        council.apply_council_change(state, rest, value)
        return
    else:
        raise InvariantViolation(f"unknown parameter {name!r}")
    setattr(target, attr, value)
    state.touch(key)


# --------------------------------------------------------------------------------------- queries
def compute_proposal_id(chain_id: str, proposer: str, height: int, title: str, description: str,
                        actions: tuple) -> str:
    content = {"chain_id": chain_id, "title": title, "description": description, "proposer": proposer,
               "height": height, "actions": [canonical_action(a) for a in actions]}
    data = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hashlib.sha256(data).hexdigest()


def get_proposal(state: State, proposal_id: str) -> Proposal:
    proposal = state.proposals.get(proposal_id)
    if proposal is None:
        raise ProtocolError("unknown_proposal", f"no proposal {proposal_id!r}", field="proposal_id")
    return proposal


def compute_quorum_votes(state: State, proposal: Proposal) -> int:
    """``ceil(total supply at the snapshot * quorum_ppm / 1e6)`` BGOV units of votes."""
    supply = votes.compute_checkpoint_lookup(state.total_supply_checkpoints, proposal.snapshot_height)
    return -((-supply * proposal.rules.quorum_ppm) // PPM)


def get_votes_cast(proposal: Proposal) -> int:
    return proposal.yes + proposal.no + proposal.abstain + proposal.veto


def compute_outcome(state: State, proposal: Proposal) -> str:
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
def set_status(state: State, proposal: Proposal, status: str, events: Events, **details: Any) -> None:
    if status not in TRANSITIONS[proposal.status]:
        raise InvariantViolation(f"proposal {proposal.proposal_id}: {proposal.status} -> {status} is not allowed")
    events.append({"type": "proposal_status", "proposal_id": proposal.proposal_id, "from": proposal.status,
                   "to": status, **details})
    proposal.status = status
    if status not in (ACTIVE_VOTE, SUCCEEDED, QUEUED):
        proposal.closed_height = state.height
    state.touch(("proposal", proposal.proposal_id))


def return_deposit(state: State, proposal: Proposal, events: Events) -> None:
    if proposal.deposit_state != "escrowed":
        return
    proposer, amount = proposal.proposer, proposal.deposit_bgov
    votes.set_balance(state, proposer, votes.get_balance(state, proposer) + amount)
    votes.move_voting_power(state, None, votes.get_delegate(state, proposer), amount, events)
    proposal.deposit_state = "returned"
    state.touch(("proposal", proposal.proposal_id))
    events.append({"type": "deposit_returned", "proposal_id": proposal.proposal_id, "to": proposer, "amount": amount})


def burn_deposit(state: State, proposal: Proposal, events: Events) -> None:
    """The escrowed deposit leaves the supply: a new total-supply checkpoint (past quorums stay exact)."""
    amount = proposal.deposit_bgov
    votes.write_checkpoint(state, state.total_supply_checkpoints, votes.get_total_supply(state) - amount,
                           ("total_supply",))
    proposal.deposit_state = "burned"
    state.touch(("proposal", proposal.proposal_id))
    events.append({"type": "deposit_burned", "proposal_id": proposal.proposal_id, "amount": amount})


def process_proposals(state: State, events: Events) -> None:
    """End-of-block step: start votes, tally ended votes, expire queued proposals past their window."""
    for proposal in state.proposals.values():
        if not TRANSITIONS[proposal.status]:
            continue
        if proposal.status == PENDING and state.height >= proposal.snapshot_height:
            set_status(state, proposal, ACTIVE_VOTE, events)
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
def submit_proposal(state: State, sender: str, msg: SubmitProposal, events: Events) -> dict:
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
    proposal_id = compute_proposal_id(state.chain_id, sender, state.height, msg.title, msg.description, msg.actions)
    if proposal_id in state.proposals:
        raise ProtocolError("duplicate_proposal", "the same proposal was already submitted in this block",
                            field="proposal_id")
    proposal_guards.check_live_proposals(state, sender)
    # OPERATION
    rules = copy.copy(params.tiers[risk_class])
    snapshot = state.height + params.voting_delay_blocks
    proposal = Proposal(proposal_id=proposal_id, number=len(state.proposals) + 1, proposer=sender, title=msg.title, description=msg.description,
                        actions=msg.actions, deposit_bgov=deposit, risk_class=risk_class,
                        submitted_height=state.height, snapshot_height=snapshot,
                        deadline_height=snapshot + rules.voting_period_blocks, rules=rules, fee_bgov=fee)
    state.proposals[proposal_id] = proposal
    state.touch(("proposal", proposal_id))
    votes.set_balance(state, sender, balance - deposit)
    events.append({"type": "proposal_submitted", "proposal_id": proposal_id, "number": proposal.number,
                   "proposer": sender,
                   "risk_class": risk_class, "deposit": deposit, "snapshot_height": snapshot,
                   "deadline_height": proposal.deadline_height, "fee": fee})
    votes.move_voting_power(state, votes.get_delegate(state, sender), None, deposit, events)
    proposal_guards.burn_fee(state, sender, fee, events)
    return {"proposal_id": proposal_id, "risk_class": risk_class}


def vote(state: State, sender: str, msg: Vote, events: Events) -> dict:
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
    # OPERATION
    outcome_before = compute_outcome(state, proposal)
    proposal.ballots[sender] = (msg.option, weight, reason)
    setattr(proposal, msg.option, getattr(proposal, msg.option) + weight)
    state.touch(("ballot", proposal.proposal_id, sender))
    state.touch(("proposal", proposal.proposal_id))
    events.append({"type": "vote_cast", "proposal_id": proposal.proposal_id, "voter": sender, "option": msg.option,
                   "weight": weight, "reason": reason})
    if (proposal.quorum_height is None
            and proposal_guards.get_quorum_count(proposal) >= compute_quorum_votes(state, proposal)):
        proposal.quorum_height = state.height
        extension = state.governance.late_quorum_extension_blocks
        if not proposal.extended and state.height + extension > proposal.deadline_height:
            proposal.extended = True
            proposal.deadline_height = state.height + extension
            events.append({"type": "proposal_extended", "proposal_id": proposal.proposal_id,
                           "deadline_height": proposal.deadline_height})
    proposal_guards.extend_on_flip(state, proposal, outcome_before, compute_outcome(state, proposal), events)
    return {"weight": weight}


def queue(state: State, sender: str, msg: Queue, events: Events) -> dict:
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


def execute(state: State, sender: str, msg: Execute, events: Events) -> dict:
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
    gate_event = council.check_stress_gate(state, proposal)
    # OPERATION
    if gate_event is not None:
        events.append(gate_event)
    source = ParamSource("proposal", proposal.proposal_id, proposal.number)
    rollout.start_rollouts(state, proposal, events)
    for name, old, new, _ in changes:
        if not rollout.is_planned_change(name):
            change_param(state, name, old, new, source, events)
    state.params_epoch += 1
    state.touch(("global",))
    set_status(state, proposal, EXECUTED, events)
    return {}


def cancel_proposal(state: State, sender: str, msg: CancelProposal, events: Events) -> dict:
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


def guardian_veto(state: State, sender: str, msg: GuardianVeto, events: Events) -> dict:
    """The guardian vetoes a succeeded or queued proposal (module docstring)."""
    # VALIDATION
    guardian.check_guardian(state, sender)
    if not msg.reason:
        raise ProtocolError("reason_required", "a guardian veto needs a reason", field="reason")
    if len(msg.reason) > MAX_REASON_CHARS:
        raise ProtocolError("reason_too_long", f"reason has at most {MAX_REASON_CHARS} characters", field="reason")
    proposal = get_proposal(state, msg.proposal_id)
    if VETOED_BY_GUARDIAN not in TRANSITIONS[proposal.status]:
        raise ProtocolError("proposal_not_vetoable", f"the guardian vetoes only succeeded or queued proposals; this one "
                            f"is {proposal.status}", field="proposal_id", status=proposal.status)
    if all(isinstance(action, SetGuardian) and action.address is None for action in proposal.actions):
        raise ProtocolError("guardian_change_not_vetoable", "the guardian may not veto a proposal that only removes "
                            "the guardian", field="proposal_id")
    # OPERATION
    set_status(state, proposal, VETOED_BY_GUARDIAN, events, by=sender, reason=msg.reason)
    return {}
