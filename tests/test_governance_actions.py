"""Governance actions of ``bastion.core.governance.actions``: listing, oracle operators, oracle and liquidation
parameters, listing bounds, treasury and insurance moves, upgrade to cross.

Validation and risk classes go through ``governance.compute_proposal_changes`` (what submission and
execution run). Effects are applied with ``enact``, which does what ``governance.execute`` does
after its checks (every change through ``change_param``, one params epoch), so that risk-increasing
and critical actions can be tested before the council's stress gate is wired in.

The chain is ``builders.genesis()``: BTC-USD (tier 0, 2%), ETH-USD (tier 2, 10%), PEPE-USD
(isolated-only, tier 4 "isolated" 5%, fund 10,000 USDC), cross fund 100,000 USDC, insurance share
10%, one oracle operator (max move 10% per block, 60 s staleness); the default tiers and listing
bounds (tier initial margin >= 5%, OI cap <= 1,000,000 USDC at the listing price).
"""
from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from bastion.core import governance
from bastion.core.governance.changes import Listing, Payment
from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.messages import SetMarketParams, canonical_action, decode_action
from bastion.core.snapshot import canonical_bytes, state_from_document, state_to_document
from bastion.core.state import ParamSource
from bastion.core.transition import check_invariants
from bastion.node.indexer import Indexer
from bastion.node.readmodels import open_read_models
from builders import (
    ALICE, BOB, BTC, CAROL, ETH, ORACLE, PEPE, STRANGER, Chain, address, genesis, oracle_update, place_order,
    set_margin_mode, transfer, withdraw,
)

SOL = "SOL-USD"
ORACLE2, ORACLE3 = address(0xA2), address(0xA3)
SOURCE = ParamSource("proposal", "ab" * 32, 1)
# SOL: lot 0.01 SOL, tick 0.01 USD, so notional = lots * ticks * 10^(6 - 2 - 2) = lots * ticks * 100 micro-USDC
LIST_SOL: dict[str, Any] = {"type": "list_market", "ticker": SOL, "size_decimals": 2, "price_decimals": 2,
                            "oracle_price": "100", "min_order_size": "0.1", "max_open_interest": "5000"}


def classify(state, *actions_json: dict) -> str:
    typed = tuple(decode_action(a, i) for i, a in enumerate(actions_json))
    return governance.compute_proposal_changes(state, typed)[1]


def refusal(state, *actions_json: dict) -> tuple[str, Any]:
    """The code and field of the ProtocolError that validation raises."""
    with pytest.raises(ProtocolError) as error:
        classify(state, *actions_json)
    return error.value.code, error.value.fields.get("field")


def enact(chain: Chain, *actions_json: dict) -> list[dict]:
    """Validate all, then apply all through ``change_param`` in an open block (as ``execute`` does),
    end the block, check the hash and the invariants; returns the block's events."""
    chain.open_block()
    typed = tuple(decode_action(a, i) for i, a in enumerate(actions_json))
    changes, _ = governance.compute_proposal_changes(chain.state, typed)
    for change in changes:
        governance.apply_effect(chain.state, change, SOURCE, chain.events)
    chain.state.params_epoch += 1
    chain.state.touch(("global",))
    events = chain.events
    state_hash = chain.end_block()
    assert state_hash == chain.full_hash()
    check_invariants(chain.state)
    return events


def ok(chain: Chain, *txs: tuple[str, dict], advance_s: int = 1):
    result = chain.block(list(txs), advance_s=advance_s)
    assert all(r["ok"] for r in result.results), result.results
    assert result.state_hash == chain.full_hash()
    check_invariants(chain.state)
    return result


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


def three_operator_genesis(**oracle: Any) -> dict:
    return genesis(oracle={"operators": [ORACLE, ORACLE2, ORACLE3], "min_sources": 1, "max_staleness_s": 60,
                           "max_source_deviation": "0.05", "max_move_per_block": "0.1", **oracle})


