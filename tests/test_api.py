"""The API in-process (FastAPI's TestClient): signed writes and every refusal, reads with exact
numbers, the order preview, the OpenAPI schema and the WebSocket channels. The SDK against a live
node is in ``test_api_sdk.py``."""
from __future__ import annotations

from pathlib import Path

import pytest
from builders import BTC, ETH, GENESIS_TIME_MS, account, genesis, place_order, subaccount
from eth_account import Account
from fastapi.testclient import TestClient

from bastion.app import ApiConfig, create_app
from bastion.api.preview import preview_order
from bastion.signing import compute_chain_number, sign_envelope, typed_data
from bastion.core.genesis import build_state
from bastion.node.node import Node

ALICE_KEY, BOB_KEY, BRIDGE_KEY, ORACLE_KEY = ("0x" + b * 32 for b in ("a1", "b1", "c1", "d1"))
ALICE, BOB, BRIDGE, ORACLE = (Account.from_key(k).address.lower() for k in (ALICE_KEY, BOB_KEY, BRIDGE_KEY, ORACLE_KEY))
CHAIN = "bastion-test"
NOW_MS = GENESIS_TIME_MS + 1_000


def api_genesis(**overrides) -> dict:
    """The builders' genesis with owners whose keys the tests hold."""
    oracle = {"operators": [ORACLE], "min_sources": 1, "max_staleness_s": 60, "max_source_deviation": "0.05",
              "max_move_per_block": "0.5"}
    return genesis(bridge_operator=BRIDGE, oracle=oracle,
                   accounts=[account(ALICE, subaccount(0, "10000")), account(BOB, subaccount(0, "10000"))],
                   **overrides)


class Clock:
    """The API's injected clock (ms); the node's block times follow it too."""

    def __init__(self) -> None:
        self.now_ms = NOW_MS

    def __call__(self) -> int:
        return self.now_ms


class Signer:
    """Signs envelopes for one key with increasing microsecond nonces from the test clock."""

    def __init__(self, key: str, clock: Clock) -> None:
        self.key, self.clock, self.count = key, clock, 0

    def __call__(self, msg: dict, *, nonce: int | None = None) -> dict:
        self.count += 1
        return sign_envelope(self.key, CHAIN, msg, self.clock.now_ms * 1_000 + self.count if nonce is None else nonce)


@pytest.fixture
def api(tmp_path: Path):
    clock = Clock()
    node = Node(tmp_path / "n", api_genesis(), clock_ms=clock)
    client = TestClient(create_app(node, ApiConfig(clock_ms=clock, rate_per_s=5, burst=10)))
    client.node, client.clock = node, clock
    client.alice, client.bob = Signer(ALICE_KEY, clock), Signer(BOB_KEY, clock)
    yield client
    node.close()


def trade_one_btc(api) -> None:
    """Bob rests a sell of 1 BTC at 50,000; Alice takes it (block 1)."""
    assert api.post("/v1/tx", json=api.bob(place_order(side="sell", size="1", price="50000"))).status_code == 202
    assert api.post("/v1/tx", json=api.alice(place_order(size="1", time_in_force="ioc"))).status_code == 202
    api.node.produce_block()


# ------------------------------------------------------------------------------------ signing
def test_the_domain_is_derived_from_the_chain_id_and_published() -> None:
    document = typed_data(CHAIN, ALICE, 5, {"type": "withdraw", "subaccount": 0, "amount": "1"})

    assert document["domain"] == {"name": "Bastion", "version": "1", "chainId": compute_chain_number(CHAIN)}
    assert compute_chain_number(CHAIN) < 2**48 and compute_chain_number(CHAIN) != compute_chain_number("other")
    assert document["message"]["msg"] == '{"amount":"1","subaccount":0,"type":"withdraw"}'
    assert document["message"]["msgType"] == "withdraw"


def test_the_fast_recovery_agrees_with_eth_account_on_good_and_damaged_signatures() -> None:
    import random

    from bastion.signing import _recover_fast, _signable

    def slow(sender: str, nonce: int, msg: dict, raw: bytes) -> str | None:
        try:
            return str(Account.recover_message(_signable(CHAIN, sender, nonce, msg), signature=raw)).lower()
        except Exception:  # noqa: BLE001
            return None

    rng = random.Random(7)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    checked = 0
    for _ in range(40):
        key = "0x" + rng.randbytes(32).hex()
        msg = {"type": rng.choice(["place_order", "withdraw", 5, None]), "note": rng.choice(["", "é€", "a\"b"]),
               "n": rng.randrange(10**6)}
        envelope = sign_envelope(key, CHAIN, msg, rng.randrange(2**64))
        raw = bytes.fromhex(envelope["signature"][2:])
        r, s_, v = raw[:32], int.from_bytes(raw[32:64], "big"), raw[64]
        variants = [raw, raw[:64] + bytes([v - 27]), raw[:64] + bytes([rng.choice([2, 26, 29, 255])]),
                    r + (n - s_).to_bytes(32, "big") + bytes([55 - v]),  # the malleable twin: same signer
                    bytes(32) + raw[32:], raw[:32] + n.to_bytes(32, "big") + raw[64:],
                    bytes([raw[0] ^ 1]) + raw[1:]]
        for variant in variants:
            fast = _recover_fast(CHAIN, envelope["sender"], envelope["nonce"], msg, variant)
            if fast is not None:
                assert fast == slow(envelope["sender"], envelope["nonce"], msg, variant)
                checked += 1
        assert _recover_fast(CHAIN, envelope["sender"], envelope["nonce"], msg, raw) == envelope["sender"]
    assert checked >= 40 * 3  # the signature, its 0/1 form and its twin always; a changed r often


