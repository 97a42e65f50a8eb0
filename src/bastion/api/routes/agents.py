"""Agent-key routes over the live state: ``GET /v1/agents/{address}`` (``bastion.core.agents``)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from bastion.api import models
from bastion.api.context import MAX_ROWS, ApiContext
from bastion.api.context import NOT_FOUND as bad_request
from bastion.core.messages import normalize_address
from bastion.presentation import describe_agent_grants


def agent_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/agents/{address}``."""
    router = APIRouter()
    node = ctx.node

    @router.get("/v1/agents/{address}", response_model=models.Agents, responses=bad_request, tags=["accounts"])
    def agents(address: str, limit: int = Query(100, ge=1, le=MAX_ROWS),
               cursor: str | None = Query(None, max_length=42, description="the next_cursor of the previous page "
                                                                          "(of acting_for)")) -> Any:
        """The agent keys ``address`` authorised (``agents``: what each may do, on which
        subaccounts, until when, and whether it is in force now; at most the governed
        ``agent_max_per_owner`` in force, plus expired ones until the owner's next authorisation)
        and, ``limit`` a page by owner address, the owners it is itself an agent of (``acting_for``).
        An address with neither answers two empty lists. A revoked grant is gone from the state (its
        ``agent_revoked`` event stays in its block)."""
        address = normalize_address(address, field="address")
        after = "" if cursor is None else normalize_address(cursor, field="cursor")
        with node.lock:
            state = node.state
            owners = sorted(owner for owner in state.agent_owners.get(address, {}) if owner > after)
            acting_for = [grant for owner in owners[:limit]
                          for grant in describe_agent_grants(state, owner) if grant["agent"] == address]
            return {"height": state.height, "owner": address, "agents": describe_agent_grants(state, address),
                    "acting_for": acting_for, "next_cursor": owners[limit - 1] if len(owners) > limit else None}
    return router