# ------------------------------------------------------------------------------------------- list_market
@pytest.mark.parametrize("overrides, code, field", [
    ({"ticker": BTC}, "market_exists", "ticker"),
    ({"ticker": "sol-usd"}, "invalid_listing", "list_market.ticker"),                  # lower case
    ({"min_order_size": "0.001"}, "invalid_listing", "list_market.min_order_size"),     # off the 0.01 grid
    ({"liquidity_tier": 9}, "invalid_listing", "list_market.liquidity_tier"),           # no such tier
    ({"taker_fee": "0.0001", "maker_fee": "-0.0002"}, "invalid_listing", "list_market.maker_fee"),
    ({"oracle": {"operators": [ORACLE]}}, "invalid_listing", "list_market.oracle.operators"),  # chain-wide
    ({"oracle": {"max_source_deviation": "1.5"}}, "invalid_field", "oracle.max_source_deviation"),
    ({"oracle": {"min_sources": 2}}, "too_few_oracle_operators", "operators"),          # one operator
    ({"liquidity_tier": 0}, "listing_tier_too_lax", "liquidity_tier"),                  # IMF 2% < 5%
    ({"liquidity_tier": 2, "max_open_interest": "10000.01"}, "listing_open_interest_too_high",
     "max_open_interest"),                                                              # 1,000,001 USDC > 1M
    ({"max_open_interest": "0"}, "listing_open_interest_too_high", "max_open_interest"),
])
def test_list_market_validation(overrides, code, field):
    assert refusal(build_state(genesis()), {**LIST_SOL, **overrides}) == (code, field)


def test_a_listing_needs_a_tier_when_none_is_named_isolated():
    state = build_state(genesis(liquidity_tiers=[{"id": 0, "name": "only", "initial_margin": "0.1",
                                                  "maintenance_fraction": "0.5"}],
                                markets=[{"ticker": BTC, "size_decimals": 4, "price_decimals": 1,
                                          "oracle_price": "50000"}],
                                insurance_funds={}, accounts=[]))
    assert refusal(state, LIST_SOL) == ("missing_field", "liquidity_tier")
    assert classify(state, {**LIST_SOL, "liquidity_tier": 0}) == "risk_increasing"


def test_a_listing_is_risk_increasing_and_at_the_cap_bound_is_accepted():
    state = build_state(genesis())
    # 10,000 SOL = 1,000,000 lots x 10,000 ticks x 100 = 1,000,000 USDC: exactly the bound
    assert classify(state, {**LIST_SOL, "max_open_interest": "10000"}) == "risk_increasing"
    assert refusal(state, LIST_SOL, LIST_SOL) == ("conflicting_actions", "actions")


def test_a_listed_market_is_isolated_with_its_own_empty_fund_and_trades_at_once():
    chain = Chain(genesis())
    events = enact(chain, {**LIST_SOL, "oracle": {"max_staleness_s": 120}})
    state = chain.state
    market = state.markets[SOL]
    assert list(state.markets) == [BTC, ETH, PEPE, SOL]                # sorted by ticker
    assert list(state.insurance_funds) == [PEPE, SOL, "cross"] and state.insurance_funds[SOL] == 0
    assert (market.isolated_only, market.status, market.tier_id) == (True, "active", 4)   # tier "isolated"
    assert (market.min_order_lots, market.max_open_interest_lots, market.oracle_price) == (10, 500_000, 10_000)
    assert (market.maker_fee_ppm, market.taker_fee_ppm) == (100, 500)  # genesis defaults 0.01% / 0.05%
    assert market.oracle_params.max_staleness_ms == 120_000 and market.oracle_params.max_move_per_block_ppm == 100_000
    assert market.submissions == {ORACLE: (10_000, state.time_ms)}
    assert of_type(events, "market_listed") == [{
        "type": "market_listed", "market": SOL, "size_decimals": 2, "price_decimals": 2, "oracle_price": 10_000,
        "tier_id": 4, "min_order_lots": 10, "max_open_interest_lots": 500_000, "maker_fee_ppm": 100,
        "taker_fee_ppm": 500, "isolated_only": True, "status": "active",
        "oracle": {"min_sources": 1, "max_staleness_ms": 120_000, "max_source_deviation_ppm": 50_000,
                   "max_move_per_block_ppm": 100_000},
        "source": "proposal", "proposal_id": SOURCE.ref, "proposal_number": 1}]
    assert of_type(events, "param_changed") == []                      # a listing is not a parameter change
    # a cross subaccount may not trade it; isolated ones (subaccount 2, funded from subaccount 0) do
    assert chain.submit(ALICE, place_order(market=SOL, size="1", price="100"))["code"] == \
        "isolated_market_requires_isolated_subaccount"
    chain.end_block()
    ok(chain, (ALICE, transfer(to_owner=ALICE, to_subaccount=2, amount="6")),
       (BOB, transfer(to_owner=BOB, to_subaccount=2, amount="1000")),
       (ALICE, set_margin_mode(subaccount=2, market=SOL)), (BOB, set_margin_mode(subaccount=2, market=SOL)))
    result = ok(chain, (BOB, place_order(subaccount=2, market=SOL, side="sell", size="1", price="100")),
                (ALICE, place_order(subaccount=2, market=SOL, size="1", price="100", time_in_force="ioc")))
    # 100 lots x 10,000 ticks x 100 = 100 USDC; taker fee 0.05% = 50,000, maker 0.01% = 10,000;
    # insurance share 10% of 60,000 = 6,000 to SOL's own fund
    fill = of_type(result.events, "fill")[0]
    assert (fill["size"], fill["price"], fill["to_insurance"]) == (100, 10_000, 6_000)
    assert chain.subaccount(ALICE, 2).balance == 6_000_000 - 100_000_000 - 50_000
    assert state.insurance_funds[SOL] == 6_000 and state.markets[SOL].open_interest == 100


