"""The challengeable stress gate and scheduled upgrades (issue 20): a registered report recomputed
from this node's chain (``bastion.stress.verify``), the counter-reports against proposals
(``bastion.core.governance.counter_reports``) and the scheduled upgrade against this node's code
(``bastion.core.upgrades``)."""
from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from bastion.api import models
from bastion.api.context import NOT_FOUND as not_found
from bastion.api.context import ApiContext
from bastion.core.governance.counter_reports import describe_counter_reports
from bastion.core.upgrades import describe_upgrade


def gate_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/stress/reports/{hash}/verify``, ``/v1/governance/counter-reports``, ``/v1/upgrade``."""
    router = APIRouter()
    node, reports = ctx.node, ctx.reports
    one_at_a_time = threading.Lock()   # a verification runs a whole sweep: one at a time per node

    @router.get("/v1/stress/reports/{report_hash}/verify", response_model=models.ReportVerification,
                tags=["stress"], responses={
                    **not_found,
                    422: {"model": models.Error, "description": "cannot be recomputed here (report_not_verifiable: "
                                                                "a scenario set other than the shipped one, a state "
                                                                "no attested proposal gives)"},
                    429: {"model": models.Error, "description": "another verification is running (verify_busy)"}})
    async def verify(report_hash: str = Path(pattern="^[0-9a-f]{64}$", examples=[models.REPORT_EXAMPLE])) -> Any:
        """Recompute a report this node holds from this node's chain (the state at the report's
        height rebuilt from the log, the shipped gate set with the report's seed, the thresholds it
        names) and compare the bytes (``bastion stress --verify``, which also takes other scenario
        sets). One verification at a time, on one process; the answer's ``reproduced`` is the
        verdict (200 either way)."""
        from bastion.stress.verify import VerifyInputError, verify_report

        reports.get(report_hash)  # report_not_found (404) unless held here
        if not one_at_a_time.acquire(blocking=False):
            return JSONResponse({"code": "verify_busy", "message": "another verification is running; try again",
                                 "field": None}, status_code=429)
        try:
            return await run_in_threadpool(verify_report, report_hash, node.data_dir, workers=1)
        except VerifyInputError as error:
            return JSONResponse({"code": "report_not_verifiable", "message": str(error), "field": "report_hash"},
                                status_code=422)
        finally:
            one_at_a_time.release()

    @router.get("/v1/governance/counter-reports", response_model=models.CounterReports, tags=["governance"])
    def counter_reports() -> Any:
        """Every counter-report in posting order: its proposal, poster, figures, bond, the council's
        judgements, its status (open | reproduced | rejected) and the answering report."""
        with node.lock:
            return {"height": node.state.height, "counter_reports": describe_counter_reports(node.state)}

    @router.get("/v1/upgrade", response_model=models.ScheduledUpgrade, tags=["chain"])
    def upgrade() -> Any:
        """The upgrade governance scheduled (``schedule_upgrade``) and whether this node, running the
        code ``node_code_hash``, will apply the blocks from its height."""
        with node.lock:
            described = describe_upgrade(node.state, node.code_hash)
            height = node.state.height
        described["upgrade_height"] = described.pop("height")
        return {"height": height, **described}

    return router
