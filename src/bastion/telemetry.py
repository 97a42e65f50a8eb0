"""Misuse telemetry (issue 20): per market and epoch, the patterns governance should see.

``compute_telemetry`` reads the events of a range of blocks (an *epoch*: ``start_height`` to
``end_height`` inclusive, the events the block log keeps and the read models are built from), a
state for the governance figures (the node's current one, whose height the snapshot records as
``state_height``) and the isolation suggestions the API recorded
(``SuggestionLog``), and returns a **snapshot**: canonical JSON whose SHA-256 over its canonical bytes
(``bastion.core.snapshot.canonical_bytes``) is its ``snapshot_hash``. A proposal may cite snapshots
by hash (``submit_proposal.evidence``); the node keeps every snapshot it served
(``TelemetryStore``) so the governance page can show the cited one beside the proposal.

Every figure is an integer (counts, micro-USDC, ratios in ppm; ``None`` when a ratio has no
denominator). Per market:

* ``orders`` (distinct order ids of ``order_accepted`` and ``order_placed`` events: every fresh order
  that crossed the book or rested), ``fills`` (book fills, liquidations left out),
  ``fill_volume_usdc``, ``cancels`` (orders cancelled by their owner: reason ``cancelled``);
* ``order_to_trade_ppm`` = orders / fills, ``cancel_ratio_ppm`` = cancels / orders;
* ``self_trade_prevention_hits``: orders cancelled for a self-trade plus self-trade decrements;
* ``two_sided_owners``: owners that bought from one subaccount and sold from another in the market
  in the epoch (self-trade prevention cannot see it: the two sides meet other traders), with their
  volume;
* ``liquidations`` and ``liquidation_clusters``: the blocks with at least ``CLUSTER_MIN_LIQUIDATIONS``
  liquidations of the market (height, count);
* ``oracle_source_rejections`` (a source too far from the median) and ``oracle_stale_events``;
* ``isolation_suggestions`` (previews that suggested trading the order isolated, recorded in the
  epoch) and ``isolation_ignored``: those whose subaccount's position in the market was later
  liquidated in the epoch (a ``liquidation`` event of the same owner, subaccount and market at a
  later height) - the user-experience misuse of a cross account carrying one risky market.

Governance, in the state passed (at ``state_height``): the concentration of voting power (top-1 and top-5 shares in
ppm, the Nakamoto coefficient: fewest delegates holding more than half) and, per proposal whose
voting window overlaps the epoch, its turnout (votes cast / total supply at its snapshot, ppm).
"""
from __future__ import annotations

import copy
import hashlib
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

from bastion.core import votes
from bastion.core.errors import ProtocolError
from bastion.core.orders import fill_notional
from bastion.core.snapshot import canonical_bytes
from bastion.core.state import Market, State
from bastion.core.units import PPM
from bastion.node.blocklog import BlockLog
from bastion.node.node import Node

__all__ = ["CLUSTER_MIN_LIQUIDATIONS", "DEFAULT_EPOCH_BLOCKS", "FORMAT", "MAX_EPOCH_BLOCKS", "Suggestion",
           "SuggestionLog", "TelemetryStore", "compute_telemetry", "record_suggestion", "snapshot_hash",
           "take_snapshot"]

FORMAT: Final = "bastion-telemetry/1"
CLUSTER_MIN_LIQUIDATIONS: Final = 3     # liquidations of one market in one block that make a cluster
MAX_EPOCH_BLOCKS: Final = 10_000        # an epoch reads at most this many blocks (under the node's lock)
DEFAULT_EPOCH_BLOCKS: Final = 1_000     # the epoch when none is asked for: the last 1,000 blocks
MAX_SUGGESTIONS: Final = 100_000        # isolation suggestions kept in memory (the oldest go first)
MAX_SNAPSHOTS: Final = 1_000            # snapshots a node keeps for citation (the oldest go first)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The API's preview suggested trading ``market`` isolated to ``owner``'s ``number`` at ``height``."""

    owner: str
    number: int
    market: str
    height: int