def listed_and_traded() -> Chain:
    """SOL listed at 100; ALICE's subaccount 2 (6 USDC) long 1 SOL at 100 from BOB's subaccount 2."""
    chain = Chain(genesis())
    enact(chain, LIST_SOL)
    ok(chain, *[(owner, transfer(to_owner=owner, to_subaccount=2, amount=usdc))
                for owner, usdc in ((ALICE, "6"), (BOB, "1000"), (CAROL, "1000"))],
       *[(owner, set_margin_mode(subaccount=2, market=SOL)) for owner in (ALICE, BOB, CAROL)])
    ok(chain, (BOB, place_order(subaccount=2, market=SOL, side="sell", size="1", price="100")),
       (ALICE, place_order(subaccount=2, market=SOL, size="1", price="100", time_in_force="ioc")))
    return chain


def test_a_listed_market_takes_oracle_prices_and_its_holders_are_liquidated():
    chain = listed_and_traded()
    state = chain.state
    assert set(state.markets[SOL].holders) == {(ALICE, 2), (BOB, 2)}
    ok(chain, (CAROL, place_order(subaccount=2, market=SOL, size="1", price="95")))
    result = ok(chain, (ORACLE, oracle_update({SOL: "95"})))
    assert state.markets[SOL].oracle_price == 9_500                     # a 5% move, inside the 10% breaker
    # ALICE: balance 6 - 100 - 0.05 = -94.05, TNC -94.05 + 95 = 0.95 < MMR 95 x 5% x 0.6 = 2.85
    # fillable (95 - 1 x (1 - 0.95 / 2.85) x 1.5 x 2.85) = 92.15 <= CAROL's bid 95: fills at 95;
    # bankruptcy quote 94.05, fund delta min(95 - 94.05, 95 x 1.5%) = 0.95 into SOL's fund
    liquidation = of_type(result.events, "liquidation")[0]
    assert (liquidation["owner"], liquidation["number"], liquidation["market"]) == (ALICE, 2, SOL)
    assert liquidation["insurance_delta"] == 950_000 and liquidation["pool"] == SOL
    assert chain.subaccount(ALICE, 2).balance == 0 and SOL not in chain.subaccount(ALICE, 2).positions
    # taker fees 6,000 to insurance at the trade; CAROL's maker fee on the liquidation: 0.01% of 95 = 9,500, 10% = 950
    assert state.insurance_funds[SOL] == 6_000 + 950_000 + 950


def test_a_listed_market_ticks_funding_from_the_next_hour():
    chain = listed_and_traded()                                         # listed at 00:00:01 (hour 0), book empty
    result = ok(chain, (ORACLE, oracle_update({SOL: "100"})), advance_s=3600)   # 01:00:04: hour 1
    # premium samples all 0 (empty book): rate = 0 + default 100 ppm, within the clamp 6 x (5% - 3%);
    # index delta trunc(3600 s x 100 ppm as lots x 10,000 ticks x 100 / 28,800) = 12,500,000 per lot
    tick = [e for e in of_type(result.events, "funding_tick") if e["market"] == SOL]
    assert [(e["rate_8h_ppm"], e["elapsed_s"], e["index_delta"]) for e in tick] == [(100, 3600, 12_500_000)]
    # BOB's short (100 lots) collects 100 x 12,500,000 / 1e6 = 1,250 micro-USDC when next touched
    ok(chain, (BOB, transfer(subaccount=2, to_owner=BOB, to_subaccount=0, amount="1")))
    assert chain.subaccount(BOB, 2).balance == 1_000_000_000 + 100_000_000 - 10_000 + 1_250 - 1_000_000


def test_a_snapshot_after_listing_restores_the_same_state():
    chain = listed_and_traded()
    document = state_to_document(chain.state)
    assert document["format"] == "bastion-snapshot/22"
    restored = state_from_document(document)
    assert restored.state_hash == chain.state.state_hash
    assert list(restored.markets) == [BTC, ETH, PEPE, SOL] and restored.markets[SOL].holders == \
        chain.state.markets[SOL].holders


