"""The web UI in-process (FastAPI's TestClient) over a demo node whose bots are stepped by hand:
every page renders from this node alone (no external URL), plotly.js comes from the plotly package,
the live preview suggests isolation, the demo keys sign through the API's own intake, and a second
start resumes without a second proposal. The browser itself is in ``test_ui_browser.py``."""
from __future__ import annotations

import html
import json
import re
import threading
import time
from pathlib import Path

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from bastion.app import ApiConfig, create_app
from bastion.demo.bots import DEMO_PROPOSAL_TITLE, DemoDriver
from bastion.demo.features import demo_features
from bastion.demo.genesis import build_demo_genesis
from bastion.demo.keys import DEMO_KEY_LABEL, get_demo_keys
from bastion.node.node import Node
from bastion.web.pages import PAGES, plotly_path
from bastion.web.formatting import usd

KEYS = get_demo_keys()
ALICE = KEYS["alice"].address
EXTERNAL_URL = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", re.IGNORECASE)
PAGE_PATHS = [path for path, _ in PAGES] + ["/trade/PEPE-USD"]


def open_demo(data_dir: Path, *, demo: bool = True) -> tuple[Node, TestClient, DemoDriver]:
    genesis = None if (data_dir / "blocks.db").exists() else build_demo_genesis(time.time_ns() // 1_000_000)
    node = Node(data_dir, genesis, read_models="default")
    app = create_app(node, ApiConfig(), demo=demo_features() if demo else None)
    return node, TestClient(app), DemoDriver(node, app.state.accept)


def run_blocks(node: Node, driver: DemoDriver, steps: int) -> None:
    for _ in range(steps):
        driver.step()
        node.produce_block()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    node, client, driver = open_demo(tmp_path_factory.mktemp("ui") / "demo")
    driver.ensure_proposal()
    node.produce_block()
    run_blocks(node, driver, 12)
    node.indexer.wait_idle()
    stop = threading.Event()  # blocks every 50 ms from here: the demo endpoints wait for the commit
    producer = threading.Thread(target=node.run, args=(stop, 50), daemon=True)
    producer.start()
    yield client, node, driver
    stop.set()
    producer.join(10)
    node.close()


def as_alice(client: TestClient) -> None:
    client.cookies.set("bastion_signer", "demo:alice")
    client.cookies.set("bastion_owner", ALICE)


# ------------------------------------------------------------------------------------ pages
@pytest.mark.parametrize("path", PAGE_PATHS)
def test_every_page_renders_from_this_node_alone(demo, path):
    client, _, _ = demo

    response = client.get(path)

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert EXTERNAL_URL.findall(response.text) == []
    assert "Bastion" in response.text and DEMO_KEY_LABEL in response.text


def test_static_assets_reference_no_external_url(demo):
    client, _, _ = demo

    for path in ("/static/app.js", "/static/style.css"):
        text = client.get(path).text
        assert re.findall(r"https?://|//cdn", text) == [], path


def test_plotly_is_served_from_the_installed_package(demo):
    client, _, _ = demo

    response = client.get("/vendor/plotly.min.js")

    assert response.status_code == 200 and response.content == plotly_path().read_bytes()
    assert b"plotly.js" in response.content[:2000]


def test_pages_are_not_in_the_api_schema(demo):
    client, _, _ = demo

    paths = client.get("/openapi.json").json()["paths"]

    assert not [p for p in paths if not p.startswith("/v1/")]


def test_the_api_docs_are_a_page_of_this_node_listing_every_operation(demo):
    client, _, _ = demo
    schema = client.get("/openapi.json").json()

    response = client.get("/docs")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert EXTERNAL_URL.findall(response.text) == [] and "<script" not in response.text
    for path, operations in schema["paths"].items():
        for method in operations:
            heading = f'<span class="method {method}">{method.upper()}</span> <code>{html.escape(path)}</code>'
            assert heading in response.text, (method, path)
    assert client.get("/redoc").status_code == 404


def test_the_trader_cookie_is_read_url_decoded_as_the_page_writes_it(demo):
    client, _, _ = demo
    bob = KEYS["bob"].address
    client.cookies.set("bastion_signer", "demo%3Abob")  # document.cookie = "bastion_signer=" + encodeURIComponent(...)
    try:
        text = client.get("/portfolio").text
    finally:
        client.cookies.clear()

    assert 'value="demo:bob" selected' in text and f'<span class="owner" id="owner">{bob}</span>' in text


def test_the_bots_keep_every_book_alive_and_a_proposal_in_flight(demo):
    client, _, _ = demo

    markets = client.get("/v1/markets").json()["markets"]
    proposals = client.get("/v1/governance/proposals").json()["proposals"]

    assert {m["ticker"] for m in markets} == {"BTC-USD", "ETH-USD", "SOL-USD", "PEPE-USD"}
    assert all(m["best_bid"] and m["best_ask"] for m in markets)
    assert [p["title"] for p in proposals] == [DEMO_PROPOSAL_TITLE]
    assert proposals[0]["status"] == "active" and proposals[0]["risk_class"] == "risk_increasing"


def test_the_governance_page_shows_the_action_diff_and_the_rules(demo):
    client, _, _ = demo

    text = client.get("/governance").text

    assert "markets.ETH-USD.taker_fee_ppm" in text
    # the fee as a percentage (0.0005 = 0.05%), the timelock as a duration
    assert re.search(r"taker_fee_ppm</code></td><td class=\"num\">0\.05%</td><td class=\"num\">0\.04%</td>", text)
    assert "timelock 45s" in text and "vote yes" in text
    assert "Needs 2 council pass attestation(s)" in text  # the demo's 2-of-3 council


# ------------------------------------------------------------------------------------ preview and demo signing
def test_the_preview_suggests_isolation_for_a_volatile_tier(demo):
    client, _, _ = demo

    fragment = client.post("/ui/preview", json={"owner": ALICE, "subaccount": 0, "market": "SOL-USD", "side": "buy",
                                                "size": "500", "price": "50"}).text

    assert "Isolation suggested" in fragment and "volatile_tier" in fragment
    assert "isolated with" in fragment


def test_the_suggestion_offers_the_isolated_trade_with_the_previews_target_and_steps(demo):
    client, _, _ = demo
    body = {"owner": ALICE, "subaccount": 0, "market": "SOL-USD", "side": "buy", "size": "500", "price": "50"}

    fragment = client.post("/ui/preview", json=body).text
    isolation = client.post("/v1/preview/order", json=body).json()["isolation"]

    button = re.search(r'<button type="button" id="trade-isolated"[^>]*>([^<]*)</button>', fragment)
    assert button is not None and button.group(1) == f"Trade isolated with {usd(isolation['proposed_amount'])}"
    assert f'data-target="{isolation["target_subaccount"]}"' in button.group(0)
    assert 'data-source="0"' in button.group(0) and 'data-size="500"' in button.group(0)
    setup = json.loads(html.unescape(re.search(r"data-setup='([^']*)'", button.group(0)).group(1)))
    assert setup == isolation["setup"] and [m["type"] for m in setup] == ["transfer", "set_margin_mode"]
    assert f"place the order from subaccount {isolation['target_subaccount']}" in fragment


def test_the_preview_of_a_large_cap_order_suggests_nothing(demo):
    client, _, _ = demo

    fragment = client.post("/ui/preview", json={"owner": ALICE, "subaccount": 0, "market": "BTC-USD", "side": "buy",
                                                "size": "0.01", "price": "40000"}).text

    assert "No isolation suggested" in fragment


def test_a_demo_trader_order_is_signed_committed_and_shown(demo):
    client, node, _ = demo
    as_alice(client)
    msg = {"type": "place_order", "subaccount": 0, "market": "BTC-USD", "side": "buy", "size": "0.0123",
           "price": "30000", "client_id": 424242, "time_in_force": "gtc"}

    answer = client.post("/ui/demo/submit", json={"trader": "alice", "msg": msg}).json()

    assert answer["status"] == "committed" and answer["result"]["ok"] is True
    committed = node.log.block(answer["height"]).txs
    assert any(tx.sender == ALICE and tx.msg == msg for tx in committed)  # through the signed intake
    assert "0.0123" in client.get("/portfolio").text
    assert ["30000", "0.0123"] in client.get("/v1/markets/BTC-USD/book?depth=50").json()["bids"]


def test_an_unknown_demo_trader_is_refused(demo):
    client, _, _ = demo

    response = client.post("/ui/demo/submit", json={"trader": "mallory", "msg": {"type": "withdraw"}})

    assert response.status_code == 400 and response.json()["code"] == "invalid_request"


def test_the_faucet_credits_a_wallet(demo):
    client, node, _ = demo
    wallet = Account.create().address.lower()

    answer = client.post("/ui/demo/faucet", json={"address": wallet}).json()

    assert answer["status"] == "committed" and answer["result"]["ok"] is True
    assert client.get(f"/v1/subaccounts/{wallet}/0").json()["balance"] == "10000"


def test_without_demo_mode_there_are_no_demo_keys(tmp_path):
    node, client, _ = open_demo(tmp_path / "plain", demo=False)
    try:
        assert client.post("/ui/demo/submit", json={"trader": "alice", "msg": {}}).status_code == 404
        page = client.get("/portfolio").text
        assert DEMO_KEY_LABEL not in page and "demo:alice" not in page
    finally:
        node.close()


# ------------------------------------------------------------------------------------ restart
def test_a_second_start_resumes_without_a_second_proposal(tmp_path):
    node, _, driver = open_demo(tmp_path / "demo")
    driver.ensure_proposal()
    run_blocks(node, driver, 3)
    height, state_hash = node.state.height, node.state.state_hash
    node.close()

    node, _, driver = open_demo(tmp_path / "demo")
    try:
        assert (node.state.height, node.state.state_hash) == (height, state_hash)
        driver.ensure_proposal()
        node.produce_block()
        assert len(node.state.proposals) == 1
    finally:
        node.close()
