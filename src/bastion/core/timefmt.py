"""ISO-8601 UTC timestamps <-> integer milliseconds, without the clock modules.

The core never reads a clock: block time arrives as data. This module only converts the text
form used at the edges (``2026-01-01T00:00:01Z``, optional ``.mmm`` milliseconds) exactly, using
Howard Hinnant's days-from-civil algorithm.
"""
from __future__ import annotations

import re

from bastion.core.errors import ProtocolError

# matched with fullmatch (the whole string: ``$`` would also match before a final "\n"), ASCII digits
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?(?:Z|\+00:00)", re.ASCII)
_MS_PER_DAY = 86_400_000


def _days_from_civil(year: int, month: int, day: int) -> int:
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def parse_iso_ms(text: object, *, field: str) -> int:
    """``"2026-01-01T00:00:00Z"`` -> milliseconds since 1970-01-01T00:00:00Z (UTC only)."""
    match = _ISO.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ProtocolError("invalid_time", f"{field} must be an ISO-8601 UTC time like 2026-01-01T00:00:00Z",
                            field=field)
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    millis = int((match.group(7) or "0").ljust(3, "0"))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
        raise ProtocolError("invalid_time", f"{field} is not a valid date and time: {text!r}", field=field)
    days = _days_from_civil(year, month, day)
    if _civil_from_days(days) != (year, month, day):
        raise ProtocolError("invalid_time", f"{field} is not a valid date: {text!r}", field=field)
    return days * _MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis


def format_iso_ms(ms: int) -> str:
    """Milliseconds since the epoch -> ``YYYY-MM-DDTHH:MM:SS[.mmm]Z``."""
    days, rest = divmod(ms, _MS_PER_DAY)
    year, month, day = _civil_from_days(days)
    seconds, millis = divmod(rest, 1000)
    hour, seconds = divmod(seconds, 3600)
    minute, second = divmod(seconds, 60)
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"
