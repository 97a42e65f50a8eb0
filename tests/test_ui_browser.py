"""The web UI in a real browser: Playwright (Python) driving Debian's Chromium (``/usr/bin/chromium``,
installed by ``.ci/run``; Playwright never downloads a browser here) against ``bastion demo``'s
server (``DemoServer``: node, API, UI, bots) on a free loopback port.

The demo loads; an order placed from the trade page appears in the book and the portfolio; the
preview suggests isolation for a risky order, and its button trades it from a new isolated subaccount; a vote from the
governance page is counted; and a wallet simulated by an injected EIP-1193 provider, whose ``eth_signTypedData_v4``
calls back into this test (``page.expose_function``, signing with eth-account), trades. Every request the pages make
must stay on the node's origin. Screenshots of each page: ``build/screenshots/``."""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from builders import free_port
from eth_account import Account

from bastion.signing import compute_chain_number
from bastion.demo import DemoServer
from bastion.demo.keys import get_demo_keys

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
ALICE = get_demo_keys()["alice"].address
BOB = get_demo_keys()["bob"].address
COMMITTED = re.compile(r"\(block \d+\)")  # the status line's words end with the block that holds the transaction

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed "
                                "(apt-get install -y chromium; .ci/run does it)")
# Assertions wait for commits of a live chain: give them the page's 15 s rather than Playwright's 5 s,
# so that a loaded 2-core CI machine does not fail a correct page.
sync_api.expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    demo = DemoServer(tmp_path_factory.mktemp("browser") / "demo", port=free_port(), block_time_ms=100)
    demo.start()
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server):
    """A page whose every request must stay on the demo's origin (others are aborted and fail the test)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    foreign: list[str] = []
    origin = urlparse(server.url).netloc

    def guard(route):
        if urlparse(route.request.url).netloc != origin and not route.request.url.startswith("data:"):
            foreign.append(route.request.url)
            return route.abort()
        return route.continue_()

    context.route("**/*", guard)
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()
    assert foreign == []


def act_as(page, server, name: str) -> None:
    """Choose a demo trader: the page stores the choice and reloads, and the reload must be over
    before the test navigates elsewhere (else one navigation aborts the other)."""
    page.goto(server.url + "/")
    with page.expect_navigation():
        page.select_option("#signer", f"demo:{name}")
    page.wait_for_load_state("load")


def place_from_the_form(page, *, size: str, price: str, time_in_force: str = "gtc") -> None:
    """Fill the trade page's order form, place the order and wait until the page reports the commit."""
    page.evaluate("document.getElementById('tx-status').textContent = ''")
    page.fill("#order-size", size)
    page.fill("#order-price", price)
    page.select_option("select[name=time_in_force]", time_in_force)
    page.click("#place-order")
    sync_api.expect(page.locator("#tx-status")).to_contain_text(COMMITTED)


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_every_page_of_the_demo_loads(page, server):
    for path, name in (("/", "markets"), ("/trade/BTC-USD", "trade"), ("/portfolio", "portfolio"),
                       ("/governance", "governance"), ("/risk", "risk"), ("/liquidations", "liquidations")):
        response = page.goto(server.url + path)
        assert response is not None and response.ok, path
        page.wait_for_selector("main")
        if path in ("/trade/BTC-USD", "/risk"):
            page.wait_for_function("() => !!window.Plotly")  # served by the node, not a CDN
        screenshot(page, name)
    sync_api.expect(page.locator("header")).to_contain_text("height")


