"""The stress tester's fast path (issue 6, part 1): known answers, determinism, scenario sets.

Known answers use one market, BTC-USD of ``builders`` (size_decimals 4, price_decimals 1: one lot is
0.0001 BTC, one tick 0.1 USD, so a lot at one tick is worth 10 micro-USDC), the large-cap tier
(IMF 2%, maintenance fraction 0.6: MMF 1.2%), and an engine with a 0.1% spread and 1,800,000 USDC
of book depth per 1% of price (the snapshot has no resting orders, so the baseline applies).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from builders import ALICE, BOB, BTC, CAROL, DAVE, ETH, PEPE, address, genesis, market

from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.margin import get_subaccount_risk
from bastion.stress import (
    StressThresholds,
    build_path,
    build_report,
    default_scenario_set,
    extract_inputs,
    map_market,
    parse_scenario_set,
    parse_thresholds,
    run_stress,
    run_sweep,
    scenario_set_hash,
)
from bastion.stress.engine import _fund_sequence
from bastion.stress.history import load_window
from bastion.stress.scenarios import FORMAT, MappingRule, history_windows

SRC = Path(__file__).resolve().parents[1] / "src"
DATA = SRC / "bastion" / "stress" / "data"
ENGINE = {"block_ms": 1000, "spread": "0.001", "baseline_depth": "1800000", "max_slippage": "0.5"}


def scenario_set(*specs: dict, seed: int = 7, version: int = 1, engine: dict | None = None) -> dict:
    """A scenario-set document with the test engine settings."""
    return {"format": FORMAT, "name": "test", "version": version, "seed": seed,
            "engine": ENGINE if engine is None else engine, "scenarios": list(specs)}


def shock(move: str, name: str = "shock", **fields) -> dict:
    return {"kind": "shock", "name": name, "move": move, "correlated": False, **fields}


def btc_account(owner: str, size: str, usdc: str) -> dict:
    """A cross subaccount 0 holding ``size`` BTC opened at the oracle price (50,000)."""
    return {"address": owner, "subaccounts": [{"number": 0, "usdc": usdc,
                                                "positions": [{"market": BTC, "size": size}]}]}


def btc_state(accounts: list[dict], fund: str):
    return build_state(genesis(markets=[market(BTC)], insurance_funds={"cross": fund}, accounts=accounts))


def sweep(state, *specs: dict):
    return run_sweep(extract_inputs(state), parse_scenario_set(scenario_set(*specs)))


# --------------------------------------------------------------------------------------- known answers
@pytest.mark.parametrize(("move", "liquidated_notional", "fees", "payouts", "bad_debt", "adl_notional", "depleted"), [
    # -10%, liquidated with bad debt. Step 1: 45,000.0 (450,000 ticks); the position is worth
    # 10,000 * 450,000 * 10 = 45,000 USDC, TNC = -45,000 + 45,000 = 0 < MMR = 45,000 * 1.2% = 540.
    # Slippage: spread 1,000 ppm + ceil(45,000 / 1,800,000 * 1%) = 1,000 + 250 = 1,250 ppm, so the sale
    # fills at 45,000 * (1 - 0.00125) = 44,943.75 USDC and her equity is -45,000 + 44,943.75 = -56.25.
    # The fund pays its 20 USDC; 36.25 USDC is bad debt, deleveraged with 36.25 / 56.25 of the
    # notional: 44,943.75 * 36.25 / 56.25 = 28,963.75 USDC.
    ("-0.1", 44_943_750_000, 0, 20_000_000, 36_250_000, 28_963_750_000, ("cross",)),
    # -9.5%, liquidated with equity left. Step 1: 45,250.0; TNC = 250 < MMR = 543. Slippage
    # 1,000 + ceil(45,250 / 1,800,000 * 1e4 = 251.39) = 1,252 ppm: the fill is 45,250 * 0.998748 =
    # 45,193.347 USDC and leaves 193.347 USDC, below the fee cap (1.5% of 45,193.347 = 677.900205):
    # all of it goes to the fund as the liquidation fee.
    ("-0.095", 45_193_347_000, 193_347_000, 0, 0, 0, ()),
    # -8%: 46,000, TNC 1,000 >= MMR 552: nothing happens.
    ("-0.08", 0, 0, 0, 0, 0, ()),
])
def test_one_account_one_step_shock_known_answers(move, liquidated_notional, fees, payouts, bad_debt, adl_notional,
                                                  depleted):
    # Alice: long 1 BTC (10,000 lots) at 50,000 with a balance of -45,000: TNC 5,000 USDC (10x).
    # Bob holds the opposite short with 150,000 (healthy in every row). The cross fund holds 20 USDC.
    state = btc_state([btc_account(ALICE, "1", "-45000"), btc_account(BOB, "-1", "150000")], fund="20")

    [result] = sweep(state, shock(move))

    assert result.steps == 1
    assert result.liquidations == (1 if liquidated_notional else 0)
    assert result.liquidated_notional_usdc == liquidated_notional
    assert result.insurance_fees_usdc == fees
    assert result.insurance_payouts_usdc == result.insurance_drawdown_usdc == payouts
    assert result.bad_debt_usdc == bad_debt
    assert result.adl_notional_usdc == adl_notional
    assert result.loss_usdc == payouts + bad_debt
    assert result.depleted_pools == depleted


def portfolio(fund: str):
    """Three longs of 1 BTC at 5x (TNC 10,000 each), one at 1x, and a short hedger of 4 BTC."""
    weak = [btc_account(owner, "1", "-40000") for owner in (ALICE, BOB, CAROL)]
    return btc_state([*weak, btc_account(DAVE, "1", "0"), btc_account(address(0xE0), "-4", "400000")], fund=fund)


@pytest.mark.parametrize(("fund", "payouts", "bad_debt", "adl_notional", "depleted"), [
    # 1,000 USDC: the first liquidation empties it; the rest of the loss is socialised
    ("1000", 1_000_000_000, 14_166_320_000, 97_921_411_237, ("cross",)),
    # 1,000,000 USDC: pays every loss and survives
    ("1000000", 15_166_320_000, 0, 0, ()),
])
def test_thirty_percent_shock_depletes_a_small_fund_and_a_large_fund_survives(fund, payouts, bad_debt, adl_notional,
                                                                              depleted):
    [result] = sweep(portfolio(fund), shock("-0.3"))

    # Step 1: 35,000. The three 5x longs have TNC -40,000 + 35,000 = -5,000 (liquidated); the 1x long
    # (35,000) and the hedger (400,000 - 140,000) are healthy. The three sell 105,000 USDC in the same
    # step: slippage 1,000 + ceil(105,000 / 1,800,000 * 1e4 = 583.3) = 1,584 ppm; each fills at
    # 35,000 * 0.998416 = 34,944.56 and loses 5,055.44 USDC: 15,166.32 in all. With 1,000 USDC the
    # fund pays 1,000 of the first (ties by account order); the rest, 14,166.32, is bad debt, and
    # deleveraging takes ceil(34,944.56 * 4,055.44 / 5,055.44) = 28,032.291237 + 2 * 34,944.56 USDC.
    assert result.liquidations == 3
    assert result.liquidated_notional_usdc == 3 * 34_944_560_000
    assert result.loss_usdc == 15_166_320_000
    assert result.insurance_payouts_usdc == payouts
    assert result.insurance_drawdown_usdc == payouts
    assert result.bad_debt_usdc == bad_debt
    assert result.adl_notional_usdc == adl_notional
    assert result.depleted_pools == depleted


def test_fund_sequence_pays_while_it_can_and_reports_each_shortfall():
    # start 100: +10 fee (110), -50 (60), -80 (pays 60, short 20), +5 fee (5), -7 (pays 5, short 2)
    fees = np.array([10, 0, 0, 5, 0], dtype=np.int64)
    losses = np.array([0, 50, 80, 0, 7], dtype=np.int64)

    uncovered, lowest, balances = _fund_sequence(100, fees, losses)

    assert uncovered.tolist() == [0, 0, 20, 0, 2]
    assert lowest == 0
    assert balances.tolist() == [110, 60, 0, 5, 0]


def test_liquidations_wait_while_the_oracle_is_stale():
    state = btc_state([btc_account(ALICE, "1", "-45000"), btc_account(BOB, "-1", "150000")], fund="20")
    inputs = extract_inputs(state)
    parsed = parse_scenario_set(scenario_set(
        {"kind": "oracle_outage", "name": "outage", "move": "-0.2", "drift_steps": 10, "outage_steps": 30}))
    scenario = parsed.scenarios()[0]

    path = build_path(scenario, inputs, parsed)
    [result] = run_sweep(inputs, parsed)

    # The true price falls 20% over 40 steps, by the factor 0.8 ** (1/40) a step: the oracle shows
    # 49,721.8 at step 1 ... 50,000 * 0.8 ** 0.25 = 47,287.1 at step 10 (TNC 2,287.1 > MMR 567.4),
    # stays there while stale (steps 11-39), and shows 40,000.0 at step 40: the account is liquidated
    # then, with the whole gap as loss.
    assert path.stale is not None and path.stale[11:40, 0].all() and not path.stale[:11].any()
    assert path.ticks[10, 0] == path.ticks[39, 0] == 472_871
    assert path.ticks[40, 0] == 400_000
    assert result.liquidations == 1
    # fill 40,000 * (1 - (1,000 + ceil(40,000 / 1,800,000 * 1e4 = 222.2)) ppm) = 39,951.08: loss 5,048.92
    assert result.steps == 40
    assert result.loss_usdc == 5_048_920_000


# --------------------------------------------------------------------------------------- inputs
def test_extract_inputs_matches_the_state():
    state = build_state(genesis(accounts=[
        btc_account(ALICE, "1", "-45000"), btc_account(BOB, "-1", "150000"),
        {"address": CAROL, "subaccounts": [{"number": 0, "usdc": "500"}]}]))  # no position: left out

    inputs = extract_inputs(state)

    assert inputs.tickers == (BTC, ETH, PEPE)
    assert inputs.accounts == ((ALICE, 0), (BOB, 0))
    assert inputs.sizes.tolist() == [[10_000, 0, 0], [-10_000, 0, 0]]
    assert inputs.collateral.tolist() == [-45_000_000_000, 150_000_000_000]
    assert inputs.oracle_ticks.tolist() == [500_000, 3_000_000, 10_000]
    assert inputs.lot_tick_value.tolist() == [10.0, 0.1, 1.0]
    for i, key in enumerate(inputs.accounts):
        exact = get_subaccount_risk(state, state.subaccounts[key])
        assert (inputs.net_collateral[i], inputs.initial_requirement[i], inputs.maintenance_requirement[i]) == exact
    assert inputs.maintenance_requirement.tolist() == [600_000_000, 600_000_000]
    assert inputs.pools == ("PEPE-USD", "cross")
    assert inputs.insurance_funds.tolist() == [10_000_000_000, 100_000_000_000]
    assert inputs.initial_margin_ppm.tolist() == [20_000, 100_000, 50_000]
    assert inputs.adjusted_initial_margin_ppm.tolist() == [20_000, 100_000, 50_000]  # no open interest above caps


def test_extract_inputs_refuses_an_uncommitted_state():
    state = btc_state([btc_account(ALICE, "1", "-45000"), btc_account(BOB, "-1", "150000")], fund="20")
    state.touch(("global",))

    with pytest.raises(ValueError, match="committed"):
        extract_inputs(state)


# --------------------------------------------------------------------------------------- mapping rule
@pytest.mark.parametrize(("ticker", "tier", "available", "asset", "scale_ppm", "reason"), [
    ("BTC-USD", 0, None, "BTC", 1_000_000, "base_asset"),            # its own series
    ("ETH/USD", 3, None, "ETH", 1_000_000, "base_asset"),            # the base asset wins over the tier
    ("DOGE-USD", 2, None, "SOL", 1_000_000, "tier_2_proxy"),         # not calibrated: small-cap -> SOL
    ("PEPE-USD", 4, None, "SOL", 2_000_000, "tier_4_proxy"),         # isolated tier: SOL x2
    ("XYZ-USD", 9, None, "SOL", 2_000_000, "default_proxy"),         # unknown tier
    # 2020 has no SOL series: ETH (the closest volatility) scaled by 0.014417063 / 0.009701875
    ("SOL-USD", 2, ("BTC", "ETH"), "ETH", 1_486_008, "base_asset_via_ETH"),
    ("AVAX-USD", 1, ("BTC", "ETH"), "ETH", 1_000_000, "tier_1_proxy"),
])
def test_mapping_rule(ticker, tier, available, asset, scale_ppm, reason):
    mapping = map_market(ticker, tier, MappingRule(), available)

    assert (mapping.asset, mapping.scale_ppm, mapping.reason) == (asset, scale_ppm, reason)


def test_beta_is_volatility_relative_to_btc():
    rule = MappingRule()

    assert map_market("BTC-USD", 0, rule).beta_ppm == 1_000_000
    assert map_market("ETH-USD", 1, rule).beta_ppm == 1_320_237  # ceil(0.009701875 / 0.007348587 * 1e6)


def test_historical_replay_follows_the_mapped_series():
    state = btc_state([btc_account(ALICE, "1", "-45000"), btc_account(BOB, "-1", "150000")], fund="20")
    inputs = extract_inputs(state)
    parsed = parse_scenario_set(scenario_set({"kind": "historical", "name": "covid", "window": "2020-03-12"}))

    path = build_path(parsed.scenarios()[0], inputs, parsed)

    ratios = load_window("2020-03-12").ratios["BTC"]
    assert path.steps == 671 and path.step_s == 900
    assert path.ticks[0, 0] == 500_000
    assert path.ticks[:, 0].tolist() == np.rint(500_000 * np.exp(np.log(ratios))).astype(int).tolist()
    assert path.ticks[:, 0].min() == 225_265  # 3,621.81 (lowest low) / 8,038.99 (first open) * 500,000 ticks


# --------------------------------------------------------------------------------------- scenario sets
def test_default_gate_set_covers_every_kind_and_every_crash_window():
    parsed = default_scenario_set()
    scenarios = parsed.scenarios()

    assert (parsed.name, parsed.version, len(scenarios)) == ("gate-default", 1, 1000)
    assert {s.kind for s in scenarios} == {"historical", "shock", "thin_book", "jump_diffusion",
                                          "oracle_manipulation", "oracle_outage"}
    assert {s.spec.window for s in scenarios if s.kind == "historical"} == set(history_windows())
    assert [s.index for s in scenarios] == list(range(1000))
    assert len({s.name for s in scenarios}) == 1000


def test_default_gate_set_hash_is_pinned():
    # Editing data/gate_default.json changes this hash: bump its "version" and update the hash here.
    assert scenario_set_hash(default_scenario_set()) == \
        "64ad6ebae4aa68a20dacc48fd54e3048ca75d64ee56a1783be1df5d41519adce"


def test_scenario_set_hash_ignores_layout_and_number_spelling():
    document = scenario_set(shock("-0.3"))
    respelled = json.loads(json.dumps(scenario_set(shock("-0.300")), indent=4))

    assert scenario_set_hash(parse_scenario_set(document)) == scenario_set_hash(parse_scenario_set(respelled))


@pytest.mark.parametrize("change", [
    {"version": 2},                                          # a new version
    {"seed": 8},                                             # another seed
    {"scenarios": [shock("-0.31")]},                         # another move
    {"engine": {**ENGINE, "spread": "0.002"}},               # another engine setting
])
def test_scenario_set_hash_changes_with_any_content(change):
    base = scenario_set(shock("-0.3"))

    assert scenario_set_hash(parse_scenario_set(base)) != scenario_set_hash(parse_scenario_set({**base, **change}))


@pytest.mark.parametrize(("document", "field"), [
    ({**scenario_set(shock("-0.3")), "format": "other"}, "format"),                       # wrong format
    ({k: v for k, v in scenario_set(shock("-0.3")).items() if k != "version"}, "version"),  # no version
    (scenario_set({"kind": "earthquake", "name": "x"}), "scenarios[0].kind"),            # unknown kind
    (scenario_set({"kind": "thin_book", "name": "x", "move": "-0.1", "depth_cut": "0.5"}),
     "scenarios[0].depth_cut"),                                                         # not thin
    (scenario_set({"kind": "historical", "name": "x", "window": "1987-10-19"}), "scenarios[0].window"),
    (scenario_set(shock("-1")), "scenarios[0]"),                                        # price to zero
    (scenario_set(shock("-0.1", steps="2")), "scenarios[0].steps"),                     # not an integer
    (scenario_set(shock("-0.1", move_ppm=5)), "scenarios[0].move_ppm"),                 # ppm field at the edge
    (scenario_set(shock("-0.1"), shock("-0.2")), "scenarios"),                          # duplicate names
    (scenario_set({"kind": "historical", "name": "x", "window": "2020-03-12", "step_s": 60}),
     "scenarios[0].step_s"),                                                            # steps come from data
    (scenario_set({"kind": "oracle_manipulation", "name": "x", "pump": "-0.1"}), "scenarios[0].pump"),
    (scenario_set({"kind": "oracle_outage", "name": "x", "move": "-0.1", "drift_steps": -1}), "scenarios[0]"),
])
def test_invalid_scenario_sets_are_rejected(document, field):
    with pytest.raises(ProtocolError) as error:
        parse_scenario_set(document)

    assert error.value.code == "invalid_scenario_set"
    assert error.value.fields["field"] == field


def test_jump_diffusion_draws_depend_on_seed_and_index_only():
    state = btc_state([btc_account(ALICE, "1", "-45000"), btc_account(BOB, "-1", "150000")], fund="20")
    inputs = extract_inputs(state)
    parsed = parse_scenario_set(scenario_set({"kind": "jump_diffusion", "name": "jd", "count": 3, "steps": 100}))
    other_seed = replace(parsed, seed=8)
    first, second, _ = parsed.scenarios()

    path = build_path(second, inputs, parsed).ticks

    assert np.array_equal(path, build_path(second, inputs, parsed).ticks)
    assert not np.array_equal(path, build_path(first, inputs, parsed).ticks)
    assert not np.array_equal(path, build_path(second, inputs, other_seed).ticks)


# --------------------------------------------------------------------------------------- report and determinism
def test_sweep_split_by_scenario_ranges_equals_the_whole_sweep():
    inputs = extract_inputs(portfolio("1000"))
    parsed = parse_scenario_set(scenario_set(shock("-0.3"), shock("0.2", name="up"),
                                             {"kind": "jump_diffusion", "name": "jd", "count": 6, "steps": 200}))

    whole = run_sweep(inputs, parsed)
    parts = run_sweep(inputs, parsed, indices=range(3)) + run_sweep(inputs, parsed, indices=range(3, 8))

    assert parts == whole


def test_report_has_no_floats_and_a_verdict():
    inputs = extract_inputs(portfolio("1000"))
    parsed = parse_scenario_set(scenario_set(shock("-0.3"), shock("-0.05", name="small")))

    report = run_stress(inputs, parsed)

    def walk(value):
        assert not isinstance(value, float)
        for child in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
            walk(child)
    walk(report.document)
    assert report.document["inputs"]["state_hash"] == inputs.state_hash
    # losses 15,166.32 and 0 USDC: VaR99 is the 2nd smallest (ceil(1.98)), ES99 the mean of the worst 1
    assert report.document["summary"]["var99_loss_usdc"] == 15_166_320_000
    assert report.document["summary"]["es99_loss_usdc"] == 15_166_320_000
    assert report.document["summary"]["depletion_probability_ppm"] == 500_000
    assert report.document["verdict"]["passed"] is False


def test_thresholds_parse_from_decimal_strings_and_decide_the_verdict():
    inputs = extract_inputs(portfolio("1000000"))
    parsed = parse_scenario_set(scenario_set(shock("-0.3")))
    results = run_sweep(inputs, parsed)
    # loss 15,166.32 USDC against a 1,000,000 USDC fund: 1.516632%
    lenient = parse_thresholds({"max_var99_loss_of_fund": "0.016", "max_es99_loss_of_fund": "0.016"})
    strict = StressThresholds(max_var99_loss_ppm_of_fund=15_166, max_es99_loss_ppm_of_fund=1_000_000)

    assert build_report(inputs, parsed, results, lenient).document["verdict"]["passed"] is True
    assert build_report(inputs, parsed, results, strict).document["verdict"]["passed"] is False


REPORT_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_stress import determinism_report
report = determinism_report()
sys.stdout.write(report.report_hash + "\\n")
sys.stdout.buffer.write(report.canonical_bytes)
"""


