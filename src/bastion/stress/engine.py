"""The fast path: every account of a state through every step of a scenario, vectorised with numpy.

The model, per scenario (one ``ScenarioPath`` of oracle ticks):

1. **Who and when.** Oracle prices are exogenous, so an account's margin surplus at every step is
   linear in the prices: ``TNC - MMR = collateral + sum_m (size_m - |size_m| * MMF_m) * value_m(t)``
   with ``value_m(t)`` the micro-USDC of one lot at step ``t``. One matrix product per chunk of
   steps gives it for every (account, step); an account is liquidated at its **first** step where
   it is below its slack (below), holds a position, and holds no stale market (DESIGN.md section 8).
   ``MMF = IMF * fraction`` is the base IMF's: open interest raises the IMR, never the MMR.
2. **How.** In rounds (``MAX_ROUNDS``). At its breach, an account is liquidated as the state machine
   does, a portion a block until it is healthy again: the share ``x`` it must sell follows from its
   TNC, MMR, the slippage of its own flow and the fund's delta per fill (``_healthy_fraction``); the
   state machine's block sizes turn ``x`` into the share left (``_partial_close``). An account that can
   never be healthy (no positive denominator; every single-market BTC account, whose 1.2% maintenance
   fraction is below the 1.5% fee cap) is closed whole. The sold share fills at the *worst* oracle
   price of each of its markets (lowest for a long, highest for a short) over the steps that the
   per-block limits need (``max(ceil(notional / max_notional_per_block), blocks to bring the largest
   position below min_position_notional at max_position_portion per block)`` for a whole close),
   moved against the account by the **slippage** ``spread + ceil(flow / depth * 1%)`` (whole ppm),
   capped at ``max_slippage``, where ``flow`` is the notional every account liquidated in the same
   step sells (buys) in that market and ``depth`` the micro-USDC resting per 1% of price on that side
   (the snapshot's book, at least ``baseline_depth``), times ``1 - depth_cut``. For an account with
   ``TNC <= 0`` the slippage is capped at its fillable price, ``spread_to_maintenance x MMF`` from the
   oracle (the state machine deleverages the rest at the bankruptcy price); the share of its flow
   beyond that band's depth counts as ADL volume (at least). The residual of a partial close
   (positions times the share left, collateral after the fills) is searched for its next breach from
   the step after its window (``_rebreach``); the last round closes whatever is left.
3. **Insurance.** The account's equity after the fills, ``E``, is its bankruptcy surplus
   (``risk_model.insurance_fund_delta`` summed over its fills): ``E >= 0`` pays the fee
   ``min(E, max_liquidation_fee * notional)`` to its pool's fund; ``E < 0`` is a loss the fund pays
   while it can. Liquidations are applied in the order of DESIGN.md section 8: by step, then
   ``TNC / MMR`` ascending, then account index.
4. **Deleveraging.** What the fund cannot pay is socialised: ``bad_debt``; the account's notional
   in the same proportion counts as ``adl_notional`` (closed against opposing positions at its
   bankruptcy price).

5. **Backstop.** Every account fills from the book only within its fillable band at the breach,
   ``clamp(bankruptcy_adjustment x (1 - TNC / MMR), 0, 1) x spread_to_maintenance x MMF`` from the
   oracle; the share of its flow beyond what the book holds there is the backstop's: at once for an
   account at or below bankruptcy (whose fills stop at the band), after ``backstop_after_blocks``
   blocks without a fill for a solvent one (the core's stalled takeover), which is counted as taken
   over whole while its residual still runs on as a partial close (a refused takeover leaves it to
   fall further). The backstop's limits (``_backstop``) send the rest to ADL. Its unwinding cost is
   an upper bound, not an estimate (``_unwind_cost``): per lot, the best price of the account's
   window minus the worst of the unwinding window less ``max_liquidation_fee``.

Where this departs from the state machine, it does so on the side of more loss: closes at the
window's worst prices, the same step's liquidations all paying the full flow's impact, and a fund
that pays what it has rather than stopping (``stress.replay`` measures the differences on a sample;
docs/stress.md, "Cross-check"). Losses that deleveraging puts on
counterparties are counted as bad debt but not fed back into the counterparties' margins, and
funding over the scenario is not modelled (pending funding at the snapshot is in the collateral).

**Rounding.** Margins and fills are float64: products of integer lots and ticks are exact below
2**53 micro-USDC (9 billion USDC), MMR is computed without the exact engine's two round-ups
(< 2 micro-USDC per position), so an account counts as breached when its surplus is below
``2 * positions + 1`` micro-USDC, never later than the exact engine would. Amounts leave the engine
as integers rounded outward: notionals and losses up, fees down; everything after that (the
funds, bad debt, totals) is integer arithmetic.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from bastion.core.enums import StakingLossMode
from bastion.core.params import InsuranceStakingParams
from bastion.core.units import PPM
from bastion.stress.inputs import StressInputs
from bastion.stress.paths import ScenarioPath, build_path
from bastion.stress.scenarios import EngineSettings, Scenario, ScenarioSet

# 2: liquidation rounds (partial closes), the fillable-price band; 3: the waterfall; 4: stalled takeovers
ENGINE_VERSION = "fast-path/4"
BACKSTOP_DEFAULTS: Final = {              # LiquidationParams fields of the backstop (docs/protocol.md), if absent
    "backstop_max_notional_usdc": 1_000_000_000_000,
    "backstop_max_fund_share_ppm": 500_000,
    "backstop_unwind_portion_ppm": 100_000,
    "backstop_after_blocks": 10,
}


def backstop_param(params: object, name: str) -> int:
    """A backstop limit of ``LiquidationParams`` (its contract default while the core has none)."""
    return int(getattr(params, name, BACKSTOP_DEFAULTS[name]))
STEP_CHUNK = 96  # steps per matrix product: keeps the (accounts x chunk) block in cache
DEPTH_UNIT_PPM = 10_000  # depth is quoted per 1% of price


@dataclass(frozen=True)
class ScenarioResult:
    """The metrics of one scenario (DESIGN.md section 10); amounts in micro-USDC."""

    index: int
    name: str
    kind: str
    steps: int
    liquidations: int                      # accounts liquidated
    liquidated_notional_usdc: int
    insurance_fees_usdc: int               # liquidation fees paid into the funds
    insurance_payouts_usdc: int            # losses the funds paid
    insurance_drawdown_usdc: int           # sum over pools of start minus lowest balance
    adl_notional_usdc: int
    bad_debt_usdc: int                     # losses no fund could pay (socialised)
    depleted_pools: tuple[str, ...]        # pools whose fund could not pay a loss
    trader_loss_usdc: int = 0              # losses put on traders who were not liquidated (ADL + socialised)
    backstop_peak_usdc: int = 0            # the backstop's largest inventory (notional, all markets)
    insurance_final_usdc: int = 0          # the funds at the end of the scenario (sum over pools)
    stakers_loss_usdc: int = 0             # what the funds' stakers lost, net of their fees (sum over pools)

    @property
    def loss_usdc(self) -> int:
        """Negative equity of the liquidated accounts: paid by the funds or socialised."""
        return self.insurance_payouts_usdc + self.bad_debt_usdc

    @property
    def depleted(self) -> bool:
        return bool(self.depleted_pools)


@dataclass(frozen=True, eq=False)
class Prepared:
    """Per-sweep arrays derived from the inputs once (shared by every scenario)."""

    inputs: StressInputs
    sizes: np.ndarray                      # (A, M) float64
    abs_sizes: np.ndarray                  # (A, M) float64
    surplus_coefficient: np.ndarray        # (A, M) float64: size - |size| * MMF
    threshold: np.ndarray                  # (A,) float64: slack - collateral
    holds: np.ndarray                      # (A, M) float64: 1 where a position is held
    maintenance_fraction: np.ndarray       # (M,) float64: MMF as a fraction


def prepare(inputs: StressInputs) -> Prepared:
    """The per-sweep arrays (float64 copies of the sizes, the surplus coefficients, the slack)."""
    sizes = inputs.sizes.astype(np.float64)
    abs_sizes = np.abs(sizes)
    mmf = inputs.initial_margin_ppm.astype(np.float64) * inputs.maintenance_fraction_ppm / (PPM * PPM)
    holds = (inputs.sizes != 0).astype(np.float64)
    slack = 2.0 * holds.sum(axis=1) + 1.0
    return Prepared(inputs, sizes, abs_sizes, sizes - abs_sizes * mmf, slack - inputs.collateral.astype(np.float64),
                    holds, mmf)


Engine = Callable[[Prepared, Scenario, ScenarioPath, EngineSettings], ScenarioResult]


# --------------------------------------------------------------------------------------- the sweep
def run_sweep(inputs: StressInputs, scenario_set: ScenarioSet, *, indices: range | None = None,
              engine: Engine | None = None) -> list[ScenarioResult]:
    """Results of the scenarios ``indices`` (default: all) of the set, in index order.

    Scenarios are independent (each jump-diffusion path has its own seeded stream), so a pool of
    workers can run disjoint ranges and concatenate: the results are the same as one run.
    """
    run = engine or run_fast_path
    prepared = prepare(inputs)
    scenarios = scenario_set.scenarios()
    chosen = scenarios if indices is None else [scenarios[i] for i in indices]
    return [run(prepared, s, build_path(s, inputs, scenario_set), scenario_set.engine) for s in chosen]


# --------------------------------------------------------------------------------------- one scenario
MAX_ROUNDS: Final = 8  # liquidation rounds per account (the last one closes whatever is left)


@dataclass(frozen=True, eq=False)
class _Round:
    """Accounts liquidated in one round: index into the inputs, signed sizes (float lots, partial after
    an earlier round), collateral and the breach step."""

    index: np.ndarray
    sizes: np.ndarray
    collateral: np.ndarray
    step: np.ndarray
    counted: np.ndarray | None = None      # (L,) bool: taken over whole (stalled) in an earlier round


def run_fast_path(prepared: Prepared, scenario: Scenario, path: ScenarioPath,
                  settings: EngineSettings) -> ScenarioResult:
    """One scenario through the model of the module docstring: who breaches when, the fills (in
    rounds: a partial liquidation leaves a healthy residual that can breach again), the funds in
    liquidation order, and the per-scenario metrics."""
    inputs = prepared.inputs
    lot_value = path.ticks * inputs.lot_tick_value        # (T + 1, M) micro-USDC per lot
    breach = first_breach(prepared, lot_value, path.stale)
    liquidated = np.flatnonzero(breach >= 0)
    funds_total = int(inputs.insurance_funds.sum())
    if liquidated.size == 0:
        return _result(scenario, path, 0, 0, 0, 0, 0, 0, 0, (), 0, 0, funds_total, 0)
    current = _Round(liquidated, prepared.sizes[liquidated], inputs.collateral[liquidated].astype(np.float64),
                     breach[liquidated])
    # step, ratio, index, fee, loss, notional, ADL floor, taken over (L, M), unwind cost
    columns: list[list[np.ndarray]] = [[] for _ in range(9)]
    for number in range(MAX_ROUNDS):
        events, residual = _liquidation_round(prepared, current, lot_value, path, settings,
                                              final=number == MAX_ROUNDS - 1)
        for column, values in zip(columns, events):
            column.append(values)
        if residual is None:
            break
        current = _rebreach(prepared, residual, lot_value, path.stale)
        if current.index.size == 0:
            break
    step, ratio, index, fee, loss, notional, beyond, taken, unwind = (np.concatenate(c) for c in columns)
    order = np.lexsort((index, ratio, step))
    pools = inputs.account_pool[index]
    # the fund pays each account's loss and the backstop's unwinding of what it took over (charged at the
    # takeover, before the unwinding happens: the fund's path is never above the state machine's)
    fund_loss = loss + np.ceil(unwind).astype(np.int64)
    uncovered = np.zeros(index.size, dtype=np.int64)
    fund_before = np.zeros(index.size, dtype=np.int64)   # each pool's fund just before each event
    payouts = drawdown = bad_debt = stakers_loss = 0
    final_funds = funds_total
    depleted = []
    for p, pool in enumerate(inputs.pools):
        events = order[pools[order] == p]
        start = int(inputs.insurance_funds[p])
        if events.size == 0:
            continue
        short, lowest, balances = _fund_sequence(start, fee[events], fund_loss[events])
        fund_before[events] = np.concatenate([[start], balances[:-1]])
        drawdown += start - min(start, lowest)
        covered = int(fund_loss[events].sum()) - int(short.sum())
        payouts += covered
        bad_debt += int(short.sum())
        final_funds += int(fee[events].sum()) - covered
        uncovered[events] = short
        if inputs.staked is not None and inputs.staking is not None and inputs.staked[p] > 0:
            stakers_loss += _stakers_loss(start, int(inputs.staked[p]), fee[events], fund_loss[events] - short,
                                          inputs.staking)
        if short.any():
            depleted.append(pool)
    beyond_caps, peak = _backstop(order, step, pools, taken, fund_before, inputs,
                                  max(1, path.step_s * 1_000 // settings.block_ms))
    # ADL: what the backstop could not take, at the bankruptcy price: its counterparties lose the account's
    # loss in proportion; socialisation: what no fund paid. ADL volume: the larger of the two closes.
    adl_loss = np.ceil(loss * beyond_caps / np.maximum(notional, 1)).astype(np.int64)
    trader_loss = np.minimum(uncovered + adl_loss, np.maximum(fund_loss, uncovered))
    shares = np.zeros(index.size, dtype=np.int64)
    short = uncovered > 0
    shares[short] = [-(-int(n) * int(u) // int(total)) for n, u, total in
                     zip(notional[short], uncovered[short], fund_loss[short])]
    adl = int(np.maximum(shares, np.ceil(beyond_caps).astype(np.int64)).sum())
    return _result(scenario, path, int(np.unique(index).size), int(notional.sum()), int(fee.sum()), payouts,
                   drawdown, adl, bad_debt, tuple(depleted), int(trader_loss.sum()), peak, final_funds, stakers_loss)


def _backstop(order: np.ndarray, step: np.ndarray, pools: np.ndarray, taken: np.ndarray,
              fund_before: np.ndarray, inputs: StressInputs, blocks_per_step: int) -> tuple[np.ndarray, int]:
    """The backstop takes over, in liquidation order, the notional ``taken[e, m]`` that the book could
    not absorb, up to its limits per market: ``min(backstop_max_notional, backstop_max_fund_share x
    fund)`` with the pool's fund just before the event (``fund_before``: every earlier loss and
    unwinding already paid, so never above the state machine's fund then), less the inventory it
    still holds, which it sells ``backstop_unwind_portion`` a block. Returns, per event, the notional
    beyond the limits (deleveraged) and the inventory's peak (micro-USDC, rounded up)."""
    beyond = np.zeros(step.size, dtype=np.float64)
    rows = order[taken[order].sum(axis=1) > 0]
    if rows.size == 0:
        return beyond, 0
    params = inputs.liquidation
    notional_cap = backstop_param(params, "backstop_max_notional_usdc")
    share = backstop_param(params, "backstop_max_fund_share_ppm")
    portion = min(max(backstop_param(params, "backstop_unwind_portion_ppm"), 0), PPM) / PPM
    kept_per_step = (1.0 - portion) ** blocks_per_step
    inventory = np.zeros((len(inputs.pools), taken.shape[1]), dtype=np.float64)
    peak, previous = 0.0, int(step[rows[0]])
    for r in rows:
        now = int(step[r])
        if now != previous:
            inventory *= kept_per_step ** (now - previous)
            previous = now
        pool = int(pools[r])
        cap = float(min(notional_cap, max(int(fund_before[r]), 0) * share // PPM))
        take = np.minimum(taken[r], np.maximum(cap - inventory[pool], 0.0))
        inventory[pool] += take
        beyond[r] = float((taken[r] - take).sum())
        peak = max(peak, float(inventory.sum()))
    return beyond, math.ceil(peak)


def _liquidation_round(prepared: Prepared, current: _Round, lot_value: np.ndarray, path: ScenarioPath,
                       settings: EngineSettings, *, final: bool) -> tuple[tuple[np.ndarray, ...], _Round | None]:
    """Liquidate the accounts of ``current`` at their breach step (module docstring, steps 2-3): a
    partial close where the state machine would stop once healthy, else a whole close. Returns the
    fund events (step, TNC/MMR, account, fee, loss, notional, deleveraged notional) and the residuals."""
    inputs = prepared.inputs
    sizes, step, collateral = current.sizes, current.step, current.collateral
    abs_sizes = np.abs(sizes)
    at_breach = lot_value[step]                           # (L, M)
    values = abs_sizes * at_breach
    net_collateral = collateral + (sizes * at_breach).sum(axis=1)
    maintenance = (values * prepared.maintenance_fraction).sum(axis=1)
    slippage = _slippage_ppm(values, sizes, step, path, settings, inputs)
    # where the state machine stops (healthy again) depends on the account's own fills: its own flow
    own = _slippage_ppm(values, sizes, np.arange(step.size), path, settings, inputs)
    concession = values * own / PPM                        # what its fills concede at the breach price
    cap = inputs.liquidation.max_liquidation_fee_ppm / PPM
    # per position and unit sold, the fund's delta (insurance_fund_delta): the fill minus the bankruptcy
    # quote (TNC shared by maintenance margin), capped at the fee
    share = np.divide(values * prepared.maintenance_fraction, maintenance[:, None],
                      out=np.zeros_like(values), where=maintenance[:, None] > 0)
    fund_rate = np.minimum(net_collateral[:, None] * share - concession,
                           cap * values * (PPM - np.sign(sizes) * own) / PPM).sum(axis=1)
    fraction = _healthy_fraction(net_collateral, maintenance, concession.sum(axis=1), fund_rate)
    if final:
        fraction[:] = 1.0
    remaining, blocks = _partial_close(fraction, values, inputs)
    blocks_per_step = max(1, path.step_s * 1_000 // settings.block_ms)
    last = np.minimum(step + np.ceil(blocks / blocks_per_step).astype(np.int64) - 1, path.steps)
    worst = sizes * _worst_lot_values(path, lot_value, step, last, sizes)  # (L, M) signed value, worst prices
    slippage = np.maximum(slippage, _slippage_ppm(np.abs(worst), sizes, step, path, settings, inputs))
    # every account fills from the book only within its fillable price, ``ABR x spread_to_maintenance x MMF``
    # from the oracle with ``ABR = clamp(bankruptcy_adjustment x (1 - TNC / MMR), 0, 1)`` at the breach (1 at
    # or below bankruptcy; near 0 just below maintenance, where even the spread is out of reach)
    params = inputs.liquidation
    rating = np.clip(params.bankruptcy_adjustment_ppm / PPM * (1.0 - np.divide(
        net_collateral, maintenance, out=np.zeros_like(net_collateral), where=maintenance > 0)), 0.0, 1.0)
    band = np.ceil(params.spread_to_maintenance_ppm * prepared.maintenance_fraction[None, :] * rating[:, None])
    # the share of a position beyond what the book holds within the band goes to the backstop: at once for
    # an account at or below bankruptcy, after ``backstop_after_blocks`` blocks without a fill (stalled) for
    # a solvent one, which is then taken over whole (module docstring, step 5)
    beyond = np.where(slippage > band, 1.0 - np.maximum(band - settings.spread_ppm, 0)
                      / np.maximum(slippage - settings.spread_ppm, 1), 0.0)
    stalled = beyond.max(axis=1) > 0
    # at or below bankruptcy the fills stop at the band; a stalled solvent account is charged its whole
    # flow's slippage all the same (it waits while the price moves, and a refused takeover leaves it to
    # fall further: the fills at that slippage stand for where it ends)
    slippage = np.where((net_collateral <= 0)[:, None], np.minimum(slippage, band), slippage)
    fill = worst * (PPM - np.sign(sizes) * slippage) / PPM   # the whole position sold (bought) at those prices
    sold = 1.0 - remaining
    residual_equity = collateral + fill.sum(axis=1) * sold + (worst * remaining[:, None]).sum(axis=1)
    whole = (remaining == 0.0) | (residual_equity < 0)
    sold = np.where(whole, 1.0, sold)
    gross = np.abs(fill).sum(axis=1) * sold
    # a stalled account's whole position is taken over (counted whole); its residual still runs on below
    # as a partial close would, so that a refused takeover's later losses are not missed
    counted = np.zeros(step.size, dtype=bool) if current.counted is None else current.counted
    taken_share = np.where(counted, 0.0, np.where(stalled, 1.0, sold))
    notional = np.ceil(np.where(counted, 0.0, np.where(stalled, np.abs(fill).sum(axis=1), gross)))
    equity = collateral + fill.sum(axis=1)                # of a whole close
    loss = np.where(whole & (equity < 0), np.ceil(-equity), 0).astype(np.int64)
    whole_fee = np.where(equity >= 0, np.minimum(np.floor(np.maximum(equity, 0)),
                                                 np.floor(np.floor(gross) * cap)), 0)
    # a partial close pays the fund its share of fund_rate (a negative rate: the fund pays)
    partial_delta = sold * fund_rate
    fee = np.where(whole, whole_fee, np.floor(np.maximum(partial_delta, 0))).astype(np.int64)
    loss = np.where(whole, loss, np.ceil(np.maximum(-partial_delta, 0))).astype(np.int64)
    ratio = np.divide(net_collateral, maintenance, out=np.full_like(net_collateral, -np.inf), where=maintenance > 0)
    deleveraged = np.ceil((np.abs(fill) * beyond).sum(axis=1) * np.where(counted, sold, taken_share)).astype(np.int64)
    # the backstop's part: what the book cannot absorb within the band, and what unwinding it costs
    taken = np.abs(fill) * beyond * taken_share[:, None]
    unwind = _unwind_cost(taken, abs_sizes * beyond * taken_share[:, None], sizes, step, last, path, lot_value,
                          settings, inputs, blocks_per_step)
    events = (step, ratio, current.index, fee, loss, notional, deleveraged, taken, unwind)
    keep = ~whole
    if not keep.any():
        return events, None
    residual_collateral = collateral + fill.sum(axis=1) * sold - fee + loss
    return events, _Round(current.index[keep], sizes[keep] * remaining[keep, None], residual_collateral[keep],
                          last[keep] + 1, (counted | stalled)[keep])


def _unwind_cost(taken: np.ndarray, lots: np.ndarray, sizes: np.ndarray, step: np.ndarray, last: np.ndarray,
                 path: ScenarioPath, lot_value: np.ndarray, settings: EngineSettings, inputs: StressInputs,
                 blocks_per_step: int) -> np.ndarray:
    """(L,) what unwinding the backstop's takeover costs its fund, at least as much as the state machine
    charges it: ``taken`` (L, M) is its notional, ``lots`` (L, M) its size. The backstop took the lots at
    the oracle price of some block of the account's window, at most its *best* price there (highest for
    a long); it sells ``backstop_unwind_portion`` a block until below ``min_position_notional``, so over
    ``k = ceil(log(taken / min) / -log(1 - portion)) + 1`` blocks after the account's window, each sale
    never further than ``max_liquidation_fee`` from the oracle price (the core's unwind limit), so at
    least the *worst* price of that longer window less the fee. Per lot: best minus (worst less the
    fee), whatever the book. (The unwinding is assumed to finish in ``k`` blocks: a book with nothing
    within the fee band for longer stretches it; docs/stress.md, "Cross-check".)"""
    cost = np.zeros(step.size, dtype=np.float64)
    rows = np.flatnonzero(taken.sum(axis=1) > 0)
    if rows.size == 0:
        return cost
    params = inputs.liquidation
    portion = backstop_param(params, "backstop_unwind_portion_ppm") / PPM
    largest = taken[rows].max(axis=1)
    if portion >= 1.0:
        blocks = np.ones_like(largest)
    elif portion <= 0.0:
        blocks = np.full_like(largest, 2.0**31)
    else:
        ratio = np.maximum(largest / max(params.min_position_notional_usdc, 1), 1.0)
        blocks = np.ceil(np.log(ratio) / -math.log1p(-portion)) + 1
    end = np.minimum(last[rows] + np.ceil(blocks / blocks_per_step).astype(np.int64), path.steps)
    first, sizes_rows = step[rows], sizes[rows]
    taken_at = _worst_lot_values(path, lot_value, first, last[rows], -sizes_rows)   # best of the account's window
    unwinding = _worst_lot_values(path, lot_value, first, end, sizes_rows)          # worst while unwinding
    fee = params.max_liquidation_fee_ppm / PPM
    per_lot = np.where(sizes_rows > 0, taken_at - unwinding * (1.0 - fee), unwinding * (1.0 + fee) - taken_at)
    cost[rows] = (lots[rows] * np.maximum(per_lot, 0.0)).sum(axis=1)
    return cost


def _healthy_fraction(net_collateral: np.ndarray, maintenance: np.ndarray, cost: np.ndarray,
                      fund_rate: np.ndarray) -> np.ndarray:
    """The share ``x`` of every position the state machine sells before the account is healthy again:
    selling ``x`` concedes ``x * cost`` and pays the fund ``x * fund_rate``, so ``TNC - x * (cost +
    fund_rate) >= (1 - x) * MMR`` gives ``x >= (MMR - TNC) / (MMR - cost - fund_rate)``; 1 (a whole
    close) when the denominator is not positive (it can never be healthy)."""
    denominator = maintenance - cost - fund_rate
    possible = denominator > 0
    share = np.divide(maintenance - net_collateral, denominator, out=np.ones_like(denominator), where=possible)
    return np.clip(np.where(possible, share, 1.0), 0.0, 1.0)


def _partial_close(fraction: np.ndarray, values: np.ndarray, inputs: StressInputs) -> tuple[np.ndarray, np.ndarray]:
    """(share of each position left, blocks) after the state machine's per-block sizes (``max(portion x
    position, min_position_notional)`` of the largest position, at least one block) have sold at
    least ``fraction``; a share of 0 (and the whole-close window) when ``fraction`` is 1."""
    params = inputs.liquidation
    portion = min(max(params.max_position_portion_ppm / PPM, 0.0), 1.0)
    minimum = float(params.min_position_notional_usdc)
    largest = values.max(axis=1)
    left = largest.copy()
    target = (1.0 - fraction) * largest
    blocks = np.zeros_like(largest)
    active = (fraction < 1.0) & (largest > 0)
    while active.any():
        step = np.maximum(portion * left, minimum)
        left = np.where(active, np.maximum(left - np.maximum(step, 1.0), 0.0), left)
        blocks += active
        active &= (left > target) & (left > 0)
    remaining = np.where(fraction < 1.0, np.divide(left, largest, out=np.zeros_like(left), where=largest > 0), 0.0)
    by_notional = np.ceil(values.sum(axis=1) * (1.0 - remaining) / max(params.max_notional_per_block_usdc, 1))
    whole = _blocks_needed(values, inputs)
    return remaining, np.where(remaining > 0, np.maximum(np.maximum(blocks, by_notional), 1), whole)


def _rebreach(prepared: Prepared, residual: _Round, lot_value: np.ndarray, stale: np.ndarray | None) -> _Round:
    """The residual accounts that breach again from their start step on (the first breach test of
    ``first_breach`` on the residual sizes and collateral)."""
    holds = (residual.sizes != 0).astype(np.float64)
    coefficient = residual.sizes - np.abs(residual.sizes) * prepared.maintenance_fraction
    threshold = 2.0 * holds.sum(axis=1) + 1.0 - residual.collateral
    breach = first_breach_of(coefficient, threshold, holds, lot_value, stale, residual.step)
    found = breach >= 0
    counted = None if residual.counted is None else residual.counted[found]
    return _Round(residual.index[found], residual.sizes[found], residual.collateral[found], breach[found], counted)


def _result(scenario: Scenario, path: ScenarioPath, liquidations: int, notional: int, fees: int, payouts: int,
            drawdown: int, adl: int, bad_debt: int, depleted: tuple[str, ...], trader_loss: int, backstop_peak: int,
            final_funds: int, stakers_loss: int) -> ScenarioResult:
    return ScenarioResult(scenario.index, scenario.name, scenario.kind, path.steps, liquidations, notional, fees,
                          payouts, drawdown, adl, bad_debt, depleted, trader_loss, backstop_peak, final_funds,
                          stakers_loss)


def _stakers_loss(start: int, staked: int, fees: np.ndarray, losses: np.ndarray,
                  params: InsuranceStakingParams) -> int:
    """What the stakers of a fund lose over its events, net of their part of the fees: the fund
    receives ``fees[k]`` and pays ``losses[k]`` (the part it covered) in order, split as
    ``bastion.core.staking.move_fund`` splits them (fees: the governed staker share, rounded down;
    losses: pro rata rounded up, or first, by ``loss_mode``)."""
    fund, part = start, staked
    first_loss = params.loss_mode == StakingLossMode.FIRST_LOSS
    for fee, loss in zip(fees.tolist(), losses.tolist()):
        if part == 0:
            break                          # wiped out: no shares left to earn or lose
        if fee > 0:
            part += fee * params.staker_fee_share_ppm // PPM
            fund += fee
        if loss > 0:
            part -= min(loss, part) if first_loss else min(part, -(-loss * part // fund))
            fund -= loss
    return max(staked - part, 0)


def first_breach(prepared: Prepared, lot_value: np.ndarray, stale: np.ndarray | None) -> np.ndarray:
    """(A,) int64: each account's first step below its maintenance requirement (and holding no stale
    market), or -1. Accounts found in one chunk of steps drop out of the next chunks."""
    has_position = prepared.holds.any(axis=1)
    breach = np.full(has_position.size, -1, dtype=np.int64)
    active = np.flatnonzero(has_position)
    breach[active] = first_breach_of(prepared.surplus_coefficient[active], prepared.threshold[active],
                                      prepared.holds[active], lot_value, stale, None)
    return breach


def first_breach_of(coefficient: np.ndarray, threshold: np.ndarray, holds: np.ndarray, lot_value: np.ndarray,
                     stale: np.ndarray | None, start: np.ndarray | None) -> np.ndarray:
    """``first_breach`` for explicit surplus coefficients and thresholds, each account searched from
    its ``start`` step (None: 0)."""
    count = threshold.size
    breach = np.full(count, -1, dtype=np.int64)
    active = np.arange(count)
    total = lot_value.shape[0]
    first_step = 0 if start is None or count == 0 else int(start.min())
    for chunk in range(first_step, total, STEP_CHUNK):
        if active.size == 0:
            break
        stop = min(chunk + STEP_CHUNK, total)
        below = (coefficient @ lot_value[chunk:stop].T) < threshold[:, None]
        if stale is not None and stale[chunk:stop].any():
            below &= (holds @ stale[chunk:stop].T.astype(np.float64)) == 0
        if start is not None:
            below &= np.arange(chunk, stop)[None, :] >= start[active][:, None]
        first = below.argmax(axis=1)
        found = below[np.arange(active.size), first]
        breach[active[found]] = chunk + first[found]
        if found.any():
            keep = ~found
            active, coefficient, threshold, holds = active[keep], coefficient[keep], threshold[keep], holds[keep]
    return breach


def _blocks_needed(position_values: np.ndarray, inputs: StressInputs) -> np.ndarray:
    """Blocks the per-block limits need to close whole accounts: ``max(ceil(notional /
    max_notional_per_block), blocks to bring the largest position below min_position_notional at
    max_position_portion a block)``."""
    params = inputs.liquidation
    total = position_values.sum(axis=1)
    by_notional = np.ceil(total / max(params.max_notional_per_block_usdc, 1))
    largest = position_values.max(axis=1)
    portion = params.max_position_portion_ppm / PPM
    if portion >= 1.0:
        by_portion = np.ones_like(largest)
    elif portion <= 0.0:
        by_portion = np.full_like(largest, math.inf)
    else:
        ratio = np.maximum(largest / max(params.min_position_notional_usdc, 1), 1.0)
        by_portion = np.ceil(np.log(ratio) / -math.log1p(-portion)) + 1
    return np.minimum(np.maximum(np.maximum(by_notional, by_portion), 1), 2.0**31)


def _worst_lot_values(path: ScenarioPath, lot_value: np.ndarray, first: np.ndarray, last: np.ndarray,
                      sizes: np.ndarray) -> np.ndarray:
    """(L, M): per liquidated account and market, the lowest lot value over steps first..last for a
    long, the highest for a short (a sparse table of minima and maxima over power-of-two windows)."""
    if np.array_equal(first, last):
        return lot_value[first]
    span = last - first + 1
    levels = int(span.max()).bit_length()
    lows, highs = [lot_value], [lot_value]
    for k in range(1, levels):
        width = 1 << (k - 1)
        low, high = lows[-1], highs[-1]
        shifted_low = np.vstack([low[width:], np.repeat(low[-1:], width, axis=0)])
        shifted_high = np.vstack([high[width:], np.repeat(high[-1:], width, axis=0)])
        lows.append(np.minimum(low, shifted_low))
        highs.append(np.maximum(high, shifted_high))
    low_table, high_table = np.stack(lows), np.stack(highs)
    level = np.array([int(s).bit_length() - 1 for s in span])
    tail = last - (1 << level) + 1
    lowest = np.minimum(low_table[level, first], low_table[level, tail])
    highest = np.maximum(high_table[level, first], high_table[level, tail])
    return np.where(sizes > 0, lowest, highest)


def _slippage_ppm(values: np.ndarray, sizes: np.ndarray, step: np.ndarray, path: ScenarioPath,
                  settings: EngineSettings, inputs: StressInputs) -> np.ndarray:
    """(L, M) ppm of price each fill concedes, ``spread + ceil(flow / depth * 1%)`` capped (module
    docstring, step 2); whole ppm, so that fills of whole-ppm prices stay exact."""
    keep = 1.0 - path.depth_cut_ppm / PPM
    bid = np.maximum(inputs.bid_depth_usdc, settings.baseline_depth_usdc) * keep
    ask = np.maximum(inputs.ask_depth_usdc, settings.baseline_depth_usdc) * keep
    _, group = np.unique(step, return_inverse=True)
    groups = int(group.max()) + 1
    sells = np.where(sizes > 0, values, 0.0)
    buys = np.where(sizes < 0, values, 0.0)
    impact = np.empty_like(values)
    for m in range(values.shape[1]):
        sold = np.bincount(group, weights=sells[:, m], minlength=groups)[group]
        bought = np.bincount(group, weights=buys[:, m], minlength=groups)[group]
        impact[:, m] = np.where(sizes[:, m] > 0, sold * DEPTH_UNIT_PPM / bid[m], bought * DEPTH_UNIT_PPM / ask[m])
    return np.minimum(settings.spread_ppm + np.ceil(impact), settings.max_slippage_ppm)


def _fund_sequence(start: int, fees: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """A fund that receives ``fees[k]`` and pays ``losses[k]`` in order, never below zero: per event,
    the part of the loss it could not pay, its lowest balance and its balance after each event
    (integers; the running sum reflected at zero)."""
    running = start + np.cumsum(fees - losses)
    shortfall = np.maximum(0, -np.minimum.accumulate(np.minimum(running, 0)))
    uncovered = np.diff(shortfall, prepend=0)
    balances = running + shortfall
    return uncovered, int(min(start, int(balances.min()))), balances
