"""The liquidations, governance, risk, trade and portfolio pages in a real browser (issue 17's last gaps):
numbers and moments for people, the depth chart, the portfolio's history tabs and agent keys.

Debian's Chromium (Playwright) against ``bastion demo``'s server sped up as in ``test_demo_browser``
(blocks every 100 ms, the bots every 200 ms, governance periods divided by 4), so that dave's first
liquidation and a proposal in flight come within seconds. Block heights must not be what a page shows
for a moment: they stay in the tooltip (``title``) of a ``<time>``. The tests that wait for the bots'
story (a liquidation, two pages of bob's fills) come last, while the chain has been running meanwhile.
"""
from __future__ import annotations

import re
import time
from decimal import Decimal

import pytest
from eth_account import Account
from test_ui_browser import CHROMIUM, act_as, browser_page, screenshot, start_demo_server

from bastion.core.timefmt import parse_iso_ms
from bastion.demo.keys import get_demo_keys
from bastion.signing import sign_envelope
from bastion.web.formatting import usd

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed "
                                "(apt-get install -y chromium; .ci/run does it)")
sync_api.expect.set_options(timeout=15_000)

ALICE = get_demo_keys()["alice"].address
BOB = get_demo_keys()["bob"].address
AGO = re.compile(r"^(just now|\d+ (s|min|h|d) ago)$")           # a past moment, relative to the head's block time
TOOLTIP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC · block \d+$")
DOLLARS = re.compile(r"^-?\$\d{1,3}(,\d{3})*\.\d\d$")
COUNTDOWN = re.compile(r"^((\d+h )?\d+m )?\d+s$")
PAGES = ("/liquidations", "/governance", "/risk", "/trade/BTC-USD", "/portfolio")  # every table whole, 1440 and 390 px


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    demo = start_demo_server(tmp_path_factory.mktemp("pages") / "demo", block_time_ms=100, step_ms=200, pace=4)
    yield demo
    demo.close()


@pytest.fixture
def page(browser, server):
    with browser_page(browser, width=1440) as opened:
        yield opened


