"""Informed-governance routes (issue 20): misuse telemetry snapshots (``bastion.telemetry``) and each
proposal's voter exposure disclosure (``bastion.core.exposure``).

``GET /v1/telemetry`` computes the snapshot of an epoch (default: the last 1,000 blocks) from the
block log's events, keeps it (``TelemetryStore``) and answers it with its ``snapshot_hash``, the hash
a proposal cites in ``submit_proposal.evidence``; ``GET /v1/telemetry/{hash}`` answers a kept
snapshot; ``GET /v1/governance/proposals/{id}/exposure`` the disclosure of a proposal, by id or
number.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from bastion.api import models
from bastion.api.context import INT64, ApiContext
from bastion.api.context import NOT_FOUND as not_found
from bastion.api.views import describe_voter_exposure
from bastion.core.errors import ProtocolError
from bastion.core.state import Proposal, State
from bastion.telemetry import TelemetryBusy, take_snapshot


def find_proposal(state: State, reference: str) -> Proposal:
    """A proposal by its id or its number (``unknown_proposal`` otherwise)."""
    found = state.proposals.get(reference)
    if found is None:
        found = next((p for p in state.proposals.values() if str(p.number) == reference), None)
    if found is None:
        raise ProtocolError("unknown_proposal", f"no proposal {reference!r}", field="proposal_id")
    return found


def telemetry_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/telemetry[/{hash}]`` and ``/v1/governance/proposals/{id}/exposure``."""
    router = APIRouter()
    node, store, suggestions = ctx.node, ctx.telemetry, ctx.suggestions

    @router.get("/v1/telemetry", response_model=models.TelemetrySnapshot, tags=["governance"], responses={
        429: {"model": models.Error, "description": "another snapshot is being computed (telemetry_busy)"}})
    def telemetry(start_height: int | None = Query(None, ge=1, le=INT64),
                  end_height: int | None = Query(None, ge=1, le=INT64)) -> Any:
        """The misuse telemetry of an epoch (``bastion.telemetry.take_snapshot``): ``end_height``
        defaults to the head, ``start_height`` to ``DEFAULT_EPOCH_BLOCKS`` blocks before it; at most
        ``MAX_EPOCH_BLOCKS`` blocks, ending at or before the head (``invalid_epoch``). The snapshot
        is kept by this node under ``snapshot_hash``. The blocks are read without the node's lock, one
        snapshot at a time (429 ``telemetry_busy`` meanwhile)."""
        try:
            digest, document = take_snapshot(node, store, suggestions, start_height, end_height)
        except TelemetryBusy:
            return JSONResponse({"code": "telemetry_busy", "message": "another telemetry snapshot is being "
                                 "computed; try again", "field": None}, status_code=429)
        return {"snapshot_hash": digest, "snapshot": document}

    @router.get("/v1/telemetry/{snapshot_hash}", response_model=models.TelemetrySnapshot, responses=not_found,
                tags=["governance"])
    def telemetry_snapshot(snapshot_hash: str = Path(pattern="^[0-9a-f]{64}$")) -> Any:
        """A snapshot this node served (``telemetry_not_found`` when it holds none with this hash)."""
        document = store.get(snapshot_hash)
        if document is None:
            raise ProtocolError("telemetry_not_found", f"this node holds no telemetry snapshot {snapshot_hash}",
                                field="snapshot_hash")
        return {"snapshot_hash": snapshot_hash, "snapshot": document}

    @router.get("/v1/governance/proposals/{proposal_id}/exposure", response_model=models.Exposure,
                responses=not_found, tags=["governance"])
    def proposal_exposure(proposal_id: str) -> Any:
        """Which delegates gain or lose from the proposal's changes through their own and their
        delegators' positions (``bastion.core.exposure``), and whether the vote discount applies."""
        with node.lock:
            return describe_voter_exposure(node.state, find_proposal(node.state, proposal_id))
    return router
