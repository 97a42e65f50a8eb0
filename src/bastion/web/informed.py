"""The informed-governance parts of the pages (issue 20): the telemetry page (``/telemetry``), the
telemetry snapshots a proposal cites, the counter-reports against a proposal's stress gate, and the
scheduled upgrade, shown on the governance page."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from bastion.core.errors import ProtocolError
from bastion.core.units import format_ppm, format_usdc
from bastion.telemetry import TelemetryBusy, TelemetryStore, take_snapshot
from bastion.web.context import PageContext

__all__ = ["describe_cited_snapshot", "describe_counter_report", "describe_snapshot", "describe_upgrade_banner",
           "telemetry_page_routes"]


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


def describe_counter_report(report: dict[str, Any]) -> dict[str, Any]:
    """One counter-report (``counter_reports.describe_counter_reports``) for people: its figures as
    decimal USDC and fractions, the council's judgements in member order, and ``holds`` while it
    keeps its proposal from executing whatever the council attests (not judged "not reproduced" and
    no answering report named yet; once answered, the proposal executes only on the stress gate of
    that report, ``council_rules.check_counter_reports``)."""
    return {**report, "bond": format_usdc(report["bond_usdc"]),
            "depletion_probability": format_ppm(report["depletion_probability_ppm"]),
            "var99_loss": format_usdc(report["var99_loss_usdc"]), "es99_loss": format_usdc(report["es99_loss_usdc"]),
            "insurance_funds_total": format_usdc(report["insurance_funds_total_usdc"]),
            "judgements": [{"member": member, "reproduced": verdict}
                           for member, verdict in report["judge_votes"].items()],
            "holds": report["status"] != "rejected" and report["answer_hash"] is None}


def describe_upgrade_banner(upgrade: dict[str, Any], head_height: int) -> dict[str, Any] | None:
    """The scheduled upgrade (``upgrades.describe_upgrade`` with the node's code hash) for the banner
    of the governance page: None when nothing is scheduled, else the plan with the blocks left and
    whether this node runs the named code (``node_ready``) or will stop before the height."""
    if not upgrade["scheduled"]:
        return None
    return {**upgrade, "blocks_left": max(upgrade["height"] - head_height, 0)}


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
