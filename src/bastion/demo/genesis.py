"""The demo chain's genesis and its oracle path (``bastion demo``).

Markets: BTC-USD, ETH-USD and SOL-USD in the cross pool, and PEPE-USD, a long-tail market that is
isolated-only (its own insurance fund). Accounts are the demo keys' (``bastion.demo.keys``): the
maker, the traders (BGOV delegated to themselves, so that they can vote) and the operators.

Time is compressed for the demo (the protocol defaults are untouched; only this genesis sets):

* **funding** samples the premium every second and ticks every ``FUNDING_TICK_S`` seconds (the
  protocol: every minute and every hour) with a base rate of ``DEMO_DEFAULT_FUNDING`` per 8 hours, so
  the funding index moves within the first blocks instead of after an hour of wall clock;
* **governance** votes last minutes and timelocks are a minute or less (``governance_rules``), with
  no holding age and a short late-quorum extension, so a proposal's whole life fits in a few minutes;
* a **council** of three demo keys (``council1`` to ``council3``, two of three attest) opens the stress
  gate of a risk-increasing proposal once a stress report of it is registered.

The oracle follows ``examples/demo_prices.csv``: hourly closes of BTC, ETH and SOL perpetuals around
the 2021-05-19 crash (source in the file's header), played forwards then backwards so that the
path never jumps; PEPE follows a seeded random walk.
"""
from __future__ import annotations

import copy
import csv
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from importlib import resources

from bastion.core.genesis import GENESIS_DEFAULTS
from bastion.core.timefmt import format_iso_ms
from bastion.demo.keys import DEMO_COUNCIL, get_demo_keys

__all__ = ["DEMO_CHAIN_ID", "FUNDING_TICK_S", "MARKETS", "PricePath", "build_demo_genesis", "governance_rules",
           "load_price_path"]

DEMO_CHAIN_ID = "bastion-demo"
FUNDING_TICK_S = 5
DEMO_DEFAULT_FUNDING = "0.001"   # 0.1% per 8 hours when the book is balanced (the premium moves it)
# per risk class: voting period (blocks, at the demo's 4 blocks a second) and timelock (seconds)
DEMO_GOVERNANCE = {"risk_reducing": (120, 20), "neutral": (160, 30), "risk_increasing": (240, 45),
                   "critical": (480, 90)}
COUNCIL_THRESHOLD = 2


@dataclass(frozen=True, slots=True)
class DemoMarket:
    ticker: str
    size_decimals: int
    price_decimals: int
    liquidity_tier: int
    min_order_size: str
    max_open_interest: str
    quote_sizes: tuple[str, ...]      # the maker's sizes, best level first
    isolated_only: bool = False


MARKETS = (
    DemoMarket("BTC-USD", 4, 0, 0, "0.001", "500", ("0.05", "0.1", "0.25")),
    DemoMarket("ETH-USD", 3, 1, 1, "0.01", "10000", ("0.5", "1", "2.5")),
    DemoMarket("SOL-USD", 1, 2, 2, "0.1", "200000", ("20", "50", "120")),
    DemoMarket("PEPE-USD", -3, 8, 3, "1000", "100000000000", ("20000000", "50000000", "100000000"),
               isolated_only=True),
)
PEPE_START = "0.00001"


@dataclass(frozen=True, slots=True)
class PricePath:
    """Hourly prices of the path's symbols (BTC, ETH, SOL), as decimal strings, oldest first."""

    times: tuple[str, ...]
    prices: dict[str, tuple[Decimal, ...]]

    def __len__(self) -> int:
        return len(self.times)


def load_price_path() -> PricePath:
    text = resources.files("bastion.examples").joinpath("demo_prices.csv").read_text()
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    symbols = [name for name in rows[0] if name != "timestamp"]
    return PricePath(tuple(r["timestamp"] for r in rows),
                     {s: tuple(Decimal(r[s]) for r in rows) for s in symbols})


def on_grid(price: Decimal, price_decimals: int) -> str:
    """A price rounded to the market's tick (half even), as a decimal string."""
    return str(price.quantize(Decimal(1).scaleb(-price_decimals), rounding=ROUND_HALF_EVEN))


def starting_price(market: DemoMarket, path: PricePath) -> str:
    symbol = market.ticker.split("-")[0]
    if symbol not in path.prices:
        return PEPE_START
    return on_grid(path.prices[symbol][0], market.price_decimals)


