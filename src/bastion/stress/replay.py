"""The exact engine: scenarios replayed block by block through the real state machine.

``run_exact(state_or_snapshot, scenario_set, indices)`` returns, for each chosen scenario, the same
``ScenarioResult`` as the fast path (``bastion.stress.engine``), measured on the events of
``bastion.core.transition.apply_block``: liquidations, insurance, deleveraging and socialisation are
the state machine's own (DESIGN.md section 8). It is slow (every block is a real block) and meant
for a sample of scenarios, to cross-check the fast path (``tests/test_stress_replay.py``).

Per scenario, on a fresh copy of the state (a snapshot round trip, ``state_to_document`` /
``state_from_document``):

1. **Setup.** The snapshot's resting orders are removed (reason ``stress_replay``) and a
   designated market maker, ``MARKET_MAKER`` subaccount 0 with ``MAKER_COLLATERAL_USDC`` of
   collateral (added as a deposit, so collateral stays conserved), provides the book instead.
2. **Oracle.** Step ``t`` of the path (``paths.build_path``: whole ticks) is submitted as
   ``oracle_update`` messages by the first ``n`` of the state's oracle operators (sorted), ``n`` the
   largest ``min_sources`` of any market: all submit the same price, so the median is that price.
   A market that is stale at step ``t`` in the path gets no submission (the state machine makes it
   stale once ``max_staleness`` has passed). The state machine's ``max_move_per_block`` still
   applies: a jump larger than that arrives over several blocks, as it would on chain.
3. **Blocks.** A step of ``step_s`` seconds holds ``step_s * 1000 / block_ms`` blocks (the scenario
   set's ``block_ms``); block ``k`` of step ``t`` is at ``start + (t - 1) * step_s * 1000 + (k + 1) *
   block_ms``. The first block of each step always runs; the following blocks of the step run only
   while there is work: a liquidation, deleveraging or socialisation in the previous block, or an
   oracle price still on its way to the step's price (clamped). A block without such work changes
   nothing that the next block of the same step would not repeat, so skipping it leaves the
   liquidation outcome unchanged (funding ticks are by block time and still happen).
4. **Book model** (the fast path's slippage model, as resting orders). Whenever the oracle price is
   about to change (and at the first block), the maker cancels its quotes and re-quotes a ladder
   around the price the oracle will show at the end of that block (the step's price, clamped by
   ``max_move_per_block`` from the current one). Per side and market the ladder holds
   ``depth * (a[k+1] - a[k]) / 1%`` micro-USDC at the offset ``a[k]`` from the oracle, with
   ``a[0] = spread`` and widths doubling from ``LADDER_FIRST_WIDTH_PPM`` up to ``max_slippage``,
   where a last level of ``LADDER_BACKSTOP_MULTIPLE x depth`` stands (the fast path fills any flow
   at ``max_slippage``). ``depth`` is the fast path's: the snapshot's resting depth within 1% on that
   side, at least ``baseline_depth``, times ``1 - depth_cut`` of the scenario. Bids are rounded up
   to the tick and asks down, sizes up to the lot: every unit of flow fills at or inside the fast
   path's marginal price ``spread + flow / depth x 1%``. Within a step, consumed depth is not
   replenished unless the oracle moves (all liquidations of a step share the book, as in the fast
   path). The maker's fee and margin are the market's rules; its collateral is never the limit.

**Metrics** (micro-USDC), from the events:

* ``liquidations``: subaccounts with a ``liquidation``, ``deleveraging`` or ``bad_debt`` event;
* ``liquidated_notional``: ``|fill_quote|`` of the liquidation fills plus the oracle value of the
  lots closed by deleveraging and socialisation;
* ``insurance_fees`` / ``insurance_payouts``: the positive / negative ``insurance_delta`` of fills;
* ``insurance_drawdown``: per pool, the start balance minus the lowest balance seen after any fill
  or block, summed over pools;
* ``adl_notional``: the oracle value of the lots closed by ``deleveraging`` and ``bad_debt``
  (socialised) events;
* ``bad_debt``: the loss that deleveraging and socialisation put on counterparties, i.e. the
  bankruptcy quote beyond the oracle value of the closed lots (``bad_debt`` events' ``amount``;
  for ``deleveraging`` the same formula) -- what the fund did not pay; the fast path's ``bad_debt``;
* ``depleted_pools``: pools where such a loss was positive;
* ``trader_loss``: losses to traders who were not liquidated, ``sum(deleveraging.counterparty_loss) +
  sum(bad_debt.amount)`` (where a ``deleveraging`` event has no ``counterparty_loss``, as before the
  backstop existed in the core, it is ``bankruptcy_quote`` minus the oracle value of ``size``, at
  least 0);
* ``backstop_peak``: the largest total over markets of the backstop's inventory (``inventory`` of the
  ``backstop_takeover`` / ``backstop_unwind`` events) valued at the event's price;
* ``insurance_final``: the funds at the end of the replay (sum over pools).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from bastion.core.book import BUY, SELL
from bastion.core.messages import CancelAll, OracleUpdate, PlaceOrder
from bastion.core.orders import remove_order
from bastion.core.params import LiquidationParams
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.state import ACTIVE, CROSS, ISOLATED, REDUCE_ONLY, State, Subaccount
from bastion.core.transition import apply_block
from bastion.core.units import PPM, format_decimal, ppm_of_down
from bastion.risk_model import notional
from bastion.stress.engine import DEPTH_UNIT_PPM, ScenarioResult, first_breach_of, prepare
from bastion.stress.inputs import StressInputs, extract_inputs
from bastion.stress.paths import ScenarioPath, build_path
from bastion.stress.scenarios import EngineSettings, Scenario, ScenarioSet

EXACT_ENGINE_VERSION: Final = "exact-replay/1"
MARKET_MAKER: Final = "0x" + "57e55".rjust(40, "0")   # the book model's maker (an address nobody holds)
MAKER_COLLATERAL_USDC: Final = 10**18                  # one trillion USDC: never the limit
LADDER_FIRST_WIDTH_PPM: Final = 100                    # the first ladder level spans 0.01% of price
LADDER_BACKSTOP_MULTIPLE: Final = 100                  # the last level (at max_slippage): 100x depth
_NO_LIQUIDITY: Final = ("no_liquidity", "empty_book")
_LIQUIDATION_WORK: Final = frozenset({"liquidation", "liquidation_incomplete", "deleveraging", "bad_debt"})


@dataclass(frozen=True)
class ExactResult(ScenarioResult):
    """A ``ScenarioResult`` of the exact engine, with the part of ``bad_debt`` that the state machine
    deleveraged because the book held nothing within the fillable price (its fund could have paid:
    the fast path lets the fund pay it, see ``compare_results``), and the ADL volume of those closes."""

    liquidity_bad_debt_usdc: int = 0
    liquidity_adl_notional_usdc: int = 0


def run_exact(state_or_snapshot: State | dict[str, Any], scenario_set: ScenarioSet,
              indices: Iterable[int] | None = None) -> list[ExactResult]:
    """The exact replay of the scenarios ``indices`` (default: all) of the set, in the given order.

    ``state_or_snapshot`` is a committed ``State`` or its snapshot document
    (``core.snapshot.state_to_document``); it is never modified."""
    document = state_or_snapshot if isinstance(state_or_snapshot, dict) else state_to_document(state_or_snapshot)
    base = state_from_document(document)
    inputs = extract_inputs(base)
    scenarios = scenario_set.scenarios()
    chosen = scenarios if indices is None else [scenarios[i] for i in indices]
    results = []
    for scenario in chosen:
        path = build_path(scenario, inputs, scenario_set)
        results.append(replay_scenario(state_from_document(document), inputs, scenario, path, scenario_set.engine))
    return results


def replay_scenario(state: State, inputs: StressInputs, scenario: Scenario, path: ScenarioPath,
                    settings: EngineSettings) -> ExactResult:
    """Drive ``state`` (a private copy: it is consumed) through the path (module docstring)."""
    operators = oracle_submitters(state)
    tickers = inputs.tickers
    makers = _install_market_makers(state)
    depth = _ladder_depth(inputs, path, settings)
    metrics = _Metrics(state)
    quoted: dict[str, int] = {}
    client_ids = iter(range(1, 2**32))
    start_ms = state.time_ms
    step_ms = path.step_s * 1_000
    blocks_per_step = max(1, step_ms // settings.block_ms)
    first_quote = first_possible_breach(inputs, path)
    for t in range(1, path.steps + 1):
        targets = {tickers[m]: int(path.ticks[t, m]) for m in range(len(tickers))
                   if path.stale is None or not path.stale[t, m]}
        arrival = _arrival(state, targets)
        for k in range(blocks_per_step):
            prices = arrival[min(k, len(arrival) - 1)]
            txs: list[tuple[str, Any]] = []
            if prices:
                update = OracleUpdate({ticker: format_decimal(ticks, state.markets[ticker].price_decimals)
                                       for ticker, ticks in prices.items()})
                txs += [(operator, update) for operator in operators]
            centres = {ticker: _expected_oracle(state, ticker, prices[ticker]) if ticker in prices
                       else state.markets[ticker].oracle_price for ticker in tickers}
            # a stale market accepts only reducing orders: its last ladder stays until it is fresh again
            requote = {ticker: centre for ticker, centre in centres.items()
                       if quoted.get(ticker) != centre and not state.markets[ticker].stale}
            if requote and t >= first_quote:
                txs += _ladder_orders(state, requote, depth, settings, makers, client_ids)
                quoted.update(requote)
            result = apply_block(state, start_ms + (t - 1) * step_ms + (k + 1) * settings.block_ms, txs)
            _check_accepted(result.results, txs)
            metrics.observe(state, result.events)
            worked = any(event["type"] in _LIQUIDATION_WORK for event in result.events)
            arriving = any(state.markets[ticker].oracle_price != ticks for ticker, ticks in targets.items())
            if not (worked or arriving):
                break
    return metrics.result(scenario, path)


def _check_accepted(results: list[dict], txs: list[tuple[str, Any]]) -> None:
    """The replay's own messages must all be accepted: a rejection is a bug of the book model."""
    for (sender, message), result in zip(txs, results):
        if not result["ok"]:
            raise RuntimeError(f"stress replay: {type(message).__name__} from {sender} rejected: "
                               f"{result['code']} ({result['message']})")


