"""Malformed and unauthorised input is rejected with its exact code and changes nothing.

``CASES`` is a table of ``(sender, message, expected code)``, one comment per row; every message
is applied, inside an open block, to the same small exchange (``bad_input_genesis``: ALICE bids
0.1 BTC at 49,000 as order 1 with client id 7) and must come back ``{"ok": false, "code": ...}``
with the full state hash and the block's events unchanged. Malformed JSON is rejected by
``decode_message`` (before the state machine), the rest by the handlers. Structural mistakes in
scenario files raise ``ScenarioError`` naming the block, the transaction and the field.
"""
from __future__ import annotations

import copy

import pytest

from bastion.core.errors import ProtocolError
from bastion.core.margin import get_subaccount_risk
from bastion.core.timefmt import format_iso_ms
from bastion.core.transition import apply_block
from bastion.scenario import ScenarioError, run_scenario
from builders import (
    ALICE, BOB, BRIDGE, BTC, CAROL, ETH, ORACLE, PEPE, STRANGER, Chain, cancel_all, cancel_order, default_accounts,
    cancel_proposal, council_attest, register_stress_report, delegate, deposit, execute, genesis, market, oracle_update,
    place_order, queue,
    set_leverage, set_margin_mode, steward_change, submit_proposal, subaccount, transfer, transfer_bgov, tx, vote,
    withdraw, without,
)

HALT = "HALT-USD"  # paused
WIND = "WIND-USD"  # reduce-only (winding down)
ALICE_BID = place_order(side="buy", size="0.1", price="49000", client_id=7)  # rests as order 1
VALID_ADDRESS_UPPER = "0x" + "AB" * 20
DUST = "0x" + "5d" * 20  # a subaccount with 0.5 USDC: below the first open-order tier (20 USDC), so no resting order

