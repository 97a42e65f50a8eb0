"""Canonical serialization and the state hash.

Every piece of state is a *leaf*: a key (``("sub", owner, number)``, ``("order", ticker, id)``,
``("conditional", id)``, ``("market", ticker)``, ``("twap", ticker)``, ``("global",)``, and for BGOV
``("bgov", address)``, ``("votes", delegatee, i)``, ``("delegated_supply", i)``, ``("total_supply", i)``, and for
proposals ``("governance",)`` (the governance parameters), ``("proposal", id)``, ``("ballot", id, voter)`` and
``("param_history", i)``, for staged rollouts ``("rollout", id)`` and ``("liquidations", ticker)``, and
for the guardian ``("guardian",)`` and ``("pause", scope, market)``, and for the council ``("council",)``,
``("attestation", proposal id, member)``, ``("stress_report", report hash)``, ``("steward_bound", name)``,
``("steward_cooldown", name)`` and ``("steward_approval", name, member)``, and ``("listing",)`` for the listing
parameters, ``("order_limits",)`` for the anti-spam order limits, and ``("nonces", sender)`` for each sender's spent
nonces, ``bastion.core.nonces``) and a canonical value (compact JSON of ints, strings, bools,
``null`` and lists, in a fixed field order; maps as lists sorted by key; the objects inside
proposals' actions with their keys sorted). A leaf's bytes are ``leaf_encoding``: compact ASCII
JSON of the key, a zero byte, compact ASCII JSON of the value (``_leaf_bytes`` is a faster path to
the same bytes); its digest is their SHA-256.

The state commits to its set of leaves with a lattice hash (LtHash, as Solana's SIMD-0215): each
leaf's digest is expanded to a vector of 1024 16-bit lanes, SHAKE128("bastion/leaf/v2" ||
digest) read as little-endian uint16; the state's vector is the lane-wise sum of its leaves'
vectors modulo 2**16; the state hash is SHA-256("bastion/state/v2" || the 2048 bytes of that
vector). A block changes the sum incrementally: a leaf whose digest changed has its old vector
subtracted and its new one added (``commit_state_hash``), so each block rehashes only the leaves it
touched (``State.touch``). ``compute_state_hash_full`` recomputes everything from scratch with the
documented encoding and a plain lane-by-lane sum; tests check that both always agree.

Why not the former sum of SHA-256 digests modulo 2**256: finding leaves whose digests sum to a
chosen value is a generalised birthday problem that Wagner's k-tree algorithm solves in about
2**(2*sqrt(256)) = 2**32 work, so a snapshot could be forged to match a logged state hash. For the
lane sum, a forgery (two different leaf sets with equal sums) is a short non-zero combination
of random vectors in (Z/2**16)**1024 that sums to zero: the short integer solution problem in
dimension 1024, for which lattice reduction and Wagner-style attacks cost well over 2**128 at these
parameters (Bellare-Micciancio's additive construction with Lewi et al.'s LtHash16 parameters,
the analysis SIMD-0215 relies on); the XOF is modelled as a random oracle and SHA-256 of the
leaf bytes as collision-resistant: 128-bit security overall, which SHAKE128 matches. See docs/node.md for the argument
and the measured cost.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import fields
from typing import Any, Final

from bastion.core.errors import InvariantViolation
from bastion.core.messages import ACTION_NAMES
from bastion.core.params import RISK_CLASSES
from bastion.core.state import State

# keys sorted: an action field holding an object (set_governance_params.params, set_steward_bounds.bounds,
# list_market.oracle) must hash the same after a snapshot's JSON round trip, which sorts keys
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, check_circular=False, sort_keys=True).encode


def serialize_leaf(state: State, key: tuple[Any, ...]) -> list[Any] | None:
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
                m.last_funding_hour, m.max_order_lots, m.twap_cumulative, m.twap_ms, m.settlement_price]
    if kind == "twap":  # the settlement price's minute checkpoints (bastion.core.twap)
        m = state.markets[key[1]]
        return [list(c) for c in m.twap_checkpoints] if m.twap_checkpoints else None
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
                 liq.settlement_twap_window_ms, liq.liquidation_grace_ms,
                 liq.max_liquidations_per_block, liq.max_deleveragings_per_block],
                sorted(state.insurance_funds.items()), state.seed_insurance,
                sorted(state.withdrawals_paused_until.items()), sorted(state.bad_debt.items()),
                state.fees_account, state.funding_account, state.total_deposits, state.total_withdrawals,
                state.next_order_id, sorted([owner, number, blocks] for (owner, number), blocks
                                            in state.liquidation_stalls.items()),
                sorted(state.liquidation_grace_until.items())]
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
                g.stress_max_es99_loss_ppm_of_fund, g.max_swing_extensions, g.proposal_fee_bgov, g.max_live_proposals,
                g.stress_max_loss_to_traders_usdc]
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
        pr = state.proposals.get(key[1])
        if pr is None:
            return None
        r = pr.rules
        return [pr.number, pr.proposer, pr.title, pr.description, [_action_value(a) for a in pr.actions],
                pr.deposit_bgov, pr.risk_class, pr.submitted_height, pr.snapshot_height, pr.deadline_height,
                [r.quorum_ppm, r.approval_threshold_ppm, r.voting_period_blocks, r.timelock_ms,
                 r.min_holding_age_blocks], pr.status, pr.yes, pr.no, pr.abstain, pr.veto, pr.quorum_height,
                pr.extended, pr.queued_ms, pr.closed_height, pr.deposit_state, pr.swing_extensions, pr.fee_bgov]
    if kind == "param_history":
        e = state.param_history[key[1]]
        return [e.name, e.old, e.new, e.height, e.source.kind, e.source.ref, e.source.number]
    if kind == "rollout":
        ro = state.rollouts[key[1]]
        return [ro.market, ro.param, ro.start, ro.target, ro.steps, ro.interval_ms, ro.min_insurance_fund_usdc,
                ro.max_bad_debt_usdc, ro.max_liquidations, ro.revert_on_breach, ro.proposal_id, ro.created_height,
                ro.next_step_ms, ro.liquidations_mark, ro.bad_debt_mark, ro.step, ro.status, ro.halt_reason,
                ro.reverted, ro.ended_height]
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
        rep = state.stress_reports.get(key[1])
        return None if rep is None else [rep.verdict, rep.depletion_probability_ppm, rep.var99_loss_usdc,
                                         rep.es99_loss_usdc, rep.insurance_funds_total_usdc, rep.registered_by,
                                         rep.registered_ms, rep.height]
    if kind == "steward_bound":
        b = state.steward_bounds.get(key[1])
        return None if b is None else [b.kind, b.max_change, b.cooldown_ms]
    if kind == "steward_cooldown":
        last_ms = state.steward_last_change_ms.get(key[1])
        return None if last_ms is None else [last_ms]
    if kind == "steward_approval":
        approval = state.steward_approvals.get(key[1], {}).get(key[2])
        return None if approval is None else [approval.value, approval.approved_ms, approval.height]
    if kind == "nonces":
        record = state.nonces.get(key[1])
        return None if record is None else [record.floor, record.last_ms, list(record.used)]
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


def _action_value(action: object) -> list[Any]:
    """An action as ``[type, [field, value], ...]`` in field order (values are JSON data, objects
    such as ``start_rollout.gates`` with their keys sorted: a snapshot does not keep key order)."""
    return [ACTION_NAMES[type(action)],
            *[[f.name, _sorted_keys(getattr(action, f.name))] for f in fields(action)]]  # type: ignore[arg-type]


def _sorted_keys(value: object) -> object:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    return value


def leaf_encoding(key: tuple[Any, ...], value: list[Any]) -> bytes:
    """A leaf's bytes, the definition: compact ASCII JSON of the key, a zero byte, compact ASCII JSON
    of the value (``_leaf_bytes`` is the fast path to the same bytes)."""
    return _DUMPS(list(key)).encode() + b"\x00" + _DUMPS(value).encode()


def leaf_digest(key: tuple[Any, ...], value: list[Any]) -> bytes:
    """SHA-256 of a leaf's encoding (what ``State.leaf_hashes`` keeps per leaf)."""
    return hashlib.sha256(leaf_encoding(key, value)).digest()


