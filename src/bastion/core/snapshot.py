"""Snapshots: the whole state as a canonical JSON document, and back (DESIGN.md section 1).

A snapshot lets a node start from height H instead of replaying the log from genesis. It is data,
not pickle: ``state_to_document`` gives plain JSON types only (ints, strings, booleans, null,
lists; maps whose order matters are lists of pairs), ``canonical_bytes`` its one byte encoding,
and ``state_from_document`` rebuilds a ``State`` that behaves exactly as the original: the same
state hash (checked on load against the one the document carries), the same book queues, the
same order of subaccounts, orders and conditional orders, and the derived data the liquidation
scan keeps between blocks (``holders``, ``scanned``, ``liquidation_watch``), so a node restored
from a snapshot produces the same blocks as one that never stopped.

Pure: no I/O (the node writes and reads the files).
"""
from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from bastion.core.book import Order
from bastion.core.errors import ProtocolError
from bastion.core.hashing import commit_state_hash, iter_leaf_keys
from bastion.core.messages import ACTION_NAMES, decode_action
from bastion.core.nonces import rebuild_nonce_expiry
from bastion.core.params import (
    RISK_CLASSES, FeeParams, FundingParams, GovernanceParams, GovernanceTier, LiquidationParams, ListingParams,
    LiquidityTier, OracleParams, OrderLimitParams,
)
from bastion.core.state import (
    Attestation, ConditionalOrder, Council, Guardian, Market, NonceRecord, OrderTerms, ParamHistoryEntry, ParamSource,
    Pause, Position, Proposal, Rollout, State, StewardApproval, StewardBound, StressReportRecord, Subaccount,
)

FORMAT = "bastion-snapshot/14"  # 2: BGOV holders, delegations and vote checkpoints; 3: governance params, proposals;
#   4: parameter history; 5: staged rollouts (in creation order), per-market liquidation counts, the
#   guardian (address, expiry, pause keys used) and its pauses, the council, stress attestations,
#   steward bounds, cooldowns and approvals, listing parameters; 6: the stress gate's verdict
#   thresholds among the governance parameters; 7: the order limits (anti-spam) and markets' max_order_lots;
#   8: the backstop's liquidation parameters and the liquidation stall counters
#   9: registered stress reports; 10: proposal fees, swing extensions and live-proposal limits;
#   11: each sender's spent nonces (core.nonces)
#   12: the settlement TWAP accumulators and checkpoints, the settlement price, the post-pause liquidation
#   grace and its parameters; 13: the per-block liquidation work bounds (max_liquidations_per_block,
#   max_deleveragings_per_block); 14: the stress gate's limit on losses to traders

# Order's constructor arguments, in order (all of them are state)
_ORDER_FIELDS = ("order_id", "side", "price", "remaining", "size", "owner", "number", "client_id",
                 "time_in_force", "reduce_only", "good_til_ms", "self_trade", "placed_ms")
# Market fields that are not plain values
_MARKET_SPECIAL = {"oracle_params", "submissions", "book", "holders", "scanned", "block_premiums", "minute_samples",
                   "twap_checkpoints"}
_STATE_SCALARS = ("chain_id", "genesis_time_ms", "time_ms", "height", "bridge_operator", "fees_account",
                  "funding_account", "total_deposits", "total_withdrawals", "seed_insurance", "next_order_id",
                  "params_epoch", "state_hash")


