"""Read views of the bot tools (issue 17): an owner's live TWAP orders with their progress, its
dead-man's switch and the governed limits (``bastion.api.routes.bots``), agent grants in pages
(``routes.agents``), the SDK methods for them, and order history rows naming the agent key that
placed an order for its owner (``bastion.node.indexer``, ``orders.agent``)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from builders import ALICE, BOB, BTC, GENESIS_TIME_MS, Chain, address, genesis, place_order
from eth_account import Account
from fastapi.testclient import TestClient
from test_api import ALICE as API_ALICE
from test_api import BOB as API_BOB
from test_api import api_genesis
from test_api_sdk import BRIDGE_KEY, live  # noqa: F401 - the live node fixture

from bastion.app import ApiConfig, create_app
from bastion.client import Client
from bastion.core.messages import decode_message
from bastion.core.transition import apply_block
from bastion.node.indexer import Indexer
from bastion.node.node import Node
from bastion.node.readmodels import open_read_models

AGENT = address(0xE0)
HOUR_MS = 3_600_000


def authorize(agent: str = AGENT, expires_ms: int = GENESIS_TIME_MS + HOUR_MS) -> dict:
    return {"type": "authorize_agent", "agent": agent, "subaccounts": None, "permissions": ["trade", "cancel"],
            "expires_ms": expires_ms}


def twap(duration_ms: int = 600_000, **fields) -> dict:
    return {"type": "place_twap", "subaccount": 0, "market": BTC, "side": "buy", "size": "0.01",
            "duration_ms": duration_ms, **fields}


# --------------------------------------------------------------------------------------- order history: the agent
def test_order_rows_name_the_agent_that_placed_them_and_only_those():
    chain = Chain()
    models = open_read_models("sqlite:///:memory:")
    indexer = Indexer(models, genesis())
    blocks = [chain.block([(ALICE, authorize()), (BOB, place_order(side="sell", size="0.1", price="50000",
                                                                   client_id=9))])]
    blocks.append(chain.block([
        (AGENT, place_order(owner=ALICE, price="49000", client_id=1)),                      # 2: rests (bob's ask is 1)
        (AGENT, place_order(owner=ALICE, price="40000", time_in_force="ioc", client_id=2)),  # 3: ioc remainder
        (ALICE, place_order(price="48000", client_id=3)),                                   # 4: her own
        (AGENT, place_order(owner=ALICE, size="0.05", price="50000", time_in_force="ioc", client_id=4)),  # 5: takes
        (AGENT, place_order(owner=ALICE, price="50000", time_in_force="post_only", client_id=5)),  # refused
        (ALICE, place_order(price="47000", client_id=6)),                                   # 6: her own
        (AGENT, {"type": "modify_order", "owner": ALICE, "subaccount": 0, "market": BTC, "client_id": 3,
                 "size": "0.05"}),                                                   # 4 reduced in place: hers
        (AGENT, {"type": "modify_order", "owner": ALICE, "subaccount": 0, "market": BTC, "client_id": 6,
                 "price": "47100"}),                                                 # 6 replaced by 7: the agent's
        (ALICE, place_order(price="46000", client_id=7)),                                   # 8: her own
        (AGENT, place_order(owner=ALICE, price="45000", client_id=8, order_type="stop_limit",
                            trigger_price="45500", side="sell")),                     # 9: conditional
    ]))
    for block in blocks:
        indexer.apply_block(block)

    assert [r.get("code") for r in blocks[1].results] == [None, None, None, None, "post_only_would_cross",
                                                          None, None, None, None, None]
    rows = {row["order_id"]: (row["client_id"], row["status"], row["agent"]) for row in models.orders(owner=ALICE)}
    assert rows == {2: (1, "open", AGENT), 3: (2, "cancelled", AGENT), 4: (3, "open", None),
                    5: (4, "filled", AGENT), 6: (6, "cancelled", None), 7: (6, "open", AGENT),
                    8: (7, "open", None), 9: (8, "untriggered", AGENT)}
    assert [row["agent"] for row in models.orders(owner=BOB)] == [None]


# --------------------------------------------------------------------------------------- the API, in process
@pytest.fixture
def api(tmp_path: Path):
    node = Node(tmp_path / "node", api_genesis())
    client = TestClient(create_app(node, ApiConfig()))
    yield client, node
    node.close()


def commit(node: Node, txs: list[tuple[str, dict]], advance_ms: int = 1_000) -> list[dict]:
    """Apply one block straight to the node's live state (its lock held): these views read nothing else."""
    with node.lock:
        result = apply_block(node.state, node.state.time_ms + advance_ms,
                             [(sender, decode_message(msg)) for sender, msg in txs])
    return result.results


