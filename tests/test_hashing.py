"""The incremental state hash equals a full recomputation, and the fast leaf encoders equal JSON."""
import hashlib
import json

from bastion.core.hashing import _DUMPS, _leaf_bytes, compute_state_hash_full, iter_leaf_keys, serialize_leaf
from bastion.scenario import run_scenario
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _final_state_of(name):
    from bastion.core.genesis import build_state
    from bastion.core.messages import decode_message, normalize_address
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
                                    "council", "listing", "order_limits", "disputes"}  # demo holds BGOV
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
               chain.submit(ALICE, place_order(client_id=2, time_in_force="gtt", good_til="2026-01-01T00:00:03Z",
                                               **stop)),
               chain.submit(BOB, place_order(client_id=1, side="sell", price="49000", order_type="take_profit_limit",
                                             trigger_price="52000"))]
    assert [r["status"] for r in results] == ["untriggered"] * 3
    hashes = [_end_block_checked(chain)]
    assert {key[0] for key in iter_leaf_keys(chain.state)} == {"global", "market", "twap", "sub", "conditional",
                                                                 "governance", "council", "listing", "order_limits",
                                                                 "disputes"}
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


# ---------------------------------------------------------------------------------------------------
# The lattice commitment (LtHash): hostile strings, incremental = full = the documented bytes
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from bastion.core.book import BUY, Order  # noqa: E402
from bastion.core.hashing import (  # noqa: E402
    LANES, _LaneSum, commit_state_hash, commitment, leaf_encoding, leaf_vector_bytes,
)
from bastion.core.state import NonceRecord, Proposal, Subaccount  # noqa: E402

HOSTILE = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(categories=["Cs", "Cc", "Zs", "Po"]), max_size=12),  # lone surrogates, controls
    st.sampled_from(["0x" + "ab" * 20 + "\n", '"', "\\", "\x7f", "\u2028", "é", "\ud800", "a" * 10_000, ""]),
)
BIG = st.one_of(st.integers(min_value=-(2**64), max_value=2**64), st.sampled_from([10**4000, -(10**300), 0]))


