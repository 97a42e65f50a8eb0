"""Chain routes: the node's status (``/v1/status``) and the block log (``/v1/blocks[/{height}]``)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query

from bastion.api import models
from bastion.api.context import INT64, MAX_ROWS, ApiContext
from bastion.api.context import NOT_FOUND as not_found
from bastion.api.views import describe_status
from bastion.core.errors import ProtocolError
from bastion.core.timefmt import format_iso_ms
from bastion.presentation import format_event


def status_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/status``: height, mempool, indexer and recovery."""
    router = APIRouter()
    node, config = ctx.node, ctx.config

    @router.get("/v1/status", response_model=models.Status, tags=["chain"])
    def status() -> Any:
        with node.lock:
            return {**describe_status(node.state), "mempool": len(node.mempool), "signed": not config.unsigned,
                    "indexed_height": None if node.indexer is None else node.indexer.indexed_height,
                    "index_error": None if node.indexer is None else node.indexer.error,
                    "recovery": {"snapshot_height": node.recovery.snapshot_height,
                                 "replayed_blocks": node.recovery.replayed_blocks,
                                 "replayed_txs": node.recovery.replayed_txs,
                                 "seconds": round(node.recovery.seconds, 3),
                                 "skipped_snapshots": node.recovery.skipped_snapshots}}
    return router


def block_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/blocks`` and ``/v1/blocks/{height}``: headers, transactions, results, events."""
    router = APIRouter()
    node = ctx.node

    def block_header(block: Any) -> dict[str, Any]:
        return {"height": block.height, "time": format_iso_ms(block.time_ms), "prev_hash": block.prev_hash,
                "tx_root": block.tx_root, "results_root": block.results_root, "events_root": block.events_root,
                "state_hash": block.state_hash, "block_hash": block.block_hash, "tx_count": block.tx_count}

    @router.get("/v1/blocks", response_model=models.Blocks, tags=["chain"])
    def blocks(from_height: int | None = Query(None, ge=1, le=INT64), limit: int = Query(20, ge=1, le=MAX_ROWS)) -> Any:
        """Block headers with their state hashes, newest first from ``from_height`` (default: the head)."""
        with node.lock:
            top = node.state.height if from_height is None else min(from_height, node.state.height)
            found = [node.log.block(h) for h in range(top, max(top - limit, 0), -1)]
            return {"blocks": [block_header(b) for b in found if b is not None]}

    @router.get("/v1/blocks/{height}", response_model=models.Block, responses=not_found, tags=["chain"])
    def block(height: int = Path(ge=-INT64, le=INT64)) -> Any:
        """One block: header, transactions (envelopes without signatures), results and events."""
        with node.lock:
            found = node.log.block(height) if height >= 1 else None
            if found is None:
                raise ProtocolError("unknown_block", f"no block at height {height}", field="height")
            return {**block_header(found),
                    "txs": [{"sender": t.sender, "nonce": t.nonce, "arrival": t.arrival, "msg": t.msg}
                            for t in found.txs],
                    "results": found.results, "events": [format_event(e, node.state) for e in found.events]}
    return router