def oracle_submitters(state: State) -> tuple[str, ...]:
    """The operators whose submissions carry the path: the first ``n`` (sorted), ``n`` = the largest
    ``min_sources`` of any market (raises ``ValueError`` if the state has fewer operators)."""
    needed = max((m.oracle_params.min_sources for m in state.markets.values()), default=1)
    operators = tuple(sorted(state.oracle_operators))
    if len(operators) < max(needed, 1):
        raise ValueError(f"the state has {len(operators)} oracle operators, a market needs {needed}")
    return operators[:max(needed, 1)]


def first_possible_breach(inputs: StressInputs, path: ScenarioPath) -> int:
    """The first step at which some account could be liquidatable: the fast path's first breach
    (never later than the state machine's) with the threshold raised by half of each account's
    maintenance requirement at the snapshot (a margin for funding during the replay), minus one.
    The model maker quotes from then on; before it, no liquidation can happen and the book is empty."""
    prepared = prepare(inputs)
    lot_value = path.ticks * inputs.lot_tick_value
    margin = 0.5 * inputs.maintenance_requirement.astype(np.float64)
    breach = first_breach_of(prepared.surplus_coefficient, prepared.threshold + margin, prepared.holds, lot_value,
                              path.stale, None)
    found = breach[breach >= 0]
    return int(found.min()) - 1 if found.size else path.steps + 1