def state_to_document(state: State) -> dict[str, Any]:
    """The complete state as JSON-ready data (commit the block first: the hash must be current)."""
    if state.dirty:
        raise ValueError("snapshot of a state with uncommitted changes (call end_block first)")
    return {
        "format": FORMAT,
        **{name: getattr(state, name) for name in _STATE_SCALARS},
        "oracle_operators": list(state.oracle_operators),
        "tiers": [asdict(tier) for _, tier in sorted(state.tiers.items())],
        "funding": asdict(state.funding),
        "fees": asdict(state.fees),
        "liquidation": asdict(state.liquidation),
        "insurance_funds": list(map(list, state.insurance_funds.items())),
        "bgov": list(map(list, state.bgov.items())),
        "bgov_delegates": list(map(list, state.bgov_delegates.items())),
        "vote_checkpoints": [[delegatee, [list(c) for c in checkpoints]]
                             for delegatee, checkpoints in state.vote_checkpoints.items()],
        "delegated_supply_checkpoints": [list(c) for c in state.delegated_supply_checkpoints],
        "total_supply_checkpoints": [list(c) for c in state.total_supply_checkpoints],
        "withdrawals_paused_until": list(map(list, state.withdrawals_paused_until.items())),
        "bad_debt": list(map(list, state.bad_debt.items())),
        "markets": [_market_document(market) for market in state.markets.values()],
        "subaccounts": [_subaccount_document(sub) for sub in state.subaccounts.values()],
        "conditional_orders": [_conditional_document(order) for order in state.conditional_orders.values()],
        "gtt_queue": [list(entry) for entry in state.gtt_queue],
        "liquidation_watch": [list(key) for key in state.liquidation_watch],
        "liquidation_stalls": [[owner, number, blocks] for (owner, number), blocks in state.liquidation_stalls.items()],
        "liquidation_grace_until": list(map(list, state.liquidation_grace_until.items())),
        "governance": asdict(state.governance),
        "listing": asdict(state.listing),
        "order_limits": asdict(state.order_limits),
        "proposals": [_proposal_document(p) for p in state.proposals.values()],
        "param_history": [[e.name, e.old, e.new, e.height, e.source.kind, e.source.ref, e.source.number]
                          for e in state.param_history],
        "rollouts": [asdict(rollout) for rollout in state.rollouts.values()],
        "liquidation_counts": list(map(list, state.liquidation_counts.items())),
        "guardian": {"address": state.guardian.address, "expires_ms": state.guardian.expires_ms,
                     "pauses_used": [[scope, market, term]
                                     for (scope, market), term in state.guardian.pauses_used.items()]},
        "pauses": [[p.scope, p.market, p.start_ms, p.end_ms] for p in state.pauses.values()],
        "council": {"members": list(state.council.members), "threshold": state.council.threshold},
        "attestations": [[pid, member, a.report_hash, a.verdict, a.attested_ms, a.height]
                         for pid, by_member in state.attestations.items() for member, a in by_member.items()],
        "stress_reports": [[report_hash, r.verdict, r.depletion_probability_ppm, r.var99_loss_usdc, r.es99_loss_usdc,
                            r.insurance_funds_total_usdc, r.registered_by, r.registered_ms, r.height]
                           for report_hash, r in state.stress_reports.items()],
        "steward_bounds": [[name, b.kind, b.max_change, b.cooldown_ms] for name, b in state.steward_bounds.items()],
        "steward_last_change_ms": list(map(list, state.steward_last_change_ms.items())),
        "steward_approvals": [[name, member, a.value, a.approved_ms, a.height]
                              for name, by_member in state.steward_approvals.items()
                              for member, a in by_member.items()],
        "nonces": [[sender, r.floor, r.last_ms, list(r.used)] for sender, r in state.nonces.items()],
    }


def canonical_bytes(document: Any) -> bytes:
    """The one encoding of a snapshot document: compact JSON, keys sorted, ASCII."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def state_from_document(document: dict[str, Any], *, check_hash: bool = True) -> State:
    """Rebuild the state; raises ``ProtocolError("invalid_snapshot", ...)`` if the document is not a
    snapshot of this format or (unless not ``check_hash``: tools inspecting a document) does not
    reproduce the state hash it records."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ProtocolError("invalid_snapshot", f"not a {FORMAT} document", field="format")
    try:
        state = _build(document)
    except (KeyError, TypeError, ValueError) as error:
        raise ProtocolError("invalid_snapshot", f"malformed snapshot: {error!r}", field="snapshot") from error
    for key in iter_leaf_keys(state):
        state.touch(key)
    recorded = document["state_hash"]
    if commit_state_hash(state) != recorded and check_hash:
        raise ProtocolError("invalid_snapshot",
                            f"snapshot does not reproduce its state hash {recorded} (got {state.state_hash})",
                            field="state_hash")
    return state


