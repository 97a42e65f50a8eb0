"""``mount_web``: the web UI's static files and routers added to the API app (``bastion.web``)."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from bastion.web.actions import demo_routes, preview_routes
from bastion.web.context import HERE, PageContext
from bastion.web.features import DemoFeatures
from bastion.web.informed import telemetry_page_routes
from bastion.web.pages import page_routes
from bastion.web.staking import staking_page_routes
from bastion.web.disputes import dispute_page_routes

__all__ = ["mount_web"]


def mount_web(app: FastAPI, demo: DemoFeatures | None = None) -> None:
    """Add the pages, static files and (given ``demo``, ``bastion demo`` only) the demo endpoints to
    the API ``app`` (built by ``bastion.app.create_app``, whose state holds the node, config,
    reader and intake)."""
    ctx = PageContext(app, demo)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(page_routes(ctx))
    app.include_router(preview_routes(ctx))
    app.include_router(telemetry_page_routes(ctx))
    app.include_router(staking_page_routes(ctx))
    app.include_router(dispute_page_routes(ctx))
    if demo is not None and ctx.demo_traders:
        app.include_router(demo_routes(ctx, demo))