# ------------------------------------------------------------------------------------------- listing bounds
@pytest.mark.parametrize("action, risk_class", [
    ({"type": "set_listing_params", "min_initial_margin": "0.02"}, "risk_increasing"),   # laxer tiers allowed
    ({"type": "set_listing_params", "min_initial_margin": "0.1"}, "risk_reducing"),
    ({"type": "set_listing_params", "max_open_interest": "2000000"}, "risk_increasing"),
    ({"type": "set_listing_params", "max_open_interest": "500000"}, "risk_reducing"),
    ({"type": "set_listing_params", "min_initial_margin": "0.05"}, "neutral"),
])
def test_listing_bounds_are_classified(action, risk_class):
    assert classify(build_state(genesis()), action) == risk_class


def test_lowering_the_listing_minimum_admits_a_laxer_tier():
    chain = Chain(genesis())
    assert refusal(chain.state, {**LIST_SOL, "liquidity_tier": 0})[0] == "listing_tier_too_lax"
    assert refusal(chain.state, {"type": "set_listing_params", "min_initial_margin": "0"}) == \
        ("invalid_field", "min_initial_margin")
    events = enact(chain, {"type": "set_listing_params", "min_initial_margin": "0.02"})
    assert of_type(events, "param_changed")[0]["name"] == "listing.min_initial_margin_ppm"
    assert classify(chain.state, {**LIST_SOL, "liquidity_tier": 0}) == "risk_increasing"


# ------------------------------------------------------------------------------------------- oracle operators
@pytest.mark.parametrize("operators, risk_class", [
    ([ORACLE, ORACLE2, ORACLE3, address(0xA4)], "risk_increasing"),   # one more (issue 16: who sets prices)
    ([ORACLE, ORACLE2], "risk_increasing"),                           # one fewer
    ([ORACLE, ORACLE2, address(0xA4)], "risk_increasing"),            # same count, one replaced
    ([ORACLE3, ORACLE2, ORACLE.upper().replace("0X", "0x")], "neutral"),  # same set, any order and case
])
def test_oracle_operator_changes_are_classified(operators, risk_class):
    state = build_state(three_operator_genesis())
    assert classify(state, {"type": "set_oracle_operators", "operators": operators}) == risk_class


@pytest.mark.parametrize("operators, code, field", [
    ([], "no_oracle_operators", "operators"),
    ([ORACLE, ORACLE], "duplicate_oracle_operator", "operators"),
    ([ORACLE, "0x12"], "invalid_address", "actions[0].operators[1]"),  # refused as the action is decoded
    ([ORACLE], "too_few_oracle_operators", "operators"),              # BTC needs 2 sources
])
def test_oracle_operator_validation(operators, code, field):
    state = build_state(three_operator_genesis(min_sources=2))
    assert refusal(state, {"type": "set_oracle_operators", "operators": operators}) == (code, field)


def test_a_removed_operators_fresh_submissions_stop_counting():
    chain = Chain(three_operator_genesis())
    ok(chain, (ORACLE, oracle_update({BTC: "50000"})), (ORACLE2, oracle_update({BTC: "51000"})),
       (ORACLE3, oracle_update({BTC: "51000"})))
    assert chain.state.markets[BTC].oracle_price == 510_000            # median of 50,000 / 51,000 / 51,000
    events = enact(chain, {"type": "set_oracle_operators", "operators": [ORACLE]})
    assert of_type(events, "param_changed")[0] | {"height": 0} == {
        "type": "param_changed", "name": "oracle_operators", "old": [ORACLE, ORACLE2, ORACLE3], "value": [ORACLE],
        "height": 0, "source": "proposal", "proposal_id": SOURCE.ref, "proposal_number": 1}
    # the price at the end of the enacting block is ORACLE's alone (the others' are still fresh, but dropped)
    assert chain.state.markets[BTC].oracle_price == 500_000
    assert set(chain.state.markets[BTC].submissions) == {ORACLE}
    assert chain.submit(ORACLE2, oracle_update({BTC: "51000"}))["code"] == "not_oracle_operator"


