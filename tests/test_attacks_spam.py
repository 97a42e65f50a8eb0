"""Spam attacks (issue 13, "Anti-spam in the protocol"), each as an attacker would try it, with the
outcome asserted: who could do what, what it cost, and that honest users are unaffected.

Measured on the code before these limits: one subaccount holding 0.01 USDC rested 5,000 orders;
one account rested 200,000 dust orders; 100,000 transactions from 50 unfunded keys were accepted
and stored forever. The rules under test (docs/protocol.md, "Anti-spam"): open orders per
subaccount capped by equity tier and a hard maximum (``too_many_open_orders``), a minimum notional
at the oracle price that reducing orders escape (``order_below_min_notional``), a maximum order
size (``size_above_maximum``), the ante check (``no_collateral``) at intake and at block building,
a per-sender mempool bound (``too_many_pending``) and per-address / per-sender API limits (429).

Default order limits (``bastion scenario defaults``): tiers [20 USDC: 5, 100: 20, 1,000: 100,
10,000: 1,000] open orders, at most 1,000 per subaccount, minimum notional 1 USDC. In the builders'
genesis BTC-USD has 0.0001 BTC lots and 0.1 USD ticks at an oracle price of 50,000: one lot is
worth 5 USDC at the oracle.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from builders import (
    ALICE, BOB, BRIDGE, BTC, CAROL, PEPE, Chain, account, address, cancel_order, default_accounts, deposit, genesis,
    market, place_order, subaccount, withdraw,
)
from fastapi.testclient import TestClient
from test_governance_actions import classify, enact

from bastion.app import ApiConfig, create_app
from bastion.core.errors import ProtocolError
from bastion.core.genesis import GENESIS_DEFAULTS, build_state
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.node.node import Node

SPAMMER = address(0x5BA)


def spam_chain(usdc: str, **genesis_overrides) -> Chain:
    """The builders' exchange plus SPAMMER holding ``usdc`` in a cross subaccount 0."""
    return Chain(genesis(accounts=[*default_accounts(), account(SPAMMER, subaccount(0, usdc))], **genesis_overrides))


def dust_bid(client_id: int, **fields) -> dict:
    """A bid of one lot (5 USDC at the oracle) far below the market: it rests and never fills."""
    return place_order(size="0.0001", price=str(1 + client_id), client_id=client_id, **fields)


# ------------------------------------------------------------------------------ open orders by equity
def test_a_subaccount_with_a_cent_cannot_rest_a_single_order():
    """The measured attack: 0.01 USDC rested 5,000 orders. Below the first tier (20 USDC) the limit is 0."""
    chain = spam_chain("0.01")
    chain.open_block()
    before = chain.full_hash()
    refused = chain.submit(SPAMMER, dust_bid(1))
    assert (refused["ok"], refused["code"]) == (False, "too_many_open_orders")
    assert "allows 0" in refused["message"] and "below the first tier" in refused["message"]
    conditional = chain.submit(SPAMMER, dust_bid(2, order_type="stop_limit", trigger_price="60000"))
    assert conditional["code"] == "too_many_open_orders"  # conditional orders count as open orders
    assert chain.full_hash() == before
    # an order that cannot rest is never refused for the cap: ioc, nothing to match, cancelled
    assert chain.submit(SPAMMER, dust_bid(3, time_in_force="ioc")) == {
        "ok": True, "order_id": 1, "market": BTC, "filled": 0, "status": "cancelled"}
    chain.end_block()
    assert len(chain.state.markets[BTC].book) == 0


