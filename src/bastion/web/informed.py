"""The informed-governance parts of the pages (issue 20): the telemetry page (``/telemetry``) and the
telemetry snapshots a proposal cites, shown beside it on the governance page."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from bastion.core.errors import ProtocolError
from bastion.core.units import format_ppm, format_usdc
from bastion.telemetry import TelemetryBusy, TelemetryStore, take_snapshot
from bastion.web.context import PageContext

__all__ = ["describe_cited_snapshot", "describe_snapshot", "telemetry_page_routes"]


def describe_snapshot(document: dict[str, Any]) -> dict[str, Any]:
    """A telemetry snapshot for people: ratios as decimal fractions, volumes in USDC, one row per market."""
    def ratio(value: int | None) -> str | None:
        return None if value is None else format_ppm(value)
    rows = []
    for ticker, m in sorted(document["markets"].items()):
        rows.append({**m, "market": ticker, "fill_volume": format_usdc(m["fill_volume_usdc"]),
                     "order_to_trade": ratio(m["order_to_trade_ppm"]), "cancel_ratio": ratio(m["cancel_ratio_ppm"]),
                     "two_sided": len(m["two_sided_owners"]), "clusters": len(m["liquidation_clusters"])})
    governance = document["governance"]
    return {"epoch": document["epoch"], "markets": rows,
            "governance": {**governance, "top1_share": ratio(governance["top1_share_ppm"]),
                           "top5_share": ratio(governance["top5_share_ppm"]),
                           "proposals": [{**p, "turnout": ratio(p["turnout_ppm"])} for p in governance["proposals"]]}}


def describe_cited_snapshot(store: TelemetryStore, digest: str) -> dict[str, Any]:
    """A proposal's cited snapshot: its hash and, when this node holds it, its figures."""
    document = store.get(digest)
    return {"hash": digest, "held": document is not None,
            "snapshot": None if document is None else describe_snapshot(document)}


def telemetry_page_routes(ctx: PageContext) -> APIRouter:
    """``GET /telemetry``: a snapshot of the latest epoch (or ``?start_height=&end_height=``), its hash
    to cite in a proposal's evidence."""
    router = APIRouter()

    @router.get("/telemetry", include_in_schema=False, response_class=HTMLResponse)
    def telemetry_page(request: Request, start_height: int | None = None,
                       end_height: int | None = None) -> HTMLResponse:
        error, digest, snapshot = None, None, None
        try:
            digest, document = take_snapshot(ctx.node, ctx.telemetry, ctx.suggestions, start_height, end_height)
            snapshot = describe_snapshot(document)
        except ProtocolError as refused:
            error = f"{refused.code}: {refused.message}"
        except TelemetryBusy as busy:
            error = str(busy)
        return ctx.render(request, "telemetry.html", "/telemetry", digest=digest, snapshot=snapshot, error=error)
    return router
