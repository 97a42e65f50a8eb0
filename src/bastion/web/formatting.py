"""Numbers for people, at the edge: the Jinja filters of the web pages.

The API and the read models give exact decimal strings on each market's grid ("50012.5",
"-0.822266"); a page shows them with thousands separators, a unit, and ratios as percentages
("50,012.5", "-82.23%"). The filters work on those strings with ``decimal.Decimal`` (exact, no
float) and never change a value beyond the rounding they name; ``None`` and "" show as "—".

    group("1234567.5")       -> "1,234,567.5"   the string's own digits, grouped
    usd("1234.5")            -> "$1,234.50"     two places, half-even ("-" before the "$")
    usd_compact("1234567")   -> "$1.23M"        for statistics (K, M, B)
    fixed("2.388429", 1)     -> "2.4"           rounded half-even, grouped
    pct("0.05")              -> "5%"            a ratio as a percentage, at most ``places`` places
    signed_pct("0.0123")     -> "+1.23%"        with its sign, for changes
    duration(3725)           -> "1h 02m 05s"    seconds as a countdown
    clock(ms), moment(ms)    -> "14:03:07", "2026-12-07 14:03:07"   block times (UTC) instead of heights
    ago(ms, now_ms)          -> "3 min ago", "in 45 s"   a block time against the head's (never the wall clock)
    bgov("12500.5")          -> "12,500.5 BGOV"
    words("liquidation_incomplete") -> "liquidation incomplete"
"""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from jinja2 import Environment

from bastion.core.timefmt import format_iso_ms

__all__ = ["DASH", "ago", "bgov", "clock", "duration", "fixed", "group", "install_filters", "moment", "pct",
           "signed_pct", "usd", "usd_compact", "words"]

DASH = "—"


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _group_text(text: str) -> str:
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    grouped = f"{int(whole):,}" if whole else "0"
    return sign + grouped + ("." + fraction if fraction else "")


def group(value: Any) -> str:
    """The decimal string as it is, with its whole digits grouped by thousands."""
    number = _decimal(value)
    return DASH if number is None else _group_text(str(value))


def _fixed(number: Decimal, places: int) -> str:
    return format(number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN), "f")


def fixed(value: Any, places: int = 2) -> str:
    """A decimal string rounded (half-even) to ``places`` decimals, grouped: "2.388429" -> "2.39"."""
    number = _decimal(value)
    return DASH if number is None else _group_text(_fixed(number, places))


def usd(value: Any, places: int = 2) -> str:
    """An amount of USDC with a dollar sign and ``places`` decimals (half-even)."""
    number = _decimal(value)
    if number is None:
        return DASH
    text = _group_text(_fixed(abs(number), places))
    return ("-$" if number < 0 and text.strip("0.,") else "$") + text


def usd_compact(value: Any) -> str:
    """A large amount of USDC in thousands, millions or billions with two decimals."""
    number = _decimal(value)
    if number is None:
        return DASH
    for scale, suffix in ((Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "K")):
        if abs(number) >= scale:
            return usd(number / scale) + suffix
    return usd(number)


def pct(value: Any, places: int = 2) -> str:
    """A ratio (``format_ppm``'s "0.05") as a percentage with at most ``places`` decimals, trailing zeros cut."""
    number = _decimal(value)
    if number is None:
        return DASH
    text = _fixed(number * 100, places)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return ("0" if text in ("-0", "") else text) + "%"


def signed_pct(value: Any, places: int = 2) -> str:
    """``pct`` with a "+" before a positive change."""
    text = pct(value, places)
    return "+" + text if text not in (DASH, "0%") and not text.startswith("-") else text


def duration(seconds: Any) -> str:
    """Whole seconds as "1h 02m 05s", "2m 05s" or "5s"."""
    if seconds is None:
        return DASH
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def moment(ms: Any) -> str:
    """A block time in milliseconds as "YYYY-MM-DD HH:MM:SS" (UTC)."""
    if ms is None or isinstance(ms, bool) or not isinstance(ms, int):
        return DASH
    return format_iso_ms(ms)[:19].replace("T", " ")


def clock(ms: Any) -> str:
    """A block time in milliseconds as "HH:MM:SS" (UTC), for today's trades."""
    text = moment(ms)
    return text if text == DASH else text[11:]


def ago(ms: Any, now_ms: Any) -> str:
    """How far block time ``ms`` lies from ``now_ms`` (the head's block time), in its largest whole
    unit: "just now" within a second, "45 s ago", "3 min ago", "2 h ago", "4 d ago", or "in 3 min"."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (ms, now_ms)):
        return DASH
    seconds = (now_ms - ms) // 1_000 if ms <= now_ms else -((ms - now_ms) // 1_000)
    span = abs(seconds)
    if span < 1:
        return "just now"
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")):
        if span >= size:
            text = f"{span // size} {unit}"
            break
    return f"{text} ago" if seconds > 0 else f"in {text}"


def bgov(value: Any) -> str:
    """An amount of BGOV (a decimal string), grouped, with its unit."""
    text = group(value)
    return text if text == DASH else text + " BGOV"


def words(value: Any) -> str:
    """A snake_case name (an event type, a status, a reason code) as words."""
    return DASH if value is None or value == "" else str(value).replace("_", " ")


def install_filters(environment: Environment) -> None:
    """Register the filters under their names on a Jinja environment."""
    environment.filters.update({"group": group, "usd": usd, "usd_compact": usd_compact, "pct": pct,
                                "signed_pct": signed_pct, "duration": duration, "clock": clock,
                                "moment": moment, "ago": ago, "fixed": fixed, "bgov": bgov, "words": words})