def test_envelopes_are_signed_exactly_as_eth_account_signs_the_typed_data() -> None:
    from bastion.signing import _signable

    messages = ({"type": "withdraw", "subaccount": 0, "amount": "1"}, {"type": "vote", "reason": "é€"})
    for i, msg in enumerate(messages):
        for key in (ALICE_KEY, bytes.fromhex(BOB_KEY[2:])):
            envelope = sign_envelope(key, CHAIN, msg, 10**15 + i)
            account = Account.from_key(key)
            expected = Account.sign_message(_signable(CHAIN, account.address, 10**15 + i, msg), account.key)
            assert envelope["signature"] == "0x" + bytes(expected.signature).hex()
            assert envelope["sender"] == account.address.lower()


def test_signing_endpoint_gives_domain_types_and_window(api) -> None:
    info = api.get("/v1/signing").json()

    assert info["domain"]["chainId"] == compute_chain_number(CHAIN)
    assert [f["name"] for f in info["types"]["Envelope"]] == ["sender", "nonce", "msgType", "msg"]
    assert (info["nonce_window_past_ms"], info["nonce_window_future_ms"]) == (600_000, 60_000)


def test_wallet_rpc_answers_the_chain_id_a_wallet_checks_before_adding_the_network(api) -> None:
    number = compute_chain_number(CHAIN)
    api.node.produce_block()

    chain = api.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    batch = api.post("/rpc", json=[{"jsonrpc": "2.0", "id": "a", "method": "net_version"},
                                   {"jsonrpc": "2.0", "id": "b", "method": "eth_blockNumber"},
                                   {"jsonrpc": "2.0", "id": "c", "method": "eth_sendTransaction"},
                                   {"id": "d", "method": "eth_chainId"}])
    garbage = api.post("/rpc", content=b"{not json")
    preflight = api.options("/rpc")

    assert chain.status_code == 200 and chain.json() == {"jsonrpc": "2.0", "id": 1, "result": hex(number)}
    assert chain.headers["access-control-allow-origin"] == "*" and preflight.status_code == 200
    answers = batch.json()
    assert answers[0] == {"jsonrpc": "2.0", "id": "a", "result": str(number)}
    assert answers[1] == {"jsonrpc": "2.0", "id": "b", "result": "0x1"}
    assert answers[2]["error"]["code"] == -32601 and "POST /v1/tx" in answers[2]["error"]["message"]
    assert answers[3] == {"jsonrpc": "2.0", "id": "d", "error": {"code": -32600, "message": "invalid request"}}
    assert garbage.json()["error"]["code"] == -32700


def test_a_signed_order_is_accepted_then_committed_at_a_height(api) -> None:
    envelope = api.alice(place_order(size="0.1", price="49000"))

    accepted = api.post("/v1/tx", json=envelope)
    block = api.node.produce_block()
    status = api.get(f"/v1/tx/{ALICE}/{envelope['nonce']}?wait_ms=100").json()

    assert accepted.status_code == 202 and accepted.json()["status"] == "accepted"
    assert status["status"] == "committed" and status["height"] == block.height == 1
    assert status["result"]["ok"] is True


@pytest.mark.parametrize(("tamper", "status", "code"), [
    (lambda e, s: {**e, "signature": "0x" + "00" * 65}, 401, "invalid_signature"),          # not a signature
    (lambda e, s: {**e, "signature": "0x12"}, 401, "invalid_signature"),                     # wrong length
    (lambda e, s: {k: v for k, v in e.items() if k != "signature"}, 401, "missing_signature"),
    (lambda e, s: {**e, "msg": {**e["msg"], "size": "0.2"}}, 401, "signer_mismatch"),       # message changed
    (lambda e, s: {**s.bob(e["msg"]), "sender": ALICE}, 401, "signer_mismatch"),            # another key
    (lambda e, s: {**e, "nonce": e["nonce"] + 1}, 401, "signer_mismatch"),                  # nonce changed
    (lambda e, s: s.alice(e["msg"], nonce=(NOW_MS - 600_001) * 1_000), 400, "nonce_outside_window"),  # too old
    (lambda e, s: s.alice(e["msg"], nonce=(NOW_MS + 60_001) * 1_000), 400, "nonce_outside_window"),   # too new
    (lambda e, s: s.alice(e["msg"], nonce=7), 400, "nonce_outside_window"),                 # a counter
    (lambda e, s: {**e, "extra": 1}, 400, "invalid_envelope"),
    (lambda e, s: {**e, "sender": "0x12"}, 400, "invalid_address"),
    (lambda e, s: {**e, "nonce": "5"}, 400, "invalid_nonce"),
    (lambda e, s: s.alice({"type": "mint"}), 400, "unknown_message_type"),
    (lambda e, s: s.alice({**e["msg"], "colour": "red"}), 400, "unknown_field"),
    (lambda e, s: [e], 400, "invalid_envelope"),
])
def test_bad_envelopes_are_refused_with_a_code_and_nothing_is_queued(api, tamper, status, code) -> None:
    envelope = api.alice(place_order(size="0.1", price="49000"))

    response = api.post("/v1/tx", json=tamper(envelope, api))

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert len(api.node.mempool) == 0


