"""Transaction routes: submit one envelope or a batch, a transaction's status, the signing shape
(``bastion.signing``); and the wallet JSON-RPC (``POST /rpc``) that lets a wallet add the network.
"""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from bastion.api import models
from bastion.api.context import INT64, MAX_WAIT_MS, VERIFY_CHUNK, ApiContext
from bastion.core.errors import ProtocolError
from bastion.core.messages import normalize_address
from bastion.signing import DOMAIN_NAME, ENVELOPE_TYPES, SIGNING_VERSION, compute_chain_number

RPC_MAX_BYTES = 65_536  # a wallet's calls are tiny


def rpc_error(call_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "error": {"code": code, "message": message}}


def answer_rpc(call: Any, chain_id: str, height: int) -> dict[str, Any]:
    """One JSON-RPC 2.0 call of ``POST /rpc``: ``eth_chainId`` (the EIP-712 chain number, hex),
    ``net_version`` (the same, decimal) and ``eth_blockNumber`` (the committed height, hex). A
    wallet calls these to add a network (MetaMask's ``wallet_addEthereumChain`` checks that the RPC
    answers the chain id it was given); every other method is ``-32601``: Bastion is not an EVM
    chain, and its transactions go to ``POST /v1/tx``."""
    if not isinstance(call, dict) or call.get("jsonrpc") != "2.0" or not isinstance(call.get("method"), str):
        return rpc_error(call.get("id") if isinstance(call, dict) else None, -32600, "invalid request")
    number = compute_chain_number(chain_id)
    answers = {"eth_chainId": hex(number), "net_version": str(number), "eth_blockNumber": hex(height)}
    if call["method"] not in answers:
        return rpc_error(call.get("id"), -32601,
                         f"method not found: this node answers only {', '.join(answers)} "
                         "(transactions go to POST /v1/tx)")
    return {"jsonrpc": "2.0", "id": call.get("id"), "result": answers[call["method"]]}


