"""Dispute routes (issue 18, ``bastion.core.disputes``): ``GET /v1/disputes``, ``/v1/disputes/{id}``,
``/v1/disputes/{id}/check`` (the disputed block replayed from the node's log,
``bastion.node.dispute_check``), ``/v1/dispute-targets`` and ``/v1/incidents``. Disputes are opened,
ruled, appealed and claimed with signed messages through ``POST /v1/tx``."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bastion.api import models
from bastion.api.context import MAX_ROWS, NOT_FOUND, ApiContext
from bastion.api.routes.bots import parse_id_cursor
from bastion.core.errors import ProtocolError
from bastion.core.messages import normalize_address
from bastion.node.dispute_check import CheckBusy, describe_dispute, describe_program, describe_target


class DisputeView(BaseModel):
    """A dispute: claim, bond, council votes, ruling, appeal, outcome, timeline and its target."""

    model_config = ConfigDict(extra="allow")
    dispute_id: int
    status: str = Field(description="open | ruled | appealed | escalated | upheld | rejected")
    owner: str
    market: str
    claim_kind: str
    claim: str = Field(description="USDC")


class Disputes(BaseModel):
    height: int
    disputes: list[DisputeView]
    next_cursor: str | None = Field(None, description="pass as cursor for the next page; null on the last")


class DisputeTargets(BaseModel):
    height: int
    targets: list[dict[str, Any]] = Field(description="recorded liquidations, takeovers, deleveragings and "
                                                      "settlements still kept, oldest first")
    next_cursor: str | None = Field(None, description="pass as cursor for the next page; null on the last")


class DisputeCheck(BaseModel):
    """The disputed block replayed: ``deviation`` is true when the recorded outcome differs from the rules'."""

    model_config = ConfigDict(extra="allow")
    dispute_id: int
    deviation: bool
    state_hash_matches: bool
    recorded: list[dict[str, Any]]
    replayed: list[dict[str, Any]]
    evidence: dict[str, Any]


class Incidents(BaseModel):
    height: int
    programs: list[dict[str, Any]]


def page_by_id(records: dict[int, Any], after: int, limit: int,
               keep: Callable[[Any], bool]) -> tuple[list[Any], str | None]:
    """One page of ``records`` (keyed by increasing id, in id order): the first ``limit`` kept
    records whose id is above ``after``, and the ``next_cursor`` (the last id shown) when more follow."""
    ids = [key for key, record in records.items() if key > after and keep(record)]
    page = [records[key] for key in ids[:limit]]
    return page, str(ids[limit - 1]) if len(ids) > limit else None


def dispute_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/disputes``, ``/v1/disputes/{id}``, ``/v1/disputes/{id}/check``, ``/v1/dispute-targets``,
    ``/v1/incidents``."""
    router = APIRouter()
    node = ctx.node

    @router.get("/v1/disputes", response_model=Disputes, responses=NOT_FOUND, tags=["disputes"])
    def disputes(owner: str | None = Query(None, description="only this owner's disputes"),
                 limit: int = Query(100, ge=1, le=MAX_ROWS),
                 cursor: str | None = Query(None, max_length=24,
                                            description="the next_cursor of the previous page")) -> Any:
        """The disputes in opening order (or only ``owner``'s), ``limit`` per page."""
        wanted = None if owner is None else normalize_address(owner, field="owner")
        after = parse_id_cursor(cursor)
        with node.lock:
            state = node.state
            page, next_cursor = page_by_id(state.disputes.disputes, after, limit,
                                           lambda d: wanted is None or d.owner == wanted)
            return {"height": state.height, "disputes": [describe_dispute(state, d) for d in page],
                    "next_cursor": next_cursor}

    @router.get("/v1/disputes/{dispute_id}", response_model=DisputeView, responses=NOT_FOUND, tags=["disputes"])
    def dispute(dispute_id: int) -> Any:
        """One dispute (``unknown_dispute``, 404, if there is none)."""
        with node.lock:
            state = node.state
            found = state.disputes.disputes.get(dispute_id)
            if found is None:
                raise ProtocolError("unknown_dispute", f"no dispute {dispute_id}", field="dispute_id")
            return describe_dispute(state, found)

    @router.get("/v1/disputes/{dispute_id}/check", response_model=DisputeCheck, tags=["disputes"], responses={
        **NOT_FOUND, 429: {"model": models.Error, "description": "another check is replaying a block (check_busy)"}})
    def check(dispute_id: int) -> Any:
        """Replay the disputed block from the node's log and compare the target's recorded events with
        the rules' (an engine-deviation claim is decided by this, not by opinion), with the evidence:
        the block's oracle submissions and price, the book before the block, the risk inputs and the
        waterfall rung. One replay at a time per node (429 ``check_busy`` meanwhile); an answer is kept
        and served again."""
        with node.lock:
            found = node.state.disputes.disputes.get(dispute_id)
        if found is None:
            raise ProtocolError("unknown_dispute", f"no dispute {dispute_id}", field="dispute_id")
        try:
            return {"dispute_id": dispute_id, **ctx.dispute_checks.check(found)}
        except CheckBusy:                  # one replay at a time per node (DisputeChecks)
            return JSONResponse({"code": "check_busy", "message": "another dispute check is replaying a block; "
                                 "try again", "field": None}, status_code=429)

    @router.get("/v1/dispute-targets", response_model=DisputeTargets, responses=NOT_FOUND, tags=["disputes"])
    def targets(owner: str | None = Query(None, description="only the targets of this owner"),
                limit: int = Query(100, ge=1, le=MAX_ROWS),
                cursor: str | None = Query(None, max_length=24,
                                           description="the next_cursor of the previous page")) -> Any:
        """The targets a dispute may name (kept ``record_retention``), each with its loss and deadline,
        ``limit`` per page."""
        wanted = None if owner is None else normalize_address(owner, field="owner")
        after = parse_id_cursor(cursor)
        with node.lock:
            state = node.state
            page, next_cursor = page_by_id(state.disputes.targets, after, limit,
                                           lambda t: wanted is None or t.owner == wanted)
            return {"height": state.height, "targets": [describe_target(state, t) for t in page],
                    "next_cursor": next_cursor}

    @router.get("/v1/incidents", response_model=Incidents, tags=["disputes"])
    def incidents() -> Any:
        """Every incident program: window, reference rule, budget, escrow and what is left to claim."""
        with node.lock:
            state = node.state
            return {"height": state.height,
                    "programs": [describe_program(state, p) for p in state.disputes.programs.values()]}
    return router