def governance_rules(pace: int = 1) -> dict:
    """The demo's governance section: the protocol's rules with minutes instead of days.

    Voting periods and timelocks are ``DEMO_GOVERNANCE`` divided by ``pace`` (a test speed-up; at
    least one block and one second); no holding age (the demo's BGOV is all minted at genesis) and a
    late-quorum extension of 20 blocks, so that a vote reaching its quorum late is not stretched by
    the protocol's 14,400 blocks."""
    rules = copy.deepcopy(GENESIS_DEFAULTS["governance"])
    rules["late_quorum_extension_blocks"] = max(1, 20 // pace)
    for name, (blocks, timelock_s) in DEMO_GOVERNANCE.items():
        rules["tiers"][name].update(voting_period_blocks=max(1, blocks // pace), timelock_s=max(1, timelock_s // pace),
                                    min_holding_age_blocks=0)
    return rules


def build_demo_genesis(now_ms: int, *, pace: int = 1) -> dict:
    """The demo genesis, starting at ``now_ms`` (rounded down to the second). ``pace`` > 1 shortens
    the governance periods and timelocks (``governance_rules``) for tests."""
    keys = get_demo_keys()
    path = load_price_path()

    def address(name: str) -> str:
        return keys[name].address

    return {
        "chain_id": DEMO_CHAIN_ID,
        "time": format_iso_ms(now_ms // 1_000 * 1_000),
        "bridge_operator": address("bridge"),
        "oracle": {"operators": [address("oracle")], "min_sources": 1, "max_staleness_s": 120,
                   "max_source_deviation": "0.05", "max_move_per_block": "0.1"},
        "markets": [{"ticker": m.ticker, "size_decimals": m.size_decimals, "price_decimals": m.price_decimals,
                     "liquidity_tier": m.liquidity_tier, "min_order_size": m.min_order_size,
                     "max_open_interest": m.max_open_interest, "maker_fee": "-0.0001" if m.liquidity_tier == 0
                     else "0.0001", "taker_fee": "0.0005" if not m.isolated_only else "0.001",
                     "oracle_price": starting_price(m, path), **({"isolated_only": True} if m.isolated_only else {})}
                    for m in MARKETS],
        "fees": {"insurance_share": "0.2"},
        # maker rewards (bastion.core.maker_rewards): the demo maker re-quotes its whole ladder every step, so
        # quotes count from the end of the block that placed them (min_rest_blocks 0); a 20-block (10 s) epoch
        "maker_rewards": {"epoch_blocks": 20, "sample_interval_blocks": 4, "band": "0.01", "min_rest_blocks": 0,
                          "pool_share": "0.25", "max_share_per_maker": "0.8", "volatility_slope": "100",
                          "max_volatility_weight": "5"},
        "funding": {"default_funding": DEMO_DEFAULT_FUNDING, "sample_s": 1, "tick_s": FUNDING_TICK_S},
        "governance": governance_rules(pace),
        "council": {"members": sorted(address(name) for name in DEMO_COUNCIL), "threshold": COUNCIL_THRESHOLD},
        "insurance_funds": {"cross": "250000", "PEPE-USD": "10000"},
        # a two-minute unstake cooldown, so that a visitor sees one run out (bastion.core.staking)
        "insurance_staking": {"cooldown_ms": 120_000},
        # dave disputes his first liquidation (bastion.demo.bots): a small bond floor, the council takes days
        "disputes": {"bond_floor": "10"},
        "accounts": [
            {"address": address("maker"), "bgov": "5000", "delegate": address("maker"),
             "subaccounts": [{"number": 0, "usdc": "5000000"},
                             {"number": 1, "usdc": "300000", "mode": "isolated", "market": "PEPE-USD"}]},
            {"address": address("alice"), "bgov": "2000", "delegate": address("alice"),
             "subaccounts": [{"number": 0, "usdc": "100000"}]},
            {"address": address("bob"), "bgov": "1000", "delegate": address("bob"),
             "subaccounts": [{"number": 0, "usdc": "50000"}]},
            {"address": address("carol"), "bgov": "500", "delegate": address("carol"),
             "subaccounts": [{"number": 0, "usdc": "50000"},
                             {"number": 1, "usdc": "10000", "mode": "isolated", "market": "PEPE-USD"}]},
            {"address": address("dave"), "subaccounts": [{"number": 0, "usdc": "5000"}]},
        ],
    }