def _arrival(state: State, targets: dict[str, int]) -> list[dict[str, int]]:
    """The prices submitted in the blocks of a step: the step's prices at once when every market's move
    is within its ``max_move_per_block``; else ``n`` blocks along the log-linear path from the current
    oracle prices, ``n`` the fewest that keep every market's move per block within its limit, so that
    all markets arrive together (the clamp alone would move them at different speeds, a transient
    that is in neither the scenario nor the fast path)."""
    blocks = 1
    for ticker, target in targets.items():
        market = state.markets[ticker]
        previous, limit = market.oracle_price, market.oracle_params.max_move_per_block_ppm / PPM
        ratio = target / previous
        if ratio < 1.0 and limit < 1.0:
            blocks = max(blocks, math.ceil(math.log(ratio) / math.log1p(-limit) - 1e-9))
        elif ratio > 1.0 and limit > 0.0:
            blocks = max(blocks, math.ceil(math.log(ratio) / math.log1p(limit) - 1e-9))
    if blocks == 1:
        return [targets]
    path = []
    for j in range(1, blocks):
        path.append({ticker: max(1, round(state.markets[ticker].oracle_price * (target / state.markets[ticker]
                                                                                .oracle_price) ** (j / blocks)))
                     for ticker, target in targets.items()})
    return [*path, targets]


