"""What the web UI's routers share (``PageContext``): the node, its read models and report store, the
signing shape, the demo's features if any (``bastion.web.features``), and the page helpers
(who acts, history rows, rendering a template).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from bastion.core.errors import ProtocolError
from bastion.core.messages import normalize_address
from bastion.core.timefmt import format_iso_ms
from bastion.presentation import format_row
from bastion.signing import DOMAIN_NAME, ENVELOPE_TYPES, SIGNING_VERSION, compute_chain_number
from bastion.web.features import DemoFeatures
from bastion.web.formatting import install_filters
from bastion.web.timeline import Timeline

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
install_filters(TEMPLATES.env)
PAGES = (("/", "Markets"), ("/trade/BTC-USD", "Trade"), ("/portfolio", "Portfolio"), ("/governance", "Governance"),
         ("/risk", "Risk"), ("/liquidations", "Liquidations"), ("/staking", "Staking"),
         ("/disputes", "Disputes"), ("/telemetry", "Telemetry"), ("/rewards", "Rewards"))
FAUCET_USDC = "10000"
DEMO_WAIT_S = 5.0
RECENT_BLOCKS = 2_400      # trades shown: fills from the last ten minutes of 250 ms blocks
CANDLES_SHOWN = 120
ORDERS_SHOWN = 200  # open orders shown per subaccount (the first page: GET .../orders pages the rest)
DEPTH_CHART_LEVELS = 40  # book levels a side in the trade page's depth chart (its book subscription's depth)


class PageContext:
    """The pages' view of the API ``app`` (built by ``bastion.app.create_app``, whose state holds
    the node, config, reader, report store and intake) and of the demo, if one was given."""

    def __init__(self, app: FastAPI, demo: DemoFeatures | None) -> None:
        self.node, self.config, self.reader = app.state.node, app.state.config, app.state.reader
        self.accept, self.reports = app.state.accept, app.state.reports
        self.suggestions, self.telemetry = app.state.suggestions, app.state.telemetry
        self.dispute_checks = app.state.dispute_checks
        self.chain_id = self.node.state.chain_id
        self.demo = demo
        self.demo_traders: Mapping[str, str] = dict(demo.traders) if demo is not None else {}
        self.signing = {"domain": {"name": DOMAIN_NAME, "version": SIGNING_VERSION,
                                   "chainId": compute_chain_number(self.chain_id)},
                        "types": ENVELOPE_TYPES}

    def who(self, request: Request) -> tuple[str | None, str | None]:
        """(signer, owner) from the page-level selector's cookies; demo mode defaults to its first
        trader (alice)."""
        demo_traders = self.demo_traders
        # app.js writes the values URL-encoded (``demo%3Abob``): compare them decoded
        signer = unquote(request.cookies.get("bastion_signer") or "")
        owner = unquote(request.cookies.get("bastion_owner") or "")
        if signer and signer.startswith("demo:") and signer[5:] in demo_traders:
            return signer, demo_traders[signer[5:]]
        if signer == "wallet" and owner:
            try:
                return signer, normalize_address(owner, field="owner")
            except ProtocolError:
                return None, None
        if demo_traders:
            first = next(iter(demo_traders))
            return f"demo:{first}", demo_traders[first]
        return None, None

    def history(self, method: str, **arguments: Any) -> tuple[int | None, list[dict]]:
        """Rows of a read-model query formatted for display (``bastion.presentation.format_row``) and
        the indexed height; ``(None, [])`` when the node keeps no read models."""
        node = self.node
        try:
            height, rows = self.reader.query(method, **arguments)
        except ProtocolError:
            return None, []
        with node.lock:
            return height, [format_row(node.state, row) for row in rows]

    def render(self, request: Request, template: str, active: str, *, subscriptions: Sequence[dict[str, Any]] = (),
               refresh_on: tuple[str, ...] = ("blocks",), **context: Any) -> HTMLResponse:
        """A page: ``template`` with the header's height, time, signer, the live-update settings and the
        ``timeline`` (block heights as times, ``bastion.web.timeline``)."""
        node, chain_id, signing, demo_traders = self.node, self.chain_id, self.signing, self.demo_traders
        signer, owner = self.who(request)
        with node.lock:
            height, time_text = node.state.height, format_iso_ms(node.state.time_ms)
            timeline = Timeline.of(node)  # heights as block times (bastion.web.timeline)
        settings = {"chain_id": chain_id, "signer": signer, "owner": owner, "signing": signing,
                    "demo": bool(demo_traders), "demo_traders": dict(demo_traders),
                    "subscriptions": [{"channel": "blocks"}, *subscriptions], "refresh_on": list(refresh_on)}
        return TEMPLATES.TemplateResponse(request, template, {
            "pages": PAGES, "active": active, "height": height, "time": time_text, "chain_id": chain_id,
            "timeline": timeline,
            "signer": signer, "owner": owner, "demo_traders": dict(demo_traders),
            "demo_label": self.demo.label if self.demo is not None and demo_traders else None,
            "settings": settings, **context})
