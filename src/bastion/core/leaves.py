"""The state's leaves, declared once: ``LEAF_KINDS``.

The state hash (``bastion.core.hashing``) commits to a set of *leaves*; a leaf is a key, a tuple
whose first element names its kind (``("sub", owner, number)``, ``("order", ticker, id)``,
``("global",)``, ...), and a canonical value. Every kind is one ``LeafKind`` record below, and
everything that has to know the kinds is derived from that table:

* ``serialize_leaf`` (a leaf's canonical value) calls the kind's ``value``;
* ``leaf_bytes`` (a leaf's hashed bytes) calls the kind's ``fast`` encoder when it has one (the
  most frequent leaves: orders, subaccounts, nonces), else encodes ``value`` with ``leaf_encoding``;
* ``iter_leaf_keys`` (every leaf of a state) walks the kinds in table order with their ``keys``,
  and under each key of a kind the keys of the kinds declared ``within`` it (a market's TWAP
  checkpoints and orders, a proposal's ballots);
* snapshots (``bastion.core.snapshot``) write and read the document fields each kind lists in
  ``snapshot`` (``Section``: one top-level field, its writer and its reader); a kind ``within``
  another is written inside its parent's field;
* the table of leaf kinds in docs/protocol.md ("State hash") is ``leaf_table()``; a test keeps it
  current.

A new piece of state is its ``State`` field, one record here, ``touch`` calls where it changes and a
new snapshot ``FORMAT``; nothing else lists kinds (a test fails on a ``State`` field that no kind's
snapshot fields hold and that is not named as derived).

The encoding rules: a leaf's bytes are compact ASCII JSON of the key, a zero byte, compact ASCII
JSON of the value (``leaf_encoding``); values are ints, strings, bools, ``null`` and lists in a
fixed field order, maps as lists sorted by key, the objects inside proposals' actions with their
keys sorted. A ``value`` returns None when the object no longer exists (the leaf leaves the state).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from bastion.core.agents import rebuild_agent_owners
from bastion.core.book import Order
from bastion.core.deadman import rebuild_cancel_queue
from bastion.core.messages import ACTION_NAMES, decode_action
from bastion.core.nonces import rebuild_nonce_expiry
from bastion.core.params import (
    RISK_CLASSES, FeeParams, FundingParams, GovernanceParams, GovernanceTier, LiquidationParams, ListingParams,
    LiquidityTier, MakerRewardParams, OracleParams, OrderLimitParams, BotLimitParams, UiRequirements,
)
from bastion.core.params import InsuranceStakingParams
from bastion.core.state import StakePool, UnstakeRequest
from bastion.core.state import AgentGrant, CounterReport, DelegateExposure, MakerRewards, MarketExposure
from bastion.core.state import ScheduledUpgrade
from bastion.core.dispute_state import FINAL_STATUSES, Dispute, DisputeBook, DisputeTarget, IncidentProgram
from bastion.core.params import DisputeParams
from bastion.core.state import (
    Attestation, CancelSchedule, ConditionalOrder, Council, Guardian, Market, NonceRecord, OrderTerms,
    ParamHistoryEntry, ParamSource, Pause, Position, Proposal, Rollout, State, StewardApproval, StewardBound,
    StressReportRecord, Subaccount, TwapOrder,
)

Key = tuple[Any, ...]
Value = list[Any] | None
Json = Any  # plain JSON data: ints, strings, bools, None, lists and str-keyed dicts


@dataclass(frozen=True, slots=True)
class Section:
    """One top-level field of a snapshot document: ``write`` gives its JSON data from a state,
    ``read`` puts that data back into a state being rebuilt (fields are read in table order)."""

    name: str
    write: Callable[[State], Json]
    read: Callable[[State, Json], None]


@dataclass(frozen=True, slots=True)
class LeafKind:
    """One kind of leaf: its key, its canonical value, how to list its keys and how a snapshot keeps it.

    ``key`` names the key's parts after the kind name and ``holds`` says what the value holds (both
    for the docs table). A top-level kind lists its keys with ``keys(state)``; a kind
    ``within`` a parent kind lists them with ``keys_within(state, parent key)`` and is written in
    its parent's snapshot field (``snapshot`` is empty). ``fast``, if set, returns the same bytes as
    ``leaf_encoding(key, value(state, key))`` (or None when the value is None), faster."""

    name: str
    key: tuple[str, ...]
    holds: str
    value: Callable[[State, Key], Value]
    keys: Callable[[State], Iterable[Key]] | None = None
    within: str | None = None
    keys_within: Callable[[State, Key], Iterable[Key]] | None = None
    fast: Callable[[State, Key], bytes | None] | None = None
    snapshot: tuple[Section, ...] = ()


# --------------------------------------------------------------------------------------- encoding
# keys sorted: an action field holding an object (set_governance_params.params, set_steward_bounds.bounds,
# list_market.oracle) must hash the same after a snapshot's JSON round trip, which sorts keys
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, check_circular=False, sort_keys=True).encode


def leaf_encoding(key: Key, value: list[Any]) -> bytes:
    """A leaf's bytes, the definition: compact ASCII JSON of the key, a zero byte, compact ASCII JSON
    of the value (a kind's ``fast`` encoder is a faster path to the same bytes)."""
    return _DUMPS(list(key)).encode() + b"\x00" + _DUMPS(value).encode()


_BOOL: Final = ("false", "true")


def _plain(text: str) -> bool:
    """True when the JSON encoder writes the string ``text`` between its quotes unchanged: printable
    ASCII without a quote or a backslash (anything else it escapes). The fast encoders check all
    the strings of a leaf at once, concatenated."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def _generic(value: Callable[[State, Key], Value], state: State, key: Key) -> bytes | None:
    """A leaf's bytes through the documented encoding of its value."""
    data = value(state, key)
    return None if data is None else leaf_encoding(key, data)


def _pairs(mapping: dict[Any, Any]) -> list[list[Any]]:
    return list(map(list, mapping.items()))


def _dict_of_pairs(pairs: Json) -> dict[Any, Any]:
    return {key: value for key, value in pairs}


# --------------------------------------------------------------------------------------- global
_GLOBAL_SCALARS: Final = ("chain_id", "genesis_time_ms", "time_ms", "height", "bridge_operator", "fees_account",
                          "funding_account", "total_deposits", "total_withdrawals", "seed_insurance", "next_order_id")


def _global_value(state: State, key: Key) -> Value:
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


def _scalar_section(name: str) -> Section:
    def read(state: State, value: Json) -> None:
        setattr(state, name, value)
    return Section(name, lambda state: getattr(state, name), read)


def _read_tiers(state: State, tiers: Json) -> None:
    state.tiers = {t["tier_id"]: LiquidityTier(**t) for t in tiers}


def _read_stalls(state: State, stalls: Json) -> None:
    state.liquidation_stalls = {(owner, number): blocks for owner, number, blocks in stalls}


def _set(name: str, convert: Callable[[Json], Any]) -> Callable[[State, Json], None]:
    """A reader that stores ``convert(data)`` as the state's attribute ``name``."""
    def read(state: State, value: Json) -> None:
        setattr(state, name, convert(value))
    return read


_GLOBAL_SECTIONS: Final = (
    *map(_scalar_section, _GLOBAL_SCALARS),
    Section("oracle_operators", lambda s: list(s.oracle_operators), _set("oracle_operators", tuple)),
    Section("tiers", lambda s: [asdict(tier) for _, tier in sorted(s.tiers.items())], _read_tiers),
    Section("funding", lambda s: asdict(s.funding), _set("funding", lambda d: FundingParams(**d))),
    Section("fees", lambda s: asdict(s.fees), _set("fees", lambda d: FeeParams(**d))),
    Section("liquidation", lambda s: asdict(s.liquidation), _set("liquidation", lambda d: LiquidationParams(**d))),
    Section("insurance_funds", lambda s: _pairs(s.insurance_funds), _set("insurance_funds", _dict_of_pairs)),
    Section("withdrawals_paused_until", lambda s: _pairs(s.withdrawals_paused_until),
            _set("withdrawals_paused_until", _dict_of_pairs)),
    Section("bad_debt", lambda s: _pairs(s.bad_debt), _set("bad_debt", _dict_of_pairs)),
    Section("liquidation_stalls",
            lambda s: [[owner, number, blocks] for (owner, number), blocks in s.liquidation_stalls.items()],
            _read_stalls),
    Section("liquidation_grace_until", lambda s: _pairs(s.liquidation_grace_until),
            _set("liquidation_grace_until", _dict_of_pairs)),
)


# --------------------------------------------------------------------------------------- markets
def _market_value(state: State, key: Key) -> Value:
    m = state.markets[key[1]]
    p = m.oracle_params
    return [m.size_decimals, m.price_decimals, m.tier_id, m.min_order_lots, m.max_open_interest_lots,
            m.maker_fee_ppm, m.taker_fee_ppm, m.isolated_only, m.status,
            [p.min_sources, p.max_staleness_ms, p.max_source_deviation_ppm, p.max_move_per_block_ppm],
            m.oracle_price, m.stale, sorted([op, t, ms] for op, (t, ms) in m.submissions.items()),
            m.open_interest, m.funding_index, m.premium_minute, m.block_premiums, m.minute_samples,
            m.last_funding_hour, m.max_order_lots, m.twap_cumulative, m.twap_ms, m.settlement_price,
            m.cross_margin_cap_usdc]


def _twap_value(state: State, key: Key) -> Value:
    m = state.markets[key[1]]
    return [list(c) for c in m.twap_checkpoints] if m.twap_checkpoints else None


def _order_value(state: State, key: Key) -> Value:
    o = state.markets[key[1]].book.get(key[2])
    if o is None:
        return None
    return [o.side, o.price, o.remaining, o.size, o.owner, o.number, o.client_id, o.time_in_force,
            o.reduce_only, o.good_til_ms, o.self_trade, o.placed_ms]


def _order_bytes(state: State, key: Key) -> bytes | None:
    """An order leaf formatted directly (its strings checked by ``_plain``; else the generic path)."""
    ticker = key[1]
    o = state.markets[ticker].book.get(key[2])
    if o is None:
        return None
    if _plain(ticker + o.owner + o.time_in_force + o.self_trade):
        good_til = "null" if o.good_til_ms is None else o.good_til_ms
        return (f'["order","{ticker}",{key[2]}]\x00[{o.side},{o.price},{o.remaining},{o.size},"{o.owner}",'
                f'{o.number},{o.client_id},"{o.time_in_force}",{_BOOL[o.reduce_only]},{good_til},'
                f'"{o.self_trade}",{o.placed_ms}]').encode()
    return _generic(_order_value, state, key)


# Market fields that are not plain values in its snapshot document
_MARKET_SPECIAL: Final = {"oracle_params", "submissions", "book", "holders", "scanned", "block_premiums",
                          "minute_samples", "twap_checkpoints"}
# Order's constructor arguments, in order (all of them are state)
_ORDER_FIELDS: Final = ("order_id", "side", "price", "remaining", "size", "owner", "number", "client_id",
                        "time_in_force", "reduce_only", "good_til_ms", "self_trade", "placed_ms")


def _market_document(market: Market) -> dict[str, Any]:
    """A market with its book (the ``order`` leaves), its TWAP checkpoints (the ``twap`` leaf) and the
    liquidation scan's derived indexes (``holders``, ``scanned``)."""
    doc = {f.name: getattr(market, f.name) for f in fields(market) if f.name not in _MARKET_SPECIAL}
    doc["oracle_params"] = asdict(market.oracle_params)
    doc["submissions"] = [[operator, ticks, ms] for operator, (ticks, ms) in market.submissions.items()]
    doc["block_premiums"] = list(market.block_premiums)
    doc["minute_samples"] = list(market.minute_samples)
    doc["twap_checkpoints"] = [list(c) for c in market.twap_checkpoints]
    doc["book"] = [[getattr(order, name) for name in _ORDER_FIELDS] for order in market.book.orders()]
    doc["holders"] = [list(key) for key in market.holders]
    doc["scanned"] = None if market.scanned is None else list(market.scanned)
    return doc


def _market(doc: dict[str, Any]) -> Market:
    plain = {name: value for name, value in doc.items() if name not in _MARKET_SPECIAL}
    market = Market(**plain, oracle_params=OracleParams(**doc["oracle_params"]))
    market.submissions = {operator: (ticks, ms) for operator, ticks, ms in doc["submissions"]}
    market.block_premiums = list(doc["block_premiums"])
    market.minute_samples = list(doc["minute_samples"])
    market.twap_checkpoints = [(time_ms, cumulative) for time_ms, cumulative in doc["twap_checkpoints"]]
    for values in doc["book"]:
        market.book.add(Order(*values))
    market.holders = {(owner, number): None for owner, number in doc["holders"]}
    market.scanned = None if doc["scanned"] is None else tuple(doc["scanned"])
    return market


def _read_markets(state: State, markets: Json) -> None:
    state.markets = {m["ticker"]: _market(m) for m in markets}


# --------------------------------------------------------------------------------------- accounts
def _conditional_value(state: State, key: Key) -> Value:
    c = state.conditional_orders.get(key[1])
    if c is None:
        return None
    t = c.terms
    return [c.order_type, c.trigger_ticks, c.placed_ms, t.market, t.owner, t.number, t.client_id, t.side,
            t.order_type, t.lots, t.ticks, t.time_in_force, t.reduce_only, t.good_til_ms, t.self_trade]


def _conditional_document(order: ConditionalOrder) -> dict[str, Any]:
    return {"order_id": order.order_id, "order_type": order.order_type, "trigger_ticks": order.trigger_ticks,
            "placed_ms": order.placed_ms, "terms": asdict(order.terms)}


def _read_conditional_orders(state: State, orders: Json) -> None:
    for c in orders:
        order = ConditionalOrder(c["order_id"], c["order_type"], c["trigger_ticks"], c["placed_ms"],
                                 OrderTerms(**c["terms"]))
        state.conditional_orders[order.order_id] = order


def _sub_value(state: State, key: Key) -> Value:
    sub = state.subaccounts.get((key[1], key[2]))
    if sub is None:
        return None
    return [sub.balance, sub.mode, sub.isolated_market,
            [[t, p.size, p.funding_index, p.cost] for t, p in sorted(sub.positions.items())],
            sorted(sub.imf_overrides.items())]


def _sub_bytes(state: State, key: Key) -> bytes | None:
    """A subaccount leaf formatted directly (its strings checked by ``_plain``; else the generic path)."""
    sub = state.subaccounts.get((key[1], key[2]))
    if sub is None:
        return None
    positions, overrides, isolated = sub.positions, sub.imf_overrides, sub.isolated_market
    if _plain(key[1] + sub.mode + (isolated or "") + "".join(positions) + "".join(overrides)):
        text = f'["sub","{key[1]}",{key[2]}]\x00[{sub.balance},"{sub.mode}",'
        text += "null," if isolated is None else f'"{isolated}",'
        if positions:
            text += "[" + ",".join([f'["{t}",{p.size},{p.funding_index},{p.cost}]'
                                    for t, p in sorted(positions.items())]) + "],"
        else:
            text += "[],"
        if overrides:
            text += "[" + ",".join([f'["{t}",{v}]' for t, v in sorted(overrides.items())]) + "]]"
        else:
            text += "[]]"
        return text.encode()
    return _generic(_sub_value, state, key)


def _subaccount_document(sub: Subaccount) -> dict[str, Any]:
    """A subaccount with its indexes of open orders, client ids and conditional orders (derived
    from the books, written to keep their order)."""
    return {
        "owner": sub.owner, "number": sub.number, "balance": sub.balance, "mode": sub.mode,
        "isolated_market": sub.isolated_market,
        "positions": [[ticker, p.size, p.funding_index, p.cost] for ticker, p in sub.positions.items()],
        "imf_overrides": list(map(list, sub.imf_overrides.items())),
        "orders": list(map(list, sub.orders.items())),
        "client_ids": list(map(list, sub.client_ids.items())),
        "conditional_orders": list(map(list, sub.conditional_orders.items())),
    }


def _read_subaccounts(state: State, subaccounts: Json) -> None:
    for s in subaccounts:
        sub = Subaccount(s["owner"], s["number"], s["balance"], s["mode"], s["isolated_market"])
        sub.positions = {t: Position(size, index, cost) for t, size, index, cost in s["positions"]}
        sub.imf_overrides = {t: v for t, v in s["imf_overrides"]}
        sub.orders = {order_id: ticker for order_id, ticker in s["orders"]}
        sub.client_ids = {client_id: order_id for client_id, order_id in s["client_ids"]}
        sub.conditional_orders = {order_id: ticker for order_id, ticker in s["conditional_orders"]}
        state.subaccounts[(sub.owner, sub.number)] = sub


def _nonces_value(state: State, key: Key) -> Value:
    record = state.nonces.get(key[1])
    return None if record is None else [record.floor, record.last_ms, list(record.used)]


def _nonces_bytes(state: State, key: Key) -> bytes | None:
    """A sender's nonces formatted directly (the sender checked by ``_plain``; else the generic path)."""
    record = state.nonces.get(key[1])
    if record is None:
        return None
    if _plain(key[1]):
        used = ",".join(map(str, record.used))
        return f'["nonces","{key[1]}"]\x00[{record.floor},{record.last_ms},[{used}]]'.encode()
    return _generic(_nonces_value, state, key)


def _read_nonces(state: State, nonces: Json) -> None:
    state.nonces = {sender: NonceRecord(floor, last_ms, list(used)) for sender, floor, last_ms, used in nonces}
    rebuild_nonce_expiry(state)


# --------------------------------------------------------------------------------------- BGOV
def _bgov_value(state: State, key: Key) -> Value:
    balance, delegate = state.bgov.get(key[1], 0), state.bgov_delegates.get(key[1])
    if not balance and delegate is None:
        return None
    return [balance, delegate]


def _checkpoint(checkpoints: list[tuple[int, int]], index: int) -> Value:
    """One (height, value) checkpoint per leaf: a change never rehashes the history before it."""
    return list(checkpoints[index]) if index < len(checkpoints) else None


def _read_vote_checkpoints(state: State, checkpoints: Json) -> None:
    state.vote_checkpoints = {delegatee: [(height, votes) for height, votes in entries]
                              for delegatee, entries in checkpoints}


def _pair_list(pairs: Json) -> list[tuple[int, int]]:
    return [(height, amount) for height, amount in pairs]


# --------------------------------------------------------------------------------------- governance
def _governance_value(state: State, key: Key) -> Value:
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
            g.stress_max_loss_to_traders_usdc, g.exposed_vote_weight_ppm, g.exposure_threshold_usdc,
            g.counter_report_bond_usdc, g.counter_report_window_ms]


