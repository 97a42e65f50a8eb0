"""The one validation of governance actions: ``compute_action_changes(state, action)``.

Actions are a union of frozen dataclasses (``bastion.core.messages.Action``); this module's
``match`` sends each to the function that validates it against the current state and returns its
effects (``bastion.core.governance.changes``: parameter ``Change``s, operations, planned rollouts),
each with its risk class. It runs at submission and again at execution.
``compute_proposal_changes`` validates a whole proposal (every action on the same state, none
applied; then the checks no single action can see) and returns the strictest class.
``apply_effect`` applies one validated effect as execution does: a parameter change first halts a
superseded rollout of the same parameter, then goes through ``changes.change_param``; an operation
through ``actions.apply_operation``.

Adding an action: docs/governance.md, "Adding a governance action".
"""
from __future__ import annotations

import copy
from dataclasses import fields
from typing import Final

from bastion.core import bot_limits, disputes, incidents, maker_rewards, orders, staking, upgrades
from bastion.core.events import Events
from bastion.core.errors import InvariantViolation, ProtocolError
from bastion.core.governance import actions, council_rules, dispute_params, rollout, ui_rules
from bastion.core.governance.changes import (
    CRITICAL, NEUTRAL, NO_CAP, RISK_REDUCING, Change, Effect, ParamGroup, ParamPath, PlannedRollout, change_param,
    compare_risk, compare_tier_risk, strictest,
)
from bastion.core.governance.params_codec import parse_governance_params, parse_ratio
from bastion.core.messages import (
    Action, DelistMarket, InsuranceTransfer, ListMarket, SetCouncil, SetFeeParams, SetGovernanceParams, SetGuardian,
    SetLiquidationParams, SetListingParams, SetLiquidityTier, SetMarketParams, SetOracleOperators, SetOrderLimits,
    SetStewardBounds, StartRollout, TreasurySpend, UpgradeIsolatedToCross, SetBotLimits, SetUiRequirements,
)
from bastion.core.messages import (OpenIncidentProgram, ResolveDispute, SetDisputeParams, SetInsuranceStakingParams,
                                   SetMakerRewardParams)
from bastion.core.messages import CancelUpgrade, ScheduleUpgrade
from bastion.core.params import RISK_CLASSES, GovernanceParams, OrderLimitParams, open_order_limit
from bastion.core.state import ACTIVE, MAX_ORDER_LOTS, PAUSED, REDUCE_ONLY, ParamSource, ScheduledUpgrade, State
from bastion.core.units import PPM, parse_decimal, parse_ppm, parse_usdc


FINAL_SETTLEMENT = actions.FINAL_SETTLEMENT
_STATUS_RANK = {PAUSED: 0, REDUCE_ONLY: 1, ACTIVE: 2}  # a more active market takes more risk


def _positive(value: int, field: str) -> int:
    if value <= 0:
        raise ProtocolError("non_positive_value", f"{field} must be positive", field=field)
    return value