class SuggestionLog:
    """The isolation suggestions the API made (``POST /v1/preview/order`` and the trade page's
    preview), in memory, thread-safe, the latest ``MAX_SUGGESTIONS``; a restart forgets them (they
    are an adapter's record, not chain data)."""

    def __init__(self) -> None:
        self._items: deque[Suggestion] = deque(maxlen=MAX_SUGGESTIONS)
        self._lock = threading.Lock()

    def record(self, suggestion: Suggestion) -> None:
        """Remember one suggestion (a repeat of the latest one for the same order is kept once)."""
        with self._lock:
            if not self._items or self._items[-1] != suggestion:
                self._items.append(suggestion)

    def between(self, start_height: int, end_height: int) -> list[Suggestion]:
        """The suggestions made at heights ``start_height``..``end_height``, oldest first."""
        with self._lock:
            return [s for s in self._items if start_height <= s.height <= end_height]


class TelemetryStore:
    """Snapshots served by this node, by hash (in memory, the latest ``MAX_SNAPSHOTS``), so that a
    proposal citing one can show it. Its market figures are recomputable from the block log over its
    epoch (the isolation suggestions aside: the serving node's record), its governance figures from
    the state at its ``state_height``; the hash checks a copy kept elsewhere."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def put(self, document: dict[str, Any]) -> str:
        """Keep ``document`` under its hash and return the hash."""
        digest = snapshot_hash(document)
        with self._lock:
            self._items.pop(digest, None)
            self._items[digest] = document
            while len(self._items) > MAX_SNAPSHOTS:
                del self._items[next(iter(self._items))]
        return digest

    def get(self, digest: str) -> dict[str, Any] | None:
        """The snapshot with this hash, or None when this node does not hold it."""
        with self._lock:
            return self._items.get(digest)


class TelemetryBusy(Exception):
    """Another telemetry snapshot is being computed on this node (``take_snapshot``)."""


@dataclass(frozen=True, slots=True)
class ChainView:
    """What a snapshot reads from the state, copied under the node's lock so that the epoch's blocks
    can be read and counted without it: the chain id and height, the markets (copies: their grids
    value the fills) and the governance figures of the epoch."""

    chain_id: str
    height: int
    markets: dict[str, Market]
    governance: dict[str, Any]


def view_chain(state: State, start_height: int, end_height: int) -> ChainView:
    """``state``'s ``ChainView`` for the epoch ``start_height``..``end_height``."""
    return ChainView(state.chain_id, state.height, {t: copy.copy(m) for t, m in state.markets.items()},
                     _governance(state, start_height, end_height))


_computing = threading.Lock()   # one snapshot at a time per process: reading 10,000 blocks takes seconds


def take_snapshot(node: Node, store: TelemetryStore, suggestions: SuggestionLog, start_height: int | None = None,
                  end_height: int | None = None) -> tuple[str, dict[str, Any]]:
    """``(snapshot_hash, snapshot)`` of an epoch of ``node``'s chain, kept in ``store``: ``end_height``
    defaults to the head, ``start_height`` to ``DEFAULT_EPOCH_BLOCKS`` blocks before it; the epoch must
    end at or before the head and hold at most ``MAX_EPOCH_BLOCKS`` blocks (``invalid_epoch``).

    The node's lock is held only to check the epoch and copy the ``ChainView``; the blocks are read
    from the log through a connection of their own and counted without it, so a request for a long
    epoch never stalls block production. One snapshot is computed at a time (``TelemetryBusy`` for
    a caller meanwhile)."""
    if not _computing.acquire(blocking=False):
        raise TelemetryBusy("another telemetry snapshot is being computed; try again")
    try:
        with node.lock:
            head = node.state.height
            end = head if end_height is None else end_height
            start = max(1, end - DEFAULT_EPOCH_BLOCKS + 1) if start_height is None else start_height
            if end > head or not 1 <= start <= end or end - start + 1 > MAX_EPOCH_BLOCKS:
                raise ProtocolError("invalid_epoch", f"an epoch is 1 <= start_height <= end_height <= {head} (the "
                                    f"head), at most {MAX_EPOCH_BLOCKS} blocks", field="start_height")
            view = view_chain(node.state, start, end)
        log = BlockLog(node.data_dir / "blocks.db")
        try:
            blocks = [(b.height, b.time_ms, b.events) for b in (log.block(h) for h in range(start, end + 1))
                      if b is not None]
        finally:
            log.close()
        document = compute_from_view(view, blocks, start, end, suggestions.between(start, end))
    finally:
        _computing.release()
    return store.put(document), document


