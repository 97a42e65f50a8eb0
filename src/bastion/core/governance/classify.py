"""Risk classification of a proposal by its effect on the exchange (issue 16).

``classify_proposal(state, actions, exclude=...)`` returns ``(changes, risk_class)``. The changes
are validated against the current state (``dispatch.compute_proposal_changes``, unchanged: what
executes is what the current state accepts). The class, however, is computed on the **pending
state**: a copy of the governed part of the state with every other *pending* proposal (status
``succeeded`` or ``queued``, in submission order) applied, so that two proposals that are each
harmless alone are judged by what they do together. A pending proposal whose actions no longer
validate on the pending state is left out of it (it could not execute either).

The class is the strictest (``changes.strictest``: "no change" counts only when nothing
changes) of, on the current state and again on the pending state,

* the **field classes** of the proposal's changes (each parameter against its value there:
  lowering a margin that a pending proposal raised is risk increasing), and
* the **effect floors** of ``RULES`` (the table in docs/protocol.md, "Risk classification by
  effect"), each comparing that state (``before``) with it plus this proposal (``after``).

So pending proposals can only make a proposal's class stricter. If the proposal's actions do not
validate on the pending state (say a pending proposal lists the same market), the pending side
reuses the current state's changes.

The same function runs at submission and at execution (``governance.execute``); a proposal whose
class at execution is stricter than the class it was voted with is refused with
``risk_class_escalated`` and **stays queued**: it may execute later in its window if the class
falls back (the other pending proposal is executed, canceled, vetoed or expires and the
combination no longer escalates), else it expires at the end of its window. Two interacting
proposals voted in the lower class therefore both wait; the remedy is one proposal voted in the
stricter class.

**New oracle operators.** An operator is *new* when it is in the after set and was not an operator
``governance.tiers.critical.voting_period_blocks`` blocks ago (read from the parameter history),
so adding two operators in two successive proposals counts both. Median capture (critical): the
new operators are at least half of the operator set, or at least half of some live market's
``min_sources`` (the oracle takes the lower median of the fresh submissions, so half of them set
it, and when honest operators are stale only ``min_sources`` fresh ones are needed).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bastion.core.errors import ProtocolError
from bastion.core.governance import actions
from bastion.core.governance.changes import (
    Change, Effect, Payment, PlannedRollout, apply_change, compare_tier_risk, strictest,
)
from bastion.core.dispute_state import DisputeResolution, IncidentOpening
from bastion.core.governance.dispatch import compute_proposal_changes
from bastion.core.messages import Action
from bastion.core.params import RISK_CLASSES
from bastion.core.state import ParamSource, State

RISK_REDUCING, NEUTRAL, RISK_INCREASING, CRITICAL = RISK_CLASSES
PENDING_STATUSES: Final = ("succeeded", "queued")
_LIVE: Final = ("active", "reduce_only", "paused")   # markets whose oracle still matters


# --------------------------------------------------------------------------------------- the pending state
def copy_governed_state(state: State) -> State:
    """A copy on which governed parameters and operations can be applied without touching ``state``:
    a shallow copy with every container a governance change writes to copied (markets, their
    oracle parameters and submissions, tiers, parameter groups, funds, council, guardian). A test checks
    that no object a change writes to is shared with ``state``."""
    sim = copy.copy(state)
    markets = {}
    for ticker, market in state.markets.items():
        clone = copy.copy(market)
        clone.oracle_params = copy.copy(market.oracle_params)
        clone.submissions = dict(market.submissions)
        markets[ticker] = clone
    sim.markets = markets
    sim.tiers = {tier_id: copy.copy(tier) for tier_id, tier in state.tiers.items()}
    for group in ("fees", "liquidation", "listing", "order_limits", "governance", "guardian", "bot_limits",
                  "insurance_staking", "maker_reward_params", "upgrade"):
        setattr(sim, group, copy.deepcopy(getattr(state, group)))
    sim.insurance_funds = dict(state.insurance_funds)
    # a fund transfer or merge moves the stakers' records too (core.staking)
    sim.stake_pools = {pool: copy.copy(record) for pool, record in state.stake_pools.items()}
    sim.stakes = dict(state.stakes)
    sim.unstake_requests = dict(state.unstake_requests)
    sim.withdrawals_paused_until = dict(state.withdrawals_paused_until)
    sim.steward_bounds = dict(state.steward_bounds)
    sim.ui_requirements = {ticker: copy.copy(record) for ticker, record in state.ui_requirements.items()}
    sim.param_history = list(state.param_history)
    sim.disputes = copy.copy(state.disputes)       # the dispute parameters (set_dispute_params)
    sim.disputes.params = copy.copy(state.disputes.params)
    sim.dirty = {}
    return sim


def apply_simulated(sim: State, changes: list[Effect]) -> None:
    """Apply validated changes to a copy: a rollout counts as reaching its target, a treasury
    payment only leaves the treasury (the receiving subaccount is not copied)."""
    source = ParamSource("proposal", "simulation", 0)
    for change in changes:
        match change:
            case PlannedRollout():
                apply_change(sim, change.path, change.target)
            case Change():
                apply_change(sim, change.path, change.new)
            case Payment():
                sim.fees_account -= change.amount
            case DisputeResolution():
                pass                # a capped award from a fund; the dispute book is not copied
            case IncidentOpening():
                pool = sim.markets[change.market].pool
                sim.insurance_funds[pool] -= min(change.budget, max(sim.insurance_funds[pool], 0))
            case _:
                actions.apply_operation(sim, change, source, [])


def build_pending_state(state: State, exclude: str | None = None) -> State:
    """The governed state with every pending proposal but ``exclude`` applied, in submission order."""
    sim = copy_governed_state(state)
    for proposal in state.proposals.values():
        if proposal.status not in PENDING_STATUSES or proposal.proposal_id == exclude:
            continue
        try:
            changes, _ = compute_proposal_changes(sim, proposal.actions)
        except ProtocolError:
            continue                # could not execute on this state either
        apply_simulated(sim, changes)
    return sim


# --------------------------------------------------------------------------------------- effect rules
@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the classification table: ``check(before, after, state)`` returns the floor class
    (``neutral`` when the rule does not apply)."""

    name: str
    floor: str
    summary: str
    check: Callable[[State, State, State], str]


