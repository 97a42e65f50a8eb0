"""Attacks through input (issue 13, "total validation"): each test is an attack with its outcome.

* **Poison decimals.** A decimal string of thousands of digits used to pass intake and then make
  ``int()`` raise ``ValueError`` inside ``apply_block`` (Python's 4,300-digit conversion limit),
  stopping the chain; a 4,000-digit size rested on the book. Now every decimal field of every
  message kind, governance actions included, is refused with ``decimal_too_long`` at intake
  (``decode_message``), a message cannot even be built with one (``dataclasses.replace``), and
  when one is forced into a built message anyway the handler's own parsing refuses it: the block
  commits, the state is what the block without it gives, and an honest transaction after the
  poison in the same block commits.
* **Whole-string patterns.** ``$`` matched before a final newline: a transfer to ``"0x...\\n"`` was
  accepted and the funds went to an owner nobody can sign for. Every pattern now matches the whole
  string, ASCII digits only.
* **Handlers never leak another exception**, and when one does anyway (a bug), ``apply_block``
  raises ``HandlerCrash`` instead of committing a half-applied transaction.
* **EIP-2**: the high-s twin of a valid signature is refused; the original is accepted once.
* **The demo**: a cross-site text/plain POST cannot move a demo trader's funds (CSRF), bad JSON is a
  400, pages carry CSP and anti-framing headers, and the demo refuses a non-loopback host.

The Hypothesis fuzzer over the whole message schema is ``tests/test_fuzz_messages.py``.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from builders import (
    ALICE, BOB, BRIDGE, BTC, ORACLE, Chain, account, delegate, deposit, genesis, oracle_update, place_order,
    set_leverage, steward_change, subaccount, submit_proposal, transfer, transfer_bgov, withdraw,
)
from eth_account import Account
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bastion.app import ApiConfig, create_app
from bastion.signing import SECP256K1_HALF_N, sign_envelope
from bastion.cli.main import app as cli_app
from bastion.core import transition
from bastion.core.errors import InvariantViolation, ProtocolError
from bastion.core.genesis import build_state
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import Withdraw, decode_message
from bastion.core.timefmt import parse_iso_ms
from bastion.core.transition import HandlerCrash, apply_block
from bastion.core.units import MAX_INTEGER_DIGITS, parse_decimal
from bastion.demo.features import demo_features
from bastion.demo.genesis import build_demo_genesis
from bastion.demo.keys import get_demo_keys
from bastion.node.node import Node

POISON = "1" * 5_000                      # beyond Python's int-string limit (4,300 digits)
BELOW_LIMIT = "7" * 4_000                 # converts, but used to rest a 4,000-digit size on the book
JUST_ABOVE = "1" * (MAX_INTEGER_DIGITS + 1)
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
FEE = {"type": "set_fee_params", "insurance_share": "0.2"}
HONEST = (ALICE, withdraw(amount="1"))    # after each attack, in the same block: must commit


def attack_genesis() -> dict:
    """The builders' genesis; ALICE holds 100 BGOV, delegated to herself, so she may propose (deposit 5)."""
    doc = genesis(governance={"proposal_threshold": "10", "min_deposit": "5"})
    doc["accounts"][0].update(bgov="100", delegate=ALICE)
    return doc


def with_field(msg: dict, path: str, value: object) -> dict:
    """``msg`` with ``value`` at ``path`` ("size", "prices.BTC-USD", "actions.0.amount")."""
    out = _copy(msg)
    target = out
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return out


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def smuggled(msg: dict, path: str, value: str):
    """The typed message of ``msg`` with ``value`` forced in at ``path`` after it was built (and
    checked): what a handler would see if a message ever got past the bounds (another adapter, a
    bug); the handler's own parsing must refuse it."""
    typed = decode_message(msg)
    parts = path.split(".")
    if parts[0] == "prices":
        object.__setattr__(typed, "prices", {**typed.prices, parts[1]: value})
    elif parts[0] == "actions":
        object.__setattr__(typed.actions[int(parts[1])], parts[2], value)
    else:
        object.__setattr__(typed, path, value)
    return typed


def rebuilt(msg: dict, path: str, value: str):
    """The typed message of ``msg`` rebuilt with ``value`` at ``path`` (``dataclasses.replace``),
    without the JSON decoder."""
    typed = decode_message(msg)
    parts = path.split(".")
    if parts[0] == "prices":
        return dataclasses.replace(typed, prices={**typed.prices, parts[1]: value})
    if parts[0] == "actions":
        return dataclasses.replace(typed.actions[int(parts[1])], **{parts[2]: value})
    return dataclasses.replace(typed, **{path: value})