def _documented_leaves(state) -> dict:
    return {key: leaf_encoding(key, serialize_leaf(state, key)) for key in iter_leaf_keys(state)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(owner=HOSTILE, title=HOSTILE, sender=HOSTILE, ticker_word=HOSTILE, amount=BIG, client_id=BIG,
       nonce=BIG)
def test_hostile_strings_hash_the_same_incrementally_from_scratch_and_as_documented(
        owner, title, sender, ticker_word, amount, client_id, nonce):
    from builders import BTC, genesis
    from bastion.core.genesis import build_state

    state = build_state(genesis())
    before = state.state_hash
    state.subaccounts[(owner, 3)] = Subaccount(owner, 3, amount, "cross", ticker_word or None)
    state.touch(("sub", owner, 3))
    state.markets[BTC].book.add(Order(10**6, BUY, 1, 5, 5, owner, 3, client_id, ticker_word, True, amount,
                                      ticker_word, 0))
    state.touch(("order", BTC, 10**6))
    tier = next(iter(state.governance.tiers.values()))
    state.proposals[title] = Proposal(title, 1, owner, title, title + "\n" + owner, (), amount, "low", 1, 1, 1, tier)
    state.touch(("proposal", title))
    state.nonces[sender] = NonceRecord(nonce, amount, [nonce + 1, nonce + 2])
    state.touch(("nonces", sender))

    incremental = commit_state_hash(state)
    assert incremental == compute_state_hash_full(state)
    documented = _documented_leaves(state)
    for key, data in documented.items():
        assert _leaf_bytes(state, key) == data, key
    lanes = [0] * LANES
    for data in documented.values():  # the commitment from the documented bytes alone
        vector = leaf_vector_bytes(hashlib.sha256(data).digest())
        lanes = [(a + int.from_bytes(vector[2 * i:2 * i + 2], "little")) % 65536 for i, a in enumerate(lanes)]
    assert incremental == commitment(b"".join(lane.to_bytes(2, "little") for lane in lanes))

    del state.subaccounts[(owner, 3)], state.proposals[title], state.nonces[sender]
    state.markets[BTC].book.remove(10**6)
    for key in (("sub", owner, 3), ("proposal", title), ("nonces", sender), ("order", BTC, 10**6)):
        state.touch(key)
    assert commit_state_hash(state) == before  # every vector subtracted exactly


def test_lane_sums_wrap_each_lane_modulo_2_16_without_carrying_into_the_next():
    top = int.from_bytes(b"\xff\xff" * LANES, "little")  # every lane 65535
    one = int.from_bytes(b"\x01\x00" * LANES, "little")
    lanes = _LaneSum(top)
    lanes.add(one)
    assert lanes.result() == 0  # 65535 + 1 wraps to 0 in every lane, nothing carried
    lanes.sub(one)
    assert lanes.result() == top  # 0 - 1 wraps back to 65535
    many = _LaneSum(0)
    for _ in range(70_000):  # past the fold bound of the spare bits
        many.add(top)
    assert many.result() == int.from_bytes(((65535 * 70_000) % 65536).to_bytes(2, "little") * LANES, "little")


def test_a_leaf_vector_is_shake128_of_its_digest_with_the_domain():
    digest = hashlib.sha256(b"x").digest()
    assert leaf_vector_bytes(digest) == hashlib.shake_128(b"bastion/leaf/v2" + digest).digest(2048)


def test_a_commit_of_more_vectors_than_one_fold_holds_equals_the_full_recomputation():
    """One commit adding and subtracting more vectors than the slot sums take before folding
    (``_FOLD``) and more than the vector cache keeps: 16,000 new subaccount leaves, then all of
    them changed in one commit (16,000 vectors out, 16,000 in), then all removed."""
    from builders import genesis
    from bastion.core.genesis import build_state
    from bastion.core.hashing import _CACHED_VECTORS, _FOLD

    state = build_state(genesis())
    before = state.state_hash
    owners = [f"0x{i:040x}" for i in range(1, 16_001)]
    assert 2 * len(owners) > _FOLD and len(owners) > 2 * _CACHED_VECTORS
    for owner in owners:
        state.subaccounts[(owner, 7)] = Subaccount(owner, 7, 1)
        state.touch(("sub", owner, 7))
    assert commit_state_hash(state) == compute_state_hash_full(state)
    for owner in owners:
        state.subaccounts[(owner, 7)].balance = 65_535
        state.touch(("sub", owner, 7))
    assert commit_state_hash(state) == compute_state_hash_full(state)
    for owner in owners:
        del state.subaccounts[(owner, 7)]
        state.touch(("sub", owner, 7))
    assert commit_state_hash(state) == before


def test_lane_differences_wrap_each_lane_modulo_2_16():
    """Subtractions only, past the fold bound: every lane wraps below zero on its own."""
    top = int.from_bytes(b"\xff\xff" * LANES, "little")
    mixed = int.from_bytes(bytes(range(256)) * (2 * LANES // 256), "little")
    lanes = _LaneSum(mixed)
    for _ in range(70_001):
        lanes.sub(top)
    expected = [(int.from_bytes(bytes(range(256)) * 8, "little") >> (16 * i)) & 0xFFFF for i in range(LANES)]
    expected = [(lane + 70_001) % 65536 for lane in expected]  # minus 65535 is plus 1, mod 2**16
    assert lanes.result() == int.from_bytes(b"".join(lane.to_bytes(2, "little") for lane in expected), "little")


# ---------------------------------------------------------------------------------------------------
# The leaf kinds are declared once (bastion.core.leaves.LEAF_KINDS); everything else derives from it
import dataclasses  # noqa: E402

from bastion.core import leaves  # noqa: E402
from bastion.core.state import State  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"
# State fields in no leaf: the snapshot's derived data (bastion.core.snapshot) and what is rebuilt or
# is the hashing's own bookkeeping
NOT_IN_A_LEAF = {"params_epoch", "gtt_queue", "liquidation_watch", "state_hash", "nonce_expiry", "cancel_queue",
                 "dirty", "leaf_hashes", "hash_accumulator", "leaf_vectors", "agent_owners"}


def test_the_docs_leaf_table_is_the_declaration():
    text = (DOCS / "protocol.md").read_text()
    start = text.index("<!-- leaf table: generated by bastion.core.leaves.leaf_table() -->\n")
    end = text.index("<!-- end of leaf table -->")
    documented = text[text.index("\n", start) + 1:end]
    assert documented == leaves.leaf_table(), "paste bastion.core.leaves.leaf_table() into docs/protocol.md"
    assert documented.count("\n| `(") == len(leaves.LEAF_KINDS) == 47


def test_every_state_field_belongs_to_one_leaf_kind_or_is_named_as_derived():
    sections = [section.name for section in leaves.SNAPSHOT_SECTIONS]
    assert len(sections) == len(set(sections))  # a snapshot field has one writer and one reader
    assert {f.name for f in dataclasses.fields(State)} == set(sections) | NOT_IN_A_LEAF


def test_nested_kinds_follow_their_parent_and_only_the_hot_kinds_have_a_fast_encoder():
    names = [kind.name for kind in leaves.LEAF_KINDS]
    for kind in leaves.LEAF_KINDS:
        if kind.within is None:
            assert kind.keys is not None and kind.keys_within is None and kind.snapshot, kind.name
        else:
            parent = leaves.LEAF_KINDS_BY_NAME[kind.within]
            assert parent.within is None and names.index(parent.name) < names.index(kind.name), kind.name
            assert kind.keys is None and kind.keys_within is not None and not kind.snapshot, kind.name
    assert [kind.name for kind in leaves.LEAF_KINDS if kind.fast is not None] == ["order", "sub", "nonces"]
    assert set(leaves.LEAF_ENCODERS) == set(names)