def _if(condition: bool, risk: str) -> str:
    return risk if condition else NEUTRAL


def get_new_operators(after: State, state: State) -> list[str]:
    """Operators of ``after`` that were not operators ``tiers.critical.voting_period_blocks`` ago."""
    window = state.governance.tiers[CRITICAL].voting_period_blocks
    established = set(state.oracle_operators)
    for entry in reversed(state.param_history):     # undo the recent operator changes
        if entry.height < state.height - window:
            break
        if entry.name == "oracle_operators" and isinstance(entry.old, list) and isinstance(entry.new, list):
            established = (established - set(entry.new)) | set(entry.old)
    return [operator for operator in after.oracle_operators if operator not in established]


def _live_min_sources(after: State) -> list[int]:
    return [m.oracle_params.min_sources for m in after.markets.values() if m.status in _LIVE]


def _median_capture(before: State, after: State, state: State) -> str:
    if tuple(before.oracle_operators) == tuple(after.oracle_operators) and all(
            before.markets[t].oracle_params.min_sources == m.oracle_params.min_sources
            for t, m in after.markets.items() if t in before.markets):
        return NEUTRAL
    new = len(get_new_operators(after, state))
    if new == 0:
        return NEUTRAL
    return _if(2 * new >= len(after.oracle_operators) or any(2 * new >= k for k in _live_min_sources(after)),
               CRITICAL)


def _oracle_params_changed(before: State, after: State, _: State) -> str:
    return _if(any(before.markets[t].oracle_params != m.oracle_params for t, m in after.markets.items()
                   if t in before.markets), RISK_INCREASING)


def _profit_weight_raised(before: State, after: State, _: State) -> str:
    return _if(any(after.tiers[m.tier_id].unrealized_profit_weight_ppm
                   > before.tiers[before.markets[t].tier_id].unrealized_profit_weight_ppm
                   for t, m in after.markets.items() if t in before.markets), RISK_INCREASING)


def _market_margin_lowered(before: State, after: State, _: State) -> str:
    return _if(any(compare_tier_risk(before.tiers[before.markets[t].tier_id], after.tiers[m.tier_id])
                   == RISK_INCREASING for t, m in after.markets.items() if t in before.markets), RISK_INCREASING)


