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
from contextlib import contextmanager
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from urllib.parse import urlparse

import pytest
from builders import free_port
from eth_account import Account

from bastion.signing import compute_chain_number
from bastion.demo import DemoServer
from bastion.demo.keys import get_demo_keys
from bastion.web.formatting import group, pct, usd

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
ALICE = get_demo_keys()["alice"].address
BOB = get_demo_keys()["bob"].address
CAROL = get_demo_keys()["carol"].address
COMMITTED = re.compile(r"\(block \d+\)")  # the status line's words end with the block that holds the transaction

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed "
                                "(apt-get install -y chromium; .ci/run does it)")
# Assertions wait for commits of a live chain: give them the page's 15 s rather than Playwright's 5 s,
# so that a loaded 2-core CI machine does not fail a correct page.
sync_api.expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    demo = start_demo_server(tmp_path_factory.mktemp("browser") / "demo", block_time_ms=100)
    yield demo
    demo.close()


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


@contextmanager
def browser_page(browser, width: int = 1400, height: int = 900):
    """A fresh browser context (no cookies of another test) and its one page, 15 s timeouts; closed
    after. The browser-test modules build their ``page`` fixtures on it."""
    context = browser.new_context(viewport={"width": width, "height": height})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    try:
        yield opened
    finally:
        context.close()


def start_demo_server(data_dir, **options) -> DemoServer:
    """A started ``DemoServer`` (the demo of ``make run``, in-process) on a free port with
    ``options`` (block_time_ms, step_ms, pace, bots, ...); the caller closes it."""
    demo = DemoServer(data_dir, port=free_port(), **options)
    demo.start()
    return demo


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
    sync_api.expect(card.locator(".stats")).to_contain_text(usd(amount))  # "$44,110.00": shown for people
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
    assert Decimal(page.locator(f"{section} .tally-yes").inner_text().replace(",", "")) >= 2000  # "2,000"
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


# ------------------------------------------------------------------ issue 17: the trading page traders expect
PAGE_PATHS = (("/", "markets"), ("/trade/BTC-USD", "trade"), ("/portfolio", "portfolio"),
              ("/governance", "governance"), ("/risk", "risk"), ("/liquidations", "liquidations"))


def market_of(page, server, ticker: str) -> dict:
    return page.request.get(f"{server.url}/v1/markets/{ticker}").json()


def guard(price: str, side: str, percent: str, places: int) -> str:
    """The slippage guard the form computes: the price moved by ``percent`` against the trader, on the grid
    (up for a buy, down for a sell)."""
    moved = Decimal(price) * (1 + (Decimal(percent) / 100 if side == "buy" else -Decimal(percent) / 100))
    on_grid = moved.quantize(Decimal(1).scaleb(-places), rounding=ROUND_CEILING if side == "buy" else ROUND_FLOOR)
    return format(on_grid.normalize(), "f")  # "47660", never "4.766E+4"


def test_a_market_order_is_guarded_by_its_slippage_and_fills_into_the_positions_table(page, server):
    act_as(page, server, "alice")
    page.goto(server.url + "/trade/BTC-USD")
    page.click("#kind-market")
    sync_api.expect(page.locator("#order-price")).to_be_hidden()
    sync_api.expect(page.locator("#kind-market")).to_have_attribute("aria-selected", "true")
    page.fill("#order-slippage", "5")
    page.fill("#order-size", "0.01")
    oracle = page.locator("#book-oracle").get_attribute("data-oracle")
    places = market_of(page, server, "BTC-USD")["price_decimals"]
    sync_api.expect(page.locator("#guard-price")).to_contain_text("fills at most ")
    shown = page.locator("#guard-price").inner_text().removeprefix("fills at most ").replace(",", "")
    oracle_now = page.locator("#book-oracle").get_attribute("data-oracle")
    assert shown in (guard(oracle, "buy", "5", places), guard(oracle_now, "buy", "5", places))
    sent: list[dict] = []
    page.on("request", lambda request: sent.append(json.loads(request.post_data)["msg"])
            if "/ui/demo/submit" in request.url else None)

    page.click("#place-order")

    sync_api.expect(page.locator("#tx-status")).to_contain_text(re.compile(r"^Bought 0\.01 BTC-USD at"))
    assert sent and sent[0]["order_type"] == "market" and sent[0]["time_in_force"] == "ioc"
    assert Decimal(sent[0]["price"]) > Decimal(oracle) * Decimal("1.04")  # the guard, not the oracle itself
    account = page.request.get(f"{server.url}/v1/subaccounts/{ALICE}/0").json()
    position = next(p for p in account["positions"] if p["market"] == "BTC-USD")
    row = page.locator("#position-0-BTC-USD")
    sync_api.expect(row).to_contain_text(group(position["entry_price"]))  # entry price, digits grouped
    sync_api.expect(row).to_contain_text(group(position["size"]))
    sync_api.expect(row).to_contain_text(re.compile(r"\$[\d,]+\.\d\d \([+-]?[\d.]+%\)"))  # PnL (ROE)
    screenshot(page, "trade-market-order")
    page.goto(server.url + "/portfolio")  # the same table, with close buttons, on the portfolio
    sync_api.expect(page.locator("#positions #position-0-BTC-USD")).to_contain_text(group(position["entry_price"]))
    sync_api.expect(page.locator("#positions #position-0-BTC-USD button.close-position")).to_be_visible()