def test_the_pages_run_under_their_content_security_policy(page, server):
    """CSP (``bastion.api.security``): every page says frame-ancestors 'none', and nothing it needs
    is blocked: plotly draws its charts, the live WebSocket moves the height, no violation is reported."""
    reported: list[str] = []
    page.on("console", lambda message: reported.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.add_init_script("document.addEventListener('securitypolicyviolation', event => "
                         "(window.__violations = window.__violations || []).push(event.violatedDirective + ' ' + "
                         "event.blockedURI))")
    for path in ("/", "/trade/BTC-USD", "/portfolio", "/governance", "/risk", "/liquidations"):
        response = page.goto(server.url + path)
        assert response is not None and response.ok, path
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        if path in ("/trade/BTC-USD", "/risk"):
            sync_api.expect(page.locator(".chart .main-svg").first).to_be_visible()   # plotly drew
        if path == "/":  # the live height moves (the WebSocket is allowed by connect-src)
            page.wait_for_function("() => Number(document.getElementById('height').textContent) > 0")
            start = int(page.locator("#height").inner_text())
            page.wait_for_function(f"() => Number(document.getElementById('height').textContent) > {start}")
        assert page.evaluate("window.__violations || []") == [], path
    assert reported == []


def test_an_order_from_the_trade_page_is_in_the_book_and_the_portfolio(page, server):
    act_as(page, server, "alice")
    page.goto(server.url + "/trade/BTC-USD")

    place_from_the_form(page, size="0.0321", price="20000")

    sync_api.expect(page.locator("#book")).to_contain_text("0.0321")
    place_from_the_form(page, size="0.05", price="100000", time_in_force="ioc")  # a position for the exposure table
    screenshot(page, "trade-after-order")
    page.goto(server.url + "/portfolio")
    sync_api.expect(page.locator("#portfolio")).to_contain_text("0.0321")
    sync_api.expect(page.locator("#portfolio .exposure")).to_contain_text("BTC-USD")
    screenshot(page, "portfolio-after-order")


def test_the_preview_suggests_isolation_for_a_risky_order(page, server):
    act_as(page, server, "alice")
    page.goto(server.url + "/trade/SOL-USD")
    page.fill("#order-size", "800")

    sync_api.expect(page.locator("#preview")).to_contain_text("buy 800 SOL-USD")
    suggestion = page.locator("#isolation-suggestion")
    sync_api.expect(suggestion).to_contain_text("Isolation suggested")
    sync_api.expect(suggestion).to_contain_text("volatile_tier")
    screenshot(page, "trade-isolation-suggestion")


def test_trade_isolated_funds_an_isolated_subaccount_and_the_portfolio_shows_it(page, server):
    act_as(page, server, "alice")  # alice holds subaccount 0 only: 1 is the lowest free number
    page.goto(server.url + "/trade/SOL-USD")
    page.fill("#order-size", "800")
    page.fill("#order-price", "1")  # far below the book: the order rests, and the test does not race the bots
    sync_api.expect(page.locator("#preview")).to_contain_text("buy 800 SOL-USD at 1")
    button = page.locator("#trade-isolated")
    sync_api.expect(button).to_contain_text("Trade isolated with")
    amount = button.get_attribute("data-amount")
    assert button.get_attribute("data-target") == "1"

    button.click()

    outcome = page.locator("#isolation-outcome")
    sync_api.expect(outcome).to_contain_text("Placed isolated: the order is in subaccount 1 (isolated SOL-USD)")
    sync_api.expect(page.locator("#tx-status")).to_contain_text(
        "From subaccount 1 (isolated SOL-USD): Order placed, resting in the book: buy 800 SOL-USD at 1")
    screenshot(page, "trade-isolated")
    page.goto(server.url + "/portfolio")
    card = page.locator("#subaccount-1")
    sync_api.expect(card).to_contain_text("Subaccount 1 · isolated (SOL-USD)")
    sync_api.expect(card.locator(".stats")).to_contain_text(amount)
    sync_api.expect(card).to_contain_text("800")  # the open order
    screenshot(page, "portfolio-isolated")


def test_a_vote_from_the_governance_page_is_counted(page, server):
    act_as(page, server, "alice")
    page.goto(server.url + "/governance")
    # the demo's bots keep one proposal in flight (each lasts a minute or two): vote on the one open now
    open_vote = page.locator("section.proposal:has(button.vote[data-option=yes])").first
    for _ in range(240):  # a vote opens one block after each proposal (up to 60 s on a loaded machine)
        if open_vote.count():
            break
        page.wait_for_timeout(250)
        page.reload()
    section = "#" + open_vote.get_attribute("id")
    vote = page.locator(f"{section} button.vote[data-option=yes]")
    sync_api.expect(vote).to_have_count(1)
    page.fill(f"{section} .vote-reason", "from the browser test")
    vote.click()

    sync_api.expect(page.locator("#tx-status")).to_contain_text("Vote recorded: yes")
    ballots = page.locator(f"{section} .ballots")
    sync_api.expect(ballots).to_contain_text(ALICE)
    sync_api.expect(ballots).to_contain_text("from the browser test")
    assert float(page.locator(f"{section} .tally-yes").inner_text()) >= 2000
    # one vote per address: once it is recorded the buttons go, and the page says how alice voted
    sync_api.expect(page.locator(f"{section} button.vote")).to_have_count(0)
    sync_api.expect(page.locator(f"{section} .voted")).to_contain_text("You voted yes")
    page.reload()
    sync_api.expect(page.locator(f"{section} .voted")).to_contain_text("You voted yes")
    assert page.locator(f"{section} button.vote").count() == 0
    screenshot(page, "governance-after-vote")


def test_an_injected_wallet_signs_an_order_that_reaches_the_book(page, server):
    wallet = Account.create()
    signed: list[dict] = []

    def sign_typed_data(address: str, typed: str) -> str:
        document = json.loads(typed)
        assert address.lower() == wallet.address.lower()
        signed.append(document)
        return "0x" + bytes(Account.sign_typed_data(wallet.key, full_message=document).signature).hex()

    page.expose_function("bastionTestSign", sign_typed_data)
    page.add_init_script("""window.ethereum = {request: async ({method, params}) => {
        if (method === "eth_requestAccounts" || method === "eth_accounts") return [%s];
        if (method === "eth_signTypedData_v4") return await window.bastionTestSign(params[0], params[1]);
        if (method === "eth_chainId") return "0x1";
        if (method === "wallet_switchEthereumChain") return null;
        throw {code: 4200, message: "unsupported " + method};
    }};""" % json.dumps(wallet.address))  # noqa: UP031 - %s, as the script is full of braces
    page.goto(server.url + "/")
    page.select_option("#signer", "wallet")
    page.wait_for_selector("#faucet")
    page.click("#faucet")
    sync_api.expect(page.locator("#tx-status")).to_contain_text("Deposit credited")

    page.goto(server.url + "/trade/ETH-USD")

    place_from_the_form(page, size="0.777", price="1000")

    sync_api.expect(page.locator("#book")).to_contain_text("0.777")
    assert [d["message"]["msgType"] for d in signed] == ["place_order"]
    assert signed[0]["domain"]["chainId"] == compute_chain_number(server.node.state.chain_id)
    screenshot(page, "trade-wallet-order")


def test_a_stored_stress_report_page_draws_its_plots_under_its_content_security_policy(page, server):
    """The node's report page (``GET /v1/stress/reports/{hash}/html``) runs its inline plotly under
    the policy it is served with (no network access): every figure is drawn, and nothing is blocked."""
    from bastion.api.models import REPORT_EXAMPLE, STRESS_REPORT_EXAMPLE

    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)
    stored = page.request.post(server.url + "/v1/stress/reports", data=json.dumps(STRESS_REPORT_EXAMPLE),
                               headers={"content-type": "application/json"})
    assert stored.ok and stored.json()["report_hash"] == REPORT_EXAMPLE

    page.goto(server.url + stored.json()["html_url"])

    sync_api.expect(page.locator(".figure .main-svg").first).to_be_visible()
    # liquidated notional per scenario, bad debt, losses to traders, backstop inventory peak
    assert page.locator(".figure").count() == 4
    assert page.locator(".figure:has(.main-svg)").count() == 4
    sync_api.expect(page.locator("h1")).to_have_text("Bastion stress report")
    screenshot(page, "stress-report")
    assert blocked == []


