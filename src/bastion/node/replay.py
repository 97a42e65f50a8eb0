"""Replaying the block log: one block (``replay_block``), a stretch of the chain in one pass
(``replay_range``: each block verified against its roots and link, then applied), a snapshot as a
starting point (``load_snapshot``), and ``bastion replay --verify`` (``verify_log``), which spreads
the chain over worker processes.

**Parallel verification.** The log is one hash chain, but snapshots (``DIR/snapshots/HEIGHT.json``)
cut it into stretches that can be replayed at the same time: for ``workers`` processors,
``verify_log`` picks snapshot heights s_1 < ... < s_m that split the work about evenly
(``plan_segments``: m + 1 is between ``workers`` and twice that, the processes sharing the
processors when the snapshots are too far apart for even cuts) and starts one spawned process per
segment: genesis -> s_1, s_1 -> s_2, ..., s_m -> head. The process of segment k
(k >= 1) first loads snapshot s_k and trusts it only if its block hash is the log's at s_k and the
state hash *recomputed from its contents* (``state_from_document`` rebuilds every leaf's digest)
equals the state hash the log records at s_k; it then replays blocks s_k + 1 .. s_{k+1}, verifying
each block's roots and link and comparing each replayed state hash with the logged one.

Why that still verifies the chain from genesis, as one sequential pass would: the state a segment
starts from must be *the* state the previous segment replayed to, not merely one with the same
state hash (the state hash is an additive multiset hash over SHA-256 leaf digests,
``bastion.core.hashing``, made for divergence detection between honest nodes; sums modulo 2**256
yield to generalised-birthday attacks, so a crafted snapshot could match it). So each process also
reports a SHA-256 of the canonical bytes of its state's snapshot document (``state_digest``): of
the snapshot's state when it starts, of its replayed state when it reaches its end. The parent
trusts segment k's start only when it equals segment k - 1's end digest. Then segment 0 replays
blocks 1..s_1 from genesis; segment 1 starts from the very state (SHA-256 collision resistance)
that segment 0 reached, and so on to the head: every block is verified and re-applied exactly once
from the state the whole chain before it produces, and the links between segments are checked
(block s_k + 1 links to block s_k's hash, which segment k - 1 verified). Until its start is
confirmed a segment's results do not count; a snapshot whose state differs (same state hash,
other contents) is skipped and reported like any other bad snapshot. This costs one serialisation
of the state at each cut, on each side.

A snapshot that fails its check (unreadable, another block hash, a state that does not reproduce
the log's hash, a height other than its file name's) is not used: it is reported in
``skipped_snapshots`` and its segment merges with the previous one (the process that replayed up
to s_k goes on to the next end). The first failure by height is reported (``LogCorrupted`` or
``ReplayDivergence``), whichever segment found its failure first: a segment that fails stops, the
segments after the earliest failure known are stopped, and the ones before it run to their end.
Without snapshots, or with one worker, the whole log is replayed in this process in one pass.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.messages import decode_message
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.state import State
from bastion.core.transition import apply_block
from bastion.node.blocklog import (
    BlockLog, LoggedBlock, LogCorrupted, LogRolledBack, Tx, compact, json_bytes, json_value, sha256,
)

SNAPSHOTS = "snapshots"


class ReplayDivergence(Exception):
    """Replaying the log gave another result than the one it records."""

    def __init__(self, height: int, what: str, logged: str, replayed: str) -> None:
        super().__init__(f"replay diverges at height {height}: {what} logged {logged}, replayed {replayed}")
        self.height, self.what, self.logged, self.replayed = height, what, logged, replayed


def replay_block(state: State, block: LoggedBlock, txs: list[Tx], *, check_roots: bool = False) -> None:
    """Apply a logged block (its transactions ``txs``, as ``BlockLog.verify_block`` returns them) to
    ``state`` and compare what it records (the state hash; with ``check_roots`` also the results and
    events, byte for byte)."""
    try:
        typed = [(tx.sender, decode_message(tx.msg)) for tx in txs]
    except ProtocolError as error:
        raise ReplayDivergence(block.height, "transaction", "a message check_tx accepted", str(error)) from error
    result = apply_block(state, block.time_ms, typed, [tx.nonce for tx in txs])
    if result.height != block.height:
        raise ReplayDivergence(block.height, "height", str(block.height), str(result.height))
    if check_roots:
        for what, value, root in (("results", result.results, block.results_root),
                                  ("events", result.events, block.events_root)):
            replayed = sha256(compact(value))
            if replayed != root:
                raise ReplayDivergence(block.height, f"{what} root", root, replayed)
    if result.state_hash != block.state_hash:
        raise ReplayDivergence(block.height, "state hash", block.state_hash, result.state_hash)


def replay_range(log: BlockLog, state: State, end_height: int | None = None, *,
                 check_roots: bool = False) -> tuple[int, int]:
    """Bring ``state`` from its height to ``end_height`` (None: the log's head) in one pass: each
    block is verified (link, roots, header hash, transaction count: ``BlockLog.verify_block``),
    then applied and compared (``replay_block``). Returns (blocks, transactions) replayed; raises
    ``LogCorrupted`` or ``ReplayDivergence`` at the first block that fails, ``LogCorrupted`` too if
    a block up to ``end_height`` is missing."""
    start = state.height + 1
    if start == 1:
        prev_hash = log.genesis_hash()
    else:
        previous = log.block(start - 1)
        if previous is None:
            raise LogCorrupted(start - 1, "block is missing")
        prev_hash = previous.block_hash
    height, txs_replayed = start - 1, 0
    for block in log.iter_blocks(start):
        if height == end_height:
            break
        txs = log.verify_block(block, prev_hash, height + 1)
        replay_block(state, block, txs, check_roots=check_roots)
        prev_hash, height, txs_replayed = block.block_hash, block.height, txs_replayed + len(txs)
    if end_height is not None and height < end_height:
        raise LogCorrupted(height + 1, f"block {height + 1} is missing")
    return height - start + 1, txs_replayed


def load_snapshot(log: BlockLog, path: Path, head_height: int) -> State:
    """The state of the snapshot at ``path``, trusted only if its block hash is the log's at its
    height and its state, rebuilt with every leaf rehashed, has the state hash the log records
    there. Raises ``ValueError``, ``KeyError``, ``TypeError``, ``OSError`` or ``ProtocolError``
    (``SNAPSHOT_ERRORS``) otherwise."""
    return check_snapshot(log, json_value(path.read_bytes()), head_height)


def check_snapshot(log: BlockLog, document: Any, head_height: int) -> State:
    """``load_snapshot`` for a parsed snapshot document."""
    height = document["height"]
    block = log.block(height) if isinstance(height, int) and height <= head_height else None
    if block is None or block.block_hash != document["block_hash"]:
        raise ValueError(f"its block hash is not the log's at height {height}")
    state = state_from_document(document["state"])
    if state.height != height or state.state_hash != block.state_hash:
        raise ValueError("its state is not the log's")
    return state


SNAPSHOT_ERRORS = (ValueError, KeyError, TypeError, OSError, ProtocolError)


def state_digest(state_document: Any) -> str:
    """SHA-256 of a state's snapshot document in canonical bytes: what a segment's end and the next
    segment's start are compared by (module docstring)."""
    return sha256(json_bytes(state_document, sort_keys=True))


def verify_log(data_dir: str | Path, *, check_roots: bool = True, workers: int | None = None) -> dict[str, Any]:
    """``bastion replay --verify``: rebuild the state from genesis by replaying the whole log and
    compare every block's state hash (with ``check_roots`` its results and events too) with what
    the log records, spread over ``workers`` processors (default: all) by processes started from
    snapshots as the module docstring explains. Raises ``LogCorrupted`` or ``ReplayDivergence`` at the first
    block, by height, that does not match; otherwise returns a summary: blocks, transactions, head
    height and state hash, the snapshot heights replayed from, the snapshots skipped, seconds and
    messages/s."""
    started = time.perf_counter()
    data_dir = Path(data_dir)
    log = BlockLog(data_dir / "blocks.db")
    try:
        genesis = log.genesis()
        if genesis is None:
            raise LogCorrupted(0, "the log has no genesis")
        genesis_state = build_state(genesis)
        if genesis_state.state_hash != log.meta("genesis_state_hash"):
            raise ReplayDivergence(0, "genesis state hash", str(log.meta("genesis_state_hash")),
                                   genesis_state.state_hash)
        counts = log.tx_counts(1)
        head_height = counts[-1][0] if counts else 0
        log.verify_headers(head_height)
        beyond = rollback_evidence(log, data_dir / SNAPSHOTS, head_height)
        if beyond:
            raise LogRolledBack(head_height, max(beyond.values()), beyond)
        snapshots = snapshot_files(data_dir / SNAPSHOTS, head_height)
        cuts = plan_segments(counts, {height: load_cost(path) for height, path in snapshots.items()},
                             workers or os.cpu_count() or 1)
        starts = [(height, snapshots[height]) for height in cuts]
        if starts:
            outcome = _ParallelReplay(data_dir, starts, head_height, check_roots).run()
        else:
            blocks, txs = replay_range(log, genesis_state, check_roots=check_roots)
            outcome = _Outcome(blocks, txs, genesis_state.height, genesis_state.state_hash)
        log.check_tx_index(1, head_height)
    finally:
        log.close()
    seconds = time.perf_counter() - started
    return {"blocks": outcome.blocks, "txs": outcome.txs, "height": outcome.height, "state_hash": outcome.state_hash,
            "from_snapshots": outcome.from_snapshots, "skipped_snapshots": outcome.skipped_snapshots,
            "seconds": round(seconds, 3), "txs_per_s": int(outcome.txs / seconds) if seconds else 0}


def rollback_evidence(log: BlockLog, snapshots: Path, head_height: int) -> dict[str, int]:
    """What proves the log once went beyond ``head_height`` (what -> height): the log's own records
    (``BlockLog.rollback_evidence``: transaction index, high-water mark) and snapshot files named
    above the head (the node writes a snapshot only once its block is durable)."""
    evidence = {what: height for what, height in log.rollback_evidence().items() if height > head_height}
    above = [int(p.stem) for p in snapshots.glob("*.json") if p.stem.isdigit() and int(p.stem) > head_height]
    if above:
        evidence[f"snapshot {max(above):012d}.json"] = max(above)
    return evidence


def snapshot_files(directory: Path, head_height: int) -> dict[int, Path]:
    """The snapshot files that could start a segment: named ``HEIGHT.json`` with 1 <= HEIGHT < head
    (their contents are checked by the process that loads them)."""
    found = {}
    for path in directory.glob("*.json"):
        if path.stem.isdigit() and 1 <= int(path.stem) < head_height:
            found[int(path.stem)] = path
    return found


def load_cost(path: Path) -> int:
    """Loading and checking a snapshot, in transactions replayed: measured at about one per
    kilobyte of snapshot (5 MB load in 0.17 s, a transaction replays in ~35 us)."""
    return path.stat().st_size // 1_000


def plan_segments(counts: list[tuple[int, int]], load_costs: dict[int, int], cpus: int) -> list[int]:
    """The snapshot heights to cut the chain at, for ``cpus`` processors. ``counts``: (height,
    transaction count) of every block, in order; ``load_costs``: for each usable snapshot height,
    the cost of loading it, in transactions replayed (``snapshot_files``).

    The work of a segment is its transactions, a block counting as one more, plus the load of its
    snapshot. For n segments (n from ``cpus`` to ``2 * cpus``, at most one more than the
    snapshots), the n - 1 cuts are the snapshots
    nearest to the even cuts (i/n of the work; the later one on a tie). The processes of the
    segments share the processors, so a plan ends after about max(total work / cpus, largest
    segment): the plan with the least of that wins, the fewest segments on a tie. More segments
    than processors pay off when the snapshots are too far apart for even cuts: with snapshots
    every fifth of the chain, two segments take 3/5 of the one-pass time and three (2/5, 1/5, 2/5)
    about half."""
    if cpus < 2 or not load_costs:
        return []
    work = [0]
    for _, tx_count in counts:
        work.append(work[-1] + tx_count + 1)
    heights = sorted(load_costs)
    cumulative = [work[min(h, len(counts))] for h in heights]
    best: tuple[float, int, list[int]] | None = None
    for n in range(min(cpus, len(heights) + 1), min(2 * cpus, len(heights) + 1) + 1):
        cuts = set()
        for i in range(1, n):
            target = work[-1] * i / n
            at = bisect_left(cumulative, target)
            cuts.add(min((j for j in (at - 1, at) if 0 <= j < len(heights)),
                         key=lambda j: (abs(cumulative[j] - target), -j)))
        bounds = [0, *(cumulative[j] for j in sorted(cuts)), work[-1]]
        loads = [0, *(load_costs[heights[j]] for j in sorted(cuts))]
        segments = [end - start + load for start, end, load in zip(bounds, bounds[1:], loads)]
        plan = (max(sum(segments) / cpus, max(segments)), len(segments), [heights[j] for j in sorted(cuts)])
        if best is None or plan[:2] < best[:2]:
            best = plan
    assert best is not None
    return best[2]


@dataclass
class _Outcome:
    blocks: int
    txs: int
    height: int
    state_hash: str
    from_snapshots: list[int] = field(default_factory=list)
    skipped_snapshots: list[str] = field(default_factory=list)


@dataclass
class _Segment:
    """Blocks ``first``..``end`` (``snapshot``: the one segment ``first - 1`` starts from; None for
    genesis) and what its process has said."""

    first: int
    end: int
    snapshot: Path | None
    process: Any = None
    connection: Connection | None = None
    trusted: bool | None = None  # its start is the replayed state (None: not known yet)
    start_digest: str | None = None  # ``state_digest`` of the snapshot's state, once loaded and checked
    reached: int | None = None  # the process replayed up to here and waits for "stop or go on"
    end_digest: str | None = None  # ``state_digest`` of the state at ``reached`` (None at the head)
    finished: bool = False
    blocks: int = 0
    txs: int = 0
    head_hash: str = ""
    failure: LogCorrupted | ReplayDivergence | None = None

    @property
    def confirmed(self) -> bool:
        """Its results count: it starts at genesis, or from a snapshot proven to be the state the
        previous segment replayed to."""
        return self.snapshot is None or self.trusted is True


class _ParallelReplay:
    """The parent's side of a parallel replay: one process per segment, answers to "I reached my
    end: stop or go on?" (go on when the next segment's snapshot was not trusted), and the
    earliest failure."""

    def __init__(self, data_dir: Path, starts: list[tuple[int, Path]], head_height: int, check_roots: bool) -> None:
        self.data_dir, self.check_roots, self.head_height = data_dir, check_roots, head_height
        bounds = [(0, None), *starts]
        self.segments = [_Segment(start + 1, bounds[i + 1][0] if i + 1 < len(bounds) else head_height, path)
                         for i, (start, path) in enumerate(bounds)]
        self.skipped: list[tuple[int, str]] = []

    def run(self) -> _Outcome:
        context = multiprocessing.get_context("spawn")
        try:
            for segment in self.segments:
                parent, child = context.Pipe()
                segment.connection = parent
                segment.process = context.Process(
                    target=_segment_worker, name=f"bastion-replay-{segment.first}", daemon=True,
                    args=(child, str(self.data_dir / "blocks.db"),
                          None if segment.snapshot is None else str(segment.snapshot), segment.end, self.head_height,
                          self.check_roots))
                segment.process.start()
                child.close()
            while not all(s.finished for s in self.segments):
                by_connection = {s.connection: s for s in self.segments if not s.finished}
                for connection in wait(list(by_connection)):  # type: ignore[arg-type]
                    self._receive(by_connection[connection])  # type: ignore[index]
                self._answer()
        finally:
            for segment in self.segments:
                if segment.process is not None and segment.process.pid is not None:
                    if segment.process.is_alive():
                        segment.process.terminate()
                    segment.process.join()
                if segment.connection is not None:
                    segment.connection.close()
        counted = [s for s in self.segments if s.confirmed]
        failures = [s.failure for s in counted if s.failure is not None]
        if failures:
            raise min(failures, key=lambda failure: failure.height)
        return _Outcome(sum(s.blocks for s in counted), sum(s.txs for s in counted), self.head_height,
                        next(s.head_hash for s in counted if s.head_hash),
                        [s.first - 1 for s in counted if s.snapshot is not None],
                        [reason for _, reason in sorted(self.skipped)])

    def _receive(self, segment: _Segment) -> None:
        assert segment.connection is not None
        try:
            message = segment.connection.recv()
        except EOFError:
            raise RuntimeError(f"the replay process for blocks {segment.first}.. exited "
                               f"(code {segment.process.exitcode})") from None
        kind = message[0]
        if kind == "loaded":
            segment.start_digest = message[1]
        elif kind == "skipped":
            segment.trusted, segment.finished = False, True
            self.skipped.append((segment.first - 1, message[1]))
        elif kind == "reached":
            _, segment.reached, blocks, txs, state_hash, segment.end_digest = message
            segment.blocks, segment.txs = segment.blocks + blocks, segment.txs + txs
            if segment.reached == self.head_height:
                segment.head_hash = state_hash
        elif kind == "corrupted":
            segment.failure, segment.finished = LogCorrupted(*message[1:]), True
        elif kind == "diverged":
            segment.failure, segment.finished = ReplayDivergence(*message[1:]), True
        else:
            raise RuntimeError(f"the replay process for blocks {segment.first}.. failed: {message[1]}")

    def _answer(self) -> None:
        """Tell each process that reached its end to stop, or to go on through the next segment if
        that one's snapshot was not trusted; stop the processes past the earliest failure."""
        self._confirm()
        earliest = min((s.failure.height for s in self.segments if s.confirmed and s.failure is not None),
                       default=None)
        for segment in self.segments:
            if segment.finished or segment.process is None:
                continue
            if earliest is not None and segment.first > earliest:
                segment.process.terminate()
                segment.finished = True
                continue
            if segment.reached is None:
                continue
            following = next((s for s in self.segments if s.first == segment.reached + 1), None)
            if following is None or following.trusted or (earliest is not None and earliest <= segment.reached):
                self._send(segment, None)
                segment.finished = True
            elif following.trusted is False:  # merged: this process goes on through its blocks
                self._send(segment, following.end)
            # else: that snapshot is still being checked; answer when its verdict arrives

    def _confirm(self) -> None:
        """Compare each segment's end, once reached, with the start of the segment that follows it,
        once loaded: equal, the follower is trusted; different, its snapshot holds another state
        with the same state hash, so it is skipped, its process stopped and its results dropped,
        and the segment before goes on through its blocks."""
        for segment in self.segments:
            if segment.reached is None:
                continue
            following = next((s for s in self.segments if s.first == segment.reached + 1), None)
            if following is None or following.trusted is not None or following.start_digest is None:
                continue
            if segment.end_digest == following.start_digest:
                following.trusted = True
                continue
            following.trusted, following.finished, following.failure = False, True, None
            if following.process is not None and following.process.is_alive():
                following.process.terminate()
            assert following.snapshot is not None  # only a segment after the first follows another
            self.skipped.append((following.first - 1, (f"{following.snapshot.name}: its state has the log's state "
                                 "hash but is not the state the replay reached")))

    @staticmethod
    def _send(segment: _Segment, end: int | None) -> None:
        assert segment.connection is not None
        segment.connection.send(end)
        segment.reached = None


def _segment_worker(connection: Connection, log_path: str, snapshot: str | None, end: int, head_height: int,
                    check_roots: bool) -> None:
    """A replay process: load the starting state (genesis, or a snapshot checked against the log),
    replay to ``end``, report, and go on to the end the parent names until it says stop. Messages
    to the parent: ("loaded", state digest), ("skipped", reason), ("reached", height, blocks, txs,
    state hash, state digest or None at the head), ("corrupted", height, reason), ("diverged",
    height, what, logged, replayed), ("error", text)."""
    from bastion.node.node import tune_garbage_collector

    log = None
    try:
        log = BlockLog(log_path, quick_check=False)
        if snapshot is None:
            genesis = log.genesis()
            assert genesis is not None  # checked by the parent
            state = build_state(genesis)
        else:
            path = Path(snapshot)
            try:
                document = json_value(path.read_bytes())
                state = check_snapshot(log, document, end)
                if state.height != int(path.stem):
                    raise ValueError(f"it holds height {state.height}")
                digest = state_digest(document["state"])
            except SNAPSHOT_ERRORS as error:
                connection.send(("skipped", f"{path.name}: {error}"))
                return
            connection.send(("loaded", digest))
        tune_garbage_collector()
        next_end: int | None = end
        while next_end is not None:
            blocks, txs = replay_range(log, state, next_end, check_roots=check_roots)
            end_digest = state_digest(state_to_document(state)) if next_end < head_height else None
            connection.send(("reached", next_end, blocks, txs, state.state_hash, end_digest))
            next_end = connection.recv()
    except LogCorrupted as error:
        connection.send(("corrupted", error.height, error.reason))
    except ReplayDivergence as error:
        connection.send(("diverged", error.height, error.what, error.logged, error.replayed))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
        connection.send(("error", repr(error)))
    finally:
        if log is not None:
            log.close()
        connection.close()