def test_dust_orders_up_to_the_cap_then_refused_and_an_honest_order_still_fills():
    """50 USDC of equity is in the 20-USDC tier: 5 open orders (resting plus conditional), no more."""
    chain = spam_chain("50")
    results = [chain.submit(SPAMMER, dust_bid(i)) for i in range(1, 5)]
    results.append(chain.submit(SPAMMER, dust_bid(5, order_type="stop_limit", trigger_price="60000")))
    assert [r["ok"] for r in results] == [True] * 5
    before = chain.full_hash()
    refused = chain.submit(SPAMMER, dust_bid(6))
    assert (refused["ok"], refused["code"]) == (False, "too_many_open_orders")
    assert "has 5 open orders" in refused["message"] and "allows 5" in refused["message"]
    assert "tier from 20 USDC" in refused["message"]
    assert chain.full_hash() == before  # the refusal changed nothing
    sub = chain.subaccount(SPAMMER)
    assert (len(sub.orders), len(sub.conditional_orders)) == (4, 1)
    # cancelling one makes room for exactly one more
    assert chain.submit(SPAMMER, cancel_order(client_id=1))["ok"]
    assert chain.submit(SPAMMER, dust_bid(6))["ok"]
    assert chain.submit(SPAMMER, dust_bid(7))["code"] == "too_many_open_orders"
    # honest traders are untouched: BOB's ask rests, ALICE takes it in full
    assert chain.submit(BOB, place_order(side="sell", size="0.1", price="50000", client_id=1))["status"] == "open"
    taken = chain.submit(ALICE, place_order(size="0.1", price="50000", client_id=1, time_in_force="ioc"))
    assert (taken["ok"], taken["status"], taken["filled"]) == (True, "filled", 1_000)
    chain.end_block()
    assert chain.state.markets[BTC].open_interest == 1_000 and chain.full_hash() == chain.state.state_hash


def test_collateral_cannot_be_moved_away_from_open_orders():
    """The shuffle: rest the tier's orders, move the collateral to another subaccount (or withdraw
    it), rest more there. Collateral may leave only while what stays covers the open orders' tier."""
    chain = spam_chain("50")
    assert all(chain.submit(SPAMMER, dust_bid(i))["ok"] for i in range(1, 6))      # 5 open: the 20-USDC tier
    before = chain.full_hash()
    moved = chain.submit(SPAMMER, {"type": "transfer", "subaccount": 0, "to_owner": SPAMMER, "to_subaccount": 1,
                                   "amount": "30.000001"})
    assert moved["code"] == "too_many_open_orders" and "19.999999 USDC of equity left" in moved["message"]
    assert chain.submit(SPAMMER, withdraw(amount="49.5"))["code"] == "too_many_open_orders"
    assert chain.full_hash() == before
    assert chain.submit(SPAMMER, withdraw(amount="30"))["ok"]        # 20 USDC left: still the 20-USDC tier
    assert chain.submit(SPAMMER, {"type": "cancel_all", "subaccount": 0})["cancelled"] == 5
    assert chain.submit(SPAMMER, withdraw(amount="20"))["ok"]        # no open orders: everything may leave


def test_the_cap_follows_equity_not_the_balance_and_the_hard_maximum_binds_everyone():
    """Equity is net collateral: 0.5 USDC of balance with a position worth more lifts a subaccount
    into the first tier. And however rich, a subaccount keeps at most ``max_open_orders``."""
    limits = {"open_order_tiers": [{"min_equity": "1", "max_open_orders": 2},
                                   {"min_equity": "1000", "max_open_orders": 50}],
              "max_open_orders": 3, "min_order_notional": "1"}
    accounts = [*default_accounts(),
                account(SPAMMER, subaccount(0, "0.5", positions=[{"market": BTC, "size": "0.0001"}])),
                account(address(0x5BB), subaccount(0, "10", positions=[{"market": BTC, "size": "-0.0001"}]))]
    chain = Chain(genesis(accounts=accounts, order_limits=limits))
    # SPAMMER: balance 0.5, long 1 lot worth 5 at the oracle -> equity 5.5 >= 1: two orders
    assert [chain.submit(SPAMMER, dust_bid(i))["ok"] for i in (1, 2)] == [True, True]
    assert "equity 5.5 USDC" in chain.submit(SPAMMER, dust_bid(3))["message"]
    # ALICE: 100,000 USDC (tier 1,000: 50) but the hard maximum is 3
    assert [chain.submit(ALICE, dust_bid(i))["ok"] for i in (1, 2, 3)] == [True] * 3
    refused = chain.submit(ALICE, dust_bid(4))
    assert refused["code"] == "too_many_open_orders" and "at most 3 per subaccount" in refused["message"]


