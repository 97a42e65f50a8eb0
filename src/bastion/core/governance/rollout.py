"""Staged rollouts (DESIGN.md section 9, issue 5): a market parameter moved step by step while
health gates hold.

**Action** ``start_rollout{market, param, target, steps, interval_s, gates, revert_on_breach?}``
(inside a proposal, ``bastion.core.messages.StartRollout``):

- ``param``: ``max_open_interest`` (the market's hard open-interest cap) or ``min_order_size``,
  both decimal size strings on the market's lot grid; ``target`` must be positive and differ from
  the current value. (Fees are left out: ``maker + taker >= 0`` ties the two, and an intermediate
  step could break it after a direct change of the other fee.)
- ``steps``: 1 .. ``governance.max_rollout_steps`` (default 20); every step must move the value by
  at least one grid unit (``|target - current| >= steps``).
- ``interval_s`` >= 1: block time between steps.
- ``gates``: at least one of ``min_insurance_fund`` (USDC: the market's pool insurance fund must be
  at least this when a step is due), ``max_bad_debt`` (USDC: new bad debt socialised in the
  market's pool since the previous step, at most this) and ``max_liquidations`` (an integer:
  ``liquidation`` events in the market since the previous step, at most this). A value equal to
  its bound holds (the bound is allowed, as in Aave's steward ranges).
- ``revert_on_breach`` (false): on a gate breach, put the parameter back to the start value.

``compute_start_rollout_changes`` validates the action (at submission and at execution, like every
action) and returns one planned change ``("rollout:" + parameter name, current, target, class)``:
the class is that of moving the parameter from its current value to the target (raising the open
interest cap or lowering the minimum order size is ``risk_increasing``). Execution does not apply
a planned change (``is_planned_change``); it creates the rollout (``start_rollouts``). A proposal
may not both start a rollout of a parameter and change it (or start two rollouts of it):
``conflicting_rollout`` (``check_rollout_conflicts``), so the class voted on is the class of the
path the rollout follows. Refusals: ``unknown_market``, ``market_not_active``,
``unknown_rollout_param``, ``non_positive_value``, ``rollout_target_unchanged``,
``invalid_rollout_steps``, ``rollout_step_below_grid``, ``invalid_rollout_interval``,
``rollout_without_gates``, ``unknown_field`` / ``invalid_field`` (gates), the decimal codes,
``rollout_in_progress`` (an active rollout of the same market and parameter), ``conflicting_rollout``.

**Rollout** (``state.rollouts``, id 1, 2, ... in creation order): start value (the value at
execution), target, steps, interval, gates, the proposal, ``next_step_ms`` = execution time +
interval, and the gate counters' marks (the market's liquidation count and the pool's cumulative
bad debt at the previous step, or at creation). Event ``rollout_started``.

**End of block** (``advance_rollouts``, after ``liquidate`` so that the gates see this block's
liquidations), for each active rollout in creation order:

1. its market is no longer ``active`` (paused, reduce-only, final settlement, settled): the rollout
   halts (``market_not_active``, no revert);
2. else, if ``block time >= next_step_ms`` and no guardian pause restricts the market (``market`` or
   ``reduce_only`` on it, or ``trading``: ``bastion.core.guardian``), the gates are evaluated in the order
   ``min_insurance_fund``, ``max_bad_debt``, ``max_liquidations``; the first broken one halts the
   rollout (``rollout_halted{gate, observed, limit}``) and, with ``revert_on_breach`` and at least
   one step done, puts the parameter back to the start value (``rollout_reverted``);
3. else step ``i`` = step + 1 sets the parameter to ``compute_step_value(start, target, i, steps)``
   = ``start + (target - start) * i / steps``, the fraction rounded toward the start value (the old,
   safer side: no step goes beyond the linear path; the last step is exactly the target), event
   ``rollout_step``, the marks move to the current counters and ``next_step_ms`` = block time +
   interval (so each gate window is at least one interval long; one step per block at most). After
   the last step: ``completed`` (``rollout_completed``).

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

**Superseded**: a change of the same parameter from any other source (a proposal's
``set_market_params``, a council steward change) halts the active rollout of it
(``superseded``, no revert; ``halt_superseded_rollouts``, called by ``dispatch.apply_effect`` and
``council.steward_change``), even a change to the value it already has: governance freezes a
rollout where it stands by setting the parameter to its current value (a ``neutral`` change).

**Counters**: ``state.liquidation_counts[ticker]`` counts ``liquidation`` events (one per
liquidation fill) per market, cumulative, incremented by the liquidation engine where it emits
them; bad debt is ``state.bad_debt[pool]``. Hash leaves ``("rollout", id)`` and
``("liquidations", ticker)``.
"""
from __future__ import annotations