def record_suggestion(log: SuggestionLog, owner: str, preview: dict[str, Any]) -> None:
    """Record the isolation suggestion of an order preview (``bastion.api.preview``), if it made one."""
    if preview["isolation"]["suggested"]:
        log.record(Suggestion(owner, preview["subaccount"], preview["market"], preview["height"]))


def snapshot_hash(document: dict[str, Any]) -> str:
    """SHA-256 hex of the snapshot's canonical bytes (sorted keys, compact, ASCII)."""
    return hashlib.sha256(canonical_bytes(document)).hexdigest()


def _ratio(numerator: int, denominator: int) -> int | None:
    return None if denominator == 0 else numerator * PPM // denominator


def _empty_market() -> dict[str, Any]:
    return {"orders": 0, "fills": 0, "fill_volume_usdc": 0, "cancels": 0, "self_trade_prevention_hits": 0,
            "liquidations": 0, "oracle_source_rejections": 0, "oracle_stale_events": 0}


def compute_telemetry(state: State, blocks: Iterable[tuple[int, int, list[dict[str, Any]]]], start_height: int,
                      end_height: int, suggestions: Iterable[Suggestion] = ()) -> dict[str, Any]:
    """The telemetry snapshot (module docstring) of the epoch ``start_height``..``end_height`` from
    ``blocks`` (``(height, time_ms, events)`` in height order, those outside the epoch ignored), the
    governance of ``state`` and the recorded ``suggestions``. Raises ``invalid_epoch``."""
    return compute_from_view(view_chain(state, start_height, end_height), blocks, start_height, end_height,
                             suggestions)