def test_a_replayed_nonce_is_refused_pending_and_after_commit(api) -> None:
    envelope = api.alice(place_order(size="0.1", price="49000"))
    api.post("/v1/tx", json=envelope)

    pending = api.post("/v1/tx", json=envelope)
    api.node.produce_block()
    committed = api.post("/v1/tx", json=envelope)

    assert pending.json()["code"] == committed.json()["code"] == "duplicate_nonce"
    assert api.node.state.height == 1 and len(api.node.log.block(1).txs) == 1


def test_the_signed_sender_is_the_owner_so_another_owners_subaccount_cannot_be_touched(api) -> None:
    trade_one_btc(api)
    bob_before = api.get(f"/v1/subaccounts/{BOB}/0").json()
    forged = {**api.alice({"type": "withdraw", "subaccount": 0, "amount": "100"}), "sender": BOB}

    refused = api.post("/v1/tx", json=forged)
    cancel = api.alice({"type": "cancel_all", "subaccount": 1})  # Alice has no subaccount 1
    api.post("/v1/tx", json=cancel)
    api.node.produce_block()

    assert (refused.status_code, refused.json()["code"]) == (401, "signer_mismatch")
    assert api.get(f"/v1/tx/{ALICE}/{cancel['nonce']}").json()["result"]["code"] == "subaccount_not_found"
    assert api.get(f"/v1/subaccounts/{BOB}/0").json()["balance"] == bob_before["balance"]


def test_only_the_bridge_key_credits_deposits(api) -> None:
    bridge = Signer(BRIDGE_KEY, api.clock)
    deposit = {"type": "deposit", "owner": ALICE, "subaccount": 0, "amount": "5"}

    by_alice = api.post("/v1/tx", json=api.alice(deposit))
    by_bridge = api.post("/v1/tx?wait_ms=1", json=bridge(deposit))

    assert by_alice.json()["code"] == "not_bridge_operator"
    assert by_bridge.status_code == 200 and by_bridge.json()["status"] == "pending"  # no block was produced


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"{not json", 400, "invalid_json"),
    (b"x" * (64 * 1024 + 1), 413, "too_large"),
])
def test_malformed_and_oversized_bodies_are_refused(api, body, status, code) -> None:
    response = api.post("/v1/tx", content=body, headers={"content-type": "application/json"})

    assert (response.status_code, response.json()["code"]) == (status, code)


def test_the_rate_limit_is_a_token_bucket_per_sender(api) -> None:
    for _ in range(10):  # burst 10
        assert api.post("/v1/tx", json=api.alice(place_order(size="0.1", price="1000"))).status_code == 202

    limited = api.post("/v1/tx", json=api.alice(place_order(size="0.1", price="1000")))
    bob = api.post("/v1/tx", json=api.bob(place_order(side="sell", size="0.1", price="90000")))
    api.clock.now_ms += 200  # 5 per second: one token back
    again = api.post("/v1/tx", json=api.alice(place_order(size="0.1", price="1000")))
    limited_again = api.post("/v1/tx", json=api.alice(place_order(size="0.1", price="1000")))

    assert (limited.status_code, limited.json()["code"], limited.headers["retry-after"]) == (429, "rate_limited", "1")
    assert bob.status_code == 202 and again.status_code == 202 and limited_again.status_code == 429


def test_a_batch_accepts_and_refuses_each_item_with_its_index(api) -> None:
    good = api.alice(place_order(size="0.1", price="49000"))
    txs = [good, good, {**api.bob(place_order(side="sell")), "signature": "0x" + "11" * 65}, "nope",
           api.bob(place_order(side="sell", price="51000"))]

    answer = api.post("/v1/tx/batch", json={"txs": txs}).json()

    assert (answer["accepted"], answer["refused"]) == (2, 3)
    assert [(r["index"], r["status"], r.get("code")) for r in answer["results"]] == [
        (0, "accepted", None), (1, "refused", "duplicate_nonce"), (2, "refused", "invalid_signature"),
        (3, "refused", "invalid_envelope"), (4, "accepted", None)]
    assert api.post("/v1/tx/batch", json={"tx": []}).json()["code"] == "invalid_batch"


def test_a_large_batch_is_verified_in_threads_and_queued_in_batch_order(tmp_path: Path) -> None:
    clock = Clock()
    node = Node(tmp_path / "big", api_genesis(), clock_ms=clock, max_block_txs=10_000)
    client = TestClient(create_app(node, ApiConfig(clock_ms=clock, rate_per_s=10_000, burst=10_000)))
    alice, bob = Signer(ALICE_KEY, clock), Signer(BOB_KEY, clock)
    txs = [alice(place_order(size="0.1", price=str(40_000 + i))) if i % 2 else bob(place_order(price="1"))
           for i in range(300)]
    txs[7] = {**txs[7], "signature": "0x" + "11" * 65}
    txs[100] = txs[99]
    txs[250] = "nope"

    answer = client.post("/v1/tx/batch", json={"txs": txs}).json()
    node.produce_block()

    codes = {r["index"]: r["code"] for r in answer["results"] if r["status"] == "refused"}
    assert codes == {7: "invalid_signature", 100: "duplicate_nonce", 250: "invalid_envelope"}
    assert [r["index"] for r in answer["results"]] == list(range(300))
    arrivals = [r["arrival"] for r in answer["results"] if r["status"] == "accepted"]
    assert arrivals == sorted(arrivals) and len(node.log.block(1).txs) == 297
    node.close()


