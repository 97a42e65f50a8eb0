"""The page routes of the web UI (module docstring of ``bastion.web``).

Each page handler reads the committed state under the node's lock (and the read models for
history), hands plain dicts to a template, and renders (``bastion.web.context.PageContext``).
Pages are not part of the API schema (``include_in_schema=False``); they call nothing the API does
not already offer. The live preview and the demo endpoints are in ``bastion.web.actions``.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from bastion.api.reports import describe_gate_reports
from bastion.api.views import (
    describe_book, describe_concentration, describe_insurance_funds, describe_market,
    describe_param_history, describe_proposals, describe_subaccount, describe_tier, get_market_or_404,
    page_open_orders, describe_voter_exposure,
)
from bastion.api.views import describe_rollouts
from bastion.core import transparency
from bastion.core.governance import format_governance_params
from bastion.core.governance.counter_reports import describe_counter_reports
from bastion.core.upgrades import describe_upgrade
from bastion.web.informed import describe_cited_snapshot, describe_counter_report, describe_upgrade_banner
from bastion.core.state import SUBACCOUNT_NUMBERS
from bastion.core.timefmt import format_iso_ms
from bastion.presentation import describe_agent_grants, describe_maker_rewards, describe_staking
from bastion.web.context import CANDLES_SHOWN, DEPTH_CHART_LEVELS, ORDERS_SHOWN, PAGES, RECENT_BLOCKS, PageContext
from bastion.web.history import portfolio_history
from bastion.web.reads import describe_exposure, describe_proposal_diff, format_param_value
from bastion.web.trading import (
    DAY_MS, describe_account_summary, describe_depth, describe_market_stats, describe_positions,
)

__all__ = ["PAGES", "page_routes", "plotly_path"]


def plotly_path() -> Path:
    """plotly.min.js as bundled in the installed ``plotly`` package (pinned in pyproject.toml)."""
    return Path(str(resources.files("plotly").joinpath("package_data", "plotly.min.js")))


def page_routes(ctx: PageContext) -> APIRouter:
    """plotly.js and the pages: markets, trade, portfolio, governance, risk, liquidations."""
    router = APIRouter()
    node, reports = ctx.node, ctx.reports
    who, history, render = ctx.who, ctx.history, ctx.render

    @router.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(plotly_path(), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @router.get("/", include_in_schema=False, response_class=HTMLResponse)
    def markets_page(request: Request) -> HTMLResponse:
        with node.lock:
            tickers, now_ms = list(node.state.markets), node.state.time_ms
        hourly = {ticker: [] if ctx.reader.url is None else ctx.reader.query(
            "candles", market=ticker, resolution="1h", start_ms=now_ms - DAY_MS - 3_600_000, end_ms=None)[1]
            for ticker in tickers}
        with node.lock:
            state = node.state
            markets = [{**describe_market(state, m), "stats": describe_market_stats(state, m, hourly.get(m.ticker, [])),
                        "max_leverage": 1_000_000 // state.tiers[m.tier_id].initial_margin_ppm}
                       for m in state.markets.values()]
        return render(request, "markets.html", "/", markets=markets)

    @router.get("/trade", include_in_schema=False)
    def trade_default() -> RedirectResponse:
        return RedirectResponse("/trade/BTC-USD")

    @router.get("/trade/{ticker}", include_in_schema=False, response_class=HTMLResponse)
    def trade_page(request: Request, ticker: str) -> HTMLResponse:
        _, owner = who(request)
        with node.lock:
            tickers, now_ms = list(node.state.markets), node.state.time_ms
        if ticker not in tickers:  # a page with a way back, not the API's JSON error
            page = render(request, "not_found.html", "/trade/BTC-USD", what=f"market {ticker}", tickers=tickers)
            page.status_code = 404
            return page
        # raw 1 h candles for the 24 h statistics, read before taking the node's lock (as ``history``)
        hourly = [] if ctx.reader.url is None else ctx.reader.query(
            "candles", market=ticker, resolution="1h", start_ms=now_ms - DAY_MS - 3_600_000, end_ms=None)[1]
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
            depth = describe_depth(market, 12)
            deep = describe_depth(market, DEPTH_CHART_LEVELS)  # the depth chart's first drawing (then the WebSocket's)
            depth_levels = {"height": state.height, "market": ticker, "oracle": described["oracle"]["price"],
                            **{side: [[level["price"], level["size"]] for level in deep[side]]
                               for side in ("bids", "asks")}}
            numbers = tuple(s["number"] for s in subaccounts)
            positions = [] if owner is None else describe_positions(state, owner, numbers)
            chosen = next((s for s in subaccounts if s["isolated_market"] == ticker), None) if market.isolated_only \
                else next((s for s in subaccounts if s["mode"] == "cross"), None)
            summaries = [describe_account_summary(state, state.subaccounts[(owner, s["number"])], market)
                         for s in subaccounts]
            account = next((a for a in summaries if chosen is not None and a and a["number"] == chosen["number"]),
                           None)
            stats = describe_market_stats(state, market, hourly)
        _, trades = history("fills", market=ticker, since_height=since, limit=1_000)
        mine: dict[str, list[dict]] = {"fills": [], "funding": [], "liquidations": []}
        if owner is not None:
            mine["fills"] = list(reversed(history("fills", owner=owner, since_height=since, limit=1_000)[1][-50:]))
            mine["funding"] = list(reversed(history("funding_payments", owner=owner)[1][-50:]))
            mine["liquidations"] = list(reversed(history("liquidations", owner=owner)[1][-50:]))
        _, candles = history("candles", market=ticker, resolution="1m", start_ms=None, end_ms=None)
        candles = candles[-CANDLES_SHOWN:]
        chart = {"data": [{"type": "candlestick", "x": [format_iso_ms(c["start_ms"]) for c in candles],
                           "open": [c["open"] for c in candles], "high": [c["high"] for c in candles],
                           "low": [c["low"] for c in candles], "close": [c["close"] for c in candles],
                           "name": ticker}],
                 "layout": {"margin": {"l": 50, "r": 10, "t": 10, "b": 30}, "height": 300,
                            "xaxis": {"rangeslider": {"visible": False}}}}
        return render(request, "trade.html", "/trade/BTC-USD", market=described, book=book, tickers=tickers,
                      trades=list(reversed(trades[-30:])), chart=chart, subaccounts=subaccounts, orders=orders,
                      depth=depth, stats=stats, positions=positions, account=account, summaries=summaries, mine=mine,
                      depth_levels=depth_levels,
                      subscriptions=[{"channel": "book", "market": ticker, "depth": DEPTH_CHART_LEVELS},
                                     {"channel": "trades", "market": ticker}],
                      refresh_on=("book", "trades"))

    @router.get("/portfolio", include_in_schema=False, response_class=HTMLResponse)
    def portfolio_page(request: Request) -> HTMLResponse:
        _, owner = who(request)
        accounts, positions = [], []
        with node.lock:
            state = node.state
            agents = [] if owner is None else describe_agent_grants(state, owner)  # its agent keys
            if owner is not None:
                for number in SUBACCOUNT_NUMBERS:
                    sub = state.subaccounts.get((owner, number))
                    if sub is None:
                        continue
                    accounts.append({**describe_subaccount(state, sub), "exposure": describe_exposure(state, sub),
                                     "orders": page_open_orders(state, sub, ORDERS_SHOWN)[0]})
                positions = describe_positions(state, owner, tuple(a["number"] for a in accounts))
        chart = None
        exposures = [(f"{a['number']}:{row['market']}", row) for a in accounts for row in a["exposure"]]
        if exposures:
            chart = {"data": [{"type": "bar", "x": [label for label, _ in exposures],
                               "y": [row["notional"] for _, row in exposures], "name": "notional (USDC)"},
                              {"type": "bar", "x": [label for label, _ in exposures],
                               "y": [row["maintenance_margin"] for _, row in exposures], "name": "maintenance (USDC)"}],
                     "layout": {"barmode": "group", "height": 260, "margin": {"l": 60, "r": 10, "t": 10, "b": 40}}}
        history_pages = {} if owner is None else portfolio_history(ctx, owner, request.query_params)
        return render(request, "portfolio.html", "/portfolio", accounts=accounts, chart=chart, agents=agents,
                      positions=positions, numbers=SUBACCOUNT_NUMBERS, history=history_pages,
                      subscriptions=[{"channel": "account", "owner": owner, "number": a["number"]} for a in accounts],
                      refresh_on=("account", "blocks"))

    @router.get("/governance", include_in_schema=False, response_class=HTMLResponse)
    def governance_page(request: Request) -> HTMLResponse:
        with node.lock:
            state = node.state
            proposals = describe_proposals(state)
            rollouts = describe_rollouts(state)["rollouts"]
            counters = [describe_counter_report(c) for c in describe_counter_reports(state)]
            for entry, proposal in zip(proposals, state.proposals.values()):
                entry.update(describe_proposal_diff(state, proposal))
                entry["rollouts"] = [r for r in rollouts if r["proposal_id"] == proposal.proposal_id]
                entry["exposure"] = describe_voter_exposure(state, proposal)  # issue 20: voter exposure disclosure
                entry["counter_reports"] = [c for c in counters if c["proposal_id"] == proposal.proposal_id]
            proposals.reverse()  # newest first
            params = format_governance_params(state.governance)
            upgrade = describe_upgrade_banner(describe_upgrade(state, node.code_hash), state.height)
        for entry in proposals:  # the reports this node holds (files: read outside the lock)
            describe_gate_reports(entry["stress_gate"], reports)
            entry["cited"] = [describe_cited_snapshot(ctx.telemetry, digest) for digest in entry["evidence"]]
        example = json.dumps([{"type": "set_market_params", "market": "SOL-USD", "max_open_interest": "150000"}],
                             indent=1)
        return render(request, "governance.html", "/governance", proposals=proposals, params=params,
                      example_actions=example, upgrade=upgrade, subscriptions=[{"channel": "governance"}],
                      refresh_on=("governance",))

    @router.get("/risk", include_in_schema=False, response_class=HTMLResponse)
    def risk_page(request: Request) -> HTMLResponse:
        with node.lock:
            state = node.state
            tiers = [describe_tier(state, tier_id) for tier_id in sorted(state.tiers)]
            markets = [describe_market(state, m) for m in state.markets.values()]
            changes = [{**c, "old": format_param_value(state, c["name"], c["old"]),
                        "new": format_param_value(state, c["name"], c["new"])}
                       for c in describe_param_history(state)]
            funds = describe_insurance_funds(state)
            staking = describe_staking(state)["pools"]   # each fund's staked part, target and gap (core.staking)
            for fund in funds["funds"]:
                fund["staking"] = staking[fund["pool"]]
            concentration = describe_concentration(state)
            alert = transparency.get_voting_concentration(state)
            params = format_governance_params(state.governance)
        chart = {"data": [{"type": "bar", "x": [f["pool"] for f in funds["funds"]],
                           "y": [f["balance"] for f in funds["funds"]], "name": "insurance fund (USDC)"}],
                 "layout": {"height": 220, "margin": {"l": 70, "r": 10, "t": 10, "b": 30}}}
        return render(request, "risk.html", "/risk", tiers=tiers, markets=markets, changes=list(reversed(changes)),
                      funds=funds, concentration=concentration, params=params, chart=chart,
                      alert={"largest": alert.largest_delegate, "quorum_alone": list(alert.quorum_alone)})

    @router.get("/liquidations", include_in_schema=False, response_class=HTMLResponse)
    def liquidations_page(request: Request) -> HTMLResponse:
        indexed, rows = history("liquidations")
        return render(request, "liquidations.html", "/liquidations", rows=list(reversed(rows[-200:])),
                      indexed=indexed)

    @router.get("/rewards", include_in_schema=False, response_class=HTMLResponse)
    def rewards_page(request: Request) -> HTMLResponse:
        with node.lock:
            rewards = describe_maker_rewards(node.state)
        return render(request, "rewards.html", "/rewards", rewards=rewards, refresh_on=("blocks",))

    return router
