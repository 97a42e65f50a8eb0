"""Presentation: the integers of the state, events, results and read-model rows as decimal text.

The core keeps money and quantities as integers on fixed grids (micro-USDC, lots, ticks, BGOV
units); everything a person or a client reads shows them as decimal strings on those grids. The
helpers here are the one place that does it, shared by the scenario-file runner
(``bastion.scenario``), the API (``bastion.api``) and the web pages (``bastion.web``):

- the unit tables (which event field is a price, a size, an amount of USDC or of BGOV) and
  ``format_event`` / ``format_result`` for events and transaction results;
- ``describe_state`` and its parts (positions, governance, rollouts, BGOV, the guardian): the
  ``final`` section of a scenario result, and the API's descriptions of the same things;
- ``format_row`` and its column tables, for the read models' history rows.

This module reads the state and formats; it changes nothing and imports no adapter.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

from bastion.core import staking, votes
from bastion.core import events as ev
from bastion.core.book import BUY
from bastion.core.deadman import DAY_MS
from bastion.core.events import Unit
from bastion.core.agents import is_live
from bastion.core.bot_limits import format_bot_limits
from bastion.core.maker_rewards import format_maker_reward_params, maker_standings
from bastion.core.governance import compute_quorum_votes, format_governance_params
from bastion.core.governance import council_rules as council
from bastion.core.margin import get_subaccount_risk
from bastion.core.governance import rollout as rollouts
from bastion.core.governance.counter_reports import describe_counter_reports
from bastion.core.upgrades import describe_upgrade
from bastion.core.state import Position, Rollout, State, TwapOrder
from bastion.core.timefmt import format_iso_ms
from bastion.core.units import MS_PER_S, USDC_DECIMALS, format_decimal, format_ppm, format_usdc
from bastion.core.votes import BGOV_DECIMALS
from bastion.risk_model import maker_reward, notional

def format_event(event: dict[str, Any], state: State) -> dict[str, Any]:
    """An event with its integers as decimal strings, by the units its type declares
    (``bastion.core.events.units_of``): micro-USDC and BGOV with 6 decimals, ticks and lots on its
    market's grid (left as integers when the event names no listed market); every other unit
    (ppm, ms, heights, ids, counts ...) stays an integer. An undeclared type is returned as is."""
    try:
        units = ev.units_of(event["type"])
    except KeyError:
        return dict(event)
    market = state.markets.get(event.get("market", ""))

    def one(value: Any, unit: Unit | None) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return value
        if unit == Unit.USDC:
            return format_usdc(value)
        if unit == Unit.BGOV:
            return format_decimal(value, BGOV_DECIMALS)
        if market is not None and unit == Unit.TICKS:
            return format_decimal(value, market.price_decimals)
        if market is not None and unit == Unit.LOTS:
            return format_decimal(value, market.size_decimals)
        return value

    def walk(obj: dict[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            path = prefix + key
            if isinstance(value, dict):
                out[key] = walk(value, path + ".")
            elif isinstance(value, list):
                out[key] = [walk(v, path + ".") if isinstance(v, dict) else one(v, units.get(path)) for v in value]
            else:
                out[key] = one(value, units.get(path))
        return out
    return walk(event, "")


def describe_position(state: State, ticker: str, position: Position) -> dict:
    """A position with its cost: entry price (rounded to the tick grid) and unrealised PnL."""
    market = state.markets[ticker]
    grid = {"size_decimals": market.size_decimals, "price_decimals": market.price_decimals}
    value = notional(position.size, market.oracle_price, **grid)
    lot_tick = Fraction(10) ** (USDC_DECIMALS - market.size_decimals - market.price_decimals)  # micro-USDC
    entry = round(Fraction(position.cost) / (position.size * lot_tick))  # half to even
    return {"market": ticker, "size": format_decimal(position.size, market.size_decimals),
            "entry_price": format_decimal(entry, market.price_decimals),
            "cost": format_usdc(position.cost), "unrealized_pnl": format_usdc(value - position.cost)}


def describe_state(state: State) -> dict:
    """The ``final`` section of a scenario result: every balance, position, market and fund."""
    subaccounts = []
    for sub in state.subaccounts.values():
        tnc, imr, mmr = get_subaccount_risk(state, sub)
        entry = {"owner": sub.owner, "number": sub.number, "usdc": format_usdc(sub.balance),
                 "equity": format_usdc(tnc), "imr": format_usdc(imr), "mmr": format_usdc(mmr),
                 "positions": [describe_position(state, t, p) for t, p in sorted(sub.positions.items())],
                 "open_orders": len(sub.orders), "conditional_orders": len(sub.conditional_orders)}
        if sub.mode != "cross":
            entry["mode"] = sub.mode
            entry["market"] = sub.isolated_market
        subaccounts.append(entry)
    markets = [{"ticker": m.ticker, "oracle_price": format_decimal(m.oracle_price, m.price_decimals),
                "open_interest": format_decimal(m.open_interest, m.size_decimals),
                "funding_index": str(m.funding_index), "status": m.status, "stale": m.stale,
                "best_bid": None if (bid := m.book.best_bid()) is None else format_decimal(bid, m.price_decimals),
                "best_ask": None if (ask := m.book.best_ask()) is None else format_decimal(ask, m.price_decimals),
                "resting_orders": len(m.book), "liquidations": state.liquidation_counts.get(m.ticker, 0)}
               for m in state.markets.values()]
    return {"height": state.height, "time": format_iso_ms(state.time_ms), "state_hash": state.state_hash,
            "subaccounts": subaccounts, "markets": markets,
            "insurance_funds": {k: format_usdc(v) for k, v in state.insurance_funds.items()},
            "protocol_accounts": {"fees": format_usdc(state.fees_account),
                                  "funding": format_usdc(state.funding_account)},
            "totals": {"deposits": format_usdc(state.total_deposits),
                       "withdrawals": format_usdc(state.total_withdrawals)},
            "bgov": describe_bgov(state),
            "governance": describe_governance(state),
            "guardian": describe_guardian(state),
            "council": council.describe_council(state),
            "agents": describe_agent_grants(state),
            "twap_orders": [describe_twap(state, twap) for twap in state.twap_orders.values()],
            "bot_limits": format_bot_limits(state.bot_limits),
            "cancel_schedules": [{"owner": owner, "time": None if r.time_ms is None else format_iso_ms(r.time_ms),
                                  "day": format_iso_ms(r.day * DAY_MS)[:10], "triggers": r.triggers}
                                 for owner, r in state.cancel_schedules.items()],
            "insurance_staking": describe_staking(state),
            "maker_rewards": {"pool": format_usdc(state.maker_rewards.pool), "epoch": state.maker_rewards.epoch,
                              "paid_total": format_usdc(state.maker_rewards.paid_total)}}


def describe_agent_grants(state: State, owner: str | None = None) -> list[dict]:
    """Agent keys' grants (``bastion.core.agents``), of one owner or of all, in authorisation order:
    owner, agent, label, subaccounts (null: all), permissions, expiry and authorisation (RFC 3339)
    and whether the grant is in force at the state's block time."""
    owners = list(state.agents) if owner is None else [owner] if owner in state.agents else []
    return [{"owner": o, "agent": agent, "label": g.label,
             "subaccounts": None if g.subaccounts is None else list(g.subaccounts),
             "permissions": list(g.permissions), "expires": format_iso_ms(g.expires_ms),
             "expires_ms": g.expires_ms, "authorized": format_iso_ms(g.authorized_ms),
             "live": is_live(state, g)}
            for o in owners for agent, g in state.agents[o].items()]


