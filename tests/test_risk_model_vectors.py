"""Replays dYdX v4's unit-test vectors (tests/vectors/, units in tests/vectors/README.md) against
``bastion.risk_model``.

Unit mapping: a dYdX base quantum is one lot (``size_decimals = -atomic_resolution``), an oracle
price unit is one tick (``price_decimals = -oracle_exponent``), a quote quantum is one micro-USDC.

Not replayed here: ``ConvertFillablePriceToSubticks`` (our liquidation limit is the fillable price
rounded to the tick grid in ``bastion.core.liquidation``, tested by the golden scenarios) and the
cases of the liquidation tables whose expected outcome is an ``ErrInvalidPerpetualPositionSizeDelta``
error: that error comes from validating the (position, delta) pair, which is the liquidation
engine's job, not the risk formulas'.
"""
from __future__ import annotations

import inspect
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from bastion import risk_model
from bastion.risk_model import (
    adjusted_initial_margin_ppm,
    bankruptcy_amount,
    compare_risk,
    fillable_price,
    funding_clamp_ppm,
    insurance_fund_delta,
    is_liquidatable,
    is_valid_undercollateralized_update,
    liquidation_size,
    maintenance_margin_ppm,
    margin_requirements,
    notional,
    position_notional_liquidatable,
    undercollateralized_update_result,
)

VECTORS = Path(__file__).parent / "vectors"
MARGIN = json.loads((VECTORS / "dydx_margin.json").read_text())
LIQUIDATIONS = json.loads((VECTORS / "dydx_liquidations.json").read_text())
FIXTURES = LIQUIDATIONS["fixtures"]


def vector_cases(tables: dict[str, Any], table: str, *, replayable_only: bool = False) -> Any:
    """Parametrise a test over one vector table, with the dYdX case name as the test id."""
    cases = tables[table]
    if replayable_only:
        cases = [case for case in cases if "error" not in case["expected"]]
    return pytest.mark.parametrize("case", cases, ids=[case["name"] for case in cases])


def decimals(atomic_resolution: int, oracle_exponent: int) -> dict[str, int]:
    """dYdX exponents to our market decimals."""
    return {"size_decimals": -atomic_resolution, "price_decimals": -oracle_exponent}


# ---------------------------------------------------------------------------------------------
# Liquidity tiers and per-position requirements (dydx_margin.json)
# ---------------------------------------------------------------------------------------------


@vector_cases(MARGIN, "LiquidityTier.GetMaintenanceMarginPpm")
def test_maintenance_margin_ppm(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]
    result = maintenance_margin_ppm(given["initial_margin_ppm"], given["maintenance_fraction_ppm"])
    assert result == expected["maintenance_margin_ppm"]


@vector_cases(MARGIN, "LiquidityTier.GetMaxAbsFundingClampPpm")
def test_funding_clamp_ppm(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]
    result = funding_clamp_ppm(
        given["clamp_factor_ppm"], given["initial_margin_ppm"], given["maintenance_fraction_ppm"])
    assert result == expected["max_abs_funding_clamp_ppm"]


@vector_cases(MARGIN, "LiquidityTier.GetAdjustedInitialMarginPpm")
def test_adjusted_initial_margin_ppm(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]
    result = adjusted_initial_margin_ppm(
        given["initial_margin_ppm"],
        given["open_interest_notional_quote_quantums"],
        given["open_interest_lower_cap"],
        given["open_interest_upper_cap"],
    )
    assert result == expected["adjusted_initial_margin_ppm"]


@vector_cases(MARGIN, "LiquidityTier.GetInitialMarginQuoteQuantums")
def test_initial_margin_of_a_notional(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]
    initial_margin, _ = margin_requirements(
        given["position_notional_quote_quantums"],
        given["initial_margin_ppm"],
        0,  # the maintenance fraction plays no part in the IMR
        open_interest_notional=given["open_interest_notional_quote_quantums"],
        oi_lower_cap=given["open_interest_lower_cap"],
        oi_upper_cap=given["open_interest_upper_cap"],
    )
    assert initial_margin == expected["initial_margin_quote_quantums"]