LANES: Final = 1024                # 16-bit lanes of a lattice hash vector
VECTOR_BYTES: Final = 2 * LANES
_LEAF_DOMAIN: Final = b"bastion/leaf/v2"
_STATE_DOMAIN: Final = b"bastion/state/v2"


def leaf_vector_bytes(digest: bytes) -> bytes:
    """A leaf's lattice-hash vector: SHAKE128("bastion/leaf/v2" || leaf digest), 2048 bytes, read as
    1024 little-endian 16-bit lanes."""
    return hashlib.shake_128(_LEAF_DOMAIN + digest).digest(VECTOR_BYTES)


def commitment(vector: bytes) -> str:
    """The state hash of a lane-sum vector: SHA-256("bastion/state/v2" || the 2048 bytes), hex."""
    return hashlib.sha256(_STATE_DOMAIN + vector).hexdigest()


_BOOL: Final = ("false", "true")


def _verbatim(text: str, quotes: int) -> bool:
    """True when ``text``, compact JSON formatted by hand with ``quotes`` quote characters around its
    strings, is what the JSON encoder writes: printable ASCII, no backslash, and no quote inside a
    string (there would be more than ``quotes``). Otherwise a string needs escaping."""
    return text.isascii() and text.isprintable() and "\\" not in text and text.count('"') == quotes


