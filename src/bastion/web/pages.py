"""The page routes of the web UI (module docstring of ``bastion.web``).

Each page handler reads the committed state under the node's lock (and the read models for
history), hands plain dicts to a template, and renders. Pages are not part of the API schema
(``include_in_schema=False``); they call nothing the API does not already offer, except the demo
endpoints, which exist only in demo mode.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from bastion.api.preview import preview_order
from bastion.api.reports import describe_gate_reports
from bastion.api.security import REFUSAL_STATUS, check_same_origin, read_json_body
from bastion.api.signing import DOMAIN_NAME, ENVELOPE_TYPES, SIGNING_VERSION, compute_chain_number, sign_envelope
from bastion.api.views import (
    describe_book, describe_concentration, describe_insurance_funds, describe_market,
    describe_param_history, describe_proposals, describe_subaccount, describe_tier, get_market_or_404,
    page_open_orders,
)
from bastion.core import transparency
from bastion.core.errors import ProtocolError
from bastion.core.governance import format_governance_params
from bastion.core.messages import decode_message, normalize_address
from bastion.core.state import SUBACCOUNT_NUMBERS
from bastion.core.timefmt import format_iso_ms
from bastion.demo.bots import NonceClock
from bastion.demo.keys import DEMO_KEY_LABEL, DEMO_TRADERS, get_demo_keys
from bastion.web.reads import describe_exposure, describe_proposal_diff, format_param_value

__all__ = ["mount_web"]

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
PAGES = (("/", "Markets"), ("/trade/BTC-USD", "Trade"), ("/portfolio", "Portfolio"), ("/governance", "Governance"),
         ("/risk", "Risk"), ("/liquidations", "Liquidations"))
FAUCET_USDC = "10000"
DEMO_WAIT_S = 5.0
RECENT_BLOCKS = 2_400      # trades shown: fills from the last ten minutes of 250 ms blocks
CANDLES_SHOWN = 120
ORDERS_SHOWN = 200  # open orders shown per subaccount (the first page: GET .../orders pages the rest)


def plotly_path() -> Path:
    """plotly.min.js as bundled in the installed ``plotly`` package (pinned in pyproject.toml)."""
    return Path(str(resources.files("plotly").joinpath("package_data", "plotly.min.js")))


def mount_web(app: FastAPI) -> None:
    """Add the pages, static files and (in demo mode) the demo endpoints to the API ``app``
    (built by ``bastion.api.app.create_app``, whose state holds the node, config, reader and intake)."""
    node, config, reader, accept = app.state.node, app.state.config, app.state.reader, app.state.accept
    reports = app.state.reports
    chain_id = node.state.chain_id
    demo_keys = {}
    if config.demo:
        demo_keys = {name: key for name, key in get_demo_keys().items() if name in DEMO_TRADERS}
    signing = {"domain": {"name": DOMAIN_NAME, "version": SIGNING_VERSION, "chainId": compute_chain_number(chain_id)},
               "types": ENVELOPE_TYPES}

    def who(request: Request) -> tuple[str | None, str | None]:
        """(signer, owner) from the page-level selector's cookies; demo mode defaults to alice."""
        signer = request.cookies.get("bastion_signer")
        owner = request.cookies.get("bastion_owner")
        if signer and signer.startswith("demo:") and signer[5:] in demo_keys:
            return signer, demo_keys[signer[5:]].address
        if signer == "wallet" and owner:
            try:
                return signer, normalize_address(owner, field="owner")
            except ProtocolError:
                return None, None
        if demo_keys:
            return "demo:alice", demo_keys["alice"].address
        return None, None

    def history(method: str, **arguments: Any) -> tuple[int | None, list[dict]]:
        from bastion.api.app import format_row
        try:
            height, rows = reader.query(method, **arguments)
        except ProtocolError:
            return None, []
        with node.lock:
            return height, [format_row(node, row) for row in rows]

    def render(request: Request, template: str, active: str, *, subscriptions: Sequence[dict[str, Any]] = (),
               refresh_on: tuple[str, ...] = ("blocks",), **context: Any) -> HTMLResponse:
        signer, owner = who(request)
        with node.lock:
            height, time_text = node.state.height, format_iso_ms(node.state.time_ms)
        settings = {"chain_id": chain_id, "signer": signer, "owner": owner, "signing": signing,
                    "demo": bool(demo_keys), "demo_traders": {n: k.address for n, k in demo_keys.items()},
                    "subscriptions": [{"channel": "blocks"}, *subscriptions], "refresh_on": list(refresh_on)}
        return TEMPLATES.TemplateResponse(request, template, {
            "pages": PAGES, "active": active, "height": height, "time": time_text, "chain_id": chain_id,
            "signer": signer, "owner": owner, "demo_traders": {n: k.address for n, k in demo_keys.items()},
            "demo_label": DEMO_KEY_LABEL if demo_keys else None, "settings": settings, **context})

    # ------------------------------------------------------------------ static files
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(plotly_path(), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    # ------------------------------------------------------------------ pages
    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def markets_page(request: Request) -> HTMLResponse:
        with node.lock:
            state = node.state
            markets = [describe_market(state, m) for m in state.markets.values()]
        return render(request, "markets.html", "/", markets=markets)

    @app.get("/trade", include_in_schema=False)
    def trade_default() -> RedirectResponse:
        return RedirectResponse("/trade/BTC-USD")

    @app.get("/trade/{ticker}", include_in_schema=False, response_class=HTMLResponse)
    def trade_page(request: Request, ticker: str) -> HTMLResponse:
        _, owner = who(request)
        with node.lock:
            state = node.state
            market = get_market_or_404(state, ticker)
            described = describe_market(state, market)
            book = describe_book(state, market, 12)
            tickers = list(state.markets)
            subaccounts = [] if owner is None else [
                {"number": n, "mode": state.subaccounts[(owner, n)].mode,
                 "isolated_market": state.subaccounts[(owner, n)].isolated_market}
                for n in SUBACCOUNT_NUMBERS if (owner, n) in state.subaccounts]
            orders = [] if owner is None else [
                {**o, "subaccount": n} for n in SUBACCOUNT_NUMBERS if (owner, n) in state.subaccounts
                for o in page_open_orders(state, state.subaccounts[(owner, n)], ORDERS_SHOWN)[0]
                if o["market"] == ticker]
            since = max(0, state.height - RECENT_BLOCKS)
        _, trades = history("fills", market=ticker, since_height=since, limit=1_000)
        _, candles = history("candles", market=ticker, resolution="1m", start_ms=None, end_ms=None)
        candles = candles[-CANDLES_SHOWN:]
        chart = {"data": [{"type": "candlestick", "x": [format_iso_ms(c["start_ms"]) for c in candles],
                           "open": [c["open"] for c in candles], "high": [c["high"] for c in candles],
                           "low": [c["low"] for c in candles], "close": [c["close"] for c in candles],
                           "name": ticker}],
                 "layout": {"margin": {"l": 50, "r": 10, "t": 10, "b": 30}, "height": 300,
                            "xaxis": {"rangeslider": {"visible": False}}, "paper_bgcolor": "#fff",
                            "plot_bgcolor": "#fff"}}
        return render(request, "trade.html", "/trade/BTC-USD", market=described, book=book, tickers=tickers,
                      trades=list(reversed(trades[-30:])), chart=chart, subaccounts=subaccounts, orders=orders,
                      subscriptions=[{"channel": "book", "market": ticker, "depth": 12},
                                     {"channel": "trades", "market": ticker}],
                      refresh_on=("book", "trades"))

    @app.get("/portfolio", include_in_schema=False, response_class=HTMLResponse)
    def portfolio_page(request: Request) -> HTMLResponse:
        _, owner = who(request)
        accounts = []
        with node.lock:
            state = node.state
            if owner is not None:
                for number in SUBACCOUNT_NUMBERS:
                    sub = state.subaccounts.get((owner, number))
                    if sub is None:
                        continue
                    accounts.append({**describe_subaccount(state, sub), "exposure": describe_exposure(state, sub),
                                     "orders": page_open_orders(state, sub, ORDERS_SHOWN)[0]})
        chart = None
        exposures = [(f"{a['number']}:{row['market']}", row) for a in accounts for row in a["exposure"]]
        if exposures:
            chart = {"data": [{"type": "bar", "x": [label for label, _ in exposures],
                               "y": [row["notional"] for _, row in exposures], "name": "notional (USDC)"},
                              {"type": "bar", "x": [label for label, _ in exposures],
                               "y": [row["maintenance_margin"] for _, row in exposures], "name": "maintenance (USDC)"}],
                     "layout": {"barmode": "group", "height": 260, "margin": {"l": 60, "r": 10, "t": 10, "b": 40}}}
        return render(request, "portfolio.html", "/portfolio", accounts=accounts, chart=chart,
                      subscriptions=[{"channel": "account", "owner": owner, "number": a["number"]} for a in accounts],
                      refresh_on=("account", "blocks"))

    @app.get("/governance", include_in_schema=False, response_class=HTMLResponse)
    def governance_page(request: Request) -> HTMLResponse:
        with node.lock:
            state = node.state
            proposals = describe_proposals(state)
            for entry, proposal in zip(proposals, state.proposals.values()):
                entry.update(describe_proposal_diff(state, proposal))
            proposals.reverse()  # newest first
            params = format_governance_params(state.governance)
        for entry in proposals:  # the reports this node holds (files: read outside the lock)
            describe_gate_reports(entry["stress_gate"], reports)
        example = json.dumps([{"type": "set_market_params", "market": "SOL-USD", "max_open_interest": "150000"}],
                             indent=1)
        return render(request, "governance.html", "/governance", proposals=proposals, params=params,
                      example_actions=example, subscriptions=[{"channel": "governance"}],
                      refresh_on=("governance",))

    @app.get("/risk", include_in_schema=False, response_class=HTMLResponse)
    def risk_page(request: Request) -> HTMLResponse:
        with node.lock:
            state = node.state
            tiers = [describe_tier(state, tier_id) for tier_id in sorted(state.tiers)]
            markets = [describe_market(state, m) for m in state.markets.values()]
            changes = [{**c, "old": format_param_value(state, c["name"], c["old"]),
                        "new": format_param_value(state, c["name"], c["new"])}
                       for c in describe_param_history(state)]
            funds = describe_insurance_funds(state)
            concentration = describe_concentration(state)
            alert = transparency.get_voting_concentration(state)
            params = format_governance_params(state.governance)
        chart = {"data": [{"type": "bar", "x": [f["pool"] for f in funds["funds"]],
                           "y": [f["balance"] for f in funds["funds"]], "name": "insurance fund (USDC)"}],
                 "layout": {"height": 220, "margin": {"l": 70, "r": 10, "t": 10, "b": 30}}}
        return render(request, "risk.html", "/risk", tiers=tiers, markets=markets, changes=list(reversed(changes)),
                      funds=funds, concentration=concentration, params=params, chart=chart,
                      alert={"largest": alert.largest_delegate, "quorum_alone": list(alert.quorum_alone)})

    @app.get("/liquidations", include_in_schema=False, response_class=HTMLResponse)
    def liquidations_page(request: Request) -> HTMLResponse:
        indexed, rows = history("liquidations")
        return render(request, "liquidations.html", "/liquidations", rows=list(reversed(rows[-200:])),
                      indexed=indexed)

    def refusal(error: ProtocolError) -> JSONResponse:
        return JSONResponse({"status": "refused", "code": error.code, "message": error.message},
                            status_code=REFUSAL_STATUS.get(error.code, 400))

    # ------------------------------------------------------------------ the live preview (a fragment)
    @app.post("/ui/preview", include_in_schema=False, response_class=HTMLResponse)
    async def preview_fragment(request: Request) -> Response:
        try:
            check_same_origin(request)
            body = await read_json_body(request)
        except ProtocolError as error:
            return refusal(error)
        failure: str | None
        try:
            if not isinstance(body, dict):
                raise ValueError("not an object")
            owner = normalize_address(body.get("owner"), field="owner")
            subaccount = body.get("subaccount", 0)
            if isinstance(subaccount, str) and subaccount.isascii() and subaccount.isdigit() and len(subaccount) <= 3:
                subaccount = int(subaccount)  # a form field's text
            if not isinstance(subaccount, int) or isinstance(subaccount, bool) or subaccount not in SUBACCOUNT_NUMBERS:
                raise ProtocolError("invalid_subaccount", "subaccount number must be 0..127", field="subaccount")
            with node.lock:
                preview = preview_order(node.state, owner=owner, subaccount=subaccount,
                                        market=str(body.get("market")), side=str(body.get("side")),
                                        size=str(body.get("size")), price=str(body.get("price")),
                                        reduce_only=body.get("reduce_only") is True)
        except ProtocolError as error:
            preview, failure = None, f"{error.code}: {error.message}"
        except (ValueError, AttributeError, TypeError):
            preview, failure = None, "fill in size and price"
        else:
            failure = None
        return TEMPLATES.TemplateResponse(request, "_preview.html", {"preview": preview, "failure": failure})

    # ------------------------------------------------------------------ demo mode: the node signs
    if not demo_keys:
        return
    nonces = NonceClock()
    bridge = get_demo_keys()["bridge"]

    async def submit_signed(private_key: str, address: str, msg: dict[str, Any]) -> Response:
        try:
            decode_message(msg)  # bounded and encodable before it is signed (check_tx decodes it again)
            accepted = accept(sign_envelope(private_key, chain_id, msg, nonces.next(address)))
        except ProtocolError as error:
            return refusal(error)
        status = await run_in_threadpool(node.wait_committed, accepted["sender"], accepted["nonce"], DEMO_WAIT_S)
        return JSONResponse(status)

    async def read_demo_request(request: Request) -> Any:
        """The JSON body of a same-origin request on a loopback address (``bastion.api.security``)."""
        check_same_origin(request, loopback_only=True)
        return await read_json_body(request)

    @app.post("/ui/demo/submit", include_in_schema=False)
    async def demo_submit(request: Request) -> Response:
        """Sign ``msg`` with the demo key of ``trader`` (demo key — never use in production) and submit it."""
        try:
            body = await read_demo_request(request)
        except ProtocolError as error:
            return refusal(error)
        trader = body.get("trader") if isinstance(body, dict) else None
        key = demo_keys.get(trader) if isinstance(trader, str) else None
        if key is None or not isinstance(body.get("msg"), dict):
            return JSONResponse({"status": "refused", "code": "invalid_request",
                                 "message": "send {trader: a demo trader's name, msg: {...}}"}, status_code=400)
        return await submit_signed(key.private_key, key.address, body["msg"])

    @app.post("/ui/demo/faucet", include_in_schema=False)
    async def demo_faucet(request: Request) -> Response:
        """Credit FAUCET_USDC to a wallet's subaccount 0 from the demo bridge operator."""
        try:
            body = await read_demo_request(request)
            address = normalize_address(body.get("address") if isinstance(body, dict) else None, field="address")
        except ProtocolError as error:
            return refusal(error)
        return await submit_signed(bridge.private_key, bridge.address,
                                   {"type": "deposit", "owner": address, "subaccount": 0, "amount": FAUCET_USDC})


