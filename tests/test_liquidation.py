"""Liquidation engine details that the golden scenarios do not isolate: the incremental scan, order
cancellation, self-liquidation, the reach of a withdrawal pause, and the unbacked-profit rule.
(Worked multi-block cases are golden scenarios in ``tests/scenarios/``.)"""
from __future__ import annotations

import json
from pathlib import Path

from builders import (
    ALICE, BOB, BTC, CAROL, DAVE, ETH, ORACLE, PEPE, Chain, account, genesis, oracle_update, place_order, subaccount,
    transfer, withdraw,
)

from bastion.core import liquidation, oracle
from bastion.scenario import run_scenario

SCENARIOS = Path(__file__).parent / "scenarios"

ISOLATED = {"mode": "isolated", "market": PEPE}


def position(ticker: str, size: str) -> dict:
    return {"market": ticker, "size": size}


def test_the_scan_values_only_holders_of_a_moved_market_and_last_blocks_watch_list() -> None:
    chain = Chain(genesis(accounts=[
        account(ALICE, subaccount(usdc="-40000", positions=[position(BTC, "1")])),
        account(BOB, subaccount(usdc="60000", positions=[position(BTC, "-1")])),
        account(CAROL, subaccount(usdc="-2000", positions=[position(ETH, "1")])),
        account(DAVE, subaccount(usdc="10000", positions=[position(ETH, "-1")]))]))
    chain.block([])  # the first scan after genesis values everyone
    chain.submit(ORACLE, oracle_update({BTC: "49000", ETH: "3000"}))  # ETH unchanged
    oracle.update_oracle_prices(chain.state, chain.events)
    assert liquidation._candidates(chain.state) == [(ALICE, 0), (BOB, 0)]
    chain.end_block()
    chain.open_block()
    oracle.update_oracle_prices(chain.state, chain.events)  # nothing moved, nobody touched
    assert liquidation._candidates(chain.state) == []


def test_a_liquidated_account_loses_its_orders_and_cannot_buy_its_own_liquidation() -> None:
    chain = Chain(genesis(accounts=[
        account(ALICE, subaccount(usdc="-48800", positions=[position(BTC, "1")]), subaccount(2, usdc="100000")),
        account(BOB, subaccount(usdc="100000", positions=[position(BTC, "-1")]))]))
    chain.block([(ALICE, place_order(side="sell", size="0.1", price="60000", client_id=7)),    # its own ask
                 (ALICE, {**place_order(side="buy", size="1", price="49000", client_id=8), "subaccount": 2}),
                 (BOB, place_order(side="buy", size="1", price="48900", client_id=9))])
    # 50,000 -> 49,000: ALICE 0's TNC -48,800 + 49,000 = 200 < MMR ceil(ceil(49,000 x 2%) x 0.6) = 588;
    # it sells 0.1 BTC (10% of 49,000 > the 1,000 minimum) down to 49,000 - (1 - 200/588) x 1.5 x 588 = 48,418
    result = chain.block([(ORACLE, oracle_update({BTC: "49000"}))])
    events = result.events
    cancelled = {(e["order_id"], e["reason"]) for e in events if e["type"] == "order_cancelled"}
    liquidations = [e for e in events if e["type"] == "liquidation"]
    assert liquidations, events
    assert (1, "liquidation") in cancelled          # ALICE 0's ask, before its positions are touched
    assert (2, "self_trade") in cancelled           # ALICE 2's bid: the same owner may not take it
    assert {e["maker"]["owner"] for e in liquidations} == {BOB}
    assert all(e["fill_price"] == 489_000 for e in liquidations)


def test_a_withdrawal_pause_holds_one_pool_only() -> None:
    """PEPE-USD's pool pauses after an isolated PEPE account goes negative; cross money moves freely,
    and PEPE money may move inside its pool but not out of it."""
    chain = Chain(genesis(accounts=[
        account(ALICE, subaccount(usdc="1000"), subaccount(1, usdc="-95000", positions=[position(PEPE, "10000000000")],
                                                           **ISOLATED),
                subaccount(2, usdc="1000", **ISOLATED)),
        account(BOB, subaccount(usdc="1000"), subaccount(1, usdc="110000", positions=[position(PEPE, "-10000000000")],
                                                         **ISOLATED))]))
    # PEPE 0.00001 -> 0.000009: ALICE 1's TNC = -95,000 + 90,000 = -5,000
    result = chain.block([(ORACLE, oracle_update({PEPE: "0.000009"}))])
    assert {"type": "withdrawals_paused", "pool": PEPE, "until_height": 51} in result.events
    assert chain.state.withdrawals_paused_until == {PEPE: 51}
    outcome = chain.block([(ALICE, withdraw(amount="10")),                                     # cross: fine
                           (BOB, {**withdraw(amount="10"), "subaccount": 1}),                   # PEPE: paused
                           (BOB, {**transfer(to_owner=BOB, to_subaccount=0, amount="10"), "subaccount": 1}),
                           (ALICE, {**transfer(to_owner=ALICE, to_subaccount=1, amount="10"), "subaccount": 2})])
    assert [r["ok"] for r in outcome.results] == [True, False, False, True]
    assert {r.get("code") for r in outcome.results[1:3]} == {"withdrawals_paused"}