def _leaf_bytes(state: State, key: tuple[Any, ...]) -> bytes | None:
    """``key || 0 || value`` exactly as ``leaf_encoding`` encodes it, formatted directly for the most
    frequent leaves (orders, subaccounts, nonces) when no string in them needs JSON escaping
    (``_verbatim``: addresses, tickers and the fixed words never do; anything else, such as a string
    with a newline, a quote or non-ASCII text, goes through the generic encoder). A property test
    checks the equality on hostile strings."""
    kind = key[0]
    if kind == "order":
        o = state.markets[key[1]].book.get(key[2])
        if o is None:
            return None
        good_til = "null" if o.good_til_ms is None else o.good_til_ms
        head = f'["order","{key[1]}",{key[2]}]'
        body = (f'[{o.side},{o.price},{o.remaining},{o.size},"{o.owner}",{o.number},{o.client_id},'
                f'"{o.time_in_force}",{_BOOL[o.reduce_only]},{good_til},"{o.self_trade}",{o.placed_ms}]')
        if _verbatim(head + body, 10):
            return (head + "\x00" + body).encode()
    elif kind == "sub":
        sub = state.subaccounts.get((key[1], key[2]))
        if sub is None:
            return None
        positions = ",".join(f'["{t}",{p.size},{p.funding_index},{p.cost}]' for t, p in sorted(sub.positions.items()))
        overrides = ",".join(f'["{t}",{v}]' for t, v in sorted(sub.imf_overrides.items()))
        isolated = "null" if sub.isolated_market is None else f'"{sub.isolated_market}"'
        head = f'["sub","{key[1]}",{key[2]}]'
        body = f'[{sub.balance},"{sub.mode}",{isolated},[{positions}],[{overrides}]]'
        quotes = 6 + 2 * (len(sub.positions) + len(sub.imf_overrides) + (sub.isolated_market is not None))
        if _verbatim(head + body, quotes):
            return (head + "\x00" + body).encode()
    elif kind == "nonces":
        record = state.nonces.get(key[1])
        if record is None:
            return None
        head = f'["nonces","{key[1]}"]'
        if _verbatim(head, 4):
            return f'{head}\x00[{record.floor},{record.last_ms},[{",".join(map(str, record.used))}]]'.encode()
    value = serialize_leaf(state, key)
    if value is None:
        return None
    return leaf_encoding(key, value)