def _read_governance(state: State, document: Json) -> None:
    governance = dict(document)
    tier_docs = governance.pop("tiers")
    rules = {name: GovernanceTier(**tier_docs[name]) for name in RISK_CLASSES}
    state.governance = GovernanceParams(**governance, tiers=rules)


def _listing_value(state: State, key: Key) -> Value:
    listing, defaults = state.listing, state.listing.oracle
    return [[defaults.min_sources, defaults.max_staleness_ms, defaults.max_source_deviation_ppm,
             defaults.max_move_per_block_ppm], listing.min_initial_margin_ppm, listing.max_open_interest_usdc]


def _read_listing(state: State, document: Json) -> None:
    listing = dict(document)
    listing_oracle = OracleParams(**listing.pop("oracle"))
    state.listing = ListingParams(oracle=listing_oracle, **listing)


def _order_limits_value(state: State, key: Key) -> Value:
    limits = state.order_limits
    return [[list(step) for step in limits.open_order_tiers], limits.max_open_orders,
            limits.min_order_notional_usdc]


def _read_order_limits(state: State, document: Json) -> None:
    limits = dict(document)
    state.order_limits = OrderLimitParams(
        open_order_tiers=[[int(equity), int(count)] for equity, count in limits.pop("open_order_tiers")], **limits)