# ------------------------------------------------------------------ issue 17: defects of the pages
def open_orders(page, server, owner: str, number: int = 0) -> list[dict]:
    answer = page.request.get(f"{server.url}/v1/subaccounts/{owner}/{number}/orders")
    return answer.json()["orders"] if answer.ok else []


def position_size(page, server, owner: str, market: str) -> str | None:
    subaccount = page.request.get(f"{server.url}/v1/subaccounts/{owner}/0").json()
    return next((p["size"] for p in subaccount.get("positions", []) if p["market"] == market), None)


def test_acting_as_bob_switches_the_trader_and_his_order_is_his(page, server):
    """The selector's cookie is URL-encoded (``demo%3Abob``): the node must read it as bob."""
    act_as(page, server, "bob")

    assert page.locator("#signer").input_value() == "demo:bob"
    sync_api.expect(page.locator(".demo-banner")).to_contain_text("Acting as bob")
    sync_api.expect(page.locator("#owner")).to_have_text(BOB)
    page.goto(server.url + "/trade/BTC-USD")
    place_from_the_form(page, size="0.0456", price="20000")

    mine = [o for o in open_orders(page, server, BOB) if o["size"] == "0.0456" and o["price"] == "20000"]
    assert len(mine) == 1 and mine[0]["side"] == "buy"
    assert not [o for o in open_orders(page, server, ALICE) if o["size"] == "0.0456"]


