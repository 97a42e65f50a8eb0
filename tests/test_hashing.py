"""The incremental state hash equals a full recomputation, and the fast leaf encoders equal JSON."""
import json

from bastion.core.hashing import _DUMPS, _leaf_bytes, compute_state_hash_full, iter_leaf_keys, serialize_leaf
from bastion.scenario import run_scenario
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _final_state_of(name):
    from bastion.core.genesis import build_state
    from bastion.core.messages import decode_message, normalize_address
    from bastion.core.timefmt import parse_iso_ms
    from bastion.core.transition import apply_block

    doc = json.loads((EXAMPLES / name).read_text())
    state = build_state(doc["genesis"])
    hashes = []
    for block in doc["blocks"]:
        time_ms = state.time_ms + block["advance"] * 1000
        txs = [(normalize_address(tx["sender"], field="sender"), decode_message(tx["msg"])) for tx in block["txs"]]
        hashes.append((apply_block(state, time_ms, txs).state_hash, compute_state_hash_full(state)))
    return state, hashes


def test_incremental_hash_equals_full_recomputation_after_every_block():
    _, hashes = _final_state_of("demo.json")
    assert hashes and all(incremental == full for incremental, full in hashes)


def test_fast_leaf_encoding_is_byte_identical_to_canonical_json():
    state, _ = _final_state_of("demo.json")
    keys = list(iter_leaf_keys(state))
    assert {k[0] for k in keys} == {"global", "market", "twap", "order", "sub", "bgov", "total_supply", "governance",
                                    "council", "listing", "order_limits"}  # demo holds BGOV
    for key in keys:
        expected = _DUMPS(list(key)).encode() + b"\x00" + _DUMPS(serialize_leaf(state, key)).encode()
        assert _leaf_bytes(state, key) == expected, key


def test_scenario_result_hash_matches_state_hash_per_block():
    doc = json.loads((EXAMPLES / "quickstart.json").read_text())
    first, second = run_scenario(doc), run_scenario(doc)
    assert [b["state_hash"] for b in first["blocks"]] == [b["state_hash"] for b in second["blocks"]]
    assert first["final"]["state_hash"] == first["blocks"][-1]["state_hash"]


def test_conditional_orders_are_hashed_leaves_through_placement_trigger_cancel_and_expiry():
    from builders import ALICE, BOB, BTC, ORACLE, Chain, cancel_order, oracle_update, place_order

    chain = Chain()
    stop = dict(order_type="stop_limit", trigger_price="51000")
    results = [chain.submit(ALICE, place_order(client_id=1, **stop)),
               chain.submit(ALICE, place_order(client_id=2, time_in_force="gtt", good_til="2026-01-01T00:00:03Z", **stop)),
               chain.submit(BOB, place_order(client_id=1, side="sell", price="49000", order_type="take_profit_limit",
                                             trigger_price="52000"))]
    assert [r["status"] for r in results] == ["untriggered"] * 3
    hashes = [_end_block_checked(chain)]
    assert {key[0] for key in iter_leaf_keys(chain.state)} == {"global", "market", "twap", "sub", "conditional", "governance",
                                                                 "council", "listing", "order_limits"}
    for key in iter_leaf_keys(chain.state):  # the generic encoding serves the conditional leaves
        expected = _DUMPS(list(key)).encode() + b"\x00" + _DUMPS(serialize_leaf(chain.state, key)).encode()
        assert _leaf_bytes(chain.state, key) == expected, key
    chain.submit(ALICE, cancel_order(client_id=1))
    hashes.append(_end_block_checked(chain))  # cancelled
    hashes.append(_end_block_checked(chain))  # t=3 s: the gtt one expired
    chain.submit(ORACLE, oracle_update({BTC: "52000"}))
    hashes.append(_end_block_checked(chain))  # BOB's take-profit triggered
    assert chain.state.conditional_orders == {}
    assert len(set(hashes)) == len(hashes)


def _end_block_checked(chain) -> str:
    state_hash = chain.end_block()
    assert state_hash == compute_state_hash_full(chain.state)
    return state_hash
