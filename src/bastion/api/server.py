"""Serving the API with bounded connections and file descriptors (``bastion node``).

A node must never run out of file descriptors for its own files: the block log's SQLite files, the
snapshot being written (a temporary file and its directory), the read models. So:

* ``raise_descriptor_limit`` lifts the soft ``RLIMIT_NOFILE`` to the hard limit at start-up;
* ``ConnectionLimits.for_descriptors`` caps the open HTTP + WebSocket connections at the soft
  limit minus ``FD_RESERVE`` descriptors kept for the node's own files;
* the accept gate (``gated_http_protocol``): a connection accepted over the cap is aborted at once
  (its descriptor is freed in the next loop turn; the listen backlog is kept small, ``BACKLOG``,
  so that the sockets accepted before the gate sees them fit in the reserve), and one that sends
  nothing for
  ``first_byte_timeout_s`` is closed, so idle sockets cannot hold the cap for ever;
* a WebSocket whose peer stops reading (``bounded_websocket_protocol``): once the transport's
  write buffer is over its high-water mark (64 KiB) for ``slow_reader_s``, the socket is aborted,
  so a never-reading client holds at most that buffer (see also ``bastion.api.ws``: its queue of
  shared payloads is bounded too);
* WebSocket messages are sent uncompressed (no permessage-deflate): a payload is encoded once per
  block for every subscriber, and compressing it again per connection (with a zlib context of a few
  hundred KiB each) would cost CPU and memory per subscriber.
"""
from __future__ import annotations

import asyncio
import resource
import socket
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

FD_RESERVE = 128  # descriptors kept for the node's own files (log, WAL, snapshots, read models, stdio)
MIN_CONNECTIONS = 16
# asyncio accepts up to ``backlog`` sockets per wake-up, before the gate sees any of them: a few such
# bursts in flight must fit in the reserve, with room left for the node's own dozen files
BACKLOG = FD_RESERVE // 4
WS_MAX_FRAME = 64 * 1024  # a client's WebSocket message (commands are tiny)


def raise_descriptor_limit() -> int:
    """Lift the soft ``RLIMIT_NOFILE`` to the hard limit (as far as allowed); returns the soft limit
    now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


@dataclass(frozen=True)
class ConnectionLimits:
    """Bounds of the network side: ``max_connections`` open HTTP + WebSocket connections (the
    server's own count, checked at accept), ``first_byte_timeout_s`` for a connection that sends
    nothing, ``slow_reader_s`` for a WebSocket whose write buffer stays full."""

    max_connections: int = 1_000
    first_byte_timeout_s: float = 10.0
    slow_reader_s: float = 10.0
    send_buffer_bytes: int = 128 * 1024  # SO_SNDBUF of each connection (0: the kernel's autotuning)

    @classmethod
    def for_descriptors(cls, soft_limit: int, **overrides: Any) -> ConnectionLimits:
        """The cap for a process allowed ``soft_limit`` descriptors: all but ``FD_RESERVE``."""
        return cls(max_connections=max(MIN_CONNECTIONS, soft_limit - FD_RESERVE), **overrides)


def gated_http_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with the accept gate and the first-byte timeout of ``limits``."""

    class GatedH11Protocol(H11Protocol):
        _refused = False
        _first_byte: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= limits.max_connections:
                self._refused = True
                transport.abort()  # over the cap: the descriptor is freed at once
                return
            sock = transport.get_extra_info("socket")
            if sock is not None and limits.send_buffer_bytes:
                try:  # bound the kernel's buffer too: a peer that stops reading is seen in a second
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limits.send_buffer_bytes)
                except OSError:
                    pass
            super().connection_made(transport)
            self._first_byte = self.loop.call_later(limits.first_byte_timeout_s, self._silent)

        def _silent(self) -> None:
            self._first_byte = None
            self.transport.abort()

        def data_received(self, data: bytes) -> None:
            if self._first_byte is not None:
                self._first_byte.cancel()
                self._first_byte = None
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            if self._first_byte is not None:
                self._first_byte.cancel()
                self._first_byte = None
            super().connection_lost(exc)

    return GatedH11Protocol


def bounded_websocket_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's WebSocket protocol, aborting a peer that keeps its write buffer full for
    ``limits.slow_reader_s``."""

    class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
        _slow: asyncio.TimerHandle | None = None

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._slow is None:
                self._slow = self.loop.call_later(limits.slow_reader_s, self._drop)

        def resume_writing(self) -> None:
            if self._slow is not None:
                self._slow.cancel()
                self._slow = None
            super().resume_writing()

        def _drop(self) -> None:
            self._slow = None
            self.transport.abort()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._slow is not None:
                self._slow.cancel()
                self._slow = None
            super().connection_lost(exc)

    return BoundedWebSocketProtocol


def server_config(app: Any, host: str, port: int, limits: ConnectionLimits | None = None) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` behind the accept gate and the slow-reader policy
    (``limits``: by default from the descriptor limit, raised first)."""
    limits = limits or ConnectionLimits.for_descriptors(raise_descriptor_limit())
    return uvicorn.Config(app, host=host, port=port, log_level="warning", http=gated_http_protocol(limits),
                          ws=bounded_websocket_protocol(limits), backlog=BACKLOG, ws_max_size=WS_MAX_FRAME,
                          ws_per_message_deflate=False)


def serve(app: Any, host: str, port: int, limits: ConnectionLimits) -> None:
    """Run ``app`` with uvicorn behind the accept gate and the slow-reader policy (blocks until stopped)."""
    uvicorn.Server(server_config(app, host, port, limits)).run()