def describe_twap(state: State, twap: TwapOrder) -> dict:
    """A live TWAP order (``bastion.core.twap_orders``) with its sizes on its market's grid: its
    progress (slices done of all, filled and remaining size) and when its next slice is due (block
    time: it trades at the end of the first block at or after it)."""
    market = state.markets[twap.market]
    return {"twap_id": twap.twap_id, "owner": twap.owner, "number": twap.number, "market": twap.market,
            "side": "buy" if twap.side == BUY else "sell", "size": format_decimal(twap.lots, market.size_decimals),
            "filled": format_decimal(twap.filled, market.size_decimals), "slices": twap.slices,
            "slices_done": twap.slices_done, "max_slippage": format_ppm(twap.slippage_ppm),
            "reduce_only": twap.reduce_only, "next_slice": format_iso_ms(twap.next_slice_ms),
            "remaining": format_decimal(twap.lots - twap.filled, market.size_decimals),
            "next_slice_ms": twap.next_slice_ms, "started": format_iso_ms(twap.start_ms)}


def describe_cancel_schedule(state: State, owner: str) -> dict:
    """An owner's dead-man's switch (``bastion.core.deadman``): whether it is armed, the block time
    at which it fires (at the end of the first block at or after it), and its firings today (UTC day
    of the state's block time) against the governed daily limit."""
    record = state.cancel_schedules.get(owner)
    armed_ms = None if record is None else record.time_ms
    today = state.time_ms // DAY_MS
    fired = record.triggers if record is not None and record.day == today else 0
    return {"owner": owner, "armed": armed_ms is not None,
            "fires_at": None if armed_ms is None else format_iso_ms(armed_ms), "fires_at_ms": armed_ms,
            "triggers_today": fired, "max_triggers_per_day": state.bot_limits.deadman_max_triggers_per_day,
            "min_delay_ms": state.bot_limits.deadman_min_delay_ms}


