"""Agent-key routes over the live state: ``GET /v1/agents/{address}`` (``bastion.core.agents``)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from bastion.api import models
from bastion.api.context import ApiContext
from bastion.core.messages import normalize_address
from bastion.presentation import describe_agent_grants


def agent_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/agents/{address}``."""
    router = APIRouter()
    node = ctx.node

    @router.get("/v1/agents/{address}", response_model=models.Agents, tags=["accounts"])
    def agents(address: str) -> Any:
        """The agent keys ``address`` authorised (``agents``: what each may do, on which
        subaccounts, until when, and whether it is in force now) and the owners it is itself an agent
        of (``acting_for``). An address with neither answers two empty lists."""
        address = normalize_address(address, field="address")
        with node.lock:
            state = node.state
            acting_for = [grant for owner in state.agent_owners.get(address, {})
                          for grant in describe_agent_grants(state, owner) if grant["agent"] == address]
            return {"height": state.height, "owner": address, "agents": describe_agent_grants(state, address),
                    "acting_for": acting_for}
    return router
