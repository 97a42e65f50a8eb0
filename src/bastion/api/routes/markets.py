"""Market routes over the live state: ``/v1/markets[/{ticker}]`` and the book."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from bastion.api import models
from bastion.api.context import NOT_FOUND as not_found
from bastion.api.context import ApiContext
from bastion.api.views import describe_book, describe_market, get_market_or_404


def market_routes(ctx: ApiContext) -> APIRouter:
    """The markets, one market, its book."""
    router = APIRouter()
    node = ctx.node

    @router.get("/v1/markets", response_model=models.Markets, tags=["markets"])
    def markets() -> Any:
        with node.lock:
            state = node.state
            return {"height": state.height, "markets": [describe_market(state, m) for m in state.markets.values()]}

    @router.get("/v1/markets/{ticker}", response_model=models.Market, responses=not_found, tags=["markets"])
    def market(ticker: str) -> Any:
        with node.lock:
            return {"height": node.state.height, **describe_market(node.state, get_market_or_404(node.state, ticker))}

    @router.get("/v1/markets/{ticker}/book", response_model=models.Book, responses=not_found, tags=["markets"])
    def book(ticker: str, depth: int = Query(20, ge=1, le=500)) -> Any:
        """Aggregated price levels, best first."""
        with node.lock:
            return describe_book(node.state, get_market_or_404(node.state, ticker), depth)
    return router