# (sender, valid message, the decimal field attacked): every decimal field of every message kind
DECIMAL_FIELDS = [
    (ALICE, transfer_bgov(), "amount"),
    (ALICE, submit_proposal(FEE), "deposit"),
    (ALICE, place_order(), "size"),
    (ALICE, place_order(), "price"),
    (ALICE, place_order(order_type="stop_limit", trigger_price="45000", side="sell", price="44000"), "trigger_price"),
    (ALICE, withdraw(), "amount"),
    (ALICE, transfer(to_owner=BOB), "amount"),
    (BRIDGE, deposit(), "amount"),
    (ALICE, set_leverage(), "initial_margin"),
    (ORACLE, oracle_update(), f"prices.{BTC}"),
    (ALICE, steward_change("fees.insurance_share_ppm", "0.3"), "value"),
    # governance actions' decimals
    (ALICE, submit_proposal(FEE), "actions.0.insurance_share"),
    (ALICE, submit_proposal({"type": "set_market_params", "market": BTC, "max_open_interest": "10"}),
     "actions.0.max_open_interest"),
    (ALICE, submit_proposal({"type": "set_market_params", "market": BTC, "maker_fee": "0.0001"}),
     "actions.0.maker_fee"),
    (ALICE, submit_proposal({"type": "set_liquidity_tier", "tier": 0, "initial_margin": "0.05"}),
     "actions.0.initial_margin"),
    (ALICE, submit_proposal({"type": "set_liquidation_params", "max_notional_per_block": "1000"}),
     "actions.0.max_notional_per_block"),
    (ALICE, submit_proposal({"type": "treasury_spend", "to_owner": BOB, "to_subaccount": 0, "amount": "1"}),
     "actions.0.amount"),
    (ALICE, submit_proposal({"type": "insurance_transfer", "from_pool": "treasury", "to_pool": "cross",
                             "amount": "1"}), "actions.0.amount"),
    (ALICE, submit_proposal({"type": "start_rollout", "market": BTC, "param": "max_open_interest", "target": "100",
                             "steps": 2, "interval_s": 60, "gates": {}}), "actions.0.target"),
    (ALICE, submit_proposal({"type": "set_listing_params", "max_open_interest": "1000"}),
     "actions.0.max_open_interest"),
    (ALICE, submit_proposal({"type": "set_market_params", "market": BTC, "max_order_size": "100"}),
     "actions.0.max_order_size"),
    (ALICE, submit_proposal({"type": "set_order_limits", "min_order_notional": "1"}), "actions.0.min_order_notional"),
    (ALICE, submit_proposal({"type": "list_market", "ticker": "NEW-USD", "size_decimals": 2, "price_decimals": 2,
                             "oracle_price": "10", "min_order_size": "1", "max_open_interest": "100"}),
     "actions.0.oracle_price"),
]
IDS = [f"{msg['type']}.{path}" for _, msg, path in DECIMAL_FIELDS]


@pytest.mark.parametrize("poison", [POISON, BELOW_LIMIT, JUST_ABOVE, "1." + "0" * 4_999])
@pytest.mark.parametrize(("sender", "msg", "path"), DECIMAL_FIELDS, ids=IDS)
def test_a_poison_decimal_is_refused_at_intake(sender, msg, path, poison):
    decode_message(msg)  # the message itself is valid

    with pytest.raises(ProtocolError) as refused:
        decode_message(with_field(msg, path, poison))

    assert refused.value.code == "decimal_too_long"


@pytest.mark.parametrize(("sender", "msg", "path"), DECIMAL_FIELDS, ids=IDS)
def test_a_message_cannot_even_be_built_with_a_poison_decimal(sender, msg, path):
    with pytest.raises(ProtocolError) as refused:
        rebuilt(msg, path, POISON)

    assert refused.value.code == "decimal_too_long"