def test_tp_sl_prepares_a_reduce_only_stop_and_close_flattens_the_position(page, server):
    act_as(page, server, "alice")
    page.goto(server.url + "/trade/BTC-USD")
    place_from_the_form(page, size="0.01", price="1000000", time_in_force="ioc")
    size = position_size(page, server, ALICE, "BTC-USD")
    assert size is not None and not size.startswith("-")
    row = page.locator("#position-0-BTC-USD")
    sync_api.expect(row).to_contain_text(group(size))

    row.locator("button.tpsl").click()  # a stop loss for the long: a reduce-only sell stop, far below

    sync_api.expect(page.locator("#kind-stop")).to_have_attribute("aria-selected", "true")
    assert page.locator("input[name=side][value=sell]").is_checked()
    assert page.locator("input[name=reduce_only]").is_checked()
    assert page.locator("#order-size").input_value() == size
    page.fill("#order-trigger", "1000")
    sync_api.expect(page.locator("#guard-price")).to_contain_text("fills at least 990")
    page.evaluate("document.getElementById('tx-status').textContent = ''")
    page.click("#place-order")
    sync_api.expect(page.locator("#tx-status")).to_contain_text(COMMITTED)
    stops = [o for o in open_orders(page, server, ALICE) if o["order_type"] == "stop_market"]
    assert [(o["side"], o["size"], o["trigger_price"], o["price"], o["reduce_only"]) for o in stops] == [
        ("sell", size, "1000", "990", True)]
    page.click("#tab-orders")
    sync_api.expect(page.locator("#panel-orders")).to_be_visible()
    sync_api.expect(page.locator("#panel-orders")).to_contain_text("stop market")
    sync_api.expect(page.locator("#panel-orders")).to_contain_text("1,000")
    sync_api.expect(page.locator("#panel-positions")).to_be_hidden()
    screenshot(page, "trade-stop-order")
    page.click("#tab-positions")

    page.evaluate("document.getElementById('tx-status').textContent = ''")
    row.locator("button.close-position").click()

    sync_api.expect(page.locator("#tx-status")).to_contain_text(re.compile(r"^Sold .* BTC-USD at .*\(block \d+\)"))
    assert position_size(page, server, ALICE, "BTC-USD") is None
    sync_api.expect(page.locator("#position-0-BTC-USD")).to_have_count(0)
    page.click("#tab-fills")
    sync_api.expect(page.locator("#panel-fills")).to_contain_text("taker")
    for stop in stops:  # leave no stop behind for the other tests
        page.request.post(server.url + "/ui/demo/submit", data=json.dumps(
            {"trader": "alice", "msg": {"type": "cancel_order", "subaccount": 0, "order_id": stop["order_id"]}}),
            headers={"content-type": "application/json", "origin": server.url})


