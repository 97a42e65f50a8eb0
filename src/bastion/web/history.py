"""The portfolio's history tabs: the owner's orders (with the agent key that placed each, when one
did), fills and funding payments, newest first, a page at a time.

Pages are read from the read models with keyset cursors (never an offset): orders before an order
id, fills and funding payments before a (height, seq). The cursor of the next, older page rides in
the page's own query string (``?tab=fills&fills_before=1234.5``), so the pages work without
JavaScript and a live refresh re-reads the same page. A funding payment settles every funding tick
since the subaccount's last settlement; its row shows, per market it held, the 8-hour rate of that
market's last tick at or before the payment.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.core.errors import ProtocolError
from bastion.core.units import format_ppm
from bastion.web.context import PageContext

__all__ = ["HISTORY_PAGE", "HISTORY_TABS", "portfolio_history"]

HISTORY_PAGE = 25  # rows per page of each history tab
HISTORY_TABS = ("orders", "fills", "funding")
RATE_TICKS = 500   # funding ticks read per market to find the rate of a page's payments


def _cursor(text: str | None) -> tuple[int, int] | None:
    """A "HEIGHT.SEQ" cursor (a page's ``*_before``), or None when absent or malformed (the newest page)."""
    if not text:
        return None
    height, _, seq = text.partition(".")
    if not (height.isascii() and seq.isascii() and height.isdigit() and seq.isdigit() and len(height + seq) <= 36):
        return None
    return int(height), int(seq)


def _order_cursor(text: str | None) -> int | None:
    return int(text) if text and text.isascii() and text.isdigit() and len(text) <= 18 else None


def portfolio_history(ctx: PageContext, owner: str, query: Mapping[str, str]) -> dict[str, Any]:
    """The three tabs for ``owner`` at the page the query names: per tab its ``rows`` (formatted for
    display), ``older`` (the query string of the next older page, None on the last) and ``paged``
    (whether this is an older page, so the page offers a way back to the newest); and the open tab."""
    tab = query.get("tab") if query.get("tab") in HISTORY_TABS else None
    orders_before = _order_cursor(query.get("orders_before"))
    fills_before = _cursor(query.get("fills_before"))
    funding_before = _cursor(query.get("funding_before"))
    _, orders = ctx.history("orders", owner=owner, limit=HISTORY_PAGE, before=orders_before)
    # the newest page of fills or payments: before any (height, seq) there is, i.e. (a height above the head, 0)
    top = (2 ** 62, 0)
    _, fills = ctx.history("fills", owner=owner, limit=HISTORY_PAGE, before=fills_before or top)
    _, payments = ctx.history("funding_payments", owner=owner, limit=HISTORY_PAGE, before=funding_before or top)
    _attach_rates(ctx, payments)
    for fill in fills:  # the owner's side of the fill: the taker's, or the opposite for a maker
        taker = fill.get("taker_owner") == owner
        fill["role"] = "taker" if taker else "maker"
        fill["side"] = fill["taker_side"] if taker else ("sell" if fill["taker_side"] == "buy" else "buy")
        fill["fee"] = fill.get("taker_fee") if taker else fill.get("maker_fee")
        fill["number"] = fill.get("taker_number") if taker else fill.get("maker_number")

    def older(name: str, rows: list[dict], key: Any) -> str | None:
        return None if len(rows) < HISTORY_PAGE else f"?tab={name}&{name}_before={key(rows[-1])}"

    return {"tab": tab,
            "orders": {"rows": orders, "paged": orders_before is not None,
                       "older": older("orders", orders, lambda row: row["order_id"])},
            "fills": {"rows": fills, "paged": fills_before is not None,
                      "older": older("fills", fills, lambda row: f"{row['height']}.{row['seq']}")},
            "funding": {"rows": payments, "paged": funding_before is not None,
                        "older": older("funding", payments, lambda row: f"{row['height']}.{row['seq']}")}}


def _attach_rates(ctx: PageContext, payments: list[dict]) -> None:
    """Give each payment ``rates``: [(market, 8-hour rate of its last tick at or before the payment)]."""
    if not payments:
        return
    top = max(p["height"] for p in payments)
    markets = sorted({m for p in payments for m in (p.get("markets") or "").split(",") if m})
    ticks: dict[str, list[dict]] = {}
    for market in markets:
        try:
            _, rows = ctx.reader.query("funding_ticks", market=market, limit=RATE_TICKS, before=(top + 1, 0))
        except ProtocolError:
            rows = []
        ticks[market] = rows  # newest first
    for payment in payments:
        payment["rates"] = []
        for market in (payment.get("markets") or "").split(","):
            last = next((t for t in ticks.get(market, []) if t["height"] <= payment["height"]), None)
            if market:
                payment["rates"].append({"market": market,
                                         "rate_8h": None if last is None else format_ppm(last["rate_8h_ppm"])})