def _expected_oracle(state: State, ticker: str, target: int) -> int:
    """The price ``update_oracle_prices`` will set when every submission is ``target``: clamped to
    ``max_move_per_block`` (at least one tick) from the current price."""
    market = state.markets[ticker]
    previous = market.oracle_price
    max_move = max(1, ppm_of_down(previous, market.oracle_params.max_move_per_block_ppm))
    return min(max(target, previous - max_move), previous + max_move)


# --------------------------------------------------------------------------------------- setup and book
def _install_market_makers(state: State) -> dict[str, int]:
    """Remove the snapshot's resting orders and open the model maker's subaccounts, each funded with
    ``MAKER_COLLATERAL_USDC`` (a deposit): 0 (cross) quotes the cross markets, ``i + 1`` is isolated to
    the ``i``-th isolated-only market. Returns {ticker: maker subaccount number}."""
    events: list[dict] = []
    for market in state.markets.values():
        for order in list(market.book.orders()):
            remove_order(state, market, order.order_id, "stress_replay", events)
    if any(owner == MARKET_MAKER for owner, _ in state.subaccounts):
        raise ValueError(f"the state already has the replay's market maker {MARKET_MAKER}")
    isolated = [t for t, m in state.markets.items() if m.isolated_only]
    numbers = {ticker: (isolated.index(ticker) + 1 if ticker in isolated else 0) for ticker in state.markets}
    for number in sorted(set(numbers.values())):
        isolated_market = isolated[number - 1] if number else None
        sub = Subaccount(MARKET_MAKER, number, MAKER_COLLATERAL_USDC, ISOLATED if isolated_market else CROSS,
                         isolated_market)
        state.subaccounts[(MARKET_MAKER, number)] = sub
        state.total_deposits += MAKER_COLLATERAL_USDC
        state.touch(sub.key)
    return numbers