def test_a_book_level_clicked_fills_the_price_and_the_book_shows_depth_and_spread(page, server):
    act_as(page, server, "alice")
    page.goto(server.url + "/trade/ETH-USD")
    page.click("#kind-market")
    asks = page.locator("#book tr.ask")
    sync_api.expect(asks.first).to_be_visible()
    # cumulative depth: each ask's total is its size plus the totals of the cheaper asks below it
    rows = [[cell.replace(",", "") for cell in r] for r in page.eval_on_selector_all(
        "#book tr.ask", "rows => rows.map(r => Array.from(r.cells, c => c.textContent.trim()))")]
    running = Decimal(0)
    for price, size, total in reversed(rows):
        running += Decimal(size)
        assert Decimal(total) == running, (price, size, total)
    sync_api.expect(page.locator("#book-spread")).to_contain_text(re.compile(r"spread [\d,.]+ \([\d.]+%\)"))
    level = asks.last  # the best ask
    price = level.get_attribute("data-price")

    level.click()

    sync_api.expect(page.locator("#kind-limit")).to_have_attribute("aria-selected", "true")
    sync_api.expect(page.locator("#order-price")).to_have_value(price)
    sync_api.expect(page.locator("#preview")).to_contain_text(f"at {price}")


def test_a_size_in_usd_is_converted_at_the_price(page, server):
    act_as(page, server, "alice")
    page.goto(server.url + "/trade/BTC-USD")
    page.select_option("#size-unit", "usd")
    page.fill("#order-price", "20000")
    page.fill("#order-size", "1000")

    sync_api.expect(page.locator("#size-coin")).to_have_text("= 0.05 BTC")
    sync_api.expect(page.locator("#preview")).to_contain_text("buy 0.05 BTC-USD at 20000")


def test_the_leverage_selector_shows_the_maximum_and_sets_the_cap(page, server):
    act_as(page, server, "bob")
    page.goto(server.url + "/trade/SOL-USD")
    tier = market_of(page, server, "SOL-USD")["tier"]
    most = int(1 / Decimal(tier["initial_margin"]))
    sync_api.expect(page.locator("label[for=leverage]")).to_contain_text(f"at most {most}x")
    assert page.locator("#leverage").get_attribute("max") == str(most)
    page.locator("#leverage").fill("2")
    sync_api.expect(page.locator("#leverage-value")).to_have_text("2x")

    page.click("#set-leverage")

    sync_api.expect(page.locator("#tx-status")).to_contain_text("Leverage set")
    page.reload()
    assert page.locator("#leverage").input_value() == "2"  # read back from the state: bob's cap is 2x
    page.locator("#leverage").fill(str(most))
    page.click("#set-leverage")
    sync_api.expect(page.locator("#tx-status")).to_contain_text("Leverage set")


