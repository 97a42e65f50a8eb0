"""What the pages of issue 17's last gaps stand on, without a browser: moments and amounts for people
(``bastion.web.formatting``), block heights as block times (``bastion.web.timeline``), governed values
in their units (``bastion.web.reads.format_param_value``), history read newest first a page at a time
(``ReadModels.fills``/``funding_payments`` with ``before``) and the read models' retention of orders
that never traded (``bastion.node.retention``)."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from builders import ALICE, BOB, ORACLE, Chain, genesis, oracle_update, place_order

from bastion.core.genesis import build_state
from bastion.node.indexer import Indexer
from bastion.node.readmodels import open_read_models
from bastion.node.retention import ReadModelRetention, idle_orders_cutoff
from bastion.web.formatting import ago, bgov, fixed, words
from bastion.web.reads import format_param_value
from bastion.web.timeline import Timeline


# ------------------------------------------------------------------------------------ formatting
@pytest.mark.parametrize(("ms", "now_ms", "shown"), [
    (10_000, 10_400, "just now"), (10_000, 55_000, "45 s ago"), (0, 200_000, "3 min ago"),
    (0, 7_300_000, "2 h ago"), (0, 4 * 86_400_000 + 5, "4 d ago"), (190_000, 10_000, "in 3 min"),
    (None, 10_000, "—"), (True, 10_000, "—"),
])
def test_a_block_time_is_told_against_the_heads_block_time(ms, now_ms, shown):
    assert ago(ms, now_ms) == shown


def test_amounts_ratios_and_names_for_people():
    assert bgov("12500.5") == "12,500.5 BGOV" and bgov(None) == "—"
    assert fixed("2.388429", 1) == "2.4" and fixed("1234.5", 0) == "1,234" and fixed("x") == "—"
    assert words("liquidation_incomplete") == "liquidation incomplete" and words("") == "—"


def test_a_governed_value_is_shown_in_the_unit_its_name_carries():
    state = build_state(genesis())
    assert format_param_value(state, "markets.BTC-USD.taker_fee_ppm", 500) == "0.05%"
    assert format_param_value(state, "liquidation.max_liquidation_fee_ppm", 20_000) == "2%"
    assert format_param_value(state, "liquidity_tiers.1.impact_notional_usdc", 5_000_000_000) == "$5,000.00"
    assert format_param_value(state, "markets.BTC-USD.max_open_interest_lots", 5_000_000) == "500"
    assert format_param_value(state, "governance.execution_window_ms", 3_725_000) == "1h 02m 05s"
    assert format_param_value(state, "governance.max_live_proposals", 1234) == "1,234"
    assert format_param_value(state, "x.y", None) == "—"


# ------------------------------------------------------------------------------------ timeline
def fake_node(times: dict[int, int], genesis_ms: int = 0) -> SimpleNamespace:
    """A node whose log holds blocks at ``times`` (height -> block time) and whose head is the last."""
    head = max(times)
    log = SimpleNamespace(block=lambda h: SimpleNamespace(time_ms=times[h]) if h in times else None)
    state = SimpleNamespace(height=head, time_ms=times[head], genesis_time_ms=genesis_ms)
    return SimpleNamespace(state=state, log=log, lock=threading.Lock())


def test_committed_heights_have_their_block_time_and_later_ones_the_recent_pace():
    # blocks 1..300, 250 ms apart but for a 60 s pause after block 10 (before the pace window)
    times = {h: 1_000_000 + h * 250 + (60_000 if h > 10 else 0) for h in range(1, 301)}
    timeline = Timeline.of(fake_node(times))
    assert timeline.ms_per_block == 250  # over the last 240 blocks, the pause left out
    assert timeline.ms(10) == times[10] and timeline.ms(300) == times[300]
    assert timeline.ms(340) == times[300] + 40 * 250  # to come: at the recent pace
    assert timeline.seconds_until(340) == 10 and timeline.seconds_until(260) == -10
    assert timeline.blocks_as_seconds(240) == 60 and timeline.blocks_as_seconds(None) is None
    assert timeline.ms(None) is None and timeline.ms(0) == times[300] - 300 * 250  # genesis: estimated


def test_a_young_chain_takes_its_pace_from_genesis():
    timeline = Timeline.of(fake_node({1: 5_000}, genesis_ms=4_000))
    assert timeline.ms_per_block == 1_000 and timeline.ms(3) == 7_000


# ------------------------------------------------------------------------------------ history pages
def trading_blocks(rounds: int) -> tuple[Chain, list]:
    """BOB buys from ALICE's ask each block (a fill each), ``rounds`` blocks an hour apart (funding each)."""
    chain = Chain()
    blocks = []
    for i in range(rounds):
        blocks.append(chain.block([(ORACLE, oracle_update()),
                                   (ALICE, place_order(side="sell", size="0.01", price="50000", client_id=i + 1)),
                                   (BOB, place_order(side="buy", size="0.01", price="50000", time_in_force="ioc"))],
                                  advance_s=3_600))
    return chain, blocks


