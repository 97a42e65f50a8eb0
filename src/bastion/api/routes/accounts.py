"""Account routes over the live state: subaccounts and their open orders, the insurance funds, and
the order preview (``bastion.api.preview``)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query

from bastion.api import models
from bastion.api.context import MAX_ROWS, NUMBER, ApiContext
from bastion.api.context import NOT_FOUND as not_found
from bastion.api.preview import preview_order
from bastion.api.views import describe_insurance_funds, describe_subaccount, get_subaccount_or_404, page_open_orders
from bastion.core.messages import normalize_address
from bastion.core.state import SUBACCOUNT_NUMBERS
from bastion.telemetry import record_suggestion


def account_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/subaccounts/{owner}[/{number}[/orders]]``."""
    router = APIRouter()
    node = ctx.node

    @router.get("/v1/subaccounts/{owner}", response_model=models.Subaccounts, responses=not_found, tags=["accounts"])
    def subaccounts(owner: str) -> Any:
        owner = normalize_address(owner, field="owner")
        with node.lock:
            state = node.state
            return {"height": state.height,
                    "subaccounts": [describe_subaccount(state, state.subaccounts[(owner, n)])
                                    for n in SUBACCOUNT_NUMBERS if (owner, n) in state.subaccounts]}

    @router.get("/v1/subaccounts/{owner}/{number}", response_model=models.Subaccount, responses=not_found,
                tags=["accounts"])
    def subaccount(owner: str, number: int = Path(**NUMBER)) -> Any:
        """Balance, equity, IMR, MMR, free collateral; positions with entry price, unrealised PnL and
        liquidation price (``bastion.api.risk``)."""
        owner = normalize_address(owner, field="owner")
        with node.lock:
            return describe_subaccount(node.state, get_subaccount_or_404(node.state, owner, number))

    @router.get("/v1/subaccounts/{owner}/{number}/orders", response_model=models.OpenOrders, responses=not_found,
                tags=["accounts"])
    def open_orders(owner: str, number: int = Path(**NUMBER), limit: int = Query(MAX_ROWS, ge=1, le=MAX_ROWS),
                    cursor: str | None = Query(None, max_length=32)) -> Any:
        """Open orders from the live state: resting ones by order id, then untriggered conditional
        ones, ``limit`` a page; ``next_cursor`` (null on the last page) is the ``cursor`` of the next
        page. The node's lock is held only to copy the ids and describe this page."""
        owner = normalize_address(owner, field="owner")
        with node.lock:
            sub = get_subaccount_or_404(node.state, owner, number)
            orders, next_cursor = page_open_orders(node.state, sub, limit, cursor)
            return {"height": node.state.height, "orders": orders, "next_cursor": next_cursor}
    return router


def fund_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/insurance-funds``."""
    router = APIRouter()
    node = ctx.node

    @router.get("/v1/insurance-funds", response_model=models.InsuranceFunds, tags=["risk"])
    def insurance_funds() -> Any:
        with node.lock:
            return describe_insurance_funds(node.state)
    return router


def preview_routes(ctx: ApiContext) -> APIRouter:
    """``POST /v1/preview/order`` (no signature)."""
    router = APIRouter()
    node = ctx.node

    @router.post("/v1/preview/order", response_model=models.Preview, responses=not_found, tags=["accounts"])
    def preview(request: models.PreviewRequest) -> Any:
        """An order's effect on margin, new liquidation prices and the isolation suggestion
        (``bastion.api.preview``); no signature."""
        owner = normalize_address(request.owner, field="owner")
        with node.lock:
            answer = preview_order(node.state, owner=owner, subaccount=request.subaccount, market=request.market,
                                   side=request.side, size=request.size, price=request.price,
                                   reduce_only=request.reduce_only, isolated_amount=request.isolated_amount)
        record_suggestion(ctx.suggestions, owner, answer)
        return answer
    return router