def determinism_report():
    """A report over every scenario kind (20 jump-diffusion draws) on the builders' genesis."""
    accounts = [btc_account(owner, "1", "-44000") for owner in (ALICE, BOB, CAROL)]
    accounts += [{"address": DAVE, "subaccounts": [
        {"number": 0, "usdc": "200000", "positions": [{"market": BTC, "size": "-3"}, {"market": ETH, "size": "-10"}]},
        {"number": 1, "usdc": "1000", "mode": "isolated", "market": PEPE,
         "positions": [{"market": PEPE, "size": "-1000000000"}]}]},
        {"address": address(0xE0), "subaccounts": [
            {"number": 0, "usdc": "-25000", "positions": [{"market": ETH, "size": "10"}]},
            {"number": 1, "usdc": "100", "mode": "isolated", "market": PEPE,
             "positions": [{"market": PEPE, "size": "1000000000"}]}]}]
    state = build_state(genesis(accounts=accounts))
    specs = [{"kind": "historical", "name": "ftx", "window": "2022-11-08"},
             {"kind": "historical", "name": "covid-mirrored", "window": "2020-03-12", "mirror": True},
             {"kind": "shock", "name": "down", "move": "-0.3"},
             {"kind": "thin_book", "name": "thin", "move": "-0.1"},
             {"kind": "oracle_manipulation", "name": "pump", "pump": "3", "dump": "-0.5"},
             {"kind": "oracle_outage", "name": "outage", "move": "-0.2"},
             {"kind": "jump_diffusion", "name": "jd", "count": 20, "steps": 1440, "volatility_multiplier": "3"}]
    return run_stress(extract_inputs(state), parse_scenario_set(scenario_set(*specs)))