# ------------------------------------------------------------------------------ notional and size
def test_minimum_notional_is_measured_at_the_oracle_price():
    """PEPE: lots of 1,000 at 0.00001 = 0.01 USDC each. A bid far above the oracle is still dust."""
    chain = spam_chain("50")
    dust = place_order(subaccount=1, market=PEPE, size="1000", price="0.00001", client_id=1)
    assert chain.submit(ALICE, dust)["code"] == "order_below_min_notional"
    high_limit = {**dust, "side": "sell", "price": "0.01"}     # 10 USDC at its limit, 0.01 at the oracle
    assert chain.submit(ALICE, high_limit)["code"] == "order_below_min_notional"
    stop = {**dust, "order_type": "stop_limit", "trigger_price": "0.000011"}
    assert chain.submit(ALICE, stop)["code"] == "order_below_min_notional"
    # 100,000 PEPE * 0.00001 = exactly 1.000000 USDC: at the minimum, accepted
    at_minimum = chain.submit(ALICE, {**dust, "size": "100000"})
    assert (at_minimum["ok"], at_minimum["status"]) == (True, "open")


def test_a_position_below_the_minimum_notional_can_always_be_closed():
    """ALICE's isolated PEPE subaccount is long 1,000 PEPE (0.01 USDC): a reduce-only order closes
    it, and so does a plain order that only reduces it; one that would flip it short is refused."""
    accounts = default_accounts()
    accounts[0]["subaccounts"][1]["positions"] = [{"market": PEPE, "size": "1000"}]
    accounts[1]["subaccounts"][1]["positions"] = [{"market": PEPE, "size": "-1000"}]
    chain = Chain(genesis(accounts=accounts))
    assert chain.submit(CAROL, place_order(subaccount=1, market=PEPE, size="200000", price="0.00001",
                                           client_id=1))["status"] == "open"
    flip = place_order(subaccount=1, market=PEPE, side="sell", size="2000", price="0.00001", client_id=1,
                       time_in_force="ioc")
    assert chain.submit(ALICE, flip)["code"] == "order_below_min_notional"
    close = {**flip, "size": "1000", "reduce_only": True}
    closed = chain.submit(ALICE, close)
    assert (closed["ok"], closed["status"], closed["filled"]) == (True, "filled", 1)
    assert PEPE not in chain.subaccount(ALICE, 1).positions
    # BOB is short 1,000: a plain buy of exactly his size (no reduce_only flag) reduces, so it passes too
    reduce = place_order(subaccount=1, market=PEPE, side="buy", size="1000", price="0.00001", client_id=2,
                         time_in_force="ioc")
    assert chain.submit(BOB, reduce)["ok"]


def test_maximum_order_size_per_market():
    chain = Chain(genesis(markets=[market(BTC, max_order_size="1"), market("ETH-USD"), market(PEPE)]))
    assert chain.submit(ALICE, place_order(size="1.0001", price="100"))["code"] == "size_above_maximum"
    conditional = place_order(size="1.0001", price="100", order_type="stop_limit", trigger_price="60000")
    assert chain.submit(ALICE, conditional)["code"] == "size_above_maximum"
    assert chain.submit(ALICE, place_order(size="1", price="100"))["ok"]
    with pytest.raises(ProtocolError) as caught:  # a maximum below the minimum order size
        build_state(genesis(markets=[market(BTC, max_order_size="0.00005")]))
    assert caught.value.code == "invalid_genesis" and "max_order_size" in caught.value.message


def test_a_triggered_conditional_order_is_not_judged_again():
    """A stop-loss placed within the limits gets its chance even if they no longer hold when it
    triggers: placed at 5 USDC (one lot at 50,000, the minimum), it triggers at 49,000, where one
    lot is worth 4.9 USDC."""
    chain = spam_chain("50", order_limits={"min_order_notional": "5"})
    stop = chain.submit(SPAMMER, place_order(side="sell", size="0.0001", price="30000", client_id=1,
                                             order_type="stop_limit", trigger_price="49500"))
    assert stop["status"] == "untriggered"
    chain.end_block()
    chain.submit(address(0xA1), {"type": "oracle_update", "prices": {BTC: "49000"}})  # applied at the block's end
    chain.end_block()
    kinds = [e["type"] for e in chain.events]
    assert "conditional_order_triggered" in kinds and "conditional_order_failed" not in kinds
    assert len(chain.subaccount(SPAMMER).orders) == 1   # the stop, resting at 30,000 (no bid above)
    assert chain.submit(SPAMMER, place_order(side="sell", size="0.0001", price="60000", client_id=2))["code"] == \
        "order_below_min_notional"   # a fresh order of the same size is refused now