def describe_guardian(state: State) -> dict:
    """The guardian (address and expiry, or nulls), the pauses in force (times in RFC 3339) and the
    pause keys used in the guardian's current term."""
    guardian = state.guardian
    expires = guardian.expires_ms
    return {"address": guardian.address, "expires": None if expires is None else format_iso_ms(expires),
            "pauses": [{"scope": p.scope, "market": p.market, "start": format_iso_ms(p.start_ms),
                        "end": format_iso_ms(p.end_ms)} for p in state.pauses.values()],
            "pauses_used": [{"scope": scope, "market": market} for (scope, market), term in guardian.pauses_used.items()
                            if term == expires]}


def describe_governance(state: State) -> dict:
    """Governance parameters (genesis form) and every proposal with its tally, in submission order."""
    def bgov(units: int) -> str:
        return format_decimal(units, BGOV_DECIMALS)

    return {"params": format_governance_params(state.governance),
            "proposals": [{"proposal_id": p.proposal_id, "number": p.number, "proposer": p.proposer, "title": p.title,
                           "risk_class": p.risk_class, "status": p.status, "deposit": bgov(p.deposit_bgov),
                           "deposit_state": p.deposit_state, "snapshot_height": p.snapshot_height,
                           "deadline_height": p.deadline_height, "extended": p.extended,
                           "swing_extensions": p.swing_extensions, "fee": bgov(p.fee_bgov),
                           "quorum_votes": bgov(compute_quorum_votes(state, p)),
                           "tally": {"yes": bgov(p.yes), "no": bgov(p.no), "abstain": bgov(p.abstain),
                                     "veto": bgov(p.veto)},
                           "queued_ms": p.queued_ms, "closed_height": p.closed_height}
                          for p in state.proposals.values()],
            "rollouts": [describe_rollout(state, r) for r in state.rollouts.values()],
            "counter_reports": describe_counter_reports(state), "upgrade": describe_upgrade(state)}