@vector_cases(MARGIN, "perplib.GetMarginRequirementsInQuoteQuantums")
def test_margin_requirements_of_a_position(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]
    market = decimals(given["atomic_resolution"], given["oracle_exponent"])
    position_notional = notional(abs(given["position_quantums"]), given["oracle_price"], **market)
    open_interest_notional = notional(given["open_interest_base_quantums"], given["oracle_price"], **market)

    result = margin_requirements(
        position_notional,
        given["initial_margin_ppm"],
        given["maintenance_fraction_ppm"],
        open_interest_notional=open_interest_notional,
        oi_lower_cap=given["open_interest_lower_cap"],
        oi_upper_cap=given["open_interest_upper_cap"],
    )

    assert result == (expected["initial_margin_quote_quantums"], expected["maintenance_margin_quote_quantums"])


@vector_cases(MARGIN, "perplib.GetNetNotionalInQuoteQuantums")
def test_net_notional(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]
    market = decimals(given["atomic_resolution"], given["oracle_exponent"])
    result = notional(given["position_quantums"], given["oracle_price"], **market)
    assert result == expected["net_notional_quote_quantums"]


# ---------------------------------------------------------------------------------------------
# Account risk (dydx_margin.json)
# ---------------------------------------------------------------------------------------------


@vector_cases(MARGIN, "margin.Risk.IsLiquidatable")
def test_is_liquidatable(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["expected"]
    assert is_liquidatable(given["net_collateral"], given["maintenance_margin"]) is expected["is_liquidatable"]


@vector_cases(MARGIN, "margin.Risk.Cmp")
def test_compare_risk(case: dict[str, Any]) -> None:
    first, second = case["input"]["first"], case["input"]["second"]
    result = compare_risk(first["nc"], first["mmr"], second["nc"], second["mmr"])
    assert result == case["expected"]["cmp"]


@vector_cases(MARGIN, "IsValidStateTransitionForUndercollateralizedSubaccount")
def test_undercollateralized_update(case: dict[str, Any]) -> None:
    old, new = case["input"]["old"], case["input"]["new"]
    arguments = (old["nc"], old["imr"], old["mmr"], new["nc"], new["mmr"])

    result = undercollateralized_update_result(*arguments)

    assert result == case["expected"]["result"]
    assert is_valid_undercollateralized_update(*arguments) is (result == "Success")


# ---------------------------------------------------------------------------------------------
# Liquidations (dydx_liquidations.json): subaccounts valued at the fixtures' oracle prices
# ---------------------------------------------------------------------------------------------


def markets_of(case: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The perpetual fixtures a case names, by perpetual id."""
    fixtures = (FIXTURES[name] for name in case["fixtures"])
    return {fixture["perpetual_id"]: fixture for fixture in fixtures if "perpetual_id" in fixture}


def position_value(market: dict[str, Any], quantums: int) -> tuple[int, int]:
    """(net notional, maintenance margin) of a position, as dYdX's perplib computes them."""
    market_decimals = decimals(market["atomic_resolution"], market["oracle_exponent"])
    net_notional = notional(quantums, market["oracle_price"], **market_decimals)
    _, maintenance = margin_requirements(
        notional(abs(quantums), market["oracle_price"], **market_decimals),
        market["initial_margin_ppm"],
        market["maintenance_fraction_ppm"],
        oi_lower_cap=market.get("open_interest_lower_cap", 0),
        oi_upper_cap=market.get("open_interest_upper_cap", 0),
    )
    return net_notional, maintenance


def account_totals(case: dict[str, Any]) -> tuple[int, int]:
    """(TNC, TMMR) of the case's subaccount."""
    markets = markets_of(case)
    subaccount = case["input"]["subaccount"]
    net_collateral, total_maintenance = subaccount["usdc_quote_quantums"], 0
    for position in subaccount["perpetual_positions"]:
        net_notional, maintenance = position_value(markets[position["perpetual_id"]], position["quantums"])
        net_collateral += net_notional
        total_maintenance += maintenance
    return net_collateral, total_maintenance


def position_quantums(case: dict[str, Any]) -> int:
    perpetual_id = case["input"]["perpetual_id"]
    (position,) = [p for p in case["input"]["subaccount"]["perpetual_positions"] if p["perpetual_id"] == perpetual_id]
    return position["quantums"]


def bankruptcy_of(case: dict[str, Any], delta_quantums: int) -> int:
    """dYdX GetBankruptcyPriceInQuoteQuantums: the deltas are new-minus-old position values."""
    market = markets_of(case)[case["input"]["perpetual_id"]]
    old_size = position_quantums(case)
    old_notional, old_maintenance = position_value(market, old_size)
    new_notional, new_maintenance = position_value(market, old_size + delta_quantums)
    net_collateral, total_maintenance = account_totals(case)
    return bankruptcy_amount(
        new_notional - old_notional, net_collateral, new_maintenance - old_maintenance, total_maintenance)


def liquidations_config(case: dict[str, Any]) -> dict[str, Any]:
    config = case["input"]["liquidations_config"]
    return FIXTURES[config] if isinstance(config, str) else config


@vector_cases(LIQUIDATIONS, "GetBankruptcyPriceInQuoteQuantums", replayable_only=True)
def test_bankruptcy_amount(case: dict[str, Any]) -> None:
    result = bankruptcy_of(case, case["input"]["delta_quantums"])
    assert result == case["expected"]["bankruptcy_price_quote_quantums"]


@vector_cases(LIQUIDATIONS, "GetFillablePrice", replayable_only=True)
def test_fillable_price(case: dict[str, Any]) -> None:
    market = markets_of(case)[case["input"]["perpetual_id"]]
    size = position_quantums(case)
    position_notional, position_maintenance = position_value(market, size)
    net_collateral, total_maintenance = account_totals(case)
    config = liquidations_config(case)

    result = fillable_price(
        position_notional,
        position_maintenance,
        size,
        net_collateral,
        total_maintenance,
        bankruptcy_adjustment_ppm=config["bankruptcy_adjustment_ppm"],
        spread_to_maintenance_ppm=config["spread_to_maintenance_margin_ratio_ppm"],
    )

    expected = case["expected"]["fillable_price_quote_quantums_per_base_quantum"]
    assert isinstance(result, Fraction)
    assert result == Fraction(expected["num"], expected["den"])


@vector_cases(LIQUIDATIONS, "GetLiquidationInsuranceFundDelta", replayable_only=True)
def test_insurance_fund_delta(case: dict[str, Any]) -> None:
    given = case["input"]
    market = markets_of(case)[given["perpetual_id"]]
    (clob_pair,) = [FIXTURES[name] for name in case["fixtures"] if name.startswith("ClobPair")]
    # A subtick is a tick of price_decimals = atomic_resolution + 6 - quantum_conversion_exponent, so
    # that notional() is exactly dYdX's FillAmountToQuoteQuantums (subticks * quantums * 10^qce, down).
    subtick_decimals = {
        "size_decimals": -market["atomic_resolution"],
        "price_decimals": market["atomic_resolution"] + 6 - clob_pair["quantum_conversion_exponent"],
    }
    fill_quote = notional(given["fill_amount_base_quantums"], given["subticks"], **subtick_decimals)
    if given["is_buy"]:  # buying back a short: the account pays
        fill_quote, delta_quantums = -fill_quote, given["fill_amount_base_quantums"]
    else:  # selling a long: the account receives
        delta_quantums = -given["fill_amount_base_quantums"]

    result = insurance_fund_delta(
        fill_quote, bankruptcy_of(case, delta_quantums), liquidations_config(case)["max_liquidation_fee_ppm"])

    assert result == case["expected"]["insurance_fund_delta_quote_quantums"]


@vector_cases(LIQUIDATIONS, "GetMaxAndMinPositionNotionalLiquidatable")
def test_position_notional_liquidatable(case: dict[str, Any]) -> None:
    (market,) = markets_of(case).values()
    given, expected = case["input"], case["expected"]
    position_notional = notional(given["position_quantums"], market["oracle_price"],
                                 **decimals(market["atomic_resolution"], market["oracle_exponent"]))
    result = position_notional_liquidatable(
        position_notional, min_position_notional=given["min_position_notional_liquidated"],
        max_position_portion_ppm=given["max_position_portion_liquidated_ppm"])
    assert result == (expected["min_position_notional_liquidatable"], expected["max_position_notional_liquidatable"])


@vector_cases(LIQUIDATIONS, "GetLiquidatablePositionSizeDelta")
def test_liquidation_size(case: dict[str, Any]) -> None:
    (market,) = markets_of(case).values()
    given = case["input"]
    result = liquidation_size(
        given["position_quantums"], market["oracle_price"],
        **decimals(market["atomic_resolution"], market["oracle_exponent"]),
        min_position_notional=given["min_position_notional_liquidated"],
        max_position_portion_ppm=given["max_position_portion_liquidated_ppm"],
        subaccount_notional_left=(given["subaccount_max_notional_liquidated"]
                                  - given["notional_already_liquidated_this_block"]),
        step_lots=given["step_base_quantums"])
    assert result == case["expected"]["delta_quantums"]


def test_liquidation_size_edges() -> None:
    """Nothing to close, an exhausted subaccount limit, and a limit below one lot's value."""
    btc = {"size_decimals": 8, "price_decimals": 5}  # one lot = 500 micro-USDC at 5_000_000_000 ticks
    limits = {"min_position_notional": 1_000, "max_position_portion_ppm": 100_000}
    assert liquidation_size(0, 5_000_000_000, **btc, **limits, subaccount_notional_left=10**12) == 0
    assert liquidation_size(10**7, 5_000_000_000, **btc, **limits, subaccount_notional_left=0) == 0
    assert liquidation_size(10**7, 5_000_000_000, **btc, **limits, subaccount_notional_left=-5) == 0
    assert liquidation_size(10**7, 5_000_000_000, **btc, **limits, subaccount_notional_left=499) == 0
    assert liquidation_size(-10**7, 5_000_000_000, **btc, **limits, subaccount_notional_left=1_000) == 2


def test_only_position_delta_validation_errors_are_left_out() -> None:
    """The liquidation cases not replayed above are exactly the (position, delta) validation errors."""
    tables = ("GetBankruptcyPriceInQuoteQuantums", "GetFillablePrice", "GetLiquidationInsuranceFundDelta")
    left_out = [case for table in tables for case in LIQUIDATIONS[table] if "error" in case["expected"]]
    assert left_out, "expected some error cases"
    assert {case["expected"]["error"] for case in left_out} == {"ErrInvalidPerpetualPositionSizeDelta"}


# ---------------------------------------------------------------------------------------------
# The public surface (DESIGN.md section 15)
# ---------------------------------------------------------------------------------------------

# name -> (positional-or-keyword parameters, keyword-only parameters), exactly as in section 15.
SECTION_15_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "maintenance_margin_ppm": (("initial_margin_ppm", "maintenance_fraction_ppm"), ()),
    "adjusted_initial_margin_ppm": (
        ("initial_margin_ppm", "open_interest_notional", "oi_lower_cap", "oi_upper_cap"), ()),
    "margin_requirements": (
        ("notional", "initial_margin_ppm", "maintenance_fraction_ppm"),
        ("open_interest_notional", "oi_lower_cap", "oi_upper_cap")),
    "is_liquidatable": (("net_collateral", "maintenance_margin"), ()),
    "compare_risk": (("net_collateral_a", "maintenance_a", "net_collateral_b", "maintenance_b"), ()),
    "bankruptcy_amount": (("delta_net_notional", "net_collateral", "delta_maintenance", "total_maintenance"), ()),
    "fillable_price": (
        ("position_net_notional", "position_maintenance", "position_size", "net_collateral", "total_maintenance"),
        ("bankruptcy_adjustment_ppm", "spread_to_maintenance_ppm")),
    "insurance_fund_delta": (("fill_quote", "bankruptcy_quote", "max_liquidation_fee_ppm"), ()),
    "funding_clamp_ppm": (("clamp_factor_ppm", "initial_margin_ppm", "maintenance_fraction_ppm"), ()),
    "funding_settlement": (("market_funding_index", "position_funding_index", "position_size"), ()),
}
# Added by the liquidation engine (not in section 15's list; keyword names are part of the contract too).
ADDED_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "position_notional_liquidatable": (("position_notional",), ("min_position_notional", "max_position_portion_ppm")),
    "liquidation_size": (("position_size", "oracle_price"),
                         ("size_decimals", "price_decimals", "min_position_notional", "max_position_portion_ppm",
                          "subaccount_notional_left", "step_lots")),
    "lots_for_notional": (("quote", "ticks"), ("size_decimals", "price_decimals")),
    "maker_band_ticks": (("oracle_price",), ("band_ppm",)),
    "maker_volatility_weight_ppm": (("previous_price", "oracle_price"), ("slope_ppm", "max_weight_ppm")),
    "maker_sample_score": (("bid_lots", "ask_lots", "oracle_price", "weight_ppm"), ("size_decimals", "price_decimals")),
    "maker_epoch_score": (("weighted_depth", "two_sided_samples", "samples"), ()),
    "maker_reward": (("pool", "score", "total_score"), ("max_share_ppm",)),
}
ENGINE_EXTRAS = {"notional", "undercollateralized_update_result", "is_valid_undercollateralized_update"}