def test_cors_is_closed_by_default_and_opens_to_configured_origins(api, tmp_path: Path) -> None:
    preflight = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    closed = api.options("/v1/tx", headers=preflight)
    node = Node(tmp_path / "open", api_genesis())
    opened = TestClient(create_app(node, ApiConfig(cors_origins=("https://ui.example",))))
    allowed = opened.options("/v1/tx", headers={**preflight, "origin": "https://ui.example"})
    node.close()

    assert "access-control-allow-origin" not in closed.headers
    assert allowed.headers["access-control-allow-origin"] == "https://ui.example"


# ------------------------------------------------------------------------------------ reads
def test_markets_and_book_show_params_tier_oracle_and_depth(api) -> None:
    for price, size in (("49000", "0.1"), ("49000", "0.2"), ("48000", "1")):
        api.post("/v1/tx", json=api.alice(place_order(size=size, price=price, client_id=int(float(size) * 10))))
    api.node.produce_block()

    btc = api.get(f"/v1/markets/{BTC}").json()
    book = api.get(f"/v1/markets/{BTC}/book?depth=1").json()
    markets = api.get("/v1/markets").json()

    assert (btc["tier"]["name"], btc["tier"]["initial_margin"], btc["oracle"]["price"]) == (
        "large-cap", "0.02", "50000")
    assert (btc["taker_fee"], btc["open_interest"], btc["best_bid"], btc["height"]) == ("0.0005", "0", "49000", 1)
    assert book == {"height": 1, "market": BTC, "bids": [["49000", "0.3"]], "asks": []}
    assert [m["ticker"] for m in markets["markets"]] == ["BTC-USD", "ETH-USD", "PEPE-USD"]


@pytest.mark.parametrize("path", [
    "/v1/markets/DOGE-USD", "/v1/markets/DOGE-USD/book", "/v1/markets/DOGE-USD/trades",
    "/v1/markets/DOGE-USD/candles", f"/v1/subaccounts/{ALICE}/9", "/v1/blocks/99", "/v1/governance/proposals/x",
    "/v1/nothing",
])
def test_unknown_things_are_404_with_a_code(api, path) -> None:
    response = api.get(path)

    assert response.status_code == 404 and response.json()["code"] in (
        "unknown_market", "subaccount_not_found", "unknown_block", "unknown_proposal", "not_found",
        "read_models_disabled")


def test_a_subaccount_shows_equity_margins_and_the_liquidation_price(api) -> None:
    trade_one_btc(api)

    alice = api.get(f"/v1/subaccounts/{ALICE}/0").json()
    position = alice["positions"][0]

    # balance 10,000 - 50,000 - taker fee 25; IMR 2% of 50,000; MMR 60% of it
    assert (alice["balance"], alice["equity"], alice["initial_margin"], alice["maintenance_margin"],
            alice["free_collateral"]) == ("-40025", "9975", "1000", "600", "8975")
    assert (position["size"], position["entry_price"], position["unrealized_pnl"]) == ("1", "50000", "0")
    # long: p = 40,025 / (1 - 0.012) = 40,511.13...; at 40,511.1 TNC 486.1 < MMR 486.1332, at 40,511.2 not
    assert (position["liquidation_price"], position["move_to_liquidation"]) == ("40511.1", "-0.189778")
    bob = api.get(f"/v1/subaccounts/{BOB}").json()["subaccounts"][0]
    # short: p = (10,000 + 50,000 - 5) / (1 + 0.012) = 59,283.59...: the lowest liquidating tick is 59,283.6
    assert (bob["positions"][0]["liquidation_price"], bob["equity"]) == ("59283.6", "9995")


def test_open_orders_insurance_blocks_and_governance_reads(api) -> None:
    api.post("/v1/tx", json=api.alice(place_order(size="0.1", price="49000", client_id=3)))
    api.node.produce_block()

    orders = api.get(f"/v1/subaccounts/{ALICE}/0/orders").json()["orders"]
    funds = api.get("/v1/insurance-funds").json()
    blocks = api.get("/v1/blocks").json()["blocks"]
    block = api.get("/v1/blocks/1").json()

    assert [(o["client_id"], o["price"], o["remaining"], o["status"]) for o in orders] == [(3, "49000", "0.1", "open")]
    assert [(f["pool"], f["balance"]) for f in funds["funds"]] == [("PEPE-USD", "10000"), ("cross", "100000")]
    assert [b["height"] for b in blocks] == [1] and blocks[0]["state_hash"] == api.node.state.state_hash
    assert block["txs"][0]["sender"] == ALICE and block["results"][0]["ok"] is True
    placed = [e for e in block["events"] if e["type"] == "order_placed"]
    assert [(e["price"], e["size"]) for e in placed] == [("49000", "0.1")]
    assert api.get("/v1/governance/proposals").json() == {"height": 1, "proposals": []}
    assert api.get("/v1/governance/parameters").json() == {"height": 1, "changes": []}
    assert api.get("/v1/governance/concentration").json()["holders"] == 0