CASES = [
    # ---------------------------------------------------------------- message shape (decode_message)
    (ALICE, {"type": "place_orders"}, "unknown_message_type"),                # unknown message type
    (ALICE, without(place_order(), "type"), "unknown_message_type"),          # no type at all
    (ALICE, {**place_order(), "type": 3}, "unknown_message_type"),            # type is not a string
    (ALICE, ["place_order"], "invalid_message"),                               # not a JSON object
    (ALICE, place_order(leverage="10"), "unknown_field"),                     # unknown field
    (ALICE, withdraw(memo="hi"), "unknown_field"),                            # unknown field, other message
    (ALICE, without(place_order(), "size"), "missing_field"),                 # missing required field
    (ALICE, without(place_order(), "client_id"), "missing_field"),            # missing client id
    (ALICE, without(transfer(), "to_owner"), "missing_field"),                # missing recipient
    (ALICE, without(oracle_update(), "prices"), "missing_field"),             # missing prices
    (ALICE, place_order(size=1), "invalid_field"),                            # int where a decimal string is expected
    (ALICE, place_order(price=50000.0), "invalid_field"),                     # float where a decimal string is expected
    (ALICE, place_order(subaccount="0"), "invalid_field"),                    # string where an int is expected
    (ALICE, place_order(subaccount=True), "invalid_field"),                   # bool where an int is expected
    (ALICE, place_order(client_id=False), "invalid_field"),                   # bool where an int is expected
    (ALICE, place_order(client_id=1.0), "invalid_field"),                     # float where an int is expected
    (ALICE, place_order(reduce_only=1), "invalid_field"),                     # int where a bool is expected
    (ALICE, place_order(reduce_only="true"), "invalid_field"),                # string where a bool is expected
    (ALICE, place_order(market=None), "invalid_field"),                       # null where a string is expected
    (ALICE, place_order(good_til=1767225700000), "invalid_field"),            # epoch ms instead of ISO-8601
    (ALICE, withdraw(amount=100), "invalid_field"),                           # int amount
    (ALICE, cancel_order(client_id="7"), "invalid_field"),                    # string client id
    (ORACLE, oracle_update({BTC: 50000}), "invalid_field"),                   # int price in the map
    (ORACLE, oracle_update({}), "invalid_field"),                             # empty price map
    (ORACLE, oracle_update([BTC, "50000"]), "invalid_field"),                 # list instead of a map
    # ---------------------------------------------------------------- numbers on the market grid
    (ALICE, place_order(market="DOGE-USD"), "unknown_market"),                # unknown market
    (ALICE, place_order(market="btc-usd"), "unknown_market"),                 # tickers are case-sensitive
    (ALICE, place_order(size="0.00001"), "too_many_decimals"),                # BTC lots are 0.0001
    (ALICE, place_order(price="50000.05"), "too_many_decimals"),              # BTC ticks are 0.1: off the grid
    (ALICE, place_order(subaccount=1, market=PEPE, size="1500", price="0.00001"), "too_many_decimals"),  # lot: 1000
    (ALICE, place_order(size="-0.1"), "negative_value"),                      # negative size
    (ALICE, place_order(price="-50000"), "negative_value"),                   # negative price
    (ALICE, place_order(size="0"), "non_positive_size"),                      # zero size
    (ALICE, place_order(size="0.0000"), "non_positive_size"),                 # zero size, with decimals
    (ALICE, place_order(price="0"), "non_positive_price"),                    # zero price
    (ALICE, place_order(size="0.0005"), "size_below_minimum"),                # below min_order_size 0.001
    (ALICE, place_order(size="1000.0001"), "size_above_maximum"),             # above max_order_size 1,000
    # ---------------------------------------------------------------- anti-spam limits (docs/protocol.md)
    (ALICE, place_order(subaccount=1, market=PEPE, size="1000", price="0.00001"), "order_below_min_notional"),  # 0.01
    (ALICE, place_order(subaccount=1, market=PEPE, side="sell", size="1000", price="0.01"),
     "order_below_min_notional"),                                             # 10 USDC at its limit, 0.01 at the oracle
    (DUST, place_order(size="0.001", price="1"), "too_many_open_orders"),    # 0.5 USDC of equity: 0 open orders
    (DUST, place_order(size="0.001", price="1", time_in_force="post_only"), "too_many_open_orders"),
    (DUST, place_order(size="0.001", price="1", order_type="stop_limit", trigger_price="60000"),
     "too_many_open_orders"),                                                 # conditional orders count
    (ALICE, place_order(size="abc"), "invalid_decimal"),                      # not a number
    (ALICE, place_order(size="1e-3"), "invalid_decimal"),                     # exponent notation
    (ALICE, place_order(size=" 0.1"), "invalid_decimal"),                     # whitespace
    (ALICE, place_order(size=""), "invalid_decimal"),                         # empty string
    (ALICE, place_order(size=".5"), "invalid_decimal"),                       # no integer part
    (ALICE, place_order(size="1."), "invalid_decimal"),                       # no fraction digits
    (ALICE, place_order(size="+1"), "invalid_decimal"),                       # explicit plus sign
    (ALICE, place_order(size="1,5"), "invalid_decimal"),                      # decimal comma
    (ALICE, place_order(size="NaN"), "invalid_decimal"),                      # float specials
    (ALICE, place_order(size="\u0661"), "invalid_decimal"),                   # a non-ASCII digit (Arabic one)
    (ALICE, place_order(price="fifty thousand"), "invalid_decimal"),          # price in words
    # ---------------------------------------------------------------- order fields
    (ALICE, place_order(side="long"), "invalid_side"),                        # invalid side
    (ALICE, place_order(side="BUY"), "invalid_side"),                         # sides are lower case
    (ALICE, place_order(time_in_force="day"), "invalid_time_in_force"),       # invalid time in force
    (ALICE, place_order(order_type="stop"), "invalid_order_type"),            # invalid order type
    (ALICE, place_order(self_trade="allow"), "invalid_self_trade"),           # invalid self-trade mode
    (ALICE, place_order(time_in_force="gtt"), "missing_field"),               # gtt without good_til
    (ALICE, place_order(time_in_force="gtt", good_til="2025-12-31T23:59:59Z"), "invalid_good_til"),  # past good_til
    (ALICE, place_order(time_in_force="gtt", good_til="tomorrow"), "invalid_time"),  # not ISO-8601
    (ALICE, place_order(time_in_force="gtt", good_til="2026-02-30T00:00:00Z"), "invalid_time"),  # no such day
    (ALICE, place_order(good_til="2026-01-02T00:00:00Z"), "invalid_field"),   # good_til on a gtc order
    (ALICE, place_order(order_type="market", time_in_force="gtc"), "invalid_time_in_force"),  # market + gtc
    (ALICE, place_order(order_type="market", time_in_force="post_only"), "invalid_time_in_force"),  # market + post-only
    (ALICE, place_order(trigger_price="51000"), "invalid_field"),             # trigger price on a limit order
    (ALICE, place_order(order_type="market", time_in_force="ioc", trigger_price="51000"), "invalid_field"),  # market
    # ---------------------------------------------------------------- conditional orders (checked at placement)
    (ALICE, place_order(order_type="stop_limit"), "missing_field"),           # no trigger_price
    (ALICE, place_order(order_type="take_profit_market", time_in_force="ioc"), "missing_field"),  # no trigger_price
    (ALICE, place_order(order_type="stop_limit", trigger_price=51000), "invalid_field"),  # int trigger price
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000.05"), "too_many_decimals"),  # off the 0.1 grid
    (ALICE, place_order(order_type="stop_limit", trigger_price="0"), "non_positive_price"),  # zero trigger price
    (ALICE, place_order(order_type="stop_limit", trigger_price="0.00"), "non_positive_price"),  # zero, decimals
    (ALICE, place_order(order_type="stop_limit", trigger_price="-51000"), "negative_value"),  # negative trigger
    (ALICE, place_order(order_type="stop_limit", trigger_price="5.1e4"), "invalid_decimal"),  # exponent notation
    (ALICE, place_order(order_type="stop_market", trigger_price="51000"), "invalid_time_in_force"),  # gtc market
    (ALICE, place_order(order_type="take_profit_market", trigger_price="45000", time_in_force="gtt",
                        good_til="2026-01-02T00:00:00Z"), "invalid_time_in_force"),  # market type, gtt
    (ALICE, place_order(order_type="stop_market", trigger_price="51000", time_in_force="post_only"),
     "invalid_time_in_force"),                                                # market type, post-only
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", time_in_force="day"),
     "invalid_time_in_force"),                                                # unknown time in force
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", side="long"), "invalid_side"),
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", self_trade="allow"), "invalid_self_trade"),
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", size="0.0005"), "size_below_minimum"),
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", size="1000.0001"), "size_above_maximum"),
    (ALICE, place_order(subaccount=1, market=PEPE, size="1000", price="0.00001", order_type="stop_limit",
                        trigger_price="0.000011"), "order_below_min_notional"),
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", price="50000.05"), "too_many_decimals"),
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", price="0"), "non_positive_price"),
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", time_in_force="gtt"), "missing_field"),
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", time_in_force="gtt",
                        good_til="2025-12-31T23:59:59Z"), "invalid_good_til"),  # past good_til
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", good_til="2026-01-02T00:00:00Z"),
     "invalid_field"),                                                        # good_til on a gtc stop-limit
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", client_id=2**32), "invalid_client_id"),
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", client_id=7), "duplicate_client_id"),
    (ALICE, place_order(order_type="take_profit_limit", trigger_price="45000", side="sell", reduce_only=True),
     "reduce_only_would_increase"),                                           # no position to reduce
    (BOB, place_order(order_type="stop_market", trigger_price="49000", side="buy", reduce_only=True,
                      time_in_force="ioc"), "reduce_only_would_increase"),    # BOB is long: a buy adds
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", size="1000"), "insufficient_margin"),
    (ALICE, place_order(order_type="stop_market", trigger_price="51000", size="1000", price="60000",
                        time_in_force="ioc"), "insufficient_margin"),         # margin at the worst price
    (ALICE, place_order(order_type="stop_limit", trigger_price="0.00002", market=PEPE, size="1000",
                        price="0.00001"), "isolated_market_requires_isolated_subaccount"),
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", subaccount=1),
     "subaccount_isolated_to_other_market"),                                  # sub 1 is isolated to PEPE
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", market=HALT), "market_not_trading"),
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", market=WIND), "market_reduce_only"),
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", subaccount=9), "subaccount_not_found"),
    (STRANGER, place_order(order_type="stop_limit", trigger_price="51000"), "subaccount_not_found"),
    (ALICE, place_order(order_type="stop_limit", trigger_price="51000", market="DOGE-USD"), "unknown_market"),
    (ALICE, place_order(client_id=-1), "invalid_client_id"),                  # negative client id
    (ALICE, place_order(client_id=2**32), "invalid_client_id"),               # client id above 2^32-1
    (ALICE, place_order(client_id=7), "duplicate_client_id"),                 # client id of the open order 1
    (ALICE, place_order(side="sell", reduce_only=True), "reduce_only_would_increase"),  # no position to reduce
    (BOB, place_order(side="sell", price="49000", time_in_force="post_only"), "post_only_would_cross"),
    (ALICE, place_order(size="1000"), "insufficient_margin"),                 # 50M USDC of BTC on 100k
    (BOB, place_order(side="sell", size="1", price="49000", time_in_force="fok"), "fok_not_filled"),  # 0.1 bid
    (ALICE, place_order(market=PEPE, size="1000", price="0.00001"), "isolated_market_requires_isolated_subaccount"),
    (ALICE, place_order(subaccount=1), "subaccount_isolated_to_other_market"),  # sub 1 is isolated to PEPE
    (ALICE, place_order(market=HALT), "market_not_trading"),                 # paused market
    (ALICE, place_order(market=WIND), "market_reduce_only"),                 # reduce-only market, no position
    (ALICE, place_order(market=WIND, reduce_only=True), "reduce_only_would_increase"),
    # ---------------------------------------------------------------- subaccounts and ownership
    (ALICE, place_order(subaccount=128), "invalid_subaccount"),               # numbers are 0..127
    (ALICE, place_order(subaccount=-1), "invalid_subaccount"),
    (ALICE, place_order(subaccount=9), "subaccount_not_found"),               # ALICE has no subaccount 9
    (STRANGER, place_order(), "subaccount_not_found"),                        # order for a subaccount the sender lacks
    (STRANGER, withdraw(), "subaccount_not_found"),                           # withdraw likewise
    (STRANGER, cancel_order(order_id=1), "subaccount_not_found"),             # cancel likewise
    (BOB, cancel_order(order_id=1), "order_not_found"),                       # ALICE's order, from BOB's subaccount
    (BOB, cancel_order(client_id=7), "order_not_found"),                      # ALICE's client id, from BOB
    (ALICE, cancel_order(client_id=8), "order_not_found"),                    # no such client id
    (ALICE, cancel_order(order_id=1, client_id=7), "invalid_message"),        # both ids
    (ALICE, cancel_order(), "invalid_message"),                               # neither id
    (ALICE, cancel_order(subaccount=128, order_id=1), "invalid_subaccount"),
    (ALICE, cancel_all(market="DOGE-USD"), "unknown_market"),
    (ALICE, cancel_all(subaccount=-1), "invalid_subaccount"),
    # ---------------------------------------------------------------- collateral
    (ALICE, withdraw(amount="1000000"), "insufficient_free_collateral"),      # more than the 100k held
    (ALICE, withdraw(amount="0"), "non_positive_amount"),
    (ALICE, withdraw(amount="-1"), "negative_value"),
    (ALICE, withdraw(amount="0.0000001"), "too_many_decimals"),               # below one micro-USDC
    (ALICE, withdraw(subaccount=128), "invalid_subaccount"),
    (ALICE, transfer(to_owner=ALICE, to_subaccount=0), "invalid_recipient"),  # to the same subaccount
    (ALICE, transfer(amount="1000000"), "insufficient_free_collateral"),
    (BOB, withdraw(amount="98000"), "insufficient_free_collateral"),         # BOB: 100k equity, IMR 3k
    (BOB, transfer(to_owner=ALICE, amount="97000.000001"), "insufficient_free_collateral"),  # one micro too many
    (ALICE, transfer(amount="0"), "non_positive_amount"),
    (ALICE, transfer(to_subaccount=128), "invalid_subaccount"),
    (ALICE, transfer(to_owner="0x1234"), "invalid_address"),                  # too short
    (ALICE, transfer(to_owner="bob"), "invalid_address"),                     # not hex
    (ALICE, transfer(to_owner="0X" + "ab" * 20), "invalid_address"),          # upper-case prefix
    (ALICE, transfer(to_owner="0x" + "ab" * 20 + "c"), "invalid_address"),    # 41 hex digits
    (ALICE, transfer(to_owner="0x" + "zz" * 20), "invalid_address"),          # non-hex digits
    (ALICE, deposit(), "not_bridge_operator"),                                # deposit from a non-bridge sender
    (ORACLE, deposit(), "not_bridge_operator"),
    (BRIDGE, deposit(owner="0xdeadbeef"), "invalid_address"),
    (BRIDGE, deposit(subaccount=128), "invalid_subaccount"),
    (BRIDGE, deposit(amount="0"), "non_positive_amount"),
    (BRIDGE, deposit(amount="-5"), "negative_value"),
    # ---------------------------------------------------------------- oracle
    (ALICE, oracle_update(), "not_oracle_operator"),                          # from a non-operator
    (BRIDGE, oracle_update(), "not_oracle_operator"),
    (ORACLE, oracle_update({"DOGE-USD": "0.1"}), "unknown_market"),           # unknown ticker
    (ORACLE, oracle_update({BTC: "51000", "DOGE-USD": "0.1"}), "unknown_market"),  # all or nothing
    (ORACLE, oracle_update({BTC: "0"}), "non_positive_price"),
    (ORACLE, oracle_update({BTC: "0.04"}), "non_positive_price"),             # rounds to 0 ticks of 0.1
    (ORACLE, oracle_update({BTC: "-50000"}), "invalid_decimal"),
    (ORACLE, oracle_update({BTC: "5e4"}), "invalid_decimal"),
    # ---------------------------------------------------------------- leverage and margin mode
    (ALICE, set_leverage(initial_margin="0.01"), "leverage_below_tier"),      # BTC's tier is 2%
    (ALICE, set_leverage(initial_margin="1.5"), "invalid_field"),             # above 100%
    (ALICE, set_leverage(initial_margin="0.0200001"), "too_many_decimals"),   # ppm grid
    (ALICE, set_leverage(market="DOGE-USD"), "unknown_market"),
    (BOB, set_leverage(initial_margin="1"), "insufficient_margin"),           # 100% of 150k > 100k equity
    (ALICE, set_margin_mode(), "subaccount_not_flat"),                        # ALICE has an open order
    (CAROL, set_margin_mode(mode="portfolio"), "invalid_field"),              # unknown mode
    (CAROL, set_margin_mode(market=None), "missing_field"),                   # isolated needs a market
    (CAROL, set_margin_mode(mode="cross", market=BTC), "invalid_field"),      # cross takes none
    (CAROL, set_margin_mode(market="DOGE-USD"), "unknown_market"),
    # ---------------------------------------------------------------- BGOV and delegation (ALICE: 100, self-delegated)
    (ALICE, without(transfer_bgov(), "to"), "missing_field"),                 # no recipient
    (ALICE, transfer_bgov(amount=10), "invalid_field"),                       # int amount
    (ALICE, transfer_bgov(to=None), "invalid_field"),                         # null recipient
    (ALICE, transfer_bgov(to="0x1234"), "invalid_address"),                   # too short
    (ALICE, transfer_bgov(to=VALID_ADDRESS_UPPER[:-1]), "invalid_address"),   # 39 bytes
    (ALICE, transfer_bgov(to=ALICE), "invalid_recipient"),                    # to self
    (ALICE, transfer_bgov(to=ALICE.upper().replace("0X", "0x")), "invalid_recipient"),  # to self, other case
    (ALICE, transfer_bgov(amount="0"), "non_positive_amount"),
    (ALICE, transfer_bgov(amount="0.000000"), "non_positive_amount"),         # zero, with decimals
    (ALICE, transfer_bgov(amount="-1"), "negative_value"),
    (ALICE, transfer_bgov(amount="0.0000001"), "too_many_decimals"),          # BGOV has 6 decimals
    (ALICE, transfer_bgov(amount="1e3"), "invalid_decimal"),
    (ALICE, transfer_bgov(amount="100.000001"), "insufficient_bgov"),         # one unit above the balance
    (BOB, transfer_bgov(to=ALICE, amount="1"), "insufficient_bgov"),          # BOB holds no BGOV
    (ALICE, without(delegate(), "delegatee"), "missing_field"),
    (ALICE, delegate(delegatee=1), "invalid_field"),                          # int delegatee
    (ALICE, delegate(delegatee="alice"), "invalid_address"),
    (ALICE, delegate(delegatee=ALICE), "delegate_unchanged"),                 # already self-delegated
    (BOB, delegate(delegatee="0x" + "0" * 40), "delegate_unchanged"),         # undelegate while not delegated
]


