"""Stress report routes (off-chain, content-addressed, ``bastion.api.reports``): upload a report,
read its canonical bytes, read its self-contained HTML page."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from bastion.api import models
from bastion.api.context import NOT_FOUND as not_found
from bastion.api.context import ApiContext
from bastion.api.reports import report_url

# a served stress report page runs its inline script and styles and reaches nothing on the network
REPORT_PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                      "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'; "
                      "frame-ancestors 'none'")


def stress_report_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/stress/reports[/{hash}[/html]]``."""
    router = APIRouter()
    config, reports, report_limiter, read_json = ctx.config, ctx.reports, ctx.report_limiter, ctx.read_json

    report_hash_path = Path(pattern="^[0-9a-f]{64}$", description="SHA-256 hex of the report's canonical bytes",
                            examples=[models.REPORT_EXAMPLE])

    @router.post("/v1/stress/reports", status_code=201, response_model=models.ReportStored, tags=["stress"],
                 responses={200: {"model": models.ReportStored, "description": "already held (nothing written)"},
                            400: {"model": models.Error, "description": "not JSON, or not a valid report "
                                                                        "(invalid_report, with the field)"},
                            413: {"model": models.Error, "description": "body too large"},
                            429: {"model": models.Error, "description": "rate limited (per client address)"}},
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/StressReportDocument"}}}}})
    async def upload_report(request: Request) -> Any:
        """Store a stress report (the ``report.json`` of ``bastion stress``) by its hash: the node
        checks it (``stress.report.check_report_document``: shape, summary and verdict rebuilt from
        the scenarios), recomputes its canonical bytes and ``report_hash`` and keeps them off-chain
        (``bastion.api.reports``). No signature: the hash names the bytes, so what is stored under a
        hash is the report with that hash, whoever sent it. 201 stored now, 200 already held."""
        report_limiter.take(f"address:{request.client.host if request.client else 'unknown'}")
        document = await read_json(request, config.max_report_bytes)
        report_hash, created, stored = await run_in_threadpool(reports.put, document)
        return JSONResponse({"report_hash": report_hash, "stored": True, "created": created,
                             "verdict": "pass" if stored["verdict"]["passed"] else "fail",
                             "url": report_url(report_hash), "html_url": f"{report_url(report_hash)}/html"},
                            status_code=201 if created else 200)

    @router.get("/v1/stress/reports/{report_hash}", response_model=models.StressReportDocument,
                responses=not_found, tags=["stress"])
    def stress_report(report_hash: str = report_hash_path) -> Any:
        """A held report's canonical bytes (``sha256`` of the body is ``report_hash``);
        404 ``report_not_found`` when this node does not hold it."""
        data = reports.read_bytes(report_hash)
        if data is None:
            reports.get(report_hash)  # raises report_not_found
        return Response(data, media_type="application/json")

    @router.get("/v1/stress/reports/{report_hash}/html", response_class=HTMLResponse, tags=["stress"],
                responses={200: {"content": {"text/html": {"schema": {"type": "string"}}},
                                 "description": "the self-contained HTML report"},
                           **{status: {"description": description, "content": {"application/json": {"schema": {
                               "$ref": "#/components/schemas/Error"}}}}
                              for status, description in ((404, "not held here (report_not_found)"),
                                                          (400, "not a report hash"))}})
    async def stress_report_html(report_hash: str = report_hash_path) -> Any:
        """The report's self-contained HTML page (plotly inline, nothing loaded from anywhere),
        drawn from the stored document: the plots that need the stressed state (price paths, funds
        over time) are left out and the page says how to draw them (``bastion stress --out``).
        Served with a Content-Security-Policy that allows no network access."""
        page = await run_in_threadpool(reports.render_html, report_hash)
        return HTMLResponse(page, headers={"Content-Security-Policy": REPORT_PAGE_POLICY})
    return router