def test_unbacked_profit_cannot_be_withdrawn_where_the_tier_does_not_count_it() -> None:
    """PEPE's isolated tier counts 0% of unrealised profit; BTC's large-cap tier 100%."""
    chain = Chain(genesis(accounts=[
        account(ALICE, subaccount(usdc="-40000", positions=[position(BTC, "1")]),
                subaccount(1, usdc="-90000", positions=[position(PEPE, "10000000000")], **ISOLATED)),
        account(BOB, subaccount(usdc="100000", positions=[position(BTC, "-1")]),
                subaccount(1, usdc="150000", positions=[position(PEPE, "-10000000000")], **ISOLATED))]))
    chain.block([(ORACLE, oracle_update({BTC: "55000", PEPE: "0.000011"}))])  # both +10%
    # PEPE: TNC -90,000 + 110,000 = 20,000; IMR 5% x 110,000 = 5,500; unbacked 110,000 - 100,000 = 10,000
    # -> free collateral 4,500 (14,500 if the profit counted)
    outcome = chain.block([(ALICE, {**withdraw(amount="4500.000001"), "subaccount": 1}),
                           (ALICE, {**withdraw(amount="4500"), "subaccount": 1}),
    # BTC: TNC -40,000 + 55,000 = 15,000; IMR 2% x 55,000 = 1,100; the 5,000 profit counts -> free 13,900
                           (ALICE, withdraw(amount="13900.000001")),
                           (ALICE, withdraw(amount="13900"))])
    assert [r["ok"] for r in outcome.results] == [False, True, False, True]
    assert outcome.results[0]["code"] == "insufficient_free_collateral"
    assert "4500000000 micro-USDC available" in outcome.results[0]["message"]
    assert "13900000000 micro-USDC available" in outcome.results[2]["message"]


def test_unbacked_profit_cannot_open_risk_elsewhere_in_a_cross_account() -> None:
    """ETH's small-cap tier counts half of unrealised profit toward initial margin, so only that
    half can back a new BTC position (placement needs TNC >= IMR after a full fill, fee included)."""
    chain = Chain(genesis(accounts=[
        account(ALICE, subaccount(usdc="-2700", positions=[position(ETH, "1")])),
        account(BOB, subaccount(usdc="10000", positions=[position(ETH, "-1")]))]))
    chain.block([(ORACLE, oracle_update({ETH: "3300"}))])
    # ALICE: TNC -2,700 + 3,300 = 600; IMR 10% x 3,300 = 330; profit 300 of which 150 unbacked
    # -> room 600 - 330 - 150 = 120 (270 if the whole profit counted).
    # 0.12 BTC at 50,000: IMR 2% x 6,000 = 120 plus the worst fee 0.05% x 6,000 = 3 -> 123 > 120
    # 0.11 BTC: 110 + 2.75 = 112.75 <= 120
    too_big = chain.submit(ALICE, place_order(size="0.12", price="50000", client_id=1))
    fits = chain.submit(ALICE, place_order(size="0.11", price="50000", client_id=2))
    assert (too_big["ok"], too_big.get("code"), fits["ok"]) == (False, "insufficient_margin", True)


def test_the_insurance_loss_limit_per_block_stops_a_liquidation() -> None:
    """liquidation_fund_pays.json's first block with max_insurance_loss_per_block 50: the fill at
    47,000 would cost the fund 71.2 (see that file's notes), more than the limit, so nothing fills;
    the account is solvent (TNC 288), so it waits instead of being deleveraged."""
    doc = json.loads((SCENARIOS / "liquidation_fund_pays.json").read_text())
    doc["genesis"]["liquidation"] = {**doc["genesis"].get("liquidation", {}), "max_insurance_loss_per_block": "50"}
    doc["blocks"] = doc["blocks"][:1]
    events = run_scenario(doc)["blocks"][0]["events"]
    (incomplete,) = [e for e in events if e["type"] == "liquidation_incomplete"]
    assert (incomplete["reason"], incomplete["attempted"], incomplete["filled"]) == ("insurance_fund", "0.1", "0")
    assert not [e for e in events if e["type"] in ("liquidation", "deleveraging")]


def test_final_settlement_cancels_orders_and_closes_positions_at_the_time_weighted_price() -> None:
    """The oracle update of the settling block (50,000 -> 51,000) is not the settlement price: the
    average over the window before the block is, and here the price was 50,000 all along."""
    chain = Chain(genesis(accounts=[
        account(ALICE, subaccount(usdc="-40000", positions=[position(BTC, "1")])),
        account(BOB, subaccount(usdc="60000", positions=[position(BTC, "-1")])),
        account(CAROL, subaccount(usdc="100000"))]))
    chain.block([(CAROL, place_order(size="0.1", price="49000", client_id=1)),
                 (ALICE, place_order(side="sell", size="1", price="45000", order_type="stop_market",
                                     time_in_force="ioc", trigger_price="45000", client_id=2))])
    market = chain.state.markets[BTC]
    market.status = "final_settlement"  # what governance's delisting does (issue 5)
    chain.state.touch(market.key)
    result = chain.block([(ORACLE, oracle_update({BTC: "51000"}))])
    cancelled = sorted((e["order_id"], e["reason"]) for e in result.events if e["type"] == "order_cancelled")
    assert cancelled == [(1, "final_settlement"), (2, "final_settlement")]
    settled = {e["owner"]: e["amount"] for e in result.events if e["type"] == "final_settlement"}
    assert settled == {ALICE: 50_000_000_000, BOB: -50_000_000_000}
    (price,) = [e for e in result.events if e["type"] == "settlement_price"]
    assert (price["price"], price["spot"]) == (500_000, 510_000)  # ticks of 0.1
    assert (market.status, market.open_interest, len(market.book), chain.state.conditional_orders) == (
        "settled", 0, 0, {})
    assert chain.subaccount(ALICE).balance == 10_000_000_000 and chain.subaccount(BOB).balance == 10_000_000_000
    assert not chain.subaccount(ALICE).positions and not chain.subaccount(BOB).positions
