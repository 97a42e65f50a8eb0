"""Units and the few cross-unit conversions, each with an explicit rounding direction.

- collateral: integer micro-USDC (``USDC = 1_000_000``);
- sizes: integer lots of ``10**-size_decimals`` base asset;
- prices: integer ticks of ``10**-price_decimals`` USDC per base asset;
- rates and fractions: integer parts per million (``PPM = 1_000_000``);
- time: integer milliseconds since the Unix epoch.

Decimal strings are parsed and formatted here and nowhere else; no float or ``Decimal`` is used.
"""
from __future__ import annotations

import re
from typing import Final

from bastion.core.errors import ProtocolError

USDC_DECIMALS: Final = 6
USDC: Final = 10**USDC_DECIMALS
PPM: Final = 1_000_000
PPM_DECIMALS: Final = 6
MS_PER_S: Final = 1_000

# Bounds of every decimal string the protocol reads (``check_decimal_text``): generous for any real
# amount (10**30 is far above every supply, price or size on any grid) yet small enough that no
# parse, multiplication or comparison of one costs more than a few machine words. Checked before any
# ``int()``, so a string of thousands of digits is refused with a code instead of reaching Python's
# integer-string conversion limit.
MAX_INTEGER_DIGITS: Final = 30
MAX_FRACTION_DIGITS: Final = 30
MAX_DECIMAL_CHARS: Final = 1 + MAX_INTEGER_DIGITS + 1 + MAX_FRACTION_DIGITS  # sign, digits, point, digits

# the whole string (``fullmatch``), ASCII digits only: ``$`` would also match before a final "\n"
_DECIMAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")


def check_decimal_text(text: object, *, field: str) -> re.Match[str]:
    """The one syntax check of a decimal string: ``-?digits(.digits)?`` in ASCII, at most
    ``MAX_INTEGER_DIGITS`` digits before the point and ``MAX_FRACTION_DIGITS`` after it.

    Raises ``invalid_decimal`` (not a decimal string) or ``decimal_too_long``; returns the match
    (groups: sign, integer digits, fraction digits or None). Message decoding calls it on every
    decimal field at intake, and every parser below calls it again before converting.
    """
    if not isinstance(text, str):
        raise ProtocolError("invalid_decimal", f"{field} must be a decimal string, got {_short(text)}", field=field)
    if len(text) > MAX_DECIMAL_CHARS:
        raise ProtocolError("decimal_too_long", f"{field} has {len(text)} characters; a decimal has at most "
                            f"{MAX_INTEGER_DIGITS} digits before the point and {MAX_FRACTION_DIGITS} after",
                            field=field)
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise ProtocolError("invalid_decimal", f"{field} is not a decimal number: {_short(text)}", field=field)
    frac = match.group(3)
    if len(match.group(2)) > MAX_INTEGER_DIGITS or (frac is not None and len(frac) > MAX_FRACTION_DIGITS):
        raise ProtocolError("decimal_too_long", f"{field} has more than {MAX_INTEGER_DIGITS} digits before the "
                            f"point or {MAX_FRACTION_DIGITS} after it", field=field)
    return match


