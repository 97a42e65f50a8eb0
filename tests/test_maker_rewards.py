"""Volatility-weighted maker rewards (issue 19): the formulas, the book's per-maker totals, sampling,
the epoch payout, the governance action, and properties over random trading.

Hand-worked whole-chain examples are the golden scenarios ``tests/scenarios/rewards_*.json``.
"""
from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.core import leaves
from bastion.core.book import BUY, FILL_CANCEL_MAKER, Book, Order
from bastion.core.errors import ProtocolError
from bastion.core.governance.changes import ParamGroup, ParamPath
from bastion.core.governance.dispatch import apply_effect, compute_action_changes
from bastion.core.hashing import compute_state_hash_full
from bastion.core.maker_rewards import format_maker_reward_params, parse_maker_reward_params
from bastion.core.messages import SetMakerRewardParams, decode_action
from bastion.core.params import MakerRewardParams
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.state import ParamSource
from bastion.core.transition import check_invariants
from bastion.risk_model import (
    maker_band_ticks, maker_epoch_score, maker_reward, maker_sample_score, maker_volatility_weight_ppm,
)
from tests.builders import ALICE, BOB, BTC, CAROL, DAVE, Chain, cancel_all, cancel_order, genesis, place_order

PPM = 1_000_000
REWARDS_ON = {"epoch_blocks": 4, "sample_interval_blocks": 2, "band": "0.02", "min_rest_blocks": 1,
              "pool_share": "0.5", "max_share_per_maker": "0.6", "volatility_slope": "100",
              "max_volatility_weight": "5"}


# --------------------------------------------------------------------------------------- the formulas
def test_band_rounds_inward() -> None:
    assert maker_band_ticks(50_000, band_ppm=10_000) == (49_500, 50_500)
    # 333 x 0.99 = 329.67 -> 330 (up); 333 x 1.01 = 336.33 -> 336 (down)
    assert maker_band_ticks(333, band_ppm=10_000) == (330, 336)


def test_volatility_weight_grows_with_the_move_and_is_capped() -> None:
    weight = maker_volatility_weight_ppm
    assert weight(0, 50_000, slope_ppm=100 * PPM, max_weight_ppm=5 * PPM) == PPM          # first sample
    assert weight(50_000, 50_000, slope_ppm=100 * PPM, max_weight_ppm=5 * PPM) == PPM     # calm
    # a 2% move up or down: 1 + 100 x 0.02 = 3
    assert weight(50_000, 51_000, slope_ppm=100 * PPM, max_weight_ppm=5 * PPM) == 3 * PPM
    assert weight(50_000, 49_000, slope_ppm=100 * PPM, max_weight_ppm=5 * PPM) == 3 * PPM
    # a 10% move would give 11: capped at 5
    assert weight(50_000, 55_000, slope_ppm=100 * PPM, max_weight_ppm=5 * PPM) == 5 * PPM
    # 1 tick of 30,000 = 33.33 ppm -> 33 (down), x 100 = 3,300 ppm
    assert weight(30_000, 30_001, slope_ppm=100 * PPM, max_weight_ppm=5 * PPM) == PPM + 3_300


def test_sample_score_is_two_sided_depth_times_weight() -> None:
    # min(1,000, 3,000) lots at 50,000 ticks, size 4 / price 0 decimals: 1,000 x 50,000 x 100 micro-USDC, x 1.5
    assert maker_sample_score(1_000, 3_000, 50_000, 1_500_000, size_decimals=4, price_decimals=0) == 7_500_000_000
    assert maker_sample_score(0, 3_000, 50_000, 5 * PPM, size_decimals=4, price_decimals=0) == 0
    # price_decimals 1 (ticks of 0.1): 7 lots at 500,001 ticks = 7 x 500,001 x 10 = 35,000,070; x 1/3 floored
    assert maker_sample_score(7, 9, 500_001, 333_333, size_decimals=4, price_decimals=1) == 11_666_678


def test_epoch_score_and_reward_round_down_and_cap() -> None:
    assert maker_epoch_score(20_200, 2, 3) == 13_466
    assert maker_epoch_score(5, 1, 0) == 0
    # 3,036,000 x 25,400 = 77,114,400,000; / 38,866 = 1,984,109 remainder 19,606
    assert maker_reward(3_036_000, 25_400, 38_866, max_share_ppm=PPM) == 1_984_109
    assert maker_reward(30_000_000, 2_500, 2_500, max_share_ppm=500_000) == 15_000_000
    assert maker_reward(10, 1, 3, max_share_ppm=PPM) == 3
    assert maker_reward(10, 0, 3, max_share_ppm=PPM) == 0