def _ladder_depth(inputs: StressInputs, path: ScenarioPath, settings: EngineSettings) -> dict[str, tuple[int, int]]:
    """Per market, (bid, ask) depth in micro-USDC per 1% of price: the fast path's ``depth``."""
    keep = PPM - path.depth_cut_ppm
    return {ticker: (max(int(inputs.bid_depth_usdc[m]), settings.baseline_depth_usdc) * keep // PPM,
                     max(int(inputs.ask_depth_usdc[m]), settings.baseline_depth_usdc) * keep // PPM)
            for m, ticker in enumerate(inputs.tickers)}


def ladder_offsets(settings: EngineSettings) -> list[int]:
    """The level offsets ``a[k]`` in ppm of price: ``spread``, then widths doubling from
    ``LADDER_FIRST_WIDTH_PPM``, the last one exactly ``max_slippage``."""
    offsets, width = [settings.spread_ppm], LADDER_FIRST_WIDTH_PPM
    while offsets[-1] + width < settings.max_slippage_ppm:
        offsets.append(offsets[-1] + width)
        width *= 2
    if offsets[-1] != settings.max_slippage_ppm:
        offsets.append(settings.max_slippage_ppm)
    return offsets


def _ladder_orders(state: State, centres: dict[str, int], depth: dict[str, tuple[int, int]],
                   settings: EngineSettings, makers: dict[str, int], client_ids) -> list[tuple[str, Any]]:
    """Cancel the maker's quotes and quote the ladder around ``centres`` (module docstring, step 4)."""
    offsets = ladder_offsets(settings)
    out: list[tuple[str, Any]] = [(MARKET_MAKER, CancelAll(makers[ticker], ticker)) for ticker in sorted(centres)]
    for ticker, centre in sorted(centres.items()):
        market = state.markets[ticker]
        if market.status not in (ACTIVE, REDUCE_ONLY):
            continue
        for side, side_depth in ((BUY, depth[ticker][0]), (SELL, depth[ticker][1])):
            for k, offset in enumerate(offsets):
                last = k == len(offsets) - 1
                width_ppm = LADDER_BACKSTOP_MULTIPLE * DEPTH_UNIT_PPM if last else offsets[k + 1] - offset
                amount = side_depth * width_ppm // DEPTH_UNIT_PPM
                if side == BUY:  # rounded in the liquidated account's favour: bids up, asks down
                    ticks = -(-centre * (PPM - offset) // PPM)
                    ticks = min(ticks, centre - 1)
                else:
                    ticks = centre * (PPM + offset) // PPM
                    ticks = max(ticks, centre + 1)
                if ticks <= 0 or amount <= 0:
                    continue
                lot_value = notional(1, ticks, size_decimals=market.size_decimals,
                                     price_decimals=market.price_decimals)
                lots = max(market.min_order_lots, -(-amount // max(lot_value, 1)))
                out.append((MARKET_MAKER, PlaceOrder(
                    subaccount=makers[ticker], market=ticker, side="buy" if side == BUY else "sell",
                    size=format_decimal(lots, market.size_decimals),
                    price=format_decimal(ticks, market.price_decimals), client_id=next(client_ids),
                    time_in_force="post_only")))
    return out


# --------------------------------------------------------------------------------------- metrics
class _Metrics:
    """The per-scenario figures of the module docstring, accumulated from block events."""

    def __init__(self, state: State) -> None:
        self.start = dict(state.insurance_funds)
        self.lowest = dict(state.insurance_funds)
        self.accounts: set[tuple[str, int]] = set()
        self.notional = self.fees = self.payouts = self.adl = self.bad_debt = self.liquidity_bad_debt = 0
        self.trader_loss = self.liquidity_adl = 0
        self.pool_loss: dict[str, int] = {}
        self.inventory: dict[str, int] = {}     # market -> the backstop's inventory notional (at its last price)
        self.backstop_peak = 0
        self.final = sum(state.insurance_funds.values())
        # the stakers' part of each fund (core.staking): their loss is its fall, net of their fees
        self.staked_start = {pool: record.staked for pool, record in state.stake_pools.items()}
        self.staked_now = dict(self.staked_start)

    def observe(self, state: State, events: list[dict]) -> None:
        stopped: dict[tuple, str] = {}  # (owner, number, market) -> why its last liquidation order stopped
        for event in events:
            kind = event["type"]
            if kind == "liquidation_incomplete":
                stopped[(event["owner"], event["number"], event["market"])] = event["reason"]
            elif kind == "liquidation":
                self.accounts.add((event["owner"], event["number"]))
                self.notional += abs(event["fill_quote"])
                delta = event["insurance_delta"]
                self.fees += max(delta, 0)
                self.payouts += max(-delta, 0)
                pool = event["pool"]
                self.lowest[pool] = min(self.lowest.get(pool, 0), event["insurance_fund"])
            elif kind == "backstop_pnl":  # the backstop's realised unwinding result, into or out of its fund
                self.fees += max(event["amount"], 0)
                self.payouts += max(-event["amount"], 0)
            elif kind in ("backstop_takeover", "backstop_unwind"):
                market = state.markets[event["market"]]
                price = event["oracle_price"] if kind == "backstop_takeover" else event["price"]
                self.inventory[event["market"]] = abs(notional(event["inventory"], price,
                                                               size_decimals=market.size_decimals,
                                                               price_decimals=market.price_decimals))
                self.backstop_peak = max(self.backstop_peak, sum(self.inventory.values()))
                if kind == "backstop_takeover":
                    self.accounts.add((event["owner"], event["number"]))
                    self.notional += abs(notional(event["size"], event["oracle_price"],
                                                  size_decimals=market.size_decimals,
                                                  price_decimals=market.price_decimals))
                    self.payouts += max(-event["fund_delta"], 0)
            elif kind in ("deleveraging", "bad_debt"):
                self.accounts.add((event["owner"], event["number"]))
                market = state.markets[event["market"]]
                value = notional(event["size"], event["oracle_price"], size_decimals=market.size_decimals,
                                 price_decimals=market.price_decimals)
                loss = event["bankruptcy_quote"] - value  # received beyond the oracle value of the lots
                self.adl += abs(value)
                self.notional += abs(value)
                self.bad_debt += loss
                self.pool_loss[market.pool] = self.pool_loss.get(market.pool, 0) + loss
                self.trader_loss += (event["amount"] if kind == "bad_debt"
                                     else event.get("counterparty_loss", max(loss, 0)))
                if stopped.get((event["owner"], event["number"], event["market"])) in _NO_LIQUIDITY:
                    self.liquidity_bad_debt += loss
                    self.liquidity_adl += abs(value)
        for pool, balance in state.insurance_funds.items():
            self.lowest[pool] = min(self.lowest.get(pool, balance), balance)
        self.final = sum(state.insurance_funds.values())
        self.staked_now = {pool: record.staked for pool, record in state.stake_pools.items()}

    def result(self, scenario: Scenario, path: ScenarioPath) -> ExactResult:
        drawdown = sum(start - min(start, self.lowest.get(pool, start)) for pool, start in self.start.items())
        depleted = tuple(sorted(pool for pool, loss in self.pool_loss.items() if loss > 0))
        return ExactResult(scenario.index, scenario.name, scenario.kind, path.steps, len(self.accounts),
                           self.notional, self.fees, self.payouts, drawdown, self.adl, max(self.bad_debt, 0),
                           depleted, self.trader_loss, self.backstop_peak, self.final,
                           stakers_loss_usdc=sum(max(start - self.staked_now.get(pool, 0), 0)
                                                 for pool, start in self.staked_start.items()),
                           liquidity_bad_debt_usdc=max(self.liquidity_bad_debt, 0),
                           liquidity_adl_notional_usdc=self.liquidity_adl)


# --------------------------------------------------------------------------------------- cross-check
@dataclass(frozen=True)
class Tolerance:
    """How far the engines may differ on one metric, in ppm of the larger liquidated notional of the
    two (``scale="notional"``) or of the larger value itself (``scale="value"``): ``exact`` may exceed
    ``fast`` by at most ``under_ppm`` (the fast path is conservative) and ``fast`` may exceed
    ``exact`` by at most ``over_ppm`` (the engines agree)."""

    under_ppm: int
    over_ppm: int
    scale: str = "notional"


# docs/stress.md, "Cross-check": why each bound is what it is
CROSS_CHECK_TOLERANCES: Final[dict[str, Tolerance]] = {
    "liquidations": Tolerance(0, 500_000, "value"),
    "liquidated_notional_usdc": Tolerance(500_000, 500_000),
    "loss_usdc": Tolerance(1_000, 100_000),
    "insurance_drawdown_usdc": Tolerance(1_000, 100_000),
    "bad_debt_usdc": Tolerance(10_000, 100_000),
    "adl_notional_usdc": Tolerance(500_000, 1_000_000),
    "trader_loss_usdc": Tolerance(1_000, 1_000_000),
}


def core_has_backstop() -> bool:
    """Whether the state machine has the backstop rung of the waterfall (its governed limits). Before
    it, the state machine deleverages whatever the book cannot absorb within the fillable price, which
    the fast path gives to the backstop: the cross-check then leaves that part out of the exact
    figures (``liquidity_*``), as it always did for ``bad_debt``."""
    return hasattr(LiquidationParams(), "backstop_max_notional_usdc")


def compare_results(fast: ScenarioResult, exact: ScenarioResult, *, agreement: bool = True) -> list[str]:
    """The metrics on which the two results of one scenario differ beyond ``CROSS_CHECK_TOLERANCES``
    (empty: they agree and the fast path is conservative); ``agreement=False`` checks only that the
    fast path is conservative."""
    if (fast.index, fast.name) != (exact.index, exact.name):
        raise ValueError("results of different scenarios")
    scale_notional = max(fast.liquidated_notional_usdc, exact.liquidated_notional_usdc)
    backstop = core_has_backstop()
    problems = []
    for metric, tolerance in CROSS_CHECK_TOLERANCES.items():
        f, e = getattr(fast, metric), getattr(exact, metric)
        if metric == "bad_debt_usdc" and isinstance(exact, ExactResult):
            e -= exact.liquidity_bad_debt_usdc  # deleveraged for want of book, not of fund: in loss_usdc
        if metric in ("trader_loss_usdc", "adl_notional_usdc") and isinstance(exact, ExactResult) and not backstop:
            e -= exact.liquidity_bad_debt_usdc if metric == "trader_loss_usdc" else exact.liquidity_adl_notional_usdc
        scale = scale_notional if tolerance.scale == "notional" else max(f, e)
        if (e - f) * PPM > tolerance.under_ppm * scale:
            problems.append(f"{exact.name}: {metric} exact {e} > fast {f} beyond {tolerance.under_ppm} ppm")
        if agreement and (f - e) * PPM > tolerance.over_ppm * scale:
            problems.append(f"{exact.name}: {metric} fast {f} > exact {e} beyond {tolerance.over_ppm} ppm")
    return problems