def _short(value: object) -> str:
    """A value for an error message, cut to a readable length (never the whole of a huge input)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_decimal(text: object, decimals: int, *, field: str, signed: bool = False) -> int:
    """Parse a decimal string into an integer count of ``10**-decimals`` units, exactly.

    Rejects (``invalid_decimal``, ``decimal_too_long``: ``check_decimal_text``) anything that is not
    a bounded plain decimal string, a negative value unless ``signed``, and (``too_many_decimals``)
    any digit beyond the grid: inputs are never silently rounded. ``decimals`` may be negative (one
    unit is then ``10**-decimals``, a power of ten above one), in which case the value must be a
    multiple of that unit.
    """
    if (type(text) is str and decimals >= 0 and len(text) <= MAX_INTEGER_DIGITS and text.isascii()
            and text.isdigit()):
        scale: int = 10**decimals
        return int(text) * scale  # fast path: a plain whole number
    match = check_decimal_text(text, field=field)
    sign, whole, frac = match.group(1), match.group(2), (match.group(3) or "").rstrip("0")
    if sign and not signed:
        raise ProtocolError("negative_value", f"{field} must not be negative: {text!r}", field=field)
    if decimals >= 0:
        if len(frac) > decimals:
            raise ProtocolError(
                "too_many_decimals", f"{field} {text!r} has more than {decimals} decimals", field=field)
        value = int(whole + frac.ljust(decimals, "0"))
    else:
        unit = 10 ** (-decimals)
        raw = int(whole)
        if frac or raw % unit:
            raise ProtocolError(
                "too_many_decimals", f"{field} {text!r} must be a multiple of {unit}", field=field)
        value = raw // unit
    return -value if sign else value


def parse_decimal_rounded(text: object, decimals: int, *, field: str) -> int:
    """Parse a positive decimal string and round it half-to-even onto the ``10**-decimals`` grid.

    Used only for oracle submissions (DESIGN.md section 2); the raw string is recorded by the caller.
    """
    match = check_decimal_text(text, field=field)
    if match.group(1):
        raise ProtocolError("invalid_decimal", f"{field} is not a positive decimal number: {text!r}", field=field)
    whole, frac = match.group(2), match.group(3) or ""
    numerator = int(whole + frac)
    denominator: int = 10 ** len(frac)
    if decimals >= 0:
        numerator *= 10**decimals
    else:
        denominator *= 10 ** (-decimals)
    quotient, remainder = divmod(numerator, denominator)
    if 2 * remainder > denominator or (2 * remainder == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def parse_digits(text: object, *, field: str, max_digits: int = MAX_INTEGER_DIGITS) -> int:
    """A non-negative whole number written in 1..``max_digits`` ASCII digits (``invalid_field``
    otherwise); for digit strings inside other syntax (a tier number in a parameter name, a fraction)."""
    if not isinstance(text, str) or not 1 <= len(text) <= max_digits or not text.isascii() or not text.isdigit():
        raise ProtocolError("invalid_field", f"{field} must be 1 to {max_digits} ASCII digits, got {_short(text)}",
                            field=field)
    return int(text)


def format_decimal(value: int, decimals: int) -> str:
    """Format an integer count of ``10**-decimals`` units as the shortest exact decimal string."""
    if decimals <= 0:
        return str(value * 10 ** (-decimals))
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**decimals)
    frac_text = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{sign}{whole}.{frac_text}" if frac_text else f"{sign}{whole}"


def parse_usdc(text: object, *, field: str, signed: bool = False) -> int:
    """A USDC decimal string to micro-USDC (``parse_decimal`` with 6 decimals and its refusals)."""
    return parse_decimal(text, USDC_DECIMALS, field=field, signed=signed)


def format_usdc(micro_usdc: int) -> str:
    """Micro-USDC to the shortest exact decimal string (1_500_000 -> "1.5")."""
    return format_decimal(micro_usdc, USDC_DECIMALS)


def parse_ppm(text: object, *, field: str, signed: bool = False) -> int:
    """A ratio as a decimal string ("0.05") to parts per million (50_000)."""
    return parse_decimal(text, PPM_DECIMALS, field=field, signed=signed)


def format_ppm(ppm: int) -> str:
    """Parts per million to the shortest exact decimal ratio (50_000 -> "0.05")."""
    return format_decimal(ppm, PPM_DECIMALS)


def ppm_of_up(amount: int, ppm: int) -> int:
    """``ceil(amount * ppm / 1e6)`` for a non-negative amount and rate: charges round up."""
    return -((-amount * ppm) // PPM)


def ppm_of_down(amount: int, ppm: int) -> int:
    """``floor(amount * ppm / 1e6)`` for a non-negative amount and rate: payouts round down."""
    return (amount * ppm) // PPM


def fee_for(notional_abs: int, fee_ppm: int) -> int:
    """The fee on a fill of absolute notional ``notional_abs``, in favour of the protocol.

    A positive fee rounds up; a negative fee (a maker rebate) is paid rounded down, so the
    result is ``-floor(notional * |fee| / 1e6)``.
    """
    if fee_ppm >= 0:
        return ppm_of_up(notional_abs, fee_ppm)
    return -ppm_of_down(notional_abs, -fee_ppm)