# ------------------------------------------------------------------------------------------- market oracle params
@pytest.mark.parametrize("fields, risk_class", [
    ({"min_sources": 3}, "risk_reducing"),                            # more sources
    ({"min_sources": 1}, "risk_increasing"),                          # fewer
    ({"max_staleness_s": 120}, "risk_increasing"),                    # older prices accepted
    ({"max_staleness_s": 30}, "risk_reducing"),
    ({"max_source_deviation": "0.1"}, "risk_increasing"),             # wider
    ({"max_source_deviation": "0.01"}, "risk_reducing"),
    ({"max_move_per_block": "0.2"}, "risk_increasing"),               # bigger jumps per block
    ({"max_move_per_block": "0.05"}, "risk_reducing"),
    ({"min_sources": 2, "max_staleness_s": 60}, "neutral"),           # unchanged
    ({"min_sources": 3, "max_move_per_block": "0.2"}, "risk_increasing"),  # the strictest
])
def test_market_oracle_changes_are_classified(fields, risk_class):
    state = build_state(three_operator_genesis(min_sources=2))
    assert classify(state, {"type": "set_market_params", "market": BTC, **fields}) == risk_class


@pytest.mark.parametrize("fields, code, field", [
    ({"min_sources": 0}, "invalid_field", "min_sources"),
    ({"min_sources": 4}, "too_few_oracle_operators", "operators"),    # 3 operators
    ({"max_staleness_s": 0}, "invalid_field", "max_staleness_s"),
    ({"max_source_deviation": "0"}, "invalid_field", "max_source_deviation"),
    ({"max_move_per_block": "1.000001"}, "invalid_field", "max_move_per_block"),
    ({"max_move_per_block": "0.1234567"}, "too_many_decimals", "max_move_per_block"),
])
def test_market_oracle_validation(fields, code, field):
    state = build_state(three_operator_genesis(min_sources=2))
    assert refusal(state, {"type": "set_market_params", "market": BTC, **fields}) == (code, field)


def test_more_required_sources_make_a_market_stale_sooner():
    chain = Chain(three_operator_genesis())
    events = enact(chain, {"type": "set_market_params", "market": BTC, "min_sources": 3, "max_staleness_s": 30})
    assert [(e["name"], e["old"], e["value"]) for e in of_type(events, "param_changed")] == [
        (f"markets.{BTC}.oracle.min_sources", 1, 3), (f"markets.{BTC}.oracle.max_staleness_ms", 60_000, 30_000)]
    # genesis counts as a submission by all three at 00:00:00; at 00:00:31 they are 31 s old
    chain.block([(ORACLE, oracle_update({BTC: "50000"})), (ORACLE2, oracle_update({BTC: "50000"}))], advance_s=30)
    assert chain.state.markets[BTC].stale                              # 2 fresh < 3
    assert not chain.state.markets[ETH].stale                          # ETH keeps 1 source, 60 s


# ------------------------------------------------------------------------------------------- liquidation params
LIQUIDATION_CASES = [
    # (field, value, risk class); defaults: fee 1.5%, adjustment 1, spread 1.5, min notional 1,000,
    # portion 10%, per block 100,000, fund loss 1,000,000, pause 50 blocks
    ("max_liquidation_fee", "0.01", "risk_increasing"), ("max_liquidation_fee", "0.02", "risk_reducing"),
    ("bankruptcy_adjustment", "1.5", "risk_increasing"), ("spread_to_maintenance", "1", "risk_reducing"),
    ("spread_to_maintenance", "2", "risk_increasing"),
    ("min_position_notional", "500", "risk_increasing"), ("min_position_notional", "2000", "risk_reducing"),
    ("max_position_portion", "0.05", "risk_increasing"), ("max_position_portion", "0.2", "risk_reducing"),
    ("max_notional_per_block", "50000", "risk_increasing"), ("max_notional_per_block", "200000", "risk_reducing"),
    ("max_insurance_loss_per_block", "2000000", "risk_increasing"),
    ("max_insurance_loss_per_block", "500000", "risk_reducing"),
    ("withdrawal_pause_blocks", 10, "risk_increasing"), ("withdrawal_pause_blocks", 100, "risk_reducing"),
    ("bankruptcy_adjustment", "1", "neutral"),
]


@pytest.mark.parametrize("field, value, risk_class", LIQUIDATION_CASES)
def test_every_liquidation_param_is_classified(field, value, risk_class):
    state = build_state(genesis())
    assert classify(state, {"type": "set_liquidation_params", field: value}) == risk_class


@pytest.mark.parametrize("field, value, code", [
    ("max_liquidation_fee", "1.1", "invalid_field"),
    ("bankruptcy_adjustment", "0.999999", "invalid_field"),          # dYdX: at least 1
    ("spread_to_maintenance", "0", "invalid_field"),
    ("min_position_notional", "0", "invalid_field"),
    ("max_position_portion", "0", "invalid_field"),
    ("max_position_portion", "1.000001", "invalid_field"),
    ("max_notional_per_block", "0", "invalid_field"),
    ("max_insurance_loss_per_block", "-1", "negative_value"),
    ("withdrawal_pause_blocks", -1, "invalid_field"),
])
def test_liquidation_param_validation(field, value, code):
    assert refusal(build_state(genesis()), {"type": "set_liquidation_params", field: value}) == (code, field)