def bad_input_genesis() -> dict:
    """The default genesis plus a paused and a reduce-only market; BOB long 3 BTC (150k) on 100k of
    equity, DAVE short them; BTC's minimum order 0.001, maximum 1,000; ALICE holds 100 BGOV, delegated
    to herself; DUST holds 0.5 USDC."""
    markets = [market(BTC, min_order_size="0.001", max_order_size="1000"), market(ETH), market(PEPE),
               market(HALT, status="paused"), market(WIND, status="reduce_only")]
    accounts = default_accounts()
    accounts[0].update(bgov="100", delegate=ALICE)
    accounts[1]["subaccounts"][0] = subaccount(0, "-50000", positions=[{"market": BTC, "size": "3"}])
    accounts[3]["subaccounts"][0] = subaccount(0, "250000", positions=[{"market": BTC, "size": "-3"}])
    accounts.append({"address": DUST, "subaccounts": [subaccount(0, "0.5")]})
    return genesis(markets=markets, accounts=accounts)


@pytest.fixture
def chain() -> Chain:
    chain = Chain(bad_input_genesis())
    placed = chain.block([(ALICE, ALICE_BID)])
    assert placed.results == [{"ok": True, "order_id": 1, "market": BTC, "filled": 0, "status": "open"}]
    chain.open_block()
    return chain