def test_a_double_click_on_place_order_places_one_order(page, server):
    act_as(page, server, "alice")
    page.goto(server.url + "/trade/BTC-USD")
    page.fill("#order-size", "0.0077")
    page.fill("#order-price", "20000")
    sync_api.expect(page.locator("#preview")).to_contain_text("buy 0.0077 BTC-USD at 20000")

    page.dblclick("#place-order")

    sync_api.expect(page.locator("#tx-status")).to_contain_text(COMMITTED)
    page.wait_for_timeout(1_500)  # a second order would be committed within a few 100 ms blocks
    assert len([o for o in open_orders(page, server, ALICE) if o["size"] == "0.0077"]) == 1


def test_an_order_the_preview_refuses_is_not_signed_nor_sent(page, server):
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if "/ui/demo/submit" in request.url else None)
    act_as(page, server, "alice")
    page.goto(server.url + "/trade/BTC-USD")
    page.fill("#order-size", "1000")
    page.fill("#order-price", "50000")
    sync_api.expect(page.locator("#preview")).to_contain_text("refused now: insufficient_margin")

    page.click("#place-order")

    blocked = page.locator("#order-blocked")
    sync_api.expect(blocked).to_be_visible()
    sync_api.expect(blocked).to_contain_text("Not sent: insufficient_margin")
    sync_api.expect(page.locator("#tx-status")).to_contain_text("Order not sent: insufficient_margin")
    page.wait_for_timeout(500)
    assert sent == []
    assert not [o for o in open_orders(page, server, ALICE) if o["size"] == "1000"]


def test_the_api_docs_load_without_any_request_leaving_the_node(page, server):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    response = page.goto(server.url + "/docs")

    assert response is not None and response.ok
    sync_api.expect(page.locator("h1")).to_contain_text("Bastion API")
    for path in ("/v1/tx", "/v1/preview/order", "/v1/markets/{ticker}/book", "/v1/subaccounts/{owner}/{number}"):
        sync_api.expect(page.locator(".operation code", has_text=path).first).to_be_visible()
    sync_api.expect(page.locator("#schema-PreviewRequest")).to_contain_text("reduce_only")
    assert requested and all(urlparse(url).hostname == "127.0.0.1" for url in requested), requested
    screenshot(page, "api-docs")


def test_the_header_height_never_goes_blank_when_channels_are_confirmed(page, server):
    """The trade page subscribes to blocks, book and trades: each acknowledgement is a message of its
    channel without a height, and the header must keep showing a number through all of them."""
    page.add_init_script("""document.addEventListener('DOMContentLoaded', () => {
        const cell = document.getElementById('height');
        window.__heights = [cell.textContent];
        new MutationObserver(() => window.__heights.push(cell.textContent))
            .observe(cell, {childList: true, characterData: true, subtree: true});
    });""")
    page.goto(server.url + "/trade/BTC-USD")
    start = int(page.locator("#height").inner_text())

    page.wait_for_function(f"() => window.__heights.filter(h => Number(h) > {start}).length >= 3")

    heights = page.evaluate("window.__heights")
    assert all(re.fullmatch(r"\d+", h) for h in heights), heights