def test_history_reads_newest_first_a_page_at_a_time_before_a_cursor():
    models = open_read_models("sqlite:///:memory:")
    indexer = Indexer(models, genesis())
    for block in trading_blocks(7)[1]:
        indexer.apply_block(block)
    for read in (lambda **kw: models.fills(owner=BOB, **kw), lambda **kw: models.funding_payments(owner=BOB, **kw)):
        oldest_first = read(limit=1_000)
        assert len(oldest_first) >= 5
        pages, cursor = [], (2**62, 0)
        while True:
            page = read(limit=2, before=cursor)
            if not page:
                break
            pages.append(page)
            cursor = (page[-1]["height"], page[-1]["seq"])
        assert [row for page in pages for row in page] == list(reversed(oldest_first))
        assert all(len(page) == 2 for page in pages[:-1])
    ticks = models.funding_ticks(market="BTC-USD", before=(4, 0), limit=10)
    assert [t["height"] for t in ticks] == sorted((t["height"] for t in ticks), reverse=True)
    assert ticks and all(t["height"] < 4 for t in ticks)


# ------------------------------------------------------------------------------------ retention
def test_pruning_is_due_every_so_many_blocks_once_the_chain_is_older_than_the_window():
    retention = ReadModelRetention(keep_blocks=100, every_blocks=10)
    assert idle_orders_cutoff(None, 5_000, 0) is None
    assert idle_orders_cutoff(retention, 90, 0) is None      # younger than the window
    assert idle_orders_cutoff(retention, 150, 0) == 50
    assert idle_orders_cutoff(retention, 155, 150) is None   # pruned 5 blocks ago
    assert idle_orders_cutoff(retention, 160, 150) == 60
    with pytest.raises(ValueError):
        ReadModelRetention(keep_blocks=0)


def test_only_orders_that_ended_without_a_fill_leave_the_read_models():
    # Arrange: alice quotes and cancels untouched (blocks 1, 2), an order of hers fills (3), one rests (4)
    chain = Chain()
    models = open_read_models("sqlite:///:memory:")
    indexer = Indexer(models, genesis())
    blocks = [chain.block([(ALICE, place_order(side="sell", size="0.01", price="60000", client_id=1))]),
              chain.block([(ALICE, {"type": "cancel_order", "subaccount": 0, "client_id": 1})]),
              chain.block([(ALICE, place_order(side="sell", size="0.01", price="50000", client_id=2)),
                           (BOB, place_order(side="buy", size="0.01", price="50000", time_in_force="ioc"))]),
              chain.block([(ALICE, place_order(side="sell", size="0.01", price="61000", client_id=3))])]
    for block in blocks:
        indexer.apply_block(block)
    before = {(o["owner"], o["client_id"]): o["status"] for o in models.orders(limit=100)}
    assert before[(ALICE, 1)] == "cancelled" and before[(ALICE, 2)] == "filled" and before[(ALICE, 3)] == "open"

    # Act: prune below height 3 (the cancel was at height 2), then below 10
    first = models.prune_idle_orders(3)
    again = models.prune_idle_orders(10)

    # Assert: the untouched quote is gone; the filled taker and maker and the resting order stay
    after = {(o["owner"], o["client_id"]): o["status"] for o in models.orders(limit=100)}
    assert (first, again) == (1, 0)
    assert after == {key: status for key, status in before.items() if key != (ALICE, 1)}
    assert len(models.fills(owner=ALICE)) == 1