def assert_rejected_without_change(chain: Chain, sender: str, msg, code: str) -> dict:
    hash_before, events_before = chain.full_hash(), list(chain.events)

    result = chain.submit(sender, msg)

    assert (result["ok"], result["code"]) == (False, code), result
    assert result["message"]
    assert chain.full_hash() == hash_before
    assert chain.events == events_before
    return result


@pytest.mark.parametrize(("sender", "msg", "code"), CASES)
def test_bad_message_is_rejected_with_its_code_and_changes_nothing(chain, sender, msg, code):
    assert_rejected_without_change(chain, sender, msg, code)


# ---------------------------------------------------------------------------------- governance proposals
# Proposal ids are placeholders replaced by the fixture's proposals: PENDING (voting not started),
# ACTIVE (ALICE already voted), SUCCEEDED, QUEUED (timelock running), DEFEATED. ALICE: 90 BGOV left
# (the deposits of the three tallied proposals came back; ACTIVE and PENDING hold 5 each).
FEE = {"type": "set_fee_params", "insurance_share": "0.2"}
GOVERNANCE_CASES = [
    # submission: message shape
    (ALICE, submit_proposal(), "no_actions"),                                           # no action
    (ALICE, submit_proposal(*[FEE] * 17), "too_many_actions"),                          # 17 > 16
    (ALICE, submit_proposal(FEE, actions="x"), "invalid_field"),                        # actions not a list
    (ALICE, submit_proposal({"type": "mint_bgov"}), "unknown_action_type"),             # unknown action
    (ALICE, submit_proposal(["set_fee_params"]), "invalid_action"),                     # action not an object
    (ALICE, submit_proposal({"type": "set_fee_params"}), "missing_field"),              # action field missing
    (ALICE, submit_proposal({**FEE, "insurance_share": 0.2}), "invalid_field"),         # float in an action
    (ALICE, submit_proposal({**FEE, "memo": "x"}), "unknown_field"),                    # unknown action field
    (ALICE, without(submit_proposal(FEE), "deposit"), "missing_field"),                 # no deposit
    (ALICE, submit_proposal(FEE, title=""), "invalid_title"),                           # empty title
    (ALICE, submit_proposal(FEE, title="t" * 201), "invalid_title"),                    # title too long
    (ALICE, submit_proposal(FEE, description="d" * 20_001), "description_too_long"),
    # submission: deposit and threshold (min deposit 5, threshold 10 votes after the deposit)
    (ALICE, submit_proposal(FEE, deposit="4.999999"), "deposit_below_minimum"),
    (ALICE, submit_proposal(FEE, deposit="5.0000001"), "too_many_decimals"),
    (ALICE, submit_proposal(FEE, deposit="-5"), "negative_value"),
    (ALICE, submit_proposal(FEE, deposit="90.000001"), "insufficient_bgov"),           # one unit above the balance
    (ALICE, submit_proposal(FEE, deposit="85"), "below_proposal_threshold"),            # 5 votes left < 10
    (BOB, submit_proposal(FEE), "insufficient_bgov"),                                   # BOB holds no BGOV
    (ALICE, submit_proposal(FEE, title="fifth"), "proposer_has_live_proposal"),         # 4 live = max_live_proposals
    # submission: actions validated against the state
    (ALICE, submit_proposal({"type": "delist_market", "market": "DOGE-USD"}), "unknown_market"),
    (ALICE, submit_proposal({"type": "set_market_params", "market": BTC, "liquidity_tier": 9}),
     "unknown_liquidity_tier"),
    (ALICE, submit_proposal({"type": "set_liquidity_tier", "tier": 9, "initial_margin": "0.1"}),
     "unknown_liquidity_tier"),
    (ALICE, submit_proposal({"type": "set_market_params", "market": BTC, "taker_fee": "-0.0001"}), "invalid_fees"),
    (ALICE, submit_proposal({"type": "set_market_params", "market": BTC, "maker_fee": "-0.001"}),
     "invalid_fees"),                                                                   # rebate above the taker fee
    (ALICE, submit_proposal({"type": "set_market_params", "market": BTC, "max_open_interest": "0"}),
     "non_positive_value"),
    (ALICE, submit_proposal({"type": "set_market_params", "market": BTC, "min_order_size": "0.00001"}),
     "too_many_decimals"),                                                              # off BTC's lot grid
    (ALICE, submit_proposal({"type": "set_market_params", "market": BTC, "status": "final_settlement"}),
     "invalid_status"),                                                                 # delist_market does that
    (ALICE, submit_proposal({"type": "set_liquidity_tier", "tier": 1, "initial_margin": "0"}), "invalid_tier"),
    (ALICE, submit_proposal({"type": "set_liquidity_tier", "tier": 1, "oi_upper_cap": "1"}), "invalid_tier"),
    (ALICE, submit_proposal({"type": "set_fee_params", "insurance_share": "1.1"}), "invalid_field"),
    (ALICE, submit_proposal({"type": "set_market_params", "market": BTC, "max_order_size": "0.0001"}),
     "invalid_field"),                                                                  # below min_order_size 0.001
    (ALICE, submit_proposal({"type": "set_order_limits", "max_open_orders": -1}), "invalid_field"),
    (ALICE, submit_proposal({"type": "set_order_limits", "open_order_tiers": [
        {"min_equity": "10", "max_open_orders": 5}, {"min_equity": "10", "max_open_orders": 9}]}),
     "invalid_field"),                                                                  # equity must rise strictly
    (ALICE, submit_proposal({"type": "set_order_limits", "min_order_notional": "-1"}), "negative_value"),
    (ALICE, submit_proposal({"type": "set_liquidation_params", "withdrawal_pause_blocks": -1}), "invalid_field"),
    (ALICE, submit_proposal({"type": "set_liquidation_params", "settlement_twap_window_s": 59}),
     "invalid_field"),                                                                  # under a minute
    (ALICE, submit_proposal({"type": "set_liquidation_params", "settlement_twap_window_s": 86_401}),
     "invalid_field"),                                                                  # over a day
    (ALICE, submit_proposal({"type": "set_liquidation_params", "liquidation_grace_s": 14_401}),
     "invalid_field"),                                                                  # over 4 h
    (ALICE, submit_proposal({"type": "set_liquidation_params", "liquidation_grace_s": "600"}),
     "invalid_field"),                                                                  # not an integer
    (ALICE, submit_proposal({"type": "set_governance_params", "params": {"quorum": "0.1"}}), "unknown_field"),
    (ALICE, submit_proposal({"type": "set_governance_params", "params": {"veto_threshold": "0.33"}}),
     "invalid_field"),                                                                  # a fraction like 1/3
    (ALICE, submit_proposal({"type": "set_governance_params",
                             "params": {"tiers": {"critical": {"timelock_s": 60}}}}), "laxer_higher_tier"),
    (ALICE, submit_proposal({"type": "set_governance_params", "params": {"max_swing_extensions": 11}}),
     "invalid_field"),                                                                  # at most 10
    (ALICE, submit_proposal({"type": "set_governance_params", "params": {"max_swing_extensions": -1}}),
     "invalid_field"),
    (ALICE, submit_proposal({"type": "set_governance_params", "params": {"max_live_proposals": 0}}),
     "invalid_field"),                                                                  # at least 1
    (ALICE, submit_proposal({"type": "set_governance_params", "params": {"proposal_fee": "0.0000001"}}),
     "too_many_decimals"),
    (ALICE, submit_proposal({"type": "set_governance_params", "params": {"proposal_fee": "-1"}}),
     "negative_value"),
    # vote
    (ALICE, vote("00" * 32), "unknown_proposal"),                                       # nonexistent
    (ALICE, vote("PENDING"), "voting_not_started"),                                     # too early
    (ALICE, vote("DEFEATED"), "voting_closed"),                                         # too late
    (ALICE, vote("QUEUED"), "voting_closed"),                                           # too late
    (ALICE, vote("ACTIVE"), "already_voted"),
    (BOB, vote("ACTIVE", "maybe"), "invalid_vote_option"),
    (BOB, vote("ACTIVE", reason="r" * 1001), "reason_too_long"),
    (BOB, vote("ACTIVE"), "no_voting_power"),                                           # no BGOV at the snapshot
    (BOB, vote("ACTIVE", reason=7), "invalid_field"),
    # queue
    (ALICE, queue("00" * 32), "unknown_proposal"),
    (ALICE, queue("ACTIVE"), "voting_not_ended"),                                       # too early
    (ALICE, queue("DEFEATED"), "proposal_not_succeeded"),                               # wrong state
    (ALICE, queue("QUEUED"), "proposal_not_succeeded"),                                 # already queued
    # execute
    (ALICE, execute("00" * 32), "unknown_proposal"),
    (ALICE, execute("SUCCEEDED"), "proposal_not_queued"),                               # too early
    (ALICE, execute("QUEUED"), "timelock_not_elapsed"),                                 # too early
    (ALICE, execute("DEFEATED"), "proposal_not_executable"),                            # wrong state
    # cancel
    (ALICE, cancel_proposal("00" * 32), "unknown_proposal"),
    (ALICE, cancel_proposal("DEFEATED"), "proposal_not_cancelable"),
    (BOB, cancel_proposal("PENDING"), "proposer_above_threshold"),                      # only the proposer, pending
    (BOB, cancel_proposal("ACTIVE"), "proposer_above_threshold"),                       # not the proposer, active
    (BOB, cancel_proposal("QUEUED"), "proposer_above_threshold"),
    # council (this chain has none: every well-formed council message is from a non-member)
    (ALICE, without(council_attest("QUEUED"), "verdict"), "missing_field"),
    (ALICE, council_attest("QUEUED", verdict=True), "invalid_field"),
    (ALICE, council_attest("QUEUED"), "not_council_member"),
    (ALICE, without(register_stress_report(), "es99_loss"), "missing_field"),
    (ALICE, register_stress_report(var99_loss=1), "invalid_field"),                     # a number, not a string
    (ALICE, register_stress_report(), "not_council_member"),
    (ALICE, steward_change("fees.insurance_share_ppm", 0.2), "invalid_field"),              # a float value
    (ALICE, steward_change("fees.insurance_share_ppm", "0.2"), "not_council_member"),
    (ALICE, submit_proposal({"type": "set_council", "members": ALICE, "threshold": 1}), "invalid_field"),
    (ALICE, submit_proposal({"type": "set_council", "members": [ALICE], "threshold": 2}), "invalid_council"),
    (ALICE, submit_proposal({"type": "set_steward_bounds", "bounds": {"fees.insurance_share_ppm": {}}}),
     "invalid_steward_bound"),
]

