"""Calibration of the correlated jump diffusion on the hourly ``full_*`` series (DESIGN.md section 10).

The numbers are computed **once**, by this module run as a script, and stored as versioned data in
``bastion/stress/data/calibration.json`` (decimal strings); scenario generation only reads that file,
so a report never depends on floating-point work done at load time::

    python -m bastion.stress.calibration DATA_DIR > src/bastion/stress/data/calibration.json

``DATA_DIR`` holds the long hourly Binance series (an external input, not shipped with the repository).

Method, per asset (BTC, ETH, SOL), over every ``full_<ASSET>USDT-PERP_1h_*.csv`` in the folder:

1. hourly log returns of the close, only between candles exactly one hour apart (a file boundary or a
   gap in the data gives no return);
2. a robust scale ``s = 1.4826 * median(|r - median(r)|)``; a return with ``|r - median(r)| > 4 s`` is a
   **jump**;
3. ``jump_intensity_per_hour`` = jumps / returns; ``jump_mean`` and ``jump_std`` = mean and standard
   deviation of the jump returns; ``diffusion_volatility_hourly`` = standard deviation of the other
   returns; ``volatility_hourly`` = standard deviation of all returns (used to scale one asset's
   moves onto a market mapped to another, ``bastion.stress.scenarios.map_market``);
4. ``correlation``: Pearson correlation of the non-jump returns of each pair of assets over the hours
   that both have (the matrix is used for the diffusion and for the jump sizes).

Every figure is written with 9 decimals.
"""
from __future__ import annotations

import csv
import hashlib
import json
import sys
from functools import cache
from pathlib import Path

import numpy as np

ASSETS = ("BTC", "ETH", "SOL")
FORMAT = "bastion-stress-calibration/1"
JUMP_THRESHOLD = 4
ROBUST_SCALE = 1.4826
HOUR_S = 3600
DATA = Path(__file__).resolve().parent / "data"
CALIBRATION_FILE = DATA / "calibration.json"


def hourly_returns(path: Path) -> dict[str, float]:
    """{timestamp: log return from the previous hour's close}, for consecutive hours only."""
    from datetime import datetime

    returns: dict[str, float] = {}
    previous: tuple[float, float] | None = None
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            seconds = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00")).timestamp()
            close = float(row["close"])
            if previous is not None and seconds - previous[0] == HOUR_S:
                returns[row["timestamp"]] = float(np.log(close / previous[1]))
            previous = (seconds, close)
    return returns


def calibrate(folder: Path) -> dict:
    """The calibration document for the ``full_*`` series in ``folder`` (see the module docstring)."""
    series: dict[str, dict[str, float]] = {}
    sources: list[list[str]] = []
    for asset in ASSETS:
        merged: dict[str, float] = {}
        for path in sorted(folder.glob(f"full_{asset}USDT-PERP_1h_*.csv")):
            merged.update(hourly_returns(path))
            sources.append([path.name, hashlib.sha256(path.read_bytes()).hexdigest()])
        series[asset] = merged
    assets = {}
    calm: dict[str, dict[str, float]] = {}
    for asset in ASSETS:
        values = np.array(list(series[asset].values()))
        centre = np.median(values)
        scale = ROBUST_SCALE * np.median(np.abs(values - centre))
        is_jump = np.abs(values - centre) > JUMP_THRESHOLD * scale
        jumps, others = values[is_jump], values[~is_jump]
        assets[asset] = {
            "returns": int(values.size),
            "volatility_hourly": _decimal(values.std()),
            "diffusion_volatility_hourly": _decimal(others.std()),
            "jump_intensity_per_hour": _decimal(jumps.size / values.size),
            "jump_mean": _decimal(jumps.mean()),
            "jump_std": _decimal(jumps.std()),
        }
        calm[asset] = {t: r for (t, r), j in zip(series[asset].items(), is_jump) if not j}
    correlation = []
    for a in ASSETS:
        row = []
        for b in ASSETS:
            common = sorted(set(calm[a]) & set(calm[b]))
            x = np.array([calm[a][t] for t in common])
            y = np.array([calm[b][t] for t in common])
            row.append(_decimal(np.corrcoef(x, y)[0, 1]) if a != b else "1")
        correlation.append(row)
    return {"format": FORMAT, "method": f"hourly log returns; jump if |r - median| > {JUMP_THRESHOLD} x "
                                       f"{ROBUST_SCALE} x MAD (bastion.stress.calibration)",
            "assets": assets, "correlation": {"assets": list(ASSETS), "matrix": correlation}, "sources": sources}


def _decimal(value: float) -> str:
    return f"{float(value):.9f}"


@cache
def load_calibration(path: Path = CALIBRATION_FILE) -> dict:
    """The stored calibration document (checked to be of this format; cached: do not mutate it)."""
    document = json.loads(path.read_text())
    if document.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} document")
    return document


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit("usage: python -m bastion.stress.calibration DATA_FOLDER > calibration.json")
    print(json.dumps(calibrate(Path(argv[1])), indent=1, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv)
