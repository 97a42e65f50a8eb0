"""Insurance staking over the API and the SDK's message shapes (``bastion.api.routes.staking``).

The builders' genesis (``tests/test_api.py``'s ``api`` fixture): cross fund 100,000, insurance share
0.1 of net trading fees, the default staker fee share 0.5; Alice and Bob hold 10,000 USDC.
"""
from __future__ import annotations

from decimal import Decimal

from pathlib import Path

from builders import place_order
from fastapi.testclient import TestClient
from test_api import ALICE, ALICE_KEY, BOB_KEY, Clock, Signer, api, api_genesis  # noqa: F401 - the fixture

from bastion.api.routes.staking import HISTORY_FILE, fee_apr
from bastion.app import ApiConfig, create_app
from bastion.node.node import Node

DAY_MS = 86_400_000


def test_stake_earn_and_request_through_the_api(api):  # noqa: F811 - the fixture
    stake = {"type": "stake_insurance", "fund": "cross", "amount": "1000", "subaccount": 0}
    assert api.post("/v1/tx", json=api.alice(stake)).status_code == 202
    api.node.produce_block()
    api.clock.now_ms += DAY_MS     # a day later: Bob sells 1 BTC at 50,000 to Alice
    assert api.post("/v1/tx", json=api.bob(place_order(side="sell", size="1", price="50000"))).status_code == 202
    assert api.post("/v1/tx", json=api.alice(place_order(size="1", time_in_force="ioc"))).status_code == 202
    api.node.produce_block()
    api.node.produce_block()       # delivers the trade block to the history listener
    # net fee 25 + 5 = 30; the fund's 10% = 3; the stakers' half = 1.5: staked 1,001.5 for 1,000 shares
    cross = api.get("/v1/staking").json()["pools"]["cross"]
    assert cross["staked"] == "1001.5" and cross["shares"] == "1000" and cross["share_price"] == "1.0015"
    assert cross["fund"] == "101003" and cross["protocol_owned"] == "100001.5" and cross["fees_earned"] == "1.5"
    # APR: 1.5 over a day on 1,000 staked: 1.5 x 365 / 1,000 = 0.5475
    assert cross["fee_apr"] == "0.5475"
    history = api.get("/v1/staking/cross/history").json()["samples"]
    assert [s["share_price"] for s in history] == ["1", "1.0015"]
    unknown = api.get("/v1/staking/XYZ/history")
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_pool"
    request = {"type": "request_unstake", "fund": "cross", "shares": "400", "subaccount": 0}
    assert api.post("/v1/tx", json=api.alice(request)).status_code == 202
    api.node.produce_block()
    mine = api.get(f"/v1/staking/stakers/{ALICE}").json()
    assert mine["stakes"] == [{"pool": "cross", "owner": ALICE, "shares": "600", "value": "600.9"}]
    assert [(r["request_id"], r["shares"], r["value"]) for r in mine["unstake_requests"]] == [(1, "400", "400.6")]


def open_api(data: Path, clock: Clock, warnings: list[str] | None = None) -> TestClient:
    """A node over ``data`` (a new chain on the API genesis, or the one there) and its API."""
    node = Node(data, None if (data / "blocks.db").exists() else api_genesis(), clock_ms=clock,
                on_warning=None if warnings is None else warnings.append)
    client = TestClient(create_app(node, ApiConfig(clock_ms=clock, rate_per_s=1_000, burst=1_000)))
    client.node = node
    return client


def stake_and_trade(client: TestClient, clock: Clock, alice: Signer, bob: Signer) -> None:
    """Alice stakes 1,000 USDC in the cross fund; a day later Bob sells her 1 BTC at 50,000."""
    stake = {"type": "stake_insurance", "fund": "cross", "amount": "1000", "subaccount": 0}
    assert client.post("/v1/tx", json=alice(stake)).status_code == 202
    client.node.produce_block()
    trade(client, clock, bob, alice)


def trade(client: TestClient, clock: Clock, seller: Signer, buyer: Signer) -> None:
    """A day later, ``seller`` rests a sell of 1 BTC at 50,000 and ``buyer`` takes it (net fee 30 USDC)."""
    clock.now_ms += DAY_MS
    assert client.post("/v1/tx", json=seller(place_order(side="sell", size="1", price="50000"))).status_code == 202
    assert client.post("/v1/tx", json=buyer(place_order(size="1", time_in_force="ioc"))).status_code == 202
    client.node.produce_block()
    client.node.produce_block()       # delivers the trade block to the history listener


def test_the_share_price_history_survives_a_restart_and_skips_a_torn_line(tmp_path):
    clock = Clock()
    alice, bob = Signer(ALICE_KEY, clock), Signer(BOB_KEY, clock)
    data = tmp_path / "n"
    client = open_api(data, clock)
    stake_and_trade(client, clock, alice, bob)
    before = client.get("/v1/staking/cross/history").json()["samples"]
    assert [s["share_price"] for s in before] == ["1", "1.0015"]
    client.node.close()
    with (data / HISTORY_FILE).open("a", encoding="utf-8") as file:
        file.write('["cross",99,')             # a line torn by a crash mid-write
    client = open_api(data, clock)
    assert client.get("/v1/staking/cross/history").json()["samples"] == before
    trade(client, clock, alice, bob)           # both close: another 1.5 USDC for the stakers, 1,003 for 1,000 shares
    after = client.get("/v1/staking/cross/history").json()["samples"]
    assert [s["share_price"] for s in after] == ["1", "1.0015", "1.003"] and after[:2] == before
    assert client.get("/v1/staking").json()["pools"]["cross"]["fee_apr"] is not None
    client.node.close()