def test_liquidation_params_apply_to_the_engine_state():
    chain = Chain(genesis())
    enact(chain, {"type": "set_liquidation_params", "bankruptcy_adjustment": "1.2", "spread_to_maintenance": "2",
                  "min_position_notional": "500", "max_position_portion": "0.25", "max_notional_per_block": "50000"})
    liq = chain.state.liquidation
    assert (liq.bankruptcy_adjustment_ppm, liq.spread_to_maintenance_ppm, liq.min_position_notional_usdc,
            liq.max_position_portion_ppm, liq.max_notional_per_block_usdc) == (
        1_200_000, 2_000_000, 500_000_000, 250_000, 50_000_000_000)


# ------------------------------------------------------------------------------------------- treasury
def with_fees() -> Chain:
    """BOB sells ALICE 0.1 BTC at 50,000: 5,000 USDC; fees 2.5 + 0.5 = 3, 10% (0.3) to insurance: treasury 2.7."""
    chain = Chain(genesis())
    ok(chain, (BOB, place_order(side="sell")), (ALICE, place_order(time_in_force="ioc")))
    assert chain.state.fees_account == 2_700_000
    return chain


SPEND = {"type": "treasury_spend", "to_owner": STRANGER, "to_subaccount": 3, "amount": "2.7"}


@pytest.mark.parametrize("overrides, code, field", [
    ({"amount": "2.700001"}, "insufficient_treasury", "amount"),
    ({"amount": "0"}, "non_positive_amount", "amount"),
    ({"to_owner": "alice"}, "invalid_address", "actions[0].to_owner"),  # refused as the action is decoded
    ({"to_subaccount": 128}, "invalid_subaccount", "subaccount"),
])
def test_treasury_spend_validation(overrides, code, field):
    assert refusal(with_fees().state, {**SPEND, **overrides}) == (code, field)


def test_treasury_spends_are_critical_and_counted_together():
    state = with_fees().state
    assert classify(state, SPEND) == "critical"
    half = {**SPEND, "amount": "1.35"}
    assert classify(state, half, half) == "critical"                   # 2.7 in all: allowed
    assert refusal(state, half, half, {**SPEND, "amount": "0.000001"}) == ("insufficient_treasury", "amount")


def test_a_treasury_spend_pays_a_new_subaccount_and_conserves_collateral():
    chain = with_fees()
    events = enact(chain, SPEND)
    assert chain.state.fees_account == 0
    assert chain.subaccount(STRANGER, 3).balance == 2_700_000
    assert of_type(events, "treasury_spent") == [{
        "type": "treasury_spent", "to_owner": STRANGER, "to_number": 3, "amount": 2_700_000, "treasury": 0,
        "source": "proposal", "proposal_id": SOURCE.ref, "proposal_number": 1}]
    assert chain.state.param_history == []                             # money moves are not parameters


# ------------------------------------------------------------------------------------------- insurance
@pytest.mark.parametrize("from_pool, to_pool, amount, code, field", [
    ("DOGE-USD", "cross", "1", "unknown_pool", "from_pool"),
    ("cross", "treasury", "1", "unknown_pool", "to_pool"),            # never back into the treasury
    ("cross", "cross", "1", "same_pool", "to_pool"),
    (PEPE, "cross", "10000.000001", "insufficient_insurance_fund", "amount"),
    ("treasury", PEPE, "2.700001", "insufficient_treasury", "amount"),
    ("cross", PEPE, "-1", "negative_value", "amount"),
])
def test_insurance_transfer_validation(from_pool, to_pool, amount, code, field):
    action = {"type": "insurance_transfer", "from_pool": from_pool, "to_pool": to_pool, "amount": amount}
    assert refusal(with_fees().state, action) == (code, field)


def test_insurance_transfers_move_between_funds_and_from_the_treasury():
    chain = with_fees()                                                # cross 100,000.3, PEPE 10,000
    assert chain.state.insurance_funds == {"cross": 100_000_300_000, PEPE: 10_000_000_000}
    action = {"type": "insurance_transfer", "from_pool": "cross", "to_pool": PEPE, "amount": "100000.3"}
    assert classify(chain.state, action) == "critical"
    events = enact(chain, action, {"type": "insurance_transfer", "from_pool": "treasury", "to_pool": "cross",
                                   "amount": "2.7"})
    assert chain.state.insurance_funds == {"cross": 2_700_000, PEPE: 110_000_300_000}
    assert chain.state.fees_account == 0
    assert [(e["from_pool"], e["to_pool"], e["amount"], e["insurance_fund"]) for e in
            of_type(events, "insurance_transferred")] == [
        ("cross", PEPE, 100_000_300_000, 110_000_300_000), ("treasury", "cross", 2_700_000, 2_700_000)]