def test_public_names_are_section_15_plus_engine_extras() -> None:
    assert sorted(risk_model.__all__) == sorted(set(SECTION_15_SIGNATURES) | set(ADDED_SIGNATURES) | ENGINE_EXTRAS)
    assert len(risk_model.__all__) == len(set(risk_model.__all__))
    for name in risk_model.__all__:
        assert callable(getattr(risk_model, name))


@pytest.mark.parametrize("name", sorted({**SECTION_15_SIGNATURES, **ADDED_SIGNATURES}))
def test_section_15_keyword_names(name: str) -> None:
    positional, keyword_only = {**SECTION_15_SIGNATURES, **ADDED_SIGNATURES}[name]
    parameters = inspect.signature(getattr(risk_model, name)).parameters.values()

    assert tuple(p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD) == positional
    assert tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY) == keyword_only
    assert all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in parameters)


# ---------------------------------------------------------------------------------------------
# Hand-written edge cases
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lots", "ticks", "size_decimals", "price_decimals", "expected"),
    [
        (3, 7, 0, 0, 21_000_000),  # exponent 6: exact
        (3, 7, 4, 2, 21),  # exponent 0: exact
        (15, 1, 4, 3, 1),  # exponent -1: 1.5 truncated to 1
        (-15, 1, 4, 3, -1),  # a short truncates toward zero: -1.5 -> -1, not -2
        (-1, 9, 4, 3, 0),  # -0.9 -> 0
        (2, 5, -2, 0, 1_000_000_000),  # negative size decimals: a lot is 100 units
    ],
)
def test_notional_truncates_toward_zero(
    lots: int, ticks: int, size_decimals: int, price_decimals: int, expected: int
) -> None:
    assert notional(lots, ticks, size_decimals=size_decimals, price_decimals=price_decimals) == expected


