"""The crash windows shipped in ``data/history/`` (Binance candles copied from an external data set; sources and
commits in ``data/history/SOURCES.tsv``), as price-ratio paths.

A window is every file ``crash_<date>_<SYMBOL>_<resolution>[_mark].csv`` of one date. Each series is
brought to hourly candles (15-minute candles are merged: first open, highest high, lowest low, last
close), the hours that every series of the window has are kept, and each candle becomes four steps
of 15 minutes, as in ``tests/test_crash_replay.py``: open, the extreme against the candle's
direction first (a down candle visits its high before its low), the other extreme, close. The path
of an asset is each point divided by the window's first open, so step 0 is the current oracle price.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from typing import Final

import numpy as np

from bastion.stress.calibration import DATA
from bastion.stress.scenarios import base_asset

HISTORY: Final = DATA / "history"
CANDLE_S: Final = 3_600
STEPS_PER_CANDLE: Final = 4


@dataclass(frozen=True)
class CrashWindow:
    """One crash window: the first candle's open time, and per asset the price ratio at every step."""

    date: str
    start: str
    step_s: int
    ratios: dict[str, np.ndarray]          # asset -> float64 array of STEPS_PER_CANDLE * hours points

    @property
    def steps(self) -> int:
        return len(next(iter(self.ratios.values()))) - 1


@cache
def load_window(date: str) -> CrashWindow:
    """The window of ``date`` (``"2022-11-08"``); raises ``KeyError`` for an unknown date."""
    hourly: dict[str, dict[str, tuple[float, float, float, float]]] = {}
    for path in sorted(HISTORY.glob(f"crash_{date}_*.csv")):
        if "funding" in path.name:
            continue
        hourly[base_asset(path.stem.split("_")[2])] = _hourly_candles(path)
    if not hourly:
        raise KeyError(f"no crash window {date}")
    hours = sorted(set.intersection(*(set(candles) for candles in hourly.values())))
    ratios = {}
    for asset, candles in sorted(hourly.items()):
        points = []
        for hour in hours:
            open_, high, low, close = candles[hour]
            points += [open_, low, high, close] if close >= open_ else [open_, high, low, close]
        series = np.array(points, dtype=np.float64)
        ratios[asset] = series / series[0]
    return CrashWindow(date=date, start=hours[0], step_s=CANDLE_S // STEPS_PER_CANDLE, ratios=ratios)


def _hourly_candles(path) -> dict[str, tuple[float, float, float, float]]:
    """{hour "YYYY-MM-DDTHH": (open, high, low, close)}, merging shorter candles of the same hour."""
    candles: dict[str, tuple[float, float, float, float]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            hour = row["timestamp"][:13]
            o, h, low, c = (float(row[k]) for k in ("open", "high", "low", "close"))
            if hour in candles:
                first = candles[hour]
                candles[hour] = (first[0], max(first[1], h), min(first[2], low), c)
            else:
                candles[hour] = (o, h, low, c)
    return candles