# Lane-wise sums with Python integers: a vector is the integer of its 2048 bytes (little-endian),
# lane i in bits 16i..16i+15. ``_EVEN`` picks the even lanes: ``v & _EVEN`` and ``(v >> 16) & _EVEN``
# hold the even and odd lanes each in a 32-bit slot, so up to 65,535 vectors add (or subtract, with
# an offset) without a carry reaching the next slot; one mask at the end takes every lane mod 2**16.
_EVEN: Final = int.from_bytes(b"\xff\xff\x00\x00" * (LANES // 2), "little")
_ONES: Final = int.from_bytes(b"\x01\x00\x00\x00" * (LANES // 2), "little")  # 1 in every slot
_FOLD: Final = 30_000  # vectors per slot sum before folding: base + 2 * 2**16 * count stays below 2**32


class _LaneSum:
    """Adds and subtracts vectors lane-wise mod 2**16 (see ``_EVEN``), in two slot sums per sign
    (``compute_state_hash_full`` does the same sum lane by lane; tests compare them)."""

    __slots__ = ("plus_even", "plus_odd", "minus_even", "minus_odd", "count", "base")

    def __init__(self, base: int) -> None:
        self.base = base  # the starting vector, as an integer
        self.plus_even = self.plus_odd = self.minus_even = self.minus_odd = 0
        self.count = 0

    def add(self, vector: int) -> None:
        self.plus_even += vector & _EVEN
        self.plus_odd += (vector >> 16) & _EVEN
        self.count += 1
        if self.count >= _FOLD:
            self.fold()

    def sub(self, vector: int) -> None:
        self.minus_even += vector & _EVEN
        self.minus_odd += (vector >> 16) & _EVEN
        self.count += 1
        if self.count >= _FOLD:
            self.fold()

    def fold(self) -> None:
        self.base = self.result()
        self.plus_even = self.plus_odd = self.minus_even = self.minus_odd = 0
        self.count = 0

    def result(self) -> int:
        """The base plus the added vectors minus the subtracted ones, lane-wise mod 2**16. Each slot
        gets ``count * 2**16`` first, more than the subtracted lanes can take away, so no slot goes
        negative; that offset is 0 mod 2**16."""
        offset = (self.count << 16) * _ONES
        base = self.base
        even = ((base & _EVEN) + self.plus_even + offset - self.minus_even) & _EVEN
        odd = (((base >> 16) & _EVEN) + self.plus_odd + offset - self.minus_odd) & _EVEN
        return even | (odd << 16)


def commit_state_hash(state: State) -> str:
    """Rehash the leaves touched since the last commit and return the new state hash: for each
    leaf whose digest changed, its old vector leaves the lane sum and its new one enters it. The
    vectors of the ``_CACHED_VECTORS`` leaves written last are kept (``State.leaf_vectors``, oldest
    first, checked against the leaf's digest) so that a leaf rewritten soon after needs no SHAKE to
    subtract its old vector."""
    leaf_hashes, cache = state.leaf_hashes, state.leaf_vectors
    lanes = _LaneSum(state.hash_accumulator)
    sha256, shake_128, from_bytes = hashlib.sha256, hashlib.shake_128, int.from_bytes
    for key in state.dirty:
        old = leaf_hashes.get(key)
        data = _leaf_bytes(state, key)
        new = None if data is None else sha256(data).digest()
        if new == old:
            continue
        if old is not None:
            cached = cache.pop(key, None)
            if cached is not None and cached[0] == old:
                lanes.sub(cached[1])
            else:
                lanes.sub(from_bytes(shake_128(_LEAF_DOMAIN + old).digest(VECTOR_BYTES), "little"))
        if new is None:
            del leaf_hashes[key]
        else:
            leaf_hashes[key] = new
            vector = from_bytes(shake_128(_LEAF_DOMAIN + new).digest(VECTOR_BYTES), "little")
            lanes.add(vector)
            cache[key] = (new, vector)
            if len(cache) > 2 * _CACHED_VECTORS:
                _trim(cache)
    state.dirty.clear()
    _trim(cache)
    state.hash_accumulator = lanes.result()
    state.state_hash = commitment(state.hash_accumulator.to_bytes(VECTOR_BYTES, "little"))
    return state.state_hash


_CACHED_VECTORS: Final = 4_096  # vectors of recently written leaves kept (8 MB) to subtract them without a SHAKE


def _trim(cache: dict[tuple[Any, ...], tuple[bytes, int]]) -> None:
    """Drop the oldest entries beyond ``_CACHED_VECTORS`` (a dict keeps insertion order, and a leaf
    written again was popped and re-inserted at the end)."""
    excess = len(cache) - _CACHED_VECTORS
    if excess > 0:
        for key in list(itertools.islice(cache, excess)):
            del cache[key]


def iter_leaf_keys(state: State) -> Iterator[tuple[Any, ...]]:
    """Every leaf key of the current state, in a deterministic order."""
    yield ("global",)
    for ticker, market in state.markets.items():
        yield ("market", ticker)
        if market.twap_checkpoints:
            yield ("twap", ticker)
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
    for sender in state.nonces:
        yield ("nonces", sender)


def compute_state_hash_full(state: State) -> str:
    """The state hash recomputed from every leaf with the documented encoding (``leaf_encoding``),
    ignoring the incremental bookkeeping, its fast paths and its vector cache. The lane-wise sum only
    adds: even and odd lanes in 32-bit slots (see ``_EVEN``), reduced mod 2**16 every 65,535 leaves
    and at the end (a lane-by-lane loop gives the same bytes, about fifty times slower)."""
    even = odd = 0
    count = 0
    for key in iter_leaf_keys(state):
        value = serialize_leaf(state, key)
        if value is None:
            raise InvariantViolation(f"leaf {key} is listed but does not exist")
        vector = int.from_bytes(leaf_vector_bytes(leaf_digest(key, value)), "little")
        even += vector & _EVEN
        odd += (vector >> 16) & _EVEN
        count += 1
        if count == 0xFFFF:  # 65,535 x (2**16 - 1) < 2**32: no slot has carried into the next yet
            even, odd, count = even & _EVEN, odd & _EVEN, 0
    total = (even & _EVEN) | ((odd & _EVEN) << 16)
    return commitment(total.to_bytes(VECTOR_BYTES, "little"))