from typing import Any, Final

from bastion.core import guardian
from bastion.core import events as ev
from bastion.core.events import Events, emit
from bastion.core.errors import ProtocolError
from bastion.core.governance.changes import Effect, ParamGroup, ParamPath, PlannedRollout, change_param, compare_risk
from bastion.core.messages import StartRollout
from bastion.core.state import ACTIVE, Market, ParamSource, Proposal, Rollout, State
from bastion.core.units import MS_PER_S, parse_decimal, parse_usdc


# start_rollout param -> (market attribute, riskier when higher); both on the market's lot grid
PARAMS: Final = {
    "max_open_interest": ("max_open_interest_lots", True),
    "min_order_size": ("min_order_lots", False),
}
GATES: Final = ("min_insurance_fund", "max_bad_debt", "max_liquidations")  # also the evaluation order
RUNNING, COMPLETED, HALTED = "active", "completed", "halted"  # rollout statuses


# --------------------------------------------------------------------------------------- queries
def compute_step_value(start: int, target: int, step: int, steps: int) -> int:
    """``start + (target - start) * step / steps`` with the fraction rounded toward ``start``."""
    moved = abs(target - start) * step // steps
    return start + moved if target >= start else start - moved


def get_param_path(rollout: Rollout) -> ParamPath:
    """The rolled-out parameter, e.g. ``markets.BTC-USD.max_open_interest_lots``."""
    return ParamPath(ParamGroup.MARKET, rollout.market, PARAMS[rollout.param][0])


def is_restricted_by_guardian(state: State, ticker: str) -> bool:
    """True while a guardian pause halts ``ticker`` (``market``, ``trading``) or makes it reduce-only:
    a due step of its rollouts waits."""
    return guardian.is_market_halted(state, ticker) or guardian.is_reduce_only(state, ticker)


def get_active_rollout(state: State, market: str, param: str) -> Rollout | None:
    """The running rollout of ``param`` on ``market``, if any."""
    for rollout in state.rollouts.values():
        if rollout.status == RUNNING and rollout.market == market and rollout.param == param:
            return rollout
    return None


# --------------------------------------------------------------------------------------- validation
def _validate(state: State, action: StartRollout) -> tuple[Market, int, int, dict[str, int]]:
    """The market, current value, target and gates of a valid ``start_rollout`` (raises otherwise)."""
    market = state.markets.get(action.market)
    if market is None:
        raise ProtocolError("unknown_market", f"unknown market {action.market!r}", field="market")
    if market.status != ACTIVE:
        raise ProtocolError("market_not_active", f"{market.ticker} is {market.status}", field="market",
                            status=market.status)
    if action.param not in PARAMS:
        raise ProtocolError("unknown_rollout_param", f"param must be one of {sorted(PARAMS)}", field="param")
    attr, _ = PARAMS[action.param]
    current = getattr(market, attr)
    target = parse_decimal(action.target, market.size_decimals, field="target")
    if target <= 0:
        raise ProtocolError("non_positive_value", "target must be positive", field="target")
    if target == current:
        raise ProtocolError("rollout_target_unchanged", f"{action.param} already is the target", field="target")
    max_steps = state.governance.max_rollout_steps
    if isinstance(action.steps, bool) or not 1 <= action.steps <= max_steps:
        raise ProtocolError("invalid_rollout_steps", f"steps must be from 1 to {max_steps}", field="steps",
                            maximum=max_steps)
    if abs(target - current) < action.steps:
        raise ProtocolError("rollout_step_below_grid", f"{action.steps} steps from {current} to {target} lots would "
                            "not all move the value by one lot", field="steps")
    if isinstance(action.interval_s, bool) or action.interval_s < 1:
        raise ProtocolError("invalid_rollout_interval", "interval_s must be at least 1", field="interval_s")
    gates = _parse_gates(action.gates)
    if get_active_rollout(state, market.ticker, action.param) is not None:
        raise ProtocolError("rollout_in_progress", f"{market.ticker} {action.param} already has an active rollout",
                            field="param")
    return market, current, target, gates


def _parse_gates(gates: dict[str, Any]) -> dict[str, int]:
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
    return parsed


