"""The settlement price of a delisting (``bastion.core.twap``, issue 16): the time-weighted oracle
price over the governed window ending at the start of the settling block, with exact numbers.

BTC-USD of ``builders``: price_decimals 1 (ticks of 0.1 USD), size_decimals 4. Genesis at T0 (a whole
minute); the oracle here moves up to 50% per block and stays fresh for a day unless stated.
"""
from __future__ import annotations

from builders import ALICE, BOB, BTC, GENESIS_TIME_MS as T0, ORACLE, Chain, account, genesis, oracle_update, subaccount

from bastion.core import twap
from bastion.core.snapshot import state_from_document, state_to_document

S = 1_000
ORACLE_CONFIG = {"operators": [ORACLE], "min_sources": 1, "max_staleness_s": 86_400, "max_source_deviation": "0.05",
                 "max_move_per_block": "0.5"}


def two_traders(**oracle) -> Chain:
    """ALICE long 1 BTC (usdc -40,000), BOB short 1 BTC (usdc 200,000), entries 50,000."""
    return Chain(genesis(oracle={**ORACLE_CONFIG, **oracle}, accounts=[
        account(ALICE, subaccount(usdc="-40000", positions=[{"market": BTC, "size": "1"}])),
        account(BOB, subaccount(usdc="200000", positions=[{"market": BTC, "size": "-1"}]))]))


def delist(chain: Chain) -> None:
    market = chain.state.markets[BTC]
    market.status = "final_settlement"  # what an executed delist_market does (governance.apply_change)
    chain.state.touch(market.key)


def events_of(result, kind: str) -> list[dict]:
    return [e for e in result.events if e["type"] == kind]


def test_the_settlement_price_averages_the_window_before_the_block_not_the_block_price():
    chain = two_traders()
    chain.block([(ORACLE, oracle_update({BTC: "60000"}))], advance_s=3_000)   # 60,000 from T0 + 3,000 s on
    delist(chain)
    # T0 + 4,200 s, with a pump to 90,000 in the settling block itself. Window 3,600 s: t - W = 600 s, a
    # minute checkpoint: 500,000 ticks for 2,400 s and 600,000 for 1,200 s -> 1,920,000,000 / 3,600 =
    # 533,333.33 -> 533,333 ticks (53,333.3 USD); the 900,000 of this block is in no window
    result = chain.block([(ORACLE, oracle_update({BTC: "90000"}))], advance_s=1_200)
    (price,) = events_of(result, "settlement_price")
    assert (price["price"], price["spot"], price["window_start_ms"], price["window_end_ms"]) == (
        533_333, 900_000, T0 + 600 * S, T0 + 4_200 * S)
    settled = {e["owner"]: e["amount"] for e in events_of(result, "final_settlement")}
    assert settled == {ALICE: 53_333_300_000, BOB: -53_333_300_000}
    assert chain.subaccount(ALICE).balance == 13_333_300_000 and chain.subaccount(BOB).balance == 146_666_700_000
    market = chain.state.markets[BTC]
    assert (market.status, market.oracle_price, market.settlement_price) == ("settled", 533_333, 533_333)
    # bounded history: the checkpoints from 600 s to 4,200 s, one a minute
    assert [t - T0 for t, _ in market.twap_checkpoints] == list(range(600 * S, 4_260 * S, 60 * S))


def test_a_pump_moves_the_price_by_at_most_its_share_of_the_window():
    chain = two_traders()
    chain.block([], advance_s=3_300)                                            # T0 + 3,300 s at 50,000
    chain.block([(ORACLE, oracle_update({BTC: "75000"}))], advance_s=1)         # pumped from T0 + 3,301 s
    delist(chain)
    result = chain.block([], advance_s=299)                                     # T0 + 3,600 s: 299 s pumped
    # the market is younger than the window: from genesis, 3,600 s; 500,000 x 3,301 + 750,000 x 299 =
    # 1,650,500,000 + 224,250,000 = 1,874,750,000 / 3,600 = 520,763.88 -> 520,764 ticks: +4.2%, not +50%
    (price,) = events_of(result, "settlement_price")
    assert (price["price"], price["window_start_ms"]) == (520_764, T0)
    assert chain.subaccount(ALICE).balance == -40_000_000_000 + 52_076_400_000


def test_a_market_stale_when_delisted_settles_later_at_the_price_fixed_then():
    chain = two_traders(max_staleness_s=60)
    delist(chain)
    chain.state.markets[BTC].submissions.clear()                                # no fresh source: stale
    result = chain.block([], advance_s=120)
    assert [e["price"] for e in events_of(result, "settlement_price")] == [500_000]
    assert chain.state.markets[BTC].status == "final_settlement" and events_of(result, "final_settlement") == []
    chain.block([], advance_s=3_000)                                            # still stale, an hour later
    result = chain.block([(ORACLE, oracle_update({BTC: "70000"}))], advance_s=60)   # fresh again (clamped 75,000)
    assert events_of(result, "settlement_price") == []                          # fixed once
    assert {e["owner"]: e["amount"] for e in events_of(result, "final_settlement")} == {
        ALICE: 50_000_000_000, BOB: -50_000_000_000}
    assert chain.state.markets[BTC].oracle_price == 500_000


def test_the_accumulator_is_bounded_hashed_and_restored_from_a_snapshot():
    chain = two_traders()
    for i in range(150):                                                        # 75 minutes of 30 s blocks
        chain.block([(ORACLE, oracle_update({BTC: "50000" if i % 2 else "50010"}))], advance_s=30)
        assert len(chain.state.markets[BTC].twap_checkpoints) <= 3_600 // 60 + 2
        assert chain.full_hash() == chain.state.state_hash
    document = state_to_document(chain.state)
    restored = state_from_document(document)
    assert restored.markets[BTC].twap_checkpoints == chain.state.markets[BTC].twap_checkpoints
    assert twap.settlement_twap(restored, restored.markets[BTC]) == twap.settlement_twap(chain.state,
                                                                                          chain.state.markets[BTC])
