"""The vocabularies of ``bastion.core.enums``: a member is its string everywhere it is written
(hash, JSON, snapshot, log bytes, messages), and the core compares statuses with members, not with
bare strings."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import orjson
import pytest
from builders import ALICE, BTC, genesis

from bastion.core.book import BUY, Order
from bastion.core.enums import (
    CONDITIONAL_ORDER_TYPES, MARGIN_MODES, MARKET_STATUSES, SELF_TRADE_MODES, TIME_IN_FORCE, MarginMode, MarketStatus,
    OrderType, SelfTrade, TimeInForce,
)
from bastion.core.genesis import build_state
from bastion.core.hashing import _leaf_bytes, commit_state_hash, compute_state_hash_full, leaf_encoding, serialize_leaf
from bastion.core.snapshot import canonical_bytes, state_from_document, state_to_document
from bastion.core.state import Subaccount
from bastion.node.blocklog import json_bytes

CORE = Path(__file__).resolve().parents[1] / "src" / "bastion" / "core"
VOCABULARIES = (MarketStatus, MarginMode, OrderType, TimeInForce, SelfTrade)


def test_the_wire_words_are_unchanged():
    assert MARKET_STATUSES == ("active", "reduce_only", "paused", "final_settlement", "settled")
    assert MARGIN_MODES == ("cross", "isolated")
    assert TIME_IN_FORCE == ("gtc", "gtt", "ioc", "fok", "post_only")
    assert SELF_TRADE_MODES == ("cancel_resting", "cancel_taking", "decrement")
    assert CONDITIONAL_ORDER_TYPES == ("stop_market", "stop_limit", "take_profit_market", "take_profit_limit")
    assert [m.value for m in OrderType][:2] == ["limit", "market"]


@pytest.mark.parametrize("member", [m for vocabulary in VOCABULARIES for m in vocabulary], ids=str)
def test_a_member_is_written_exactly_as_its_string(member):
    word = member.value
    assert member == word and hash(member) == hash(word) and {word: 1}[member] == 1 and member in {word}
    assert (str(member), f"{member}", f"{member!r}", repr([member])) == (word, word, repr(word), repr([word]))
    assert json.dumps({member: [member]}) == json.dumps({word: [word]})
    assert orjson.dumps([member]) == orjson.dumps([word])
    assert json_bytes({"status": member}, sort_keys=True) == json_bytes({"status": word}, sort_keys=True)


def _state_with(status, mode, time_in_force, self_trade):
    """A genesis state with one market status, one subaccount mode and one resting order's time in
    force and self-trade mode set to the given values (members or their strings)."""
    state = build_state(genesis())
    state.markets[BTC].status = status
    state.touch(("market", BTC))
    state.subaccounts[(ALICE, 7)] = Subaccount(ALICE, 7, 5_000_000, mode, BTC if mode == "isolated" else None)
    state.touch(("sub", ALICE, 7))
    state.markets[BTC].book.add(Order(10**6, BUY, 1, 5, 5, ALICE, 7, 1, time_in_force, False, None, self_trade, 0))
    state.touch(("order", BTC, 10**6))
    commit_state_hash(state)
    return state


@pytest.mark.parametrize("members", [
    (MarketStatus.REDUCE_ONLY, MarginMode.CROSS, TimeInForce.GTC, SelfTrade.CANCEL_RESTING),
    (MarketStatus.FINAL_SETTLEMENT, MarginMode.ISOLATED, TimeInForce.POST_ONLY, SelfTrade.DECREMENT),
])
def test_members_in_the_state_hash_and_snapshot_exactly_as_their_strings(members):
    words = tuple(member.value for member in members)
    assert all(type(word) is str for word in words)
    with_members, with_words = _state_with(*members), _state_with(*words)
    assert with_members.state_hash == with_words.state_hash == compute_state_hash_full(with_members)
    for key in (("market", BTC), ("sub", ALICE, 7), ("order", BTC, 10**6)):
        assert _leaf_bytes(with_members, key) == _leaf_bytes(with_words, key) == leaf_encoding(
            key, serialize_leaf(with_words, key))
    document = canonical_bytes(state_to_document(with_members))
    assert document == canonical_bytes(state_to_document(with_words))
    restored = state_from_document(json.loads(document))  # read back as plain strings: still equal
    assert restored.markets[BTC].status == members[0] and restored.state_hash == with_members.state_hash


def _bare_vocabulary_comparisons(source: str) -> list[str]:
    """Comparisons (``==``, ``!=``, ``in``, ``not in``) of a value with a bare vocabulary string."""
    words = {m.value for vocabulary in VOCABULARIES for m in vocabulary}
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        for operand in (node.left, *node.comparators):
            constants = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
            for constant in constants:
                if isinstance(constant, ast.Constant) and constant.value in words:
                    found.append(f"line {node.lineno}: {constant.value!r}")
    return found


def test_the_core_compares_statuses_and_modes_with_members_not_bare_strings():
    assert _bare_vocabulary_comparisons('if market.status == "settled":\n    pass') == ["line 1: 'settled'"]
    assert _bare_vocabulary_comparisons("if tif in ('ioc', 'fok'):\n    pass") == ["line 1: 'ioc'", "line 1: 'fok'"]
    found = {str(path.relative_to(CORE)): _bare_vocabulary_comparisons(path.read_text())
             for path in sorted(CORE.rglob("*.py"))}
    assert {name: hits for name, hits in found.items() if hits} == {}