def describe_rollout(state: State, rollout: Rollout) -> dict:
    """A staged rollout with its values as its direct action writes them (sizes on the market's grid,
    ratios, USDC, seconds, tier ids), its planned step values, its gates and their last measures."""
    path = rollouts.get_param_path(rollout)
    unit = rollouts.get_lever(rollout).unit

    def value(raw: int) -> str:
        return rollouts.format_param_value(state, path, raw)

    def gate(name: str, raw: int) -> Any:
        return rollouts.format_gate_value(state, rollout, name, raw)

    return {"rollout_id": rollout.rollout_id, "market": rollout.market, "param": rollout.param,
            "path": str(path), "status": rollout.status, "step": rollout.step, "steps": rollout.steps,
            "start": value(rollout.start), "target": value(rollout.target),
            "value": value(rollouts.get_current_value(state, path)),
            "planned": [value(rollouts.get_step_value(rollout, i, unit)) for i in range(1, rollout.steps + 1)],
            "interval_s": rollout.interval_ms // MS_PER_S,
            "gates": {name: gate(name, limit) for name, limit in rollouts.get_gate_limits(rollout).items()},
            "measured": {name: gate(name, raw) for name, raw in rollout.measured.items()},
            "gate_checks": [{"gate": name, "measure": rollouts.MEASURES[name], "limit": gate(name, limit),
                             "measured": gate(name, rollout.measured[rollouts.MEASURES[name]])
                             if rollouts.MEASURES[name] in rollout.measured else None}
                            for name, limit in rollouts.get_gate_limits(rollout).items()],
            "revert_on_breach": rollout.revert_on_breach,
            "next_step_time": format_iso_ms(rollout.next_step_ms), "halt_reason": rollout.halt_reason,
            "reverted": rollout.reverted, "proposal_id": rollout.proposal_id, "ended_height": rollout.ended_height}


def describe_bgov(state: State) -> dict:
    """BGOV supply, and per address (holder, delegator or delegatee) its balance, delegate, current
    votes and vote checkpoints ``[height, votes]`` (the history past-vote lookups read)."""
    def bgov(units: int) -> str:
        return format_decimal(units, BGOV_DECIMALS)

    addresses = sorted(set(votes.iter_bgov_accounts(state)) | set(state.vote_checkpoints))
    return {"total_supply": bgov(votes.get_total_supply(state)),
            "delegated_supply": bgov(votes.get_delegated_supply(state)),
            "delegated_supply_checkpoints": [[h, bgov(v)] for h, v in state.delegated_supply_checkpoints],
            "accounts": [{"address": a, "balance": bgov(votes.get_balance(state, a)),
                          "delegate": votes.get_delegate(state, a), "votes": bgov(votes.get_votes(state, a)),
                          "checkpoints": [[h, bgov(v)] for h, v in state.vote_checkpoints.get(a, [])]}
                         for a in addresses]}


def format_result(result: dict, state: State) -> dict:
    """A transaction result with its amounts on their grids: a vote's ``weight`` (and the
    ``exposed_full_weight`` of a discounted vote) in BGOV, a fill's ``filled`` in its market's size decimals."""
    if "weight" in result:  # a vote's weight, in BGOV
        return {**result, **{key: format_decimal(result[key], BGOV_DECIMALS)
                             for key in ("weight", "exposed_full_weight") if key in result}}
    if "filled" in result and result.get("market") in state.markets:
        market = state.markets[result["market"]]
        return {**result, "filled": format_decimal(result["filled"], market.size_decimals)}
    return result


# ------------------------------------------------------------------------------ read-model rows
PRICE_COLUMNS = {"price", "trigger_price", "open", "high", "low", "close", "oracle_price"}
SIZE_COLUMNS = {"size", "filled", "remaining", "volume_lots", "change"}
USDC_COLUMNS = {"quote", "taker_fee", "maker_fee", "to_insurance", "amount", "volume_quote"}


def format_row(state: Any, row: dict[str, Any]) -> dict[str, Any]:
    """A read-model row with its amounts as decimal strings on its market's grid (``state``: the
    state, or any object with its ``markets``, e.g. a copy taken under the node's lock)."""
    market = state.markets.get(row.get("market"))
    out = {}
    for key, value in row.items():
        if key == "detail" and isinstance(value, dict):
            value = format_event(value, state)
        elif isinstance(value, int) and not isinstance(value, bool):
            if key in USDC_COLUMNS:
                value = format_usdc(value)
            elif market is not None and key in PRICE_COLUMNS:
                value = format_decimal(value, market.price_decimals)
            elif market is not None and key in SIZE_COLUMNS:
                value = format_decimal(value, market.size_decimals)
            elif key == "rate_8h_ppm":
                value = format_ppm(value)
            elif key in ("index_delta", "funding_index"):
                value = str(value)
        out[key] = value
    return out


