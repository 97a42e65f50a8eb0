"""Governance parameters in their genesis form (the genesis ``governance`` section, the
``set_governance_params`` action, ``bastion scenario defaults``, ``bastion stress --thresholds``).

One parser, ``parse_governance_params``, validates genesis and the action alike (errors name the
field path); ``format_governance_params`` is its inverse. The tiers (one per risk class) are never
laxer for a stricter class (``laxer_higher_tier``).
"""
from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any, Final

from bastion.core import guardian, votes
from bastion.core.errors import ProtocolError
from bastion.core.params import RISK_CLASSES, GovernanceParams, GovernanceTier
from bastion.core.units import (
    MAX_INTEGER_DIGITS, MS_PER_S, PPM, format_decimal, format_ppm, format_usdc, parse_decimal, parse_digits, parse_ppm,
    parse_usdc,
)

MAX_SWING_EXTENSIONS: Final = 10                # cap of the governed max_swing_extensions


def parse_governance_params(obj: Any, base: GovernanceParams, path: str) -> GovernanceParams:
    """A (partial) genesis ``governance`` section merged over ``base``; the same parser validates
    genesis and ``set_governance_params``. Errors name the field path."""
    result = copy.deepcopy(base)
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_field", f"{path} must be an object", field=path)
    known = {"voting_delay_blocks", "proposal_threshold", "min_deposit", "execution_window_s", "veto_threshold",
             "late_quorum_extension_blocks", "max_swing_extensions", "proposal_fee", "max_live_proposals",
             "max_rollout_steps", "guardian_max_pause_s", "guardian_unpause_grace_s",
             "attestation_max_age_s", "stress", "tiers", "exposure", "counter_report_bond",
             "counter_report_window_s"}
    for key in sorted(set(obj) - known):
        raise ProtocolError("unknown_field", f"{path} has no field {key!r}", field=f"{path}.{key}")
    if "stress" in obj:
        result = parse_stress_thresholds(obj["stress"], result, f"{path}.stress")
    if "exposure" in obj:
        result = parse_exposure_option(obj["exposure"], result, f"{path}.exposure")
    if "voting_delay_blocks" in obj:
        result.voting_delay_blocks = parse_count(obj["voting_delay_blocks"], f"{path}.voting_delay_blocks", minimum=0)
    if "late_quorum_extension_blocks" in obj:
        result.late_quorum_extension_blocks = parse_count(obj["late_quorum_extension_blocks"],
                                                     f"{path}.late_quorum_extension_blocks", minimum=0)
    if "max_swing_extensions" in obj:
        result.max_swing_extensions = parse_count(obj["max_swing_extensions"], f"{path}.max_swing_extensions",
                                                  minimum=0)
        if result.max_swing_extensions > MAX_SWING_EXTENSIONS:
            raise ProtocolError("invalid_field", f"{path}.max_swing_extensions must be at most {MAX_SWING_EXTENSIONS}",
                                field=f"{path}.max_swing_extensions")
    if "max_live_proposals" in obj:
        result.max_live_proposals = parse_count(obj["max_live_proposals"], f"{path}.max_live_proposals", minimum=1)
    if "proposal_fee" in obj:
        result.proposal_fee_bgov = parse_decimal(obj["proposal_fee"], votes.BGOV_DECIMALS, field=f"{path}.proposal_fee")
    if "max_rollout_steps" in obj:
        result.max_rollout_steps = parse_count(obj["max_rollout_steps"], f"{path}.max_rollout_steps", minimum=1)
    if "execution_window_s" in obj:
        result.execution_window_ms = parse_count(obj["execution_window_s"], f"{path}.execution_window_s",
                                            minimum=1) * MS_PER_S
    if "attestation_max_age_s" in obj:
        result.attestation_max_age_ms = parse_count(obj["attestation_max_age_s"], f"{path}.attestation_max_age_s",
                                               minimum=1) * MS_PER_S
    if "counter_report_bond" in obj:
        result.counter_report_bond_usdc = parse_usdc(obj["counter_report_bond"], field=f"{path}.counter_report_bond")
    if "counter_report_window_s" in obj:
        result.counter_report_window_ms = parse_count(obj["counter_report_window_s"],
                                                      f"{path}.counter_report_window_s", minimum=1) * MS_PER_S
    if "proposal_threshold" in obj:
        result.proposal_threshold_bgov = parse_decimal(obj["proposal_threshold"], votes.BGOV_DECIMALS,
                                                       field=f"{path}.proposal_threshold")
    if "min_deposit" in obj:
        result.min_deposit_bgov = parse_decimal(obj["min_deposit"], votes.BGOV_DECIMALS, field=f"{path}.min_deposit")
    if "veto_threshold" in obj:
        result.veto_threshold_numerator, result.veto_threshold_denominator = parse_fraction(
            obj["veto_threshold"], f"{path}.veto_threshold")
    if "guardian_max_pause_s" in obj:
        result.guardian_max_pause_ms = parse_count(obj["guardian_max_pause_s"], f"{path}.guardian_max_pause_s",
                                              minimum=1) * MS_PER_S
    if "guardian_unpause_grace_s" in obj:
        result.guardian_unpause_grace_ms = parse_count(obj["guardian_unpause_grace_s"],
                                                       f"{path}.guardian_unpause_grace_s",
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
            tier.quorum_ppm = parse_ratio(tier_obj["quorum"], f"{tpath}.quorum")
        if "approval_threshold" in tier_obj:
            tier.approval_threshold_ppm = parse_ratio(tier_obj["approval_threshold"], f"{tpath}.approval_threshold")
            if tier.approval_threshold_ppm >= PPM:
                raise ProtocolError("invalid_field", f"{tpath}.approval_threshold must be below 1",
                                    field=f"{tpath}.approval_threshold")
        if "voting_period_blocks" in tier_obj:
            tier.voting_period_blocks = parse_count(tier_obj["voting_period_blocks"], f"{tpath}.voting_period_blocks",
                                               minimum=1)
        if "timelock_s" in tier_obj:
            tier.timelock_ms = parse_count(tier_obj["timelock_s"], f"{tpath}.timelock_s", minimum=0) * MS_PER_S
        if "min_holding_age_blocks" in tier_obj:
            tier.min_holding_age_blocks = parse_count(tier_obj["min_holding_age_blocks"],
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
                            "max_es99_loss_of_fund": "stress_max_es99_loss_ppm_of_fund",
                            "max_loss_to_traders": "stress_max_loss_to_traders_usdc"}


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
            if key == "max_depletion_probability":
                value = parse_ratio(obj[key], field)
            elif key == "max_loss_to_traders":
                value = parse_usdc(obj[key], field=field)
            else:
                value = parse_ppm(obj[key], field=field)
            setattr(result, attribute, value)
    return result


def parse_exposure_option(obj: Any, base: GovernanceParams, path: str) -> GovernanceParams:
    """The ``exposure`` section (``bastion.core.exposure``, the discount of directly exposed votes in the
    critical tier) merged over ``base``: ``exposed_vote_weight`` a ratio in [0, 1] (1: the option off),
    ``threshold`` a non-negative USDC notional."""
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_field", f"{path} must be an object", field=path)
    for key in sorted(set(obj) - {"exposed_vote_weight", "threshold"}):
        raise ProtocolError("unknown_field", f"{path} has no field {key!r}", field=f"{path}.{key}")
    result = copy.deepcopy(base)
    if "exposed_vote_weight" in obj:
        result.exposed_vote_weight_ppm = parse_ratio(obj["exposed_vote_weight"], f"{path}.exposed_vote_weight")
    if "threshold" in obj:
        result.exposure_threshold_usdc = parse_usdc(obj["threshold"], field=f"{path}.threshold")
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
        "counter_report_bond": format_usdc(params.counter_report_bond_usdc),
        "counter_report_window_s": params.counter_report_window_ms // MS_PER_S,
        "stress": {key: (format_usdc if key == "max_loss_to_traders" else format_ppm)(getattr(params, attribute))
                   for key, attribute in STRESS_THRESHOLDS.items()},
        "exposure": {"exposed_vote_weight": format_ppm(params.exposed_vote_weight_ppm),
                     "threshold": format_usdc(params.exposure_threshold_usdc)},
        "tiers": {name: {"quorum": format_ppm(t.quorum_ppm), "approval_threshold": format_ppm(t.approval_threshold_ppm),
                         "voting_period_blocks": t.voting_period_blocks, "timelock_s": t.timelock_ms // MS_PER_S,
                         "min_holding_age_blocks": t.min_holding_age_blocks}
                  for name, t in ((n, params.tiers[n]) for n in RISK_CLASSES)},
    }