def test_the_twap_view_shows_progress_in_pages_and_refuses_bad_cursors(api):
    client, node = api
    owner = API_ALICE
    results = commit(node, [(owner, twap(600_000)) for _ in range(3)] + [(owner, twap(120_000, subaccount=0))])
    assert all(r["ok"] for r in results), results
    ids = [r["twap_id"] for r in results]

    first = client.get(f"/v1/twaps/{owner}", params={"limit": 2}).json()
    second = client.get(f"/v1/twaps/{owner}", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [t["twap_id"] for t in first["twap_orders"]] == ids[:2] and first["next_cursor"] == str(ids[1])
    assert [t["twap_id"] for t in second["twap_orders"]] == ids[2:] and second["next_cursor"] is None
    view = first["twap_orders"][0]
    # 600 s / 30 s = 20 slices; the first ran at the end of the placing block (no seller: nothing filled)
    assert (view["slices"], view["slices_done"], view["size"], view["filled"], view["remaining"]) == \
        (20, 1, "0.01", "0", "0.01")
    assert view["next_slice_ms"] == node.state.time_ms + 30_000 and view["next_slice"].endswith("Z")
    assert client.get(f"/v1/twaps/{owner}", params={"number": 1}).json()["twap_orders"] == []
    assert client.get(f"/v1/twaps/{API_BOB}").json()["twap_orders"] == []
    for bad in ({"cursor": "x1"}, {"limit": 0}, {"number": 128}):
        answer = client.get(f"/v1/twaps/{owner}", params=bad)
        assert answer.status_code == 400, bad
    assert client.get("/v1/twaps/nope").json()["code"] == "invalid_address"


def test_the_deadman_view_shows_when_the_switch_fires_and_the_limits_view_the_governed_values(api):
    client, node = api
    owner = API_ALICE
    unarmed = client.get(f"/v1/deadman/{owner}").json()
    fire_at = node.state.time_ms + 60_000
    assert commit(node, [(owner, {"type": "schedule_cancel", "time_ms": fire_at})])[0]["ok"]
    armed = client.get(f"/v1/deadman/{owner}").json()
    limits = client.get("/v1/bot-limits").json()

    assert (unarmed["armed"], unarmed["fires_at"], unarmed["triggers_today"]) == (False, None, 0)
    assert (armed["armed"], armed["fires_at_ms"], armed["max_triggers_per_day"], armed["min_delay_ms"]) == \
        (True, fire_at, 10, 5_000)
    assert limits["limits"]["twap_interval_s"] == 30 and limits["limits"]["agent_max_per_owner"] == 8
    assert limits["height"] == node.state.height


def test_agent_grants_page_the_owners_an_agent_acts_for(api):
    client, node = api
    owners = sorted(address(0x100 + i) for i in range(3))
    commit(node, [(owner, authorize(expires_ms=node.state.time_ms + HOUR_MS)) for owner in owners])

    first = client.get(f"/v1/agents/{AGENT}", params={"limit": 2}).json()
    rest = client.get(f"/v1/agents/{AGENT}", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [g["owner"] for g in first["acting_for"]] == owners[:2] and first["next_cursor"] == owners[1]
    assert [g["owner"] for g in rest["acting_for"]] == owners[2:] and rest["next_cursor"] is None
    assert client.get(f"/v1/agents/{AGENT}", params={"cursor": "nope"}).status_code == 400


def test_the_openapi_document_describes_the_bot_views(api):
    client, _ = api
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/twaps/{owner}", "/v1/deadman/{owner}", "/v1/bot-limits", "/v1/agents/{address}"):
        get = paths[path]["get"]
        assert get["description"] and "200" in get["responses"], path
    parameters = {p["name"] for p in paths["/v1/twaps/{owner}"]["get"]["parameters"]}
    assert parameters == {"owner", "number", "limit", "cursor"}


# --------------------------------------------------------------------------------------- the SDK, live
def test_the_sdk_reads_twaps_the_switch_limits_and_the_agent_in_order_history(live):  # noqa: F811
    url, node = live
    owner_key, bot_key = "0x" + "a8" * 32, "0x" + "b8" * 32
    owner_address = Account.from_key(owner_key).address.lower()
    bot_address = Account.from_key(bot_key).address.lower()
    now = time.time_ns() // 1_000_000
    with Client(url, BRIDGE_KEY) as bridge, Client(url, owner_key) as owner, \
            Client(url, bot_key, acting_for=owner_address) as bot:
        assert bridge.deposit(owner=owner_address, amount="10000", wait_ms=5_000)["result"]["ok"]
        owner.authorize_agent(agent=bot_address, expires_ms=now + HOUR_MS, wait_ms=5_000)
        placed = bot.place_twap(market=BTC, side="buy", size="0.02", duration_ms=3_600_000, wait_ms=5_000)
        rested = bot.place_order(market=BTC, side="buy", size="0.01", price="30000", client_id=5, wait_ms=5_000)
        own = owner.place_order(market=BTC, side="buy", size="0.01", price="30001", client_id=6, wait_ms=5_000)
        owner.schedule_cancel(time_ms=now + 600_000, wait_ms=5_000)
        twaps, switch, limits = bot.twap_orders(), owner.deadman(), owner.bot_limits()
        grants = bot.agents(bot_address, limit=1)
        assert node.indexer is not None and node.indexer.wait_idle()
        history = {row["client_id"]: row["agent"] for row in owner.orders(owner=owner_address)["rows"]}
        owner.cancel_twap(twap_id=placed["result"]["twap_id"], wait_ms=5_000)
        owner.schedule_cancel(time_ms=None, wait_ms=5_000)

    assert rested["result"]["ok"] and own["result"]["ok"]
    assert [(t["twap_id"], t["owner"], t["slices"]) for t in twaps["twap_orders"]] == [
        (placed["result"]["twap_id"], owner_address, 120)]
    assert switch["armed"] is True and switch["fires_at_ms"] == now + 600_000
    assert limits["limits"]["twap_max_per_subaccount"] == 5
    assert [g["owner"] for g in grants["acting_for"]] == [owner_address]
    assert history[5] == bot_address and history[6] is None
