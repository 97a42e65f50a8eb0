"""The demo's story in a real browser (issue 17): Debian's Chromium against ``bastion demo``'s server
sped up for a test (blocks every 100 ms, the bots every 200 ms, governance periods and timelocks
divided by 4: ``DemoServer(step_ms=..., pace=...)``).

Acting as dave, the page tells him when the price path liquidates his leveraged long (the toast of
``static/notify.js``); the governance page shows the demo's risk-increasing proposal go through the
vote, the queue and timelock, the council's registered stress report and two attestations that open
the gate, and its execution. The in-process checks of the same story are in ``test_demo.py``."""
from __future__ import annotations

import time

import pytest
from test_ui_browser import CHROMIUM, act_as, browser_page, screenshot, start_demo_server

from bastion.demo.bots import DEMO_PROPOSAL_TITLE

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed "
                                "(apt-get install -y chromium; .ci/run does it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    demo = start_demo_server(tmp_path_factory.mktemp("story") / "demo", block_time_ms=100, step_ms=200, pace=4)
    yield demo
    demo.close()


@pytest.fixture
def page(browser, server):
    with browser_page(browser) as opened:
        yield opened


def test_dave_is_told_when_the_price_path_liquidates_him(page, server, browser):
    other_context = browser.new_context(viewport={"width": 1400, "height": 900})
    alice = other_context.new_page()
    act_as(alice, server, "alice")        # a trader who is not liquidated is told nothing
    act_as(page, server, "dave")          # before the path's first slide (about 75 steps, 15 s here)
    page.goto(server.url + "/portfolio")
    alert = page.locator("#liquidation-alerts .liquidation-alert").first
    sync_api.expect(alert).to_contain_text("Your BTC-USD position (subaccount 0) was liquidated", timeout=90_000)
    sync_api.expect(alert).to_contain_text(" closed at ")
    assert alert.get_attribute("role") == "alert"
    page.wait_for_timeout(3_000)           # more pieces of the same liquidation add up in the same toast
    assert page.locator("#liquidation-alerts .liquidation-alert").count() == 1
    screenshot(page, "demo-liquidation-toast")
    page.locator("#liquidation-alerts button[aria-label=dismiss]").click()
    assert page.locator("#liquidation-alerts .liquidation-alert").count() == 0
    assert alice.locator(".liquidation-alert").count() == 0
    other_context.close()


def test_the_governance_page_shows_a_risk_increasing_proposal_from_vote_to_execution(page, server):
    # the bots alternate a risk-increasing proposal and its reversal: follow one from its vote
    voting = ("section.proposal:has(.risk-risk_increasing):has(.status-active), "
              "section.proposal:has(.risk-risk_increasing):has(.status-pending)")
    deadline = time.monotonic() + 90
    page.goto(server.url + "/governance")
    while not page.locator(voting).count() and time.monotonic() < deadline:
        page.wait_for_timeout(300)
        page.goto(server.url + "/governance")
    proposal_id = page.locator(voting).first.get_attribute("id")
    proposal = page.locator("#" + proposal_id)
    sync_api.expect(proposal.locator("h2")).to_contain_text(DEMO_PROPOSAL_TITLE)
    seen: list[str] = []
    gates: set[str] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:    # each reading a fresh page, as a visitor reloading it
        status = proposal.locator(".status").inner_text()
        if not seen or seen[-1] != status:
            seen.append(status)
        gate = proposal.locator(".gate")
        if gate.count():
            gates.add("open" if "gate open" in gate.inner_text() else "shut")
        if status == "executed":
            break
        page.wait_for_timeout(300)
        page.goto(server.url + "/governance")
    assert seen[-1] == "executed", seen
    assert "active" in seen and "queued" in seen and seen.index("active") < seen.index("queued"), seen
    assert "open" in gates, gates
    attestations = proposal.locator(".attestation")
    assert attestations.count() == 2                                 # council1 and council2: two of three
    sync_api.expect(attestations.first.locator(".report-figures")).to_contain_text("report verdict pass")
    sync_api.expect(proposal.locator(".tally-yes")).not_to_have_text("0")
    screenshot(page, "demo-governance-executed")
