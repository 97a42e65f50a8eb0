"""The node's HTTP intake (FastAPI), served by ``bastion node``.

    POST /v1/tx                     {"sender", "nonce", "msg"} -> 202 {"status": "accepted", "arrival"}
                                    or 400 {"code", "message", "field"} (nothing queued)
    GET  /v1/tx/{sender}/{nonce}    {"status": "committed", "height", "index", "result"} | pending | unknown
                                    (?wait_ms=N waits up to N ms for the commit)
    GET  /v1/status                 chain id, height, time, state hash, mempool size, recovery summary

"accepted" promises nothing; a transaction is acknowledged only when its status is "committed",
i.e. its block is in the durable log. Resubmitting the same (sender, nonce) is refused with
``duplicate_nonce``, so retrying after a timeout or a node crash can never apply it twice.

Envelopes are not signed yet: the sender is taken as given, so the node binds to 127.0.0.1 by
default. The public API with EIP-712 signatures, reads and WebSockets is a later issue; it will
replace this intake's trust in the sender, not the node behind it.
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bastion.core.errors import ProtocolError
from bastion.core.messages import normalize_address
from bastion.core.timefmt import format_iso_ms
from bastion.node.node import Node

MAX_BODY_BYTES = 64 * 1024
MAX_WAIT_MS = 30_000


def _error(error: ProtocolError, status: int = 400) -> JSONResponse:
    return JSONResponse({"code": error.code, "message": error.message, "field": error.fields.get("field")},
                        status_code=status)


def create_app(node: Node) -> FastAPI:
    app = FastAPI(title="Bastion node", version="0.1.0",
                  description="Transaction intake and status of a Bastion node (unsigned; local use).")

    @app.post("/v1/tx", status_code=202)
    async def submit(request: Request) -> Any:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(ProtocolError("too_large", f"a transaction is at most {MAX_BODY_BYTES} bytes"), 413)
        try:
            envelope = await request.json()
        except ValueError:
            return _error(ProtocolError("invalid_json", "the body is not JSON", field="body"))
        try:
            return node.submit(envelope)
        except ProtocolError as error:
            return _error(error)

    @app.get("/v1/tx/{sender}/{nonce}")
    def tx_status(sender: str, nonce: int, wait_ms: int = 0) -> Any:
        try:
            sender = normalize_address(sender, field="sender")
        except ProtocolError as error:
            return _error(error)
        if wait_ms > 0:
            return node.wait_committed(sender, nonce, min(wait_ms, MAX_WAIT_MS) / 1000)
        return node.tx_status(sender, nonce)

    @app.get("/v1/status")
    def status() -> dict[str, Any]:
        with node.lock:
            state = node.state
            return {"chain_id": state.chain_id, "height": state.height, "time": format_iso_ms(state.time_ms),
                    "state_hash": state.state_hash, "mempool": len(node.mempool),
                    "indexed_height": None if node.indexer is None else node.indexer.indexed_height,
                    "index_error": None if node.indexer is None else node.indexer.error,
                    "recovery": {"snapshot_height": node.recovery.snapshot_height,
                                 "replayed_blocks": node.recovery.replayed_blocks,
                                 "replayed_txs": node.recovery.replayed_txs,
                                 "seconds": round(node.recovery.seconds, 3),
                                 "skipped_snapshots": node.recovery.skipped_snapshots}}

    return app
