"""Issue 20 in a real browser (Playwright driving Debian's Chromium, as ``test_ui_browser.py``): the
trade page obeys the market's governed UI requirements (banner, leverage selector, a confirmation
dialog above the confirmation leverage, no order sent over the maximum), and the governance page
shows a proposal's voter exposure and the telemetry snapshot it cites (submitted from the page's
own form with the hash in its evidence field).

The server is the demo's (``DemoServer``, bots off) over a demo genesis with BTC-USD's UI
requirements set and alice holding a BTC long that bob is short of, so that a BTC margin cut
exposes her directly."""
from __future__ import annotations

import json
import math
import time
import urllib.request
from decimal import Decimal

import pytest
from test_ui_browser import CHROMIUM, act_as, browser_page, start_demo_server

from bastion.demo.genesis import build_demo_genesis
from bastion.demo.keys import get_demo_keys
from bastion.node.node import Node

ALICE = get_demo_keys()["alice"].address
BOB = get_demo_keys()["bob"].address
BANNER = "Governed: at most 5x on BTC here"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed "
                                "(apt-get install -y chromium; .ci/run does it)")
sync_api.expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("informed") / "demo"
    genesis = build_demo_genesis(time.time_ns() // 1_000_000, pace=1)
    genesis["ui_requirements"] = {"BTC-USD": {"risk_banner": BANNER, "max_leverage": "5", "default_leverage": "3",
                                              "confirm_above_leverage": "2"}}
    for entry in genesis["accounts"]:
        if entry["address"] in (ALICE, BOB):
            entry["subaccounts"][0]["positions"] = [{"market": "BTC-USD", "size": "0.5" if entry["address"] == ALICE
                                                     else "-0.5"}]
    Node(data_dir, genesis).close()     # the demo server resumes this chain
    demo = start_demo_server(data_dir, block_time_ms=100, bots=False)
    yield demo
    demo.close()


@pytest.fixture
def page(browser, server):
    with browser_page(browser) as opened:
        act_as(opened, server, "alice")
        yield opened


def read(server, path: str) -> dict:
    with urllib.request.urlopen(server.url + path, timeout=10) as answer:
        return json.loads(answer.read())


def size_for(server, leverage: int) -> str:
    """The BTC size that takes alice's account to about ``leverage``x (its equity, positions and the
    oracle price read from the API; the fee is left out, it only raises the leverage a little)."""
    account = read(server, f"/v1/subaccounts/{ALICE}/0")
    price = Decimal(read(server, "/v1/markets/BTC-USD")["oracle"]["price"])
    held = sum(abs(Decimal(p["notional"])) for p in account["positions"])
    lots = (leverage * Decimal(account["equity"]) - held) / price
    return str(math.ceil(lots * 100) / Decimal(100))


def test_the_trade_page_obeys_the_ui_requirements(page, server):
    page.goto(server.url + "/trade/BTC-USD")
    sync_api.expect(page.locator("#risk-banner")).to_contain_text(BANNER)
    assert page.get_attribute("#leverage", "max") == "5" and page.input_value("#leverage") == "3"

    # about 3x: over the 2x confirmation; the dialog declined, nothing is sent
    page.fill("#order-size", size_for(server, 3))
    sync_api.expect(page.locator("#preview-confirm")).to_be_visible()
    messages: list[str] = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.dismiss()))
    page.click("#place-order")
    sync_api.expect(page.locator("#order-blocked")).to_contain_text("confirmation was declined")
    assert "2x" in messages[0]
    # accepted, it is sent and committed
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#place-order")
    sync_api.expect(page.locator("#tx-status")).to_contain_text("(block")

    # about 7x: over the 5x maximum, the preview refuses it and the form does not send it
    page.fill("#order-size", size_for(server, 7))
    sync_api.expect(page.locator("#preview-over-max")).to_be_visible()
    page.click("#place-order")
    sync_api.expect(page.locator("#order-blocked")).to_contain_text("ui_max_leverage")


def test_the_governance_page_shows_the_exposure_and_the_cited_telemetry(page, server):
    digest = read(server, "/v1/telemetry")["snapshot_hash"]
    margin = Decimal(read(server, "/v1/markets/BTC-USD")["tier"]["initial_margin"])
    tier = read(server, "/v1/markets/BTC-USD")["tier"]["id"]
    page.goto(server.url + "/governance")
    page.fill("#proposal-form input[name=title]", "Cut BTC margin (with telemetry)")
    page.fill("#proposal-form textarea[name=actions]", json.dumps(
        [{"type": "set_liquidity_tier", "tier": tier, "initial_margin": str(margin / 2)}]))
    page.fill("#proposal-evidence", digest)
    page.click("#proposal-form button[type=submit]")
    sync_api.expect(page.locator("#tx-status")).to_contain_text("(block")
    page.reload()

    proposal = page.locator("section.proposal", has_text="Cut BTC margin (with telemetry)")
    exposed = proposal.locator(f"tr.exposed-delegate[data-delegate='{ALICE.lower()}']")
    sync_api.expect(exposed).to_contain_text("gains")
    sync_api.expect(exposed).to_contain_text("directly exposed")
    cited = proposal.locator(f".cited-telemetry[data-hash='{digest}']")
    sync_api.expect(cited.locator("table.telemetry-markets tr[data-market='BTC-USD']")).to_be_visible()
