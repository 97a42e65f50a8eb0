"""Scenario sets: versioned, hashed data that says which price paths a stress run applies.

A **scenario set** is a JSON document (``bastion-stress-scenarios/1``)::

    {"format": "bastion-stress-scenarios/1", "name": "gate-default", "version": 1, "seed": 20260101,
     "engine": {"block_ms": 1000, "spread": "0.001", "baseline_depth": "2000000", "max_slippage": "0.5"},
     "mapping": {"tier_proxies": [[0, "BTC", "1"], ...], "default_proxy": ["SOL", "2"]},
     "scenarios": [{"kind": "shock", "name": "down-30", "move": "-0.3"}, ...]}

Numbers are decimal strings at this edge (DESIGN.md section 2): ratios become ppm, USDC amounts
micro-USDC. ``parse_scenario_set`` validates a document into a ``ScenarioSet``; its
``document()`` is the normalised form and ``scenario_set_hash`` the SHA-256 of that form's canonical
bytes, so two files that differ only in layout or in how a number is written have the same hash.

Scenario kinds (one frozen dataclass each; ``bastion.stress.paths`` turns them into oracle prices):

===================== ==========================================================================
``historical``        a crash window of ``data/history/`` (``window`` = its date), optionally mirrored
``shock``             every market moves at once by ``move`` (times its beta when ``correlated``)
``thin_book``         a shock with the liquidation depth cut by ``depth_cut`` (at least 90%)
``jump_diffusion``    ``count`` correlated jump-diffusion paths (one seeded draw each)
``oracle_manipulation`` one market pumped then dumped (Mango Markets, October 2022)
``oracle_outage``     the oracle drifts, goes stale for ``outage_steps`` (no liquidations), then jumps
``path``              candle files (``candles.py``), one per market, each candle four steps; ``order``
                      ``both`` (default) gives two scenarios, the low of every candle first and the high first
===================== ==========================================================================

A ``path`` entry names its files as ``{"market": "BTC-USD", "file": "btc.csv", "sha256": "..."}``:
``file`` is resolved against the scenario set's directory (``load_scenario_set``), the digest is
optional on input (checked when given) and always written in the normalised document, so the set's
hash commits to the candles' contents (not to where the file lies).

Every kind also takes ``depth_cut`` (share of book depth removed; default 0) and ``step_s`` (the
duration of one step; default 60, historical replays use their candles: four steps per candle).

**The mapping rule** (``map_market``) says whose moves a market follows: the asset named by the
market's ticker (``BTC-USD`` -> BTC) when it is calibrated, with volatility scale 1; otherwise its
tier's proxy asset from the set's ``mapping`` (default: large-cap -> BTC, mid-cap -> ETH, small-cap
-> SOL, long-tail -> SOL x1.5, isolated -> SOL x2, safety -> BTC), with that entry's volatility
multiplier. If a historical window has no series for the chosen asset, the window's asset whose
calibrated hourly volatility is closest to it is used instead (ties: the more volatile) and the
scale is multiplied by ``volatility(chosen) / volatility(used)``. Scales are ppm, rounded up (more
volatility is the conservative side). A market's *beta* (for correlated shocks and outages) is its
scale times ``volatility(asset) / volatility(BTC)``, in ppm, rounded up.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any, Final

from bastion.core.errors import ProtocolError
from bastion.core.snapshot import canonical_bytes
from bastion.core.units import PPM, format_ppm, format_usdc, parse_ppm, parse_usdc
from bastion.stress.calibration import DATA, load_calibration
from bastion.stress.candles import load_candles

FORMAT: Final = "bastion-stress-scenarios/1"
DEFAULT_SET_FILE: Final = DATA / "gate_default.json"
REFERENCE_ASSET: Final = "BTC"
MIN_THIN_BOOK_CUT_PPM: Final = 900_000


# --------------------------------------------------------------------------------------- specs
@dataclass(frozen=True, kw_only=True)
class Common:
    """Fields every scenario kind has: its name, the book depth removed and the step duration."""

    name: str
    depth_cut_ppm: int = 0
    step_s: int = 60


@dataclass(frozen=True, kw_only=True)
class HistoricalReplay(Common):
    window: str                            # a crash date of data/history/, e.g. "2020-03-12"
    mirror: bool = False                   # replay the moves upside down (a squeeze of the shorts)
    step_s: int = 0                        # set by the data: a quarter of the candle


@dataclass(frozen=True, kw_only=True)
class Shock(Common):
    move_ppm: int                          # signed: -300_000 is a 30% fall
    correlated: bool = True                # times each market's beta; else the same move everywhere
    steps: int = 1


@dataclass(frozen=True, kw_only=True)
class ThinBook(Shock):
    depth_cut_ppm: int = MIN_THIN_BOOK_CUT_PPM


@dataclass(frozen=True, kw_only=True)
class JumpDiffusion(Common):
    count: int                             # how many paths (draws) this entry stands for
    steps: int = 1440
    volatility_multiplier_ppm: int = PPM   # scales the diffusion and the jump sizes
    jump_intensity_multiplier_ppm: int = PPM


@dataclass(frozen=True, kw_only=True)
class OracleManipulation(Common):
    market: str | None = None              # None: the market of the highest tier id holding open interest
    pump_ppm: int = 1_000_000              # +100%
    pump_steps: int = 10
    hold_steps: int = 10
    dump_ppm: int = -500_000               # final price relative to the start
    dump_steps: int = 5


@dataclass(frozen=True, kw_only=True)
class OracleOutage(Common):
    move_ppm: int                          # total move of the true price (times each market's beta)
    drift_steps: int = 10                  # the oracle follows the true price for these steps
    outage_steps: int = 30                 # then shows nothing new (stale: no liquidations)


PATH_ORDERS: Final = ("both", "low_first", "high_first")
PATH_PRICES: Final = ("relative", "absolute")


@dataclass(frozen=True)
class PathFile:
    """One candle file of a ``path`` scenario: the market it drives, the file as the set names it,
    its SHA-256, and where it was found (not part of the document)."""

    market: str
    file: str
    sha256: str
    location: str = field(default="", compare=False)


@dataclass(frozen=True, kw_only=True)
class PricePath(Common):
    """Candle files, one per market (``candles.py``); markets without a file keep their oracle price.

    ``order``: ``low_first`` expands every candle as open, low, high, close (adverse to longs),
    ``high_first`` as open, high, low, close (adverse to shorts), ``both`` gives one scenario of each.
    ``prices``: ``relative`` (default) moves each market by the file's ratios to its first open, from
    the snapshot's oracle price; ``absolute`` takes the file's prices as the market's oracle prices."""

    files: tuple[PathFile, ...]
    order: str = "both"
    prices: str = "relative"
    step_s: int = 0                        # set by the data: a quarter of the candle


