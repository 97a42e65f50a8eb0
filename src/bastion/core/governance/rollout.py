"""Staged rollouts (DESIGN.md section 9; issues 5 and 20): any risk lever moved step by step while
health gates, contagion measures among them, hold.

**Action** ``start_rollout{market, param, target, steps, interval_s, gates, revert_on_breach?}``
(inside a proposal, ``bastion.core.messages.StartRollout``):

- ``param``: issue 5's short names ``max_open_interest`` / ``min_order_size`` (of ``market``), or
  the dotted name of a rollable governed parameter: the ``LEVERS`` table (market caps, order sizes,
  fees, tier, cross margin cap and oracle settings; a liquidity tier's margins and caps; the fee
  insurance share; every liquidation and backstop parameter). Each lever is a unit (how it is
  written and stepped) and the direct action that sets it: there is no other per-lever code.
  ``market`` is the market whose health the gates watch (for a market lever, its own market).
- ``target``: written as the direct action writes it. The direct action with the target goes
  through the validation every change goes through (``dispatch.compute_action_changes``, passed in
  as ``validate``: this module is on a lower floor), so a target is refused with the direct change's
  own code (reported on ``target``), and the rollout's planned change carries the direct change's
  risk class: the class voted on is that of the final target.
- ``steps``: 1 .. ``governance.max_rollout_steps``; every step moves at least one grid unit (lot,
  ppm, micro-USDC, second, count, or one tier: ``rollout_step_below_grid``). ``interval_s`` >= 1.
- ``gates``: at least one of ``GATES``: ``min_insurance_fund`` (USDC, the market's pool fund),
  ``max_bad_debt`` (USDC, new bad debt in the pool since the previous step), ``max_liquidations``
  (liquidation events in the market since the previous step), and the contagion gates
  ``max_cross_share``, ``max_top_account_share``, ``max_oi_skew`` (ratios in [0, 1]),
  ``max_backstop_inventory`` (a size) and ``max_trader_losses`` (USDC since the previous step),
  measured by ``measure_gates``. A value equal to its bound holds.
- ``revert_on_breach`` (false): on a gate breach, put the parameter back to the start value.

Refusals: ``unknown_market``, ``market_not_active``, ``unknown_rollout_param``,
``rollout_target_unchanged``, ``invalid_rollout_steps``, ``rollout_step_below_grid``,
``invalid_rollout_interval``, ``rollout_without_gates``, ``unknown_field`` / ``invalid_field``
(gates), the decimal codes, the direct change's codes (e.g. ``non_positive_value``,
``invalid_tier``), ``rollout_in_progress`` (an active rollout of the same parameter) and
``conflicting_rollout`` (``check_rollout_conflicts``: a proposal may not both start a rollout of a
parameter and change it, or start two rollouts of it).

**The interpolation rule** (``compute_step_value``, ``get_step_value``): step ``i`` of ``n`` =
``start + (target - start) * i / n`` in grid units, rounded toward the safer side: toward the start
for a risk-increasing move, toward the target for a risk-reducing one (``Rollout.start_is_safer``);
the last step is exactly the target. A tier move steps through ``Rollout.tiers``, the tiers between
start and target by maintenance margin (``get_tier_path``).

**Rollout** (``state.rollouts``, id 1, 2, ... in creation order): start value (the value at
execution), target, steps, interval, gates, the proposal, ``next_step_ms`` = execution time +
interval, and the gate counters' marks (the market's liquidation count, the pool's cumulative bad
debt and the market's trader losses at the previous step, or at creation). Event
``rollout_started``.

**End of block** (``advance_rollouts``, after ``liquidate`` so that the gates see this block's
liquidations; ``dispatch.advance_rollouts`` hands it the validation), for each active rollout in
creation order:

1. its market is no longer ``active`` (paused, reduce-only, final settlement, settled): the rollout
   halts (``market_not_active``, no revert);
2. else, if ``block time >= next_step_ms`` and no guardian pause restricts the market (``market`` or
   ``reduce_only`` on it, or ``trading``: ``bastion.core.guardian``), the gates are measured (kept
   in ``Rollout.measured``; a rollout with a contagion gate emits ``rollout_gates_measured``) and
   evaluated in ``GATES`` order; the first broken one halts the rollout
   (``rollout_halted{gate, observed, limit}``) and, with ``revert_on_breach`` and at least one step
   done, puts the parameter back to the start value (``rollout_reverted``);
3. else the next step's value is validated as a direct change (refused: halted, ``invalid_step``,
   ``ref`` = the code) and set: event ``rollout_step``, the marks move to the current counters and
   ``next_step_ms`` = block time + interval (so each gate window is at least one interval long; one
   step per block at most). After the last step: ``completed`` (``rollout_completed``).

**Guardian pauses** are an overlay that leaves the governed status ``active``, so they do not halt a
rollout; a due step *waits* while one is in force (no event, nothing changes) and happens at the
first end of block after the pause is over, its gates judged over the whole window since the
previous step, paused time included. A halted or reduce-only market is no place to raise an
open-interest cap or lower the minimum order (DESIGN.md section 9: steps happen only while the
health gates hold), and waiting rather than halting keeps the guardian restrict-only: it can delay
a voted rollout by the length of its bounded pauses, never cancel it (a mistaken 10-minute pause
must not end a rollout that governance approved).

Every value change goes through ``changes.change_param`` with ``ParamSource("rollout", id)``;
``params_epoch`` is bumped once per block in which a rollout changed something.

**Superseded**: a change of the same parameter from any other source (a proposal's direct change,
a council steward change) halts the active rollout of it (``superseded``, no revert;
``halt_superseded_rollouts``, called by ``dispatch.apply_effect`` and ``council.steward_change``),
even a change to the value it already has: governance freezes a rollout where it stands by setting
the parameter to its current value (a ``neutral`` change).

**Counters**: ``state.liquidation_counts[ticker]`` counts ``liquidation`` events (one per
liquidation fill) per market; ``state.trader_losses[ticker]`` what deleveraging and socialisation
took from traders (``liquidation.add_trader_loss``); bad debt is ``state.bad_debt[pool]``. Hash
leaves ``("rollout", id)``, ``("liquidations", ticker)`` and ``("trader_losses", ticker)``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from bastion.core import guardian
from bastion.core import events as ev
from bastion.core.accounts import subaccount_pool
from bastion.core.events import Events, emit
from bastion.core.errors import InvariantViolation, ProtocolError
from bastion.core.governance.actions import LIQUIDATION_FIELDS
from bastion.core.governance.changes import (
    RISK_REDUCING, Change, Effect, ParamGroup, ParamPath, PlannedRollout, change_param,
)
from bastion.core.liquidation import is_backstop
from bastion.core.margin import compute_position_risk
from bastion.core.messages import (
    Action, SetFeeParams, SetLiquidationParams, SetLiquidityTier, SetMarketParams, StartRollout,
)
from bastion.core.state import ACTIVE, CROSS, CROSS_POOL, Market, ParamSource, Proposal, Rollout, State
from bastion.core.units import (
    MS_PER_S, PPM, PPM_DECIMALS, format_decimal, format_usdc, parse_decimal, parse_ppm, parse_usdc,
)


Validator = Callable[[State, Action], list[Effect]]
"""``dispatch.compute_action_changes``, passed in (this module is on a lower floor than dispatch)."""

# the short names of issue 5's start_rollout, kept: param -> (market attribute, riskier when higher)
PARAMS: Final = {
    "max_open_interest": ("max_open_interest_lots", True),
    "min_order_size": ("min_order_lots", False),
}
LEGACY_GATES: Final = ("min_insurance_fund", "max_bad_debt", "max_liquidations")
RATIO_GATES: Final = ("max_cross_share", "max_top_account_share", "max_oi_skew")  # ratios in [0, 1]
CONTAGION_GATES: Final = (*RATIO_GATES, "max_backstop_inventory", "max_trader_losses")
GATES: Final = (*LEGACY_GATES, *CONTAGION_GATES)  # also the evaluation order
# each gate's measure (the key of rollout_gates_measured and Rollout.measured)
MEASURES: Final = {"min_insurance_fund": "insurance_fund", "max_bad_debt": "bad_debt",
                   "max_liquidations": "liquidations", "max_cross_share": "cross_share",
                   "max_top_account_share": "top_account_share", "max_oi_skew": "oi_skew",
                   "max_backstop_inventory": "backstop_inventory", "max_trader_losses": "trader_losses"}
RUNNING, COMPLETED, HALTED = "active", "completed", "halted"  # rollout statuses


# --------------------------------------------------------------------------------------- the levers
class Unit:
    """How a lever's value is written in its direct action and stepped (the grid of one step)."""

    LOTS = "lots"          # a decimal size on the market's lot grid
    RATIO = "ratio"        # a decimal ratio, stored in ppm
    SIGNED_RATIO = "signed_ratio"
    USDC = "usdc"          # a decimal USDC amount, stored in micro-USDC
    SECONDS = "seconds"    # an integer of seconds, stored in ms (steps move whole seconds)
    COUNT = "count"        # an integer
    TIER = "tier"          # a liquidity tier id: steps go through the tiers between start and target