# --------------------------------------------------------------------------------------- to JSON
def _market_document(market: Market) -> dict[str, Any]:
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


def _subaccount_document(sub: Subaccount) -> dict[str, Any]:
    return {
        "owner": sub.owner, "number": sub.number, "balance": sub.balance, "mode": sub.mode,
        "isolated_market": sub.isolated_market,
        "positions": [[ticker, p.size, p.funding_index, p.cost] for ticker, p in sub.positions.items()],
        "imf_overrides": list(map(list, sub.imf_overrides.items())),
        "orders": list(map(list, sub.orders.items())),
        "client_ids": list(map(list, sub.client_ids.items())),
        "conditional_orders": list(map(list, sub.conditional_orders.items())),
    }


def _conditional_document(order: ConditionalOrder) -> dict[str, Any]:
    return {"order_id": order.order_id, "order_type": order.order_type, "trigger_ticks": order.trigger_ticks,
            "placed_ms": order.placed_ms, "terms": asdict(order.terms)}


def _proposal_document(proposal: Proposal) -> dict[str, Any]:
    doc = {f.name: getattr(proposal, f.name) for f in fields(proposal) if f.name not in ("actions", "rules", "ballots")}
    doc["actions"] = [{"type": ACTION_NAMES[type(a)], **asdict(a)} for a in proposal.actions]
    doc["rules"] = asdict(proposal.rules)
    doc["ballots"] = [[voter, option, weight, reason] for voter, (option, weight, reason) in proposal.ballots.items()]
    return doc