def test_the_reduce_only_preview_caps_the_size_at_the_position(page, server):
    act_as(page, server, "alice")
    page.goto(server.url + "/trade/BTC-USD")
    place_from_the_form(page, size="0.02", price="1000000", time_in_force="ioc")  # a long, from the maker's asks
    long = position_size(page, server, ALICE, "BTC-USD")
    assert long is not None and not long.startswith("-")

    page.check("input[name=side][value=sell]")
    page.fill("#order-size", "5")
    page.fill("#order-price", "1000")
    page.check("input[name=reduce_only]")

    sync_api.expect(page.locator("#preview-capped")).to_contain_text(f"at most {long} fills")
    sync_api.expect(page.locator("#preview")).to_contain_text("placement would accept it now")


def test_the_pepe_page_preselects_the_subaccount_isolated_to_pepe(page, server):
    act_as(page, server, "carol")  # carol: subaccount 0 cross, 1 isolated to PEPE-USD
    page.goto(server.url + "/trade/PEPE-USD")

    assert page.locator("select[name=subaccount]").input_value() == "1"
    sync_api.expect(page.locator("#preview")).not_to_contain_text("isolated_market_requires_isolated_subaccount")
    page.goto(server.url + "/trade/BTC-USD")
    assert page.locator("select[name=subaccount]").input_value() == "0"


def test_an_unknown_market_is_an_html_page_with_a_way_back(page, server):
    response = page.goto(server.url + "/trade/NOPE-USD")

    assert response is not None and response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    sync_api.expect(page.locator("main")).to_contain_text("There is no market NOPE-USD")
    page.click("#back-to-markets")
    page.wait_for_url(server.url + "/")
    sync_api.expect(page.locator("h1")).to_have_text("Markets")


def test_the_pages_have_a_favicon_from_the_node(page, server):
    page.goto(server.url + "/")
    href = page.locator("link[rel=icon]").get_attribute("href")

    icon = page.request.get(server.url + href)

    assert href == "/static/favicon.svg" and icon.ok
    assert icon.headers["content-type"].startswith("image/svg+xml") and b"<svg" in icon.body()


def test_the_price_follows_the_oracle_until_the_trader_types_in_it(page, server):
    act_as(page, server, "alice")
    page.goto(server.url + "/trade/BTC-USD")
    loaded = page.locator("#order-price").input_value()

    page.wait_for_function(f"() => document.getElementById('book-oracle').dataset.oracle !== {json.dumps(loaded)}",
                           timeout=60_000)
    oracle = page.locator("#book-oracle").get_attribute("data-oracle")
    sync_api.expect(page.locator("#order-price")).to_have_value(oracle)

    page.fill("#order-price", "12345")
    page.wait_for_function(f"() => document.getElementById('book-oracle').dataset.oracle !== {json.dumps(oracle)}",
                           timeout=60_000)
    assert page.locator("#order-price").input_value() == "12345"
    page.click("#use-oracle")
    sync_api.expect(page.locator("#order-price")).to_have_value(
        page.locator("#book-oracle").get_attribute("data-oracle"))


def test_the_status_line_says_what_filled_in_words_without_moving_the_page(page, server):
    act_as(page, server, "alice")
    page.goto(server.url + "/trade/BTC-USD")
    status = page.locator("#tx-status")
    assert status.get_attribute("aria-live") == "polite"
    top = page.locator("main").bounding_box()["y"]

    place_from_the_form(page, size="0.01", price="1000000", time_in_force="ioc")  # takes the maker's asks

    sync_api.expect(status).to_contain_text(
        re.compile(r"^Bought 0\.01 BTC-USD at [\d,.]+( \(\d+ fills\))?, fee [\d.]+ USDC"))
    assert "place_order" not in status.inner_text()
    assert page.locator("main").bounding_box()["y"] == top  # the status box floats: nothing moved
    assert page.evaluate("getComputedStyle(document.getElementById('tx-status')).position") == "fixed"