def test_transfers_in_one_proposal_never_overdraw_a_fund():
    state = build_state(genesis())
    to_pepe = {"type": "insurance_transfer", "from_pool": "cross", "to_pool": PEPE, "amount": "60000"}
    assert classify(state, to_pepe) == "critical"
    assert refusal(state, to_pepe, to_pepe) == ("insufficient_insurance_fund", "amount")  # 120,000 > 100,000
    # in order: cross 100,000 -> 40,000 -> 110,000 -> 50,000; PEPE 10,000 -> 70,000 -> 0 -> 60,000
    back = {"type": "insurance_transfer", "from_pool": PEPE, "to_pool": "cross", "amount": "70000"}
    assert classify(state, to_pepe, back, to_pepe) == "critical"
    assert refusal(state, back, to_pepe) == ("insufficient_insurance_fund", "amount")    # PEPE has 10,000 first


# ------------------------------------------------------------------------------------------- upgrade
UPGRADE = {"type": "upgrade_isolated_to_cross", "market": PEPE}


@pytest.mark.parametrize("market, code", [(BTC, "market_not_isolated"), ("DOGE-USD", "unknown_market")])
def test_upgrade_validation(market, code):
    assert refusal(build_state(genesis()), {**UPGRADE, "market": market}) == (code, "market")


def test_upgrade_is_risk_increasing_and_a_fund_merged_earlier_in_the_proposal_is_gone():
    state = build_state(genesis())
    assert classify(state, UPGRADE) == "risk_increasing"
    out_of_pepe = {"type": "insurance_transfer", "from_pool": PEPE, "to_pool": "cross", "amount": "1"}
    into_pepe = {"type": "insurance_transfer", "from_pool": "cross", "to_pool": PEPE, "amount": "1"}
    assert refusal(state, UPGRADE, out_of_pepe) == ("unknown_pool", "from_pool")
    assert classify(state, into_pepe, UPGRADE) == "critical"           # merged with the moved 1 USDC


def test_an_upgraded_market_trades_from_cross_and_its_fund_and_pause_merge():
    chain = Chain(genesis())
    state = chain.state
    chain.open_block()
    state.withdrawals_paused_until[PEPE] = state.height + 5             # as after a negative-equity account
    state.touch(("global",))
    chain.end_block()
    events = enact(chain, UPGRADE)
    assert not state.markets[PEPE].isolated_only
    assert state.insurance_funds == {"cross": 110_000_000_000}
    assert state.withdrawals_paused_until == {"cross": 6}
    assert of_type(events, "insurance_fund_merged") == [{
        "type": "insurance_fund_merged", "pool": PEPE, "into": "cross", "amount": 10_000_000_000,
        "insurance_fund": 110_000_000_000, "source": "proposal", "proposal_id": SOURCE.ref, "proposal_number": 1}]
    assert [(e["name"], e["old"], e["value"]) for e in of_type(events, "param_changed")] == [
        (f"markets.{PEPE}.isolated_only", True, False)]
    # the isolated subaccounts stay isolated to PEPE; their collateral is now in the paused cross pool
    assert chain.subaccount(ALICE, 1).mode == "isolated"
    assert chain.submit(ALICE, withdraw(subaccount=1))["code"] == "withdrawals_paused"
    assert chain.submit(ALICE, withdraw(subaccount=0))["code"] == "withdrawals_paused"
    chain.end_block()
    # cross subaccounts trade PEPE now: 1,000,000 PEPE (1,000 lots of 1,000) at 0.00001 = 10 USDC
    ok(chain, (BOB, place_order(market=PEPE, side="sell", size="1000000", price="0.00001")),
       (ALICE, place_order(market=PEPE, size="1000000", price="0.00001", time_in_force="ioc")))
    assert chain.subaccount(ALICE).positions[PEPE].size == 1_000
    assert state.markets[PEPE].open_interest == 1_000