def test_report_is_byte_identical_in_fresh_processes():
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", REPORT_SCRIPT.format(tests=str(Path(__file__).parent))],
                              env=env, capture_output=True, check=True)
        outputs.append(done.stdout)

    assert outputs[0] == outputs[1]
    report_hash, canonical = outputs[0].split(b"\n", 1)
    in_process = determinism_report()
    assert canonical == in_process.canonical_bytes
    assert report_hash.decode() == in_process.report_hash
    assert in_process.document["summary"]["liquidations"] > 0


def test_public_surface_is_curated():
    import bastion.stress as stress

    assert sorted(stress.__all__) == [
        "ENGINE_VERSION", "ExactResult", "ProposalApplication", "Scenario", "ScenarioPath", "ScenarioResult",
        "ScenarioSet", "StressInputs", "StressReport", "StressRun", "StressThresholds", "SweepSummary",
        "apply_proposal", "build_path", "build_report", "compare_results", "default_scenario_set", "extract_inputs",
        "load_scenario_set", "map_market", "parse_scenario_set", "parse_thresholds", "plan_proposal", "run",
        "run_exact", "run_fast_path", "run_stress", "run_sweep", "scenario_set_hash", "summarise"]
    assert all(hasattr(stress, name) for name in stress.__all__)


def test_the_limit_on_losses_to_traders_is_a_governance_parameter():
    """``max_loss_to_traders`` lives with the other verdict thresholds in ``governance.stress``: the
    genesis sets it, a (critical) set_governance_params changes it, the gate's governed thresholds read
    it, and a ``--thresholds`` file overrides it in the same form."""
    from bastion.core import governance
    from bastion.core.genesis import GENESIS_DEFAULTS as DEFAULTS
    from bastion.core.messages import decode_action

    assert DEFAULTS["governance"]["stress"]["max_loss_to_traders"] == "0"
    state = build_state(genesis(governance={"stress": {"max_loss_to_traders": "25000"}}))
    assert state.governance.stress_max_loss_to_traders_usdc == 25_000_000_000
    assert StressThresholds.governed(state.governance).max_loss_to_traders_usdc == 25_000_000_000
    action = decode_action({"type": "set_governance_params", "params": {"stress": {"max_loss_to_traders": "1000"}}}, 0)
    changes = [(c.name, c.old, c.new, c.risk) for c in governance.compute_action_changes(state, action)
               if c.name == "governance.stress_max_loss_to_traders_usdc"]
    assert changes == [("governance.stress_max_loss_to_traders_usdc", 25_000_000_000, 1_000_000_000, "critical")]
    override = parse_thresholds({"max_loss_to_traders": "7.5"})
    assert (override.max_loss_to_traders_usdc, override.source) == (7_500_000, "override")
    with pytest.raises(ProtocolError):
        parse_thresholds({"max_loss_to_traders": "-1"})
