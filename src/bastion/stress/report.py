"""Aggregates across scenarios, the verdict against thresholds, and the hashed report.

Across the scenarios of a sweep (DESIGN.md section 10), with ``n`` scenarios and each scenario's
``loss`` = the negative equity of its liquidated accounts (paid by a fund or socialised):

* ``depletion_probability_ppm`` = ``ceil(1e6 * depleted / n)``: a scenario is *depleted* when some
  pool's fund could not pay a loss;
* ``var99_loss_usdc``: the ``ceil(0.99 n)``-th smallest loss (the 99% quantile, no interpolation);
* ``es99_loss_usdc``: the mean of the ``ceil(n / 100)`` largest losses, rounded up;
* ``var99_trader_loss_usdc``: the same quantile of each scenario's **losses to traders who were not
  liquidated** (``trader_loss_usdc``: what ADL counterparties gave up plus socialised bad debt), and
  ``worst_trader_loss_usdc``, ``worst_backstop_peak_usdc`` (the backstop's largest inventory) and
  ``lowest_final_funds_usdc`` (the funds at the end of the worst scenario for them);
* ``var99_stakers_loss_usdc`` and ``worst_stakers_loss_usdc``: the same quantile and the largest of
  what the insurance funds' stakers lose per scenario (``stakers_loss_usdc``, net of their fees;
  ``bastion.core.staking``). The inputs carry the staked part of each fund (``staked_usdc``) and
  each fund's governed target and the gap to it (``fund_targets_usdc``: ``[pool, target, gap]``).

Every figure is an integer (micro-USDC, ppm, counts) computed with integer arithmetic from the
engine's integers; rounding is up wherever it is a risk figure.

``StressThresholds`` are the limits the verdict checks: the depletion probability, and VaR and ES of
losses as a share of the total insurance funds, and ``max_loss_to_traders`` (USDC, default 0: the 99%
quantile of losses to traders who were not liquidated must be nil, i.e. at most 1% of scenarios may
put a loss on them through ADL or socialisation). They are governance parameters
(``GovernanceParams.stress_*``, the genesis ``governance.stress`` section, changed by a critical
``set_governance_params``): by default the verdict is against those of the stressed state
(``thresholds_source: "governance"`` in the report); a ``--thresholds`` file is an explicit
override, recorded as ``thresholds_source: "override"``. ``build_report`` returns the canonical
report: JSON with sorted keys, compact separators and no floats (ints, strings, booleans, lists), and
``report_hash = sha256(canonical bytes)``. The same inputs, scenario set and code give the same
bytes in any process.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import numpy as np

import bastion
from bastion.core.errors import ProtocolError
from bastion.core.governance import parse_stress_thresholds
from bastion.core.params import GovernanceParams
from bastion.core.snapshot import canonical_bytes
from bastion.core.units import PPM, format_ppm, format_usdc
from bastion.reporthash import report_bytes
from bastion.stress.calibration import CALIBRATION_FILE
from bastion.stress.engine import ENGINE_VERSION, ScenarioResult, run_sweep
from bastion.stress.history import HISTORY
from bastion.stress.inputs import StressInputs
from bastion.stress.replay import EXACT_ENGINE_VERSION, compare_results
from bastion.stress.scenarios import ScenarioSet, scenario_set_hash

FORMAT: Final = "bastion-stress-report/3"  # 2: losses to traders, the backstop, the final funds;
#   3: insurance staking (staked capital, fund targets and gaps, stakers' losses)
GOVERNANCE, OVERRIDE = "governance", "override"    # where a report's thresholds come from
_GENESIS: Final = GovernanceParams()
LOSS_TO_TRADERS_KEY: Final = "max_loss_to_traders"


@dataclass(frozen=True, kw_only=True)
class StressThresholds:
    """Limits of a passing sweep (ppm; the loss limits are shares of the total insurance funds),
    defaulting to the genesis governance defaults; ``source`` is ``governance`` for the governed
    ones (``governed``) and ``override`` for any other."""

    max_depletion_probability_ppm: int = _GENESIS.stress_max_depletion_probability_ppm
    max_var99_loss_ppm_of_fund: int = _GENESIS.stress_max_var99_loss_ppm_of_fund
    max_es99_loss_ppm_of_fund: int = _GENESIS.stress_max_es99_loss_ppm_of_fund
    max_loss_to_traders_usdc: int = _GENESIS.stress_max_loss_to_traders_usdc
    source: str = OVERRIDE

    @classmethod
    def governed(cls, params: GovernanceParams) -> StressThresholds:
        """The thresholds of a state's governance parameters."""
        return cls(max_depletion_probability_ppm=params.stress_max_depletion_probability_ppm,
                   max_var99_loss_ppm_of_fund=params.stress_max_var99_loss_ppm_of_fund,
                   max_es99_loss_ppm_of_fund=params.stress_max_es99_loss_ppm_of_fund,
                   max_loss_to_traders_usdc=params.stress_max_loss_to_traders_usdc, source=GOVERNANCE)

    def document(self) -> dict[str, str]:
        return {"max_depletion_probability": format_ppm(self.max_depletion_probability_ppm),
                "max_var99_loss_of_fund": format_ppm(self.max_var99_loss_ppm_of_fund),
                "max_es99_loss_of_fund": format_ppm(self.max_es99_loss_ppm_of_fund),
                LOSS_TO_TRADERS_KEY: format_usdc(self.max_loss_to_traders_usdc)}


