"""Canonical serialization and the state hash.

Every piece of state is a *leaf*: a key (``("sub", owner, number)``, ``("order", ticker, id)``,
``("conditional", id)``, ``("market", ticker)``, ``("global",)``, and for BGOV ``("bgov", address)``,
``("votes", delegatee, i)``, ``("delegated_supply", i)``, ``("total_supply", i)``, and for proposals
``("governance",)`` (the governance parameters), ``("proposal", id)``, ``("ballot", id, voter)`` and
``("param_history", i)``, for staged rollouts ``("rollout", id)`` and ``("liquidations", ticker)``, and
for the guardian ``("guardian",)`` and ``("pause", scope, market)``, and for the council ``("council",)``, ``("attestation", proposal id,
member)``, ``("stress_report", report hash)``, ``("steward_bound", name)``, ``("steward_cooldown", name)`` and
``("steward_approval", name, member)``, and ``("listing",)`` for the listing parameters, ``("order_limits",)``
for the anti-spam order limits)
and a canonical value (compact JSON of ints, strings,
bools, ``null`` and lists, in a fixed field order; maps as lists sorted by key; the objects inside
proposals' actions with their keys sorted). A leaf's digest
is ``SHA-256(key || 0x00 || value)`` read as an integer; the state commits to the multiset of
leaves through their sum modulo 2**256 (an incremental "AdHash"), so each block rehashes only the
leaves it touched (``State.touch``), and the block's state hash is
``SHA-256("bastion/state/v1" || accumulator)``. ``compute_state_hash_full`` recomputes everything
from scratch; tests check that both always agree.

The sum is a commitment for replay verification and divergence detection between honest nodes.
It is not a light-client proof structure (no inclusion proofs); a Merkle/IAVL commitment for that
is a later adapter concern.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import fields
from typing import Final

from bastion.core.errors import InvariantViolation
from bastion.core.messages import ACTION_NAMES
from bastion.core.params import RISK_CLASSES
from bastion.core.state import State

_MOD: Final = 1 << 256
# keys sorted: an action field holding an object (set_governance_params.params, set_steward_bounds.bounds,
# list_market.oracle) must hash the same after a snapshot's JSON round trip, which sorts keys
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, check_circular=False, sort_keys=True).encode


def serialize_leaf(state: State, key: tuple) -> list | None:
    """The canonical value of a leaf, or None when the object no longer exists."""
    kind = key[0]
    if kind == "sub":
        sub = state.subaccounts.get((key[1], key[2]))
        if sub is None:
            return None
        return [sub.balance, sub.mode, sub.isolated_market,
                [[t, p.size, p.funding_index, p.cost] for t, p in sorted(sub.positions.items())],
                sorted(sub.imf_overrides.items())]
    if kind == "order":
        market = state.markets[key[1]]
        o = market.book.get(key[2])
        if o is None:
            return None
        return [o.side, o.price, o.remaining, o.size, o.owner, o.number, o.client_id, o.time_in_force,
                o.reduce_only, o.good_til_ms, o.self_trade, o.placed_ms]
    if kind == "conditional":
        c = state.conditional_orders.get(key[1])
        if c is None:
            return None
        t = c.terms
        return [c.order_type, c.trigger_ticks, c.placed_ms, t.market, t.owner, t.number, t.client_id, t.side,
                t.order_type, t.lots, t.ticks, t.time_in_force, t.reduce_only, t.good_til_ms, t.self_trade]
    if kind == "market":
        m = state.markets[key[1]]
        p = m.oracle_params
        return [m.size_decimals, m.price_decimals, m.tier_id, m.min_order_lots, m.max_open_interest_lots,
                m.maker_fee_ppm, m.taker_fee_ppm, m.isolated_only, m.status,
                [p.min_sources, p.max_staleness_ms, p.max_source_deviation_ppm, p.max_move_per_block_ppm],
                m.oracle_price, m.stale, sorted([op, t, ms] for op, (t, ms) in m.submissions.items()),
                m.open_interest, m.funding_index, m.premium_minute, m.block_premiums, m.minute_samples,
                m.last_funding_hour, m.max_order_lots]
    if kind == "global":
        f, fees, liq = state.funding, state.fees, state.liquidation
        return [state.chain_id, state.genesis_time_ms, state.height, state.time_ms, state.bridge_operator,
                list(state.oracle_operators),
                [[t.tier_id, t.name, t.initial_margin_ppm, t.maintenance_fraction_ppm, t.oi_lower_cap_usdc,
                  t.oi_upper_cap_usdc, t.impact_notional_usdc, t.unrealized_profit_weight_ppm]
                 for _, t in sorted(state.tiers.items())],
                [f.clamp_factor_ppm, f.premium_vote_clamp_factor_ppm, f.default_funding_ppm, f.sample_ms, f.tick_ms],
                [fees.insurance_share_ppm],
                [liq.max_liquidation_fee_ppm, liq.bankruptcy_adjustment_ppm, liq.spread_to_maintenance_ppm,
                 liq.min_position_notional_usdc, liq.max_position_portion_ppm, liq.max_notional_per_block_usdc,
                 liq.max_insurance_loss_per_block_usdc, liq.withdrawal_pause_blocks, liq.backstop_max_notional_usdc,
                 liq.backstop_max_fund_share_ppm, liq.backstop_unwind_portion_ppm, liq.backstop_after_blocks,
                 liq.max_liquidations_per_block, liq.max_deleveragings_per_block],
                sorted(state.insurance_funds.items()), state.seed_insurance,
                sorted(state.withdrawals_paused_until.items()), sorted(state.bad_debt.items()),
                state.fees_account, state.funding_account, state.total_deposits, state.total_withdrawals,
                state.next_order_id, sorted([owner, number, blocks] for (owner, number), blocks
                                            in state.liquidation_stalls.items())]
    if kind == "bgov":  # a BGOV holder or delegator (bastion.core.votes)
        balance, delegate = state.bgov.get(key[1], 0), state.bgov_delegates.get(key[1])
        if not balance and delegate is None:
            return None
        return [balance, delegate]
    if kind == "governance":
        g = state.governance
        return [g.voting_delay_blocks, g.proposal_threshold_bgov, g.min_deposit_bgov, g.execution_window_ms,
                g.veto_threshold_numerator, g.veto_threshold_denominator, g.late_quorum_extension_blocks,
                g.max_rollout_steps,
                g.attestation_max_age_ms,
                [[name, t.quorum_ppm, t.approval_threshold_ppm, t.voting_period_blocks, t.timelock_ms,
                  t.min_holding_age_blocks] for name, t in ((n, g.tiers[n]) for n in RISK_CLASSES)],
                g.guardian_max_pause_ms, g.guardian_unpause_grace_ms,
                g.stress_max_depletion_probability_ppm, g.stress_max_var99_loss_ppm_of_fund,
                g.stress_max_es99_loss_ppm_of_fund]
    if kind == "guardian":  # absent while there is no guardian and no pause key was used
        guardian = state.guardian
        if guardian.address is None and not guardian.pauses_used:
            return None
        return [guardian.address, guardian.expires_ms,
                [[scope, market, term] for (scope, market), term in guardian.pauses_used.items()]]
    if kind == "pause":
        pause = state.pauses.get((key[1], key[2]))
        return None if pause is None else [pause.start_ms, pause.end_ms]
    if kind == "listing":
        listing, defaults = state.listing, state.listing.oracle
        return [[defaults.min_sources, defaults.max_staleness_ms, defaults.max_source_deviation_ppm,
                 defaults.max_move_per_block_ppm], listing.min_initial_margin_ppm, listing.max_open_interest_usdc]
    if kind == "order_limits":
        limits = state.order_limits
        return [[list(step) for step in limits.open_order_tiers], limits.max_open_orders,
                limits.min_order_notional_usdc]
    if kind == "proposal":
        pr = state.proposals[key[1]]
        r = pr.rules
        return [pr.number, pr.proposer, pr.title, pr.description, [_action_value(a) for a in pr.actions], pr.deposit_bgov,
                pr.risk_class, pr.submitted_height, pr.snapshot_height, pr.deadline_height,
                [r.quorum_ppm, r.approval_threshold_ppm, r.voting_period_blocks, r.timelock_ms,
                 r.min_holding_age_blocks], pr.status, pr.yes, pr.no, pr.abstain, pr.veto, pr.quorum_height,
                pr.extended, pr.queued_ms, pr.closed_height, pr.deposit_state]
    if kind == "param_history":
        e = state.param_history[key[1]]
        return [e.name, e.old, e.new, e.height, e.source.kind, e.source.ref, e.source.number]
    if kind == "rollout":
        ro = state.rollouts[key[1]]
        return [ro.market, ro.param, ro.start, ro.target, ro.steps, ro.interval_ms, ro.min_insurance_fund_usdc,
                ro.max_bad_debt_usdc, ro.max_liquidations, ro.revert_on_breach, ro.proposal_id, ro.created_height,
                ro.next_step_ms, ro.liquidations_mark, ro.bad_debt_mark, ro.step, ro.status, ro.halt_reason, ro.reverted,
                ro.ended_height]
    if kind == "liquidations":
        return [state.liquidation_counts[key[1]]]
    if kind == "ballot":
        option, weight, reason = state.proposals[key[1]].ballots[key[2]]
        return [option, weight, reason]
    if kind == "council":
        return [list(state.council.members), state.council.threshold]
    if kind == "attestation":
        a = state.attestations.get(key[1], {}).get(key[2])
        return None if a is None else [a.report_hash, a.verdict, a.attested_ms, a.height]
    if kind == "stress_report":
        r = state.stress_reports.get(key[1])
        return None if r is None else [r.verdict, r.depletion_probability_ppm, r.var99_loss_usdc, r.es99_loss_usdc,
                                       r.insurance_funds_total_usdc, r.registered_by, r.registered_ms, r.height]
    if kind == "steward_bound":
        b = state.steward_bounds.get(key[1])
        return None if b is None else [b.kind, b.max_change, b.cooldown_ms]
    if kind == "steward_cooldown":
        last_ms = state.steward_last_change_ms.get(key[1])
        return None if last_ms is None else [last_ms]
    if kind == "steward_approval":
        approval = state.steward_approvals.get(key[1], {}).get(key[2])
        return None if approval is None else [approval.value, approval.approved_ms, approval.height]
    # one (height, value) checkpoint per leaf: a change never rehashes the history before it
    if kind == "votes":
        checkpoints = state.vote_checkpoints.get(key[1], [])
    elif kind == "delegated_supply":
        checkpoints = state.delegated_supply_checkpoints
    elif kind == "total_supply":
        checkpoints = state.total_supply_checkpoints
    else:
        raise ValueError(f"unknown leaf kind {kind!r}")
    index = key[-1]
    return list(checkpoints[index]) if index < len(checkpoints) else None


def _action_value(action: object) -> list:
    """An action as ``[type, [field, value], ...]`` in field order (values are JSON data, objects
    such as ``start_rollout.gates`` with their keys sorted: a snapshot does not keep key order)."""
    return [ACTION_NAMES[type(action)],
            *[[f.name, _sorted_keys(getattr(action, f.name))] for f in fields(action)]]  # type: ignore[arg-type]


def _sorted_keys(value: object) -> object:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    return value


def leaf_digest(key: tuple, value: list) -> int:
    """The digest of a leaf from its generic value (the definition; see ``_leaf_bytes`` for the fast path)."""
    data = _DUMPS(list(key)).encode() + b"\x00" + _DUMPS(value).encode()
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


_BOOL: Final = ("false", "true")


def _leaf_bytes(state: State, key: tuple) -> bytes | None:
    """``key || 0 || value`` exactly as ``leaf_digest`` encodes it, formatted directly for the two
    most frequent leaves (orders and subaccounts). Safe without JSON escaping because addresses are
    lowercase hex, tickers match ``[A-Z0-9][A-Z0-9._/-]*`` (genesis checks) and the remaining
    strings come from fixed sets; a test checks the equality on random states."""
    kind = key[0]
    if kind == "order":
        o = state.markets[key[1]].book.get(key[2])
        if o is None:
            return None
        good_til = "null" if o.good_til_ms is None else o.good_til_ms
        return (f'["order","{key[1]}",{key[2]}]\x00[{o.side},{o.price},{o.remaining},{o.size},"{o.owner}",'
                f'{o.number},{o.client_id},"{o.time_in_force}",{_BOOL[o.reduce_only]},{good_til},'
                f'"{o.self_trade}",{o.placed_ms}]').encode()
    if kind == "sub":
        sub = state.subaccounts.get((key[1], key[2]))
        if sub is None:
            return None
        positions = ",".join(f'["{t}",{p.size},{p.funding_index},{p.cost}]' for t, p in sorted(sub.positions.items()))
        overrides = ",".join(f'["{t}",{v}]' for t, v in sorted(sub.imf_overrides.items()))
        isolated = "null" if sub.isolated_market is None else f'"{sub.isolated_market}"'
        return (f'["sub","{key[1]}",{key[2]}]\x00[{sub.balance},"{sub.mode}",{isolated},[{positions}],'
                f'[{overrides}]]').encode()
    value = serialize_leaf(state, key)
    if value is None:
        return None
    return _DUMPS(list(key)).encode() + b"\x00" + _DUMPS(value).encode()


def _finish(accumulator: int) -> str:
    return hashlib.sha256(b"bastion/state/v1" + accumulator.to_bytes(32, "big")).hexdigest()


def commit_state_hash(state: State) -> str:
    """Rehash the leaves touched since the last commit and return the new state hash."""
    leaf_hashes = state.leaf_hashes
    accumulator = state.hash_accumulator
    sha256, from_bytes = hashlib.sha256, int.from_bytes
    for key in state.dirty:
        old = leaf_hashes.pop(key, 0)
        data = _leaf_bytes(state, key)
        new = 0 if data is None else from_bytes(sha256(data).digest(), "big")
        if new:
            leaf_hashes[key] = new
        accumulator += new - old  # exact integers: one reduction at the end gives the same sum
    state.dirty.clear()
    state.hash_accumulator = accumulator % _MOD
    state.state_hash = _finish(state.hash_accumulator)
    return state.state_hash


def iter_leaf_keys(state: State) -> Iterator[tuple]:
    """Every leaf key of the current state, in a deterministic order."""
    yield ("global",)
    for ticker, market in state.markets.items():
        yield ("market", ticker)
        for order in market.book.orders():
            yield ("order", ticker, order.order_id)
    for order_id in state.conditional_orders:
        yield ("conditional", order_id)
    for owner, number in state.subaccounts:
        yield ("sub", owner, number)
    for address in sorted(set(state.bgov) | set(state.bgov_delegates)):
        yield ("bgov", address)
    for delegatee, checkpoints in state.vote_checkpoints.items():
        for index in range(len(checkpoints)):
            yield ("votes", delegatee, index)
    for index in range(len(state.delegated_supply_checkpoints)):
        yield ("delegated_supply", index)
    for index in range(len(state.total_supply_checkpoints)):
        yield ("total_supply", index)
    yield ("governance",)
    yield ("listing",)
    yield ("order_limits",)
    for proposal_id, proposal in state.proposals.items():
        yield ("proposal", proposal_id)
        for voter in proposal.ballots:
            yield ("ballot", proposal_id, voter)
    for index in range(len(state.param_history)):
        yield ("param_history", index)
    for rollout_id in state.rollouts:
        yield ("rollout", rollout_id)
    for ticker in state.liquidation_counts:
        yield ("liquidations", ticker)
    if state.guardian.address is not None or state.guardian.pauses_used:
        yield ("guardian",)
    for pause_key in state.pauses:
        yield ("pause", *pause_key)
    yield ("council",)
    for proposal_id, attestations in state.attestations.items():
        for member in attestations:
            yield ("attestation", proposal_id, member)
    for report_hash in state.stress_reports:
        yield ("stress_report", report_hash)
    for name in state.steward_bounds:
        yield ("steward_bound", name)
    for name in state.steward_last_change_ms:
        yield ("steward_cooldown", name)
    for name, approvals in state.steward_approvals.items():
        for member in approvals:
            yield ("steward_approval", name, member)


def compute_state_hash_full(state: State) -> str:
    """The state hash recomputed from every leaf, ignoring the incremental bookkeeping."""
    accumulator = 0
    for key in iter_leaf_keys(state):
        value = serialize_leaf(state, key)
        if value is None:
            raise InvariantViolation(f"leaf {key} is listed but does not exist")
        accumulator = (accumulator + leaf_digest(key, value)) % _MOD
    return _finish(accumulator)