Spec = HistoricalReplay | Shock | ThinBook | JumpDiffusion | OracleManipulation | OracleOutage | PricePath
KINDS: Final[dict[str, type]] = {
    "historical": HistoricalReplay, "shock": Shock, "thin_book": ThinBook, "jump_diffusion": JumpDiffusion,
    "oracle_manipulation": OracleManipulation, "oracle_outage": OracleOutage, "path": PricePath,
}
KIND_NAMES: Final = {cls: name for name, cls in KINDS.items()}
# JSON field -> (dataclass field, parser, formatter) for the fields that are not plain ints, strings or bools
_RATIO_FIELDS: Final = {"depth_cut": "depth_cut_ppm", "move": "move_ppm", "pump": "pump_ppm", "dump": "dump_ppm",
                        "volatility_multiplier": "volatility_multiplier_ppm",
                        "jump_intensity_multiplier": "jump_intensity_multiplier_ppm"}


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    """How liquidations are modelled (``bastion.stress.engine``)."""

    block_ms: int = 1_000                  # block time: the per-block liquidation limits apply per block
    spread_ppm: int = 1_000                # price concession of any liquidation fill (half-spread)
    baseline_depth_usdc: int = 2_000_000_000_000  # book depth (micro-USDC per 1% of price) assumed at least
    max_slippage_ppm: int = 500_000        # a liquidation never fills further than this from the oracle