def _proposal_value(state: State, key: Key) -> Value:
    pr = state.proposals.get(key[1])
    if pr is None:
        return None
    r = pr.rules
    return [pr.number, pr.proposer, pr.title, pr.description, [_action_value(a) for a in pr.actions], pr.deposit_bgov,
            pr.risk_class, pr.submitted_height, pr.snapshot_height, pr.deadline_height,
            [r.quorum_ppm, r.approval_threshold_ppm, r.voting_period_blocks, r.timelock_ms,
             r.min_holding_age_blocks], pr.status, pr.yes, pr.no, pr.abstain, pr.veto, pr.quorum_height,
            pr.extended, pr.queued_ms, pr.closed_height, pr.deposit_state, pr.swing_extensions, pr.fee_bgov,
            *([list(pr.evidence)] if pr.evidence else [])]  # cited telemetry (issue 20), only when some is


def _action_value(action: object) -> list[Any]:
    """An action as ``[type, [field, value], ...]`` in field order (values are JSON data, objects
    such as ``start_rollout.gates`` with their keys sorted: a snapshot does not keep key order)."""
    return [ACTION_NAMES[type(action)],
            *[[f.name, _sorted_keys(getattr(action, f.name))] for f in fields(action)]]  # type: ignore[arg-type]


def _sorted_keys(value: object) -> object:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    return value


def _ballot_value(state: State, key: Key) -> Value:
    option, weight, reason = state.proposals[key[1]].ballots[key[2]]
    return [option, weight, reason]


def _proposal_document(proposal: Proposal) -> dict[str, Any]:
    """A proposal with its actions and voting rules, and its ballots (the ``ballot`` leaves)."""
    doc = {f.name: getattr(proposal, f.name) for f in fields(proposal) if f.name not in ("actions", "rules", "ballots")}
    doc["evidence"] = list(proposal.evidence)
    doc["actions"] = [{"type": ACTION_NAMES[type(a)], **asdict(a)} for a in proposal.actions]
    doc["rules"] = asdict(proposal.rules)
    doc["ballots"] = [[voter, option, weight, reason] for voter, (option, weight, reason) in proposal.ballots.items()]
    return doc


def _read_proposals(state: State, proposals: Json) -> None:
    for p in proposals:
        plain = {k: v for k, v in p.items() if k not in ("actions", "rules", "ballots", "evidence")}
        proposal = Proposal(**plain, evidence=tuple(p["evidence"]),
                            actions=tuple(decode_action(a, i) for i, a in enumerate(p["actions"])),
                            rules=GovernanceTier(**p["rules"]))
        proposal.ballots = {voter: (option, weight, reason) for voter, option, weight, reason in p["ballots"]}
        state.proposals[proposal.proposal_id] = proposal


def _param_history_value(state: State, key: Key) -> Value:
    e = state.param_history[key[1]]
    return [e.name, e.old, e.new, e.height, e.source.kind, e.source.ref, e.source.number]


def _read_param_history(state: State, entries: Json) -> None:
    state.param_history = [ParamHistoryEntry(name, old, new, height, ParamSource(kind, ref, number))
                           for name, old, new, height, kind, ref, number in entries]


