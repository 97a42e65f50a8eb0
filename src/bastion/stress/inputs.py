"""What the stress engines read from a ``State``: plain numpy arrays, extracted once.

``extract_inputs(state)`` takes a committed state (a snapshot, a scenario file's final state or a
genesis) and returns ``StressInputs``:

* per market (index ``m``, markets in the state's ticker order): grid (``size_decimals``,
  ``price_decimals``), oracle price in ticks, the micro-USDC value of one lot at one tick
  (``10**(6 - size_decimals - price_decimals)``, fractional when the exponent is negative), the
  tier's IMF and maintenance fraction (ppm), the IMF raised by the market's open interest
  (``risk_model.adjusted_initial_margin_ppm``, DESIGN.md section 15), open interest, and the resting
  book depth within 1% of the oracle price on each side (micro-USDC);
* per subaccount with at least one position (index ``a``, in the state's creation order):
  collateral = balance + pending funding (floored, as every margin check settles funding first), the
  signed size in lots per market (a dense ``A x M`` matrix), its pool, and its exact
  ``(TNC, IMR, MMR)`` at the snapshot from ``bastion.core.margin.get_subaccount_risk``;
* per pool (``cross`` and each isolated-only market): the insurance fund;
* per pool, the stakers' part of its fund and its governed target (``bastion.core.staking``), and the
  staking parameters (``InsuranceStakingParams``: the stakers' fee share and loss mode);
* the liquidation parameters (``bastion.core.params.LiquidationParams``) and the governance
  parameters (``GovernanceParams``: the verdict's governed thresholds, ``report.StressThresholds``).

Subaccounts without positions cannot be liquidated and are left out. The engine never sees the
``State``: a process pool can ship ``StressInputs`` to workers as they are.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from bastion.core.accounts import subaccount_pool
from bastion.core.book import BUY, SELL
from bastion.core.margin import get_pending_funding, get_subaccount_risk
from bastion.core.params import GovernanceParams, InsuranceStakingParams, LiquidationParams
from bastion.core.staking import fund_targets
from bastion.core.state import Market, State
from bastion.core.units import USDC_DECIMALS
from bastion.risk_model import adjusted_initial_margin_ppm, notional

DEPTH_BAND_PPM = 10_000  # book depth is measured within 1% of the oracle price
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, eq=False)
class StressInputs:
    """Arrays for the engines (see the module docstring); amounts in micro-USDC, sizes in lots."""

    state_hash: str
    height: int
    tickers: tuple[str, ...]
    tier_ids: np.ndarray                   # (M,) int64
    size_decimals: np.ndarray              # (M,) int64
    price_decimals: np.ndarray             # (M,) int64
    oracle_ticks: np.ndarray               # (M,) int64
    lot_tick_value: np.ndarray             # (M,) float64: micro-USDC of one lot at one tick
    initial_margin_ppm: np.ndarray         # (M,) int64, the tier's IMF
    adjusted_initial_margin_ppm: np.ndarray  # (M,) int64, the IMF raised by open interest
    maintenance_fraction_ppm: np.ndarray   # (M,) int64
    open_interest_lots: np.ndarray         # (M,) int64
    bid_depth_usdc: np.ndarray             # (M,) int64, resting bids within 1% below the oracle
    ask_depth_usdc: np.ndarray             # (M,) int64, resting asks within 1% above the oracle
    accounts: tuple[tuple[str, int], ...]  # (A,) (owner, number)
    collateral: np.ndarray                 # (A,) int64: balance + pending funding
    sizes: np.ndarray                      # (A, M) int64, signed lots
    account_pool: np.ndarray               # (A,) int64 index into pools
    net_collateral: np.ndarray             # (A,) int64, exact TNC at the snapshot
    initial_requirement: np.ndarray        # (A,) int64, exact IMR (with unbacked profit)
    maintenance_requirement: np.ndarray    # (A,) int64, exact MMR
    pools: tuple[str, ...]
    insurance_funds: np.ndarray            # (P,) int64
    liquidation: LiquidationParams
    governance: GovernanceParams
    staked: np.ndarray | None = None       # (P,) int64: the stakers' part of each fund (None: no staking)
    fund_targets: np.ndarray | None = None  # (P,) int64: each fund's governed target (core.staking)
    staking: InsuranceStakingParams | None = None

    @property
    def market_count(self) -> int:
        return len(self.tickers)

    @property
    def account_count(self) -> int:
        return len(self.accounts)


def extract_inputs(state: State) -> StressInputs:
    """The arrays of a committed state (raises ``ValueError`` if it has uncommitted changes)."""
    if state.dirty or not state.state_hash:
        raise ValueError("extract_inputs needs a committed state (end the block first)")
    markets = list(state.markets.values())
    tickers = tuple(m.ticker for m in markets)
    column = {ticker: i for i, ticker in enumerate(tickers)}
    tiers = [state.tiers[m.tier_id] for m in markets]
    adjusted = []
    bid_depth, ask_depth = [], []
    for market, tier in zip(markets, tiers):
        def value(lots: int, ticks: int, m: Market = market) -> int:
            return notional(lots, ticks, size_decimals=m.size_decimals, price_decimals=m.price_decimals)
        oi_notional = value(market.open_interest, market.oracle_price)
        adjusted.append(adjusted_initial_margin_ppm(tier.initial_margin_ppm, oi_notional, tier.oi_lower_cap_usdc,
                                                    tier.oi_upper_cap_usdc))
        low = market.oracle_price * (1_000_000 - DEPTH_BAND_PPM) // 1_000_000
        high = -(-market.oracle_price * (1_000_000 + DEPTH_BAND_PPM) // 1_000_000)
        bid_depth.append(sum(value(lots, price) for price, lots in market.book.iter_levels(BUY) if price >= low))
        ask_depth.append(sum(value(lots, price) for price, lots in market.book.iter_levels(SELL) if price <= high))
    pools = tuple(sorted(state.insurance_funds))
    targets = fund_targets(state)
    pool_index = {pool: i for i, pool in enumerate(pools)}
    accounts, collateral, rows, account_pool, risks = [], [], [], [], []
    for key, sub in state.subaccounts.items():
        if not sub.positions:
            continue
        accounts.append(key)
        collateral.append(sub.balance + get_pending_funding(state, sub))
        row = [0] * len(tickers)
        for ticker, position in sub.positions.items():
            row[column[ticker]] = position.size
        rows.append(row)
        account_pool.append(pool_index[subaccount_pool(state, sub)])
        risks.append(get_subaccount_risk(state, sub))
    lot_tick_value = [float(Fraction(10) ** (USDC_DECIMALS - m.size_decimals - m.price_decimals)) for m in markets]
    return StressInputs(
        state_hash=state.state_hash, height=state.height, tickers=tickers,
        tier_ids=_int64([m.tier_id for m in markets]),
        size_decimals=_int64([m.size_decimals for m in markets]),
        price_decimals=_int64([m.price_decimals for m in markets]),
        oracle_ticks=_int64([m.oracle_price for m in markets]),
        lot_tick_value=np.array(lot_tick_value, dtype=np.float64),
        initial_margin_ppm=_int64([t.initial_margin_ppm for t in tiers]),
        adjusted_initial_margin_ppm=_int64(adjusted),
        maintenance_fraction_ppm=_int64([t.maintenance_fraction_ppm for t in tiers]),
        open_interest_lots=_int64([m.open_interest for m in markets]),
        bid_depth_usdc=_int64(bid_depth), ask_depth_usdc=_int64(ask_depth),
        accounts=tuple(accounts), collateral=_int64(collateral),
        sizes=_int64(rows).reshape(len(accounts), len(tickers)),
        account_pool=_int64(account_pool),
        net_collateral=_int64([r[0] for r in risks]), initial_requirement=_int64([r[1] for r in risks]),
        maintenance_requirement=_int64([r[2] for r in risks]),
        pools=pools, insurance_funds=_int64([state.insurance_funds[p] for p in pools]),
        liquidation=copy.copy(state.liquidation),
        governance=copy.deepcopy(state.governance),
        staked=_int64([state.stake_pools[p].staked if p in state.stake_pools else 0 for p in pools]),
        fund_targets=_int64([targets[p][1] for p in pools]),
        staking=copy.copy(state.insurance_staking),
    )


def _int64(values: list) -> np.ndarray:
    """An int64 array, refusing values that int64 cannot hold (no silent wrap-around)."""
    flat = np.asarray(values, dtype=object).ravel()
    if any(abs(int(v)) > _INT64_MAX for v in flat):
        raise ValueError("a value does not fit in 64 bits")
    return np.array(values, dtype=np.int64)
