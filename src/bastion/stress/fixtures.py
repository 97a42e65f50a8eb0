"""Seeded books for stress tests and benchmarks: ``generate_book(accounts=10_000, seed=...)``.

A genesis (``core.genesis.build_state``) with three markets on the default liquidity tiers:

======== ============ ====== ======================= =====================================
market   tier         IMF    oracle price            hard open-interest cap
======== ============ ====== ======================= =====================================
BTC-USD  0 large-cap  2%     60,000 (0.0001 BTC lots) none
ETH-USD  1 mid-cap    5%     3,000 (0.001 ETH lots)   none
SOL-USD  2 small-cap  10%    150 (0.1 SOL lots)       ``SOL_CAP_HEADROOM`` above its open interest
======== ============ ====== ======================= =====================================

Traders (``random.Random(seed)``, so the same seed gives the same state and hash): collateral from
500 to 100,000 USDC (heavier weight on small accounts), one position (60%), two (30%) or three
(10%) in distinct markets, long 55% of the time; the collateral is split over the positions and
each is opened at the oracle price with a leverage drawn from 1, 2, 3, 5, 8, 10, 15, 20, 25, 33, 40
and 50x (weights 14, 16, 14, 16, 10, 10, 6, 5, 3, 2, 2, 1, the long tail of a retail book), capped
at 90% of the market's maximal leverage ``1 / IMF``. One hedger holds the net opposite of every
market with a 50,000,000 USDC balance (genesis positions must balance). Insurance: the cross fund
holds ``insurance_usdc``. The oracle has one operator (``min_sources`` 1), ``max_move_per_block``
50%, as the genesis defaults.
"""
from __future__ import annotations

import random
from collections import Counter
from typing import Final

from bastion.core.genesis import build_state
from bastion.core.state import State
from bastion.core.units import format_decimal
from bastion.risk_model import notional

ORACLE_OPERATOR: Final = "0x" + "a1".rjust(40, "0")
BRIDGE: Final = "0x" + "b1".rjust(40, "0")
HEDGER: Final = "0x" + "e0".rjust(40, "0")
# ticker: (size_decimals, price_decimals, tier, oracle price, initial margin ppm)
MARKETS: Final = {
    "BTC-USD": (4, 1, 0, "60000", 20_000),
    "ETH-USD": (3, 2, 1, "3000", 50_000),
    "SOL-USD": (1, 3, 2, "150", 100_000),
}
LEVERAGES: Final = ((1, 14), (2, 16), (3, 14), (5, 16), (8, 10), (10, 10), (15, 6), (20, 5), (25, 3), (33, 2),
                    (40, 2), (50, 1))
COLLATERALS_USDC: Final = ((500, 20), (1_000, 20), (2_500, 18), (5_000, 15), (10_000, 12), (25_000, 8),
                           (50_000, 5), (100_000, 2))
SOL_CAP_HEADROOM_PPM: Final = 50_000     # SOL-USD's cap: 5% above its open interest
MAX_LEVERAGE_SHARE_PPM: Final = 500_000  # leverage at most half the market maximum 1 / IMF


def trader_address(i: int) -> str:
    return "0x" + f"{0x100000 + i:040x}"


def generate_book(*, accounts: int = 10_000, seed: int = 20_260_101, insurance_usdc: int = 1_000_000) -> State:
    """The seeded state of the module docstring (``accounts`` traders plus the hedger);
    ``insurance_usdc`` in whole USDC."""
    rng = random.Random(seed)
    prices = {t: int(price.replace(".", "")) * 10**pd for t, (_, pd, _, price, _) in MARKETS.items()}
    lot_values = {t: notional(1, prices[t], size_decimals=sd, price_decimals=pd)
                  for t, (sd, pd, *_) in MARKETS.items()}
    leverage_values, leverage_weights = zip(*LEVERAGES)
    collateral_values, collateral_weights = zip(*COLLATERALS_USDC)
    net: Counter = Counter()
    longs: Counter = Counter()
    documents = []
    for i in range(accounts):
        collateral = rng.choices(collateral_values, collateral_weights)[0] * 10**6
        count = rng.choices((1, 2, 3), (6, 3, 1))[0]
        tickers = rng.sample(sorted(MARKETS), count)
        balance = collateral
        positions = []
        for ticker in tickers:
            size_decimals, _, _, _, imf = MARKETS[ticker]
            max_leverage = 1_000_000 * MAX_LEVERAGE_SHARE_PPM // (imf * 1_000_000)
            leverage = min(rng.choices(leverage_values, leverage_weights)[0], max_leverage)
            lots = collateral * leverage // count // lot_values[ticker]
            if lots == 0:
                continue
            size = lots if rng.random() < 0.55 else -lots
            balance -= size * lot_values[ticker]
            net[ticker] += size
            longs[ticker] += max(size, 0)
            positions.append({"market": ticker, "size": format_decimal(size, size_decimals)})
        documents.append({"address": trader_address(i), "subaccounts": [
            {"number": 0, "usdc": format_decimal(balance, 6), "positions": positions}]})
    hedge_balance = 50_000_000 * 10**6
    hedge = []
    for ticker, size in sorted(net.items()):
        if size:
            hedge_balance += size * lot_values[ticker]
            hedge.append({"market": ticker, "size": format_decimal(-size, MARKETS[ticker][0])})
    documents.append({"address": HEDGER, "subaccounts": [
        {"number": 0, "usdc": format_decimal(hedge_balance, 6), "positions": hedge}]})
    markets = []
    for ticker, (sd, pd, tier, price, _) in MARKETS.items():
        market = {"ticker": ticker, "size_decimals": sd, "price_decimals": pd, "liquidity_tier": tier,
                  "min_order_size": format_decimal(1, sd), "oracle_price": price}
        markets.append(market)
    state_doc = {"chain_id": "bastion-stress-book", "time": "2026-01-01T00:00:00Z", "bridge_operator": BRIDGE,
                 "oracle": {"operators": [ORACLE_OPERATOR], "min_sources": 1, "max_staleness_s": 120,
                            "max_source_deviation": "0.05", "max_move_per_block": "0.5"},
                 "markets": markets, "insurance_funds": {"cross": str(insurance_usdc)}, "accounts": documents}
    sol_oi = longs["SOL-USD"] + max(-net["SOL-USD"], 0)
    markets[2]["max_open_interest"] = format_decimal(sol_oi + sol_oi * SOL_CAP_HEADROOM_PPM // 1_000_000,
                                                     MARKETS["SOL-USD"][0])
    return build_state(state_doc)