def _cap_widened(before: State, after: State, _: State) -> str:
    wider = any(m.max_open_interest_lots > before.markets[t].max_open_interest_lots
                for t, m in after.markets.items() if t in before.markets)
    wider |= after.listing.max_open_interest_usdc > before.listing.max_open_interest_usdc
    wider |= after.listing.min_initial_margin_ppm < before.listing.min_initial_margin_ppm
    wider |= after.steward_bounds != before.steward_bounds
    return _if(wider, RISK_INCREASING)


def _funds_moved(before: State, after: State, _: State) -> str:
    """Money leaves the treasury or a fund (a fund merged into the cross fund is not a loss)."""
    return _if(after.fees_account < before.fees_account or any(
        after.insurance_funds[pool] < amount for pool, amount in before.insurance_funds.items()
        if pool in after.insurance_funds), CRITICAL)


RULES: Final[tuple[Rule, ...]] = (
    Rule("oracle_operators_added", RISK_INCREASING, "an oracle operator is added",
         lambda b, a, s: _if(bool(set(a.oracle_operators) - set(b.oracle_operators)), RISK_INCREASING)),
    Rule("oracle_operators_removed", RISK_INCREASING, "an oracle operator is removed",
         lambda b, a, s: _if(bool(set(b.oracle_operators) - set(a.oracle_operators)), RISK_INCREASING)),
    Rule("oracle_params_changed", RISK_INCREASING, "a market's min_sources, staleness, deviation or move limit "
         "changes, in either direction", _oracle_params_changed),
    Rule("oracle_median_capture", CRITICAL, "new operators are at least half of the operator set or of a live "
         "market's min_sources", _median_capture),
    Rule("guardian_changed", CRITICAL, "the guardian's address or expiry changes",
         lambda b, a, s: _if((b.guardian.address, b.guardian.expires_ms) != (a.guardian.address,
                                                                             a.guardian.expires_ms), CRITICAL)),
    Rule("council_changed", CRITICAL, "the council's members or threshold change",
         lambda b, a, s: _if((b.council.members, b.council.threshold) != (a.council.members, a.council.threshold),
                             CRITICAL)),
    Rule("governance_changed", CRITICAL, "a governance parameter changes",
         lambda b, a, s: _if(b.governance != a.governance, CRITICAL)),
    Rule("profit_weight_raised", RISK_INCREASING, "a market's unrealised-profit weight rises (its tier's "
         "weight, or a move to a tier with a higher weight)", _profit_weight_raised),
    Rule("market_margin_lowered", RISK_INCREASING, "a market's effective initial or maintenance margin falls, or "
         "its open-interest caps rise (tier change or tier move)", _market_margin_lowered),
    Rule("cap_widened", RISK_INCREASING, "a market's open-interest cap, the listing bounds or a steward bound "
         "widen (any steward bound change counts)", _cap_widened),
    Rule("funds_moved", CRITICAL, "money leaves the treasury or an insurance fund", _funds_moved),
)


def compute_effect_floor(before: State, after: State, state: State) -> list[tuple[str, str]]:
    """``(rule name, class)`` of every rule that applies to ``before -> after``."""
    found = []
    for rule in RULES:
        risk = rule.check(before, after, state)
        if risk != NEUTRAL:
            found.append((rule.name, risk))
    return found


def classify_proposal(state: State, proposal_actions: tuple[Action, ...],
                      exclude: str | None = None) -> tuple[list[Effect], str]:
    """The proposal's changes (validated on the current state) and its class (module docstring):
    the strictest of its classes on the current state and on the pending state, each the field
    classes plus the effect floors. ``exclude`` is the proposal's own id at execution."""
    changes, current_class = compute_proposal_changes(state, proposal_actions)
    classes = [current_class, *_floors(state, state, changes)]
    before = build_pending_state(state, exclude)
    try:
        pending_changes, pending_class = compute_proposal_changes(before, proposal_actions)
    except ProtocolError:
        pending_changes, pending_class = changes, current_class
    classes += [pending_class, *_floors(state, before, pending_changes)]
    return changes, strictest(classes)


def _floors(state: State, before: State, changes: list[Effect]) -> list[str]:
    if before is state:
        before = copy_governed_state(state)
    after = copy_governed_state(before)
    apply_simulated(after, changes)
    return [risk for _, risk in compute_effect_floor(before, after, state)]
