"""The WebSocket route (``/v1/ws``, channels in ``bastion.api.ws``)."""
from __future__ import annotations

from fastapi import APIRouter, WebSocket

from bastion.api.context import ApiContext
from bastion.api.ws import serve_connection


def websocket_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/ws``, served by the context's hub."""
    router = APIRouter()
    hub = ctx.hub

    @router.websocket("/v1/ws")
    async def websocket(socket: WebSocket) -> None:
        await serve_connection(hub, socket)
    return router