# ------------------------------------------------------------------------------ governance
def test_order_limits_are_governed_hashed_and_in_snapshots():
    chain = Chain(genesis())
    assert classify(chain.state, {"type": "set_order_limits", "min_order_notional": "0.5"}) == "risk_increasing"
    assert classify(chain.state, {"type": "set_order_limits", "min_order_notional": "5"}) == "risk_reducing"
    assert classify(chain.state, {"type": "set_order_limits", "max_open_orders": 2000}) == "risk_increasing"
    fewer = [{"min_equity": "20", "max_open_orders": 4}, {"min_equity": "100", "max_open_orders": 20}]
    assert classify(chain.state, {"type": "set_order_limits", "open_order_tiers": fewer}) == "risk_reducing"
    looser = [{"min_equity": "0", "max_open_orders": 1}, *fewer]
    assert classify(chain.state, {"type": "set_order_limits", "open_order_tiers": looser}) == "risk_increasing"
    assert classify(chain.state, {"type": "set_market_params", "market": BTC, "max_order_size": "10"}) == \
        "risk_reducing"
    events = enact(chain, {"type": "set_order_limits", "open_order_tiers": fewer, "min_order_notional": "5"},
                   {"type": "set_market_params", "market": BTC, "max_order_size": "10"})
    changed = {e["name"]: e["value"] for e in events if e["type"] == "param_changed"}
    assert changed == {"order_limits.open_order_tiers": [[20_000_000, 4], [100_000_000, 20]],
                       "order_limits.min_order_notional_usdc": 5_000_000, "markets.BTC-USD.max_order_lots": 100_000}
    assert chain.submit(ALICE, place_order(size="10.0001"))["code"] == "size_above_maximum"
    chain.end_block()
    restored = state_from_document(state_to_document(chain.state))
    assert restored.state_hash == chain.state.state_hash
    assert restored.order_limits.open_order_tiers == [[20_000_000, 4], [100_000_000, 20]]
    for bad in ([{"min_equity": "10", "max_open_orders": 5}, {"min_equity": "1", "max_open_orders": 9}],
                [{"min_equity": "1", "max_open_orders": 5}, {"min_equity": "10", "max_open_orders": 4}]):
        with pytest.raises(ProtocolError) as caught:
            classify(chain.state, {"type": "set_order_limits", "open_order_tiers": bad})
        assert caught.value.code == "invalid_field"


def test_scenario_defaults_show_the_order_limits():
    assert GENESIS_DEFAULTS["order_limits"] == {
        "open_order_tiers": [{"min_equity": "20", "max_open_orders": 5}, {"min_equity": "100", "max_open_orders": 20},
                             {"min_equity": "1000", "max_open_orders": 100},
                             {"min_equity": "10000", "max_open_orders": 1000}],
        "max_open_orders": 1000, "min_order_notional": "1"}
    assert GENESIS_DEFAULTS["market"]["max_order_size"] is None


