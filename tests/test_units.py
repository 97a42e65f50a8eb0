"""Decimal strings at the edges, integers inside: parsing is exact and never rounds silently."""
import pytest

from bastion.core.errors import ProtocolError
from bastion.core.timefmt import format_iso_ms, parse_iso_ms
from bastion.core.units import (
    fee_for, format_decimal, parse_decimal, parse_decimal_rounded, parse_ppm, ppm_of_down, ppm_of_up,
)


@pytest.mark.parametrize("text, decimals, expected", [
    ("1", 4, 10_000),            # whole number fast path
    ("0.0001", 4, 1),            # exactly one unit
    ("50000.5", 1, 500_005),
    ("1.50", 1, 15),             # trailing zeros beyond the grid are fine
    ("1000", -3, 1),             # negative decimals: one unit is 1000
    ("0", 6, 0),
])
def test_parse_decimal_exact(text, decimals, expected):
    assert parse_decimal(text, decimals, field="x") == expected


@pytest.mark.parametrize("text, decimals, code", [
    ("0.00001", 4, "too_many_decimals"),   # one digit beyond the grid
    ("1500", -3, "too_many_decimals"),     # not a multiple of the 1000 unit
    ("-1", 4, "negative_value"),
    ("1e5", 4, "invalid_decimal"),         # no exponents
    ("", 4, "invalid_decimal"),
    ("１", 4, "invalid_decimal"),          # full-width digit is not ASCII
    (5, 4, "invalid_decimal"),             # numbers must be strings at the edge
])
def test_parse_decimal_rejects(text, decimals, code):
    with pytest.raises(ProtocolError) as error:
        parse_decimal(text, decimals, field="x")
    assert error.value.code == code


def test_signed_parse_and_format_round_trip():
    assert parse_decimal("-40025", 6, field="x", signed=True) == -40_025_000_000
    assert format_decimal(-40_025_000_000, 6) == "-40025"
    assert format_decimal(4_975_500_000, 6) == "4975.5"
    assert format_decimal(7, -3) == "7000"
    assert format_decimal(-5, 6) == "-0.000005"


@pytest.mark.parametrize("text, expected", [
    ("45000.25", 450_002),   # exactly half: round to even (2)
    ("45000.35", 450_004),   # exactly half: round to even (4)
    ("45000.36", 450_004),
    ("45000.349", 450_003),
])
def test_oracle_prices_round_half_even_to_the_grid(text, expected):
    assert parse_decimal_rounded(text, 1, field="p") == expected


def test_ppm_rounding_favours_the_protocol():
    assert ppm_of_up(1, 100_000) == 1          # a requirement of 0.1 micro-USDC rounds up to 1
    assert ppm_of_down(19, 100_000) == 1       # a payout of 1.9 rounds down to 1
    assert fee_for(50_000_000_000, 500) == 25_000_000
    assert fee_for(3, 500) == 1                # fee rounds up
    assert fee_for(19_999, -100) == -1         # rebate of 1.9999 is paid as 1
    assert parse_ppm("0.05", field="r") == 50_000


def test_iso_times_round_trip_without_a_clock():
    assert parse_iso_ms("2026-01-01T00:00:00Z", field="t") == 1_767_225_600_000
    assert format_iso_ms(1_709_251_199_500) == "2024-02-29T23:59:59.500Z"
    for bad in ("2026-02-30T00:00:00Z", "2026-01-01 00:00:00", "2026-01-01T00:00:00+02:00"):
        with pytest.raises(ProtocolError):
            parse_iso_ms(bad, field="t")