@dataclass(frozen=True, slots=True)
class Lever:
    """A rollable parameter: its unit and the direct action that sets it (``build(path, value)``,
    ``value`` in the action's form), validated by ``compute_action_changes`` like any direct change."""

    unit: str
    build: Callable[[ParamPath, Any], Action]


def _market_action(field: str) -> Callable[[ParamPath, Any], Action]:
    return lambda path, value: SetMarketParams(market=path.key, **{field: value})


def _tier_action(field: str) -> Callable[[ParamPath, Any], Action]:
    return lambda path, value: SetLiquidityTier(tier=int(path.key), **{field: value})


def _liquidation_action(field: str) -> Callable[[ParamPath, Any], Action]:
    return lambda path, value: SetLiquidationParams(**{field: value})


_LIQUIDATION_UNITS: Final = {"_parse_ratio": Unit.RATIO, "_parse_usdc": Unit.USDC, "_parse_count": Unit.COUNT,
                             "_parse_seconds": Unit.SECONDS}

# the rollable parameters: (group, attribute) -> lever. Everything else is refused (unknown_rollout_param).
LEVERS: Final[dict[tuple[ParamGroup, str], Lever]] = {
    (ParamGroup.MARKET, "max_open_interest_lots"): Lever(Unit.LOTS, _market_action("max_open_interest")),
    (ParamGroup.MARKET, "min_order_lots"): Lever(Unit.LOTS, _market_action("min_order_size")),
    (ParamGroup.MARKET, "max_order_lots"): Lever(Unit.LOTS, _market_action("max_order_size")),
    (ParamGroup.MARKET, "maker_fee_ppm"): Lever(Unit.SIGNED_RATIO, _market_action("maker_fee")),
    (ParamGroup.MARKET, "taker_fee_ppm"): Lever(Unit.RATIO, _market_action("taker_fee")),
    (ParamGroup.MARKET, "tier_id"): Lever(Unit.TIER, _market_action("liquidity_tier")),
    (ParamGroup.MARKET, "cross_margin_cap_usdc"): Lever(Unit.USDC, _market_action("cross_margin_cap")),
    (ParamGroup.MARKET_ORACLE, "min_sources"): Lever(Unit.COUNT, _market_action("min_sources")),
    (ParamGroup.MARKET_ORACLE, "max_staleness_ms"): Lever(Unit.SECONDS, _market_action("max_staleness_s")),
    (ParamGroup.MARKET_ORACLE, "max_source_deviation_ppm"): Lever(Unit.RATIO, _market_action("max_source_deviation")),
    (ParamGroup.MARKET_ORACLE, "max_move_per_block_ppm"): Lever(Unit.RATIO, _market_action("max_move_per_block")),
    (ParamGroup.TIER, "initial_margin_ppm"): Lever(Unit.RATIO, _tier_action("initial_margin")),
    (ParamGroup.TIER, "maintenance_fraction_ppm"): Lever(Unit.RATIO, _tier_action("maintenance_fraction")),
    (ParamGroup.TIER, "oi_lower_cap_usdc"): Lever(Unit.USDC, _tier_action("oi_lower_cap")),
    (ParamGroup.TIER, "oi_upper_cap_usdc"): Lever(Unit.USDC, _tier_action("oi_upper_cap")),
    (ParamGroup.FEES, "insurance_share_ppm"): Lever(Unit.RATIO,
                                                    lambda path, value: SetFeeParams(insurance_share=value)),
    **{(ParamGroup.LIQUIDATION, spec.param): Lever(_LIQUIDATION_UNITS[spec.parse.__name__],
                                                   _liquidation_action(spec.action_field))
       for spec in LIQUIDATION_FIELDS},
}


