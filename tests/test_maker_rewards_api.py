"""Maker rewards through the adapters: ``GET /v1/rewards`` (and per address), the SDK method, the web
leaderboard page, and the demo's makers scoring and being paid."""
from __future__ import annotations

from pathlib import Path

import pytest
from builders import place_order
from fastapi.testclient import TestClient
from test_api import ALICE, BOB, Clock, Signer, ALICE_KEY, BOB_KEY, api_genesis
from test_ui import open_demo, run_blocks

from bastion.app import ApiConfig, create_app
from bastion.client import Client
from bastion.node.node import Node

REWARDS = {"epoch_blocks": 6, "sample_interval_blocks": 2, "band": "0.01", "min_rest_blocks": 1,
           "pool_share": "1", "max_share_per_maker": "1", "volatility_slope": "100", "max_volatility_weight": "5"}


@pytest.fixture
def api(tmp_path: Path):
    clock = Clock()
    node = Node(tmp_path / "n", api_genesis(maker_rewards=REWARDS, fees={"insurance_share": "0"}), clock_ms=clock)
    client = TestClient(create_app(node, ApiConfig(clock_ms=clock, rate_per_s=50, burst=50)))
    client.node, client.clock = node, clock
    client.alice, client.bob = Signer(ALICE_KEY, clock), Signer(BOB_KEY, clock)
    yield client
    node.close()


def block(api, *envelopes: dict) -> None:
    for envelope in envelopes:
        assert api.post("/v1/tx", json=envelope).status_code == 202
    api.clock.now_ms += 1_000
    api.node.produce_block()


def test_the_leaderboard_shows_each_score_and_its_parts(api) -> None:
    # h1: alice quotes 0.1 a side and bob 0.2 a side, 0.2% around the oracle (50,000: BTC has price_decimals 1)
    block(api, api.alice(place_order(side="buy", price="49900", size="0.1", client_id=1)),
          api.alice(place_order(side="sell", price="50100", size="0.1", client_id=2)),
          api.bob(place_order(side="buy", price="49900", size="0.2", client_id=1)),
          api.bob(place_order(side="sell", price="50100", size="0.2", client_id=2)))
    block(api)  # h2: the sample counts both (placed at h1, before h2's time)
    board = api.get("/v1/rewards").json()
    assert board["enabled"] is True and board["epoch"] == 0 and board["epoch_end_height"] == 6
    assert board["next_sample_height"] == 4 and board["last_prices"] == {"BTC-USD": "50000", "ETH-USD": "3000",
                                                                        "PEPE-USD": "0.00001"}
    # bob: 2,000 lots x 500,000 ticks x 10 = 10,000 USDC of two-sided depth, weight 1, 1 of 1 samples
    assert [(r["rank"], r["owner"], r["score"], r["share_of_score"]) for r in board["leaderboard"]] == [
        (1, BOB, "10000", "0.666666"), (2, ALICE, "5000", "0.333333")]
    assert board["leaderboard"][0]["markets"] == [{"market": "BTC-USD", "weighted_depth": "10000",
                                                   "two_sided_samples": 1, "samples": 1, "time_in_market": "1",
                                                   "score": "10000"}]
    assert board["pool"] == "0" and board["leaderboard"][0]["estimated_reward"] == "0"
    mine = api.get(f"/v1/rewards/{ALICE}").json()
    assert [(r["rank"], r["owner"]) for r in mine["leaderboard"]] == [(2, ALICE)]
    assert api.get("/v1/rewards/nonsense").status_code == 400
    page = api.get("/rewards")
    assert page.status_code == 200 and "Maker rewards leaderboard" in page.text and BOB[:10] in page.text


def test_the_sdk_reads_the_rewards(api) -> None:
    client = Client("http://testserver", ALICE_KEY)
    client._http = api  # the SDK's transport: the in-process app
    assert client.rewards()["enabled"] is True
    assert client.rewards(ALICE)["leaderboard"] == []


def test_the_demo_makers_score_and_are_paid(tmp_path: Path) -> None:
    node, client, driver = open_demo(tmp_path / "demo")
    try:
        run_blocks(node, driver, 9)     # samples at heights 4 and 8 (20-block epochs, a sample every 4)
        board = client.get("/v1/rewards").json()
        assert board["enabled"] and board["leaderboard"], board
        assert float(board["leaderboard"][0]["score"]) > 0
        run_blocks(node, driver, 12)    # past height 20: the first epoch closed
        paid = client.get("/v1/rewards").json()
        assert paid["epoch"] == 1 and float(paid["paid_total"]) > 0
        assert "Maker rewards leaderboard" in client.get("/rewards").text
    finally:
        node.close()