def test_requirements_round_up() -> None:
    # 10% of 1 micro-USDC is 0.1 -> IMR 1; 50% of that IMR is 0.5 -> MMR 1.
    assert margin_requirements(1, 100_000, 500_000) == (1, 1)
    # 5% of 999 = 49.95 -> 50; 60% of 50 = 30.
    assert margin_requirements(999, 50_000, 600_000) == (50, 30)


def test_open_interest_raises_only_the_initial_margin() -> None:
    imr, mmr = margin_requirements(
        1_000_000, 200_000, 500_000, open_interest_notional=2_000, oi_lower_cap=1_000, oi_upper_cap=2_000)
    assert (imr, mmr) == (1_000_000, 100_000)


def test_zero_maintenance_margin_is_never_liquidatable() -> None:
    assert is_liquidatable(-1, 0) is False
    assert is_liquidatable(0, 1) is True


def test_margin_requirements_reject_a_signed_notional() -> None:
    with pytest.raises(ValueError):
        margin_requirements(-1, 100_000, 500_000)


def test_bankruptcy_needs_a_maintenance_margin() -> None:
    with pytest.raises(ValueError):
        bankruptcy_amount(-5_000, 100, -500, 0)


def test_insurance_fee_is_capped_and_rounds_down() -> None:
    # Surplus 100 but the fee cap is floor(1_999 * 5_000 / 1e6) = floor(9.995) = 9.
    assert insurance_fund_delta(1_999, 1_899, 5_000) == 9
    # A shortfall is paid in full by the fund.
    assert insurance_fund_delta(1_000, 1_200, 5_000) == -200


def test_weak_account_may_not_raise_its_maintenance_even_when_its_ratio_improves():
    # old: TNC 100 < IMR 200, MMR 100 (ratio 1.0); new: TNC 300, MMR 150 (ratio 2.0): still refused,
    # because a weak account can only reduce risk (DESIGN.md section 3, dYdX rule 1)
    assert risk_model.undercollateralized_update_result(100, 200, 100, 300, 150) == "StillUndercollateralized"
    assert risk_model.is_valid_undercollateralized_update(100, 200, 100, 300, 100) is True   # same MMR, better TNC
    assert risk_model.is_valid_undercollateralized_update(100, 200, 100, 90, 100) is False   # worse ratio