def test_history_reads_say_when_the_node_keeps_no_read_models(api) -> None:
    response = api.get("/v1/fills")

    assert (response.status_code, response.json()["code"]) == (404, "read_models_disabled")


def test_bad_query_parameters_are_400_with_a_code(api) -> None:
    response = api.get(f"/v1/markets/{BTC}/book?depth=0")

    assert (response.status_code, response.json()["code"], response.json()["field"]) == (
        400, "invalid_request", "depth")


@pytest.mark.parametrize("path", [  # found by schemathesis (test_api_schema.py): once a 500 (SQLite overflow)
    "/v1/blocks/9223372036854775808", f"/v1/tx/{ALICE}/9223372036854775808", "/v1/fills?since_height=2e19",
    f"/v1/markets/{BTC}/trades?since_height=9223372036854775808", "/v1/orders?number=128",
    f"/v1/markets/{BTC}/candles?start_ms=-9223372036854775808", f"/v1/subaccounts/{ALICE}/-1",
])
def test_integers_out_of_range_are_400_not_500(api, path) -> None:
    response = api.get(path)

    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")


def test_the_schema_documents_400_everywhere_and_no_422(api) -> None:
    schema = api.get("/openapi.json").json()

    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert all("400" in op["responses"] and "422" not in op["responses"] for op in operations)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


# ------------------------------------------------------------------------------------ preview
def test_preview_of_a_small_cap_order_suggests_isolation_with_exact_numbers(api) -> None:
    trade_one_btc(api)

    preview = api.post("/v1/preview/order", json={"owner": ALICE, "market": ETH, "side": "buy", "size": "1",
                                                  "price": "3000"}).json()

    assert preview["accepted"] is True and (preview["notional"], preview["fee"]) == ("3000", "1.5")
    assert (preview["before"]["initial_margin"], preview["after"]["initial_margin"]) == ("1000", "1300")
    assert (preview["before"]["maintenance_margin"], preview["after"]["maintenance_margin"]) == ("600", "750")
    assert (preview["before"]["free_collateral"], preview["after"]["free_collateral"]) == ("8975", "8673.5")
    # BTC's liquidation price moves up by the fee: (40,025 + 1.5 + 150) / 0.988 = 40,664.4...
    assert [p["liquidation_price"] for p in preview["after"]["positions"]] == ["40664.4", None]
    isolation = preview["isolation"]
    assert (isolation["suggested"], isolation["reasons"], isolation["market_maintenance_share"]) == (
        True, ["volatile_tier"], "0.2")
    # proposed: 2 x IMR 300 + fee 1.5 = 601.5, rounded up to 602; isolated: -2,399.5 / 0.95 = 2,525.789...
    assert isolation["proposed_amount"] == "602"
    assert isolation["isolated"]["order"]["positions"][0]["liquidation_price"] == "2525.789"
    assert isolation["isolated"]["order"]["positions"][0]["move_to_liquidation"] == "-0.15807"
    # the rest keeps BTC with 602 less: (40,025 + 602) / 0.988 = 41,120.4...
    assert isolation["isolated"]["rest"]["positions"][0]["liquidation_price"] == "41120.4"


def test_preview_flags_an_order_that_would_dominate_the_maintenance_requirement(api) -> None:
    trade_one_btc(api)  # Alice: 1 BTC long, MMR 600
    state = api.node.state

    big = preview_order(state, owner=ALICE, subaccount=0, market=ETH, side="sell", size="3", price="3000")
    reducing = preview_order(state, owner=ALICE, subaccount=0, market=BTC, side="sell", size="0.5", price="50000")

    # ETH short 3: MMR ceil(ceil(9,000 x 0.1) x 0.5) = 450 of 1,050 (42.8%): not dominant, but volatile
    assert (big["isolation"]["market_maintenance_share"], big["isolation"]["reasons"]) == (
        "0.428571", ["volatile_tier"])
    assert reducing["isolation"] == {**reducing["isolation"], "suggested": False, "reasons": []}
    assert reducing["after"]["maintenance_margin"] == "300"


def test_preview_says_where_and_how_to_trade_it_isolated(api) -> None:
    trade_one_btc(api)  # Alice: 1 BTC long in subaccount 0, and no other subaccount

    isolation = api.post("/v1/preview/order", json={"owner": ALICE, "market": ETH, "side": "buy", "size": "1",
                                                    "price": "3000"}).json()["isolation"]

    assert (isolation["target_subaccount"], isolation["transfer_amount"]) == (1, "602")
    assert isolation["setup"] == [
        {"type": "transfer", "subaccount": 0, "to_owner": ALICE, "to_subaccount": 1, "amount": "602"},
        {"type": "set_margin_mode", "subaccount": 1, "mode": "isolated", "market": ETH}]


ISOLATED_ETH = {"mode": "isolated", "market": ETH}
TRANSFER_TO = {"type": "transfer", "subaccount": 0, "to_owner": ALICE}
MODE_ETH = {"type": "set_margin_mode", "mode": "isolated", "market": ETH}