def _grid(unit: str) -> int:
    return MS_PER_S if unit == Unit.SECONDS else 1


def _action_value(state: State, path: ParamPath, unit: str, value: int) -> Any:
    """A stored value in its direct action's form."""
    if unit == Unit.LOTS:
        return format_decimal(value, state.markets[path.key].size_decimals)
    if unit in (Unit.RATIO, Unit.SIGNED_RATIO):
        return format_decimal(value, PPM_DECIMALS)
    if unit == Unit.USDC:
        return format_usdc(value)
    if unit == Unit.SECONDS:
        return value // MS_PER_S
    return value


def format_param_value(state: State, path: ParamPath, value: int) -> str:
    """A rollable parameter's stored value as its direct action writes it (lots and USDC as decimals,
    ratios as decimal ratios, durations in seconds, counts and tier ids as integers), as text."""
    return str(_action_value(state, path, LEVERS[(path.group, path.attr)].unit, value))


def format_gate_value(state: State, rollout: Rollout, gate: str, value: int) -> Any:
    """A gate's limit or measure (``gate`` a gate or a measure name) for people: USDC amounts and
    ratios as decimal text, the backstop inventory as a size, counts as integers."""
    measure = MEASURES.get(gate, gate)
    if measure == "liquidations":
        return value
    if measure in ("cross_share", "top_account_share", "oi_skew"):
        return format_decimal(value, PPM_DECIMALS)
    if measure == "backstop_inventory":
        return format_decimal(value, state.markets[rollout.market].size_decimals)
    return format_usdc(value)


