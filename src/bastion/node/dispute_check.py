"""Deciding an engine-deviation claim by replay (issue 18): ``bastion dispute check ID`` and
``GET /v1/disputes/{id}/check``.

A dispute names a target: one owner's subaccount closed in one market by a liquidation, backstop
takeover, deleveraging or final settlement in one block (``bastion.core.disputes``). The check
rebuilds the state *before* that block from the node's data directory (the newest valid snapshot
below it, else genesis, then the log replayed block by block with every state hash compared,
``bastion.node.replay.replay_range``), applies the block's logged transactions again with the rules
of this code (``bastion.core.transition.apply_block``) and compares, event for event, what the log
recorded for the target with what the rules give now. ``deviation`` is true when they differ (or
when the replayed block's state hash differs from the logged one): the protocol did not follow its
own rules, decided by replay, not by opinion.

The answer also lays out the evidence the chain recorded for the block: the market's oracle
submissions and aggregated price, the book's levels before the block, the risk inputs of each
target event (net collateral, maintenance, bankruptcy quote, fillable price) and the waterfall rung.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from bastion.core.book import BUY, SELL
from bastion.core.dispute_state import Dispute
from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.messages import decode_message
from bastion.core.state import State
from bastion.core.transition import apply_block
from bastion.node.blocklog import BlockLog
from bastion.node.recovery import load_committed_state
from bastion.node.replay import SNAPSHOT_ERRORS, SNAPSHOTS, load_snapshot, replay_range, snapshot_files

# the loss waterfall's rung of each target kind (DESIGN.md section 8)
RUNGS: Final = {"liquidation": "1: liquidation order against the book", "backstop_takeover": "2: backstop takeover",
                "deleveraging": "3: auto-deleveraging", "final_settlement": "final settlement of a delisted market"}
_ORACLE_EVENTS: Final = ("oracle_submission", "oracle_source_rejected", "oracle_price", "oracle_stale")
BOOK_LEVELS: Final = 10


def _state_before(log: BlockLog, data_dir: Path, height: int) -> State:
    """The state at ``height - 1``: from the newest valid snapshot at or below it, else genesis."""
    state: State | None = None
    for snap_height, path in sorted(snapshot_files(data_dir / SNAPSHOTS, height).items(), reverse=True):
        if snap_height <= height - 1:
            try:
                state = load_snapshot(log, path, height - 1)
                break
            except SNAPSHOT_ERRORS:
                continue
    if state is None:
        genesis = log.genesis()
        if genesis is None:
            raise ProtocolError("missing_chain", f"{data_dir} holds no chain yet (no genesis)", field="data")
        state = build_state(genesis)
    replay_range(log, state, height - 1)
    return state


def _book(state: State, market: str) -> dict[str, list[list[int]]]:
    book = state.markets[market].book
    return {side_name: [[price, size] for price, size, *_ in list(book.iter_levels(side))[:BOOK_LEVELS]]
            for side_name, side in (("bids", BUY), ("asks", SELL))}


def _matches(event: dict[str, Any], kind: str, owner: str, number: int, market: str) -> bool:
    return (event.get("type") == kind and event.get("owner") == owner and event.get("number") == number
            and event.get("market") == market)


def check_target_block(data_dir: str | Path, height: int, kind: str, owner: str, number: int,
                       market: str) -> dict[str, Any]:
    """Replay block ``height`` of the node in ``data_dir`` and compare the target's recorded events
    with the rules' (module docstring). ``missing_chain`` or ``unknown_block`` when the log cannot."""
    data_dir = Path(data_dir)
    path = data_dir / "blocks.db"
    if not path.is_file():
        raise ProtocolError("missing_chain", f"{data_dir} holds no block log (blocks.db)", field="data")
    log = BlockLog(path)
    try:
        block = log.block(height)
        if block is None:
            raise ProtocolError("unknown_block", f"the log has no block {height}", field="height")
        state = _state_before(log, data_dir, height)
        book = _book(state, market) if market in state.markets else {"bids": [], "asks": []}
        txs = block.txs
        typed = [(tx.sender, decode_message(tx.msg)) for tx in txs]
        result = apply_block(state, block.time_ms, typed, [tx.nonce for tx in txs])
        logged = block.events
    finally:
        log.close()
    recorded = [e for e in logged if _matches(e, kind, owner, number, market)]
    replayed = [e for e in result.events if _matches(e, kind, owner, number, market)]
    state_hash_matches = result.state_hash == block.state_hash
    return {
        "height": height, "time_ms": block.time_ms, "kind": kind, "owner": owner, "number": number, "market": market,
        "recorded": recorded, "replayed": replayed,
        "deviation": recorded != replayed or not state_hash_matches,
        "state_hash_matches": state_hash_matches,
        "evidence": {
            "oracle": [e for e in logged if e.get("type") in _ORACLE_EVENTS and e.get("market") == market],
            "book_before_block": book,
            "risk_inputs": [{name: e[name] for name in ("net_collateral", "maintenance", "bankruptcy_quote",
                                                         "fillable_price", "oracle_price", "insurance_delta")
                             if name in e} for e in recorded],
            "waterfall_rung": RUNGS.get(kind, kind),
        },
    }


def check_dispute(data_dir: str | Path, dispute_id: int) -> dict[str, Any]:
    """``bastion dispute check ID``: the dispute from the node's committed state, then its target's
    block replayed (``check_target_block``). ``unknown_dispute`` if the chain has no such dispute."""
    state, _ = load_committed_state(data_dir)
    dispute = state.disputes.disputes.get(dispute_id)
    if dispute is None:
        raise ProtocolError("unknown_dispute", f"no dispute {dispute_id}", field="dispute_id")
    return {"dispute_id": dispute_id, **check_dispute_target(data_dir, dispute)}


def check_dispute_target(data_dir: str | Path, dispute: Dispute) -> dict[str, Any]:
    """``check_target_block`` for a dispute's target."""
    return check_target_block(data_dir, dispute.target_height, dispute.target_kind, dispute.owner, dispute.number,
                              dispute.market)