# --------------------------------------------------------------------------------------- from JSON
def _build(doc: dict[str, Any]) -> State:
    markets = {m["ticker"]: _market(m) for m in doc["markets"]}
    tiers = {t["tier_id"]: LiquidityTier(**t) for t in doc["tiers"]}
    state = State(chain_id=doc["chain_id"], genesis_time_ms=doc["genesis_time_ms"], time_ms=doc["time_ms"],
                  height=doc["height"], bridge_operator=doc["bridge_operator"],
                  oracle_operators=tuple(doc["oracle_operators"]), tiers=tiers, markets=markets,
                  funding=FundingParams(**doc["funding"]), fees=FeeParams(**doc["fees"]),
                  liquidation=LiquidationParams(**doc["liquidation"]),
                  insurance_funds={pool: amount for pool, amount in doc["insurance_funds"]})
    for name in _STATE_SCALARS:
        if name != "state_hash":
            setattr(state, name, doc[name])
    state.bgov = {owner: amount for owner, amount in doc["bgov"]}
    state.bgov_delegates = {owner: delegatee for owner, delegatee in doc["bgov_delegates"]}
    state.vote_checkpoints = {delegatee: [(height, votes) for height, votes in checkpoints]
                              for delegatee, checkpoints in doc["vote_checkpoints"]}
    state.delegated_supply_checkpoints = [(height, amount) for height, amount in doc["delegated_supply_checkpoints"]]
    state.total_supply_checkpoints = [(height, amount) for height, amount in doc["total_supply_checkpoints"]]
    state.withdrawals_paused_until = {pool: height for pool, height in doc["withdrawals_paused_until"]}
    state.bad_debt = {pool: amount for pool, amount in doc["bad_debt"]}
    for s in doc["subaccounts"]:
        sub = Subaccount(s["owner"], s["number"], s["balance"], s["mode"], s["isolated_market"])
        sub.positions = {t: Position(size, index, cost) for t, size, index, cost in s["positions"]}
        sub.imf_overrides = {t: v for t, v in s["imf_overrides"]}
        sub.orders = {order_id: ticker for order_id, ticker in s["orders"]}
        sub.client_ids = {client_id: order_id for client_id, order_id in s["client_ids"]}
        sub.conditional_orders = {order_id: ticker for order_id, ticker in s["conditional_orders"]}
        state.subaccounts[(sub.owner, sub.number)] = sub
    for c in doc["conditional_orders"]:
        order = ConditionalOrder(c["order_id"], c["order_type"], c["trigger_ticks"], c["placed_ms"],
                                 OrderTerms(**c["terms"]))
        state.conditional_orders[order.order_id] = order
    state.gtt_queue = [(good_til, order_id, ticker) for good_til, order_id, ticker in doc["gtt_queue"]]
    state.liquidation_watch = {(owner, number): None for owner, number in doc["liquidation_watch"]}
    state.liquidation_stalls = {(owner, number): blocks for owner, number, blocks in doc["liquidation_stalls"]}
    state.liquidation_grace_until = {ticker: until for ticker, until in doc["liquidation_grace_until"]}
    governance = dict(doc["governance"])
    tier_docs = governance.pop("tiers")
    rules = {name: GovernanceTier(**tier_docs[name]) for name in RISK_CLASSES}
    state.governance = GovernanceParams(**governance, tiers=rules)
    listing = dict(doc["listing"])
    listing_oracle = OracleParams(**listing.pop("oracle"))
    state.listing = ListingParams(oracle=listing_oracle, **listing)
    limits = dict(doc["order_limits"])
    state.order_limits = OrderLimitParams(
        open_order_tiers=[[int(equity), int(count)] for equity, count in limits.pop("open_order_tiers")], **limits)
    for p in doc["proposals"]:
        plain = {k: v for k, v in p.items() if k not in ("actions", "rules", "ballots")}
        proposal = Proposal(**plain, actions=tuple(decode_action(a, i) for i, a in enumerate(p["actions"])),
                            rules=GovernanceTier(**p["rules"]))
        proposal.ballots = {voter: (option, weight, reason) for voter, option, weight, reason in p["ballots"]}
        state.proposals[proposal.proposal_id] = proposal
    state.param_history = [ParamHistoryEntry(name, old, new, height, ParamSource(kind, ref, number))
                           for name, old, new, height, kind, ref, number in doc["param_history"]]
    state.rollouts = {r["rollout_id"]: Rollout(**r) for r in doc["rollouts"]}
    state.liquidation_counts = {ticker: count for ticker, count in doc["liquidation_counts"]}
    g = doc["guardian"]
    state.guardian = Guardian(g["address"], g["expires_ms"],
                              {(scope, market): term for scope, market, term in g["pauses_used"]})
    state.pauses = {(scope, market): Pause(scope, market, start, end) for scope, market, start, end in doc["pauses"]}
    state.council = Council(tuple(doc["council"]["members"]), doc["council"]["threshold"])
    for pid, member, report_hash, verdict, attested_ms, height in doc["attestations"]:
        state.attestations.setdefault(pid, {})[member] = Attestation(report_hash, verdict, attested_ms, height)
    state.stress_reports = {values[0]: StressReportRecord(*values[1:]) for values in doc["stress_reports"]}
    state.steward_bounds = {name: StewardBound(kind, max_change, cooldown_ms)
                            for name, kind, max_change, cooldown_ms in doc["steward_bounds"]}
    state.steward_last_change_ms = {name: last_ms for name, last_ms in doc["steward_last_change_ms"]}
    for name, member, value, approved_ms, height in doc["steward_approvals"]:
        state.steward_approvals.setdefault(name, {})[member] = StewardApproval(value, approved_ms, height)
    state.nonces = {sender: NonceRecord(floor, last_ms, list(used)) for sender, floor, last_ms, used in doc["nonces"]}
    rebuild_nonce_expiry(state)
    return state


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