def parse_thresholds(document: Any) -> StressThresholds:
    """An override: ``{"max_depletion_probability": "0.01", ..., "max_loss_to_traders": "0"}``, the
    form of the governance parameters' ``stress`` section (``governance.parse_stress_thresholds``;
    omitted fields keep the genesis defaults)."""
    params = parse_stress_thresholds(document, _GENESIS, "thresholds")
    return dataclasses.replace(StressThresholds.governed(params), source=OVERRIDE)


@dataclass(frozen=True)
class SweepSummary:
    scenarios: int
    depleted: int
    depletion_probability_ppm: int
    var99_loss_usdc: int
    es99_loss_usdc: int
    worst_bad_debt_usdc: int
    worst_drawdown_usdc: int
    liquidations: int
    liquidated_notional_usdc: int
    var99_trader_loss_usdc: int
    worst_trader_loss_usdc: int
    scenarios_with_trader_loss: int
    worst_backstop_peak_usdc: int
    lowest_final_funds_usdc: int
    var99_stakers_loss_usdc: int = 0
    worst_stakers_loss_usdc: int = 0


def summarise(results: list[ScenarioResult]) -> SweepSummary:
    """The cross-scenario figures of the module docstring (``results`` non-empty)."""
    n = len(results)
    if n == 0:
        raise ValueError("no scenario results to summarise")
    losses = sorted(r.loss_usdc for r in results)
    trader_losses = sorted(r.trader_loss_usdc for r in results)
    stakers_losses = sorted(r.stakers_loss_usdc for r in results)
    depleted = sum(r.depleted for r in results)
    tail = -(-n // 100)
    quantile = -(-99 * n // 100) - 1
    return SweepSummary(
        scenarios=n, depleted=depleted, depletion_probability_ppm=-(-depleted * PPM // n),
        var99_loss_usdc=losses[quantile], es99_loss_usdc=-(-sum(losses[-tail:]) // tail),
        worst_bad_debt_usdc=max(r.bad_debt_usdc for r in results),
        worst_drawdown_usdc=max(r.insurance_drawdown_usdc for r in results),
        liquidations=sum(r.liquidations for r in results),
        liquidated_notional_usdc=sum(r.liquidated_notional_usdc for r in results),
        var99_trader_loss_usdc=trader_losses[quantile], worst_trader_loss_usdc=trader_losses[-1],
        scenarios_with_trader_loss=sum(r.trader_loss_usdc > 0 for r in results),
        worst_backstop_peak_usdc=max(r.backstop_peak_usdc for r in results),
        lowest_final_funds_usdc=min(r.insurance_final_usdc for r in results),
        var99_stakers_loss_usdc=stakers_losses[quantile], worst_stakers_loss_usdc=stakers_losses[-1])


def verdict(summary: SweepSummary, thresholds: StressThresholds, insurance_total_usdc: int) -> dict[str, Any]:
    """``{"passed": bool, "insurance_funds_total_usdc": int, "checks": [...]}``: each check's value
    (ppm for the depletion probability, micro-USDC for the losses) against its limit in ppm (of the
    total insurance funds for the losses, compared by cross multiplication); the last check,
    ``loss_to_traders_var99``, against ``limit_usdc`` (micro-USDC)."""
    checks = [
        ("depletion_probability", summary.depletion_probability_ppm, thresholds.max_depletion_probability_ppm,
         summary.depletion_probability_ppm <= thresholds.max_depletion_probability_ppm),
        ("var99_loss_of_fund", summary.var99_loss_usdc, thresholds.max_var99_loss_ppm_of_fund,
         summary.var99_loss_usdc * PPM <= thresholds.max_var99_loss_ppm_of_fund * insurance_total_usdc),
        ("es99_loss_of_fund", summary.es99_loss_usdc, thresholds.max_es99_loss_ppm_of_fund,
         summary.es99_loss_usdc * PPM <= thresholds.max_es99_loss_ppm_of_fund * insurance_total_usdc),
    ]
    traders_ok = summary.var99_trader_loss_usdc <= thresholds.max_loss_to_traders_usdc
    return {"passed": all(ok for *_, ok in checks) and traders_ok, "insurance_funds_total_usdc": insurance_total_usdc,
            "checks": [*({"name": name, "value": value, "limit_ppm": limit, "passed": ok}
                         for name, value, limit, ok in checks),
                       {"name": "loss_to_traders_var99", "value": summary.var99_trader_loss_usdc,
                        "limit_usdc": thresholds.max_loss_to_traders_usdc, "passed": traders_ok}]}


@dataclass(frozen=True)
class StressReport:
    document: dict[str, Any]
    canonical_bytes: bytes
    report_hash: str


@cache
def data_hash() -> str:
    """SHA-256 over the scenario data (calibration and crash windows): name and digest of each file."""
    files = [CALIBRATION_FILE, *sorted(HISTORY.glob("*.csv"))]
    listing = [[path.name, hashlib.sha256(path.read_bytes()).hexdigest()] for path in files]
    return hashlib.sha256(canonical_bytes(listing)).hexdigest()


def code_version() -> dict[str, str]:
    return {"bastion": bastion.__version__, "engine": ENGINE_VERSION, "numpy": np.__version__}


def build_report(inputs: StressInputs, scenario_set: ScenarioSet, results: list[ScenarioResult],
                 thresholds: StressThresholds | None = None, *, baseline: StressReport | None = None,
                 proposal: dict[str, Any] | None = None,
                 exact_results: list[ScenarioResult] | None = None) -> StressReport:
    """The canonical report of a complete sweep (``results`` for every scenario, in index order).

    With a proposal (``stress.proposal.plan_proposal``): ``inputs`` and ``results`` are the run *with*
    it, ``proposal`` its ``document()`` (actions, applied changes, worst-case fills) and ``baseline``
    the report of the same set on the state without it; the document then carries ``proposal`` and
    ``baseline`` (its hash, state hash, summary and verdict) beside this run's own. The verdict is
    this run's. ``thresholds``: default the governed ones of ``inputs`` (the stressed state's).
    ``exact_results``: the exact replay of a sample (``stress.replay.run_exact``), kept
    under ``cross_check`` with the metrics beyond tolerance (``replay.compare_results``)."""
    thresholds = thresholds or StressThresholds.governed(inputs.governance)
    if [r.index for r in results] != list(range(len(scenario_set.scenarios()))):
        raise ValueError("a report needs the result of every scenario of the set, in index order")
    summary = summarise(results)
    insurance_total = int(inputs.insurance_funds.sum())
    document = {
        "format": FORMAT,
        "inputs": {
            "state_hash": inputs.state_hash, "height": inputs.height, "accounts": inputs.account_count,
            "markets": list(inputs.tickers),
            "insurance_funds_usdc": [[pool, int(amount)] for pool, amount in zip(inputs.pools, inputs.insurance_funds)],
            "staked_usdc": [[pool, 0 if inputs.staked is None else int(inputs.staked[p])]
                            for p, pool in enumerate(inputs.pools)],
            "fund_targets_usdc": [[pool, target, max(target - int(fund), 0)] for pool, fund, target in zip(
                inputs.pools, inputs.insurance_funds,
                [0] * len(inputs.pools) if inputs.fund_targets is None else map(int, inputs.fund_targets))],
            "scenario_set": {"name": scenario_set.name, "version": scenario_set.version,
                             "hash": scenario_set_hash(scenario_set)},
            "seed": scenario_set.seed, "data_hash": data_hash(), "code": code_version(),
            "book_depth_usdc": book_depth_document(inputs, scenario_set),
        },
        "scenarios": [_result_document(r) for r in results],
        "summary": dataclasses.asdict(summary),
        "thresholds": thresholds.document(),
        "thresholds_source": thresholds.source,
        "verdict": verdict(summary, thresholds, insurance_total),
    }
    if proposal is not None:
        document["proposal"] = proposal
    if baseline is not None:
        document["baseline"] = {"report_hash": baseline.report_hash,
                                "state_hash": baseline.document["inputs"]["state_hash"],
                                "summary": baseline.document["summary"], "verdict": baseline.document["verdict"]}
    if exact_results is not None:
        by_index = {r.index: r for r in results}
        document["cross_check"] = {
            "engine": EXACT_ENGINE_VERSION,
            "scenarios": [_result_document(r) for r in exact_results],
            "beyond_tolerance": [problem for r in exact_results for problem in compare_results(by_index[r.index], r)]}
    return hash_report(document)


def book_depth_document(inputs: StressInputs, scenario_set: ScenarioSet) -> list[list[Any]]:
    """The book depth the engines assume, per market: ``[ticker, snapshot bid, snapshot ask, assumed
    bid, assumed ask]`` in micro-USDC per 1% of price (the snapshot's resting depth within 1% of the
    oracle, and the larger of it and the set's ``baseline_depth`` floor; a scenario's ``depth_cut``
    then removes its share)."""
    floor = scenario_set.engine.baseline_depth_usdc
    return [[ticker, int(bid), int(ask), max(int(bid), floor), max(int(ask), floor)]
            for ticker, bid, ask in zip(inputs.tickers, inputs.bid_depth_usdc, inputs.ask_depth_usdc)]


def hash_report(document: dict[str, Any]) -> StressReport:
    """A report document with its canonical bytes and ``report_hash`` (``bastion.reporthash``)."""
    encoded = report_bytes(document)
    return StressReport(document, encoded, hashlib.sha256(encoded).hexdigest())


def _result_document(result: ScenarioResult) -> dict[str, Any]:
    return {"index": result.index, "name": result.name, "kind": result.kind, "steps": result.steps,
            "liquidations": result.liquidations, "liquidated_notional_usdc": result.liquidated_notional_usdc,
            "insurance_fees_usdc": result.insurance_fees_usdc, "insurance_payouts_usdc": result.insurance_payouts_usdc,
            "insurance_drawdown_usdc": result.insurance_drawdown_usdc, "adl_notional_usdc": result.adl_notional_usdc,
            "bad_debt_usdc": result.bad_debt_usdc, "loss_usdc": result.loss_usdc,
            "depleted_pools": list(result.depleted_pools), "trader_loss_usdc": result.trader_loss_usdc,
            "backstop_peak_usdc": result.backstop_peak_usdc, "insurance_final_usdc": result.insurance_final_usdc,
            "stakers_loss_usdc": result.stakers_loss_usdc}


def run_stress(inputs: StressInputs, scenario_set: ScenarioSet,
               thresholds: StressThresholds | None = None) -> StressReport:
    """Sweep every scenario of the set with the fast path and build the report."""
    return build_report(inputs, scenario_set, run_sweep(inputs, scenario_set), thresholds)


# --------------------------------------------------------------------------------------- reading a report
HASH_LENGTH: Final = 64
MAX_DEPTH: Final = 32       # nesting of a report document (build_report writes at most about 8)
_INPUT_TYPES: Final = {"state_hash": str, "height": int, "accounts": int, "markets": list,
                       "insurance_funds_usdc": list, "scenario_set": dict, "seed": int, "data_hash": str,
                       "code": dict, "book_depth_usdc": list, "staked_usdc": list, "fund_targets_usdc": list}
_OPTIONAL_SECTIONS: Final = ("proposal", "baseline", "cross_check", "testnet")  # testnet: stress.testnet


def check_report_document(document: Any) -> StressReport:
    """``document`` as a report this module would build, with its canonical bytes and hash; raises
    ``ProtocolError("invalid_report", ..., field=PATH)`` otherwise (what a node checks before it
    stores an uploaded report, ``bastion.api.reports``).

    It checks the shape ``build_report`` writes (``format``, the ``inputs`` fields, one result per
    scenario in index order with a known kind, no floats anywhere) and **rebuilds everything derived**:
    each scenario's ``loss_usdc`` from its payouts and bad debt, the ``summary`` from the scenarios
    (``summarise``), the ``thresholds`` in their normal form and the ``verdict`` from the summary, the
    thresholds and the insurance funds (``verdict``). So a stored report is internally consistent: its
    verdict is what its figures say. Whether the figures are what the stressed state gives is for a
    reader to reproduce (``bastion stress``), since that needs the state."""
    from bastion.stress.scenarios import KINDS  # the scenario kinds a result may name

    _require(isinstance(document, dict), "report", "a report is a JSON object")
    _require(document.get("format") == FORMAT, "format", f"must be {FORMAT!r}")
    allowed = {"format", "inputs", "scenarios", "summary", "thresholds", "thresholds_source", "verdict",
               *_OPTIONAL_SECTIONS}
    for key in sorted(set(allowed) - set(_OPTIONAL_SECTIONS) - set(document)):
        _require(False, key, "is missing")
    for key in sorted(set(document) - allowed):
        _require(False, key, f"is not a field of a {FORMAT} report")
    _reject_floats(document, "report")
    inputs = document["inputs"]
    _require(isinstance(inputs, dict) and set(inputs) == set(_INPUT_TYPES), "inputs",
             f"must hold exactly {sorted(_INPUT_TYPES)}")
    for key, kind in _INPUT_TYPES.items():
        _require(_is(inputs[key], kind), f"inputs.{key}", f"must be {kind.__name__}")
    funds = inputs["insurance_funds_usdc"]
    _require(all(isinstance(f, list) and len(f) == 2 and _is(f[0], str) and _is(f[1], int) for f in funds),
             "inputs.insurance_funds_usdc", "must be [[pool, micro-USDC], ...]")
    _require(_is_hash(inputs["state_hash"]), "inputs.state_hash", "must be a SHA-256 hex digest")
    _require(all(_is(m, str) for m in inputs["markets"]), "inputs.markets", "must be a list of tickers")
    scenarios = document["scenarios"]
    _require(isinstance(scenarios, list) and bool(scenarios), "scenarios", "must be a non-empty list")
    results = [_parse_result(scenario, number, KINDS) for number, scenario in enumerate(scenarios)]
    summary = summarise(results)
    _require(document["summary"] == dataclasses.asdict(summary), "summary", "is not the summary of the scenarios")
    _require(document["thresholds_source"] in (GOVERNANCE, OVERRIDE), "thresholds_source",
             f"must be {GOVERNANCE!r} or {OVERRIDE!r}")
    try:
        thresholds = dataclasses.replace(parse_thresholds(document["thresholds"]), source=document["thresholds_source"])
    except ProtocolError as error:
        raise ProtocolError("invalid_report", error.message, field=error.fields.get("field", "thresholds")) from None
    _require(document["thresholds"] == thresholds.document(), "thresholds",
             "must be in normal form (decimal strings as build_report writes them, e.g. \"0.01\")")
    expected = verdict(summary, thresholds, sum(amount for _, amount in funds))
    _require(document["verdict"] == expected, "verdict", "is not the verdict of the summary against the thresholds")
    for key in _OPTIONAL_SECTIONS:
        _require(key not in document or isinstance(document[key], dict), key, "must be an object")
    if "baseline" in document:
        _require(_is_hash(document["baseline"].get("report_hash")), "baseline.report_hash",
                 "must be a SHA-256 hex digest")
    return hash_report(document)


def _parse_result(scenario: Any, index: int, kinds: Any) -> ScenarioResult:
    """One scenario's result, rebuilt from its document and checked to write it back identically."""
    path = f"scenarios.{index}"
    _require(isinstance(scenario, dict), path, "must be an object")
    try:
        result = ScenarioResult(
            index=scenario["index"], name=scenario["name"], kind=scenario["kind"], steps=scenario["steps"],
            liquidations=scenario["liquidations"], liquidated_notional_usdc=scenario["liquidated_notional_usdc"],
            insurance_fees_usdc=scenario["insurance_fees_usdc"],
            insurance_payouts_usdc=scenario["insurance_payouts_usdc"],
            insurance_drawdown_usdc=scenario["insurance_drawdown_usdc"],
            adl_notional_usdc=scenario["adl_notional_usdc"],
            bad_debt_usdc=scenario["bad_debt_usdc"], depleted_pools=tuple(scenario["depleted_pools"]),
            trader_loss_usdc=scenario["trader_loss_usdc"], backstop_peak_usdc=scenario["backstop_peak_usdc"],
            insurance_final_usdc=scenario["insurance_final_usdc"], stakers_loss_usdc=scenario["stakers_loss_usdc"])
    except KeyError as error:
        field = f"{path}.{error.args[0]}"
        raise ProtocolError("invalid_report", f"{field} is missing", field=field) from None
    except TypeError:
        raise ProtocolError("invalid_report", f"{path}.depleted_pools must be a list", field=path) from None
    _require(result.index == index, f"{path}.index", f"must be {index} (results in index order)")
    _require(result.kind in kinds, f"{path}.kind", f"must be one of {sorted(kinds)}")
    _require(_is(result.name, str) and all(_is(pool, str) for pool in result.depleted_pools), path,
             "name and depleted_pools must be strings")
    for result_field in dataclasses.fields(ScenarioResult):
        value = getattr(result, result_field.name)
        _require(not (result_field.type == "int" and not (_is(value, int) and value >= 0)),
                 f"{path}.{result_field.name}", "must be a non-negative integer")
    _require(_result_document(result) == scenario, path,
             "must hold exactly the fields of a result, with loss_usdc = insurance_payouts_usdc + bad_debt_usdc")
    return result


def _is(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and len(value) == HASH_LENGTH and all(c in "0123456789abcdef" for c in value)


def _reject_floats(value: Any, path: str, depth: int = 0) -> None:
    """No floats anywhere (a report holds ints, strings, booleans, lists and objects), and no deeper
    nesting than ``MAX_DEPTH``."""
    _require(depth <= MAX_DEPTH, path, f"is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, float):
        raise ProtocolError("invalid_report", f"{path} is a float: a report holds integers and strings", field=path)
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_floats(item, f"{path}.{key}" if path != "report" else key, depth + 1)
    elif isinstance(value, list):
        for number, item in enumerate(value):
            _reject_floats(item, f"{path}.{number}", depth + 1)


def _require(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise ProtocolError("invalid_report", f"{field} {message}", field=field)
