"""``bastion demo``: a living exchange on one machine (``make run``).

``DemoServer(data_dir, ...)`` opens (or creates, with ``build_demo_genesis``) a node on the embedded
SQLite store in ``data_dir``, serves the API and the web UI (``create_app(..., demo=demo_features())``:
the pages may sign with the demo keys), produces blocks, and runs the bots (``bastion.demo.bots``): the
oracle path, the market maker, the traders and the governance proposals with their council. A second start
on the same directory recovers the chain from its log and submits no second proposal.

Keys: ``bastion.demo.keys`` — demo keys, never use in production. Anyone can sign with them (the
bridge's among them: anyone could mint demo USDC), so a demo serves only on a loopback address:
``DemoServer`` refuses any other host (``DemoHostRefused``), as ``bastion node --demo`` does.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from bastion.demo.bots import STEP_MS, DemoDriver
from bastion.demo.features import demo_features
from bastion.demo.genesis import build_demo_genesis
from bastion.node.blocklog import LoggedBlock
from bastion.node.node import Node
from bastion.node.retention import ReadModelRetention

__all__ = ["DEFAULT_DATA_DIR", "DemoHostRefused", "DemoServer", "check_demo_host"]

DEFAULT_DATA_DIR = Path(".bastion-demo")
# the maker's untouched quotes (and any order cancelled without a fill) leave the read models after two
# minutes of 250 ms blocks (bastion.node.retention): the data directory grows by the block log alone
DEMO_RETENTION = ReadModelRetention(keep_blocks=480, every_blocks=120)


class DemoHostRefused(ValueError):
    """A demo (public keys) was asked to serve on an address other machines can reach."""


def check_demo_host(host: str) -> None:
    """Refuse (``DemoHostRefused``) to serve the demo keys on a non-loopback ``host``."""
    from bastion.api.security import is_loopback_host

    if not is_loopback_host(host):
        raise DemoHostRefused(f"the demo's keys are public (anyone could sign as its accounts and its bridge): it "
                              f"serves only on a loopback address such as 127.0.0.1, not {host!r}")


class DemoServer:
    """A demo node with its API, UI, block producer and bots. ``start`` runs the server in a thread
    (tests); ``serve`` runs it in the calling thread until Ctrl-C (``bastion demo``)."""

    def __init__(self, data_dir: str | Path = DEFAULT_DATA_DIR, *, host: str = "127.0.0.1", port: int = 8000,
                 block_time_ms: int = 250, bots: bool = True,
                 on_block: Callable[[LoggedBlock], None] | None = None, step_ms: int = STEP_MS, pace: int = 1) -> None:
        """``step_ms`` (the bots' pace) and ``pace`` (governance periods and timelocks divided by it,
        ``build_demo_genesis``) are test speed-ups; ``bastion demo`` keeps the defaults."""
        import uvicorn

        from bastion.app import ApiConfig, create_app
        from bastion.api.server import server_config

        check_demo_host(host)
        self.data_dir = Path(data_dir)
        self.host, self.port, self.block_time_ms = host, port, block_time_ms
        fresh = not (self.data_dir / "blocks.db").exists()
        genesis = build_demo_genesis(time.time_ns() // 1_000_000, pace=pace) if fresh else None
        self.node = Node(self.data_dir, genesis, on_block=on_block, read_models="default",
                         read_model_retention=DEMO_RETENTION)
        self.app = create_app(self.node, ApiConfig(), demo=demo_features())
        self.driver = DemoDriver(self.node, self.app.state.accept, step_ms=step_ms,
                                 report_store=self.app.state.reports) if bots else None
        self.server = uvicorn.Server(server_config(self.app, host, port))  # bounded connections (bastion.api.server)
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _start_background(self) -> None:
        producer = threading.Thread(target=self.node.run, args=(self.stop_event, self.block_time_ms),
                                    name="block-producer", daemon=True)
        producer.start()
        self.threads.append(producer)
        if self.driver is not None:
            bots = threading.Thread(target=self.driver.run, args=(self.stop_event,), name="demo-bots", daemon=True)
            bots.start()
            self.threads.append(bots)

    def start(self, timeout_s: float = 20.0) -> None:
        """Run everything in background threads; returns once the server answers."""
        self._start_background()
        server = threading.Thread(target=self.server.run, name="demo-http", daemon=True)
        server.start()
        self.threads.append(server)
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not server.is_alive():
                raise RuntimeError(f"the demo server did not start on {self.url}")
            time.sleep(0.05)

    def serve(self) -> None:
        """Run until Ctrl-C (uvicorn handles the signal), then stop the bots and the node."""
        self._start_background()
        try:
            self.server.run()
        finally:
            self.close()

    def close(self) -> None:
        self.server.should_exit = True
        self.stop_event.set()
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(10)
        self.node.close()
