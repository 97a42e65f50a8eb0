"""Markets in their genesis form: one market document (``genesis.markets[i]``, or the listing a
``list_market`` action describes) parsed into a ``Market``, and the parsing helpers genesis shares.

It sits below both genesis (``bastion.core.genesis``, which builds the whole state) and governance
(``bastion.core.governance.actions``, which lists markets), so neither imports the other for it.
``MARKET_DEFAULTS`` and ``ORACLE_DEFAULTS`` are the ``market`` and ``oracle`` entries of
``GENESIS_DEFAULTS``.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from bastion.core.errors import ProtocolError
from bastion.core.params import LiquidityTier, OracleParams
from bastion.core.state import ACTIVE, MARKET_STATUSES, MAX_ORDER_LOTS, Market
from bastion.core.units import MS_PER_S, parse_decimal, parse_ppm

ORACLE_DEFAULTS: dict[str, Any] = {
    "operators": ["0x00000000000000000000000000000000000000a1"], "min_sources": 1,
    "max_staleness_s": 60, "max_source_deviation": "0.05", "max_move_per_block": "0.5"}
MARKET_DEFAULTS: dict[str, Any] = {
    "liquidity_tier": 0, "min_order_size": None, "max_order_size": None, "max_open_interest": None,
    "maker_fee": "0.0001", "taker_fee": "0.0005", "isolated_only": False, "status": "active"}
UNLIMITED = 10**30
TICKER = re.compile(r"[A-Z0-9][A-Z0-9._/-]{0,31}")  # fullmatch: the whole string


def genesis_error(path: str, message: str) -> ProtocolError:
    """An ``invalid_genesis`` error naming the field path."""
    return ProtocolError("invalid_genesis", f"{path}: {message}", field=path)


def get_field(obj: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """``obj[key]`` of type ``kind`` (a bool is not an int), ``default`` when absent; else ``invalid_genesis``."""
    if key not in obj:
        if default is ...:
            raise genesis_error(f"{path}.{key}", "is required")
        return default
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise genesis_error(f"{path}.{key}", f"has the wrong type ({value!r})")
    return value


def wrap_error(path: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a parser, re-raising its error with the genesis field path."""
    try:
        return fn(*args, **kwargs)
    except ProtocolError as error:
        raise genesis_error(path, error.message) from None