@dataclass(frozen=True, kw_only=True)
class MappingRule:
    """Tier id -> (proxy asset, volatility multiplier ppm) for markets whose base asset is not calibrated."""

    tier_proxies: tuple[tuple[int, str, int], ...] = (
        (0, "BTC", PPM), (1, "ETH", PPM), (2, "SOL", PPM), (3, "SOL", 1_500_000), (4, "SOL", 2_000_000),
        (5, "BTC", PPM))
    default_proxy: tuple[str, int] = ("SOL", 2_000_000)


@dataclass(frozen=True)
class Scenario:
    """One scenario of an expanded set: its position in the set (which seeds its draw), a unique name,
    its spec, and for jump diffusion the draw number within its entry."""

    index: int
    name: str
    spec: Spec
    draw: int = 0

    @property
    def kind(self) -> str:
        return KIND_NAMES[type(self.spec)]


@dataclass(frozen=True, kw_only=True)
class ScenarioSet:
    name: str
    version: int
    seed: int
    engine: EngineSettings = field(default_factory=EngineSettings)
    mapping: MappingRule = field(default_factory=MappingRule)
    specs: tuple[Spec, ...] = ()

    def scenarios(self) -> list[Scenario]:
        """Every scenario, in order; a ``jump_diffusion`` entry of ``count`` n gives n of them."""
        out: list[Scenario] = []
        for spec in self.specs:
            if isinstance(spec, JumpDiffusion):
                first = len(out)
                out.extend(Scenario(first + i, f"{spec.name}#{i}", spec, i) for i in range(spec.count))
            elif isinstance(spec, PricePath):
                # draw 0: the low of every candle first, 1: the high first
                orders = [0, 1] if spec.order == "both" else [PATH_ORDERS.index(spec.order) - 1]
                for draw in orders:
                    name = spec.name if spec.order != "both" else f"{spec.name}:{('low', 'high')[draw]}-first"
                    out.append(Scenario(len(out), name, spec, draw))
            else:
                out.append(Scenario(len(out), spec.name, spec))
        return out

    def document(self) -> dict[str, Any]:
        """The normalised JSON document (what the hash commits to)."""
        e, m = self.engine, self.mapping
        return {
            "format": FORMAT, "name": self.name, "version": self.version, "seed": self.seed,
            "engine": {"block_ms": e.block_ms, "spread": format_ppm(e.spread_ppm),
                       "baseline_depth": format_usdc(e.baseline_depth_usdc),
                       "max_slippage": format_ppm(e.max_slippage_ppm)},
            "mapping": {"tier_proxies": [[tier, asset, format_ppm(mult)] for tier, asset, mult in m.tier_proxies],
                        "default_proxy": [m.default_proxy[0], format_ppm(m.default_proxy[1])]},
            "scenarios": [_spec_document(spec) for spec in self.specs],
        }


def _spec_document(spec: Spec) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": KIND_NAMES[type(spec)]}
    ratio_names = {v: k for k, v in _RATIO_FIELDS.items()}
    for name, value in asdict(spec).items():
        if name == "files" and isinstance(spec, PricePath):
            doc[name] = [{"market": f.market, "file": f.file, "sha256": f.sha256} for f in spec.files]
        elif name in ratio_names:
            doc[ratio_names[name]] = format_ppm(value)
        else:
            doc[name] = value
    return doc


# --------------------------------------------------------------------------------------- parsing
def _error(path: str, message: str) -> ProtocolError:
    return ProtocolError("invalid_scenario_set", f"{path}: {message}", field=path)