def wait_for_rows(server, path: str, params: dict, count: int, timeout_s: float = 90) -> list[dict]:
    """The API's rows once there are at least ``count`` (the bots' story takes some seconds)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        rows = httpx.get(server.url + path, params=params, timeout=10).json()["rows"]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def cells(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(selector, "rows => rows.map(r => Array.from(r.cells, c => c.textContent.trim()))")


def test_the_governance_page_shows_the_phase_as_a_countdown_and_the_timeline_in_utc(page, server):
    voting = "section.proposal:has(.status-active), section.proposal:has(.status-pending)"
    page.goto(server.url + "/governance")
    deadline = time.monotonic() + 60
    while not page.locator(voting).count() and time.monotonic() < deadline:
        page.wait_for_timeout(300)
        page.goto(server.url + "/governance")
    proposal = page.locator(voting).first
    phase = proposal.locator(".phase")
    sync_api.expect(phase).to_contain_text(re.compile(r"(voting opens|ends) in"))
    countdown = phase.locator(".countdown")
    assert COUNTDOWN.match(countdown.inner_text()), countdown.inner_text()
    seconds = int(countdown.get_attribute("data-seconds"))
    assert 0 <= seconds < 600
    timeline = proposal.locator("ul.timeline")
    sync_api.expect(timeline).to_contain_text(re.compile(r"submitted \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"))
    assert re.search(r"block \d+", timeline.locator("time").first.get_attribute("title") or "")
    rules = proposal.locator(".rules")
    sync_api.expect(rules).to_contain_text(re.compile(r"quorum [\d.]+% of supply \([\d,.]+ BGOV\) · approval above "
                                                      r"[\d.]+% · voting (\d+m )?\d+s · timelock (\d+m )?\d+s"))
    assert re.search(r"\d+ blocks", rules.locator("span[title]").first.get_attribute("title"))
    sync_api.expect(proposal.locator(".diff")).to_contain_text(re.compile(r"\d\.\d+%"))  # the fee as a percentage
    sync_api.expect(proposal).to_contain_text(re.compile(r"deposit [\d,]+ BGOV"))
    screenshot(page, "governance-formatted")


def test_the_risk_page_shows_percentages_dollars_and_durations(page, server):
    page.goto(server.url + "/risk")
    tiers = cells(page, "table.tiers tr:has(td)")
    assert tiers and all(row[2].endswith("%") and row[4].endswith("%") for row in tiers), tiers
    for pool, balance, staked, target, gap, bad_debt, _ in cells(page, "table.funds tr:has(td)"):
        assert all(DOLLARS.match(v) for v in (balance, staked, target, bad_debt)), (pool, balance, staked, bad_debt)
        assert DOLLARS.match(gap.split(" (")[0]), gap
    for row in cells(page, "table.risk-markets tr:has(td)"):
        assert re.fullmatch(r"-?[\d.]+% / -?[\d.]+%", row[4]) and COUNTDOWN.match(row[6]), row  # fees, staleness
    for row in cells(page, "table.rules tr:has(td)"):
        assert row[1].endswith("%") and COUNTDOWN.match(row[3]) and COUNTDOWN.match(row[4]), row
    assert re.fullmatch(r"\d+ blocks", page.locator("table.rules td[title]").first.get_attribute("title"))
    sync_api.expect(page.locator("#chart-funds-title")).to_have_text("Insurance funds: balance per pool (USD)")
    screenshot(page, "risk-formatted")


def test_the_depth_chart_draws_the_books_cumulative_sizes_and_follows_the_book_websocket(page, server):
    page.goto(server.url + "/trade/BTC-USD")
    page.wait_for_function("() => document.querySelector('#chart-depth .main-svg') !== null")
    chart = page.locator("#chart-depth")
    first = chart.get_attribute("data-height")
    # pushed by the book channel: the chart is redrawn at later heights without a page load
    page.wait_for_function(f"() => document.getElementById('chart-depth').dataset.height !== '{first}'")
    drawn = page.evaluate("""() => { const c = document.getElementById('chart-depth');
        return {traces: c.data.map(t => ({name: t.name, x: Array.from(t.x), y: Array.from(t.y)})),
                book: {bids: lastDepth.bids, asks: lastDepth.asks}, bidTotal: c.dataset.bidTotal}; }""")
    bids, asks = drawn["traces"]
    assert (bids["name"], asks["name"]) == ("bids", "asks")
    assert bids["x"] == sorted(bids["x"], reverse=True) and asks["x"] == sorted(asks["x"])  # out from the spread
    assert len(bids["x"]) == len(drawn["book"]["bids"]) >= 8  # the maker's whole ladder (8 levels a side)
    running = Decimal(0)
    for (price, size), x, y in zip(drawn["book"]["bids"], bids["x"], bids["y"]):
        running += Decimal(size)
        assert Decimal(str(x)) == Decimal(price) and abs(Decimal(str(y)) - running) < Decimal("1e-9"), (price, y)
    assert bids["x"][0] < asks["x"][0]  # the best bid below the best ask
    screenshot(page, "trade-depth-chart")


def test_an_owner_authorises_an_agent_from_the_portfolio_its_orders_say_so_and_it_is_revoked(page, server):
    import httpx

    key = Account.create()
    agent = key.address.lower()
    act_as(page, server, "alice")
    page.goto(server.url + "/portfolio")
    page.fill("#agent-address", agent)
    page.fill("#agent-label", "browser bot")
    page.select_option("#agent-subaccount", "0")
    page.uncheck("#agent-cancel")
    page.fill("#agent-expires", "2")
    page.select_option("#agent-expires-unit", "3600000")  # hours
    before_ms = httpx.get(server.url + "/v1/status").json()["time"]

    page.click("#authorize-agent")

    sync_api.expect(page.locator("#tx-status")).to_contain_text("Agent authorised")
    row = page.locator(f"#agent-grants tr[data-agent='{agent}']")
    sync_api.expect(row).to_contain_text("browser bot")
    sync_api.expect(row).to_contain_text("in force")
    grants = httpx.get(f"{server.url}/v1/agents/{ALICE}").json()["agents"]
    grant = next(g for g in grants if g["agent"] == agent)
    assert grant["subaccounts"] == [0] and grant["permissions"] == ["trade"] and grant["label"] == "browser bot"
    lead = grant["expires_ms"] - parse_iso_ms(before_ms, field="time")
    assert 2 * 3_600_000 - 60_000 <= lead <= 2 * 3_600_000 + 60_000, lead  # two hours of block time from now

    # the agent places an order for alice: her order history says which key placed it
    chain_id = httpx.get(server.url + "/v1/status").json()["chain_id"]
    order = {"type": "place_order", "owner": ALICE, "subaccount": 0, "market": "BTC-USD", "side": "buy",
             "size": "0.001", "price": "1000", "client_id": 777_001, "time_in_force": "gtc"}
    answer = httpx.post(server.url + "/v1/tx", params={"wait_ms": 5000},
                        json=sign_envelope(key.key, chain_id, order, time.time_ns() // 1_000)).json()
    assert answer["status"] == "committed" and answer["result"]["ok"], answer
    page.goto(server.url + "/portfolio")
    placed = page.locator(f"table.history-orders tr[data-order-id='{answer['result']['order_id']}'] .placed-by")
    sync_api.expect(placed).to_have_text(f"agent {agent[:10]}…")
    assert placed.locator(".addr").get_attribute("title") == agent
    row = page.locator(f"#agent-grants tr[data-agent='{agent}']")

    row.locator("button.revoke-agent").click()

    sync_api.expect(page.locator("#tx-status")).to_contain_text("Agent revoked")
    sync_api.expect(row).to_have_count(0)
    assert all(g["agent"] != agent for g in httpx.get(f"{server.url}/v1/agents/{ALICE}").json()["agents"])


def test_every_table_of_these_pages_fits_its_box_and_no_page_scrolls_sideways(page, server):
    act_as(page, server, "bob")
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        for path in PAGES:
            page.goto(server.url + path)
            page.wait_for_selector("main")
            overflow = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert overflow[0] <= overflow[1], (width, path, overflow)
            # every visible table's box ends inside the window, and the tables of the pages made for people
            # here are whole: at 1440 px as tables, at 390 px as cards (on the trade page, each account tab's)
            tabs = page.locator("button.account-tab")
            for tab in range(max(tabs.count(), 1)):
                if tabs.count():
                    tabs.nth(tab).click()
                boxes = page.evaluate("""() => Array.from(document.querySelectorAll('main table'))
                    .filter(t => t.getClientRects().length)
                    .map(t => { const box = t.closest('.table-box') || t.parentElement;
                                return {cls: t.className, right: t.getBoundingClientRect().right,
                                        box: box.getBoundingClientRect().right, scroll: t.scrollWidth,
                                        client: (t.closest('.table-box') || t).clientWidth}; })""")
                for table in boxes:
                    assert table["box"] <= width + 0.5, (width, path, table)
                    if "rollout-steps" not in table["cls"]:  # a rollout's steps: a matrix
                        assert table["scroll"] <= table["client"] + 1, (width, path, tab, table)
            screenshot(page, f"pages-{path.strip('/').replace('/', '-') or 'markets'}-{width}")


def test_the_liquidations_page_shows_moments_dollars_and_words_with_the_block_in_the_tooltip(page, server):
    assert wait_for_rows(server, "/v1/liquidations", {}, 1), "dave's first liquidation never came"
    page.goto(server.url + "/liquidations")
    rows = page.locator("table.liquidations tbody tr, table.liquidations tr:has(td)")
    sync_api.expect(rows.first.locator("time")).to_have_text(AGO)
    first = rows.first.locator("time")
    assert TOOLTIP.match(first.get_attribute("title") or ""), first.get_attribute("title")
    for when, what, _, _, size, _, notional, amount, reason in cells(page, "table.liquidations tr:has(td)"):
        assert AGO.match(when) and "_" not in what and "_" not in reason, (when, what, reason)
        assert not notional or DOLLARS.match(notional), notional
        assert not amount or DOLLARS.match(amount), amount
        assert not size or re.fullmatch(r"[\d,]+(\.\d+)?", size), size
    screenshot(page, "liquidations-formatted")


def test_the_portfolio_has_fills_and_funding_tabs_and_older_pages(page, server):
    fills = wait_for_rows(server, "/v1/fills", {"owner": BOB, "limit": 500}, 26)
    assert len(fills) >= 26, "bob has not traded enough for two pages"
    act_as(page, server, "bob")
    page.goto(server.url + "/portfolio")
    page.click("#tab-fills")
    panel = page.locator("#panel-fills")
    sync_api.expect(panel).to_be_visible()
    rows = cells(page, "table.history-fills tr:has(td)")
    assert len(rows) == 25
    for when, _, side, _, price, fee, role, _ in rows:
        assert AGO.match(when) and side in ("buy", "sell") and role.startswith(("taker", "maker")), rows
        assert re.fullmatch(r"-?\$[\d,]+\.\d{4}", fee) and re.fullmatch(r"[\d,]+(\.\d+)?", price), (fee, price)
    newest = panel.locator("time").first.get_attribute("title")
    panel.locator("a.older").click()
    page.wait_for_load_state("load")
    sync_api.expect(page.locator("#panel-fills")).to_be_visible()  # the tab stays open on the older page
    assert page.locator("#panel-fills time").first.get_attribute("title") != newest
    older = [int(re.search(r"block (\d+)", t).group(1)) for t in page.eval_on_selector_all(
        "#panel-fills time", "ts => ts.map(t => t.title)")]
    assert older == sorted(older, reverse=True) and older[0] <= int(re.search(r"block (\d+)", newest).group(1))
    sync_api.expect(page.locator("#panel-fills .pager a", has_text="newest")).to_be_visible()

    payments = wait_for_rows(server, "/v1/funding-payments", {"owner": BOB}, 1)
    assert payments, "bob was never paid or charged funding"
    page.goto(server.url + "/portfolio?tab=funding")
    sync_api.expect(page.locator("#panel-funding")).to_be_visible()
    when, _, rates, amount = cells(page, "table.history-funding tr:has(td)")[0]
    assert AGO.match(when) and re.search(r"[A-Z]+-USD: [+-]?[\d.]+%", rates), (when, rates)
    newest_paid = wait_for_rows(server, "/v1/funding-payments", {"owner": BOB}, 1)
    assert amount in {usd(p["amount"], 4) for p in newest_paid[-5:]}, amount
    screenshot(page, "portfolio-funding")