def test_the_market_stats_and_account_header_are_numbers_for_people(page, server):
    act_as(page, server, "alice")
    page.goto(server.url + "/trade/BTC-USD")
    stats = page.locator("#market-stats")
    sync_api.expect(page.locator("#stat-mark")).to_have_text(re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$"))
    sync_api.expect(page.locator("#stat-oi")).to_have_text(re.compile(r"^\$[\d.]+[KMB]?$"))
    sync_api.expect(page.locator("#stat-volume")).to_have_text(re.compile(r"^\$[\d.,]+[KMB]?$"))
    sync_api.expect(page.locator("#stat-funding")).to_contain_text(re.compile(r"^[+-]?[\d.]+% · (\d+h )?(\d+m )?\d+s$"))
    sync_api.expect(stats).to_contain_text("24h change")
    header = page.locator("#account-summary dl:visible")
    sync_api.expect(header).to_have_attribute("data-subaccount", "0")
    sync_api.expect(header.locator(".acct-equity")).to_have_text(re.compile(r"^\$\d{1,3}(,\d{3})*\.\d\d$"))
    sync_api.expect(header.locator(".acct-ratio")).to_have_text(re.compile(r"^[\d.]+%$"))
    tier = market_of(page, server, "BTC-USD")["tier"]
    sync_api.expect(page.locator("main")).to_contain_text(f"initial margin {pct(tier['initial_margin'])}")
    page.goto(server.url + "/")
    row = page.locator("#market-BTC-USD")
    sync_api.expect(row).to_contain_text(f"IM {pct(tier['initial_margin'])}, MM {pct(tier['maintenance_margin'])}")
    rows = page.eval_on_selector_all("table.markets tbody tr",
                                     "rows => rows.map(r => Array.from(r.cells, c => c.textContent.trim()))")
    for cells in rows:  # ratios as percentages (change, funding, margins, fees), OI in dollars, leverage as "Nx"
        assert cells[2] == "—" or cells[2].endswith("%"), cells
        assert cells[4].endswith("%") and cells[5].startswith("$") and re.search(r" · \d+xIM ", cells[7]), cells
        assert re.fullmatch(r"-?[\d.]+% / -?[\d.]+%", cells[8]), cells


def test_no_page_scrolls_sideways_on_a_phone_and_the_markets_table_fits_a_laptop(page, server):
    act_as(page, server, "alice")
    for width, height in ((390, 844), (1440, 900)):
        page.set_viewport_size({"width": width, "height": height})
        for path, name in PAGE_PATHS:
            page.goto(server.url + path)
            page.wait_for_selector("main")
            overflow = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert overflow[0] <= overflow[1], (width, path, overflow)
            nav = page.locator("header nav").bounding_box()
            assert nav is not None and nav["x"] + nav["width"] <= width, (width, path, nav)
            if path == "/":
                table = page.evaluate("(() => { const t = document.querySelector('table.markets'); "
                                      "return [t.scrollWidth, t.parentElement.clientWidth]; })()")
                if width == 1440:
                    assert table[0] <= table[1], table  # the markets table fits a laptop's width
            screenshot(page, f"{name}-{width}")


def test_the_theme_follows_the_system_until_the_toggle_chooses_and_is_kept(page, server):
    page.emulate_media(color_scheme="dark")
    page.goto(server.url + "/trade/BTC-USD")
    background = "getComputedStyle(document.body).backgroundColor"
    assert page.evaluate(background) == "rgb(11, 18, 32)"
    screenshot(page, "trade-dark")

    page.click("#theme-toggle")

    assert page.evaluate(background) == "rgb(248, 250, 252)"
    page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert page.evaluate(background) == "rgb(248, 250, 252)"
    page.click("#theme-toggle")
    assert page.evaluate(background) == "rgb(11, 18, 32)"
    page.emulate_media(color_scheme="light")
    page.reload()
    assert page.evaluate(background) == "rgb(11, 18, 32)"  # the choice beats the system's


def test_every_control_is_labelled_and_results_are_announced(page, server):
    act_as(page, server, "alice")
    unlabelled_script = """() => Array.from(document.querySelectorAll('input, select, textarea, button'))
        .filter(e => e.type !== 'hidden' && e.getClientRects().length)
        .filter(e => !((e.labels && e.labels.length) || e.getAttribute('aria-label') ||
                       e.getAttribute('aria-labelledby') || (e.tagName === 'BUTTON' && e.textContent.trim())))
        .map(e => e.outerHTML.slice(0, 120))"""
    for path, _ in PAGE_PATHS:
        page.goto(server.url + path)
        page.wait_for_selector("main")
        assert page.evaluate(unlabelled_script) == [], path
        assert page.locator("#tx-status").get_attribute("aria-live") == "polite"
    page.goto(server.url + "/trade/BTC-USD")
    for live in ("#preview", "#isolation-outcome", "#size-coin", "#guard-price"):
        assert page.locator(live).get_attribute("aria-live") == "polite", live


def test_the_account_header_and_leverage_follow_the_forms_subaccount(page, server):
    act_as(page, server, "carol")  # carol: subaccount 0 cross, 1 isolated to PEPE-USD
    page.goto(server.url + "/trade/PEPE-USD")
    header = page.locator("#account-summary dl:visible")
    sync_api.expect(header).to_have_attribute("data-subaccount", "1")  # the preselected isolated one
    equity = page.request.get(f"{server.url}/v1/subaccounts/{CAROL}/0").json()["equity"]

    page.select_option("select[name=subaccount]", "0")

    sync_api.expect(header).to_have_attribute("data-subaccount", "0")
    assert header.locator(".acct-equity").inner_text().startswith(usd(equity)[:4])  # carol's cross equity
    sync_api.expect(page.locator("#leverage-subaccount")).to_have_text("0")
    assert page.locator("#leverage-form").get_attribute("data-subaccount") == "0"
    assert page.locator("#account-summary dl").count() == 2