def _rollout_value(state: State, key: Key) -> Value:
    ro = state.rollouts[key[1]]
    return [ro.market, ro.param, ro.start, ro.target, ro.steps, ro.interval_ms, ro.min_insurance_fund_usdc,
            ro.max_bad_debt_usdc, ro.max_liquidations, ro.revert_on_breach, ro.proposal_id, ro.created_height,
            ro.next_step_ms, ro.liquidations_mark, ro.bad_debt_mark, ro.step, ro.status, ro.halt_reason, ro.reverted,
            ro.ended_height, sorted(_pairs(ro.contagion_gates)), ro.trader_losses_mark, sorted(_pairs(ro.measured)),
            ro.start_is_safer,
            ro.tiers]


# --------------------------------------------------------------------------------------- guardian, council
def _has_guardian(state: State) -> bool:
    """The guardian leaf exists while there is a guardian or a pause key was used."""
    return state.guardian.address is not None or bool(state.guardian.pauses_used)


def _guardian_value(state: State, key: Key) -> Value:
    guardian = state.guardian
    if not _has_guardian(state):
        return None
    return [guardian.address, guardian.expires_ms,
            [[scope, market, term] for (scope, market), term in guardian.pauses_used.items()]]


def _read_guardian(state: State, g: Json) -> None:
    state.guardian = Guardian(g["address"], g["expires_ms"],
                              {(scope, market): term for scope, market, term in g["pauses_used"]})


def _pause_value(state: State, key: Key) -> Value:
    pause = state.pauses.get((key[1], key[2]))
    return None if pause is None else [pause.start_ms, pause.end_ms]


def _attestation_value(state: State, key: Key) -> Value:
    a = state.attestations.get(key[1], {}).get(key[2])
    return None if a is None else [a.report_hash, a.verdict, a.attested_ms, a.height]


def _read_attestations(state: State, rows: Json) -> None:
    for pid, member, report_hash, verdict, attested_ms, height in rows:
        state.attestations.setdefault(pid, {})[member] = Attestation(report_hash, verdict, attested_ms, height)


def _stress_report_value(state: State, key: Key) -> Value:
    r = state.stress_reports.get(key[1])
    return None if r is None else [r.verdict, r.depletion_probability_ppm, r.var99_loss_usdc, r.es99_loss_usdc,
                                   r.insurance_funds_total_usdc, r.registered_by, r.registered_ms, r.height]


def _steward_bound_value(state: State, key: Key) -> Value:
    b = state.steward_bounds.get(key[1])
    return None if b is None else [b.kind, b.max_change, b.cooldown_ms]


def _steward_cooldown_value(state: State, key: Key) -> Value:
    last_ms = state.steward_last_change_ms.get(key[1])
    return None if last_ms is None else [last_ms]


def _steward_approval_value(state: State, key: Key) -> Value:
    approval = state.steward_approvals.get(key[1], {}).get(key[2])
    return None if approval is None else [approval.value, approval.approved_ms, approval.height]


def _read_steward_approvals(state: State, rows: Json) -> None:
    for name, member, value, approved_ms, height in rows:
        state.steward_approvals.setdefault(name, {})[member] = StewardApproval(value, approved_ms, height)


# --------------------------------------------------------------------------------------- snapshot writers
def _write_markets(state: State) -> Json:
    return [_market_document(market) for market in state.markets.values()]


def _write_conditional_orders(state: State) -> Json:
    return [_conditional_document(order) for order in state.conditional_orders.values()]


def _write_subaccounts(state: State) -> Json:
    return [_subaccount_document(sub) for sub in state.subaccounts.values()]


def _write_vote_checkpoints(state: State) -> Json:
    return [[delegatee, [list(c) for c in checkpoints]] for delegatee, checkpoints in state.vote_checkpoints.items()]


def _write_proposals(state: State) -> Json:
    return [_proposal_document(proposal) for proposal in state.proposals.values()]


def _write_param_history(state: State) -> Json:
    return [[e.name, e.old, e.new, e.height, e.source.kind, e.source.ref, e.source.number] for e in state.param_history]


def _write_guardian(state: State) -> Json:
    guardian = state.guardian
    return {"address": guardian.address, "expires_ms": guardian.expires_ms,
            "pauses_used": [[scope, market, term] for (scope, market), term in guardian.pauses_used.items()]}


def _read_pauses(state: State, rows: Json) -> None:
    state.pauses = {(scope, market): Pause(scope, market, start, end) for scope, market, start, end in rows}


def _write_attestations(state: State) -> Json:
    return [[pid, member, a.report_hash, a.verdict, a.attested_ms, a.height]
            for pid, by_member in state.attestations.items() for member, a in by_member.items()]


def _write_stress_reports(state: State) -> Json:
    return [[report_hash, r.verdict, r.depletion_probability_ppm, r.var99_loss_usdc, r.es99_loss_usdc,
             r.insurance_funds_total_usdc, r.registered_by, r.registered_ms, r.height]
            for report_hash, r in state.stress_reports.items()]


def _read_stress_reports(state: State, rows: Json) -> None:
    state.stress_reports = {values[0]: StressReportRecord(*values[1:]) for values in rows}


def _read_steward_bounds(state: State, rows: Json) -> None:
    state.steward_bounds = {name: StewardBound(kind, max_change, cooldown_ms)
                            for name, kind, max_change, cooldown_ms in rows}


def _write_steward_approvals(state: State) -> Json:
    return [[name, member, a.value, a.approved_ms, a.height]
            for name, by_member in state.steward_approvals.items() for member, a in by_member.items()]


# --------------------------------------------------------------------------------------- agent keys
def _agent_value(state: State, key: Key) -> Value:
    grant = state.agents.get(key[1], {}).get(key[2])
    if grant is None:
        return None
    return [None if grant.subaccounts is None else list(grant.subaccounts), list(grant.permissions),
            grant.expires_ms, grant.label, grant.authorized_ms]


def _write_agents(state: State) -> Json:
    return [[owner, agent, None if g.subaccounts is None else list(g.subaccounts), list(g.permissions),
             g.expires_ms, g.label, g.authorized_ms]
            for owner, grants in state.agents.items() for agent, g in grants.items()]


def _read_agents(state: State, rows: Json) -> None:
    state.agents = {}
    for owner, agent, subaccounts, permissions, expires_ms, label, authorized_ms in rows:
        state.agents.setdefault(owner, {})[agent] = AgentGrant(
            None if subaccounts is None else tuple(subaccounts), tuple(permissions), expires_ms, label, authorized_ms)
    rebuild_agent_owners(state)


# --------------------------------------------------------------------------------------- bot tools
_TWAP_FIELDS: Final = tuple(f.name for f in fields(TwapOrder))


def _twap_order_value(state: State, key: Key) -> Value:
    twap = state.twap_orders.get(key[1])
    return None if twap is None else [getattr(twap, name) for name in _TWAP_FIELDS[1:]]


def _read_twap_orders(state: State, rows: Json) -> None:
    state.twap_orders = {row[0]: TwapOrder(*row) for row in rows}


def _cancel_schedule_value(state: State, key: Key) -> Value:
    record = state.cancel_schedules.get(key[1])
    return None if record is None else [record.time_ms, record.day, record.triggers]


def _read_cancel_schedules(state: State, rows: Json) -> None:
    state.cancel_schedules = {owner: CancelSchedule(time_ms, day, triggers) for owner, time_ms, day, triggers in rows}
    state.cancel_queue = rebuild_cancel_queue(state.cancel_schedules)


_DEFAULT_BOT_LIMITS: Final = BotLimitParams()


def _bot_limits_value(state: State, key: Key) -> Value:
    # absent while at the defaults (the values these limits had as constants, before they were
    # governed): the hash of every state that never changed them stays what it was
    limits = state.bot_limits
    if limits == _DEFAULT_BOT_LIMITS:
        return None
    return [getattr(limits, f.name) for f in fields(limits)]


