"""Governance routes over the live state: proposals (with the stress reports this node holds),
parameter history, vote concentration, the guardian, rollouts and the council."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from bastion.api import models
from bastion.api.context import NOT_FOUND as not_found
from bastion.api.context import ApiContext
from bastion.api.reports import describe_gate_reports
from bastion.api.views import (
    describe_concentration,
    describe_council_state,
    describe_guardian_state,
    describe_param_history,
    describe_proposals,
    describe_rollouts,
)
from bastion.core.errors import ProtocolError


def governance_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/governance/...``."""
    router = APIRouter()
    node, reports = ctx.node, ctx.reports

    @router.get("/v1/governance/proposals", response_model=models.Proposals, tags=["governance"])
    def proposals() -> Any:
        with node.lock:
            height, described = node.state.height, describe_proposals(node.state)
        for entry in described:
            describe_gate_reports(entry["stress_gate"], reports)
        return {"height": height, "proposals": described}

    @router.get("/v1/governance/proposals/{proposal_id}", response_model=models.ProposalAt, responses=not_found,
                tags=["governance"])
    def proposal(proposal_id: str) -> Any:
        """One proposal by its id or number: actions, risk class, tally, timeline, stress gate
        (attestations, passes against the threshold, open or not, and for each attested report hash
        whether this node holds the report, with links, its verdict and headline figures) and
        participation."""
        with node.lock:
            height, described = node.state.height, describe_proposals(node.state)
        for entry in described:
            if entry["proposal_id"] == proposal_id or str(entry["number"]) == proposal_id:
                describe_gate_reports(entry["stress_gate"], reports)
                return {"height": height, **entry}
        raise ProtocolError("unknown_proposal", f"no proposal {proposal_id!r}", field="proposal_id")

    @router.get("/v1/governance/parameters", response_model=models.ParameterHistory, tags=["governance"])
    def parameters() -> Any:
        """Every governed parameter change, oldest first (``state.param_history``)."""
        with node.lock:
            return {"height": node.state.height, "changes": describe_param_history(node.state)}

    @router.get("/v1/governance/concentration", response_model=models.Concentration, tags=["governance"])
    def concentration() -> Any:
        with node.lock:
            return describe_concentration(node.state)

    @router.get("/v1/governance/guardian", response_model=models.Guardian, tags=["governance"])
    def guardian() -> Any:
        """The guardian: address, expiry, pauses in force, pause keys spent this term."""
        with node.lock:
            return describe_guardian_state(node.state)

    @router.get("/v1/governance/rollouts", response_model=models.Rollouts, tags=["governance"])
    def rollouts() -> Any:
        """Every staged rollout (``state.rollouts``), in creation order."""
        with node.lock:
            return describe_rollouts(node.state)

    @router.get("/v1/governance/council", response_model=models.CouncilState, tags=["governance"])
    def council_state() -> Any:
        """The council: members, threshold, steward bounds, attestations, cooldowns, pending approvals."""
        with node.lock:
            return describe_council_state(node.state)
    return router