GOVERNANCE = {"proposal_threshold": "10", "min_deposit": "5", "proposal_fee": "0", "execution_window_s": 3600,
              "late_quorum_extension_blocks": 0,
              "max_live_proposals": 4,        # QUEUED, SUCCEEDED, ACTIVE and PENDING are ALICE's: a fifth is refused
              "tiers": {name: {"voting_period_blocks": 2} for name in ("risk_reducing", "neutral")}}


@pytest.fixture
def governance_chain() -> tuple[Chain, dict[str, str]]:
    """ALICE (100 BGOV, self-delegated) proposes; block 6 is left open."""
    def submit(title: str) -> tuple[str, dict]:
        return (ALICE, submit_proposal(FEE, title=title))

    chain = Chain(bad_input_genesis() | {"governance": GOVERNANCE})
    first = chain.block([submit("queued"), submit("succeeded"), submit("defeated")]).results   # height 1
    ids = {"QUEUED": first[0]["proposal_id"], "SUCCEEDED": first[1]["proposal_id"],
           "DEFEATED": first[2]["proposal_id"]}
    chain.block([])                                                                            # height 2
    chain.block([(ALICE, vote(ids["QUEUED"])), (ALICE, vote(ids["SUCCEEDED"])), (ALICE, vote(ids["DEFEATED"], "no"))])
    ids["ACTIVE"] = chain.block([submit("active")]).results[0]["proposal_id"]                # height 4: tally
    results = chain.block([(BOB, queue(ids["QUEUED"])), submit("pending")]).results           # height 5
    ids["PENDING"] = results[1]["proposal_id"]
    chain.open_block()                                                                         # height 6
    assert chain.submit(ALICE, vote(ids["ACTIVE"]))["ok"]
    statuses = {name: chain.state.proposals[pid].status for name, pid in ids.items()}
    assert statuses == {"QUEUED": "queued", "SUCCEEDED": "succeeded", "DEFEATED": "defeated", "ACTIVE": "active",
                        "PENDING": "pending"}
    return chain, ids