@pytest.mark.parametrize("others, target, transfer, setup", [
    # no other subaccount: the lowest number, 1, funded with the whole 602 and made isolated
    ([], 1, "602", [{**TRANSFER_TO, "to_subaccount": 1, "amount": "602"}, {**MODE_ETH, "subaccount": 1}]),
    # subaccount 1 holds money: not free, so 2
    ([subaccount(1, "100")], 2, "602", [{**TRANSFER_TO, "to_subaccount": 2, "amount": "602"},
                                         {**MODE_ETH, "subaccount": 2}]),
    # subaccount 1 exists but is empty (isolated to another market): free, its mode is changed
    ([subaccount(1, "0", mode="isolated", market="PEPE-USD")], 1, "602",
     [{**TRANSFER_TO, "to_subaccount": 1, "amount": "602"}, {**MODE_ETH, "subaccount": 1}]),
    # an idle subaccount already isolated to ETH (an earlier attempt's 100 USDC) is reused: 502 more, no mode change
    ([subaccount(3, "100", **ISOLATED_ETH)], 3, "502", [{**TRANSFER_TO, "to_subaccount": 3, "amount": "502"}]),
    # ... and when it already holds enough, nothing is moved: the order goes straight there
    ([subaccount(1, "0"), subaccount(5, "1000", **ISOLATED_ETH)], 5, "0", []),
])
def test_the_isolation_target_is_an_idle_isolated_subaccount_else_the_lowest_free_number(
        others, target, transfer, setup) -> None:
    state = build_state(genesis(accounts=[account(ALICE, subaccount(0, "10000"), *others)]))

    isolation = preview_order(state, owner=ALICE, subaccount=0, market=ETH, side="buy", size="1",
                              price="3000")["isolation"]

    assert (isolation["target_subaccount"], isolation["transfer_amount"], isolation["setup"]) == (
        target, transfer, setup)


def test_an_order_from_an_isolated_subaccount_is_not_told_to_isolate() -> None:
    state = build_state(genesis(accounts=[account(ALICE, subaccount(0, "10000"),
                                                      subaccount(1, "1000", **ISOLATED_ETH))]))

    from_cross = preview_order(state, owner=ALICE, subaccount=0, market=ETH, side="buy", size="1", price="3000")
    from_isolated = preview_order(state, owner=ALICE, subaccount=1, market=ETH, side="buy", size="1", price="3000")

    assert (from_cross["isolation"]["suggested"], from_cross["isolation"]["reasons"]) == (True, ["volatile_tier"])
    assert (from_isolated["isolation"]["suggested"], from_isolated["isolation"]["reasons"]) == (False, [])


def test_a_reduce_only_preview_fills_at_most_the_position_as_matching_does(api) -> None:
    trade_one_btc(api)  # Alice: 1 BTC long at 50,000, balance 9,975 after the 25 USDC taker fee

    body = {"owner": ALICE, "market": BTC, "side": "sell", "size": "5", "price": "50000", "reduce_only": True}
    closing = api.post("/v1/preview/order", json=body).json()
    growing = api.post("/v1/preview/order", json={**body, "side": "buy"}).json()

    # 5 asked, 1 fills (the long): sells 50,000 of BTC, fee 25 -> 9,950 and no position, not a 4 BTC short
    assert (closing["accepted"], closing["size"], closing["fill_size"], closing["capped"]) == (True, "5", "1", True)
    assert (closing["notional"], closing["fee"]) == ("50000", "25")
    assert (closing["after"]["equity"], closing["after"]["initial_margin"], closing["after"]["free_collateral"]) == (
        "9950", "0", "9950")
    assert closing["after"]["positions"] == []
    # a reduce-only buy against a long: refused as placement refuses it, and nothing fills
    assert (growing["accepted"], growing["rejection"]["code"]) == (False, "reduce_only_would_increase")
    assert (growing["fill_size"], growing["after"]["equity"]) == ("0", growing["before"]["equity"])
    # a plain order is not capped
    plain = api.post("/v1/preview/order", json={**body, "reduce_only": False}).json()
    assert (plain["fill_size"], plain["capped"], plain["notional"]) == ("5", False, "250000")


def test_preview_fields_are_strictly_typed(api) -> None:
    body = {"owner": ALICE, "market": BTC, "side": "buy", "size": "1", "price": "50000"}

    for bad in ({"reduce_only": 0}, {"subaccount": "0"}, {"size": 1}):
        response = api.post("/v1/preview/order", json={**body, **bad})
        assert (response.status_code, response.json()["code"]) == (400, "invalid_request"), bad
    assert api.post("/v1/preview/order", json=body).status_code == 200


def test_preview_reports_the_rejection_placement_would_give(api) -> None:
    preview = api.post("/v1/preview/order", json={"owner": ALICE, "market": BTC, "side": "buy", "size": "100",
                                                  "price": "50000"}).json()
    unknown = api.post("/v1/preview/order", json={"owner": ALICE, "market": "X", "side": "buy", "size": "1",
                                                  "price": "1"})

    assert (preview["accepted"], preview["rejection"]["code"]) == (False, "insufficient_margin")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_market")


