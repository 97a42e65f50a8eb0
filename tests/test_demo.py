"""The demo's story in-process (issue 17): a node on the demo genesis whose bots are stepped by hand,
one block per step, on a node clock that advances the demo's block time (250 ms) per block.

The maker's ladder straddles the oracle every block; funding moves within the first blocks; dave's
first leveraged long is liquidated by the price path within the first minute of demo time; a
risk-increasing proposal goes through vote, queue, the council's stress report and attestations,
the timelock and execution; the next proposal restores the fee. The browser side is in
``test_demo_browser.py``."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bastion.app import ApiConfig, create_app
from bastion.core.book import BUY, SELL
from bastion.core.genesis import build_state
from bastion.core.snapshot import canonical_bytes, state_from_document, state_to_document
from bastion.demo.bots import DEMO_PROPOSAL_TITLE, LADDER, RESTORE_PROPOSAL_TITLE, DemoDriver
from bastion.demo.features import demo_features
from bastion.demo.genesis import FUNDING_TICK_S, MARKETS, build_demo_genesis
from bastion.demo.keys import get_demo_keys
from bastion.node.node import Node
from bastion.node.replay import replay_range

KEYS = get_demo_keys()
BLOCK_MS = 250


class Demo:
    """A demo node, its API (for the report store and the history) and its bots, one block per step."""

    def __init__(self, data_dir: Path, *, pace: int = 1, stress: dict[str, str] | None = None) -> None:
        """``stress``: governed stress thresholds to override in the demo genesis."""
        self.now_ms = time.time_ns() // 1_000_000
        genesis = build_demo_genesis(self.now_ms, pace=pace)
        genesis["governance"]["stress"].update(stress or {})
        self.node = Node(data_dir, genesis, read_models="default", clock_ms=lambda: self.now_ms)
        # the node clock runs faster than the wall clock here: lift the per-sender rate limit
        app = create_app(self.node, ApiConfig(rate_per_s=1_000_000, burst=1_000_000), demo=demo_features())
        self.client = TestClient(app)
        self.driver = DemoDriver(self.node, app.state.accept, report_store=app.state.reports)
        self.reports = app.state.reports

    def step(self) -> None:
        self.driver.step()
        self.now_ms += BLOCK_MS
        self.node.produce_block()

    def close(self) -> None:
        self.node.close()


@pytest.fixture
def demo(tmp_path):
    opened = Demo(tmp_path / "demo")
    yield opened
    opened.close()


def test_the_maker_ladder_straddles_the_oracle_every_block(demo):
    full = 0
    for _ in range(120):  # a minute of demo time, over the path's first slide
        demo.step()
        for spec in MARKETS:
            market = demo.node.state.markets[spec.ticker]
            bids = [price for price, _ in market.book.iter_levels(BUY)]
            asks = [price for price, _ in market.book.iter_levels(SELL)]
            assert bids[0] < market.oracle_price < asks[0], (spec.ticker, bids[:2], market.oracle_price, asks[:2])
            # takers (dave's 20x long above all) eat levels now and then; the rest stays on both sides
            assert len(bids) >= 2 and len(asks) >= 2, (spec.ticker, len(bids), len(asks))
            if not spec.isolated_only:  # PEPE's tick (0.1 %) merges the ladder's inner levels
                full += len(bids) == len(asks) == len(LADDER)
    assert full >= 0.9 * 120 * (len(MARKETS) - 1)


def test_funding_moves_every_market_within_the_first_ticks(demo):
    blocks_per_tick = FUNDING_TICK_S * 1000 // BLOCK_MS
    for _ in range(2 * blocks_per_tick):
        demo.step()
    state = demo.node.state
    assert state.funding.tick_ms == FUNDING_TICK_S * 1000
    assert all(market.funding_index != 0 for market in state.markets.values())
    demo.node.indexer.wait_idle()
    ticks = demo.client.get("/v1/markets/BTC-USD/funding").json()["rows"]
    assert len(ticks) >= 1 and any(row["index_delta"] != 0 for row in ticks)


def test_daves_first_long_is_liquidated_within_the_first_minute(demo):
    dave = KEYS["dave"].address
    demo.step()
    opened = demo.node.state.subaccounts[(dave, 0)].positions["BTC-USD"].size
    assert opened > 0  # his first step: a 20x long
    for _ in range(100):  # 50 s of demo time at the bots' 500 ms step
        demo.step()
    demo.node.indexer.wait_idle()
    rows = demo.client.get("/v1/liquidations", params={"owner": dave}).json()["rows"]
    liquidations = [row for row in rows if row["type"] == "liquidation"]
    assert liquidations and {row["market"] for row in liquidations} == {"BTC-USD"}


def test_a_risk_increasing_proposal_goes_through_vote_council_timelock_and_execution(tmp_path):
    demo = Demo(tmp_path / "demo", pace=2)
    try:
        demo.driver.ensure_proposal()
        demo.now_ms += BLOCK_MS
        demo.node.produce_block()
        seen: list[str] = []
        proposal = next(iter(demo.node.state.proposals.values()))
        for _ in range(400):
            demo.step()
            if not seen or seen[-1] != proposal.status:
                seen.append(proposal.status)
            if proposal.status == "executed":
                break
        state = demo.node.state
        assert (proposal.title, proposal.risk_class) == (DEMO_PROPOSAL_TITLE, "risk_increasing")
        assert seen == ["active", "succeeded", "queued", "executed"]
        assert {KEYS["bob"].address, KEYS["carol"].address} <= set(proposal.ballots)
        attested = state.attestations[proposal.proposal_id]
        assert set(attested) == {KEYS["council1"].address, KEYS["council2"].address}
        report_hash = next(iter(attested.values())).report_hash
        assert state.stress_reports[report_hash].verdict == "pass"
        assert demo.reports.read_bytes(report_hash) is not None        # the governance page can show it
        assert state.markets["ETH-USD"].taker_fee_ppm == 400
        assert proposal.closed_height is not None
        assert state.time_ms >= proposal.queued_ms + proposal.rules.timelock_ms
        for _ in range(4):
            demo.step()
        assert [p.title for p in state.proposals.values()] == [DEMO_PROPOSAL_TITLE, RESTORE_PROPOSAL_TITLE]
        assert list(state.proposals.values())[1].risk_class == "risk_reducing"
    finally:
        demo.close()


def test_a_proposal_whose_stress_report_fails_is_attested_fail_and_withdrawn(tmp_path):
    demo = Demo(tmp_path / "demo", pace=2, stress={"max_var99_loss_of_fund": "0.0001"})  # no demo book passes
    try:
        demo.driver.ensure_proposal()
        for _ in range(300):
            demo.step()
            proposal = next(iter(demo.node.state.proposals.values()))
            if proposal.status == "canceled":
                break
        state = demo.node.state
        assert proposal.status == "canceled"
        attested = state.attestations[proposal.proposal_id]
        assert {a.verdict for a in attested.values()} == {"fail"} and len(attested) == 2
        assert state.stress_reports[next(iter(attested.values())).report_hash].verdict == "fail"
        assert state.markets["ETH-USD"].taker_fee_ppm == 500                   # nothing changed
    finally:
        demo.close()


def test_a_state_restored_from_a_snapshot_anywhere_in_the_demo_commits_the_same_blocks(demo):
    """A restart must not fork: whatever a restored state rebuilds instead of reading from the
    snapshot (the books' per-maker totals for the maker rewards, the liquidation indexes, the order
    indexes) must not change what a block commits. The demo's first 300 blocks (the maker ladder
    earning rewards, dave's liquidation and dispute, carol's stake, the proposal) are replayed from
    genesis through the log, the state passed through a snapshot every 7 blocks: every block must
    reach the state hash the node logged (``ReplayDivergence`` otherwise)."""
    for _ in range(300):
        demo.step()
    log, head = demo.node.log, demo.node.state.height
    state = build_state(demo.node.genesis)
    restarts = 0
    while state.height < head:
        replay_range(log, state, min(state.height + 7, head))
        state = state_from_document(json.loads(canonical_bytes(state_to_document(state))))
        restarts += 1
    assert state.state_hash == demo.node.state.state_hash and restarts == -(-head // 7)
    rewards = demo.node.state.maker_rewards
    assert rewards.scores or rewards.paid_total > 0       # the maker ladder was scored
    assert demo.node.state.stake_pools and demo.node.state.disputes