# --------------------------------------------------------------------------------------- the book's totals
def naive_depth(book: Book, low: int, high: int, before_ms: int | None) -> dict[tuple[str, int], list[int]]:
    """The per-maker depth by a scan of every order (what ``Book.maker_depth`` must equal)."""
    out: dict[tuple[str, int], list[int]] = {}
    for order in book.orders():
        if low <= order.price <= high:
            entry = out.setdefault((order.owner, order.number), [0, 0])
            if before_ms is None or order.placed_ms < before_ms:
                entry[order.side] += order.remaining
    return out


def totals_by_scan(book: Book) -> dict[int, dict[tuple[str, int], int]]:
    """Each level's lots per maker by a scan of every order (level key: price for bids, -price for asks)."""
    out: dict[int, dict[tuple[str, int], int]] = {}
    for order in book.orders():
        makers = out.setdefault(order.price if order.side == BUY else -order.price, {})
        maker = (order.owner, order.number)
        makers[maker] = makers.get(maker, 0) + order.remaining
    return out


def kept_totals(book: Book) -> dict[int, dict[tuple[str, int], int] | None]:
    """The per-maker totals each level of the book keeps (None while the book does not track them)."""
    return {key: level.makers for levels in (book._bids, book._asks) for key, level in levels.items()}


OPS = st.lists(st.tuples(st.sampled_from(["add", "remove", "reduce", "match", "match_each"]),
                         st.integers(0, 3), st.integers(0, 1), st.integers(95, 105), st.integers(1, 20)),
               min_size=1, max_size=60)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(ops=OPS)
