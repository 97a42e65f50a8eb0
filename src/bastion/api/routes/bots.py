"""Bot-tool routes over the live state (issue 17): an owner's live TWAP orders with their progress,
its dead-man's switch, and the governed limits of both (``bastion.core.twap_orders``,
``bastion.core.deadman``, ``bastion.core.bot_limits``). Agent keys are ``routes.agents``."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from bastion.api import models
from bastion.api.context import MAX_ROWS, NUMBER, ApiContext
from bastion.api.context import NOT_FOUND as bad_request
from bastion.core.bot_limits import format_bot_limits
from bastion.core.errors import ProtocolError
from bastion.core.messages import normalize_address
from bastion.presentation import describe_cancel_schedule, describe_twap


def parse_id_cursor(cursor: str | None) -> int:
    """The id after which a page starts (-1 for the first page); ``invalid_cursor`` unless ``cursor``
    is a ``next_cursor`` (a decimal id)."""
    if cursor is None:
        return -1
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 19):
        raise ProtocolError("invalid_cursor", "cursor must be the next_cursor of a previous page", field="cursor")
    return int(cursor)


def bot_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/twaps/{owner}``, ``/v1/deadman/{owner}``, ``/v1/bot-limits``."""
    router = APIRouter()
    node = ctx.node

    @router.get("/v1/twaps/{owner}", response_model=models.TwapOrders, responses=bad_request, tags=["accounts"])
    def twap_orders(owner: str, number: int | None = Query(None, **NUMBER),
                    limit: int = Query(100, ge=1, le=MAX_ROWS),
                    cursor: str | None = Query(None, max_length=24,
                                               description="the next_cursor of the previous page")) -> Any:
        """The owner's live TWAP orders (of subaccount ``number``, or of all), by ``twap_id``, ``limit``
        a page: size, filled and remaining, slices done of all, the slippage guard and the block time
        of the next slice. A finished or cancelled TWAP is no longer live (its ``twap_finished`` event
        is in the block's events)."""
        owner = normalize_address(owner, field="owner")
        after = parse_id_cursor(cursor)
        with node.lock:
            state = node.state
            live = [t for t in state.twap_orders.values()   # in id order: ids only grow
                    if t.owner == owner and t.twap_id > after and (number is None or t.number == number)]
            page = [describe_twap(state, t) for t in live[:limit]]
            next_cursor = str(live[limit - 1].twap_id) if len(live) > limit else None
            return {"height": state.height, "twap_orders": page, "next_cursor": next_cursor}

    @router.get("/v1/deadman/{owner}", response_model=models.DeadmanSwitch, responses=bad_request, tags=["accounts"])
    def deadman(owner: str) -> Any:
        """The owner's dead-man's switch: armed or not, the block time it fires at, its firings today
        and the governed limits (an owner that never armed one answers ``armed: false``)."""
        owner = normalize_address(owner, field="owner")
        with node.lock:
            return {"height": node.state.height, **describe_cancel_schedule(node.state, owner)}

    @router.get("/v1/bot-limits", response_model=models.BotLimits, tags=["governance"])
    def bot_limits() -> Any:
        """The bot tools' governed limits in force (genesis ``bot_limits`` form; ``set_bot_limits``
        changes them)."""
        with node.lock:
            return {"height": node.state.height, "limits": format_bot_limits(node.state.bot_limits)}
    return router