# ------------------------------------------------------------------------------ ante: no collateral
def test_who_has_collateral():
    from bastion.core.ante import has_collateral

    accounts = [*default_accounts(), {"address": address(0x5B1), "bgov": "1", "subaccounts": []},
                account(address(0x5B2), subaccount(0, "0")),
                account(address(0x5B3), subaccount(0, "-1", positions=[{"market": BTC, "size": "0.0001"}])),
                account(address(0x5B4), subaccount(0, "10", positions=[{"market": BTC, "size": "-0.0001"}])),
                account(address(0x5B5), subaccount(0, "-10", positions=[{"market": BTC, "size": "0.0001"}])),
                account(address(0x5B6), subaccount(0, "10", positions=[{"market": BTC, "size": "-0.0001"}]))]
    state = build_state(genesis(accounts=accounts, council={"members": [address(0xC1)], "threshold": 1}))
    funded = [ALICE, BRIDGE, address(0xA1), address(0xC1), address(0x5B1), address(0x5B3)]
    assert [has_collateral(state, a) for a in funded] == [True] * 6   # 0x5b3: -1 + 5 = 4 USDC of equity
    assert has_collateral(state, address(0x5B2)) is False     # a subaccount with nothing in it
    assert has_collateral(state, address(0x5B5)) is False     # -10 + 5 = -5: wiped out
    assert has_collateral(state, address(0x5B5), exact=False) is True  # intake: positions count, the block decides
    assert has_collateral(state, address(0x5EE)) is False     # a fresh key


@pytest.mark.parametrize("name", ["funding_positive_premium.json", "cross_margin_two_markets.json",
                                  "liquidation_fund_pays.json", "mango_unbacked_profit.json"])
def test_equity_is_the_margin_engines_net_collateral(name):
    """``get_net_collateral`` (the limits' equity) is exactly TNC as margin computes it, funding included."""
    import json

    from bastion.core.margin import get_net_collateral, get_subaccount_risk
    from bastion.core.messages import decode_message
    from bastion.core.transition import apply_block
    from bastion.scenario import _block_time

    doc = json.loads((Path(__file__).parent / "scenarios" / name).read_text())
    state = build_state(doc["genesis"])
    compared = 0
    for index, block in enumerate(doc["blocks"]):
        apply_block(state, _block_time(block, index, state),
                    [(tx["sender"].lower(), decode_message(tx["msg"])) for tx in block["txs"]])
        subs = list(state.subaccounts.values())
        compared += sum(bool(sub.positions) for sub in subs)
        assert [get_net_collateral(state, sub) for sub in subs] == [get_subaccount_risk(state, sub)[0] for sub in subs]
    assert compared


def node_genesis() -> dict:
    """The builders' exchange plus FRESH, funded with 100 USDC and nothing else."""
    return genesis(accounts=[*default_accounts(), account(FRESH, subaccount(0, "100"))])


FRESH = address(0xF5)
START_MS = 1_767_225_601_000


