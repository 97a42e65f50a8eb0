"""The trade page's reads (``bastion.web.trading``) and the pages' number filters
(``bastion.web.formatting``), with hand-worked figures on the test genesis (``builders``).

BTC-USD: 4 size decimals, 1 price decimal, oracle 50,000, taker fee 0.05%, large-cap tier (initial
margin 2%, maintenance 1.2%: asserted below), default funding 0.0001 per 8 h.
"""
from __future__ import annotations

import pytest
from builders import ALICE, BOB, BTC, CAROL, Chain, place_order

from bastion.web.formatting import clock, duration, group, moment, pct, signed_pct, usd, usd_compact
from bastion.web.trading import (
    DAY_MS, describe_account_summary, describe_depth, describe_market_stats, describe_positions,
)

HOUR_MS = 3_600_000


@pytest.fixture
def chain() -> Chain:
    """Bob asks 0.1 at 50,100 and 0.2 at 50,200, Carol bids 0.3 at 49,900; Alice takes 0.1 at 50,100."""
    chain = Chain()
    assert chain.state.tiers[chain.state.markets[BTC].tier_id].initial_margin_ppm == 20_000
    for sender, msg in ((BOB, place_order(side="sell", size="0.1", price="50100", client_id=1)),
                        (BOB, place_order(side="sell", size="0.2", price="50200", client_id=2)),
                        (CAROL, place_order(side="buy", size="0.3", price="49900", client_id=1)),
                        (ALICE, place_order(side="buy", size="0.1", price="50100", client_id=1, time_in_force="ioc"))):
        assert chain.submit(sender, msg)["ok"], msg
    chain.end_block()
    return chain


def test_the_book_has_cumulative_depth_and_the_spread(chain):
    depth = describe_depth(chain.state.markets[BTC], 12)

    # Alice took the 0.1 at 50,100: the asks left are 0.2 at 50,200; the bid 0.3 at 49,900
    assert depth["asks"] == [{"price": "50200", "size": "0.2", "cumulative": "0.2", "depth_pct": 66}]
    assert depth["bids"] == [{"price": "49900", "size": "0.3", "cumulative": "0.3", "depth_pct": 100}]
    # spread 300 on a mid of 50,050: 300 / 50,050 = 0.005994 (ppm, truncated)
    assert depth["spread"] == {"price": "300", "ratio": "0.005994"}


def test_a_position_has_entry_mark_pnl_roe_liquidation_margin_and_funding(chain):
    (row,) = describe_positions(chain.state, ALICE, (0, 1))

    # 0.1 bought at 50,100 (cost 5,010), marked at the oracle 50,000 (value 5,000): PnL -10;
    # initial margin 2% of 5,000 = 100, so ROE = -10 / 100 = -10%
    assert (row["market"], row["side"], row["size"], row["entry_price"], row["mark"]) == (
        BTC, "long", "0.1", "50100", "50000")
    assert (row["unrealized_pnl"], row["margin"], row["roe"], row["funding"]) == ("-10", "100", "-0.1", "0")
    assert row["liquidation_price"] is None  # 99,987.495 USDC behind 0.1 BTC: no price liquidates it
    assert (row["subaccount"], row["notional"], row["abs_size"], row["price_decimals"]) == (0, "5000", "0.1", 1)
    assert describe_positions(chain.state, BOB, (0,))[0]["side"] == "short"


def test_the_account_summary_and_the_leverage_cap(chain):
    state = chain.state
    summary = describe_account_summary(state, state.subaccounts[(ALICE, 0)], state.markets[BTC])

    # equity 100,000 - fee 2.505 (0.05% of 5,010) - 10 = 99,987.495; free = equity - 100;
    # margin ratio = maintenance 60 (1.2% of 5,000) / equity = 0.000600075... -> 600 ppm
    assert summary == {"number": 0, "mode": "cross", "equity": "99987.495", "free_collateral": "99887.495",
                       "margin_ratio": "0.0006", "leverage": 50, "max_leverage": 50}
    assert chain.submit(ALICE, {"type": "set_leverage", "subaccount": 0, "market": BTC,
                                "initial_margin": "0.2"})["ok"]
    assert describe_account_summary(state, state.subaccounts[(ALICE, 0)], state.markets[BTC])["leverage"] == 5
    assert describe_account_summary(state, None, state.markets[BTC]) is None


def test_the_market_stats_read_the_last_24_hours(chain):
    state, market = chain.state, chain.state.markets[BTC]
    now = state.time_ms
    hourly = [{"start_ms": now - DAY_MS - 2 * HOUR_MS, "open": 400_000, "volume_quote": 7_000_000},  # too old
              {"start_ms": now - 2 * HOUR_MS, "open": 490_000, "volume_quote": 1_500_000_000},
              {"start_ms": now - HOUR_MS, "open": 495_000, "volume_quote": 5_010_000_000}]

    stats = describe_market_stats(state, market, hourly)

    # change: 50,000 - 49,000 = 1,000, 1,000 / 49,000 = 0.020408 (truncated); volume 1,500 + 5,010
    assert stats["change_24h"] == {"price": "1000", "ratio": "0.020408"}
    assert stats["volume_24h_usdc"] == "6510"
    assert stats["mark"] == "50000" and stats["open_interest_usdc"] == "5000"  # 0.1 BTC open at 50,000
    # no premium sample yet: the default 0.0001 per 8 h, 0.0000125 an hour (truncated to ppm)
    assert (stats["funding_rate_8h"], stats["funding_rate_1h"]) == ("0.0001", "0.000012")
    assert stats["next_funding_ms"] == (now // HOUR_MS + 1) * HOUR_MS
    assert stats["next_funding_in_s"] == (stats["next_funding_ms"] - now) // 1_000
    assert describe_market_stats(state, market, [])["change_24h"] is None


@pytest.mark.parametrize(("function", "value", "shown"), [
    (group, "1234567.5", "1,234,567.5"), (group, "-1234.05", "-1,234.05"), (group, "0.00000989", "0.00000989"),
    (group, None, "—"), (usd, "1234.5", "$1,234.50"), (usd, "-12.345", "-$12.34"), (usd, "-0.001", "$0.00"),
    (usd, "99987.495", "$99,987.50"), (usd_compact, "1234567", "$1.23M"), (usd_compact, "24090", "$24.09K"),
    (usd_compact, "999", "$999.00"), (pct, "0.05", "5%"), (pct, "-0.822266", "-82.23%"), (pct, "0.012", "1.2%"),
    (pct, None, "—"), (signed_pct, "0.0123", "+1.23%"), (signed_pct, "-0.0123", "-1.23%"), (signed_pct, "0", "0%"),
    (duration, 3725, "1h 02m 05s"), (duration, 125, "2m 05s"), (duration, 5, "5s"),
    (moment, 1_767_225_600_000, "2026-01-01 00:00:00"), (clock, 1_767_229_387_000, "01:03:07"), (clock, None, "—"),
])
def test_numbers_are_shown_for_people(function, value, shown):
    assert function(value) == shown


def test_a_percentage_keeps_the_places_asked_for():
    assert pct("0.000012", 4) == "0.0012%" and signed_pct("0.000012", 4) == "+0.0012%"
    assert pct("0.000012") == "0%"  # two places by default: a funding rate needs pct(…, 4)