def _read_bot_limits(state: State, document: Json) -> None:
    state.bot_limits = BotLimitParams(**document)
# --------------------------------------------------------------------------------------- UI requirements
_UI_FIELDS: Final = tuple(f.name for f in fields(UiRequirements))


def _ui_requirements_value(state: State, key: Key) -> Value:
    record = state.ui_requirements.get(key[1])
    return None if record is None else [getattr(record, name) for name in _UI_FIELDS]


def _write_ui_requirements(state: State) -> Json:
    return [[ticker, *(getattr(state.ui_requirements[ticker], name) for name in _UI_FIELDS)]
            for ticker in sorted(state.ui_requirements)]


def _read_ui_requirements(state: State, rows: Json) -> None:
    state.ui_requirements = {row[0]: UiRequirements(*row[1:]) for row in rows}


# --------------------------------------------------------------------------------------- insurance staking
_DEFAULT_STAKING: Final = InsuranceStakingParams()


def _staking_at_defaults(state: State) -> bool:
    return state.insurance_staking == _DEFAULT_STAKING and state.next_unstake_id == 1


def _staking_value(state: State, key: Key) -> Value:
    # absent while at the defaults and before any unstake request: the hash of every state that never
    # used staking stays what it was before staking existed
    if _staking_at_defaults(state):
        return None
    p = state.insurance_staking
    return [p.cooldown_ms, p.staker_fee_share_ppm, p.loss_mode, p.min_stake_usdc, p.target_oi_ppm,
            p.target_floor_usdc, p.replenish_share_ppm, state.next_unstake_id]


def _read_staking(state: State, document: Json) -> None:
    state.insurance_staking = InsuranceStakingParams(**document)


def _stake_pool_value(state: State, key: Key) -> Value:
    record = state.stake_pools.get(key[1])
    return None if record is None else [record.staked, record.shares, record.replenishing, record.fees_earned,
                                        record.losses_borne]


def _stake_value(state: State, key: Key) -> Value:
    shares = state.stakes.get((key[1], key[2]))
    return None if shares is None else [shares]


def _unstake_request_value(state: State, key: Key) -> Value:
    r = state.unstake_requests.get(key[1])
    return None if r is None else [r.owner, r.pool, r.shares, r.subaccount, r.requested_ms, r.available_ms]


# --------------------------------------------------------------------------------------- disputes (issue 18)
_BOOK_SCALARS: Final = ("next_target_id", "next_dispute_id", "next_program_id", "escrow_usdc", "epoch",
                        "epoch_paid_usdc")
_TARGET_FIELDS: Final = tuple(f.name for f in fields(DisputeTarget))
_DISPUTE_FIELDS: Final = tuple(f.name for f in fields(Dispute))
_PROGRAM_FIELDS: Final = tuple(f.name for f in fields(IncidentProgram))


def _disputes_value(state: State, key: Key) -> Value:
    book = state.disputes
    return [list(asdict(book.params).items()), *(getattr(book, name) for name in _BOOK_SCALARS)]


def _write_dispute_book(state: State) -> Json:
    book = state.disputes
    return {"params": asdict(book.params), **{name: getattr(book, name) for name in _BOOK_SCALARS},
            "targets": [_target_row(t) for t in book.targets.values()],
            "disputes": [_dispute_row(d) for d in book.disputes.values()],
            "programs": [_program_row(p) for p in book.programs.values()]}


def _read_dispute_book(state: State, data: Json) -> None:
    book = state.disputes = DisputeBook(DisputeParams(**data["params"]))
    for name in _BOOK_SCALARS:
        setattr(book, name, data[name])
    _read_dispute_targets(state, data["targets"])
    _read_disputes(state, data["disputes"])
    _read_incident_programs(state, data["programs"])


def _target_row(target: DisputeTarget) -> list[Any]:
    return [getattr(target, name) for name in _TARGET_FIELDS]


def _dispute_row(dispute: Dispute) -> list[Any]:
    return [[[member, *vote] for member, vote in sorted(value.items())] if name == "votes" else value
            for name in _DISPUTE_FIELDS for value in (getattr(dispute, name),)]


def _program_row(program: IncidentProgram) -> list[Any]:
    return [[[*key, amount] for key, amount in value.items()] if name == "payouts" else value
            for name in _PROGRAM_FIELDS for value in (getattr(program, name),)]


def _read_dispute_targets(state: State, rows: Json) -> None:
    state.disputes.targets = {row[0]: DisputeTarget(*row) for row in rows}


def _read_disputes(state: State, rows: Json) -> None:
    book = state.disputes
    for row in rows:
        values = dict(zip(_DISPUTE_FIELDS, row, strict=True))
        values["votes"] = {member: (upheld, award) for member, upheld, award in values["votes"]}
        dispute = Dispute(**values)
        book.disputes[dispute.dispute_id] = dispute
        if dispute.status not in FINAL_STATUSES:
            book.live[dispute.dispute_id] = None


def _read_incident_programs(state: State, rows: Json) -> None:
    for row in rows:
        values = dict(zip(_PROGRAM_FIELDS, row, strict=True))
        values["payouts"] = {(owner, number): amount for owner, number, amount in values["payouts"]}
        program = IncidentProgram(**values)
        state.disputes.programs[program.program_id] = program


# --------------------------------------------------------------------------------------- maker rewards
_MAKER_REWARD_PARAM_FIELDS: Final = tuple(f.name for f in fields(MakerRewardParams))
# both leaves are absent while at their defaults (rewards never configured, never used): the hash of
# every state from before maker rewards stays what it was
_DEFAULT_MAKER_REWARD_PARAMS: Final = MakerRewardParams()


def _maker_rewards_unused(state: State) -> bool:
    return state.maker_rewards == MakerRewards()


def _maker_reward_params_value(state: State, key: Key) -> Value:
    params = state.maker_reward_params
    if params == _DEFAULT_MAKER_REWARD_PARAMS:
        return None
    return [getattr(params, name) for name in _MAKER_REWARD_PARAM_FIELDS]


def _maker_rewards_value(state: State, key: Key) -> Value:
    r = state.maker_rewards
    if _maker_rewards_unused(state):
        return None
    return [r.pool, r.epoch, r.epoch_start_height, r.paid_total, r.rest_cutoff_height, r.rest_cutoff_ms,
            _pairs(r.last_prices), _pairs(r.samples)]


def _write_maker_rewards(state: State) -> Json:
    r = state.maker_rewards
    return {"pool": r.pool, "epoch": r.epoch, "epoch_start_height": r.epoch_start_height, "paid_total": r.paid_total,
            "rest_cutoff_height": r.rest_cutoff_height, "rest_cutoff_ms": r.rest_cutoff_ms,
            "last_prices": _pairs(r.last_prices), "samples": _pairs(r.samples),
            "scores": sorted([*key, *entry] for key, entry in r.scores.items())}   # canonical: see _maker_scores_value


def _read_maker_rewards(state: State, doc: Json) -> None:
    state.maker_rewards = MakerRewards(
        doc["pool"], doc["epoch"], doc["epoch_start_height"], doc["paid_total"], doc["rest_cutoff_height"],
        doc["rest_cutoff_ms"], _dict_of_pairs(doc["last_prices"]), _dict_of_pairs(doc["samples"]),
        {(owner, number, ticker): [weighted, two_sided]
         for owner, number, ticker, weighted, two_sided in doc["scores"]})


def _maker_scores_value(state: State, key: Key) -> Value:
    """One market's scores, sorted by maker: the order makers entered ``scores`` follows the book's
    derived per-maker totals, which a restored node rebuilds in another order (``Book.track_makers``),
    so the committed value must not depend on it."""
    ticker = key[1]
    rows = sorted([owner, number, *entry] for (owner, number, t), entry in state.maker_rewards.scores.items()
                  if t == ticker)
    return rows or None