def parse_count(value: Any, field: str, *, minimum: int) -> int:
    """An integer (never a bool) at least ``minimum``; ``invalid_field`` otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ProtocolError("invalid_field", f"{field} must be an integer >= {minimum}, got {value!r}", field=field)
    return value


def parse_ratio(value: Any, field: str) -> int:
    """A decimal ratio in [0, 1] as ppm; ``invalid_field`` (or a decimal code) otherwise."""
    ppm = parse_ppm(value, field=field)
    if ppm > PPM:
        raise ProtocolError("invalid_field", f"{field} must be in [0, 1]", field=field)
    return ppm


def parse_fraction(value: Any, field: str) -> tuple[int, int]:
    """``"1/3"``: a ratio in (0, 1) as numerator and denominator (exact, no rounding)."""
    parts = value.split("/") if isinstance(value, str) and len(value) <= 2 * MAX_INTEGER_DIGITS + 1 else []
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ProtocolError("invalid_field", f"{field} must be a fraction like \"1/3\", got {value!r:.80}",
                            field=field)
    numerator, denominator = parse_digits(parts[0], field=field), parse_digits(parts[1], field=field)
    if not 0 < numerator < denominator:
        raise ProtocolError("invalid_field", f"{field} must be strictly between 0 and 1", field=field)
    return numerator, denominator