def test_every_action_keeps_the_state_snapshot_exact():
    chain = with_fees()
    enact(chain, {"type": "set_oracle_operators", "operators": [ORACLE, ORACLE2]}, LIST_SOL, UPGRADE,
          {"type": "set_listing_params", "max_open_interest": "500000"},
          {"type": "set_market_params", "market": ETH, "max_move_per_block": "0.05"})
    restored = state_from_document(state_to_document(chain.state))
    assert restored.state_hash == chain.state.state_hash
    assert restored.listing.max_open_interest_usdc == 500_000_000_000
    assert restored.oracle_operators == (ORACLE, ORACLE2)


# ------------------------------------------------------------------------------------------- messages
def test_fields_added_to_an_action_enter_its_id_only_when_set():
    assert canonical_action(SetMarketParams(market=BTC, maker_fee="0")) == {
        "type": "set_market_params", "market": BTC, "liquidity_tier": None, "max_open_interest": None,
        "maker_fee": "0", "taker_fee": None, "min_order_size": None, "status": None}
    assert canonical_action(SetMarketParams(market=BTC, min_sources=2))["min_sources"] == 2


def test_operators_decode_to_a_tuple_and_must_be_a_list():
    action = decode_action({"type": "set_oracle_operators", "operators": [ORACLE]}, 0)
    assert action.operators == (ORACLE,)
    with pytest.raises(ProtocolError) as error:
        decode_action({"type": "set_oracle_operators", "operators": ORACLE}, 0)
    assert error.value.code == "invalid_field"


def test_listings_and_money_moves_are_operations_not_parameters():
    """A listing and a treasury spend come back as their own typed effects (applied with their own
    events, no parameter history); an upgrade is a parameter change plus the merge of the fund."""
    state = build_state(genesis())
    listing = governance.compute_action_changes(state, decode_action(LIST_SOL, 0))
    assert [type(effect) for effect in listing] == [Listing] and listing[0].market.ticker == SOL
    assert listing[0].name == "list_market.SOL-USD" and listing[0].risk == "risk_increasing"
    state.fees_account = 7_000_000
    spend = governance.compute_action_changes(state, decode_action(
        {"type": "treasury_spend", "to_owner": "0x" + "ab" * 20, "to_subaccount": 0, "amount": "5"}, 0))
    assert spend == [Payment("0x" + "ab" * 20, 0, 5_000_000)]
    assert (spend[0].name, spend[0].old_record, spend[0].risk) == ("treasury_spend", 7_000_000, "critical")


# ------------------------------------------------------------------------------------------- indexer
def test_the_indexer_indexes_a_listed_market_and_keeps_its_grid_across_a_restart():
    chain = Chain(genesis())
    models = open_read_models("sqlite:///:memory:")
    indexer = Indexer(models, genesis())
    events = enact(chain, LIST_SOL)
    indexer.apply_block(SimpleNamespace(height=1, time_ms=chain.state.time_ms, events=events))
    indexer.apply_block(ok(chain, *[(owner, transfer(to_owner=owner, to_subaccount=2, amount="1000"))
                                    for owner in (ALICE, BOB)],
                           *[(owner, set_margin_mode(subaccount=2, market=SOL)) for owner in (ALICE, BOB)]))
    restarted = Indexer(models, genesis())                              # grids from genesis + the listing's rows
    assert restarted.grids[SOL] == (2, 2)
    restarted.apply_block(ok(chain, (BOB, place_order(subaccount=2, market=SOL, side="sell", size="1", price="100")),
                             (ALICE, place_order(subaccount=2, market=SOL, size="1", price="100",
                                                 time_in_force="ioc"))))
    assert [(f["size"], f["price"], f["quote"]) for f in models.fills(market=SOL)] == [(100, 10_000, 100_000_000)]
    assert models.parameter_history(f"markets.{SOL}.max_open_interest_lots") == [
        {"name": f"markets.{SOL}.max_open_interest_lots", "height": 1, "seq": 0, "value": 500_000,
         "proposal_id": SOURCE.ref}]


def test_a_proposal_with_an_object_field_survives_a_snapshot_json_round_trip():
    # the listing's oracle object arrives with unsorted keys; the snapshot's canonical JSON sorts them
    chain = Chain(genesis(accounts=[{"address": ALICE, "bgov": "2000", "delegate": ALICE}]))
    listing = {**LIST_SOL, "oracle": {"max_staleness_s": 120, "min_sources": 1}}
    result = ok(chain, (ALICE, {"type": "submit_proposal", "title": "list SOL", "description": "", "deposit": "100",
                                "actions": [listing]}))
    assert result.results[0]["risk_class"] == "risk_increasing"
    document = json.loads(canonical_bytes(state_to_document(chain.state)))
    assert state_from_document(document).state_hash == chain.state.state_hash
