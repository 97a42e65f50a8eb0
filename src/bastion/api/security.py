"""Browser-facing protections: response headers on every answer, and the same-origin rule of the
endpoints a page posts to.

**Headers** (``SecurityHeaders``, an ASGI middleware on the whole app): every HTTP answer carries

* ``Content-Security-Policy`` (``PAGE_POLICY``): scripts only from the node itself (``/static/app.js``,
  ``/vendor/plotly.min.js``; the pages have no inline script, only ``application/json`` data blocks,
  which are never executed), styles from the node plus inline styles (plotly.js styles its charts
  with ``style`` attributes and ``<style>`` elements), images from the node and ``data:``/``blob:``
  URLs (plotly's), connections to the node only (``fetch`` and the ``/v1/ws`` WebSocket), no plugin,
  no ``<base>``, forms only to the node, and ``frame-ancestors 'none'``: no other site may frame a
  page (clickjacking). The API reference ``/docs`` (``bastion.api.docs_page``) is server-rendered
  with no script and falls under the same policy; a route that sets its own policy (a stress report
  page) keeps it;
* ``X-Frame-Options: DENY`` (``frame-ancestors`` for older browsers), ``X-Content-Type-Options:
  nosniff`` and ``Referrer-Policy: same-origin``.

**Same origin** (``check_same_origin``): the endpoints a page posts to with the node's own
authority (``/ui/demo/submit`` and ``/ui/demo/faucet`` sign with the demo keys; ``/ui/preview``)
accept only a JSON body (``Content-Type: application/json``, which a cross-site HTML form cannot
send and a cross-site ``fetch`` cannot send without a CORS preflight the node does not grant), whose
``Origin`` (or, without one, ``Referer``) is the node's own origin, and whose ``Sec-Fetch-Site``
(when the browser sends one) is ``same-origin``. With ``loopback_only`` the ``Host`` of a browser's
request must also name a loopback address, so a page of another site whose name was re-pointed at
127.0.0.1 (DNS rebinding) is refused as well. A client that is not a browser sends none of
``Origin``, ``Referer``, ``Sec-Fetch-Site``: it is not the target of cross-site request forgery and
passes.
"""
from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.core.errors import ProtocolError

__all__ = ["PAGE_POLICY", "REFUSAL_STATUS", "SecurityHeaders", "check_same_origin", "is_loopback_host",
           "read_json_body"]

REFUSAL_STATUS = {"cross_origin_refused": 403, "json_required": 415, "invalid_json": 400}

PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_COMMON_HEADERS = (("x-frame-options", "DENY"), ("x-content-type-options", "nosniff"),
                   ("referrer-policy", "same-origin"))
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response (WebSockets pass through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = PAGE_POLICY

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    headers["content-security-policy"] = policy
                for name, value in _COMMON_HEADERS:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_loopback_host(host: str) -> bool:
    """True for a name or address of this machine only: ``localhost``, 127.0.0.0/8, ``::1``."""
    import ipaddress

    name = host.strip().lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str:
    """The name of a ``Host`` header value without its port (``[::1]:8000`` -> ``::1``)."""
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_same_origin(request: Request, *, loopback_only: bool = False) -> None:
    """Refuse (``ProtocolError`` ``cross_origin_refused`` or ``json_required``, HTTP 403 / 415) a
    request that a page of another site could have made (module docstring)."""
    headers: Headers = request.headers
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ProtocolError("json_required", "this endpoint takes a JSON body (Content-Type: application/json)",
                            field="content-type")
    host = headers.get("host", "")
    own = f"{request.url.scheme}://{host}"
    origin = headers.get("origin")
    referer = headers.get("referer")
    fetch_site = headers.get("sec-fetch-site")
    from_browser = origin is not None or referer is not None or fetch_site is not None
    if loopback_only and from_browser and not is_loopback_host(_host_name(host)):
        raise ProtocolError("cross_origin_refused", f"demo endpoints answer a browser only on a loopback address, "
                            f"not {host[:100]!r}", field="host")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise ProtocolError("cross_origin_refused", f"a {fetch_site} request may not use this endpoint",
                            field="origin")
    if origin is not None:
        if origin != own:
            raise ProtocolError("cross_origin_refused", f"origin {origin[:100]!r} is not this node's ({own})",
                                field="origin")
    elif referer is not None and not (referer == own or referer.startswith(own + "/")):
        raise ProtocolError("cross_origin_refused", "the referring page is not this node's", field="referer")


async def read_json_body(request: Request) -> Any:
    """The request's JSON body, or ``ProtocolError("invalid_json")`` (HTTP 400) when it is not JSON."""
    try:
        return await request.json()
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProtocolError("invalid_json", "the body is not valid JSON", field="body") from None