def test_per_maker_totals_follow_every_book_write(ops: list[tuple[str, int, int, int, int]]) -> None:
    """After any sequence of adds, cancels, in-place reductions and matches (with and without a
    callback, which may cancel makers), each maker's per-level totals equal a scan of its orders,
    and ``maker_depth`` (with and without a rest cutoff) equals the naive scan."""
    book = Book()
    next_id = 1
    for time_ms, (op, who, side, price, lots) in enumerate(ops):
        if time_ms == len(ops) // 3:
            book.track_makers()   # from here on the writes keep the totals (built from the orders now)
        owner, number = ("a", "b")[who % 2], who // 2
        live = list(book.orders())
        if op == "add":
            best_other = book.best_ask() if side == BUY else book.best_bid()
            if best_other is not None and (price >= best_other if side == BUY else price <= best_other):
                continue
            book.add(Order(next_id, side, price, lots, owner=owner, number=number, placed_ms=time_ms))
            next_id += 1
        elif op == "remove" and live:
            book.remove(live[price % len(live)].order_id)
        elif op == "reduce" and live:
            target = live[price % len(live)]
            if target.remaining > 1:
                book.reduce(target.order_id, 1 + lots % (target.remaining - 1))
        elif op == "match":
            book.match(side, price, lots)
        elif op == "match_each":
            book.match(side, price, lots,
                       lambda maker, q, taker=owner: FILL_CANCEL_MAKER if maker.owner == taker else max(1, q // 2))
        if not book._tracked:   # not kept before the first track_makers: the writes skip it
            assert all(makers is None for makers in kept_totals(book).values())
            continue
        assert kept_totals(book) == totals_by_scan(book)  # the derived index under test
        for low, high, cutoff in ((97, 103, None), (100, 100, time_ms // 2), (0, 10**9, time_ms)):
            assert book.maker_depth(low, high, cutoff) == naive_depth(book, low, high, cutoff)
    restored = copy.deepcopy(book)
    assert not restored._tracked
    restored.track_makers()
    assert kept_totals(restored) == kept_totals(book) == totals_by_scan(book)


# --------------------------------------------------------------------------------------- chain helpers
def rewards_genesis(**rewards: object) -> dict:
    doc = genesis(maker_rewards={**REWARDS_ON, **rewards})
    return doc


def quote(owner: str, bid: str, ask: str, size: str = "0.1", cid: int = 1) -> list[tuple[str, dict]]:
    return [(owner, place_order(side="buy", price=bid, size=size, client_id=cid)),
            (owner, place_order(side="sell", price=ask, size=size, client_id=cid + 1))]


def paid_events(result) -> list[dict]:
    return [e for e in result.events if e["type"] == "maker_reward_paid"]


# --------------------------------------------------------------------------------------- parameters
def test_rewards_are_off_by_default_and_genesis_round_trips() -> None:
    chain = Chain()
    assert chain.state.maker_reward_params == MakerRewardParams()
    assert chain.state.maker_reward_params.epoch_blocks == 0
    params = parse_maker_reward_params(REWARDS_ON, MakerRewardParams(), "genesis.maker_rewards")
    assert params == MakerRewardParams(4, 2, 20_000, 1, 500_000, 600_000, 100 * PPM, 5 * PPM)
    assert parse_maker_reward_params(format_maker_reward_params(params), MakerRewardParams(), "x") == params


@pytest.mark.parametrize(("section", "code", "field"), [
    ({"epoch_blocks": 1, "sample_interval_blocks": 2}, "invalid_maker_reward_params", "genesis.maker_rewards"),
    ({"sample_interval_blocks": 0}, "invalid_maker_reward_params", "genesis.maker_rewards"),
    ({"min_rest_blocks": 3, "sample_interval_blocks": 2}, "invalid_maker_reward_params", "genesis.maker_rewards"),
    ({"band": "0"}, "invalid_maker_reward_params", "genesis.maker_rewards"),
    ({"band": "2"}, "invalid_field", "genesis.maker_rewards.band"),
    ({"epoch_blocks": "4"}, "invalid_field", "genesis.maker_rewards.epoch_blocks"),
    ({"epoch_blocks": True}, "invalid_field", "genesis.maker_rewards.epoch_blocks"),
    ({"pool_share": 0.5}, "invalid_decimal", "genesis.maker_rewards.pool_share"),
    ({"bonus": "1"}, "unknown_field", "genesis.maker_rewards.bonus"),
])
def test_bad_parameters_are_refused_with_the_field(section: dict, code: str, field: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_maker_reward_params(section, MakerRewardParams(), "genesis.maker_rewards")
    assert (raised.value.code, raised.value.fields["field"]) == (code, field)


def test_set_maker_reward_params_classifies_and_applies_through_change_param() -> None:
    chain = Chain()
    action = decode_action({"type": "set_maker_reward_params", "epoch_blocks": 100, "pool_share": "0.2",
                            "min_rest_blocks": 5}, 0)
    assert isinstance(action, SetMakerRewardParams)
    changes = compute_action_changes(chain.state, action)
    assert [(str(c.path), c.old, c.new, c.risk) for c in changes] == [
        ("maker_rewards.epoch_blocks", 0, 100, "risk_increasing"),
        ("maker_rewards.min_rest_blocks", 2, 5, "risk_reducing"),
        ("maker_rewards.pool_share_ppm", 0, 200_000, "risk_increasing"),
    ]
    assert ParamPath.parse("maker_rewards.pool_share_ppm") == ParamPath(ParamGroup.MAKER_REWARDS, "", "pool_share_ppm")
    events: list = []
    for change in changes:
        apply_effect(chain.state, change, ParamSource("proposal", "p", 1), events)
    state = chain.state
    assert (state.maker_reward_params.epoch_blocks, state.maker_reward_params.pool_share_ppm) == (100, 200_000)
    chain.block([])
    assert chain.state.state_hash == chain.full_hash()


# --------------------------------------------------------------------------------------- sampling and payout
def test_fee_share_fills_the_pool_and_conserves_collateral() -> None:
    chain = Chain(rewards_genesis())
    chain.block(quote(ALICE, "49900", "50100"))
    result = chain.block([(CAROL, place_order(side="buy", price="50100", size="0.1", time_in_force="ioc"))])
    fill = next(e for e in result.events if e["type"] == "fill")
    # 0.1 BTC at 50,100 (price_decimals 1): 1,000 lots x 501,000 ticks x 10 = 5,010,000,000 micro-USDC;
    # fees 0.05% + 0.01% = 2,505,000 + 501,000 = 3,006,000; insurance 10% = 300,600; pool 50% of the rest = 1,352,700
    assert fill["to_insurance"] == 300_600
    assert chain.state.maker_rewards.pool == 1_352_700
    check_invariants(chain.state)


def test_a_quote_counts_only_after_resting_the_minimum_blocks() -> None:
    chain = Chain(rewards_genesis(epoch_blocks=4, sample_interval_blocks=2, min_rest_blocks=2))
    chain.block([])                                     # h1: records the cutoff for h2: h1's time
    chain.block(quote(ALICE, "49900", "50100"))          # h2: placed at the sample height: too young
    assert chain.state.maker_rewards.scores == {} and chain.state.maker_rewards.samples[BTC] == 1
    chain.block([])                                     # h3: records the cutoff for h4: h3's time
    result = chain.block([])                            # h4: placed at h2, rested 2 blocks: counts
    # 1,000 lots x 500,000 ticks x 10 micro-USDC (price_decimals 1), weight 1 (no move), in 1 of 2 samples
    score = next(e for e in result.events if e["type"] == "maker_score")
    assert (score["owner"], score["weighted_depth"], score["two_sided_samples"], score["samples"], score["score"]) == (
        ALICE, 5_000_000_000, 1, 2, 2_500_000_000)


def test_epoch_pays_pro_rata_with_a_cap_and_rolls_the_rest_over() -> None:
    chain = Chain(rewards_genesis(max_share_per_maker="0.6"))
    chain.state.maker_rewards.pool = 0
    chain.block(quote(ALICE, "49900", "50100") + quote(BOB, "49800", "50200", size="0.3"))   # h1
    chain.block([(CAROL, place_order(side="buy", price="50100", size="0.05", time_in_force="ioc"))])  # h2 sample
    chain.block([])                                                                     # h3
    result = chain.block([])                                                            # h4 sample, close
    rewards = chain.state.maker_rewards
    pool = sum(e["amount"] for e in paid_events(result)) + rewards.pool
    paid = {(e["owner"], e["number"]): e["amount"] for e in paid_events(result)}
    epoch = next(e for e in result.events if e["type"] == "maker_reward_epoch")
    assert epoch["pool"] == pool and epoch["paid"] == sum(paid.values()) and epoch["rolled_over"] == rewards.pool
    # BOB quotes 0.3 both sides, ALICE 0.05 left on the ask after CAROL's fill: pro rata BOB would take more than
    # 60% of the pool; he gets the cap; ALICE gets her share
    cap = pool * 600_000 // PPM
    assert paid[(BOB, 0)] == cap
    bob = next(e for e in paid_events(result) if e["owner"] == BOB)
    alice = next(e for e in paid_events(result) if e["owner"] == ALICE)
    assert paid[(ALICE, 0)] == pool * alice["score"] // bob["total_score"]
    assert bob["score"] * pool // bob["total_score"] > cap
    assert rewards.epoch == 1 and rewards.scores == {} and rewards.samples == {}
    check_invariants(chain.state)


def test_snapshot_mid_epoch_keeps_scores_and_pool() -> None:
    chain = Chain(rewards_genesis(epoch_blocks=6))
    chain.block(quote(ALICE, "49900", "50100"))
    chain.block([(CAROL, place_order(side="buy", price="50100", size="0.05", time_in_force="ioc"))])
    assert chain.state.maker_rewards.scores
    document = state_to_document(chain.state)
    restored = state_from_document(document)
    assert restored.maker_rewards == chain.state.maker_rewards
    assert restored.maker_reward_params == chain.state.maker_reward_params
    assert restored.state_hash == chain.state.state_hash
    keys = {key[0] for key in leaves.iter_leaf_keys(chain.state)}
    assert {"maker_reward_params", "maker_rewards", "maker_scores"} <= keys


def test_a_node_restored_from_a_snapshot_keeps_the_same_state_hash_through_the_next_sample() -> None:
    """The per-maker totals are derived, and a restored book rebuilds them from its orders: the
    order makers appear in then follows their oldest resting order, not when the tracking book first
    saw them. The committed scores must not depend on it. Here ALICE rests a bid, BOB one at the same
    price, ALICE another, then ALICE cancels her first: a book tracked all along lists ALICE first at
    that level, the rebuilt one BOB first. Both nodes must reach the same state hash."""
    chain = Chain(rewards_genesis(epoch_blocks=8, sample_interval_blocks=2, min_rest_blocks=1))
    chain.block([])
    chain.block([])                                                 # h2: the first sample starts the tracking
    chain.block([(ALICE, place_order(side="buy", price="49900", size="0.1", client_id=1)),
                 (BOB, place_order(side="buy", price="49900", size="0.1", client_id=1)),
                 (ALICE, place_order(side="buy", price="49900", size="0.1", client_id=2)),
                 (ALICE, place_order(side="sell", price="50100", size="0.1", client_id=3)),
                 (BOB, place_order(side="sell", price="50100", size="0.1", client_id=2)),
                 (ALICE, cancel_order(client_id=1))])             # h3
    assert chain.state.markets[BTC].book._tracked and chain.state.maker_rewards.scores == {}
    restored = Chain(rewards_genesis(epoch_blocks=8, sample_interval_blocks=2, min_rest_blocks=1))
    restored.state = state_from_document(state_to_document(chain.state))
    restored.next_time_ms = chain.next_time_ms
    assert not restored.state.markets[BTC].book._tracked      # derived: rebuilt at the next sample
    for one in (chain, restored):
        one.block([])                                               # h4: the next sample scores both
    assert set(chain.state.maker_rewards.scores) == {(ALICE, 0, BTC), (BOB, 0, BTC)}
    assert restored.state.maker_rewards.scores == chain.state.maker_rewards.scores
    assert restored.state.state_hash == chain.state.state_hash
    assert compute_state_hash_full(restored.state) == restored.state.state_hash


# --------------------------------------------------------------------------------------- properties
MAKERS = (ALICE, BOB)
FLASH = CAROL     # quotes and cancels in the same block, every time: never rests
TAKER = DAVE

BLOCK = st.tuples(
    st.lists(st.tuples(st.sampled_from(MAKERS), st.integers(-3, 3), st.integers(1, 20), st.integers(1, 20)),
             max_size=3),                                   # (maker, offset from the oracle, bid, ask widths)
    st.integers(0, 3),                                      # takers' 0.01 BTC market buys and sells
    st.sampled_from([None, "49800", "50000", "50300"]),     # an oracle update
    st.booleans(),                                          # the flash maker's round trip
    st.sampled_from([None, ALICE, BOB]),                    # a maker pulls all its quotes
    st.sampled_from([None, ALICE, BOB]),                    # a maker cancels its oldest resting order
)


@settings(max_examples=12, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(BLOCK, min_size=4, max_size=12))
def test_random_trading_conserves_collateral_and_never_overpays(blocks: list) -> None:
    """Over random quoting, taking, oracle moves and pulls: collateral is conserved with the pool
    counted, the incremental hash equals the full one, each epoch pays at most its pool and keeps
    the rest, and the maker whose quotes never rest is never scored nor paid. A node restored from a
    snapshot after any block (its books rebuild their per-maker totals) takes the same blocks to the
    same state hash."""
    chain = Chain(rewards_genesis(min_rest_blocks=1))
    twins: list[Chain] = []   # one restored from a snapshot after each block so far
    cid = 100
    for quotes, takes, oracle, flash, pull, trim in blocks:
        txs: list[tuple[str, dict]] = []
        if oracle is not None:
            txs.append(("0x" + "a1".rjust(40, "0"), {"type": "oracle_update", "prices": {BTC: oracle}}))
        if pull is not None:
            txs.append((pull, cancel_all()))
        oldest = next((o for o in chain.state.markets[BTC].book.orders() if o.owner == trim), None)
        if oldest is not None:
            txs.append((oldest.owner, cancel_order(client_id=oldest.client_id)))
        mid = chain.state.markets[BTC].oracle_price // 10
        for maker, offset, bid_w, ask_w in quotes:
            cid += 2
            txs += quote(maker, str(mid + offset * 10 - bid_w * 10), str(mid + offset * 10 + ask_w * 10), cid=cid)
        if flash:
            cid += 2
            txs += quote(FLASH, str(mid - 5), str(mid + 5), cid=cid) + [(FLASH, cancel_all())]
        for i in range(takes):
            side = ("buy", "sell")[i % 2]
            txs.append((TAKER, place_order(side=side, price=str(mid * (2 if side == "buy" else 0) or 1),
                                           size="0.01", time_in_force="ioc", client_id=9_000 + i)))
        pool_before = chain.state.maker_rewards.pool
        result = chain.block(txs)
        check_invariants(chain.state)
        assert chain.state.state_hash == chain.full_hash()
        for twin in twins:
            twin.block(txs)
            assert twin.state.state_hash == chain.state.state_hash
        twin = copy.copy(chain)
        twin.state = state_from_document(state_to_document(chain.state))
        twins.append(twin)
        assert all(owner != FLASH for owner, _, _ in chain.state.maker_rewards.scores)
        for epoch in (e for e in result.events if e["type"] == "maker_reward_epoch"):
            assert 0 <= epoch["paid"] <= epoch["pool"]
            assert epoch["rolled_over"] == epoch["pool"] - epoch["paid"]
            assert sum(e["amount"] for e in paid_events(result)) == epoch["paid"]
            assert epoch["pool"] >= pool_before
            assert all(e["amount"] <= epoch["pool"] * 600_000 // PPM for e in paid_events(result))
        assert all(e["owner"] != FLASH for e in paid_events(result))