def _parse_target(state: State, path: ParamPath, unit: str, text: str) -> Any:
    """``start_rollout.target`` (a string in the direct action's decimal form) in its action form."""
    if unit == Unit.LOTS:
        return format_decimal(parse_decimal(text, state.markets[path.key].size_decimals, field="target"),
                              state.markets[path.key].size_decimals)
    if unit in (Unit.RATIO, Unit.SIGNED_RATIO):
        return format_decimal(parse_ppm(text, field="target", signed=unit == Unit.SIGNED_RATIO), PPM_DECIMALS)
    if unit == Unit.USDC:
        return format_usdc(parse_usdc(text, field="target"))
    return parse_decimal(text, 0, field="target")


def resolve_param(state: State, action: StartRollout) -> tuple[ParamPath, Lever]:
    """The parameter a ``start_rollout`` moves: an issue-5 short name on its market, or a dotted
    name (``liquidity_tiers.0.initial_margin_ppm``). Raises ``unknown_rollout_param`` (not a
    rollable parameter, or one of another market)."""
    path = (ParamPath(ParamGroup.MARKET, action.market, PARAMS[action.param][0]) if action.param in PARAMS
            else _parse_path(action.param))
    lever = LEVERS.get((path.group, path.attr)) if path is not None else None
    if path is None or lever is None:
        raise ProtocolError("unknown_rollout_param", f"param must be one of {sorted(PARAMS)} or a rollable "
                            "parameter's dotted name (docs/protocol.md, 'Staged rollouts')", field="param")
    if path.group in (ParamGroup.MARKET, ParamGroup.MARKET_ORACLE) and path.key != action.market:
        raise ProtocolError("unknown_rollout_param", f"{action.param} is not a parameter of {action.market}",
                            field="param")
    if path.group == ParamGroup.TIER and (not path.key.isdigit() or int(path.key) not in state.tiers):
        raise ProtocolError("unknown_rollout_param", f"no liquidity tier {path.key!r}", field="param")
    return path, lever


def _parse_path(name: str) -> ParamPath | None:
    try:
        return ParamPath.parse(name)
    except InvariantViolation:   # not a governed parameter's name
        return None


# --------------------------------------------------------------------------------------- queries
def compute_step_value(start: int, target: int, step: int, steps: int, *, toward_start: bool = True) -> int:
    """``start + (target - start) * step / steps`` with the fraction rounded toward ``start`` (or,
    ``toward_start`` False, toward ``target``): the last step is exactly the target."""
    distance = abs(target - start) * step
    moved = distance // steps if toward_start else -(-distance // steps)
    return start + moved if target >= start else start - moved


def get_tier_path(state: State, start: int, target: int) -> list[int]:
    """The tier ids a tier move steps through, start and target included: the tiers whose maintenance
    margin (IMF x fraction, then IMF, then id) lies between the two, in the direction of travel."""
    def order(tier_id: int) -> tuple[int, int, int]:
        tier = state.tiers[tier_id]
        return tier.initial_margin_ppm * tier.maintenance_fraction_ppm, tier.initial_margin_ppm, tier_id
    low, high = sorted((order(start), order(target)))
    between = sorted(t for t in state.tiers if low < order(t) < high)
    ordered = sorted(between, key=order, reverse=order(start) > order(target))
    return [start, *ordered, target]


