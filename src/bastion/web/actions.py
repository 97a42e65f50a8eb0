"""The web UI's posts: the live order preview (a fragment), and in demo mode the endpoints where the
node signs with the demo's keys (given as ``bastion.web.features.DemoFeatures``, never imported).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from bastion.api.preview import preview_order
from bastion.api.security import REFUSAL_STATUS, check_same_origin, read_json_body
from bastion.core.errors import ProtocolError
from bastion.core.messages import decode_message, normalize_address
from bastion.core.state import SUBACCOUNT_NUMBERS
from bastion.telemetry import record_suggestion
from bastion.web.context import DEMO_WAIT_S, FAUCET_USDC, TEMPLATES, PageContext
from bastion.web.features import DemoFeatures

__all__ = ["demo_routes", "preview_routes"]


def refusal(error: ProtocolError) -> JSONResponse:
    return JSONResponse({"status": "refused", "code": error.code, "message": error.message},
                        status_code=REFUSAL_STATUS.get(error.code, 400))


def preview_routes(ctx: PageContext) -> APIRouter:
    """``POST /ui/preview``: the trade page's live preview, rendered as an HTML fragment."""
    router = APIRouter()
    node = ctx.node

    @router.post("/ui/preview", include_in_schema=False, response_class=HTMLResponse)
    async def preview_fragment(request: Request) -> Response:
        try:
            check_same_origin(request)
            body = await read_json_body(request)
        except ProtocolError as error:
            return refusal(error)
        failure: str | None
        try:
            if not isinstance(body, dict):
                raise ValueError("not an object")
            owner = normalize_address(body.get("owner"), field="owner")
            subaccount = body.get("subaccount", 0)
            if isinstance(subaccount, str) and subaccount.isascii() and subaccount.isdigit() and len(subaccount) <= 3:
                subaccount = int(subaccount)  # a form field's text
            if not isinstance(subaccount, int) or isinstance(subaccount, bool) or subaccount not in SUBACCOUNT_NUMBERS:
                raise ProtocolError("invalid_subaccount", "subaccount number must be 0..127", field="subaccount")
            with node.lock:
                preview = preview_order(node.state, owner=owner, subaccount=subaccount,
                                        market=str(body.get("market")), side=str(body.get("side")),
                                        size=str(body.get("size")), price=str(body.get("price")),
                                        reduce_only=body.get("reduce_only") is True)
        except ProtocolError as error:
            preview, failure = None, f"{error.code}: {error.message}"
        except (ValueError, AttributeError, TypeError):
            preview, failure = None, "fill in size and price"
        else:
            failure = None
        if preview is not None:
            record_suggestion(ctx.suggestions, owner, preview)
        return TEMPLATES.TemplateResponse(request, "_preview.html", {"preview": preview, "failure": failure})

    return router


def demo_routes(ctx: PageContext, demo: DemoFeatures) -> APIRouter:
    """``POST /ui/demo/submit`` (act as a demo trader) and ``POST /ui/demo/faucet`` (credit a wallet
    from the demo bridge), signing with ``demo``'s keys."""
    router = APIRouter()
    node, chain_id, accept = ctx.node, ctx.chain_id, ctx.accept

    async def submit_signed(sign: Callable[[str, dict[str, Any]], dict[str, Any]], msg: dict[str, Any]) -> Response:
        """Sign ``msg`` with ``sign`` (one of the demo's signers, for this chain) and take it through
        the API's intake; the answer is its commit status after at most ``DEMO_WAIT_S``."""
        try:
            decode_message(msg)  # bounded and encodable before it is signed (check_tx decodes it again)
            accepted = accept(sign(chain_id, msg))
        except ProtocolError as error:
            return refusal(error)
        status = await run_in_threadpool(node.wait_committed, accepted["sender"], accepted["nonce"], DEMO_WAIT_S)
        return JSONResponse(status)

    async def read_demo_request(request: Request) -> Any:
        """The JSON body of a same-origin request on a loopback address (``bastion.api.security``)."""
        check_same_origin(request, loopback_only=True)
        return await read_json_body(request)

    @router.post("/ui/demo/submit", include_in_schema=False)
    async def demo_submit(request: Request) -> Response:
        """Sign ``msg`` with the demo key of ``trader`` (demo key — never use in production) and submit it."""
        try:
            body = await read_demo_request(request)
        except ProtocolError as error:
            return refusal(error)
        trader = body.get("trader") if isinstance(body, dict) else None
        if not isinstance(trader, str) or trader not in demo.traders or not isinstance(body.get("msg"), dict):
            return JSONResponse({"status": "refused", "code": "invalid_request",
                                 "message": "send {trader: a demo trader's name, msg: {...}}"}, status_code=400)
        return await submit_signed(functools.partial(demo.sign_as, trader), body["msg"])

    @router.post("/ui/demo/faucet", include_in_schema=False)
    async def demo_faucet(request: Request) -> Response:
        """Credit FAUCET_USDC to a wallet's subaccount 0 from the demo bridge operator."""
        try:
            body = await read_demo_request(request)
            address = normalize_address(body.get("address") if isinstance(body, dict) else None, field="address")
        except ProtocolError as error:
            return refusal(error)
        return await submit_signed(demo.sign_as_bridge,
                                   {"type": "deposit", "owner": address, "subaccount": 0, "amount": FAUCET_USDC})

    return router