def test_a_history_file_that_cannot_be_written_is_a_warning_and_blocks_go_on(tmp_path):
    clock = Clock()
    alice, bob = Signer(ALICE_KEY, clock), Signer(BOB_KEY, clock)
    data = tmp_path / "n"
    (data / HISTORY_FILE).mkdir(parents=True)  # a directory where the file should be
    warnings: list[str] = []
    client = open_api(data, clock, warnings)
    stake_and_trade(client, clock, alice, bob)
    assert client.node.state.height == 3 and len(warnings) == 1 and "kept in memory only" in warnings[0]
    history = client.get("/v1/staking/cross/history").json()["samples"]
    assert [s["share_price"] for s in history] == ["1", "1.0015"]
    client.node.close()


def test_the_history_file_stays_within_twice_the_samples_kept(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import bastion.api.routes.staking as staking_routes
    monkeypatch.setattr(staking_routes, "MAX_SAMPLES", 3)
    path = tmp_path / HISTORY_FILE
    history = staking_routes.StakingHistory(path, height=0)
    for height in range(1, 11):
        pool = SimpleNamespace(staked=1_000 + height, shares=1_000, fees_earned=height, losses_borne=0)
        history.record(SimpleNamespace(height=height, time_ms=height * 1_000, stake_pools={"cross": pool}))
        assert len(path.read_text().splitlines()) <= 6
    assert [row[0] for row in history.of("cross")] == [8, 9, 10]
    again = staking_routes.StakingHistory(path, height=9)    # a file ahead of the chain: the rest is dropped
    assert [row[0] for row in again.of("cross")] == [7, 8, 9]


def test_fee_apr_measures_from_the_state_at_the_window_start():
    usdc = 1_000_000
    # (height, time, staked, shares, fees, losses): 100 staked from t=0, fees 1 at day 1 and 3 at day 3
    samples = [(1, 0, 100 * usdc, 100 * usdc, 0, 0), (2, DAY_MS, 101 * usdc, 100 * usdc, usdc, 0),
               (3, 3 * DAY_MS, 103 * usdc, 100 * usdc, 3 * usdc, 0)]
    # a 2-day window ending at day 4: from day 2 (the state then: the day-1 sample, 101 staked, fees 1)
    # fees 3 - 1 = 2 on 101 over 2 days: 2 x 182.5 / 101 = 3.613861... -> 3.613861 (rounded down)
    assert fee_apr(samples, 4 * DAY_MS, 2 * DAY_MS) == "3.613861"
    assert fee_apr([], DAY_MS, DAY_MS) is None


def test_the_staking_page_and_the_risk_page_show_parts_targets_and_the_cooldown(api):  # noqa: F811
    stake = {"type": "stake_insurance", "fund": "cross", "amount": "250", "subaccount": 0}
    assert api.post("/v1/tx", json=api.alice(stake)).status_code == 202
    api.node.produce_block()
    request = {"type": "request_unstake", "fund": "cross", "shares": "50", "subaccount": 0}
    assert api.post("/v1/tx", json=api.alice(request)).status_code == 202
    api.node.produce_block()
    api.cookies.set("bastion_signer", "wallet")
    api.cookies.set("bastion_owner", ALICE)
    page = api.get("/staking")
    assert page.status_code == 200
    text = page.text
    # the cross fund: 100,000 protocol-owned + 250 staked; Alice keeps 200 free shares, 50 cooling down
    assert "100250" in text and ">250<" in text and ">200<" in text and ">50<" in text
    assert "cooldown ends" in text and "(ready)" not in text
    risk = api.get("/risk").text
    assert 'href="/staking">$250.00<' in risk  # in dollars (bastion.web.formatting)


def test_a_demo_account_stakes_into_the_cross_fund(tmp_path):
    from test_demo import KEYS, Demo

    from bastion.demo.bots import STAKE_USDC

    demo = Demo(tmp_path / "demo")
    try:
        demo.step()      # the first step: carol stakes (the first stake of the pool mints 1:1)
        carol = KEYS["carol"].address
        assert demo.node.state.stakes[("cross", carol)] == int(STAKE_USDC) * 1_000_000
        assert demo.node.state.insurance_staking.cooldown_ms == 120_000
        for _ in range(4):
            demo.step()
        cross = demo.client.get("/v1/staking").json()["pools"]["cross"]
        # fees of the bots' trades flow in: the staked part only grows (no loss in the first steps)
        assert cross["shares"] == STAKE_USDC and Decimal(cross["staked"]) >= Decimal(STAKE_USDC)
    finally:
        demo.close()