# --------------------------------------------------------------------------------------- counter-reports, upgrades
_COUNTER_FIELDS: Final = tuple(f.name for f in fields(CounterReport))


def _counter_report_value(state: State, key: Key) -> Value:
    record = state.counter_reports.get(key[1])
    if record is None:
        return None
    return [sorted(record.judge_votes.items()) if name == "judge_votes" else getattr(record, name)
            for name in _COUNTER_FIELDS[1:]]


def _write_counter_reports(state: State) -> Json:
    return [[_pairs(dict(sorted(r.judge_votes.items()))) if name == "judge_votes" else getattr(r, name)
             for name in _COUNTER_FIELDS] for r in state.counter_reports.values()]


def _read_counter_reports(state: State, rows: Json) -> None:
    state.counter_reports = {}
    for row in rows:
        values = dict(zip(_COUNTER_FIELDS, row))
        values["judge_votes"] = _dict_of_pairs(values["judge_votes"])
        state.counter_reports[values["counter_id"]] = CounterReport(**values)


# --------------------------------------------------------------------------------------- the table
# In iteration order (``iter_leaf_keys``); a kind ``within`` another follows its parent.
# --------------------------------------------------------------------------------------- voter exposure
def _exposure_rows(disclosed: tuple[DelegateExposure, ...]) -> list[list[Any]]:
    return [[d.delegate, d.votes, d.directly_exposed,
             [[m.market, m.effect, m.own_size, m.own_notional, m.delegated_notional, m.delegators]
              for m in d.markets]] for d in disclosed]


def _proposal_exposure_value(state: State, key: Key) -> Value:
    disclosed = state.proposal_exposures.get(key[1])
    return None if disclosed is None else _exposure_rows(disclosed)


def _write_proposal_exposures(state: State) -> Json:
    return [[proposal_id, _exposure_rows(disclosed)] for proposal_id, disclosed in state.proposal_exposures.items()]


def _read_proposal_exposures(state: State, rows: Json) -> None:
    state.proposal_exposures = {
        proposal_id: tuple(DelegateExposure(delegate, votes, exposed, tuple(MarketExposure(*m) for m in markets))
                           for delegate, votes, exposed, markets in disclosed)
        for proposal_id, disclosed in rows}