def log_rows(data: Path) -> tuple[int, int]:
    with sqlite3.connect(data / "blocks.db") as db:
        return (db.execute("SELECT COUNT(*) FROM blocks").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM tx_index").fetchone()[0])


def test_ten_thousand_txs_from_unfunded_keys_are_refused_at_intake_and_never_stored(tmp_path: Path):
    node = Node(tmp_path / "n", node_genesis(), clock_ms=iter(range(START_MS, 10**15, 1_000)).__next__)
    keys = [address(0x10000 + i) for i in range(50)]
    codes = set()
    for nonce in range(1, 201):
        for key in keys:
            with pytest.raises(ProtocolError) as caught:
                node.submit({"sender": key, "nonce": nonce, "msg": place_order(size="0.0001", price="1",
                                                                                 client_id=nonce)})
            codes.add(caught.value.code)
    assert codes == {"no_collateral"} and len(node.mempool) == 0
    honest = node.submit({"sender": ALICE, "nonce": 1, "msg": place_order(client_id=1)})
    assert honest["status"] == "accepted"
    block = node.produce_block()
    assert block.tx_count == 1
    assert node.tx_status(ALICE, 1)["status"] == "committed"
    assert node.tx_status(keys[0], 1) == {"status": "unknown"}
    assert log_rows(tmp_path / "n") == (1, 1)    # one block, one indexed transaction: ALICE's
    node.close()


def test_collateral_lost_between_intake_and_block_drops_the_tx_which_is_reported_refused(tmp_path: Path):
    """FRESH withdraws everything in one block; its next transaction, accepted at intake while it
    was still funded, is dropped when the producer builds the next block, never logged, and its
    nonce stays free for when FRESH is funded again."""
    node = Node(tmp_path / "n", node_genesis(), max_block_txs=1,
                clock_ms=iter(range(START_MS, 10**15, 1_000)).__next__)
    node.submit({"sender": FRESH, "nonce": 1, "msg": withdraw(amount="100")})
    node.submit({"sender": FRESH, "nonce": 2, "msg": place_order(client_id=1, time_in_force="ioc")})
    first = node.produce_block()
    assert (first.tx_count, first.results) == (1, [{"ok": True}])
    second = node.produce_block()
    assert second.tx_count == 0 and len(node.mempool) == 0
    status = node.tx_status(FRESH, 2)
    assert status["status"] == "refused" and status["code"] == "no_collateral"
    assert node.wait_committed(FRESH, 2, 0.01)["status"] == "refused"
    answer = TestClient(create_app(node, ApiConfig(unsigned=True))).get(f"/v1/tx/{FRESH}/2").json()
    assert (answer["status"], answer["code"]) == ("refused", "no_collateral") and answer["message"]
    assert log_rows(tmp_path / "n") == (2, 1)
    with pytest.raises(ProtocolError) as caught:   # still unfunded: refused at intake now
        node.submit({"sender": FRESH, "nonce": 2, "msg": place_order(client_id=1, time_in_force="ioc")})
    assert caught.value.code == "no_collateral"
    node.submit({"sender": BRIDGE, "nonce": 1, "msg": deposit(owner=FRESH, amount="1")})
    node.produce_block()
    node.submit({"sender": FRESH, "nonce": 2, "msg": withdraw(amount="1")})  # the dropped nonce, reused
    assert node.produce_block().results == [{"ok": True}]
    assert node.tx_status(FRESH, 2)["status"] == "committed"
    node.close()


def test_one_sender_cannot_fill_the_mempool(tmp_path: Path):
    node = Node(tmp_path / "n", node_genesis(), max_pending_per_sender=3,
                clock_ms=iter(range(START_MS, 10**15, 1_000)).__next__)
    for nonce in (1, 2, 3):
        node.submit({"sender": ALICE, "nonce": nonce, "msg": place_order(client_id=nonce, price="1")})
    with pytest.raises(ProtocolError) as caught:
        node.submit({"sender": ALICE, "nonce": 4, "msg": place_order(client_id=4, price="1")})
    assert caught.value.code == "too_many_pending"
    assert node.submit({"sender": BOB, "nonce": 1, "msg": place_order(client_id=1, price="1")})["status"] == "accepted"
    node.produce_block()
    again = node.submit({"sender": ALICE, "nonce": 4, "msg": place_order(client_id=4, price="1")})
    assert again["status"] == "accepted"
    node.close()


# ------------------------------------------------------------------------------ API limits
def test_api_limits_per_address_and_per_sender_answer_429_with_retry_after(tmp_path: Path):
    node = Node(tmp_path / "n", node_genesis(), clock_ms=iter(range(START_MS, 10**15, 1_000)).__next__)
    now = [START_MS]
    per_address = TestClient(create_app(node, ApiConfig(unsigned=True, ip_rate_per_s=1, ip_burst=2,
                                                        clock_ms=lambda: now[0])))
    envelopes = [{"sender": owner, "nonce": 1, "msg": place_order(client_id=1, price="1")} for owner in (ALICE, BOB,
                                                                                                          CAROL)]
    assert [per_address.post("/v1/tx", json=e).status_code for e in envelopes[:2]] == [202, 202]
    limited = per_address.post("/v1/tx", json=envelopes[2])   # another sender, the same address
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert limited.headers["Retry-After"] == "1"
    batch = per_address.post("/v1/tx/batch", json={"txs": envelopes[2:]})
    assert batch.status_code == 429
    now[0] += 1_000                                           # one token back
    assert per_address.post("/v1/tx", json=envelopes[2]).status_code == 202

    per_sender = TestClient(create_app(node, ApiConfig(unsigned=True, rate_per_s=1, burst=2,
                                                       clock_ms=lambda: now[0])))
    dave = [{"sender": address(0xD0), "nonce": n, "msg": place_order(client_id=n, price="1")} for n in (1, 2, 3)]
    assert [per_sender.post("/v1/tx", json=e).status_code for e in dave[:2]] == [202, 202]
    refused = per_sender.post("/v1/tx", json=dave[2])
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    node.close()