def compute_action_changes(state: State, action: Action) -> list[Effect]:
    """Validate ``action`` against the current state and return its effects (raises ProtocolError:
    the codes of the function each case calls, and here ``unknown_market``, ``market_delisted``,
    ``unknown_liquidity_tier``, ``non_positive_value``, ``invalid_fees``, ``invalid_field``,
    ``invalid_status``, ``invalid_tier`` and the decimal codes). Run at submission and again at
    execution."""
    changes: list[Effect] = []
    match action:
        case SetMarketParams():
            market = actions.get_live_market(state, action.market)

            def path(attr: str) -> ParamPath:
                return ParamPath(ParamGroup.MARKET, market.ticker, attr)
            if action.liquidity_tier is not None:
                tier = state.tiers.get(action.liquidity_tier)
                if tier is None:
                    raise ProtocolError("unknown_liquidity_tier", f"no liquidity tier {action.liquidity_tier}",
                                        field="liquidity_tier")
                changes.append(Change(path("tier_id"), market.tier_id, tier.tier_id,
                                compare_tier_risk(state.tiers[market.tier_id], tier)))
            if action.max_open_interest is not None:
                lots = _positive(parse_decimal(action.max_open_interest, market.size_decimals,
                                               field="max_open_interest"), "max_open_interest")
                changes.append(Change(path("max_open_interest_lots"), market.max_open_interest_lots, lots,
                                compare_risk(market.max_open_interest_lots, lots, riskier_when_higher=True)))
            maker = market.maker_fee_ppm if action.maker_fee is None else parse_ppm(action.maker_fee, field="maker_fee",
                                                                                    signed=True)
            taker = market.taker_fee_ppm if action.taker_fee is None else parse_ppm(action.taker_fee, field="taker_fee",
                                                                                    signed=True)
            if taker < 0 or taker + maker < 0 or taker > PPM or maker > PPM:
                raise ProtocolError("invalid_fees", "fees must be at most 1, the taker fee non-negative and a maker "
                                    "rebate at most the taker fee", field="maker_fee")
            if action.maker_fee is not None:
                changes.append(Change(path("maker_fee_ppm"), market.maker_fee_ppm, maker,
                                compare_risk(market.maker_fee_ppm, maker, riskier_when_higher=False)))
            if action.taker_fee is not None:
                changes.append(Change(path("taker_fee_ppm"), market.taker_fee_ppm, taker,
                                compare_risk(market.taker_fee_ppm, taker, riskier_when_higher=False)))
            if action.min_order_size is not None:
                lots = _positive(parse_decimal(action.min_order_size, market.size_decimals, field="min_order_size"),
                                 "min_order_size")
                changes.append(Change(path("min_order_lots"), market.min_order_lots, lots,
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
                changes.append(Change(path("max_order_lots"), market.max_order_lots, lots,
                                compare_risk(market.max_order_lots, lots, riskier_when_higher=True)))
            if action.status is not None:
                if action.status not in _STATUS_RANK:
                    raise ProtocolError("invalid_status", f"status must be one of {sorted(_STATUS_RANK)} "
                                        "(delist_market for final settlement)", field="status")
                changes.append(Change(path("status"), market.status, action.status,
                                compare_risk(_STATUS_RANK[market.status], _STATUS_RANK[action.status],
                                             riskier_when_higher=True)))
            changes.extend(actions.compute_market_oracle_changes(market, action))
            if action.cross_margin_cap is not None:   # isolated-to-cross in steps (core.cross_promotion)
                if not market.isolated_only:
                    raise ProtocolError("market_not_isolated", f"{market.ticker} already trades in the cross pool",
                                        field="cross_margin_cap")
                cap = parse_usdc(action.cross_margin_cap, field="cross_margin_cap")
                changes.append(Change(path("cross_margin_cap_usdc"), market.cross_margin_cap_usdc, cap,
                                      compare_risk(market.cross_margin_cap_usdc, cap, riskier_when_higher=True)))
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
            # the fields act together (the maintenance margin is IMF x fraction), so every changed field
            # carries the class of the whole new tier against the old one, not of itself alone
            risk = compare_tier_risk(old, new)
            for attr in ("initial_margin_ppm", "maintenance_fraction_ppm", "oi_lower_cap_usdc", "oi_upper_cap_usdc"):
                if getattr(old, attr) != getattr(new, attr):
                    changes.append(Change(ParamPath(ParamGroup.TIER, str(old.tier_id), attr), getattr(old, attr),
                                          getattr(new, attr), risk))
        case SetOrderLimits():
            changes.extend(compute_order_limits_changes(state, action))
        case SetFeeParams():
            share = parse_ratio(action.insurance_share, "insurance_share")
            changes.append(Change(ParamPath(ParamGroup.FEES, "", "insurance_share_ppm"),
                                  state.fees.insurance_share_ppm, share,
                            compare_risk(state.fees.insurance_share_ppm, share, riskier_when_higher=False)))
        case SetLiquidationParams():
            changes.extend(actions.compute_numeric_changes(ParamGroup.LIQUIDATION, "", state.liquidation, action,
                                                           actions.LIQUIDATION_FIELDS))
        case ListMarket():
            changes.extend(actions.compute_list_market_changes(state, action))
        case SetListingParams():
            changes.extend(actions.compute_numeric_changes(ParamGroup.LISTING, "", state.listing, action,
                                                           actions.LISTING_FIELDS))
        case SetOracleOperators():
            changes.extend(actions.compute_oracle_operators_changes(state, action))
        case TreasurySpend():
            changes.extend(actions.compute_treasury_spend_changes(state, action))
        case InsuranceTransfer():
            changes.extend(actions.compute_insurance_transfer_changes(state, action))
        case UpgradeIsolatedToCross():
            changes.extend(actions.compute_upgrade_changes(state, action))
        case SetGovernanceParams():
            new_params = parse_governance_params(action.params, state.governance, "params")
            old_doc, new_doc = _flatten(state.governance), _flatten(new_params)
            changes.extend(Change(path, old_doc[path], value, CRITICAL) for path, value in new_doc.items())
        case DelistMarket():
            market = actions.get_live_market(state, action.market)
            changes.append(Change(ParamPath(ParamGroup.MARKET, market.ticker, "status"), market.status,
                                  FINAL_SETTLEMENT, RISK_REDUCING))
        case StartRollout():
            changes.extend(rollout.compute_start_rollout_changes(state, action, compute_action_changes))
        case SetGuardian():
            changes.extend(actions.compute_set_guardian_changes(state, action))
        case SetCouncil():
            changes.extend(council_rules.compute_set_council_changes(state, action))
        case SetStewardBounds():
            changes.extend(council_rules.compute_steward_bounds_changes(state, action))
        case SetBotLimits():
            changes.extend(compute_bot_limits_changes(state, action))
        case SetUiRequirements():
            changes.extend(ui_rules.compute_ui_requirements_changes(state, action))
        case SetInsuranceStakingParams():
            changes.extend(compute_insurance_staking_changes(state, action))
        case ResolveDispute():
            changes.extend(disputes.compute_resolution(state, action))
        case OpenIncidentProgram():
            changes.extend(incidents.compute_opening(state, action))
        case SetDisputeParams():
            changes.extend(dispute_params.compute_dispute_params_changes(state, action))
        case SetMakerRewardParams():
            changes.extend(compute_maker_reward_changes(state, action))
        case ScheduleUpgrade():
            changes.extend(compute_upgrade_plan_changes(state, upgrades.parse_schedule_upgrade(state, action)))
        case CancelUpgrade():
            changes.extend(compute_upgrade_plan_changes(state, upgrades.parse_cancel_upgrade(state, action)))
        case _:
            raise InvariantViolation(f"unhandled action {action!r}")
    return changes


# the fields of set_insurance_staking_params -> the parameter, and whether a higher value is riskier
# (a shorter cooldown lets stakers leave before a loss; a lower minimum stake, target or replenish share
# leaves the fund thinner); the stakers' fee share and the loss mode only split the fund: neutral
_STAKING_PARAMS: Final = (("cooldown_ms", "cooldown_ms", False), ("staker_fee_share", "staker_fee_share_ppm", None),
                          ("loss_mode", "loss_mode", None), ("min_stake", "min_stake_usdc", False),
                          ("target_oi_share", "target_oi_ppm", False), ("target_floor", "target_floor_usdc", False),
                          ("replenish_share", "replenish_share_ppm", False))


def compute_insurance_staking_changes(state: State, action: SetInsuranceStakingParams) -> list[Change]:
    """``set_insurance_staking_params``: validated by the genesis parser (``staking.parse_staking_params``,
    its codes: ``invalid_field``, ``non_positive_amount`` and the decimal codes)."""
    section = {name: getattr(action, name) for name, _, _ in _STAKING_PARAMS if getattr(action, name) is not None}
    old = state.insurance_staking
    new = staking.parse_staking_params(section, old, "set_insurance_staking_params")
    changes: list[Change] = []
    for name, attr, riskier_when_higher in _STAKING_PARAMS:
        if name in section:
            before, after = getattr(old, attr), getattr(new, attr)
            risk = NEUTRAL if riskier_when_higher is None else compare_risk(
                before, after, riskier_when_higher=riskier_when_higher)
            changes.append(Change(ParamPath(ParamGroup.INSURANCE_STAKING, "", attr), before, after, risk))
    return changes


def compute_order_limits_changes(state: State, action: SetOrderLimits) -> list[Change]:
    """``set_order_limits``: validated by the genesis parser (``orders.parse_order_limits``, its
    codes); looser limits (more open orders for some equity, a lower minimum notional) increase risk."""
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
        before = OrderLimitParams(old.open_order_tiers, NO_CAP, 0)   # the tiers alone, without the hard maximum
        after = OrderLimitParams(new.open_order_tiers, NO_CAP, 0)
        classes = [compare_risk(open_order_limit(before, e)[0], open_order_limit(after, e)[0], riskier_when_higher=True)
                   for e in points]
        changes.append(Change(ParamPath(ParamGroup.ORDER_LIMITS, "", "open_order_tiers"),
                              [list(step) for step in old.open_order_tiers],
                        new.open_order_tiers, strictest(classes)))
    if action.max_open_orders is not None:
        changes.append(Change(ParamPath(ParamGroup.ORDER_LIMITS, "", "max_open_orders"), old.max_open_orders,
                              new.max_open_orders,
                        compare_risk(old.max_open_orders, new.max_open_orders, riskier_when_higher=True)))
    if action.min_order_notional is not None:
        changes.append(Change(ParamPath(ParamGroup.ORDER_LIMITS, "", "min_order_notional_usdc"),
                              old.min_order_notional_usdc,
                        new.min_order_notional_usdc,
                        compare_risk(old.min_order_notional_usdc, new.min_order_notional_usdc,
                                     riskier_when_higher=False)))
    return changes


def compute_bot_limits_changes(state: State, action: SetBotLimits) -> list[Change]:
    """``set_bot_limits``: the fields set, merged over ``state.bot_limits`` and validated by the genesis
    parser (``bot_limits.parse_bot_limits``: ``invalid_field``, ``invalid_bot_limits`` and the decimal
    codes); each changed field is risk increasing when it loosens its limit, reducing when it tightens it."""
    section = {spec.name: getattr(action, spec.name) for spec in bot_limits.BOT_LIMIT_FIELDS
               if getattr(action, spec.name) is not None}
    old = state.bot_limits
    new = bot_limits.parse_bot_limits(section, old, "set_bot_limits")
    return [Change(ParamPath(ParamGroup.BOT_LIMITS, "", spec.param), getattr(old, spec.param),
                   getattr(new, spec.param), compare_risk(getattr(old, spec.param), getattr(new, spec.param),
                                                          riskier_when_higher=spec.looser_when_higher))
            for spec in bot_limits.BOT_LIMIT_FIELDS if spec.name in section]


def compute_upgrade_plan_changes(state: State, plan: ScheduledUpgrade) -> list[Change]:
    """``schedule_upgrade`` / ``cancel_upgrade`` (``bastion.core.upgrades`` validates them): the three
    ``upgrade.*`` parameters, always critical (who decides which code runs the chain)."""
    return [Change(ParamPath(ParamGroup.UPGRADE, "", name), getattr(state.upgrade, name), getattr(plan, name),
                   CRITICAL) for name in upgrades.UPGRADE_FIELDS]


def _flatten(params: GovernanceParams) -> dict[ParamPath, int]:
    flat = {ParamPath(ParamGroup.GOVERNANCE, "", f.name): getattr(params, f.name) for f in fields(params)
            if f.name != "tiers"}
    for name in RISK_CLASSES:
        tier = params.tiers[name]
        flat.update({ParamPath(ParamGroup.GOVERNANCE_TIER, name, f.name): getattr(tier, f.name) for f in fields(tier)})
    return flat


def compute_proposal_changes(state: State, proposal_actions: tuple[Action, ...]) -> tuple[list[Effect], str]:
    """Every action validated against the current state (none applied), and the strictest class.
    Raises the codes of ``compute_action_changes``, ``rollout.check_rollout_conflicts`` and
    ``actions.check_proposal_changes``."""
    changes = [change for action in proposal_actions for change in compute_action_changes(state, action)]
    rollout.check_rollout_conflicts(changes)
    actions.check_proposal_changes(state, changes)
    return changes, strictest([change.risk for change in changes])


def apply_effect(state: State, effect: Effect, source: ParamSource, events: Events) -> None:
    """Apply one validated effect from ``source`` (a proposal): a parameter change halts the active
    rollout of the same parameter (``rollout.halt_superseded_rollouts``), then goes through
    ``change_param``; an operation through ``actions.apply_operation``. A planned rollout is
    started by ``rollout.start_rollouts``, not here."""
    match effect:
        case Change():
            rollout.halt_superseded_rollouts(state, effect.path, source, events)
            change_param(state, effect.path, effect.old, effect.new, source, events)
        case PlannedRollout():
            raise InvariantViolation(f"{effect.name}: a planned rollout is started, not applied")
        case _:
            actions.apply_operation(state, effect, source, events)



def advance_rollouts(state: State, events: Events) -> None:
    """End-of-block step ``rollout.advance_rollouts``, each step judged by ``compute_action_changes``
    (passed down: the rollout module sits on a lower floor)."""
    rollout.advance_rollouts(state, events, compute_action_changes)


# parameter -> whether a higher value is riskier (pays more, or makes the score easier to game)
_MAKER_REWARD_RISKIER_HIGHER = {
    "epoch_blocks": False, "sample_interval_blocks": False, "band_ppm": True, "min_rest_blocks": False,
    "pool_share_ppm": True, "max_share_per_maker_ppm": True, "volatility_slope_ppm": True,
    "max_volatility_weight_ppm": True,
}


def compute_maker_reward_changes(state: State, action: SetMakerRewardParams) -> list[Change]:
    """``set_maker_reward_params``: validated by the genesis parser
    (``maker_rewards.parse_maker_reward_params``: ``invalid_field``, ``invalid_maker_reward_params``
    and the decimal codes). Paying more (a higher pool share, cap or weight) or loosening the
    anti-gaming rules (a wider band, a shorter rest, faster epochs or samples) increases risk;
    turning rewards on (``epoch_blocks`` from 0) does too."""
    section = {name: getattr(action, name) for name in maker_rewards.FIELD_NAMES if getattr(action, name) is not None}
    old = state.maker_reward_params
    new = maker_rewards.parse_maker_reward_params(section, old, "set_maker_reward_params")
    changes: list[Change] = []
    for attr, riskier_when_higher in _MAKER_REWARD_RISKIER_HIGHER.items():
        before, after = getattr(old, attr), getattr(new, attr)
        if before == after:
            continue
        risk = compare_risk(before, after, riskier_when_higher=riskier_when_higher)
        if attr == "epoch_blocks" and 0 in (before, after):
            risk = compare_risk(before, after, riskier_when_higher=True)  # on is riskier than off
        changes.append(Change(ParamPath(ParamGroup.MAKER_REWARDS, "", attr), before, after, risk))
    return changes
