"""Oracle price paths: a scenario applied to the markets of a state, as integer ticks per step.

``build_path(scenario, inputs, scenario_set)`` returns a ``ScenarioPath``: ``ticks[t, m]`` for steps
``t = 0..T`` (step 0 is the snapshot's oracle price), an optional ``stale[t, m]`` mask (the oracle of
market ``m`` is stale at step ``t``: no liquidation of an account holding it), the step duration and
the share of book depth removed. Prices are whole ticks, as the exchange's oracle has them (at
least one tick), so the exact replay engine can submit the very same prices as oracle updates.

Per kind (markets follow their mapped asset, ``scenarios.map_market``):

* ``shock`` / ``thin_book``: ``ticks = round_half_up(oracle * (1 + move_m))`` with integer arithmetic,
  ``move_m = floor(move * beta_m)`` when correlated (else ``move``), held for ``steps`` steps;
* ``historical``: the window's ratio path of the mapped asset (``history.load_window``), its log
  scaled by the market's volatility scale (and negated when mirrored);
* ``jump_diffusion``: per step of ``dt = step_s / 3600`` hours, for the three calibrated assets,
  ``sigma_d * sqrt(dt) * Z + N * mu_J + sqrt(N) * sigma_J * W`` where ``Z`` and ``W`` are standard
  normals correlated by the calibrated matrix (Cholesky) and ``N`` is a Poisson count of common
  jump arrivals with the mean calibrated intensity times ``dt``; multipliers from the spec. The
  draw is ``numpy.random.Generator(PCG64([set seed, scenario index]))``: one stream per scenario,
  so any range of scenarios can be generated alone (a process pool splits a sweep by ranges);
* ``oracle_manipulation``: one market's log price rises linearly to ``1 + pump`` over
  ``pump_steps``, holds ``hold_steps``, then falls linearly to ``1 + dump`` over ``dump_steps``;
* ``path``: candle files (``candles.py``), aligned on the candle times every file has; each candle
  becomes four steps of a quarter candle (open, the extreme of the scenario's order, the other
  extreme, close); ``relative`` prices are ``round_half_even(oracle * price / first open)`` in exact
  rational arithmetic, ``absolute`` ones the price on the market's tick grid (half-even); a market
  without a file keeps its oracle price;
* ``oracle_outage``: the true price moves linearly (in log) to ``1 + move * beta_m`` over
  ``drift_steps + outage_steps``; the oracle follows it for ``drift_steps``, then is stale (shows the
  last price, liquidations deferred) until the last step, where it jumps to the true price.

Floats are used to generate paths (``exp``, ``log``, normals); each price is rounded half-to-even to
a tick once, and only ticks leave this module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from bastion.core.errors import ProtocolError
from bastion.core.units import PPM
from bastion.stress.calibration import load_calibration
from bastion.stress.candles import candle_points, load_candles
from bastion.stress.history import load_window
from bastion.stress.inputs import StressInputs
from bastion.stress.scenarios import (
    HistoricalReplay,
    JumpDiffusion,
    MarketMapping,
    OracleManipulation,
    OracleOutage,
    PricePath,
    Scenario,
    ScenarioSet,
    Shock,
    map_market,
)

HOUR_S = 3_600


@dataclass(frozen=True, eq=False)
class ScenarioPath:
    ticks: np.ndarray                      # (T + 1, M) int64
    stale: np.ndarray | None               # (T + 1, M) bool, or None when the oracle never goes stale
    step_s: int
    depth_cut_ppm: int

    @property
    def steps(self) -> int:
        return self.ticks.shape[0] - 1


def market_mappings(inputs: StressInputs, scenario_set: ScenarioSet,
                    available: tuple[str, ...] | None = None) -> list[MarketMapping]:
    """The mapping of every market of ``inputs`` (for a historical window: its assets)."""
    return [map_market(ticker, int(tier), scenario_set.mapping, available)
            for ticker, tier in zip(inputs.tickers, inputs.tier_ids)]


def build_path(scenario: Scenario, inputs: StressInputs, scenario_set: ScenarioSet) -> ScenarioPath:
    spec = scenario.spec
    match spec:
        case Shock():  # also ThinBook
            return _shock_path(spec, inputs, scenario_set)
        case HistoricalReplay():
            return _historical_path(spec, inputs, scenario_set)
        case JumpDiffusion():
            return _jump_diffusion_path(spec, scenario, inputs, scenario_set)
        case OracleManipulation():
            return _manipulation_path(spec, inputs)
        case OracleOutage():
            return _outage_path(spec, inputs, scenario_set)
        case PricePath():
            return _price_path(spec, scenario, inputs)
    raise TypeError(f"unknown scenario spec {spec!r}")


def _moved_ticks(inputs: StressInputs, moves_ppm: list[int]) -> np.ndarray:
    """``round_half_up(oracle * (1 + move))`` per market, at least one tick, in exact integers."""
    out = [max(1, (int(oracle) * (PPM + move) * 2 + PPM) // (2 * PPM))
           for oracle, move in zip(inputs.oracle_ticks, moves_ppm)]
    return np.array(out, dtype=np.int64)


def _market_moves(move_ppm: int, correlated: bool, mappings: list[MarketMapping]) -> list[int]:
    if not correlated:
        return [move_ppm] * len(mappings)
    return [max(move_ppm * m.beta_ppm // PPM, 1 - PPM) for m in mappings]


def _shock_path(spec: Shock, inputs: StressInputs, scenario_set: ScenarioSet) -> ScenarioPath:
    moves = _market_moves(spec.move_ppm, spec.correlated, market_mappings(inputs, scenario_set))
    ticks = np.empty((spec.steps + 1, inputs.market_count), dtype=np.int64)
    ticks[0] = inputs.oracle_ticks
    ticks[1:] = _moved_ticks(inputs, moves)
    return ScenarioPath(ticks, None, spec.step_s, spec.depth_cut_ppm)


def _ticks_from_log(inputs: StressInputs, log_ratio: np.ndarray) -> np.ndarray:
    """Ticks of ``oracle * exp(log_ratio)`` rounded half-to-even, at least 1; row 0 is the oracle."""
    ticks = np.maximum(np.rint(inputs.oracle_ticks.astype(np.float64) * np.exp(log_ratio)), 1).astype(np.int64)
    ticks[0] = inputs.oracle_ticks
    return ticks


def _historical_path(spec: HistoricalReplay, inputs: StressInputs, scenario_set: ScenarioSet) -> ScenarioPath:
    window = load_window(spec.window)
    mappings = market_mappings(inputs, scenario_set, tuple(window.ratios))
    log_ratio = np.empty((window.steps + 1, inputs.market_count), dtype=np.float64)
    sign = -1.0 if spec.mirror else 1.0
    for m, mapping in enumerate(mappings):
        log_ratio[:, m] = np.log(window.ratios[mapping.asset]) * (sign * mapping.scale_ppm / PPM)
    return ScenarioPath(_ticks_from_log(inputs, log_ratio), None, window.step_s, spec.depth_cut_ppm)


def _jump_diffusion_path(spec: JumpDiffusion, scenario: Scenario, inputs: StressInputs,
                         scenario_set: ScenarioSet) -> ScenarioPath:
    calibration = load_calibration()
    assets = calibration["correlation"]["assets"]
    params = [calibration["assets"][a] for a in assets]
    sigma = np.array([float(p["diffusion_volatility_hourly"]) for p in params])
    jump_mean = np.array([float(p["jump_mean"]) for p in params])
    jump_std = np.array([float(p["jump_std"]) for p in params])
    intensity = sum(float(p["jump_intensity_per_hour"]) for p in params) / len(params)
    cholesky = np.linalg.cholesky(np.array(calibration["correlation"]["matrix"], dtype=np.float64))
    dt = spec.step_s / HOUR_S
    volatility = spec.volatility_multiplier_ppm / PPM
    rng = np.random.Generator(np.random.PCG64([scenario_set.seed, scenario.index]))
    diffusion = rng.standard_normal((spec.steps, len(assets))) @ cholesky.T
    jump_noise = rng.standard_normal((spec.steps, len(assets))) @ cholesky.T
    arrivals = rng.poisson(intensity * dt * spec.jump_intensity_multiplier_ppm / PPM, size=spec.steps)
    increments = volatility * (diffusion * sigma * math.sqrt(dt) + arrivals[:, None] * jump_mean
                               + np.sqrt(arrivals)[:, None] * jump_std * jump_noise)
    asset_paths = np.vstack([np.zeros((1, len(assets))), np.cumsum(increments, axis=0)])
    column = {asset: i for i, asset in enumerate(assets)}
    log_ratio = np.empty((spec.steps + 1, inputs.market_count), dtype=np.float64)
    for m, mapping in enumerate(market_mappings(inputs, scenario_set)):
        log_ratio[:, m] = asset_paths[:, column[mapping.asset]] * (mapping.scale_ppm / PPM)
    return ScenarioPath(_ticks_from_log(inputs, log_ratio), None, spec.step_s, spec.depth_cut_ppm)


def manipulation_target(spec: OracleManipulation, inputs: StressInputs) -> int:
    """The market index pumped: the spec's market, else the market of the highest tier id with open
    interest (the least liquid kind), ties by the larger open interest notional, then ticker."""
    if spec.market is not None:
        if spec.market not in inputs.tickers:
            raise ValueError(f"oracle_manipulation: no market {spec.market!r} in the state")
        return inputs.tickers.index(spec.market)
    oi_value = inputs.open_interest_lots * inputs.oracle_ticks * inputs.lot_tick_value
    ranked = sorted((-int(inputs.tier_ids[m]), -float(oi_value[m]), ticker, m)
                    for m, ticker in enumerate(inputs.tickers) if inputs.open_interest_lots[m] > 0)
    return ranked[0][3] if ranked else 0


def _manipulation_path(spec: OracleManipulation, inputs: StressInputs) -> ScenarioPath:
    target = manipulation_target(spec, inputs)
    top, bottom = math.log1p(spec.pump_ppm / PPM), math.log1p(spec.dump_ppm / PPM)
    curve = np.concatenate([
        [0.0],
        top * np.arange(1, spec.pump_steps + 1) / spec.pump_steps,
        np.full(spec.hold_steps, top),
        top + (bottom - top) * np.arange(1, spec.dump_steps + 1) / spec.dump_steps,
    ])
    log_ratio = np.zeros((curve.size, inputs.market_count), dtype=np.float64)
    log_ratio[:, target] = curve
    return ScenarioPath(_ticks_from_log(inputs, log_ratio), None, spec.step_s, spec.depth_cut_ppm)


def _outage_path(spec: OracleOutage, inputs: StressInputs, scenario_set: ScenarioSet) -> ScenarioPath:
    mappings = market_mappings(inputs, scenario_set)
    moves = _market_moves(spec.move_ppm, True, mappings)
    total = spec.drift_steps + spec.outage_steps
    final = np.log1p(np.array(moves, dtype=np.float64) / PPM)
    true_log = np.outer(np.arange(total + 1) / total, final)
    oracle_log = true_log.copy()
    oracle_log[spec.drift_steps + 1:total] = true_log[spec.drift_steps]  # stale: the last price stays
    stale = np.zeros((total + 1, inputs.market_count), dtype=bool)
    stale[spec.drift_steps + 1:total] = True
    ticks = _ticks_from_log(inputs, oracle_log)
    ticks[total] = _moved_ticks(inputs, moves)
    return ScenarioPath(ticks, stale, spec.step_s, spec.depth_cut_ppm)


def check_path_markets(scenario_set: ScenarioSet, tickers: tuple[str, ...]) -> None:
    """Every market a ``path`` scenario names exists in the state (``ProtocolError`` otherwise), and
    the files of one scenario share one resolution."""
    for i, spec in enumerate(scenario_set.specs):
        if not isinstance(spec, PricePath):
            continue
        intervals = set()
        for f in spec.files:
            if f.market not in tickers:
                raise ProtocolError("invalid_price_path", f"{f.file}: no market {f.market!r} in the state "
                                    f"(have {', '.join(tickers)})", field=f"scenarios[{i}].files")
            intervals.add(load_candles(f.location, f.sha256).interval_ms)
        if len(intervals) > 1:
            raise ProtocolError("invalid_price_path", f"scenario {spec.name!r}: its files have different "
                                f"resolutions ({sorted(intervals)} ms)", field=f"scenarios[{i}].files")


def _price_path(spec: PricePath, scenario: Scenario, inputs: StressInputs) -> ScenarioPath:
    series = {f.market: load_candles(f.location, f.sha256) for f in spec.files}
    intervals = {s.interval_ms for s in series.values()}
    if len(intervals) > 1:
        raise ValueError(f"path {spec.name!r}: files of different resolutions {sorted(intervals)} ms")
    times = sorted(set.intersection(*({c.time_ms for c in s.candles} for s in series.values())))
    if not times:
        raise ValueError(f"path {spec.name!r}: its files have no candle time in common")
    low_first = scenario.draw == 0
    steps = len(times) * 4
    ticks = np.empty((steps + 1, inputs.market_count), dtype=np.int64)
    ticks[:] = inputs.oracle_ticks
    for market, candles in series.items():
        if market not in inputs.tickers:
            raise ValueError(f"path {spec.name!r}: no market {market!r} in the state")
        m = inputs.tickers.index(market)
        by_time = {c.time_ms: c for c in candles.candles}
        points = [p for t in times for p in candle_points(by_time[t], low_first)]
        if spec.prices == "relative":
            scale = Fraction(int(inputs.oracle_ticks[m])) / Fraction(points[0])
        else:
            scale = Fraction(10) ** int(inputs.price_decimals[m])
        column = [max(1, _round_half_even(Fraction(p) * scale)) for p in points]
        ticks[1:, m] = column                  # row 0 stays the snapshot's oracle price
    return ScenarioPath(ticks, None, next(iter(series.values())).step_s, spec.depth_cut_ppm)


def _round_half_even(value: Fraction) -> int:
    return round(value)  # Fraction.__round__ rounds half to even, exactly