@pytest.mark.parametrize(("sender", "msg", "path"), DECIMAL_FIELDS, ids=IDS)
def test_a_poison_decimal_smuggled_past_the_bounds_is_refused_by_the_handler_and_the_chain_goes_on(sender, msg, path):
    attacked, reference = Chain(attack_genesis()), Chain(attack_genesis())
    poisoned = smuggled(msg, path, POISON)
    time_ms = attacked.state.time_ms + 1_000

    block = apply_block(attacked.state, time_ms, [(sender, poisoned), (HONEST[0], decode_message(HONEST[1]))])
    expected = apply_block(reference.state, time_ms, [(HONEST[0], decode_message(HONEST[1]))])

    # the handler's parse_decimal checks again; a steward change from a non-member is refused before its
    # value is read, and a listing reports its genesis-form errors as invalid_listing
    code = {"value": "not_council_member", "actions.0.oracle_price": "invalid_listing"}.get(path, "decimal_too_long")
    assert block.results[0]["ok"] is False and block.results[0]["code"] == code
    assert block.results[1]["ok"] is True                      # the honest withdrawal after it commits
    assert block.state_hash == expected.state_hash              # the poison changed nothing
    assert compute_state_hash_full(attacked.state) == block.state_hash


def test_a_four_thousand_digit_size_never_rests_on_the_book():
    chain = Chain(attack_genesis())
    chain.open_block()
    book_before = compute_state_hash_full(chain.state)

    result = chain.submit(ALICE, place_order(size=BELOW_LIMIT, price="1"))

    assert result["ok"] is False and result["code"] == "decimal_too_long"
    assert not chain.subaccount(ALICE).orders and compute_state_hash_full(chain.state) == book_before


def test_thirty_digits_still_parse_exactly():
    whole = "9" * MAX_INTEGER_DIGITS

    assert parse_decimal(whole, 6, field="x") == int(whole) * 10**6
    assert parse_decimal(whole + "." + "1" * 6, 6, field="x") == int(whole + "1" * 6)
    assert parse_decimal("0." + "0" * 23 + "1000000", 30, field="x") == 10**6


@pytest.mark.parametrize("text", ["1\n", " 1", "1 ", "1e5", "+1", "٣", "１", "1_000", "0x10", "1.", ".5", "", "--1",
                                  "NaN", "inf", "1.2.3", "1,5", "²"])
def test_only_plain_ascii_decimals_are_decimals(text):
    with pytest.raises(ProtocolError) as refused:
        decode_message(place_order(size=text))
    assert refused.value.code == "invalid_decimal"
    with pytest.raises(ProtocolError):
        parse_decimal(text, 4, field="size")


# ------------------------------------------------------------------------------------ whole-string patterns
def test_a_transfer_to_an_address_with_a_trailing_newline_is_refused_and_moves_nothing():
    chain = Chain(attack_genesis())
    target = BOB + "\n"
    before = (chain.subaccount(ALICE).balance, compute_state_hash_full(chain.state))

    with pytest.raises(ProtocolError) as refused:
        decode_message(transfer(to_owner=target, amount="1000"))
    with pytest.raises(ProtocolError):
        dataclasses.replace(decode_message(transfer(to_owner=BOB, amount="1000")), to_owner=target)
    typed = smuggled(transfer(to_owner=BOB, amount="1000"), "to_owner", target)
    block = apply_block(chain.state, chain.state.time_ms + 1_000,
                        [(ALICE, typed), (ALICE, decode_message(transfer(to_owner=BOB, amount="0.000001")))])

    assert refused.value.code == "invalid_address"
    assert block.results[0] == {"ok": False, "code": "invalid_address", "message": block.results[0]["message"]}
    assert block.results[1]["ok"] is True
    assert chain.subaccount(ALICE).balance == before[0] - 1       # only the honest micro-USDC left
    assert (target.lower(), 0) not in chain.state.subaccounts and (target, 0) not in chain.state.subaccounts
    assert compute_state_hash_full(chain.state) == block.state_hash


@pytest.mark.parametrize(("msg", "code"), [
    (delegate(delegatee=ALICE + "\n"), "invalid_address"),
    (transfer_bgov(to=BOB + "\n"), "invalid_address"),
    (place_order(time_in_force="gtt", good_til="2026-01-01T01:00:00Z\n"), "invalid_time"),
])
def test_no_pattern_matches_before_a_trailing_newline(msg, code):
    chain = Chain(attack_genesis())
    chain.open_block()
    before = compute_state_hash_full(chain.state)

    with pytest.raises(ProtocolError) as refused:
        decode_message(msg)
    result = chain.submit(ALICE, msg)

    assert refused.value.code == code
    assert result["ok"] is False
    assert compute_state_hash_full(chain.state) == before