def check_keys(obj: Any, allowed: set[str], path: str) -> None:
    """``invalid_genesis`` unless ``obj`` is an object with only ``allowed`` keys."""
    if not isinstance(obj, dict):
        raise genesis_error(path, "must be an object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise genesis_error(f"{path}.{unknown[0]}", "is not a known field")


def parse_oracle_params(obj: dict[str, Any], base: OracleParams | None, path: str) -> OracleParams:
    """Oracle parameters over ``base`` (the genesis ``oracle`` defaults when None, where ``operators`` is allowed)."""
    # the operators are chain-wide: only the genesis section names them, not a market's override
    check_keys(obj, {"min_sources", "max_staleness_s", "max_source_deviation", "max_move_per_block"}
                | ({"operators"} if base is None else set()), path)
    d = ORACLE_DEFAULTS

    def pick(key: str, parse: Callable[[Any, str], Any]) -> Any:
        if key in obj:
            return parse(obj[key], f"{path}.{key}")
        return None

    min_sources = pick("min_sources", lambda v, p: parse_int(v, p, minimum=1))
    staleness = pick("max_staleness_s", lambda v, p: parse_int(v, p, minimum=1) * MS_PER_S)
    deviation = pick("max_source_deviation", lambda v, p: wrap_error(p, parse_ppm, v, field=p))
    move = pick("max_move_per_block", lambda v, p: wrap_error(p, parse_ppm, v, field=p))
    if base is None:
        base = OracleParams(d["min_sources"], d["max_staleness_s"] * MS_PER_S,
                            parse_ppm(d["max_source_deviation"], field="d"),
                            parse_ppm(d["max_move_per_block"], field="d"))
    return OracleParams(
        min_sources if min_sources is not None else base.min_sources,
        staleness if staleness is not None else base.max_staleness_ms,
        deviation if deviation is not None else base.max_source_deviation_ppm,
        move if move is not None else base.max_move_per_block_ppm,
    )


def parse_int(value: Any, path: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (never a bool) within the bounds; ``invalid_genesis`` otherwise."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise genesis_error(path, f"must be an integer, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise genesis_error(path, f"is out of range ({value})")
    return value


def parse_market(m: Any, path: str, *, tiers: dict[int, LiquidityTier], markets: dict[str, Market],
                 oracle_defaults: OracleParams, operators: list[str] | tuple[str, ...], time_ms: int) -> Market:
    """One market of the genesis form (``genesis.markets[i]``; also a ``list_market`` action's
    listing, ``bastion.core.governance.actions``): syntax, grids, tier, fees, oracle overrides. The ticker must
    be new to ``markets``; every operator counts as having submitted the initial price at
    ``time_ms``. Errors are ``invalid_genesis`` naming the field path."""
    market_defaults = MARKET_DEFAULTS
    check_keys(m, {"ticker", "size_decimals", "price_decimals", "liquidity_tier", "min_order_size",
                    "max_order_size", "max_open_interest", "maker_fee", "taker_fee", "isolated_only", "oracle_price",
                    "status", "oracle"}, path)
    ticker = get_field(m, "ticker", path, str)
    if not TICKER.fullmatch(ticker):
        raise genesis_error(f"{path}.ticker",
                            "must be 1-32 of A-Z, 0-9, '.', '_', '/', '-', starting with a letter or digit")
    if ticker in markets:
        raise genesis_error(f"{path}.ticker", f"duplicate market {ticker}")
    size_decimals = parse_int(get_field(m, "size_decimals", path, int), f"{path}.size_decimals",
                              minimum=-12, maximum=18)
    price_decimals = parse_int(get_field(m, "price_decimals", path, int), f"{path}.price_decimals",
                               minimum=-12, maximum=18)
    tier_id = parse_int(get_field(m, "liquidity_tier", path, int, market_defaults["liquidity_tier"]),
                        f"{path}.liquidity_tier")
    if tier_id not in tiers:
        raise genesis_error(f"{path}.liquidity_tier", f"no liquidity tier {tier_id}")
    min_size = m.get("min_order_size")
    min_lots = 1 if min_size is None else wrap_error(f"{path}.min_order_size", parse_decimal, min_size, size_decimals,
                                               field="min_order_size")
    max_size = m.get("max_order_size")
    max_order_lots = MAX_ORDER_LOTS if max_size is None else wrap_error(f"{path}.max_order_size", parse_decimal,
                                                                        max_size,
                                                                   size_decimals, field="max_order_size")
    max_oi = m.get("max_open_interest")
    max_oi_lots = UNLIMITED if max_oi is None else wrap_error(f"{path}.max_open_interest", parse_decimal, max_oi,
                                                         size_decimals, field="max_open_interest")
    maker_fee = wrap_error(f"{path}.maker_fee", parse_ppm,
                           get_field(m, "maker_fee", path, str, market_defaults["maker_fee"]),
                      field="maker_fee", signed=True)
    taker_fee = wrap_error(f"{path}.taker_fee", parse_ppm,
                           get_field(m, "taker_fee", path, str, market_defaults["taker_fee"]),
                      field="taker_fee", signed=True)
    if taker_fee < 0 or taker_fee + maker_fee < 0:
        raise genesis_error(f"{path}.maker_fee", "a maker rebate may not exceed the taker fee")
    status = get_field(m, "status", path, str, ACTIVE)
    if status not in MARKET_STATUSES:
        raise genesis_error(f"{path}.status", f"unknown status {status!r}")
    price = wrap_error(f"{path}.oracle_price", parse_decimal, get_field(m, "oracle_price", path, str), price_decimals,
                  field="oracle_price")
    if price <= 0 or min_lots <= 0:
        raise genesis_error(path, "oracle_price and min_order_size must be positive")
    if not min_lots <= max_order_lots <= MAX_ORDER_LOTS:
        raise genesis_error(f"{path}.max_order_size",
                            f"must be at least min_order_size and at most {MAX_ORDER_LOTS} lots")
    oracle_params = parse_oracle_params(m["oracle"], oracle_defaults, f"{path}.oracle") if "oracle" in m else \
        copy.copy(oracle_defaults)
    market = Market(ticker=ticker, size_decimals=size_decimals, price_decimals=price_decimals, tier_id=tier_id,
                    min_order_lots=min_lots, max_open_interest_lots=max_oi_lots, maker_fee_ppm=maker_fee,
                    taker_fee_ppm=taker_fee, isolated_only=get_field(m, "isolated_only", path, bool, False),
                    status=status, oracle_params=oracle_params, oracle_price=price, max_order_lots=max_order_lots)
    market.submissions = {op: (price, time_ms) for op in operators}
    return market