def compute_start_rollout_changes(state: State, action: StartRollout) -> list[Effect]:
    """Validate ``action``; its one planned change carries the class of current -> target. Raises
    ``unknown_market``, ``market_not_active``, ``unknown_rollout_param``, ``non_positive_value``,
    ``rollout_target_unchanged``, ``invalid_rollout_steps``, ``rollout_step_below_grid``,
    ``invalid_rollout_interval``, ``unknown_field``, ``rollout_without_gates``, ``invalid_field``,
    ``rollout_in_progress`` and the decimal codes."""
    market, current, target, _ = _validate(state, action)
    attr, riskier_when_higher = PARAMS[action.param]
    risk = compare_risk(current, target, riskier_when_higher=riskier_when_higher)
    return [PlannedRollout(ParamPath(ParamGroup.MARKET, market.ticker, attr), current, target, risk)]


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
def start_rollouts(state: State, proposal: Proposal, events: Events) -> None:
    """Create the rollouts of an executing proposal. Called before its other changes apply, on the
    state its actions were just validated against, so the validation here cannot fail."""
    for action in proposal.actions:
        if not isinstance(action, StartRollout):
            continue
        market, current, target, gates = _validate(state, action)
        rollout = Rollout(
            rollout_id=len(state.rollouts) + 1, market=market.ticker, param=action.param, start=current,
            target=target, steps=action.steps, interval_ms=action.interval_s * MS_PER_S,
            min_insurance_fund_usdc=gates.get("min_insurance_fund"), max_bad_debt_usdc=gates.get("max_bad_debt"),
            max_liquidations=gates.get("max_liquidations"), revert_on_breach=action.revert_on_breach,
            proposal_id=proposal.proposal_id, created_height=state.height,
            next_step_ms=state.time_ms + action.interval_s * MS_PER_S,
            liquidations_mark=state.liquidation_counts.get(market.ticker, 0),
            bad_debt_mark=state.bad_debt.get(market.pool, 0))
        state.rollouts[rollout.rollout_id] = rollout
        state.touch(("rollout", rollout.rollout_id))
        emit(events, ev.RolloutStarted, rollout_id=rollout.rollout_id, market=rollout.market, param=rollout.param,
             start=current, target=target, steps=rollout.steps, interval_s=action.interval_s,
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


def _breached_gate(state: State, rollout: Rollout, market: Market) -> tuple[str, int, int] | None:
    """The first broken gate as ``(gate, observed, limit)``, or None when all hold (a value equal to
    its bound holds)."""
    fund = state.insurance_funds.get(market.pool, 0)
    if rollout.min_insurance_fund_usdc is not None and fund < rollout.min_insurance_fund_usdc:
        return "min_insurance_fund", fund, rollout.min_insurance_fund_usdc
    bad_debt = state.bad_debt.get(market.pool, 0) - rollout.bad_debt_mark
    if rollout.max_bad_debt_usdc is not None and bad_debt > rollout.max_bad_debt_usdc:
        return "max_bad_debt", bad_debt, rollout.max_bad_debt_usdc
    liquidations = state.liquidation_counts.get(market.ticker, 0) - rollout.liquidations_mark
    if rollout.max_liquidations is not None and liquidations > rollout.max_liquidations:
        return "max_liquidations", liquidations, rollout.max_liquidations
    return None


def advance_rollouts(state: State, events: Events) -> None:
    """End-of-block step: halt, step or complete every active rollout (module docstring)."""
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
        current = getattr(market, PARAMS[rollout.param][0])
        breach = _breached_gate(state, rollout, market)
        if breach is not None:
            gate, observed, limit = breach
            _halt(state, rollout, gate, events, gate=gate, observed=observed, limit=limit)
            if rollout.revert_on_breach and rollout.step > 0:
                change_param(state, path, current, rollout.start, source, events)
                rollout.reverted = changed = True
                emit(events, ev.RolloutReverted, rollout_id=rollout.rollout_id, market=rollout.market,
                     param=rollout.param, value=rollout.start)
            continue
        rollout.step += 1
        value = compute_step_value(rollout.start, rollout.target, rollout.step, rollout.steps)
        change_param(state, path, current, value, source, events)
        changed = True
        emit(events, ev.RolloutStep, rollout_id=rollout.rollout_id, market=rollout.market, param=rollout.param,
             step=rollout.step, steps=rollout.steps, value=value)
        rollout.liquidations_mark = state.liquidation_counts.get(market.ticker, 0)
        rollout.bad_debt_mark = state.bad_debt.get(market.pool, 0)
        rollout.next_step_ms = state.time_ms + rollout.interval_ms
        if rollout.step == rollout.steps:
            rollout.status = COMPLETED
            rollout.ended_height = state.height
            emit(events, ev.RolloutCompleted, rollout_id=rollout.rollout_id, market=rollout.market,
                 param=rollout.param, value=value)
        state.touch(("rollout", rollout.rollout_id))
    if changed:
        state.params_epoch += 1