def get_step_value(rollout: Rollout, step: int, unit: str) -> int:
    """The parameter's value after ``step`` of ``rollout`` (the one interpolation rule)."""
    if rollout.tiers:
        index = compute_step_value(0, len(rollout.tiers) - 1, step, rollout.steps,
                                   toward_start=rollout.start_is_safer)
        return rollout.tiers[index]
    grid = _grid(unit)   # seconds: stepped in whole seconds
    return grid * compute_step_value(rollout.start // grid, rollout.target // grid, step, rollout.steps,
                                     toward_start=rollout.start_is_safer)


def compute_path_value(state: State, path: ParamPath, start: int, target: int, risk: str, step: int,
                       steps: int) -> int:
    """The value after ``step`` of ``steps`` of a rollout of ``path`` (risk class ``risk``) not
    started yet (the stress gate evaluates a proposal's rollouts at their first step)."""
    tiers = get_tier_path(state, start, target) if LEVERS[(path.group, path.attr)].unit == Unit.TIER else []
    probe = Rollout(rollout_id=0, market="", param=str(path), start=start, target=target, steps=steps, interval_ms=0,
                    min_insurance_fund_usdc=None, max_bad_debt_usdc=None, max_liquidations=None,
                    revert_on_breach=False, proposal_id="", created_height=0, next_step_ms=0, liquidations_mark=0,
                    bad_debt_mark=0, start_is_safer=risk != RISK_REDUCING, tiers=tiers)
    return get_step_value(probe, step, LEVERS[(path.group, path.attr)].unit)


def get_param_path(rollout: Rollout) -> ParamPath:
    """The rolled-out parameter, e.g. ``markets.BTC-USD.max_open_interest_lots``."""
    if rollout.param in PARAMS:
        return ParamPath(ParamGroup.MARKET, rollout.market, PARAMS[rollout.param][0])
    return ParamPath.parse(rollout.param)


def get_lever(rollout: Rollout) -> Lever:
    """The rolled-out parameter's lever."""
    path = get_param_path(rollout)
    return LEVERS[(path.group, path.attr)]


def get_current_value(state: State, path: ParamPath) -> Any:
    """The current value of a rollable parameter."""
    match path.group:
        case ParamGroup.MARKET:
            return getattr(state.markets[path.key], path.attr)
        case ParamGroup.MARKET_ORACLE:
            return getattr(state.markets[path.key].oracle_params, path.attr)
        case ParamGroup.TIER:
            return getattr(state.tiers[int(path.key)], path.attr)
        case _:
            return getattr(getattr(state, str(path.group)), path.attr)


def is_restricted_by_guardian(state: State, ticker: str) -> bool:
    """True while a guardian pause halts ``ticker`` (``market``, ``trading``) or makes it reduce-only:
    a due step of its rollouts waits."""
    return guardian.is_market_halted(state, ticker) or guardian.is_reduce_only(state, ticker)


def get_active_rollout(state: State, market: str, param: str) -> Rollout | None:
    """The running rollout of ``param`` (a short or dotted name) on ``market``, if any."""
    for rollout in state.rollouts.values():
        if rollout.status == RUNNING and rollout.market == market and rollout.param == param:
            return rollout
    return None


def _get_running_rollout_of(state: State, path: ParamPath) -> Rollout | None:
    for rollout in state.rollouts.values():
        if rollout.status == RUNNING and get_param_path(rollout) == path:
            return rollout
    return None


