"""Price paths from OHLC candle files: any resolution, parsed exactly, checked line by line.

A price-path file is CSV in one of two layouts (docs/stress.md, "Any price path"):

* **with a header**: columns ``timestamp``, ``open``, ``high``, ``low``, ``close`` (names
  case-insensitive; ``time``, ``date``, ``open_time`` are accepted for ``timestamp``; other columns,
  such as ``volume``, are ignored). A timestamp is ISO-8601 (``2025-10-10T21:05:00Z``; no zone means
  UTC) or a Unix time in seconds, milliseconds or microseconds (told apart by magnitude: below
  10^11 seconds, below 10^14 milliseconds, else microseconds);
* **without a header**, the common exchange kline layout: open time (Unix ms; microseconds are
  recognised by magnitude), open, high, low, close, then anything (volume, close time, ...).

Prices are decimal strings read exactly (``decimal.Decimal`` of the text, never a float) and must be
positive with ``low <= open, close <= high``. Timestamps must increase; the **resolution** is the
first interval, and every later interval must be a whole multiple of it (a gap of missing candles
is accepted, a candle of another resolution is not). The resolution must be a whole number of
seconds divisible by 4 (each candle becomes four oracle steps, ``paths.py``). Every error is a
``ProtocolError("invalid_price_path", ...)`` whose message names the file, the line and the column.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from datetime import datetime, UTC
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Final

from bastion.core.errors import ProtocolError

STEPS_PER_CANDLE: Final = 4
TIMESTAMP_NAMES: Final = ("timestamp", "time", "date", "open_time")
PRICE_COLUMNS: Final = ("open", "high", "low", "close")
KLINE_COLUMNS: Final = ("open_time", "open", "high", "low", "close")  # positions 0-4 of a kline row
_SECONDS_BELOW: Final = 10**11
_MILLIS_BELOW: Final = 10**14


@dataclass(frozen=True)
class Candle:
    time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


@dataclass(frozen=True)
class CandleSeries:
    """The candles of one file, in time order, with the file's SHA-256 and its resolution."""

    file: str
    sha256: str
    interval_ms: int
    candles: tuple[Candle, ...]

    @property
    def step_s(self) -> int:
        """Seconds per oracle step (a quarter of a candle)."""
        return self.interval_ms // 1_000 // STEPS_PER_CANDLE


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes; a missing file is an ``invalid_price_path`` error."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as error:
        raise _error(str(path), None, None, f"cannot be read ({error.strerror})") from None


def load_candles(path: str | Path, sha256: str | None = None) -> CandleSeries:
    """The candles of ``path``; with ``sha256``, the file must have that digest (a scenario set
    commits to its files' contents)."""
    digest = file_sha256(path)
    if sha256 is not None and sha256 != digest:
        raise _error(str(path), None, None, f"has SHA-256 {digest}, the scenario set names {sha256}")
    return _parse_file(str(path), digest)


