"""Any price path (issue 14): OHLC candle files of any resolution as stress scenarios.

``stress.candles`` reads a file (a header with timestamp/open/high/low/close, or the exchange kline
layout), exactly (decimal strings, never floats), and names the file, line and column of anything
wrong; ``stress.paths`` expands each candle into four oracle steps, the low first or the high first;
``bastion stress --path`` runs them. The expected ticks are worked out by hand below.
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from builders import BTC, ETH, genesis, market
from test_stress_cli import btc_genesis, stress

from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.stress import extract_inputs, parse_scenario_set
from bastion.stress.candles import load_candles
from bastion.stress.paths import build_path
from bastion.stress.runner import StressInputError, market_of_file
from bastion.stress.scenarios import FORMAT, scenario_set_hash

# two 5-minute candles; 90.0001 and 80.0003 land exactly half a tick off the grid once scaled by
# 500,000 ticks / 100 (BTC-USD at 50,000.0 USD, one decimal): half-to-even gives 450,000 and 400,002
KLINES = ("1700000000000,100,101.5,90.0001,91,12.5,1700000299999,0,0,0,0,0\n"
          "1700000300000,91,95,80.0003,94,12.5,1700000599999,0,0,0,0,0\n")
HEADED = ("Timestamp,Open,High,Low,Close,Volume\n"
          "2023-11-14T22:13:20Z,2000,2010,1800,1850.0005,1\n"
          "2023-11-14T22:18:20Z,1850,1900,1700,1890,1\n")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def two_market_state():
    return build_state(genesis(markets=[market(BTC), market(ETH)], accounts=[], insurance_funds={"cross": "1000"}))


def path_set(files: list[dict], **fields) -> dict:
    return {"format": FORMAT, "name": "paths", "version": 1, "seed": 1,
            "scenarios": [{"kind": "path", "name": "crash", "files": files, **fields}]}


# --------------------------------------------------------------------------------------- reading files
def test_kline_and_headed_files_parse_exactly_at_their_own_resolution(tmp_path):
    klines = load_candles(write(tmp_path, "BTCUSDT-5m.csv", KLINES))
    headed = load_candles(write(tmp_path, "eth.csv", HEADED))

    assert (klines.interval_ms, klines.step_s) == (300_000, 75)   # five minutes: four steps of 75 s
    assert klines.candles[0].time_ms == 1_700_000_000_000
    assert klines.candles[0].low == Decimal("90.0001") and isinstance(klines.candles[0].low, Decimal)
    assert headed.interval_ms == 300_000
    assert headed.candles[0].time_ms == 1_700_000_000_000         # 2023-11-14T22:13:20Z
    assert headed.candles[0].close == Decimal("1850.0005")


@pytest.mark.parametrize("stamp", ["1700000000", "1700000000000", "1700000000000000", "2023-11-14T22:13:20",
                                   "2023-11-14 22:13:20+00:00"])
def test_timestamps_in_seconds_milliseconds_microseconds_or_iso(tmp_path, stamp):
    second = {"1700000000": "1700000060", "1700000000000": "1700000060000", "1700000000000000": "1700000060000000",
              "2023-11-14T22:13:20": "2023-11-14T22:14:20", "2023-11-14 22:13:20+00:00": "2023-11-14 22:14:20+00:00"}
    text = f"timestamp,open,high,low,close\n{stamp},1,2,1,2\n{second[stamp]},2,2,1,1\n"
    series = load_candles(write(tmp_path, "x.csv", text))
    assert [c.time_ms for c in series.candles] == [1_700_000_000_000, 1_700_000_060_000]


@pytest.mark.parametrize(("text", "where", "says"), [
    ("", "f.csv", "is empty"),
    ("timestamp,open,high,low,close\n", "f.csv", "a header and no candles"),
    ("timestamp,open,high,close\n1700000000,1,2,1\n", "f.csv line 1 column low", "missing column"),
    ("time,open,high,low,close\n1700000000,1,2,1,2\n1700000060,1,x2,1,2\n", "f.csv line 3 column high",
     "'x2' is not a decimal number"),
    ("timestamp,open,high,low,close\n1700000000,1,2,1,2\n1700000060,1,1,2,1\n", "f.csv line 3 column low",
     "low 2 is above high 1"),
    ("timestamp,open,high,low,close\n1700000000,1,2,1,2\n1700000060,3,2,1,2\n", "f.csv line 3 column open",
     "outside the candle"),
    ("timestamp,open,high,low,close\n1700000060,1,2,1,2\n1700000000,1,2,1,2\n", "f.csv line 3 column timestamp",
     "timestamps must increase"),
    ("timestamp,open,high,low,close\n1700000000,1,2,1,2\n1700000060,1,2,1,2\n1700000090,1,2,1,2\n",
     "f.csv line 4 column timestamp", "mixed resolutions"),
    ("1700000000000,1,2,1,2,5\n1700000060000,1,2,1\n", "f.csv line 2 column 5 (close)", "missing value"),
    ("timestamp,open,high,low,close\n1700000000,1,2,1,2\n1700000060,1,2,-1,2\n", "f.csv line 3 column low",
     "not a positive price"),
    ("timestamp,open,high,low,close\nyesterday,1,2,1,2\n", "f.csv line 2 column timestamp", "neither ISO-8601"),
    ("timestamp,open,high,low,close\n1700000000,1,2,1,2\n1700000001,1,2,1,2\n", "f.csv", "divisible by 4"),
    ("timestamp,open,high,low,close\n1700000000,1,2,1,2\n", "f.csv", "at least two"),
])
def test_bad_files_name_the_file_line_and_column(tmp_path, text, where, says):
    path = write(tmp_path, "f.csv", text)
    with pytest.raises(ProtocolError) as error:
        load_candles(path)
    assert error.value.code == "invalid_price_path"
    assert error.value.message.startswith(str(path.parent / where)) and says in error.value.message


def test_a_file_that_does_not_match_its_digest_is_refused(tmp_path):
    path = write(tmp_path, "btc.csv", KLINES)
    with pytest.raises(ProtocolError, match="the scenario set names"):
        load_candles(path, "00" * 32)


# --------------------------------------------------------------------------------------- oracle steps
def test_candles_become_four_steps_with_the_chosen_extreme_first(tmp_path):
    write(tmp_path, "btc.csv", KLINES)
    scenario_set = parse_scenario_set(path_set([{"market": BTC, "file": "btc.csv"}]), base_dir=tmp_path)
    inputs = extract_inputs(two_market_state())
    low_first, high_first = scenario_set.scenarios()

    assert (low_first.name, high_first.name) == ("crash:low-first", "crash:high-first")
    low, high = (build_path(s, inputs, scenario_set) for s in (low_first, high_first))
    # ticks = round_half_even(500,000 * price / 100); step 0 is the snapshot's oracle
    assert low.ticks[:, 0].tolist() == [500_000, 500_000, 450_000, 507_500, 455_000,
                                        455_000, 400_002, 475_000, 470_000]
    assert high.ticks[:, 0].tolist() == [500_000, 500_000, 507_500, 450_000, 455_000,
                                         455_000, 475_000, 400_002, 470_000]
    assert set(low.ticks[:, 1].tolist()) == {3_000_000}          # ETH-USD has no file: it stays
    assert (low.step_s, low.steps, low.stale) == (75, 8, None)


def test_absolute_prices_are_the_oracle_on_the_tick_grid(tmp_path):
    write(tmp_path, "eth.csv", HEADED)
    scenario_set = parse_scenario_set(path_set([{"market": ETH, "file": "eth.csv"}], order="high_first",
                                               prices="absolute"), base_dir=tmp_path)
    (scenario,) = scenario_set.scenarios()
    path = build_path(scenario, extract_inputs(two_market_state()), scenario_set)
    # ETH-USD has 3 price decimals; 1850.0005 -> 1,850,000.5 ticks -> 1,850,000 (half to even)
    assert path.ticks[:, 1].tolist() == [3_000_000, 2_000_000, 2_010_000, 1_800_000, 1_850_000,
                                         1_850_000, 1_900_000, 1_700_000, 1_890_000]


def test_a_scenario_set_commits_to_the_contents_of_its_files_not_their_place(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(tmp_path / "a", "btc.csv", KLINES)
    write(tmp_path / "b", "btc.csv", KLINES)
    first = parse_scenario_set(path_set([{"market": BTC, "file": "btc.csv"}]), base_dir=tmp_path / "a")
    second = parse_scenario_set(path_set([{"market": BTC, "file": "btc.csv"}]), base_dir=tmp_path / "b")
    write(tmp_path / "b", "btc.csv", KLINES.replace("94,12.5", "93,12.5"))
    changed = parse_scenario_set(path_set([{"market": BTC, "file": "btc.csv"}]), base_dir=tmp_path / "b")

    assert scenario_set_hash(first) == scenario_set_hash(second) != scenario_set_hash(changed)
    document = first.document()["scenarios"][0]
    assert document["files"] == [{"market": BTC, "file": "btc.csv", "sha256": first.specs[0].files[0].sha256}]
    assert parse_scenario_set(first.document(), base_dir=tmp_path / "a").document() == first.document()
    with pytest.raises(ProtocolError, match="the scenario set names"):
        parse_scenario_set(first.document(), base_dir=tmp_path / "b")


# --------------------------------------------------------------------------------------- the CLI
def test_market_of_a_file_from_its_name():
    tickers = (BTC, ETH)
    assert market_of_file("BTCUSDT-5m-2025-10-10.csv", tickers) == BTC
    assert market_of_file("/data/crash_2022-11-08_ETHUSDT-PERP_15m.csv", tickers) == ETH
    with pytest.raises(StressInputError, match="give --path MARKET="):
        market_of_file("prices.csv", tickers)


def test_stress_path_runs_both_orders_of_each_file(tmp_path):
    state_file = write(tmp_path, "state.json", json.dumps({"genesis": btc_genesis("1000000"), "blocks": []}))
    write(tmp_path, "BTCUSDT-5m.csv", KLINES)
    out = tmp_path / "out"
    result = stress("--scenario", str(state_file), "--path", str(tmp_path / "BTCUSDT-5m.csv"), "--workers", "1",
                    "--out", str(out))

    assert result.exit_code in (0, 1), result.output
    document = json.loads((out / "report.json").read_bytes())
    assert [(s["name"], s["kind"], s["steps"]) for s in document["scenarios"]] == [
        ("price-path:low-first", "path", 8), ("price-path:high-first", "path", 8)]
    assert document["inputs"]["scenario_set"]["name"] == "price-paths"
    # the 5x longs (40,000 USDC borrowed on 1 BTC at 50,000, maintenance 3%) survive the first low
    # (45,000: TNC 5,000 > MMR 1,350) and are liquidated at the second (40,000.2: TNC 0.2 < 1,200)
    assert document["scenarios"][0]["liquidations"] == 3
    named = stress("--scenario", str(state_file), "--path", f"{BTC}={tmp_path / 'BTCUSDT-5m.csv'}",
                   "--workers", "1")
    assert json.loads(named.stdout)["report_hash"] == json.loads(result.stdout)["report_hash"]


@pytest.mark.parametrize(("args", "message"), [
    (["--path", "prices.csv"], "give --path MARKET="),
    (["--path", "ETH-USD={btc}"], "no market 'ETH-USD' in the state"),
    (["--path", "{bad}"], "line 3 column 3 (high)"),
])
def test_path_errors_exit_2(tmp_path, args, message):
    state_file = write(tmp_path, "state.json", json.dumps({"genesis": btc_genesis("1000000"), "blocks": []}))
    files = {"btc": write(tmp_path, "BTCUSDT-5m.csv", KLINES),
             "bad": write(tmp_path, "BTCUSDT-bad.csv", KLINES + "1700000600000,94,x,90,91,1,0\n")}
    write(tmp_path, "prices.csv", KLINES)
    args = [a.format(**files) if "{" in a else (str(tmp_path / a) if a.endswith(".csv") else a) for a in args]
    result = stress("--scenario", str(state_file), *args, "--workers", "1")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