def _ceil_ppm(part: int, whole: int) -> int:
    return -(-part * PPM // whole) if whole else 0


def measure_gates(state: State, rollout: Rollout, market: Market) -> dict[str, int]:
    """Every gate's measure now (``MEASURES``), from the state alone. Ratios in ppm rounded up (a
    measure never hides a breach by rounding): the market's share of the cross pool's maintenance
    requirement (positions of subaccounts whose collateral is in the cross pool); the top account's
    share of the open interest (an owner's net position over all its subaccounts: splitting a
    position across subaccounts does not hide it); the OI skew, the cross-margin subaccounts'
    net position in the market against the open interest (a perpetual is zero-sum, so this is the
    one-way exposure that accounts whose losses spill over to their other positions carry, the
    isolated ones holding the other side); the backstops' inventory in the market (lots); and, since
    the previous step, the pool's new bad debt, the market's liquidations and its trader losses."""
    ticker = market.ticker
    cross_total = cross_here = net_cross = inventory = 0
    for sub in state.subaccounts.values():
        if not sub.positions or subaccount_pool(state, sub) != CROSS_POOL:
            continue
        for other_ticker, position in sub.positions.items():
            other = state.markets[other_ticker]
            override = sub.imf_overrides.get(other_ticker) if sub.imf_overrides else None
            _, _, maintenance = compute_position_risk(state, other, position.size, other.open_interest, override,
                                                      position.cost)
            cross_total += maintenance
            if other_ticker == ticker:
                cross_here += maintenance
    by_owner: dict[str, int] = {}
    for owner, number in market.holders:
        holder = state.subaccounts[(owner, number)]
        size = holder.positions[ticker].size
        by_owner[owner] = by_owner.get(owner, 0) + size
        if holder.mode == CROSS:
            net_cross += size
        if is_backstop(owner):
            inventory += abs(size)
    top = max((abs(net) for net in by_owner.values()), default=0)
    return {
        "insurance_fund": state.insurance_funds.get(market.pool, 0),
        "bad_debt": state.bad_debt.get(market.pool, 0) - rollout.bad_debt_mark,
        "liquidations": state.liquidation_counts.get(ticker, 0) - rollout.liquidations_mark,
        "cross_share": _ceil_ppm(cross_here, cross_total),
        "top_account_share": _ceil_ppm(top, market.open_interest),
        "oi_skew": _ceil_ppm(abs(net_cross), market.open_interest),
        "backstop_inventory": inventory,
        "trader_losses": state.trader_losses.get(ticker, 0) - rollout.trader_losses_mark,
    }


def get_gate_limits(rollout: Rollout) -> dict[str, int]:
    """The rollout's gates, name -> limit, in evaluation order."""
    limits = {"min_insurance_fund": rollout.min_insurance_fund_usdc, "max_bad_debt": rollout.max_bad_debt_usdc,
              "max_liquidations": rollout.max_liquidations, **rollout.contagion_gates}
    return {gate: limits[gate] for gate in GATES if limits.get(gate) is not None}  # type: ignore[misc]


def _breached_gate(rollout: Rollout, measured: dict[str, int]) -> tuple[str, int, int] | None:
    """The first broken gate as ``(gate, observed, limit)``, or None when all hold (a value equal to
    its bound holds)."""
    for gate, limit in get_gate_limits(rollout).items():
        observed = measured[MEASURES[gate]]
        if (observed < limit) if gate.startswith("min_") else (observed > limit):
            return gate, observed, limit
    return None


# --------------------------------------------------------------------------------------- validation
@dataclass(frozen=True, slots=True)
class _Plan:
    market: Market
    path: ParamPath
    lever: Lever
    current: int
    target: int
    risk: str
    tiers: list[int]
    gates: dict[str, int]


def _validate(state: State, action: StartRollout, validate: Validator) -> _Plan:
    """The plan of a valid ``start_rollout`` (raises otherwise)."""
    market = state.markets.get(action.market)
    if market is None:
        raise ProtocolError("unknown_market", f"unknown market {action.market!r}", field="market")
    if market.status != ACTIVE:
        raise ProtocolError("market_not_active", f"{market.ticker} is {market.status}", field="market",
                            status=market.status)
    path, lever = resolve_param(state, action)
    current = get_current_value(state, path)
    target_value = _parse_target(state, path, lever.unit, action.target)
    try:   # the target is judged by the direct change's validator (its codes, reported on ``target``)
        direct = [c for c in validate(state, lever.build(path, target_value))
                  if isinstance(c, Change) and c.path == path]
    except ProtocolError as error:
        raise ProtocolError(error.code, f"target: {error.message}", field="target") from error
    if not direct or direct[0].new == current:
        raise ProtocolError("rollout_target_unchanged", f"{action.param} already is the target", field="target")
    target, risk = direct[0].new, direct[0].risk
    max_steps = state.governance.max_rollout_steps
    if isinstance(action.steps, bool) or not 1 <= action.steps <= max_steps:
        raise ProtocolError("invalid_rollout_steps", f"steps must be from 1 to {max_steps}", field="steps",
                            maximum=max_steps)
    tiers = get_tier_path(state, current, target) if lever.unit == Unit.TIER else []
    moves = len(tiers) - 1 if tiers else abs(target - current) // _grid(lever.unit)
    if moves < action.steps:
        raise ProtocolError("rollout_step_below_grid", f"{action.steps} steps from {current} to {target} would "
                            "not all move the value by one grid unit (lot, ppm, micro-USDC, second or tier)",
                            field="steps")
    if isinstance(action.interval_s, bool) or action.interval_s < 1:
        raise ProtocolError("invalid_rollout_interval", "interval_s must be at least 1", field="interval_s")
    gates = _parse_gates(action.gates, market)
    if _get_running_rollout_of(state, path) is not None:
        raise ProtocolError("rollout_in_progress", f"{path} already has an active rollout", field="param")
    return _Plan(market, path, lever, current, target, risk, tiers, gates)


def _parse_gates(gates: dict[str, Any], market: Market) -> dict[str, int]:
    for key in sorted(set(gates) - set(GATES)):
        raise ProtocolError("unknown_field", f"gates has no field {key!r}", field=f"gates.{key}")
    if not gates:
        raise ProtocolError("rollout_without_gates", f"a rollout needs at least one gate of {GATES}", field="gates")
    parsed: dict[str, int] = {}
    for key in ("min_insurance_fund", "max_bad_debt"):
        if key in gates:
            parsed[key] = parse_usdc(gates[key], field=f"gates.{key}")
    if "max_liquidations" in gates:
        count = gates["max_liquidations"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ProtocolError("invalid_field", f"gates.max_liquidations must be an integer >= 0, got {count!r}",
                                field="gates.max_liquidations")
        parsed["max_liquidations"] = count
    for key in RATIO_GATES:
        if key in gates:
            parsed[key] = parse_ppm(gates[key], field=f"gates.{key}")
            if parsed[key] > PPM:
                raise ProtocolError("invalid_field", f"gates.{key} is a share: at most 1", field=f"gates.{key}")
    if "max_backstop_inventory" in gates:
        parsed["max_backstop_inventory"] = parse_decimal(gates["max_backstop_inventory"], market.size_decimals,
                                                         field="gates.max_backstop_inventory")
    if "max_trader_losses" in gates:
        parsed["max_trader_losses"] = parse_usdc(gates["max_trader_losses"], field="gates.max_trader_losses")
    return parsed


def compute_start_rollout_changes(state: State, action: StartRollout, validate: Validator) -> list[Effect]:
    """Validate ``action``; its one planned change carries the class of current -> target as the
    direct change's validator ``validate`` (``dispatch.compute_action_changes``) gives it. Raises
    ``unknown_market``, ``market_not_active``, ``unknown_rollout_param``, ``rollout_target_unchanged``,
    ``invalid_rollout_steps``, ``rollout_step_below_grid``, ``invalid_rollout_interval``,
    ``unknown_field``, ``rollout_without_gates``, ``invalid_field``, ``rollout_in_progress``, the
    decimal codes and the codes of the direct change (on ``target``, e.g. ``non_positive_value``)."""
    plan = _validate(state, action, validate)
    return [PlannedRollout(plan.path, plan.current, plan.target, plan.risk)]


def check_rollout_conflicts(changes: list[Effect]) -> None:
    """Refuse a proposal that starts a rollout of a parameter and also changes it (or starts two):
    ``conflicting_rollout``."""
    names = [change.name for change in changes]
    for change in changes:
        if isinstance(change, PlannedRollout):
            plain = str(change.path)
            if names.count(change.name) > 1 or plain in names:
                raise ProtocolError("conflicting_rollout", f"this proposal also changes {plain}", field="actions")


# --------------------------------------------------------------------------------------- mutation
def start_rollouts(state: State, proposal: Proposal, events: Events, validate: Validator) -> None:
    """Create the rollouts of an executing proposal. Called before its other changes apply, on the
    state its actions were just validated against, so the validation here cannot fail."""
    for action in proposal.actions:
        if not isinstance(action, StartRollout):
            continue
        plan = _validate(state, action, validate)
        gates = plan.gates
        rollout = Rollout(
            rollout_id=len(state.rollouts) + 1, market=plan.market.ticker, param=action.param, start=plan.current,
            target=plan.target, steps=action.steps, interval_ms=action.interval_s * MS_PER_S,
            min_insurance_fund_usdc=gates.get("min_insurance_fund"), max_bad_debt_usdc=gates.get("max_bad_debt"),
            max_liquidations=gates.get("max_liquidations"), revert_on_breach=action.revert_on_breach,
            proposal_id=proposal.proposal_id, created_height=state.height,
            next_step_ms=state.time_ms + action.interval_s * MS_PER_S,
            liquidations_mark=state.liquidation_counts.get(plan.market.ticker, 0),
            bad_debt_mark=state.bad_debt.get(plan.market.pool, 0),
            contagion_gates={gate: gates[gate] for gate in CONTAGION_GATES if gate in gates},
            trader_losses_mark=state.trader_losses.get(plan.market.ticker, 0),
            start_is_safer=plan.risk != RISK_REDUCING, tiers=plan.tiers)
        state.rollouts[rollout.rollout_id] = rollout
        state.touch(("rollout", rollout.rollout_id))
        emit(events, ev.RolloutStarted, rollout_id=rollout.rollout_id, market=rollout.market, param=rollout.param,
             start=plan.current, target=plan.target, steps=rollout.steps, interval_s=action.interval_s,
             next_step_ms=rollout.next_step_ms, proposal_id=proposal.proposal_id)


def halt_superseded_rollouts(state: State, path: ParamPath, source: ParamSource, events: Events) -> None:
    """A change of ``path`` from outside a rollout halts the active rollout of that parameter.
    Proposal execution and steward changes call it before ``changes.change_param``."""
    for rollout in state.rollouts.values():
        if rollout.status == RUNNING and get_param_path(rollout) == path:
            _halt(state, rollout, "superseded", events, source=source.kind, ref=source.ref)


def _halt(state: State, rollout: Rollout, reason: str, events: Events, **details: Any) -> None:
    rollout.status = HALTED
    rollout.halt_reason = reason
    rollout.ended_height = state.height
    state.touch(("rollout", rollout.rollout_id))
    emit(events, ev.RolloutHalted, rollout_id=rollout.rollout_id, market=rollout.market, param=rollout.param,
         step=rollout.step, reason=reason, **details)


def advance_rollouts(state: State, events: Events, validate: Validator) -> None:
    """End-of-block step: halt, step or complete every active rollout (module docstring); each
    step's value is checked by ``validate`` (``dispatch.compute_action_changes``) as a direct change."""
    changed = False
    for rollout in state.rollouts.values():
        if rollout.status != RUNNING:
            continue
        market = state.markets[rollout.market]
        if market.status != ACTIVE:
            _halt(state, rollout, "market_not_active", events, status=market.status)
            continue
        if state.time_ms < rollout.next_step_ms or is_restricted_by_guardian(state, market.ticker):
            continue
        path, source = get_param_path(rollout), ParamSource("rollout", str(rollout.rollout_id))
        lever = get_lever(rollout)
        current = get_current_value(state, path)
        measured = measure_gates(state, rollout, market)
        rollout.measured = measured
        state.touch(("rollout", rollout.rollout_id))
        if rollout.contagion_gates:   # issue 5's rollouts keep their events as they were
            emit(events, ev.RolloutGatesMeasured, rollout_id=rollout.rollout_id, market=rollout.market,
                 step=rollout.step, **measured)
        breach = _breached_gate(rollout, measured)
        if breach is not None:
            gate, observed, limit = breach
            _halt(state, rollout, gate, events, gate=gate, observed=observed, limit=limit)
            if rollout.revert_on_breach and rollout.step > 0:
                change_param(state, path, current, rollout.start, source, events)
                rollout.reverted = changed = True
                emit(events, ev.RolloutReverted, rollout_id=rollout.rollout_id, market=rollout.market,
                     param=rollout.param, value=rollout.start)
            continue
        value = get_step_value(rollout, rollout.step + 1, lever.unit)
        try:   # the step, judged as the direct change to its value would be
            validate(state, lever.build(path, _action_value(state, path, lever.unit, value)))
        except ProtocolError as error:   # e.g. a fee step that a later direct change of the other fee broke
            _halt(state, rollout, "invalid_step", events, ref=error.code)
            continue
        rollout.step += 1
        change_param(state, path, current, value, source, events)
        changed = True
        emit(events, ev.RolloutStep, rollout_id=rollout.rollout_id, market=rollout.market, param=rollout.param,
             step=rollout.step, steps=rollout.steps, value=value)
        rollout.liquidations_mark = state.liquidation_counts.get(market.ticker, 0)
        rollout.bad_debt_mark = state.bad_debt.get(market.pool, 0)
        rollout.trader_losses_mark = state.trader_losses.get(market.ticker, 0)
        rollout.next_step_ms = state.time_ms + rollout.interval_ms
        if rollout.step == rollout.steps:
            rollout.status = COMPLETED
            rollout.ended_height = state.height
            emit(events, ev.RolloutCompleted, rollout_id=rollout.rollout_id, market=rollout.market,
                 param=rollout.param, value=value)
    if changed:
        state.params_epoch += 1
