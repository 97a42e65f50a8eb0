"""History routes, from the read models (at the ``indexed_height`` they return): trades, candles,
funding ticks, orders, fills, funding payments and liquidations, in pages (``next_cursor``)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from bastion.api import models
from bastion.api.context import INT64, MAX_ROWS, NUMBER, ApiContext, height_seq, market_grid
from bastion.api.context import NOT_FOUND as not_found
from bastion.api.views import get_market_or_404
from bastion.core.errors import ProtocolError
from bastion.core.messages import normalize_address
from bastion.node.readmodels import RESOLUTIONS
from bastion.presentation import format_row


def history_routes(ctx: ApiContext) -> APIRouter:
    """The read models' history endpoints."""
    router = APIRouter()
    node, reader = ctx.node, ctx.reader

    def rows(method: str, limit: int | None = None, **arguments: Any) -> dict[str, Any]:
        """A page of read-model rows, formatted outside the node's lock (``market_grid``); with
        ``limit``, ``next_cursor`` names the last row's place ((height, seq), or the order id)."""
        if limit is not None:
            arguments["limit"] = limit
        height, found = reader.query(method, **arguments)
        grid = market_grid(node)
        next_cursor = None
        if limit is not None and len(found) == limit:
            last = found[-1]
            next_cursor = str(last["order_id"]) if method == "orders" else f"{last['height']}.{last['seq']}"
        return {"indexed_height": height, "rows": [format_row(grid, row) for row in found],
                "next_cursor": next_cursor}

    def known_market(ticker: str | None) -> None:
        if ticker is not None:
            with node.lock:
                get_market_or_404(node.state, ticker)

    def optional_owner(owner: str | None) -> str | None:
        return None if owner is None else normalize_address(owner, field="owner")

    cursor_query = Query(None, max_length=48, description="the next_cursor of the previous page")

    @router.get("/v1/markets/{ticker}/trades", response_model=models.Rows, responses=not_found, tags=["history"])
    def trades(ticker: str, since_height: int = Query(0, ge=0, le=INT64),
               limit: int = Query(100, ge=1, le=MAX_ROWS), cursor: str | None = cursor_query) -> Any:
        """Fills of the market, oldest first from ``since_height``, ``limit`` a page."""
        known_market(ticker)
        return rows("fills", market=ticker, since_height=since_height, limit=limit, after=height_seq(cursor))

    @router.get("/v1/markets/{ticker}/candles", response_model=models.Rows, responses=not_found, tags=["history"])
    def candles(ticker: str, resolution: str = Query("1m", pattern="^(" + "|".join(RESOLUTIONS) + ")$"),
                start_ms: int | None = Query(None, ge=-INT64, le=INT64),
                end_ms: int | None = Query(None, ge=-INT64, le=INT64)) -> Any:
        """OHLC (prices), volume (size and quote) and trade count per bucket of block time."""
        known_market(ticker)
        return rows("candles", market=ticker, resolution=resolution, start_ms=start_ms, end_ms=end_ms)

    @router.get("/v1/markets/{ticker}/funding", response_model=models.Rows, responses=not_found, tags=["history"])
    def funding(ticker: str, limit: int = Query(MAX_ROWS, ge=1, le=MAX_ROWS),
                cursor: str | None = cursor_query) -> Any:
        """Hourly funding ticks: 8-hour rate, samples, index change; oldest first, ``limit`` a page."""
        known_market(ticker)
        return rows("funding_ticks", market=ticker, limit=limit, after=height_seq(cursor))

    @router.get("/v1/orders", response_model=models.Rows, responses=not_found, tags=["history"])
    def orders(owner: str | None = None, number: int | None = Query(None, **NUMBER), market: str | None = None,
               status: str | None = None, limit: int = Query(100, ge=1, le=MAX_ROWS),
               cursor: str | None = cursor_query) -> Any:
        """Orders and their lifecycle (newest first), ``limit`` a page."""
        known_market(market)
        before = None
        if cursor is not None:
            if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 19):
                raise ProtocolError("invalid_cursor", "cursor must be the next_cursor of a previous page",
                                    field="cursor")
            before = int(cursor)
        return rows("orders", owner=optional_owner(owner), number=number, market=market, status=status, limit=limit,
                    before=before)

    @router.get("/v1/fills", response_model=models.Rows, responses=not_found, tags=["history"])
    def fills(owner: str | None = None, market: str | None = None, since_height: int = Query(0, ge=0, le=INT64),
              limit: int = Query(100, ge=1, le=MAX_ROWS), cursor: str | None = cursor_query) -> Any:
        """Fills, oldest first; ``owner`` as maker or taker; ``limit`` a page."""
        known_market(market)
        return rows("fills", owner=optional_owner(owner), market=market, since_height=since_height, limit=limit,
                    after=height_seq(cursor))

    @router.get("/v1/funding-payments", response_model=models.Rows, responses=not_found, tags=["history"])
    def funding_payments(owner: str | None = None, number: int | None = Query(None, **NUMBER),
                         market: str | None = None, limit: int = Query(MAX_ROWS, ge=1, le=MAX_ROWS),
                         cursor: str | None = cursor_query) -> Any:
        """Funding payments, oldest first, ``limit`` a page."""
        known_market(market)
        return rows("funding_payments", owner=optional_owner(owner), number=number, market=market, limit=limit,
                    after=height_seq(cursor))

    @router.get("/v1/liquidations", response_model=models.Rows, responses=not_found, tags=["history"])
    def liquidations(owner: str | None = None, market: str | None = None,
                     limit: int = Query(MAX_ROWS, ge=1, le=MAX_ROWS), cursor: str | None = cursor_query) -> Any:
        """Liquidations, deleveraging (ADL), bad debt and incomplete liquidations with their inputs;
        oldest first, ``limit`` a page."""
        known_market(market)
        return rows("liquidations", owner=optional_owner(owner), market=market, limit=limit,
                    after=height_seq(cursor))
    return router
