"""Replays dYdX v4's funding vectors (tests/vectors/dydx_funding.json, units in
tests/vectors/README.md) against ``bastion.core.funding`` and ``bastion.risk_model``.

Unit mapping: a dYdX base quantum is one lot (``size_decimals = -atomic_resolution``), an oracle
price unit is one tick (``price_decimals = -oracle_exponent``), a quote quantum is one micro-USDC.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bastion.core.errors import InvariantViolation
from bastion.core.funding import funding_index_delta, funding_rate_8h_ppm, median_low, premium_ppm
from bastion.risk_model import funding_clamp_ppm, funding_settlement

VECTORS = Path(__file__).parent / "vectors"
FUNDING = json.loads((VECTORS / "dydx_funding.json").read_text())


def vector_cases(table: str) -> Any:
    """Parametrise a test over one vector table, with the dYdX case name as the test id."""
    cases = FUNDING[table]
    return pytest.mark.parametrize("case", cases, ids=[case["name"] for case in cases])


@vector_cases("funding.GetFundingIndexDelta")
def test_funding_index_delta(case: dict[str, Any]) -> None:
    given = case["input"]
    result = funding_index_delta(
        rate_8h_ppm=given["funding_rate_8h_ppm"],
        oracle_ticks=given["oracle_price"],
        size_decimals=-given["atomic_resolution"],
        price_decimals=-given["oracle_exponent"],
        elapsed_s=given["time_since_last_funding_s"],
    )
    assert result == case["expected"]["funding_index_delta"]


@vector_cases("MaybeProcessNewFundingTickEpoch")
def test_funding_tick(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]
    premiums = given["premium_samples_ppm"]
    samples = [value for value, count in premiums["values_and_counts"] for _ in range(count)]
    # dYdX pads to max(NumPremiums, ceil(tick / sample)); our function pads to
    # max(len(samples), expected_samples), so passing that maximum reproduces dYdX exactly.
    samples_per_tick = -(-given["funding_tick_duration_s"] // given["funding_sample_duration_s"])  # ceil, no float
    expected_samples = max(premiums["num_premiums"], samples_per_tick)
    clamp = funding_clamp_ppm(
        given["funding_rate_clamp_factor_ppm"], given["initial_margin_ppm"], given["maintenance_fraction_ppm"])

    rate = funding_rate_8h_ppm(
        samples, expected_samples=expected_samples, default_funding_ppm=given["default_funding_ppm"], clamp_ppm=clamp)
    index_delta = funding_index_delta(
        rate_8h_ppm=rate,
        oracle_ticks=given["oracle_price"],
        size_decimals=-given["atomic_resolution"],
        price_decimals=-given["oracle_exponent"],
        elapsed_s=given["funding_tick_duration_s"],
    )

    assert rate == expected["funding_rate_8h_ppm"]
    assert index_delta == expected["funding_index_delta"]


@vector_cases("perplib.GetSettlementPpmWithPerpetual")
def test_funding_settlement(case: dict[str, Any]) -> None:
    given = case["input"]
    result = funding_settlement(
        given["perpetual_funding_index"], given["position_funding_index"], given["position_quantums"])

    assert result == case["expected"]["net_settlement_ppm"]
    # Derived in the vector file (not from the Go test): the balance change floors by 1e6.
    assert result // 1_000_000 == case["derived_not_from_test"]["usdc_change_quote_quantums_if_only_position"]


def premium_market(case: dict[str, Any]) -> dict[str, int]:
    """Our market decimals for a dYdX premium case, chosen so that one tick is one subtick.

    A subtick is ``10^(qce - atomic_resolution - 6)`` USDC per coin, so ``price_decimals =
    atomic_resolution + 6 - qce`` (ClobPair_Btc, qce -8, atomic_resolution -10: price_decimals 4,
    a tick of $0.0001); one lot is one base quantum (``size_decimals = -atomic_resolution``). Then
    notional(lots, ticks) = ticks * lots * 10^qce, which is dYdX's FillAmountToQuoteQuantums.
    """
    given = case["input"]
    match = re.search(r"quantum_conversion_exponent (-?\d+)", given["clob_pair"])
    assert match is not None, given["clob_pair"]
    quantum_conversion_exponent = int(match.group(1))
    atomic_resolution = given["base_atomic_resolution"]
    return {
        "size_decimals": -atomic_resolution,
        "price_decimals": atomic_resolution + 6 - quantum_conversion_exponent,
    }


def oracle_in_ticks(case: dict[str, Any], price_decimals: int) -> int:
    """index_price * 10^index_exponent USDC as an exact integer number of ticks."""
    given = case["input"]
    exponent = given["index_exponent"] + price_decimals
    if exponent >= 0:
        return given["index_price"] * 10**exponent
    ticks, remainder = divmod(given["index_price"], 10 ** (-exponent))
    assert remainder == 0, "the index price must sit on the tick grid"
    return ticks


@vector_cases("memclob.GetPricePremium")
def test_premium(case: dict[str, Any]) -> None:
    given = case["input"]
    market = premium_market(case)

    result = premium_ppm(
        bids=[(level["subticks"], level["quantums"]) for level in given["bids_best_first"]],
        asks=[(level["subticks"], level["quantums"]) for level in given["asks_best_first"]],
        oracle_ticks=oracle_in_ticks(case, market["price_decimals"]),
        impact_notional=given["impact_notional_quote_quantums"],
        max_abs_premium_ppm=given["max_abs_premium_vote_ppm"],
        **market,
    )

    assert result == case["expected"]["premium_ppm"]


# ---------------------------------------------------------------------------------------------
# Hand-written edge cases
# ---------------------------------------------------------------------------------------------


def test_funding_index_delta_truncates_negative_rates_toward_zero() -> None:
    # One lot of one unit at 1 micro-USDC: -1 ppm for one second is -1/28_800 -> 0, not -1.
    result = funding_index_delta(rate_8h_ppm=-1, oracle_ticks=1, size_decimals=0, price_decimals=6, elapsed_s=1)
    assert result == 0
    # 28_801 seconds: -28_801/28_800 -> -1, not -2.
    result = funding_index_delta(rate_8h_ppm=-1, oracle_ticks=1, size_decimals=0, price_decimals=6, elapsed_s=28_801)
    assert result == -1


def test_funding_rate_pads_missing_samples_with_zero() -> None:
    assert funding_rate_8h_ppm([600] * 30, expected_samples=60, default_funding_ppm=0, clamp_ppm=10_000) == 300
    # A mean of -0.5 truncates toward zero.
    assert funding_rate_8h_ppm([-1, 0], expected_samples=2, default_funding_ppm=0, clamp_ppm=10_000) == 0
    assert funding_rate_8h_ppm([], expected_samples=60, default_funding_ppm=100, clamp_ppm=10_000) == 100
    assert funding_rate_8h_ppm([9_000], expected_samples=1, default_funding_ppm=100, clamp_ppm=5_000) == 5_000


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([7], 7),
        ([3, 1, 2], 2),
        ([4, 1, 3, 2], 2),  # even count: the lower of the two middle values
        ([-5, 5], -5),
    ],
)
def test_median_low(values: list[int], expected: int) -> None:
    assert median_low(values) == expected


def test_median_low_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        median_low([])


def test_premium_of_an_empty_book_is_zero() -> None:
    result = premium_ppm(bids=[], asks=[], oracle_ticks=100, size_decimals=0, price_decimals=0,
                         impact_notional=1_000, max_abs_premium_ppm=10_000)
    assert result == 0


def test_premium_rejects_a_crossed_book() -> None:
    with pytest.raises(InvariantViolation):
        premium_ppm(bids=[(101, 1)], asks=[(100, 1)], oracle_ticks=100, size_decimals=0, price_decimals=0,
                    impact_notional=0, max_abs_premium_ppm=10_000)


def test_premium_rejects_a_zero_oracle_price() -> None:
    with pytest.raises(InvariantViolation):
        premium_ppm(bids=[(99, 1)], asks=[(101, 1)], oracle_ticks=0, size_decimals=0, price_decimals=0,
                    impact_notional=0, max_abs_premium_ppm=10_000)
