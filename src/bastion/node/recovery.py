"""Start-up recovery: the state at the log's head, from the newest trusted snapshot and the log.

``recover_state`` first checks what no replay would see:

1. the genesis state hash the log records is the one this code computes (a log written by another
   version of the state encoding or commitment is refused, not replayed into a divergence);
2. the whole header chain, block 1 to the head (``BlockLog.verify_headers``: every header hashes
   to its block hash and links to the previous one): hashing headers only, cheap even for a long
   chain, and no block below the snapshot is re-executed;
3. nothing proves the log was longer than it is (``replay.rollback_evidence``: transaction index
   entries or the high-water mark above the head, snapshot files named above it). A tail cut off
   rolls back acknowledged transactions, so the node refuses to start (``LogRolledBack``) unless
   told ``accept_rollback``: then the rollback is reported in ``Recovery.rolled_back_from`` and,
   for a node (``discard_rolled_back``), the stale records are set aside (index entries above the
   head dropped, snapshots above it moved to ``snapshots/rolled-back/``) so the chain can go on.

Then the newest snapshot whose block hash is in the log and whose contents reproduce the logged
state hash (``replay.load_snapshot``; others are skipped and listed), and the log after it
verified body by body and replayed through the state machine (``replay.replay_range``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.state import State
from bastion.node.blocklog import BlockLog, LogCorrupted, LogRolledBack
from bastion.node.replay import SNAPSHOT_ERRORS, SNAPSHOTS, load_snapshot, replay_range, rollback_evidence

ROLLED_BACK = "rolled-back"  # the subdirectory of snapshots/ where an accepted rollback moves the newer ones


@dataclass
class Recovery:
    """What start-up did: where it started from and how much it replayed; ``rolled_back_from``:
    the height the log was proven to have reached when a rollback was accepted (else None), with
    ``rollback_evidence`` (what -> height)."""

    snapshot_height: int = 0
    replayed_blocks: int = 0
    replayed_txs: int = 0
    seconds: float = 0.0
    skipped_snapshots: list[str] = field(default_factory=list)
    rolled_back_from: int | None = None
    rollback_evidence: dict[str, int] = field(default_factory=dict)


def recover_state(log: BlockLog, genesis: dict[str, Any], snapshots: Path, recovery: Recovery, *,
                  accept_rollback: bool = False, discard_rolled_back: bool = False) -> State:
    """The state at the log's head (module docstring). Raises ``LogCorrupted`` (``LogRolledBack``
    for a log proven longer, unless ``accept_rollback``) or ``ReplayDivergence``. Reads only,
    unless ``discard_rolled_back`` (with ``accept_rollback``) sets the stale records aside."""
    started = time.perf_counter()
    genesis_state = build_state(genesis)
    if genesis_state.state_hash != log.meta("genesis_state_hash"):
        raise LogCorrupted(0, f"the log's genesis state hash {log.meta('genesis_state_hash')} is not this version's "
                              f"{genesis_state.state_hash} (a log of another state encoding or commitment)")
    head = log.head()
    head_height = 0 if head is None else head.height
    log.verify_headers(head_height)
    beyond = rollback_evidence(log, snapshots, head_height)
    if beyond:
        if not accept_rollback:
            raise LogRolledBack(head_height, max(beyond.values()), beyond)
        recovery.rolled_back_from, recovery.rollback_evidence = max(beyond.values()), beyond
        if discard_rolled_back:
            _set_aside(log, snapshots, head_height)
    state = _newest_snapshot(log, snapshots, head_height, recovery)
    if state is None:
        state = genesis_state
    recovery.snapshot_height = state.height
    recovery.replayed_blocks, recovery.replayed_txs = replay_range(log, state)
    log.check_tx_index(recovery.snapshot_height + 1, head_height)
    recovery.seconds = time.perf_counter() - started
    return state


def _set_aside(log: BlockLog, snapshots: Path, head_height: int) -> None:
    """An accepted rollback: forget the index entries above the head and move the snapshots above it
    to ``snapshots/rolled-back/`` (kept for inspection, out of recovery's and pruning's way)."""
    log.forget_after(head_height)
    for path in snapshots.glob("*.json"):
        if path.stem.isdigit() and int(path.stem) > head_height:
            (snapshots / ROLLED_BACK).mkdir(exist_ok=True)
            path.replace(snapshots / ROLLED_BACK / path.name)


def _newest_snapshot(log: BlockLog, snapshots: Path, head_height: int, recovery: Recovery) -> State | None:
    for path in sorted(snapshots.glob("*.json"), reverse=True):
        try:
            return load_snapshot(log, path, head_height)
        except SNAPSHOT_ERRORS as error:
            recovery.skipped_snapshots.append(f"{path.name}: {error}")
    return None


def load_committed_state(data_dir: str | Path, *, accept_rollback: bool = False) -> tuple[State, Recovery]:
    """The latest committed state of a node's data directory, recovered as the node recovers it
    (newest valid snapshot, then the log replayed), without starting a node or writing anything
    (``bastion stress --data``). ``missing_chain`` if DIR holds no block log with a genesis."""
    path = Path(data_dir) / "blocks.db"
    if not path.is_file():
        raise ProtocolError("missing_chain", f"{data_dir} holds no block log (blocks.db)", field="data")
    log = BlockLog(path)
    try:
        genesis = log.genesis()
        if genesis is None:
            raise ProtocolError("missing_chain", f"{data_dir} holds no chain yet (no genesis)", field="data")
        recovery = Recovery()
        state = recover_state(log, genesis, Path(data_dir) / SNAPSHOTS, recovery, accept_rollback=accept_rollback)
        return state, recovery
    finally:
        log.close()