@pytest.mark.parametrize(("sender", "msg", "code"), GOVERNANCE_CASES)
def test_bad_governance_message_is_rejected_with_its_code_and_changes_nothing(governance_chain, sender, msg, code):
    chain, ids = governance_chain
    if isinstance(msg.get("proposal_id"), str) and msg["proposal_id"] in ids:
        msg = {**msg, "proposal_id": ids[msg["proposal_id"]]}
    assert_rejected_without_change(chain, sender, msg, code)


def test_every_rejection_leaves_the_committed_hash_of_the_block_unchanged(chain):
    reference = Chain(bad_input_genesis())
    reference.block([(ALICE, ALICE_BID)])

    for sender, msg, code in CASES:
        assert_rejected_without_change(chain, sender, msg, code)

    assert chain.end_block() == reference.block([], advance_s=1).state_hash


def test_good_til_equal_to_the_block_time_is_rejected(chain):
    now = format_iso_ms(chain.state.time_ms)

    assert_rejected_without_change(chain, ALICE, place_order(time_in_force="gtt", good_til=now), "invalid_good_til")


def test_upper_case_address_is_accepted_and_normalised(chain):
    result = chain.submit(ALICE, transfer(to_owner=VALID_ADDRESS_UPPER, amount="1"))

    assert result["ok"]
    assert chain.state.subaccounts[(VALID_ADDRESS_UPPER.lower(), 0)].balance == 1_000_000