@lru_cache(maxsize=64)
def _parse_file(path: str, digest: str) -> CandleSeries:
    """Parsed once per (file, contents): sweeps build the path of every scenario from it."""
    text = Path(path).read_bytes().decode("utf-8-sig", errors="replace")
    rows = [(number, row) for number, row in enumerate(csv.reader(text.splitlines()), start=1)
            if row and any(cell.strip() for cell in row)]
    if not rows:
        raise _error(path, None, None, "is empty: no candles")
    first_number, first = rows[0]
    if _is_number(first[0]):
        columns = {name: i for i, name in enumerate(KLINE_COLUMNS)}
        names: tuple[str, ...] = KLINE_COLUMNS
        data = rows
    else:
        header = [cell.strip().lower() for cell in first]
        columns = {}
        for name in TIMESTAMP_NAMES:
            if name in header:
                columns["open_time"] = header.index(name)
                break
        else:
            raise _error(path, first_number, "timestamp", f"missing column (header has {', '.join(header)})")
        for name in PRICE_COLUMNS:
            if name not in header:
                raise _error(path, first_number, name, f"missing column (header has {', '.join(header)})")
            columns[name] = header.index(name)
        names = tuple(header)
        data = rows[1:]
    if not data:
        raise _error(path, None, None, "is empty: a header and no candles")
    width = max(columns.values()) + 1
    candles: list[Candle] = []
    interval = 0
    for number, row in data:
        if len(row) < width:
            missing = next(name for name, i in columns.items() if i >= len(row))
            raise _error(path, number, _label(names, columns, missing), f"missing value (the row has {len(row)} "
                                                                         f"fields, {width} needed)")
        time_ms = _timestamp(row[columns["open_time"]], path, number, _label(names, columns, "open_time"))
        o, h, low, c = (_price(row[columns[name]], path, number, _label(names, columns, name))
                        for name in PRICE_COLUMNS)
        if low > h:
            raise _error(path, number, _label(names, columns, "low"), f"low {low} is above high {h}")
        for name, value in (("open", o), ("close", c)):
            if not low <= value <= h:
                raise _error(path, number, _label(names, columns, name),
                             f"{name} {value} is outside the candle's low {low} and high {h}")
        if candles:
            step = time_ms - candles[-1].time_ms
            label = _label(names, columns, "open_time")
            if step <= 0:
                raise _error(path, number, label, "timestamps must increase (this one is not after the previous)")
            if interval == 0:
                interval = step
            elif step % interval:
                raise _error(path, number, label, f"mixed resolutions: {step} ms after the previous candle, "
                                                  f"not a multiple of the file's {interval} ms")
        candles.append(Candle(time_ms, o, h, low, c))
    if interval == 0:
        raise _error(path, None, None, "has one candle: at least two are needed to know its resolution")
    if interval % (1_000 * STEPS_PER_CANDLE):
        raise _error(path, None, None, f"has {interval} ms candles: the resolution must be a whole number of "
                                       f"seconds divisible by {STEPS_PER_CANDLE}")
    return CandleSeries(path, digest, interval, tuple(candles))


def _label(names: tuple[str, ...], columns: dict[str, int], name: str) -> str:
    """The column as the file names it (its header), or its kline position."""
    index = columns[name]
    return names[index] if names is not KLINE_COLUMNS else f"{index + 1} ({name})"


def _is_number(text: str) -> bool:
    try:
        Decimal(text.strip())
        return True
    except InvalidOperation:
        return False


def _price(text: str, path: str, line: int, column: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise _error(path, line, column, f"{text!r} is not a decimal number") from None
    if not value.is_finite() or value <= 0:
        raise _error(path, line, column, f"{text!r} is not a positive price")
    return value


def _timestamp(text: str, path: str, line: int, column: str) -> int:
    """Milliseconds since the Unix epoch."""
    raw = text.strip()
    try:
        number = Decimal(raw)
    except InvalidOperation:
        number = None
    if number is not None:
        if not number.is_finite() or number < 0 or number != number.to_integral_value():
            raise _error(path, line, column, f"{raw!r} is not a whole Unix time")
        value = int(number)
        if value < _SECONDS_BELOW:
            return value * 1_000
        if value < _MILLIS_BELOW:
            return value
        if value % 1_000:
            raise _error(path, line, column, f"{raw!r}: microsecond times must be whole milliseconds")
        return value // 1_000
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _error(path, line, column, f"{raw!r} is neither ISO-8601 nor a Unix time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    if delta.microseconds % 1_000:
        raise _error(path, line, column, f"{raw!r}: times must be whole milliseconds")
    return (delta.days * 86_400 + delta.seconds) * 1_000 + delta.microseconds // 1_000


def _error(path: str, line: int | None, column: str | None, message: str) -> ProtocolError:
    where = path if line is None else f"{path} line {line}" + ("" if column is None else f" column {column}")
    field = path if line is None else f"{path}:{line}" + ("" if column is None else f":{column}")
    return ProtocolError("invalid_price_path", f"{where}: {message}", field=field)


def candle_points(candle: Candle, low_first: bool) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """The four oracle steps of a candle: open, one extreme, the other, close; the low first when
    ``low_first`` (adverse to longs), else the high first (adverse to shorts)."""
    first, second = (candle.low, candle.high) if low_first else (candle.high, candle.low)
    return candle.open, first, second, candle.close
