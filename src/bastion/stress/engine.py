"""The fast path: every account of a state through every step of a scenario, vectorised with numpy.

The model, per scenario (one ``ScenarioPath`` of oracle ticks):

1. **Who and when.** Oracle prices are exogenous, so an account's margin surplus at every step is
   linear in the prices: ``TNC - MMR = collateral + sum_m (size_m - |size_m| * MMF_m) * value_m(t)``
   with ``value_m(t)`` the micro-USDC of one lot at step ``t``. One matrix product per chunk of
   steps gives it for every (account, step); an account is liquidated at its **first** step where
   it is below its slack (below), holds a position, and holds no stale market (DESIGN.md section 8).
   ``MMF = IMF * fraction`` is the base IMF's: open interest raises the IMR, never the MMR.
2. **How.** The whole account is closed at once, at the *worst* oracle price of each of its
   markets (lowest for a long, highest for a short) over the steps that the per-block limits need
   to work through it: ``max(ceil(notional / max_notional_per_block), blocks to bring the largest
   position below min_position_notional at max_position_portion per block)`` blocks, i.e.
   ``ceil(blocks / blocks_per_step)`` steps counting the breach step. Fills are that price moved
   against the account by the **slippage** ``spread + ceil(flow / depth * 1%)`` (whole ppm), capped
   at ``max_slippage``, where ``flow`` is the notional every account liquidated in the same step sells
   (buys) in that market and ``depth`` the micro-USDC resting per 1% of price on that side (the
   snapshot's book, at least ``baseline_depth``), times ``1 - depth_cut``.
3. **Insurance.** The account's equity after the fills, ``E``, is its bankruptcy surplus
   (``risk_model.insurance_fund_delta`` summed over its fills): ``E >= 0`` pays the fee
   ``min(E, max_liquidation_fee * notional)`` to its pool's fund; ``E < 0`` is a loss the fund pays
   while it can. Liquidations are applied in the order of DESIGN.md section 8: by step, then
   ``TNC / MMR`` ascending, then account index.
4. **Deleveraging.** What the fund cannot pay is socialised: ``bad_debt``; the account's notional
   in the same proportion counts as ``adl_notional`` (closed against opposing positions at its
   bankruptcy price).

Where this departs from the state machine, it does so on the side of more loss: whole-account
closes at the window's worst prices, the same step's liquidations all paying the full flow's
impact, and a fund that pays what it has rather than stopping. Losses that deleveraging puts on
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
from dataclasses import dataclass
from typing import Callable

import numpy as np

from bastion.core.units import PPM
from bastion.stress.inputs import StressInputs
from bastion.stress.paths import ScenarioPath, build_path
from bastion.stress.scenarios import EngineSettings, Scenario, ScenarioSet

ENGINE_VERSION = "fast-path/1"
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
def run_fast_path(prepared: Prepared, scenario: Scenario, path: ScenarioPath,
                  settings: EngineSettings) -> ScenarioResult:
    """One scenario through the model of the module docstring: who breaches when, the fills, the
    funds in liquidation order, and the per-scenario metrics."""
    inputs = prepared.inputs
    lot_value = path.ticks * inputs.lot_tick_value        # (T + 1, M) micro-USDC per lot
    breach = first_breach(prepared, lot_value, path.stale)
    liquidated = np.flatnonzero(breach >= 0)
    if liquidated.size == 0:
        return _result(scenario, path, 0, 0, 0, 0, 0, 0, 0, ())
    step = breach[liquidated]
    sizes, abs_sizes = prepared.sizes[liquidated], prepared.abs_sizes[liquidated]
    collateral = inputs.collateral[liquidated].astype(np.float64)
    at_breach = lot_value[step]                           # (L, M)
    net_collateral = collateral + (sizes * at_breach).sum(axis=1)
    maintenance = (abs_sizes * at_breach * prepared.maintenance_fraction).sum(axis=1)
    last = step + _window_steps(abs_sizes * at_breach, path.step_s, settings, inputs)
    np.minimum(last, path.steps, out=last)
    worst = sizes * _worst_lot_values(path, lot_value, step, last, sizes)  # (L, M) signed value, worst prices
    slippage = _slippage_ppm(np.abs(worst), sizes, step, path, settings, inputs)
    fill = worst * (PPM - np.sign(sizes) * slippage) / PPM   # what each position is sold (bought) for
    gross = np.abs(fill).sum(axis=1)
    notional = np.ceil(gross)
    equity = collateral + fill.sum(axis=1)
    loss = np.where(equity < 0, np.ceil(-equity), 0).astype(np.int64)
    fee_cap = np.floor(np.floor(gross) * inputs.liquidation.max_liquidation_fee_ppm / PPM)
    fee = np.where(equity >= 0, np.minimum(np.floor(np.maximum(equity, 0)), fee_cap), 0).astype(np.int64)
    ratio = np.divide(net_collateral, maintenance, out=np.full_like(net_collateral, -np.inf), where=maintenance > 0)
    order = np.lexsort((liquidated, ratio, step))
    pools = inputs.account_pool[liquidated]
    payouts = drawdown = bad_debt = adl = 0
    depleted = []
    for p, pool in enumerate(inputs.pools):
        events = order[pools[order] == p]
        if events.size == 0:
            continue
        uncovered, lowest = _fund_sequence(int(inputs.insurance_funds[p]), fee[events], loss[events])
        start = int(inputs.insurance_funds[p])
        drawdown += start - min(start, lowest)
        covered = int(loss[events].sum()) - int(uncovered.sum())
        payouts += covered
        bad_debt += int(uncovered.sum())
        short = uncovered > 0
        if short.any():
            depleted.append(pool)
            adl += sum(-(-int(n) * int(u) // int(total)) for n, u, total in
                       zip(notional[events][short], uncovered[short], loss[events][short]))
    return _result(scenario, path, int(liquidated.size), int(notional.sum()), int(fee.sum()), payouts, drawdown,
                   adl, bad_debt, tuple(depleted))


def _result(scenario: Scenario, path: ScenarioPath, liquidations: int, notional: int, fees: int, payouts: int,
            drawdown: int, adl: int, bad_debt: int, depleted: tuple[str, ...]) -> ScenarioResult:
    return ScenarioResult(scenario.index, scenario.name, scenario.kind, path.steps, liquidations, notional, fees,
                          payouts, drawdown, adl, bad_debt, depleted)


def first_breach(prepared: Prepared, lot_value: np.ndarray, stale: np.ndarray | None) -> np.ndarray:
    """(A,) int64: each account's first step below its maintenance requirement (and holding no stale
    market), or -1. Accounts found in one chunk of steps drop out of the next chunks."""
    count = prepared.threshold.size
    breach = np.full(count, -1, dtype=np.int64)
    active = np.arange(count)
    coefficient, threshold, holds = prepared.surplus_coefficient, prepared.threshold, prepared.holds
    has_position = prepared.holds.any(axis=1)
    active = active[has_position]
    if active.size < count:
        coefficient, threshold, holds = coefficient[active], threshold[active], holds[active]
    total = lot_value.shape[0]
    for start in range(0, total, STEP_CHUNK):
        if active.size == 0:
            break
        stop = min(start + STEP_CHUNK, total)
        below = (coefficient @ lot_value[start:stop].T) < threshold[:, None]
        if stale is not None and stale[start:stop].any():
            below &= (holds @ stale[start:stop].T.astype(np.float64)) == 0
        first = below.argmax(axis=1)
        found = below[np.arange(active.size), first]
        breach[active[found]] = start + first[found]
        if found.any():
            keep = ~found
            active, coefficient, threshold, holds = active[keep], coefficient[keep], threshold[keep], holds[keep]
    return breach


def _window_steps(position_values: np.ndarray, step_s: int, settings: EngineSettings,
                  inputs: StressInputs) -> np.ndarray:
    """Extra steps after the breach step that the per-block limits need to close each account."""
    params = inputs.liquidation
    blocks_per_step = max(1, step_s * 1_000 // settings.block_ms)
    total = position_values.sum(axis=1)
    by_notional = np.ceil(total / max(params.max_notional_per_block_usdc, 1))
    largest = position_values.max(axis=1)
    minimum = max(params.min_position_notional_usdc, 1)
    portion = params.max_position_portion_ppm / PPM
    if portion >= 1.0:
        by_portion = np.ones_like(largest)
    elif portion <= 0.0:
        by_portion = np.full_like(largest, math.inf)
    else:
        ratio = np.maximum(largest / minimum, 1.0)
        by_portion = np.ceil(np.log(ratio) / -math.log1p(-portion)) + 1
    blocks = np.maximum(np.maximum(by_notional, by_portion), 1)
    steps = np.ceil(blocks / blocks_per_step) - 1
    return np.minimum(steps, 2**31).astype(np.int64)


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


def _fund_sequence(start: int, fees: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, int]:
    """A fund that receives ``fees[k]`` and pays ``losses[k]`` in order, never below zero: per event,
    the part of the loss it could not pay, and its lowest balance (integers; the running sum
    reflected at zero)."""
    running = start + np.cumsum(fees - losses)
    shortfall = np.maximum(0, -np.minimum.accumulate(np.minimum(running, 0)))
    uncovered = np.diff(shortfall, prepend=0)
    balances = running + shortfall
    return uncovered, int(min(start, int(balances.min())))
