"""The staking page (``/staking``): the insurance funds' staked and protocol-owned parts, share
prices and their history, the stakers' fee APR over a window, targets and gaps, and the viewer's
stakes and unstake requests with their cooldown (``bastion.core.staking``; the same figures as
``GET /v1/staking``, ``bastion.api.routes.staking``)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from bastion.api.routes.staking import DEFAULT_WINDOW_S, describe_sample, fee_apr, history_of
from bastion.core.staking import format_staking_params
from bastion.presentation import describe_staking
from bastion.web.context import PageContext

__all__ = ["staking_page_routes"]


def staking_page_routes(ctx: PageContext) -> APIRouter:
    """``GET /staking``."""
    router = APIRouter()
    node, who, render = ctx.node, ctx.who, ctx.render
    history = history_of(node)

    @router.get("/staking", include_in_schema=False, response_class=HTMLResponse)
    def staking_page(request: Request) -> HTMLResponse:
        _, owner = who(request)
        with node.lock:
            state = node.state
            described, params, now_ms = describe_staking(state), format_staking_params(state.insurance_staking), \
                state.time_ms
        pools = described["pools"]
        for pool, entry in pools.items():
            entry["fee_apr"] = fee_apr(history.of(pool), now_ms, DEFAULT_WINDOW_S * 1_000)
        series = {pool: [describe_sample(s) for s in history.of(pool)] for pool in pools}
        chart = {"data": [{"type": "scatter", "mode": "lines+markers", "name": pool,
                           "x": [s["time"] for s in samples], "y": [s["share_price"] for s in samples]}
                          for pool, samples in series.items() if samples],
                 "layout": {"height": 240, "margin": {"l": 70, "r": 10, "t": 10, "b": 40},
                            "yaxis": {"title": "USDC per share"}}}
        stakes = [s for s in described["stakes"] if s["owner"] == owner]
        requests = [{**r, "ready": r["available_ms"] <= now_ms} for r in described["unstake_requests"]
                    if r["owner"] == owner]
        return render(request, "staking.html", "/staking", pools=pools, params=params, chart=chart, stakes=stakes,
                      requests=requests, window_days=DEFAULT_WINDOW_S // 86_400,
                      refresh_on=("blocks",))

    return router