# ------------------------------------------------------------------------------------ schema
def test_the_openapi_schema_documents_every_route_with_models(api) -> None:
    schema = api.get("/openapi.json").json()

    paths = set(schema["paths"])
    assert {"/v1/tx", "/v1/tx/batch", "/v1/tx/{sender}/{nonce}", "/v1/markets/{ticker}/book", "/v1/preview/order",
            "/v1/subaccounts/{owner}/{number}", "/v1/liquidations", "/v1/blocks/{height}"} <= paths
    assert {"Envelope", "Batch", "Error", "Subaccount", "Preview"} <= set(schema["components"]["schemas"])
    assert schema["components"]["schemas"]["Envelope"]["examples"][0]["msg"]["type"] == "place_order"


# ------------------------------------------------------------------------------------ WebSocket
def test_websocket_pushes_blocks_book_trades_and_account_on_commit(api) -> None:
    with api.websocket_connect("/v1/ws") as socket:
        for command in ({"channel": "blocks"}, {"channel": "book", "market": BTC, "depth": 5},
                        {"channel": "trades", "market": BTC}, {"channel": "account", "owner": ALICE, "number": 0}):
            socket.send_json({"op": "subscribe", **command})
            reply = socket.receive_json()
            assert reply["type"] == "subscribed" and reply["channel"] == command["channel"]
        socket.send_json({"op": "subscribe", "channel": "book", "market": "DOGE-USD"})
        assert socket.receive_json()["code"] == "unknown_market"

        api.post("/v1/tx", json=api.bob(place_order(side="sell", size="0.3", price="51000", client_id=2)))
        trade_one_btc(api)
        pushed = {}
        for _ in range(4):
            message = socket.receive_json()
            pushed[message["channel"]] = message

    assert pushed["blocks"]["height"] == 1 and pushed["blocks"]["tx_count"] == 3
    assert (pushed["book"]["bids"], pushed["book"]["asks"]) == ([], [["51000", "0.3"]])  # 50,000 was taken
    assert [(t["price"], t["size"]) for t in pushed["trades"]["trades"]] == [("50000", "1")]
    assert (pushed["account"]["equity"], pushed["account"]["positions"][0]["liquidation_price"]) == ("9975", "40511.1")


# ------------------------------------------------------------------------ governance: council, guardian, rollouts
GUARD = "0x" + "9a" * 20
OTHER_REPORT = "cd" * 32
ROLL_BTC_CAP = {"type": "start_rollout", "market": BTC, "param": "max_open_interest", "target": "120", "steps": 2,
                "interval_s": 60, "gates": {"max_liquidations": 3}}


@pytest.fixture
def gov_api(tmp_path: Path):
    """A node on ``test_council``'s chain (ALICE holds 100 BGOV, council C1..C3 with k = 2, 1 h
    timelock) with a guardian; transactions go straight to the node (``Node.submit``), each block's
    time is the test clock's."""
    from test_council import LOWER_ETH_MARGIN, council_genesis

    clock = Clock()
    node = Node(tmp_path / "g",
                {**council_genesis(), "guardian": {"address": GUARD, "expires": "2026-02-01T00:00:00Z"}},
                clock_ms=clock)
    client = TestClient(create_app(node, ApiConfig(clock_ms=clock)))
    client.node, client.clock, client.nonce = node, clock, 0

    def block(*txs: tuple[str, dict], advance_ms: int = 1_000) -> None:
        for sender, msg in txs:
            client.nonce += 1
            node.submit({"sender": sender, "nonce": client.nonce, "msg": msg})
        logged = node.produce_block()
        results = api_block_results(client, logged.height)
        assert all(r["ok"] for r in results), results
        clock.now_ms += advance_ms

    client.block, client.lower_eth_margin = block, LOWER_ETH_MARGIN
    yield client
    node.close()


def api_block_results(client, height: int) -> list[dict]:
    return client.get(f"/v1/blocks/{height}").json()["results"]


def queued_proposal(gov_api) -> str:
    """Blocks 1-5: ALICE proposes (lower ETH's margin, roll BTC's cap 100 -> 120), votes; BOB queues."""
    from builders import ALICE as HOLDER, BOB as OTHER, queue, submit_proposal, vote

    gov_api.block((HOLDER, submit_proposal(gov_api.lower_eth_margin, ROLL_BTC_CAP)))
    pid = next(iter(gov_api.node.state.proposals))
    gov_api.block()
    gov_api.block((HOLDER, vote(pid, "yes")))
    gov_api.block()
    gov_api.block((OTHER, queue(pid)))
    return pid


