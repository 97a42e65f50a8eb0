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

import threading
from pathlib import Path
from typing import Any, Final

from bastion.core.book import BUY, SELL
from bastion.core.dispute_state import Dispute, DisputeTarget, IncidentProgram
from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.messages import decode_message
from bastion.core.state import State
from bastion.core.transition import apply_block
from bastion.core.units import format_decimal, format_usdc
from bastion.node.blocklog import BlockLog
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


def find_dispute_opened(data_dir: str | Path, dispute_id: int) -> dict[str, Any]:
    """The ``dispute_opened`` event of ``dispute_id`` in the node's log (read, not replayed: a log
    whose replay diverges at the disputed block must still be checkable). ``missing_chain``,
    ``unknown_dispute``."""
    path = Path(data_dir) / "blocks.db"
    if not path.is_file():
        raise ProtocolError("missing_chain", f"{data_dir} holds no block log (blocks.db)", field="data")
    log = BlockLog(path)
    try:
        for block in log.iter_blocks(1):
            for event in block.events:
                if event.get("type") == "dispute_opened" and event.get("dispute_id") == dispute_id:
                    return event
    finally:
        log.close()
    raise ProtocolError("unknown_dispute", f"no dispute {dispute_id}", field="dispute_id")


def check_dispute(data_dir: str | Path, dispute_id: int) -> dict[str, Any]:
    """``bastion dispute check ID``: the dispute's opening found in the log, then its target's block
    replayed (``check_target_block``). ``unknown_dispute`` if the chain has no such dispute."""
    opened = find_dispute_opened(data_dir, dispute_id)
    return {"dispute_id": dispute_id, **check_target_block(data_dir, opened["target_height"], opened["target_kind"],
                                                           opened["owner"], opened["number"], opened["market"])}


def check_dispute_target(data_dir: str | Path, dispute: Dispute) -> dict[str, Any]:
    """``check_target_block`` for a dispute's target."""
    return check_target_block(data_dir, dispute.target_height, dispute.target_kind, dispute.owner, dispute.number,
                              dispute.market)


class CheckBusy(Exception):
    """Another dispute check is replaying a block on this node (``DisputeChecks``)."""


class DisputeChecks:
    """``check_dispute_target`` for the API and the web page: a check replays a past block from the
    log (seconds on a long chain), so one runs at a time per node and a second caller meanwhile gets
    ``CheckBusy``; an answer never changes (the block and the rules are fixed), so the latest
    ``kept`` answers are served again without a replay."""

    def __init__(self, data_dir: str | Path, kept: int = 256) -> None:
        self.data_dir, self.kept = Path(data_dir), kept
        self._running = threading.Lock()
        self._answers: dict[int, dict[str, Any]] = {}

    def check(self, dispute: Dispute) -> dict[str, Any]:
        """The replay's answer for ``dispute`` (``check_dispute_target``). Raises ``CheckBusy``, and
        ``missing_chain`` / ``unknown_block`` as ``check_target_block`` does."""
        answer = self._answers.get(dispute.dispute_id)
        if answer is not None:
            return answer
        if not self._running.acquire(blocking=False):
            raise CheckBusy("another dispute check is replaying a block; try again")
        try:
            answer = check_dispute_target(self.data_dir, dispute)
        finally:
            self._running.release()
        if len(self._answers) >= self.kept:
            self._answers.pop(next(iter(self._answers)))     # the oldest answer leaves first
        self._answers[dispute.dispute_id] = answer
        return answer


# --------------------------------------------------------------------------------------- views
def _price(state: State, market: str, ticks: int) -> str:
    decimals = state.markets[market].price_decimals if market in state.markets else 0
    return format_decimal(ticks, decimals)


def describe_target(state: State, target: DisputeTarget) -> dict[str, Any]:
    """A target in its JSON form for people and programs (decimal strings)."""
    market = state.markets.get(target.market)
    size_decimals = market.size_decimals if market is not None else 0
    return {"target_id": target.target_id, "kind": target.kind, "owner": target.owner, "number": target.number,
            "market": target.market, "pool": target.pool, "height": target.height, "time_ms": target.time_ms,
            "size": format_decimal(target.size, size_decimals), "received": format_usdc(target.received_usdc),
            "oracle_price": _price(state, target.market, target.oracle_price),
            "reference_price": _price(state, target.market, target.reference_price),
            "loss": format_usdc(target.loss_usdc), "claimed_by": target.claimed_by,
            "dispute_until_ms": target.time_ms + state.disputes.params.window_ms,
            "waterfall_rung": RUNGS.get(target.kind, target.kind)}


def describe_dispute(state: State, dispute: Dispute) -> dict[str, Any]:
    """A dispute in its JSON form: claim, bond, votes, ruling, appeal, outcome and timeline."""
    timeline = [{"what": "target", "height": dispute.target_height},
                {"what": "opened", "height": dispute.opened_height, "time_ms": dispute.opened_ms},
                {"what": "ruling deadline", "time_ms": dispute.deadline_ms}]
    if dispute.appeal_until_ms is not None:
        timeline.append({"what": "appeal window ends", "time_ms": dispute.appeal_until_ms})
    if dispute.proposal_id is not None:
        timeline.append({"what": "token vote", "proposal_id": dispute.proposal_id})
    if dispute.closed_height is not None:
        timeline.append({"what": dispute.status, "height": dispute.closed_height})
    return {
        "dispute_id": dispute.dispute_id, "status": dispute.status, "target": dispute.target_id,
        "target_kind": dispute.target_kind, "target_height": dispute.target_height, "owner": dispute.owner,
        "number": dispute.number, "market": dispute.market, "pool": dispute.pool, "claim_kind": dispute.claim_kind,
        "claim": format_usdc(dispute.claim_usdc), "loss": format_usdc(dispute.loss_usdc),
        "bond": format_usdc(dispute.bond_usdc), "statement": dispute.statement,
        "votes": [{"member": member, "upheld": upheld, "award": format_usdc(award)}
                  for member, (upheld, award) in sorted(dispute.votes.items())],
        "council_threshold": state.council.threshold,
        "ruling": None if dispute.ruling_upheld is None else {
            "upheld": dispute.ruling_upheld, "award": format_usdc(dispute.ruling_award_usdc)},
        "appellant": dispute.appellant, "appeal_bond": format_usdc(dispute.appeal_bond_usdc),
        "proposal_id": dispute.proposal_id,
        "outcome": None if dispute.upheld is None else {
            "upheld": dispute.upheld, "award": format_usdc(dispute.award_usdc), "paid": format_usdc(dispute.paid_usdc),
            "capped_by": dispute.capped_by},
        "timeline": timeline,
        "target_record": (describe_target(state, state.disputes.targets[dispute.target_id])
                          if dispute.target_id in state.disputes.targets else None),
    }


def describe_program(state: State, program: IncidentProgram) -> dict[str, Any]:
    """An incident program in its JSON form."""
    return {"program_id": program.program_id, "status": program.status, "market": program.market,
            "pool": program.pool, "from_height": program.from_height, "to_height": program.to_height,
            "rule": program.rule, "reference_price": _price(state, program.market, program.reference_price),
            "budget": format_usdc(program.budget_usdc), "entitled": format_usdc(program.entitled_usdc),
            "escrow": format_usdc(program.escrow_usdc), "targets": program.targets,
            "claim_until_ms": program.claim_until_ms, "proposal_id": program.proposal_id,
            "payouts": [{"owner": owner, "number": number, "amount": format_usdc(amount)}
                        for (owner, number), amount in program.payouts.items()]}
