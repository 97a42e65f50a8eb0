"""Maker-reward routes over the live state: ``GET /v1/rewards`` (``bastion.core.maker_rewards``)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from bastion.api import models
from bastion.api.context import ApiContext
from bastion.core.messages import normalize_address
from bastion.presentation import describe_maker_rewards


def reward_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/rewards`` and ``/v1/rewards/{address}``."""
    router = APIRouter()
    node = ctx.node

    @router.get("/v1/rewards", response_model=models.MakerRewards, tags=["rewards"])
    def rewards() -> Any:
        """The maker-reward pool and parameters, the running epoch and its leaderboard: each maker's
        score (weighted two-sided depth x time in market, per market), its share of the total and the
        reward it would get if the epoch closed now (docs/protocol.md "Maker rewards")."""
        with node.lock:
            return describe_maker_rewards(node.state)

    @router.get("/v1/rewards/{address}", response_model=models.MakerRewards, tags=["rewards"])
    def rewards_of(address: str) -> Any:
        """``/v1/rewards`` with only ``address``'s rows on the leaderboard (ranks of the whole board)."""
        address = normalize_address(address, field="address")
        with node.lock:
            return describe_maker_rewards(node.state, address)
    return router