LEAF_KINDS: Final[tuple[LeafKind, ...]] = (
    LeafKind("global", (), "chain id, clock, operators, liquidity tiers, funding/fee/liquidation parameters, "
             "insurance funds, pool pauses, bad debt, system accounts, next order id, liquidation stalls and grace",
             _global_value, keys=lambda state: [("global",)], snapshot=_GLOBAL_SECTIONS),
    LeafKind("market", ("ticker",), "a market's parameters, status, oracle, open interest, funding and TWAP "
             "accumulators, settlement price", _market_value,
             keys=lambda state: [("market", ticker) for ticker in state.markets],
             snapshot=(Section("markets", _write_markets, _read_markets),)),
    LeafKind("twap", ("ticker",), "a market's settlement-price minute checkpoints (absent while none)",
             _twap_value, within="market",
             keys_within=lambda state, market: [("twap", market[1])] if state.markets[market[1]].twap_checkpoints
             else []),
    LeafKind("order", ("ticker", "order_id"), "a resting order", _order_value, within="market", fast=_order_bytes,
             keys_within=lambda state, market: [("order", market[1], order.order_id)
                                                for order in state.markets[market[1]].book.orders()]),
    LeafKind("conditional", ("order_id",), "an untriggered stop or take-profit order", _conditional_value,
             keys=lambda state: [("conditional", order_id) for order_id in state.conditional_orders],
             snapshot=(Section("conditional_orders", _write_conditional_orders, _read_conditional_orders),)),
    LeafKind("sub", ("owner", "number"), "a subaccount: balance, margin mode, positions, leverage overrides",
             _sub_value, fast=_sub_bytes,
             keys=lambda state: [("sub", owner, number) for owner, number in state.subaccounts],
             snapshot=(Section("subaccounts", _write_subaccounts, _read_subaccounts),)),
    LeafKind("bgov", ("address",), "a BGOV balance and delegate (absent when both are empty)", _bgov_value,
             keys=lambda state: [("bgov", address) for address in sorted(set(state.bgov) | set(state.bgov_delegates))],
             snapshot=(Section("bgov", lambda state: _pairs(state.bgov), _set("bgov", _dict_of_pairs)),
                       Section("bgov_delegates", lambda state: _pairs(state.bgov_delegates),
                               _set("bgov_delegates", _dict_of_pairs)))),
    LeafKind("votes", ("delegatee", "index"), "one (height, votes) checkpoint of a delegatee",
             lambda state, key: _checkpoint(state.vote_checkpoints.get(key[1], []), key[-1]),
             keys=lambda state: [("votes", delegatee, index)
                                 for delegatee, checkpoints in state.vote_checkpoints.items()
                                 for index in range(len(checkpoints))],
             snapshot=(Section("vote_checkpoints", _write_vote_checkpoints, _read_vote_checkpoints),)),
    LeafKind("delegated_supply", ("index",), "one (height, delegated BGOV) checkpoint",
             lambda state, key: _checkpoint(state.delegated_supply_checkpoints, key[-1]),
             keys=lambda state: [("delegated_supply", i) for i in range(len(state.delegated_supply_checkpoints))],
             snapshot=(Section("delegated_supply_checkpoints",
                               lambda state: [list(c) for c in state.delegated_supply_checkpoints],
                               _set("delegated_supply_checkpoints", _pair_list)),)),
    LeafKind("total_supply", ("index",), "one (height, total BGOV) checkpoint",
             lambda state, key: _checkpoint(state.total_supply_checkpoints, key[-1]),
             keys=lambda state: [("total_supply", i) for i in range(len(state.total_supply_checkpoints))],
             snapshot=(Section("total_supply_checkpoints",
                               lambda state: [list(c) for c in state.total_supply_checkpoints],
                               _set("total_supply_checkpoints", _pair_list)),)),
    LeafKind("governance", (), "the governance parameters and risk-class rules", _governance_value,
             keys=lambda state: [("governance",)],
             snapshot=(Section("governance", lambda state: asdict(state.governance), _read_governance),)),
    LeafKind("listing", (), "the listing parameters", _listing_value, keys=lambda state: [("listing",)],
             snapshot=(Section("listing", lambda state: asdict(state.listing), _read_listing),)),
    LeafKind("order_limits", (), "the anti-spam order limits", _order_limits_value,
             keys=lambda state: [("order_limits",)],
             snapshot=(Section("order_limits", lambda state: asdict(state.order_limits), _read_order_limits),)),
    LeafKind("proposal", ("proposal_id",), "a proposal: actions, rules, tally, lifecycle, deposit", _proposal_value,
             keys=lambda state: [("proposal", proposal_id) for proposal_id in state.proposals],
             snapshot=(Section("proposals", _write_proposals, _read_proposals),)),
    LeafKind("ballot", ("proposal_id", "voter"), "a vote: option, weight, reason", _ballot_value, within="proposal",
             keys_within=lambda state, proposal: [("ballot", proposal[1], voter)
                                                  for voter in state.proposals[proposal[1]].ballots]),
    LeafKind("param_history", ("index",), "one change of a governed parameter", _param_history_value,
             keys=lambda state: [("param_history", index) for index in range(len(state.param_history))],
             snapshot=(Section("param_history", _write_param_history, _read_param_history),)),
    LeafKind("rollout", ("rollout_id",), "a staged rollout", _rollout_value,
             keys=lambda state: [("rollout", rollout_id) for rollout_id in state.rollouts],
             snapshot=(Section("rollouts", lambda state: [asdict(rollout) for rollout in state.rollouts.values()],
                               _set("rollouts", lambda rows: {r["rollout_id"]: Rollout(**r) for r in rows})),)),
    LeafKind("liquidations", ("ticker",), "a market's cumulative liquidation count",
             lambda state, key: [state.liquidation_counts[key[1]]],
             keys=lambda state: [("liquidations", ticker) for ticker in state.liquidation_counts],
             snapshot=(Section("liquidation_counts", lambda state: _pairs(state.liquidation_counts),
                               _set("liquidation_counts", _dict_of_pairs)),)),
    LeafKind("guardian", (), "the guardian's address, expiry and pause keys used (absent while none)",
             _guardian_value, keys=lambda state: [("guardian",)] if _has_guardian(state) else [],
             snapshot=(Section("guardian", _write_guardian, _read_guardian),)),
    LeafKind("pause", ("scope", "market"), "a guardian pause's start and end", _pause_value,
             keys=lambda state: [("pause", *pause_key) for pause_key in state.pauses],
             snapshot=(Section("pauses", lambda state: [[p.scope, p.market, p.start_ms, p.end_ms]
                                                        for p in state.pauses.values()], _read_pauses),)),
    LeafKind("council", (), "the council's members and threshold",
             lambda state, key: [list(state.council.members), state.council.threshold],
             keys=lambda state: [("council",)],
             snapshot=(Section("council", lambda state: {"members": list(state.council.members),
                                                         "threshold": state.council.threshold},
                               _set("council", lambda d: Council(tuple(d["members"]), d["threshold"]))),)),
    LeafKind("attestation", ("proposal_id", "member"), "a council member's stress attestation", _attestation_value,
             keys=lambda state: [("attestation", proposal_id, member)
                                 for proposal_id, by_member in state.attestations.items() for member in by_member],
             snapshot=(Section("attestations", _write_attestations, _read_attestations),)),
    LeafKind("stress_report", ("report_hash",), "a registered stress report's verdict and figures",
             _stress_report_value, keys=lambda state: [("stress_report", h) for h in state.stress_reports],
             snapshot=(Section("stress_reports", _write_stress_reports, _read_stress_reports),)),
    LeafKind("steward_bound", ("name",), "how far and how often the council may move a parameter",
             _steward_bound_value, keys=lambda state: [("steward_bound", name) for name in state.steward_bounds],
             snapshot=(Section("steward_bounds", lambda state: [[name, b.kind, b.max_change, b.cooldown_ms]
                                                                for name, b in state.steward_bounds.items()],
                               _read_steward_bounds),)),
    LeafKind("steward_cooldown", ("name",), "the block time of a parameter's last steward change",
             _steward_cooldown_value,
             keys=lambda state: [("steward_cooldown", name) for name in state.steward_last_change_ms],
             snapshot=(Section("steward_last_change_ms", lambda state: _pairs(state.steward_last_change_ms),
                               _set("steward_last_change_ms", _dict_of_pairs)),)),
    LeafKind("steward_approval", ("name", "member"), "a council member's steward-change approval",
             _steward_approval_value,
             keys=lambda state: [("steward_approval", name, member)
                                 for name, by_member in state.steward_approvals.items() for member in by_member],
             snapshot=(Section("steward_approvals", _write_steward_approvals, _read_steward_approvals),)),
    LeafKind("nonces", ("sender",), "a sender's spent nonces", _nonces_value, fast=_nonces_bytes,
             keys=lambda state: [("nonces", sender) for sender in state.nonces],
             snapshot=(Section("nonces", lambda state: [[sender, r.floor, r.last_ms, list(r.used)]
                                                        for sender, r in state.nonces.items()], _read_nonces),)),
    LeafKind("agent", ("owner", "agent"), "an owner's grant to an agent key: subaccounts, permissions, expiry, "
             "label", _agent_value,
             keys=lambda state: [("agent", owner, agent) for owner, grants in state.agents.items() for agent in grants],
             snapshot=(Section("agents", _write_agents, _read_agents),)),
    LeafKind("twap_order", ("twap_id",), "a live TWAP order: owner, market, side, size, slippage guard, slices done "
             "and filled", _twap_order_value,
             keys=lambda state: [("twap_order", twap_id) for twap_id in state.twap_orders],
             snapshot=(Section("twap_orders", lambda state: [[getattr(t, name) for name in _TWAP_FIELDS]
                                                             for t in state.twap_orders.values()],
                               _read_twap_orders),)),
    LeafKind("cancel_schedule", ("owner",), "an owner's dead-man's switch time and its firings that day",
             _cancel_schedule_value,
             keys=lambda state: [("cancel_schedule", owner) for owner in state.cancel_schedules],
             snapshot=(Section("cancel_schedules", lambda state: [[owner, r.time_ms, r.day, r.triggers]
                                                                  for owner, r in state.cancel_schedules.items()],
                               _read_cancel_schedules),)),
    LeafKind("bot_limits", (), "the governed limits of the bot tools (absent while at their defaults)",
             _bot_limits_value, keys=lambda state: [] if state.bot_limits == _DEFAULT_BOT_LIMITS else [("bot_limits",)],
             snapshot=(Section("bot_limits", lambda state: asdict(state.bot_limits), _read_bot_limits),)),
    LeafKind("trader_losses", ("ticker",), "a market's cumulative trader losses (deleveraging and socialisation)",
             lambda state, key: [state.trader_losses[key[1]]],
             keys=lambda state: [("trader_losses", ticker) for ticker in state.trader_losses],
             snapshot=(Section("trader_losses", lambda state: _pairs(state.trader_losses),
                               _set("trader_losses", _dict_of_pairs)),)),
    LeafKind("ui_requirements", ("ticker",), "a market's governed UI requirements: risk banner, isolation "
             "threshold, default and maximum leverage, confirmation leverage (absent while the defaults)",
             _ui_requirements_value,
             keys=lambda state: [("ui_requirements", ticker) for ticker in sorted(state.ui_requirements)],
             snapshot=(Section("ui_requirements", _write_ui_requirements, _read_ui_requirements),)),
    LeafKind("insurance_staking", (), "the insurance staking and replenishment parameters, the next unstake "
             "request id (absent while both are at their defaults)", _staking_value,
             keys=lambda state: [] if _staking_at_defaults(state) else [("insurance_staking",)],
             snapshot=(Section("insurance_staking", lambda state: asdict(state.insurance_staking), _read_staking),
                       _scalar_section("next_unstake_id"))),
    LeafKind("stake_pool", ("pool",), "an insurance fund's staked part, shares, replenishing flag, stakers' fees "
             "and losses", _stake_pool_value,
             keys=lambda state: [("stake_pool", pool) for pool in state.stake_pools],
             snapshot=(Section("stake_pools", lambda state: [[pool, *asdict(r).values()]
                                                             for pool, r in state.stake_pools.items()],
                               _set("stake_pools", lambda rows: {row[0]: StakePool(*row[1:]) for row in rows})),)),
    LeafKind("stake", ("pool", "owner"), "a staker's free shares of a fund", _stake_value,
             keys=lambda state: [("stake", pool, owner) for pool, owner in state.stakes],
             snapshot=(Section("stakes", lambda state: [[pool, owner, shares]
                                                        for (pool, owner), shares in state.stakes.items()],
                               _set("stakes", lambda rows: {(pool, owner): n for pool, owner, n in rows})),)),
    LeafKind("unstake_request", ("request_id",), "a pending unstake request: owner, fund, shares, subaccount, "
             "times", _unstake_request_value,
             keys=lambda state: [("unstake_request", rid) for rid in state.unstake_requests],
             snapshot=(Section("unstake_requests", lambda state: [[rid, *asdict(r).values()]
                                                                  for rid, r in state.unstake_requests.items()],
                               _set("unstake_requests",
                                    lambda rows: {row[0]: UnstakeRequest(*row[1:]) for row in rows})),)),
    LeafKind("disputes", (), "the dispute parameters, id counters, escrow (bonds and incident programs) and the "
             "epoch's awards", _disputes_value, keys=lambda state: [("disputes",)],
             snapshot=(Section("disputes", _write_dispute_book, _read_dispute_book),)),
    LeafKind("dispute_target", ("target_id",), "a recorded liquidation, takeover, deleveraging or settlement of one "
             "subaccount in one block: size, received, prices, loss, claim", lambda state, key: (
                 None if (t := state.disputes.targets.get(key[1])) is None else _target_row(t)),
             within="disputes",
             keys_within=lambda state, parent: [("dispute_target", i) for i in state.disputes.targets]),
    LeafKind("dispute", ("dispute_id",), "a dispute: claim, bond, council votes, ruling, appeal, outcome, payment",
             lambda state, key: None if (d := state.disputes.disputes.get(key[1])) is None else _dispute_row(d),
             within="disputes",
             keys_within=lambda state, parent: [("dispute", i) for i in state.disputes.disputes]),
    LeafKind("incident", ("program_id",), "an incident program: window, reference, budget, escrow, payouts left",
             lambda state, key: None if (p := state.disputes.programs.get(key[1])) is None else _program_row(p),
             within="disputes",
             keys_within=lambda state, parent: [("incident", i) for i in state.disputes.programs]),
    LeafKind("maker_reward_params", (), "the maker-reward parameters (absent while at their defaults)",
             _maker_reward_params_value,
             keys=lambda state: [] if state.maker_reward_params == _DEFAULT_MAKER_REWARD_PARAMS
             else [("maker_reward_params",)],
             snapshot=(Section("maker_reward_params", lambda state: asdict(state.maker_reward_params),
                               _set("maker_reward_params", lambda doc: MakerRewardParams(**doc))),)),
    LeafKind("maker_rewards", (), "the maker-reward pool, epoch, rest cutoff, last sampled prices, samples per "
             "market (absent until used)", _maker_rewards_value,
             keys=lambda state: [] if _maker_rewards_unused(state) else [("maker_rewards",)],
             snapshot=(Section("maker_rewards", _write_maker_rewards, _read_maker_rewards),)),
    LeafKind("maker_scores", ("ticker",), "every maker's weighted depth and two-sided samples on a market in the "
             "running epoch, sorted by maker (one leaf per market: a sample re-encodes it once)", _maker_scores_value,
             within="maker_rewards",
             keys_within=lambda state, parent: [("maker_scores", ticker) for ticker in dict.fromkeys(
                 ticker for _, _, ticker in state.maker_rewards.scores)]),
    LeafKind("proposal_exposure", ("proposal_id",), "a proposal's voter exposure disclosure, frozen when its vote "
             "opened: each exposed delegate's votes, discount flag and positions per touched market",
             _proposal_exposure_value,
             keys=lambda state: [("proposal_exposure", proposal_id) for proposal_id in state.proposal_exposures],
             snapshot=(Section("proposal_exposures", _write_proposal_exposures, _read_proposal_exposures),)),
    LeafKind("counter_report", ("counter_id",), "a bonded counter-report against a proposal's stress gate: "
             "figures, scenario set, bond, judgement, answer", _counter_report_value,
             keys=lambda state: [("counter_report", counter_id) for counter_id in state.counter_reports],
             snapshot=(Section("counter_reports", _write_counter_reports, _read_counter_reports),)),
    LeafKind("upgrade", (), "the scheduled software upgrade: name, height, code hash (absent while none)",
             lambda state, key: (None if state.upgrade == ScheduledUpgrade()
                                 else [state.upgrade.name, state.upgrade.height, state.upgrade.code_hash]),
             keys=lambda state: [("upgrade",)] if state.upgrade != ScheduledUpgrade() else [],
             snapshot=(Section("upgrade", lambda state: asdict(state.upgrade),
                               _set("upgrade", lambda d: ScheduledUpgrade(**d))),)),
)