def test_times_tickers_and_fractions_match_the_whole_string():
    with pytest.raises(ProtocolError):
        parse_iso_ms("2026-01-01T00:00:00Z\n", field="t")
    with pytest.raises(ProtocolError) as ticker:
        build_state(genesis(markets=[{"ticker": "BTC-USD\n", "size_decimals": 4, "price_decimals": 1,
                                      "oracle_price": "50000"}]))
    assert ticker.value.code == "invalid_genesis"
    from bastion.core.governance.params_codec import parse_fraction
    with pytest.raises(ProtocolError) as fraction:
        parse_fraction("1/" + "3" * 5_000, "quorum")
    assert fraction.value.code == "invalid_field"


@pytest.mark.parametrize("chain_id", ["", "x" * 65, "bastion\n", "bastion-\u00e9"])
def test_a_genesis_chain_id_is_short_printable_ascii(chain_id):
    with pytest.raises(ProtocolError) as refused:
        build_state(genesis(chain_id=chain_id))
    assert refused.value.code == "invalid_genesis" and refused.value.fields["field"] == "genesis.chain_id"


def test_a_huge_tier_number_in_a_steward_parameter_name_is_refused_not_raised():
    from bastion.core.governance.council_rules import get_steward_parameter

    with pytest.raises(ProtocolError) as refused:
        get_steward_parameter("liquidity_tiers." + "1" * 5_000 + ".initial_margin_ppm")
    assert refused.value.code == "not_steward_parameter"
    with pytest.raises(ProtocolError) as long_name:
        decode_message(steward_change("liquidity_tiers." + "1" * 5_000 + ".initial_margin_ppm", "0.1"))
    assert long_name.value.code == "text_too_long"


# ------------------------------------------------------------------------------------ bounded fields
@pytest.mark.parametrize(("msg", "code"), [
    (place_order(client_id=2**70), "int_out_of_range"),
    (place_order(subaccount=-(2**64)), "int_out_of_range"),
    ({"type": "cancel_order", "subaccount": 0, "order_id": 10**40}, "int_out_of_range"),
    (place_order(market="B" * 129), "text_too_long"),
    (place_order(side="\ud800"), "invalid_text"),
    (submit_proposal(FEE, title="t" * 201), "invalid_title"),
    (submit_proposal(FEE, description="\ud800"), "invalid_text"),
    ({"type": "vote", "proposal_id": "x" * 129, "option": "yes"}, "text_too_long"),
    ({"type": "vote", "proposal_id": "x", "option": "yes", "reason": "r" * 1_001}, "reason_too_long"),
    (oracle_update({f"T{i}": "1" for i in range(65)}), "invalid_field"),
    (submit_proposal({"type": "set_governance_params", "params": {"a": [[[[["deep"]]]]]}}), "value_too_large"),
    (submit_proposal({"type": "set_governance_params", "params": {"a": list(range(300))}}), "value_too_large"),
    (submit_proposal({"type": "set_governance_params", "params": {"a": 1.5}}), "invalid_field"),
    (submit_proposal({"type": "set_council", "members": [BOB] * 65, "threshold": 1}), "too_many_items"),
    (submit_proposal({"type": "set_oracle_operators", "operators": [ORACLE + "\n"]}), "invalid_address"),
])
def test_every_field_is_bounded_at_intake_and_in_the_transition(msg, code):
    with pytest.raises(ProtocolError) as refused:
        decode_message(msg)
    assert refused.value.code == code


def test_a_handler_bug_stops_the_block_instead_of_committing_half_of_a_transaction(monkeypatch):
    chain = Chain(attack_genesis())

    def broken_withdraw(state, sender, msg, events):
        state.subaccounts[(sender, msg.subaccount)].balance -= 1  # mutates, then fails
        raise ValueError("a bug")

    monkeypatch.setitem(transition.HANDLERS, Withdraw, broken_withdraw)
    with pytest.raises(HandlerCrash) as crash:
        apply_block(chain.state, chain.state.time_ms + 1_000, [(ALICE, decode_message(withdraw(amount="1")))])

    assert isinstance(crash.value, InvariantViolation)
    assert "Withdraw" in str(crash.value) and "ValueError" in str(crash.value)


