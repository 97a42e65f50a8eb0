"""A node's chain read from its data directory, for the stress tools that recompute from it
(``bastion.stress.verify``, ``bastion.stress.testnet``): the state at a past height, and the error
they raise when an input is missing."""
from __future__ import annotations

from pathlib import Path

from bastion.core.genesis import build_state
from bastion.core.state import State
from bastion.stress.runner import StressInputError

__all__ = ["VerifyInputError", "state_at"]


class VerifyInputError(StressInputError):
    """Something needed to recompute the report is missing or does not match (nothing was judged)."""


def state_at(data: Path, height: int) -> State:
    """The committed state at ``height`` of a node's data directory, read only: the newest valid
    snapshot at or below it (else genesis), then the log replayed up to it, every block verified
    and its state hash compared (``bastion.node.replay.replay_range``)."""
    from bastion.node.blocklog import BlockLog
    from bastion.node.replay import SNAPSHOT_ERRORS, SNAPSHOTS, load_snapshot, replay_range, snapshot_files

    path = data / "blocks.db"
    if not path.is_file():
        raise VerifyInputError(f"{data} holds no block log (blocks.db)")
    log = BlockLog(path)
    try:
        genesis = log.genesis()
        head = log.head()
        if genesis is None or head is None or head.height < height:
            raise VerifyInputError(f"{data} does not reach height {height}")
        state: State | None = None
        for snap_height, snap_path in sorted(snapshot_files(data / SNAPSHOTS, head.height).items(), reverse=True):
            if snap_height <= height:
                try:
                    state = load_snapshot(log, snap_path, head.height)
                    break
                except SNAPSHOT_ERRORS:
                    continue
        if state is None:
            state = build_state(genesis)
        replay_range(log, state, height)
        return state
    finally:
        log.close()