LEAF_KINDS_BY_NAME: Final[dict[str, LeafKind]] = {kind.name: kind for kind in LEAF_KINDS}
_TOP_LEVEL: Final = tuple((kind, tuple(child for child in LEAF_KINDS if child.within == kind.name))
                          for kind in LEAF_KINDS if kind.within is None)


def _encoder(kind: LeafKind) -> Callable[[State, Key], bytes | None]:
    if kind.fast is not None:
        return kind.fast
    value = kind.value
    return lambda state, key: _generic(value, state, key)


# kind name -> the function giving a leaf's bytes (its fast encoder or the generic one)
LEAF_ENCODERS: Final[dict[str, Callable[[State, Key], bytes | None]]] = {
    kind.name: _encoder(kind) for kind in LEAF_KINDS}


def serialize_leaf(state: State, key: Key) -> Value:
    """The canonical value of a leaf, or None when the object no longer exists."""
    kind = LEAF_KINDS_BY_NAME.get(key[0])
    if kind is None:
        raise ValueError(f"unknown leaf kind {key[0]!r}")
    return kind.value(state, key)


def leaf_bytes(state: State, key: Key) -> bytes | None:
    """``key || 0 || value`` exactly as ``leaf_encoding`` encodes it (None when the leaf is gone),
    through the kind's ``fast`` encoder when it has one. A fast encoder formats the bytes directly
    when no string in them needs JSON escaping (``_plain``: addresses, tickers and the fixed words
    never do; anything else, such as a string with a newline, a quote or non-ASCII text, goes through
    the generic encoder). A property test checks the equality on hostile strings."""
    encode = LEAF_ENCODERS.get(key[0])
    if encode is None:
        raise ValueError(f"unknown leaf kind {key[0]!r}")
    return encode(state, key)


def iter_leaf_keys(state: State) -> Iterator[Key]:
    """Every leaf key of the current state, in a deterministic order: the kinds in table order, each
    key followed by the keys of the kinds declared within it."""
    for kind, children in _TOP_LEVEL:
        for key in kind.keys(state):  # type: ignore[misc]  # a top-level kind always has keys
            yield key
            for child in children:
                yield from child.keys_within(state, key)  # type: ignore[misc]  # a child always has keys_within


# --------------------------------------------------------------------------------------- snapshots
SNAPSHOT_SECTIONS: Final[tuple[Section, ...]] = tuple(section for kind in LEAF_KINDS for section in kind.snapshot)


def write_sections(state: State) -> dict[str, Json]:
    """Every kind's snapshot fields of ``state``."""
    return {section.name: section.write(state) for section in SNAPSHOT_SECTIONS}


def read_sections(document: dict[str, Json]) -> State:
    """A state rebuilt from every kind's snapshot fields of ``document`` (in table order; derived data
    not in any leaf is the snapshot module's to add). Raises KeyError, TypeError or ValueError on a
    malformed document."""
    state = State(chain_id="", genesis_time_ms=0, time_ms=0, height=0, bridge_operator="", oracle_operators=(),
                  tiers={}, markets={}, funding=FundingParams(), fees=FeeParams(), liquidation=LiquidationParams(),
                  insurance_funds={})
    for section in SNAPSHOT_SECTIONS:
        section.read(state, document[section.name])
    return state


# --------------------------------------------------------------------------------------- documentation
def leaf_table() -> str:
    """The Markdown table of the leaf kinds (docs/protocol.md, "State hash")."""
    rows = ["| Leaf key | Holds | Snapshot field |", "|---|---|---|"]
    for kind in LEAF_KINDS:
        key = "(" + ", ".join([f'"{kind.name}"', *kind.key]) + ("," if not kind.key else "") + ")"
        where = (f"inside `{LEAF_KINDS_BY_NAME[kind.within].snapshot[0].name}`" if kind.within is not None
                 else ", ".join(f"`{section.name}`" for section in kind.snapshot))
        rows.append(f"| `{key}` | {kind.holds} | {where} |")
    return "\n".join(rows) + "\n"