# ------------------------------------------------------------------------------------ the API
ALICE_KEY = "0x" + "a1" * 32
ALICE_API = Account.from_key(ALICE_KEY).address.lower()
BOB_API = Account.from_key("0x" + "b1" * 32).address.lower()


@pytest.fixture
def api(tmp_path: Path):
    now = {"ms": build_state(attack_genesis()).time_ms + 1_000}
    doc = genesis(accounts=[account(ALICE_API, subaccount(0, "10000")), account(BOB_API, subaccount(0, "10000"))])
    node = Node(tmp_path / "n", doc, clock_ms=lambda: now["ms"])
    client = TestClient(create_app(node, ApiConfig(clock_ms=lambda: now["ms"])))
    client.node, client.now = node, now
    yield client
    node.close()


@pytest.mark.parametrize(("size", "status", "code"), [
    (POISON, 400, None), (BELOW_LIMIT, 400, None), (JUST_ABOVE, 400, "decimal_too_long"),
    ("1\n", 400, "invalid_decimal"), ("٣", 400, "invalid_decimal"),
])
def test_the_preview_answers_a_poison_size_with_a_4xx_code_not_500(api, size, status, code):
    body = {"owner": ALICE_API, "market": BTC, "side": "buy", "size": size, "price": "50000"}

    response = api.post("/v1/preview/order", json=body)

    assert response.status_code == status
    assert response.json()["code"] == (code or "invalid_request")
    fine = api.post("/v1/preview/order", json={**body, "size": "0.1"})
    assert fine.status_code == 200 and fine.json()["accepted"] is True


def test_a_poison_transaction_is_refused_at_the_api_and_the_next_one_commits(api):
    nonce = api.now["ms"] * 1_000
    poison = sign_envelope(ALICE_KEY, "bastion-test", transfer(to_owner=BOB_API, amount=POISON), nonce)
    honest = sign_envelope(ALICE_KEY, "bastion-test", transfer(to_owner=BOB_API, amount="1"), nonce + 1)

    refused = api.post("/v1/tx", json=poison)
    accepted = api.post("/v1/tx", json=honest)
    api.node.produce_block()

    assert refused.status_code == 400 and refused.json()["code"] == "decimal_too_long"
    assert accepted.status_code == 202
    assert api.node.state.subaccounts[(BOB_API, 0)].balance == 10_001 * 10**6


def high_s_twin(signature: str) -> str:
    raw = bytes.fromhex(signature[2:])
    s, v = int.from_bytes(raw[32:64], "big"), raw[64]
    return "0x" + (raw[:32] + (N - s).to_bytes(32, "big") + bytes([55 - v])).hex()


def test_the_high_s_twin_of_a_signature_is_refused_and_the_original_accepted_once(api):
    envelope = sign_envelope(ALICE_KEY, "bastion-test", transfer(to_owner=BOB_API, amount="5"), api.now["ms"] * 1_000)
    twin = {**envelope, "signature": high_s_twin(envelope["signature"])}

    refused = api.post("/v1/tx", json=twin)
    accepted = api.post("/v1/tx", json=envelope)
    replayed = api.post("/v1/tx", json=envelope)
    api.node.produce_block()

    assert refused.status_code == 401 and refused.json()["code"] == "high_s_signature"
    assert accepted.status_code == 202
    assert replayed.status_code >= 400
    assert api.node.state.subaccounts[(BOB_API, 0)].balance == 10_005 * 10**6   # moved once


def test_the_sdk_signs_low_s_only():
    for index in range(64):
        key = "0x" + bytes([index + 1]).hex() * 32
        envelope = sign_envelope(key, "bastion-test", withdraw(amount=str(index)), 10**15 + index)
        raw = bytes.fromhex(envelope["signature"][2:])
        assert int.from_bytes(raw[32:64], "big") <= SECP256K1_HALF_N
        twin = high_s_twin(envelope["signature"])
        assert int.from_bytes(bytes.fromhex(twin[2:])[32:64], "big") > SECP256K1_HALF_N