def transaction_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/tx``, ``/v1/tx/batch``, ``/v1/tx/{sender}/{nonce}`` and ``/v1/signing``."""
    router = APIRouter()
    node, config, chain_id = ctx.node, ctx.config, ctx.chain_id
    read_json, accept, enqueue, take_ip = ctx.read_json, ctx.accept, ctx.enqueue, ctx.take_ip
    authenticate_all, verifiers = ctx.authenticate_all, ctx.verifiers

    write_body = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Envelope"}}}}}
    refusals: dict[int | str, dict[str, Any]] = {
        400: {"model": models.Error, "description": "malformed or refused by check_tx"},
        401: {"model": models.Error, "description": "missing or invalid signature"},
        413: {"model": models.Error, "description": "body too large"},
        429: {"model": models.Error, "description": "rate limited"}}

    @router.post("/v1/tx", status_code=202, response_model=models.TxAccepted | models.TxStatus, responses=refusals,
                 openapi_extra=write_body, tags=["transactions"])
    async def submit(request: Request, wait_ms: int = Query(0, ge=0, le=MAX_WAIT_MS)) -> Any:
        """Submit one signed envelope. ``accepted`` promises nothing; with ``wait_ms`` the answer is
        the commit status (``committed`` at a height, or still ``pending`` after the wait)."""
        take_ip(request)
        accepted = accept(await read_json(request, config.max_body_bytes))
        if wait_ms:
            status = await run_in_threadpool(node.wait_committed, accepted["sender"], accepted["nonce"],
                                             wait_ms / 1000)
            return JSONResponse(status, status_code=200)
        return accepted

    @router.post("/v1/tx/batch", response_model=models.BatchResult, tags=["transactions"],
                 responses={400: {"model": models.Error}, 413: {"model": models.Error}},
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/Batch"}}}}})
    async def submit_batch(request: Request) -> Any:
        """Submit several envelopes; each is accepted or refused on its own, in order, with its index."""
        body = await read_json(request, config.max_batch_bytes)
        txs = body.get("txs") if isinstance(body, dict) else None
        if not isinstance(txs, list) or (isinstance(body, dict) and set(body) != {"txs"}):
            raise ProtocolError("invalid_batch", "a batch is {\"txs\": [envelopes]}", field="txs")
        if len(txs) > config.max_batch_txs:
            raise ProtocolError("too_large", f"a batch holds at most {config.max_batch_txs} transactions", field="txs")
        take_ip(request, len(txs))
        # signature recovery (libsecp256k1 releases the GIL) in the verifier threads, in chunks; then
        # each envelope queued in batch order, so arrival order is the batch's
        if verifiers is not None and len(txs) >= 2 * VERIFY_CHUNK:
            chunks = [txs[i:i + VERIFY_CHUNK] for i in range(0, len(txs), VERIFY_CHUNK)]
            loop = asyncio.get_running_loop()
            parts = await asyncio.gather(*(loop.run_in_executor(verifiers, authenticate_all, c) for c in chunks))
            authenticated = [item for part in parts for item in part]
        else:
            authenticated = authenticate_all(txs)
        results = []
        for index, item in enumerate(authenticated):
            try:
                if isinstance(item, ProtocolError):
                    raise item
                results.append({"index": index, **enqueue(*item)})
            except ProtocolError as error:
                results.append({"index": index, "status": "refused", "code": error.code, "message": error.message,
                                "field": error.fields.get("field")})
        accepted = sum(r["status"] == "accepted" for r in results)
        return {"accepted": accepted, "refused": len(results) - accepted, "results": results}

    @router.get("/v1/tx/{sender}/{nonce}", response_model=models.TxStatus, response_model_exclude_none=True,
                tags=["transactions"],
                responses={400: {"model": models.Error}})
    def tx_status(sender: str, nonce: int = Path(ge=0, le=INT64),
                  wait_ms: int = Query(0, ge=0, le=MAX_WAIT_MS)) -> Any:
        """``committed`` (height, index, result), ``pending`` or ``unknown``; ``wait_ms`` waits for the commit."""
        sender = normalize_address(sender, field="sender")
        if wait_ms > 0:
            return node.wait_committed(sender, nonce, wait_ms / 1000)
        return node.tx_status(sender, nonce)

    @router.get("/v1/signing", response_model=models.SigningInfo, tags=["transactions"])
    def signing() -> Any:
        """The EIP-712 domain and types every envelope is signed with (``bastion.signing``)."""
        return {"domain": {"name": DOMAIN_NAME, "version": SIGNING_VERSION, "chainId": compute_chain_number(chain_id)},
                "types": ENVELOPE_TYPES, "primary_type": "Envelope",
                "nonce_unit": "microseconds since the Unix epoch" if not config.unsigned else "any (unsigned mode)",
                "nonce_window_past_ms": config.nonce_past_ms, "nonce_window_future_ms": config.nonce_future_ms}
    return router


def rpc_routes(ctx: ApiContext) -> APIRouter:
    """``POST /rpc`` (and its CORS preflight): just enough Ethereum JSON-RPC for a wallet."""
    router = APIRouter()
    node, chain_id, read_json = ctx.node, ctx.chain_id, ctx.read_json

    rpc_headers = {"access-control-allow-origin": "*", "access-control-allow-methods": "POST",
                   "access-control-allow-headers": "content-type"}

    @router.options("/rpc", include_in_schema=False)
    def rpc_preflight() -> Any:
        return JSONResponse(None, headers=rpc_headers)

    @router.post("/rpc", include_in_schema=False)
    async def rpc(request: Request) -> Any:
        """Just enough Ethereum JSON-RPC for a wallet to add the Bastion network (``docs/api.md``)."""
        try:
            body = await read_json(request, RPC_MAX_BYTES)
        except ProtocolError as error:
            if error.code != "invalid_json":
                raise
            return JSONResponse(rpc_error(None, -32700, "parse error"), headers=rpc_headers)
        with node.lock:
            height = node.state.height
        if isinstance(body, list):
            answers = [answer_rpc(call, chain_id, height) for call in body] or rpc_error(None, -32600, "empty batch")
            return JSONResponse(answers, headers=rpc_headers)
        return JSONResponse(answer_rpc(body, chain_id, height), headers=rpc_headers)
    return router