def describe_staking(state: State) -> dict:
    """Insurance staking (``bastion.core.staking``) for people: per fund its staked and protocol-owned
    parts, shares, share price (USDC per share, rounded down), target and gap, replenishing flag and
    the stakers' cumulative fees and losses; every staker's free shares and their value; the pending
    unstake requests."""
    targets = staking.fund_targets(state)
    pools = {}
    for pool, (fund, target, gap) in targets.items():
        record = state.stake_pools.get(pool)
        staked, shares = (record.staked, record.shares) if record is not None else (0, 0)
        pools[pool] = {"fund": format_usdc(fund), "staked": format_usdc(staked),
                       "protocol_owned": format_usdc(fund - staked), "shares": format_usdc(shares),
                       "share_price": format_usdc(staked * 1_000_000 // shares) if shares else "1",
                       "target": format_usdc(target), "gap": format_usdc(gap),
                       "replenishing": bool(record is not None and record.replenishing),
                       "fee_share": format_ppm(staking.fee_share_ppm(state, pool)),
                       "fees_earned": format_usdc(record.fees_earned if record is not None else 0),
                       "losses_borne": format_usdc(record.losses_borne if record is not None else 0)}
    stakes = [{"pool": pool, "owner": owner, "shares": format_usdc(shares),
               "value": format_usdc(staking.share_value(state.stake_pools[pool], shares))}
              for (pool, owner), shares in sorted(state.stakes.items())]
    requests = [{"request_id": rid, "pool": r.pool, "owner": r.owner, "subaccount": r.subaccount,
                 "shares": format_usdc(r.shares), "value": format_usdc(staking.share_value(state.stake_pools[r.pool],
                                                                                          r.shares)),
                 "requested": format_iso_ms(r.requested_ms), "available": format_iso_ms(r.available_ms),
                 "available_ms": r.available_ms}
                for rid, r in state.unstake_requests.items()]
    return {"pools": pools, "stakes": stakes, "unstake_requests": requests}


# ------------------------------------------------------------------------------ maker rewards
def describe_maker_rewards(state: State, owner: str | None = None) -> dict[str, Any]:
    """The maker-reward pool, its parameters, the running epoch and its leaderboard (each maker's
    score with its parts per market, its share of the total and what it would be paid if the epoch
    closed now from the pool as it is), for the API (``GET /v1/rewards``) and the web leaderboard.
    ``owner``: only that owner's rows (ranks stay those of the whole board)."""
    params, rewards = state.maker_reward_params, state.maker_rewards
    standings = maker_standings(state)
    total = sum(entry["score"] for entry in standings)
    board = []
    for rank, entry in enumerate(standings, start=1):
        if owner is not None and entry["owner"] != owner:
            continue
        share = Fraction(entry["score"], total) if total else Fraction(0)
        board.append({
            "rank": rank, "owner": entry["owner"], "number": entry["number"], "score": format_usdc(entry["score"]),
            "share_of_score": format_ppm(int(share * 1_000_000)),
            "estimated_reward": format_usdc(maker_reward(rewards.pool, entry["score"], total,
                                                         max_share_ppm=params.max_share_per_maker_ppm)),
            "markets": [{"market": part["market"], "weighted_depth": format_usdc(part["weighted_depth"]),
                         "two_sided_samples": part["two_sided_samples"], "samples": part["samples"],
                         "time_in_market": format_ppm(part["two_sided_samples"] * 1_000_000 // part["samples"]
                                                      if part["samples"] else 0),
                         "score": format_usdc(part["score"])} for part in entry["markets"]]})
    on = params.epoch_blocks > 0
    interval = params.sample_interval_blocks
    return {"height": state.height, "enabled": on, "params": format_maker_reward_params(params),
            "pool": format_usdc(rewards.pool), "epoch": rewards.epoch, "epoch_start_height": rewards.epoch_start_height,
            "epoch_end_height": rewards.epoch_start_height + params.epoch_blocks if on else None,
            "next_sample_height": (state.height // interval + 1) * interval if on else None,
            "paid_total": format_usdc(rewards.paid_total), "total_score": format_usdc(total),
            "last_prices": {ticker: format_decimal(price, state.markets[ticker].price_decimals)
                            for ticker, price in rewards.last_prices.items()},
            "leaderboard": board}