# ------------------------------------------------------------------------------------ the demo
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("attack-demo") / "demo"
    node = Node(data_dir, build_demo_genesis(time.time_ns() // 1_000_000), read_models=None)
    client = TestClient(create_app(node, ApiConfig(), demo=demo_features()), base_url="http://127.0.0.1:8000")
    yield client, node
    node.close()


ALICE_DEMO = get_demo_keys()["alice"].address
STEAL = {"trader": "alice", "msg": {"type": "transfer", "subaccount": 0, "to_owner": "0x" + "66" * 20,
                                    "to_subaccount": 0, "amount": "1234"}}


@pytest.mark.parametrize("headers", [
    {"content-type": "text/plain", "origin": "http://evil.example"},          # the classic CSRF form/fetch
    {"content-type": "text/plain"},                                          # no origin, still not JSON
    {"content-type": "application/x-www-form-urlencoded", "origin": "null"},
    {"content-type": "application/json", "origin": "http://evil.example"},   # would need CORS: refused anyway
    {"content-type": "application/json", "referer": "http://evil.example/x"},
    {"content-type": "application/json", "origin": "http://127.0.0.1:8000", "sec-fetch-site": "cross-site"},
])
def test_a_cross_site_post_cannot_move_a_demo_traders_funds(demo, headers):
    import json

    client, node = demo
    before = node.state.subaccounts[(ALICE_DEMO, 0)].balance

    response = client.post("/ui/demo/submit", content=json.dumps(STEAL), headers=headers)
    node.produce_block()

    assert response.status_code in (403, 415) and response.json()["status"] == "refused"
    assert response.json()["code"] in ("cross_origin_refused", "json_required")
    assert node.state.subaccounts[(ALICE_DEMO, 0)].balance == before
    assert len(node.mempool) == 0


def test_a_rebound_host_name_cannot_use_the_demo_endpoints(demo):
    import json

    client, node = demo
    headers = {"content-type": "application/json", "origin": "http://evil.example:8000", "host": "evil.example:8000"}

    response = client.post("/ui/demo/faucet", content=json.dumps({"address": ALICE_DEMO}), headers=headers)

    assert response.status_code == 403 and response.json()["code"] == "cross_origin_refused"


@pytest.mark.parametrize("path", ["/ui/demo/submit", "/ui/demo/faucet", "/ui/preview"])
def test_bad_json_is_a_400_not_a_500(demo, path):
    client, _ = demo

    response = client.post(path, content=b"{not json", headers={"content-type": "application/json"})

    assert response.status_code == 400 and response.json()["code"] == "invalid_json"


def test_a_same_origin_demo_post_still_works(demo):
    client, node = demo
    faucet = {"address": "0x" + "77" * 20}

    response = client.post("/ui/demo/faucet", json=faucet, headers={"origin": "http://127.0.0.1:8000",
                                                                     "sec-fetch-site": "same-origin"})

    assert response.status_code == 200
    deadline = time.monotonic() + 5
    while ("0x" + "77" * 20, 0) not in node.state.subaccounts and time.monotonic() < deadline:
        node.produce_block()
    assert node.state.subaccounts[("0x" + "77" * 20, 0)].balance == 10_000 * 10**6


@pytest.mark.parametrize("path", ["/", "/trade/BTC-USD", "/governance", "/v1/status", "/static/app.js"])
def test_every_answer_carries_csp_and_anti_framing_headers(demo, path):
    client, _ = demo

    response = client.get(path)

    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self';" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


cli = CliRunner()


@pytest.mark.parametrize("args", [["demo", "--host", "0.0.0.0"], ["demo", "--host", "192.168.1.10"],
                                  ["node", "--demo", "--host", "0.0.0.0"]])
def test_the_demo_refuses_a_non_loopback_host(tmp_path, args):
    result = cli.invoke(cli_app, [*args, "--data", str(tmp_path / "d")])

    assert result.exit_code == 2
    assert "loopback" in result.output
    assert not (tmp_path / "d" / "blocks.db").exists()


def test_the_demo_server_itself_refuses_a_public_host(tmp_path):
    from bastion.demo import DemoHostRefused, DemoServer

    with pytest.raises(DemoHostRefused):
        DemoServer(tmp_path / "d", host="0.0.0.0", bots=False)
    assert not (tmp_path / "d").exists()


def test_a_node_whose_operators_are_demo_keys_refuses_a_public_host(tmp_path):
    import json

    doc = tmp_path / "genesis.json"
    doc.write_text(json.dumps(build_demo_genesis(1_767_225_600_000)))

    result = cli.invoke(cli_app, ["node", "--data", str(tmp_path / "d"), "--genesis", str(doc), "--host", "0.0.0.0",
                                  "--read-models", "none"])

    assert result.exit_code == 2 and "demo keys" in result.output