def test_stale_market_accepts_only_reducing_orders():
    chain = Chain()
    chain.block([], advance_s=61)  # no oracle update for 61 s: every market is stale
    chain.open_block()
    assert chain.state.markets[BTC].stale

    assert_rejected_without_change(chain, ALICE, place_order(), "market_reduce_only")


def test_stale_market_accepts_only_reducing_conditional_orders():
    chain = Chain()
    chain.block([], advance_s=61)
    chain.open_block()

    assert_rejected_without_change(chain, ALICE, place_order(order_type="stop_limit", trigger_price="51000"),
                                   "market_reduce_only")


def test_untriggered_conditional_order_is_found_only_by_its_owner_and_keeps_its_client_id(chain):
    placed = chain.submit(ALICE, place_order(order_type="stop_limit", trigger_price="60000", client_id=8))
    assert placed == {"ok": True, "order_id": 2, "market": BTC, "status": "untriggered"}

    assert_rejected_without_change(chain, BOB, cancel_order(order_id=2), "order_not_found")
    assert_rejected_without_change(chain, BOB, cancel_order(client_id=8), "order_not_found")
    assert_rejected_without_change(chain, ALICE, cancel_order(subaccount=1, order_id=2), "order_not_found")
    assert_rejected_without_change(chain, ALICE, place_order(client_id=8), "duplicate_client_id")
    assert_rejected_without_change(chain, ALICE, place_order(order_type="stop_limit", trigger_price="61000",
                                                             client_id=8), "duplicate_client_id")


def test_book_dependent_checks_of_a_conditional_order_wait_for_its_trigger(chain):
    # BOB (long 3) reduces: a post-only sell at 49,000 would cross ALICE's bid, and no fill-or-kill
    # sell of 1 BTC can fill against 0.1; as untriggered conditional orders both are accepted
    post_only = place_order(order_type="take_profit_limit", side="sell", price="49000", trigger_price="60000",
                            time_in_force="post_only", client_id=1)
    fill_or_kill = place_order(order_type="take_profit_limit", side="sell", size="1", price="49000",
                               trigger_price="60000", time_in_force="fok", client_id=2)

    results = [chain.submit(BOB, post_only), chain.submit(BOB, fill_or_kill)]

    assert [(r["ok"], r["status"]) for r in results] == [(True, "untriggered"), (True, "untriggered")]
    assert list(chain.state.conditional_orders) == [2, 3]


# ------------------------------------------------------------------------------------- scenario files
def scenario() -> dict:
    return {"genesis": genesis(), "blocks": [
        {"advance": 1, "txs": [tx(ALICE, place_order())]},
        {"advance": 1, "txs": [tx(BOB, place_order(side="sell", time_in_force="ioc"))]},
    ]}


def edit(path: str, value=None, *, delete: bool = False):
    """A scenario editor: set (or delete) the value at ``path`` ("blocks.0.txs.0.sender")."""
    def apply(doc: dict) -> dict:
        doc = copy.deepcopy(doc)
        *parents, last = path.split(".")
        target = doc
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        key = int(last) if isinstance(target, list) else last
        if delete:
            del target[key]
        else:
            target[key] = value
        return doc
    return apply