def test_a_proposal_carries_its_stress_gate_and_participation(gov_api) -> None:
    from builders import ALICE as HOLDER, BOB as OTHER, COUNCIL, REPORT, council_attest, queue, submit_proposal, vote

    gov_api.block((HOLDER, submit_proposal(gov_api.lower_eth_margin)))
    early = gov_api.get("/v1/governance/proposals").json()["proposals"][0]
    assert early["participation"] is None  # the snapshot (block 2) is not taken yet
    assert early["stress_gate"] == {"applies": True, "threshold": 2, "report_hash": None, "passes": 0, "open": False,
                                    "passes_by_report": {}, "attestations": [], "reports": {}, "registered": {},
                                    "counter_reports": []}

    pid = next(iter(gov_api.node.state.proposals))
    gov_api.block()
    gov_api.block((HOLDER, vote(pid, "yes")))
    gov_api.block()
    gov_api.block((OTHER, queue(pid)))
    c1, c2, c3 = COUNCIL
    gov_api.block((c1, council_attest(pid, REPORT)), (c2, council_attest(pid, OTHER_REPORT)),
                  (c3, council_attest(pid, REPORT, "fail")))
    split = gov_api.get(f"/v1/governance/proposals/{pid}").json()
    gov_api.block((c2, council_attest(pid, REPORT)))
    agreed = gov_api.get("/v1/governance/proposals/1").json()

    assert (split["height"], split["status"], split["risk_class"]) == (6, "queued", "risk_increasing")
    gate = split["stress_gate"]
    assert (gate["report_hash"], gate["passes"], gate["open"]) == (REPORT, 1, False)  # a 1-1 tie: the smaller hash
    assert gate["passes_by_report"] == {REPORT: 1, OTHER_REPORT: 1}
    assert [(a["member"], a["report_hash"], a["verdict"], a["height"], a["valid"]) for a in gate["attestations"]] == [
        (c1, REPORT, "pass", 6, True), (c2, OTHER_REPORT, "pass", 6, True), (c3, REPORT, "fail", 6, False)]
    assert gate["attestations"][0]["time"] == "2026-01-01T00:00:06Z"
    assert agreed["stress_gate"]["passes_by_report"] == {REPORT: 2}
    assert (agreed["stress_gate"]["report_hash"], agreed["stress_gate"]["passes"], agreed["stress_gate"]["open"]) == (
        REPORT, 2, True)
    assert agreed["stress_gate"]["attestations"][1]["time"] == "2026-01-01T00:00:07Z"
    # ALICE's 5 BGOV deposit is escrowed: 95 of the 100 supply is delegated, all of it voted
    assert agreed["participation"] == {
        "snapshot_height": 2, "votes_cast": "95", "total_supply": "100", "delegated_supply": "95",
        "turnout_of_supply": "0.95", "turnout_of_delegated": "1", "delegates": 1, "delegates_voted": 1,
        "voted_power": "95", "voted_power_share": "1", "quorum_votes": "10", "largest_delegate_votes": "95",
        "quorum_alone": True}


def test_guardian_rollouts_and_council_reads_and_the_governance_channel(gov_api) -> None:
    from builders import ALICE as HOLDER, COUNCIL, REPORT, council_attest, execute

    before = (gov_api.get("/v1/governance/guardian").json(), gov_api.get("/v1/governance/rollouts").json(),
              gov_api.get("/v1/governance/council").json())
    pid = queued_proposal(gov_api)
    c1, c2, _ = COUNCIL
    with gov_api.websocket_connect("/v1/ws") as socket:
        socket.send_json({"op": "subscribe", "channel": "governance"})
        assert socket.receive_json()["type"] == "subscribed"
        gov_api.block((GUARD, {"type": "guardian_pause", "scope": "market", "market": ETH, "duration_s": 600}),
                      (c1, council_attest(pid)), (c2, council_attest(pid)), advance_ms=3_600_000)
        paused = socket.receive_json()
        gov_api.block((HOLDER, execute(pid)), advance_ms=60_000)  # block 7, 1 h later
        executed = socket.receive_json()
        gov_api.block()                                             # block 8: the first step is due
        stepped = socket.receive_json()
    guardian = gov_api.get("/v1/governance/guardian").json()
    rollouts = gov_api.get("/v1/governance/rollouts").json()
    council_state = gov_api.get("/v1/governance/council").json()

    assert before[0] == {"height": 0, "address": GUARD, "expires": "2026-02-01T00:00:00Z", "pauses": [],
                         "pauses_used": [], "expired": False, "max_pause_s": 259_200, "unpause_grace_s": 600}
    assert before[1] == {"height": 0, "rollouts": []}
    assert (before[2]["members"], before[2]["threshold"], before[2]["attestations"]) == (list(COUNCIL), 2, [])
    assert before[2]["steward_bounds"][f"markets.{BTC}.taker_fee_ppm"] == {"max_change_abs": "0.0001",
                                                                          "cooldown_s": 3_600}

    assert (paused["height"], [e["type"] for e in paused["events"]]) == (
        6, ["guardian_paused", "stress_attested", "stress_attested"])
    assert (paused["events"][0]["market"], paused["events"][2]["passes"]) == (ETH, 2)
    types = [e["type"] for e in executed["events"]]
    assert executed["height"] == 7 and "stress_gate_passed" in types and "rollout_started" in types
    assert "pause_expired" in types  # the 600 s pause ended within the hour
    assert (stepped["height"], [e["type"] for e in stepped["events"]]) == (8, ["param_changed", "rollout_step"])

    assert guardian["pauses"] == [] and guardian["pauses_used"] == [{"scope": "market", "market": ETH}]
    [rollout] = rollouts["rollouts"]
    assert (rollouts["height"], rollout["rollout_id"], rollout["status"], rollout["step"], rollout["start"],
            rollout["value"], rollout["target"], rollout["gates"]) == (8, 1, "active", 1, "100", "110", "120",
                                                                       {"max_liquidations": 3})
    assert rollout["proposal_id"] == pid
    assert [(a["member"], a["report_hash"], a["verdict"]) for a in council_state["attestations"]] == [
        (c1, REPORT, "pass"), (c2, REPORT, "pass")]