def compute_from_view(view: ChainView, blocks: Iterable[tuple[int, int, list[dict[str, Any]]]], start_height: int,
                      end_height: int, suggestions: Iterable[Suggestion] = ()) -> dict[str, Any]:
    """``compute_telemetry`` from a ``ChainView`` copied under the node's lock."""
    if not 1 <= start_height <= end_height or end_height - start_height + 1 > MAX_EPOCH_BLOCKS:
        raise ProtocolError("invalid_epoch", f"an epoch is 1 <= start_height <= end_height, at most "
                            f"{MAX_EPOCH_BLOCKS} blocks", field="start_height")
    markets: dict[str, dict[str, Any]] = {ticker: _empty_market() for ticker in view.markets}
    sides: dict[tuple[str, str], dict[int, set[str]]] = {}      # (market, owner) -> number -> sides traded
    volume: dict[tuple[str, str], int] = {}
    clusters: dict[str, list[dict[str, int]]] = {ticker: [] for ticker in view.markets}
    liquidated: list[tuple[int, str, int, str]] = []                # (height, owner, number, market)
    orders: dict[str, set[int]] = {ticker: set() for ticker in view.markets}
    first_ms = last_ms = None
    for height, time_ms, events in blocks:
        if not start_height <= height <= end_height:
            continue
        first_ms = time_ms if first_ms is None else first_ms
        last_ms = time_ms
        per_block: dict[str, int] = {}
        for event in events:
            kind, ticker = event.get("type"), event.get("market")
            if not isinstance(ticker, str) or ticker not in markets:
                continue
            row = markets[ticker]
            if kind in ("order_accepted", "order_placed"):
                orders[ticker].add(event["order_id"])
            elif kind == "order_cancelled":
                if event["reason"] == "cancelled":
                    row["cancels"] += 1
                elif event["reason"] == "self_trade":
                    row["self_trade_prevention_hits"] += 1
            elif kind == "self_trade_decrement":
                row["self_trade_prevention_hits"] += 1
            elif kind == "fill" and not event.get("liquidation") and not event.get("backstop"):
                quote = abs(fill_notional(view.markets[ticker], event["size"], event["price"]))
                row["fills"] += 1
                row["fill_volume_usdc"] += quote
                taker_side = event["taker_side"]
                maker_side = "sell" if taker_side == "buy" else "buy"
                for party, side in ((event["taker"], taker_side), (event["maker"], maker_side)):
                    key = (ticker, party["owner"])
                    sides.setdefault(key, {}).setdefault(party["number"], set()).add(side)
                    volume[key] = volume.get(key, 0) + quote
            elif kind == "liquidation":
                row["liquidations"] += 1
                per_block[ticker] = per_block.get(ticker, 0) + 1
                liquidated.append((height, event["owner"], event["number"], ticker))
            elif kind == "oracle_source_rejected":
                row["oracle_source_rejections"] += 1
            elif kind == "oracle_stale":
                row["oracle_stale_events"] += 1
        for ticker, count in sorted(per_block.items()):
            if count >= CLUSTER_MIN_LIQUIDATIONS:
                clusters[ticker].append({"height": height, "liquidations": count})
    recorded = [s for s in suggestions if start_height <= s.height <= end_height]
    for ticker, row in markets.items():
        row["orders"] = len(orders[ticker])
        row["order_to_trade_ppm"] = _ratio(row["orders"], row["fills"])
        row["cancel_ratio_ppm"] = _ratio(row["cancels"], row["orders"])
        row["liquidation_clusters"] = clusters[ticker]
        two_sided = []
        for (market, owner), numbers in sorted(sides.items()):
            buyers = {n for n, traded in numbers.items() if "buy" in traded}
            sellers = {n for n, traded in numbers.items() if "sell" in traded}
            if market == ticker and any(b != s for b in buyers for s in sellers):
                two_sided.append({"owner": owner, "subaccounts": sorted(numbers),
                                  "volume_usdc": volume[(market, owner)]})
        row["two_sided_owners"] = two_sided
        mine = [s for s in recorded if s.market == ticker]
        row["isolation_suggestions"] = len(mine)
        row["isolation_ignored"] = sum(
            1 for s in mine if any(h > s.height and o == s.owner and n == s.number and m == ticker
                                   for h, o, n, m in liquidated))
    return {"format": FORMAT, "chain_id": view.chain_id, "state_height": view.height,
            "epoch": {"start_height": start_height, "end_height": end_height, "first_block_ms": first_ms,
                      "last_block_ms": last_ms},
            "markets": markets, "governance": view.governance}


def _governance(state: State, start_height: int, end_height: int) -> dict[str, Any]:
    powers = [power for _, power in sorted(votes.get_voting_powers(state).items()) if power > 0]
    total = sum(powers)
    ranked = sorted(powers, reverse=True)
    turnout = []
    for proposal in state.proposals.values():
        closes = proposal.closed_height if proposal.closed_height is not None else proposal.deadline_height
        if proposal.snapshot_height > end_height or closes < start_height:
            continue
        supply = votes.compute_checkpoint_lookup(state.total_supply_checkpoints, proposal.snapshot_height)
        cast = proposal.yes + proposal.no + proposal.abstain + proposal.veto
        turnout.append({"proposal_id": proposal.proposal_id, "number": proposal.number,
                        "risk_class": proposal.risk_class, "status": proposal.status, "votes_cast": cast,
                        "voters": len(proposal.ballots), "turnout_ppm": _ratio(cast, supply)})
    return {"delegates": len(powers), "voting_power": total,
            "top1_share_ppm": _ratio(sum(ranked[:1]), total), "top5_share_ppm": _ratio(sum(ranked[:5]), total),
            "nakamoto_coefficient": votes.compute_nakamoto_coefficient(powers, Fraction(1, 2)) if powers else 0,
            "proposals": turnout}