def parse_scenario_set(document: Any, base_dir: Path | str | None = None) -> ScenarioSet:
    """Validate a scenario-set document; raises ``ProtocolError("invalid_scenario_set", ...)`` (or
    ``invalid_price_path`` for a bad candle file). ``base_dir``: where the files of ``path``
    scenarios are looked for (default: the working directory)."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _error("format", f"not a {FORMAT} document")
    unknown = sorted(set(document) - {"format", "name", "version", "seed", "engine", "mapping", "scenarios"})
    if unknown:
        raise _error(unknown[0], "is not a known field")
    name, version, seed = document.get("name"), document.get("version"), document.get("seed")  # type: Any, Any, Any
    if not isinstance(name, str) or not name:
        raise _error("name", "must be a non-empty string")
    for path, value in (("version", version), ("seed", seed)):
        if not _is_int(value) or value < 0:
            raise _error(path, "must be a non-negative integer")
    engine = _parse_engine(document.get("engine", {}))
    mapping = _parse_mapping(document.get("mapping", {}))
    raw_specs = document.get("scenarios")
    if not isinstance(raw_specs, list) or not raw_specs:
        raise _error("scenarios", "must be a non-empty list")
    specs = tuple(_parse_spec(raw, f"scenarios[{i}]", base_dir) for i, raw in enumerate(raw_specs))
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise _error("scenarios", "scenario names must be unique")
    return ScenarioSet(name=name, version=version, seed=seed, engine=engine, mapping=mapping, specs=specs)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_engine(raw: Any) -> EngineSettings:
    if not isinstance(raw, dict) or set(raw) - {"block_ms", "spread", "baseline_depth", "max_slippage"}:
        raise _error("engine", "must be an object of block_ms, spread, baseline_depth, max_slippage")
    default = EngineSettings()
    block_ms = raw.get("block_ms", default.block_ms)
    if not _is_int(block_ms) or block_ms <= 0:
        raise _error("engine.block_ms", "must be a positive integer")
    spread = parse_ppm(raw["spread"], field="engine.spread") if "spread" in raw else default.spread_ppm
    depth = (parse_usdc(raw["baseline_depth"], field="engine.baseline_depth") if "baseline_depth" in raw
             else default.baseline_depth_usdc)
    max_slippage = (parse_ppm(raw["max_slippage"], field="engine.max_slippage") if "max_slippage" in raw
                    else default.max_slippage_ppm)
    if not 0 <= spread <= max_slippage < PPM or depth <= 0:
        raise _error("engine", "need 0 <= spread <= max_slippage < 1 and a positive baseline_depth")
    return EngineSettings(block_ms=block_ms, spread_ppm=spread, baseline_depth_usdc=depth,
                          max_slippage_ppm=max_slippage)


def _parse_mapping(raw: Any) -> MappingRule:
    if not isinstance(raw, dict) or set(raw) - {"tier_proxies", "default_proxy"}:
        raise _error("mapping", "must be an object of tier_proxies, default_proxy")
    default = MappingRule()
    proxies = default.tier_proxies
    if "tier_proxies" in raw:
        proxies = tuple((tier, _asset(asset, "mapping.tier_proxies"),
                         parse_ppm(mult, field="mapping.tier_proxies")) for tier, asset, mult in raw["tier_proxies"])
    fallback = default.default_proxy
    if "default_proxy" in raw:
        asset, mult = raw["default_proxy"]
        fallback = (_asset(asset, "mapping.default_proxy"), parse_ppm(mult, field="mapping.default_proxy"))
    return MappingRule(tier_proxies=proxies, default_proxy=fallback)


def _asset(asset: Any, path: str) -> str:
    if asset not in calibrated_volatility():
        raise _error(path, f"{asset!r} is not a calibrated asset")
    return asset


def _parse_spec(raw: Any, path: str, base_dir: Path | str | None = None) -> Spec:
    if not isinstance(raw, dict) or raw.get("kind") not in KINDS:
        raise _error(f"{path}.kind", f"must be one of {sorted(KINDS)}")
    cls = KINDS[raw["kind"]]
    names = {f.name for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "kind":
            continue
        if key == "files" and cls is PricePath:
            values["files"] = _parse_path_files(value, f"{path}.files", base_dir)
            continue
        target = _RATIO_FIELDS.get(key, key)
        if target not in names or key.endswith("_ppm"):
            raise _error(f"{path}.{key}", "is not a field of this kind")
        if target != key:
            value = parse_ppm(value, field=f"{path}.{key}", signed=True)
        values[target] = value
    try:
        spec = cls(**values)
    except TypeError as error:
        raise _error(path, str(error)) from None
    _check_spec(spec, path)
    return spec


def _parse_path_files(raw: Any, path: str, base_dir: Path | str | None) -> tuple[PathFile, ...]:
    """``[{"market", "file", "sha256"?}, ...]``: each file read and checked (``candles.load_candles``)."""
    if not isinstance(raw, list) or not raw:
        raise _error(path, "must be a non-empty list of {market, file, sha256}")
    out = []
    for i, entry in enumerate(raw):
        where = f"{path}[{i}]"
        if (not isinstance(entry, dict) or set(entry) - {"market", "file", "sha256"}
                or not all(isinstance(entry.get(k), str) and entry.get(k) for k in ("market", "file"))):
            raise _error(where, "must be an object of market, file and an optional sha256 (strings)")
        location = Path(entry["file"]) if base_dir is None else Path(base_dir) / entry["file"]
        series = load_candles(location, entry.get("sha256"))
        out.append(PathFile(entry["market"], entry["file"], series.sha256, str(location)))
    markets = [f.market for f in out]
    if len(set(markets)) != len(markets):
        raise _error(path, "one file per market")
    return tuple(out)


_FIELD_TYPES: Final[dict[Any, type | tuple[type, ...]]] = {"int": int, "bool": bool, "str": str,
                                                          "str | None": (str, type(None))}


def _check_spec(spec: Spec, path: str) -> None:
    for f in fields(spec):
        if f.name == "files":
            continue
        value = getattr(spec, f.name)
        expected = _FIELD_TYPES[f.type]
        if not isinstance(value, expected) or expected is int and isinstance(value, bool):
            raise _error(f"{path}.{f.name}", f"has the wrong type ({value!r})")
    if not spec.name:
        raise _error(f"{path}.name", "must be a non-empty string")
    if not 0 <= spec.depth_cut_ppm < PPM:
        raise _error(f"{path}.depth_cut", "must be in [0, 1)")
    if isinstance(spec, ThinBook) and spec.depth_cut_ppm < MIN_THIN_BOOK_CUT_PPM:
        raise _error(f"{path}.depth_cut", "a thin book cuts the depth by at least 0.9")
    moves = [getattr(spec, n) for n in ("move_ppm", "dump_ppm") if hasattr(spec, n)]
    if any(move <= -PPM for move in moves):
        raise _error(path, "a price cannot fall by 100% or more")
    counts = [getattr(spec, n) for n in ("steps", "count", "pump_steps", "dump_steps", "outage_steps")
              if hasattr(spec, n)]
    waits = [getattr(spec, n) for n in ("drift_steps", "hold_steps") if hasattr(spec, n)]
    if any(count <= 0 for count in counts) or any(wait < 0 for wait in waits):
        raise _error(path, "step counts and counts must be positive (drift_steps, hold_steps non-negative)")
    if isinstance(spec, PricePath) and (spec.order not in PATH_ORDERS or spec.prices not in PATH_PRICES):
        raise _error(path, f"order must be one of {list(PATH_ORDERS)}, prices one of {list(PATH_PRICES)}")
    if isinstance(spec, HistoricalReplay | PricePath) != (spec.step_s == 0) or spec.step_s < 0:
        raise _error(f"{path}.step_s",
                     "a historical replay or a path takes its steps from the data; others need step_s > 0")
    if isinstance(spec, OracleManipulation) and spec.pump_ppm <= 0:
        raise _error(f"{path}.pump", "a pump must raise the price")
    if isinstance(spec, HistoricalReplay) and spec.window not in history_windows():
        raise _error(f"{path}.window", f"no crash window {spec.window!r} (have {sorted(history_windows())})")


# --------------------------------------------------------------------------------------- files and hashes
def scenario_set_hash(scenario_set: ScenarioSet) -> str:
    """SHA-256 (hex) of the canonical bytes (``core.snapshot.canonical_bytes``: compact JSON, keys
    sorted, ASCII) of the normalised document."""
    return hashlib.sha256(canonical_bytes(scenario_set.document())).hexdigest()


def load_scenario_set(path: Path | str = DEFAULT_SET_FILE) -> ScenarioSet:
    """The set of a JSON file; the candle files of its ``path`` scenarios are looked for beside it."""
    return parse_scenario_set(json.loads(Path(path).read_text()), base_dir=Path(path).parent)


def default_scenario_set() -> ScenarioSet:
    """The default gate set shipped in ``data/gate_default.json``."""
    return load_scenario_set(DEFAULT_SET_FILE)


# --------------------------------------------------------------------------------------- mapping rule
@cache
def calibrated_volatility() -> dict[str, Fraction]:
    """Hourly volatility of each calibrated asset, exact from the stored decimal strings."""
    assets = load_calibration()["assets"]
    return {asset: Fraction(values["volatility_hourly"]) for asset, values in sorted(assets.items())}


@cache
def history_windows() -> dict[str, tuple[str, ...]]:
    """{crash date: assets with a series in that window}, from the files of data/history/."""
    windows: dict[str, set[str]] = {}
    for path in sorted((DATA / "history").glob("crash_*.csv")):
        _, date, symbol, *_ = path.stem.split("_")
        windows.setdefault(date, set()).add(base_asset(symbol))
    return {date: tuple(sorted(assets)) for date, assets in sorted(windows.items())}


def base_asset(symbol: str) -> str:
    """The base asset of a market ticker or data symbol: ``BTC-USD``, ``BTC/USD``, ``BTCUSDT-PERP`` -> BTC."""
    head = symbol.replace("/", "-").replace("_", "-").split("-")[0].upper()
    for quote in ("USDT", "USDC", "USD"):
        if head.endswith(quote) and len(head) > len(quote):
            return head[: -len(quote)]
    return head


@dataclass(frozen=True)
class MarketMapping:
    """Whose moves a market follows: ``asset`` (a series or calibrated asset), scaled by ``scale_ppm``;
    ``beta_ppm`` is the scaled volatility relative to BTC (correlated shocks); ``reason`` names the rule."""

    ticker: str
    asset: str
    scale_ppm: int
    beta_ppm: int
    reason: str


def map_market(ticker: str, tier_id: int, rule: MappingRule, available: tuple[str, ...] | None = None) -> MarketMapping:
    """The mapping rule of the module docstring; ``available`` = the assets a historical window has
    (None: every calibrated asset, as for generated paths)."""
    volatility = calibrated_volatility()
    base = base_asset(ticker)
    if base in volatility:
        chosen, multiplier, reason = base, PPM, "base_asset"
    else:
        proxies = {tier: (asset, mult) for tier, asset, mult in rule.tier_proxies}
        chosen, multiplier = proxies.get(tier_id, rule.default_proxy)
        reason = f"tier_{tier_id}_proxy" if tier_id in proxies else "default_proxy"
    candidates = tuple(volatility) if available is None else available
    scale = Fraction(multiplier)
    used = chosen
    if chosen not in candidates:
        target = volatility[chosen]
        used = min(candidates, key=lambda a: (abs(volatility[a] - target), -volatility[a], a))
        scale = scale * target / volatility[used]
        reason += f"_via_{used}"
    beta = scale * volatility[used] / volatility[REFERENCE_ASSET]
    return MarketMapping(ticker, used, _ceil(scale), _ceil(beta), reason)


def _ceil(value: Fraction) -> int:
    return -(-value.numerator // value.denominator)