SCENARIO_ERRORS = [
    # (edit, words the error message must contain)
    (edit("blocks.0.txs.0.sender", delete=True), ["block 1, tx 1", "sender"]),            # missing sender
    (edit("blocks.1.txs.0.msg", delete=True), ["block 2, tx 1", "msg"]),                  # missing msg
    (edit("blocks.0.txs.0.nonce", 5), ["block 1, tx 1"]),                                 # unknown tx field
    (edit("blocks.0.txs.0", "place_order"), ["block 1, tx 1"]),                          # tx not an object
    (edit("blocks.1.txs.0.sender", "bob"), ["block 2, tx 1, field 'sender'"]),           # invalid address
    (edit("blocks.1.advance", -1), ["block 2, field 'advance'"]),                         # negative advance
    (edit("blocks.1.advance", "1"), ["block 2, field 'advance'"]),                        # string advance
    (edit("blocks.1.advance", 1.5), ["block 2, field 'advance'"]),                        # fractional advance
    (edit("blocks.1.advance", True), ["block 2, field 'advance'"]),                       # bool advance
    (edit("blocks.0.time", "2026-01-01T00:00:05Z"), ["block 1", "'advance'", "'time'"]),  # both time and advance
    (edit("blocks.0.advance", delete=True), ["block 1", "'advance'", "'time'"]),          # neither
    (lambda d: edit("blocks.1.time", "2025-12-31T00:00:00Z")(edit("blocks.1.advance", delete=True)(d)),
     ["block 2, field 'time'", "before the previous block"]),                             # time going backwards
    (lambda d: edit("blocks.0.time", "yesterday")(edit("blocks.0.advance", delete=True)(d)),
     ["block 1, field 'time'"]),                                                          # not ISO-8601
    (edit("blocks.0.wait", 1), ["block 1", "'wait'"]),                                   # unknown block field
    (edit("blocks.1.txs", {}), ["block 2, field 'txs'"]),                                 # txs not a list
    (edit("blocks.1", []), ["block 2"]),                                                  # block not an object
    (edit("blocks", {}), ["'blocks' must be a list"]),
    (edit("extra", 1), ["unknown top-level field 'extra'"]),
    (edit("genesis", delete=True), ["'genesis'"]),
    (edit("genesis.markets.0.size_decimals", "4"), ["genesis.markets[0].size_decimals"]),   # wrong type
    (edit("genesis.markets.1.price_decimals", 99), ["genesis.markets[1].price_decimals"]),  # out of range
    (edit("genesis.markets.0.oracle_price", "50000.05"), ["genesis.markets[0].oracle_price"]),  # off the grid
    (edit("genesis.markets.1.ticker", BTC), ["genesis.markets[1].ticker"]),                 # duplicate ticker
    (edit("genesis.markets.0.colour", "red"), ["genesis.markets[0].colour"]),               # unknown field
    (edit("genesis.markets", delete=True), ["genesis.markets"]),                            # required
    (edit("genesis.time", "2026-01-01 00:00"), ["genesis.time"]),
    (edit("genesis.oracle.max_move_per_block", "abc"), ["genesis.oracle.max_move_per_block"]),
    (edit("genesis.liquidity_tiers", [{"id": 0, "initial_margin": "x", "maintenance_fraction": "0.5"}]),
     ["genesis.liquidity_tiers[0].initial_margin"]),
    (edit("genesis.accounts.0.address", "0x12"), ["genesis.accounts[0].address"]),
    (edit("genesis.accounts.1.subaccounts.0.number", 128), ["genesis.accounts[1].subaccounts[0].number"]),
    (edit("genesis.accounts.0.subaccounts.0.positions", [{"market": BTC, "size": "1"}]),
     ["genesis.accounts", "do not balance"]),                                            # unbalanced positions
    (edit(f"genesis.insurance_funds.{ETH}", "5"), [f"genesis.insurance_funds.{ETH}"]),  # not an isolated market
    (edit("genesis.colour", "red"), ["genesis.colour"]),
    (edit("genesis.liquidation", {"settlement_twap_window_s": 30}), ["genesis.liquidation.settlement_twap_window_s"]),
    (edit("genesis.liquidation", {"liquidation_grace_s": 14_401}), ["genesis.liquidation.liquidation_grace_s"]),
]


@pytest.mark.parametrize(("change", "words"), SCENARIO_ERRORS)
def test_malformed_scenario_raises_scenario_error_naming_where(change, words):
    doc = change(scenario())

    with pytest.raises(ScenarioError) as error:
        run_scenario(doc)

    for word in words:
        assert word in str(error.value)


def test_scenario_itself_is_valid():
    result = run_scenario(scenario())

    assert [r["ok"] for block in result["blocks"] for r in block["results"]] == [True, True]


def test_malformed_message_in_a_well_formed_scenario_is_a_result_not_an_error():
    doc = edit("blocks.1.txs.0.msg", place_order(leverage="10"))(scenario())

    result = run_scenario(doc)

    assert result["blocks"][1]["results"] == [{"ok": False, "code": "unknown_field",
                                               "message": "place_order has no field 'leverage'", "field": "leverage"}]
    assert result["blocks"][1]["state_hash"] != result["blocks"][0]["state_hash"]  # the block still happened


def test_withdrawing_exactly_the_free_collateral_is_accepted(chain):
    result = chain.submit(BOB, withdraw(amount="97000"))  # TNC 100,000 - IMR 3,000

    assert result == {"ok": True}
    tnc, imr, _ = get_subaccount_risk(chain.state, chain.subaccount(BOB))
    assert tnc == imr == 3_000_000_000


def test_block_time_going_backwards_is_refused_before_anything_changes():
    chain = Chain()
    chain.block([], advance_s=10)
    hash_before, height_before = chain.full_hash(), chain.state.height

    with pytest.raises(ProtocolError) as error:
        apply_block(chain.state, chain.state.time_ms - 1, [])

    assert error.value.code == "time_goes_backwards"
    assert (chain.full_hash(), chain.state.height) == (hash_before, height_before)
