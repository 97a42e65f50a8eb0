"""The disputes pages (issue 18): ``/disputes`` (every dispute, the targets still open to dispute and
the incident programs) and ``/disputes/{id}`` (one dispute's claim, timeline and ruling, and its
evidence: the block's oracle submissions and price, the book before the block, the risk inputs and
the waterfall rung, from ``bastion.node.dispute_check``, which replays the block from the log)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from bastion.core.errors import ProtocolError
from bastion.node.dispute_check import CheckBusy, describe_dispute, describe_program, describe_target
from bastion.web.context import PageContext


def dispute_page_routes(ctx: PageContext) -> APIRouter:
    """``/disputes`` and ``/disputes/{id}``."""
    router = APIRouter()
    node, render = ctx.node, ctx.render

    @router.get("/disputes", include_in_schema=False, response_class=HTMLResponse)
    def disputes_page(request: Request) -> HTMLResponse:
        with node.lock:
            state = node.state
            disputes = [describe_dispute(state, d) for d in reversed(state.disputes.disputes.values())]
            targets = [describe_target(state, t) for t in reversed(state.disputes.targets.values())][:200]
            programs = [describe_program(state, p) for p in state.disputes.programs.values()]
            params = state.disputes.params
        return render(request, "disputes.html", "/disputes", disputes=disputes, targets=targets, programs=programs,
                      params=params)

    @router.get("/disputes/{dispute_id}", include_in_schema=False, response_class=HTMLResponse)
    def dispute_page(request: Request, dispute_id: int) -> HTMLResponse:
        with node.lock:
            state = node.state
            found = state.disputes.disputes.get(dispute_id)
            view = None if found is None else describe_dispute(state, found)
        if found is None or view is None:
            page = render(request, "not_found.html", "/disputes", what=f"dispute {dispute_id}")
            page.status_code = 404
            return page
        try:
            check = ctx.dispute_checks.check(found)
        except ProtocolError as error:   # a node without its log (in memory): the evidence is not available
            check = {"error": f"{error.code}: {error.message}"}
        except CheckBusy as busy:        # another replay is running (one at a time per node)
            check = {"error": str(busy)}
        return render(request, "dispute.html", "/disputes", dispute=view, check=check)

    return router
