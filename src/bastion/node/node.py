"""A Bastion node: mempool -> block producer -> state machine -> block log + snapshots -> indexer.

Life of a transaction: ``submit`` runs ``check_tx`` and queues it (the client hears "accepted",
which promises nothing; at most ``max_pending_per_sender`` per sender); ``produce_block`` takes up
to ``max_block_txs`` in arrival order, drops those whose sender fails the ante check now
(``bastion.core.ante``: no collateral; ``tx_status`` then answers ``refused``, and nothing of them
is logged), applies
them with ``Application.finalize_block`` at the block time (the node's clock, never earlier than
the previous block), appends the block to the log in one durable transaction, and only then marks
its transactions committed ("acknowledged": ``tx_status`` answers with the height and result).
Blocks are produced every ``block_time_ms`` and as soon as the mempool holds a full block.

The write is pipelined, one block deep, by a writer thread. ``start_block`` applies a block and
seals it (bodies encoded, roots and hash computed: ``blocklog.seal_block``) holding ``lock``, the
state lock, then hands block and lock to the writer and returns; the writer compresses and writes
the block in one SQLite transaction with its fsync (zlib and sqlite3 release the GIL, so this runs
while the producer's thread accepts the next block's transactions), acknowledges it (its
transactions leave the mempool, ``tx_status`` finds them in the log, ``wait_committed`` wakes up)
and only then releases ``lock``. So whoever holds ``lock`` (``tx_status``, the API's reads, the
WebSocket hub) sees the state at the durable head and never a block in flight, and the next
``start_block`` waits for the previous block to be durable. ``on_block``, the block listeners and
the indexer are called for a durable block by the producer's thread: at its next ``start_block``
or ``flush``, and in ``run`` as soon as the block is durable. ``produce_block`` is ``start_block``
followed by ``flush`` (wait until durable, run the callbacks). A crash with a block in flight loses
only that block, which nobody heard of. ``close`` lets the block in flight become durable first.
The mempool has its own lock: ``submit`` never waits for a write.

Fail-stop. A failed block write or fsync (disk full, I/O error) and any unexpected exception while
applying a block stop the node before anything of that block is acknowledged: ``failure`` is set
(``NodeStopped``, with the reason) while the state lock is still held, ``on_fatal`` is called with it
(``bastion node`` logs one line and exits with status 4: the state in memory may be half a block
ahead of the log, so the process must not go on serving it), and ``start_block``, ``flush``,
``submit`` and ``run`` raise ``NodeStopped`` from then on (restart to recover from the log). A
failed *snapshot* write is not fatal (the log is what is durable): it is reported
(``snapshot_error``, ``on_warning``) and tried again at the next snapshot point. A block listener
that raises (the WebSocket hub) is reported and skipped: what it serves is not consensus.

Start-up (``Node(...)``) is recovery (``bastion.node.recovery``): the whole header chain verified,
a log proven shorter than it was (a newer snapshot, index entries or the high-water mark above its
head) refused (``LogRolledBack``) unless ``accept_rollback``, then the newest snapshot whose block
hash is in the log (a damaged or foreign snapshot is skipped and reported), then the log after it
verified link by link and replayed through the state machine in one pass
(``bastion.node.replay.replay_range``), each block's state hash compared with the logged one. A
log that does not verify (``LogCorrupted``) or a replay that diverges (``ReplayDivergence``) stops
the node with the height and the reason: a damaged log is never silently accepted. ``bastion replay --verify`` is
``bastion.node.replay``'s ``verify_log``, which replays the whole chain, in parallel from the snapshots.

Read models (``bastion.node.indexer``) are built by a worker process with its own connections: after
each commit the producer only signals the new head; the worker indexes every block after the read
models' height, from the log (so at start-up it catches up on what a crash left unindexed). They
lag the head by at most the blocks being indexed, and a failure there never stops block production
(it is reported in ``IndexerWorker.error``; the worker is ``bastion.node.indexer_process``).

Upgrades. Before applying a block, ``start_block`` compares the node's ``code_hash`` (its own
state machine sources, ``runtime.compute_code_hash``) with the upgrade governance scheduled
(``bastion.core.upgrades``): from the upgrade's height on, a node running other code stops with
``UpgradeRequired`` (a ``NodeStopped``: ``bastion node`` exits with status 5) before taking any
transaction of that block, so its log, snapshots and state stay at the last block it may apply; the
operator restarts it with the named code, which recovers and goes on. The check holds at every
later block too, so an old binary restarted on an upgraded chain stops again at once.

Snapshots are written every ``snapshot_every`` blocks, and sooner when ``snapshot_every_txs``
transactions were committed since the last one, which bounds the replay after a crash
(``DIR/snapshots/HEIGHT.json``, canonical JSON of ``bastion.core.snapshot``, written to a temporary
file, fsync'd and renamed). Kept (``bastion.node.retention.snapshots_to_keep``): the newest ``keep_snapshots``, for
recovery, plus up to ``2 * SPREAD + 1`` spread evenly along the chain, so that
``replay --verify`` always finds cut points to share the chain between processes while the
directory stays bounded; ``keep_snapshots=0`` keeps every snapshot. The
producer encodes the document at the block it follows (``blocklog.json_bytes``: the bytes of
``canonical_bytes``, with orjson); the writer writes the file after that block is durable, so a
snapshot never refers to a block the log may lose.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bastion.core.errors import ProtocolError
from bastion.core.upgrades import check_node_code
from bastion.core.genesis import build_state
from bastion.core.snapshot import state_to_document
from bastion.durable import write_atomically
from bastion.node.app import Application
from bastion.core.messages import Message
from bastion.node.blocklog import (
    BlockLog, LoggedBlock, LogCorrupted, SealedBlock, Tx, canonical, json_bytes, seal_block,
)
from bastion.node.indexer_process import IndexerWorker
from bastion.node.mempool import Mempool
from bastion.node.recovery import Recovery, recover_state
from bastion.node.replay import SNAPSHOTS
from bastion.node.retention import ReadModelRetention, prune_snapshots
from bastion.node.runtime import compute_code_hash


REFUSED_KEPT = 10_000   # refusals of the block producer remembered for tx_status


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class NodeStopped(Exception):
    """Writing a block failed, or applying one raised an unexpected exception: the node stops
    producing and accepting transactions. Nothing of the block that failed, or after it, was
    acknowledged; restarting recovers from the log."""


class UpgradeRequired(NodeStopped):
    """The next block is at or after the scheduled upgrade's height and this node runs other code
    (``bastion.core.upgrades.check_node_code``): it stopped cleanly before taking that block, with
    the durable head and the state in step; restart it with the named code."""


class Node:
    """One node over a data directory (see the module docstring). Thread-safe: ``submit``,
    ``tx_status`` and ``produce_block`` may be called from different threads.

    ``lock`` is the state lock: whoever holds it sees the state at the log's durable head. It is
    held from the moment a block starts being applied until that block is durable, so it passes
    from the producer (``start_block``) to the writer thread, which releases it after the fsync;
    hence a plain ``Lock`` under the condition, never re-entered. The mempool has its own lock, so
    transactions are accepted while a block is applied and written."""

    def __init__(self, data_dir: str | Path, genesis: dict[str, Any] | None = None, *, max_block_txs: int = 1_000,
                 snapshot_every: int = 1_000, keep_snapshots: int = 3, clock_ms: Callable[[], int] = wall_clock_ms,
                 on_block: Callable[[LoggedBlock], None] | None = None, read_models: str | None = None,
                 snapshot_every_txs: int = 200_000, max_pending_per_sender: int = 1_000,
                 on_fatal: Callable[[NodeStopped], None] | None = None,
                 on_warning: Callable[[str], None] | None = None, accept_rollback: bool = False,
                 read_model_retention: ReadModelRetention | None = None,
                 code_hash: str | None = None) -> None:
        """``read_models``: a URL for ``open_read_models`` (``sqlite:///...`` or ``postgresql://...``),
        ``"default"`` for ``DIR/readmodels.db``, or None for no indexer. ``max_pending_per_sender``
        bounds one sender's transactions in the mempool (``too_many_pending``). ``on_fatal``: called
        once, holding the state lock, when the node stops (see "Fail-stop" in the module docstring);
        ``on_warning``: a failed snapshot write or block listener (default: printed to stderr).
        ``accept_rollback``: start even if records prove the log was longer
        (``bastion.node.recovery``; reported in ``recovery.rolled_back_from``).
        ``read_model_retention``: how long the read models keep orders that never traded
        (``bastion.node.retention``; default: forever)."""
        self.data_dir = Path(data_dir)
        (self.data_dir / SNAPSHOTS).mkdir(parents=True, exist_ok=True)
        self.max_block_txs = max_block_txs
        self.snapshot_every = snapshot_every
        self.snapshot_every_txs = snapshot_every_txs
        self._txs_since_snapshot = 0
        self.keep_snapshots = keep_snapshots
        self.clock_ms = clock_ms
        self.code_hash = compute_code_hash() if code_hash is None else code_hash
        self.on_block = on_block
        self.on_fatal = on_fatal
        self.on_warning = on_warning or _print_warning
        self.snapshot_error: str | None = None  # the last failed snapshot write, until one succeeds
        self.block_listeners: list[Callable[[LoggedBlock], None]] = []  # e.g. the API's WebSocket hub
        self.log = BlockLog(self.data_dir / "blocks.db")
        stored = self.log.genesis()
        if stored is None:
            if genesis is None:
                raise ProtocolError("missing_genesis", f"{self.data_dir} holds no chain yet: give a genesis file",
                                    field="genesis")
            self.log.init_genesis(genesis, build_state(genesis).state_hash)
            stored = genesis
        elif genesis is not None and canonical(genesis) != canonical(stored):
            raise ProtocolError("genesis_mismatch", f"{self.data_dir} holds another chain's log", field="genesis")
        self.genesis = stored
        self.recovery = Recovery()
        self.state = recover_state(self.log, self.genesis, self.data_dir / SNAPSHOTS, self.recovery,
                                   accept_rollback=accept_rollback, discard_rolled_back=True)
        self.app = Application(self.state)
        head = self.log.head()
        next_arrival = 1 + max((tx.arrival for tx in head.txs), default=-1) if head is not None else 0
        self.mempool = Mempool(lambda sender, nonce: self.log.find_tx(sender, nonce) is not None,
                               next_arrival=next_arrival, highest=self.log.max_nonces(),
                               max_per_sender=max_pending_per_sender)
        # the latest transactions the block producer refused (ante check), for ``tx_status``; bounded, never logged
        self._refused: dict[tuple[str, int], dict[str, Any]] = {}
        self.lock = threading.Condition(threading.Lock())
        self._mempool_changed = threading.Condition(threading.Lock())  # guards the mempool
        self._head_hash = self.log.genesis_hash() if head is None else head.block_hash  # of the last block applied
        self._durable: LoggedBlock | None = head
        self._delivered: deque[LoggedBlock] = deque()  # durable, their callbacks not yet run
        self._failure: NodeStopped | None = None
        self._writes: queue.Queue[tuple[SealedBlock, bytes | None] | None] = queue.Queue()
        self._snapshot_files = threading.Lock()  # the writer's snapshots and ``write_snapshot``'s
        self._writer = threading.Thread(target=self._write_loop, args=(BlockLog(self.data_dir / "blocks.db"),),
                                        name="bastion-block-writer", daemon=True)
        self._writer.start()
        self.indexer: IndexerWorker | None = None
        self.read_models_url: str | None = None
        if read_models is not None:
            url = f"sqlite:///{self.data_dir / 'readmodels.db'}" if read_models == "default" else read_models
            self.read_models_url = url
            self.indexer = IndexerWorker(self.data_dir / "blocks.db", url, self.genesis, read_model_retention)
            self.indexer.start()
            self.indexer.notify()  # catch up with what is already in the log

    # -- transactions
    def submit(self, envelope: Any) -> dict[str, Any]:
        """``check_tx`` and queue; returns ``{"status": "accepted", ...}`` or raises ``ProtocolError``
        (``NodeStopped`` once a write failed). Takes only the mempool's lock: ``check_tx`` reads
        the state without the state lock only where a single read is safe (the operators, the
        lock-free ante check, ``bastion.core.ante``); ``start_block`` checks the ante exactly and
        ``finalize_block`` everything else."""
        if self._failure is not None:
            raise self._failure
        checked = self.app.check_tx(envelope)
        with self._mempool_changed:
            tx = self.mempool.add(checked)
            if len(self.mempool) >= self.max_block_txs:
                self._mempool_changed.notify_all()  # a full block is waiting
        return {"status": "accepted", "sender": tx.sender, "nonce": tx.nonce, "arrival": tx.arrival}

    def tx_status(self, sender: str, nonce: int) -> dict[str, Any]:
        """``committed`` (with height, index and result), ``pending``, ``refused`` (with the code and
        message: the block producer's ante check dropped it; kept for the latest ``REFUSED_KEPT``
        refusals only) or ``unknown``."""
        with self.lock:
            return self._tx_status(sender, nonce)

    def _tx_status(self, sender: str, nonce: int) -> dict[str, Any]:
        found = self.log.find_tx(sender, nonce)
        if found is None:
            with self._mempool_changed:
                pending = self.mempool.is_pending(sender, nonce)
                refused = None if pending else self._refused.get((sender, nonce))
            if refused is not None:
                return {"status": "refused", **refused}
            return {"status": "pending" if pending else "unknown"}
        height, index = found
        block = self.log.block(height)
        if block is None:
            raise LogCorrupted(height, "indexed transaction's block is missing")
        return {"status": "committed", "height": height, "index": index, "result": block.results[index]}

    def wait_committed(self, sender: str, nonce: int, timeout_s: float) -> dict[str, Any]:
        """``tx_status`` once the transaction is committed, or after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while True:
                status = self._tx_status(sender, nonce)
                remaining = deadline - time.monotonic()
                if status["status"] != "pending" or remaining <= 0:
                    return status
                self.lock.wait(remaining)

    # -- blocks
    def produce_block(self) -> LoggedBlock:
        """Apply the next block (possibly empty), log it durably, acknowledge its transactions and
        run the callbacks: ``start_block`` then ``flush``. Returns the block as logged."""
        height = self.start_block()
        durable = self.flush()
        if durable is None or durable.height != height:  # another thread started a block meanwhile
            durable = self.log.block(height)
        if durable is None:
            raise LogCorrupted(height, "the block just written is missing")
        return durable

    def start_block(self) -> int:
        """Apply the next block and hand it to the writer thread; returns its height at once.

        Waits first for the previous block to be durable (it holds ``lock`` until then), so one
        block at most is in flight. Its transactions are acknowledged by the writer when it is
        durable; ``on_block``, the listeners and the indexer are called for it by the next
        ``start_block`` or ``flush`` (``run`` calls them as soon as it is durable)."""
        self._deliver()
        self.lock.acquire()
        try:
            if self._failure is not None:
                raise self._failure
            halt = check_node_code(self.state, self.code_hash)
            if halt is not None:  # a clean stop: nothing of the next block is taken or applied
                self._stop("scheduled upgrade", UpgradeRequired(halt))
                raise self._failure  # type: ignore[misc]
            with self._mempool_changed:
                taken = self.mempool.take(self.max_block_txs)
            taken = self._admit(taken)
            time_ms = max(self.state.time_ms, self.clock_ms())
            height = self.state.height + 1
            try:
                result = self.app.finalize_block(time_ms, [(tx.sender, typed) for tx, typed in taken],
                                                 [tx.nonce for tx, _ in taken])
                app_hash = self.app.commit()
                sealed = seal_block(result.height, time_ms, self._head_hash, [tx for tx, _ in taken],
                                    result.results, result.events, app_hash)
            except BaseException as error:  # the state may hold half a block: stop
                self._stop(f"applying block {height} failed", error)
                raise self._failure from error  # type: ignore[misc]
            self._head_hash = sealed.block.block_hash
            self._txs_since_snapshot += len(taken)
            snapshot = None
            if self.snapshot_every and (sealed.block.height % self.snapshot_every == 0
                                        or self._txs_since_snapshot >= self.snapshot_every_txs):
                try:
                    snapshot = self._snapshot_bytes()
                except Exception as error:  # noqa: BLE001 - no snapshot this time; the log is durable
                    self._snapshot_failed(sealed.block.height, error)
        except BaseException:
            self.lock.release()
            raise
        self._writes.put((sealed, snapshot))  # the writer releases the lock once the block is durable
        return sealed.block.height

    def _admit(self, taken: list[tuple[Tx, Message]]) -> list[tuple[Tx, Message]]:
        """The block producer's ante check (``bastion.core.ante``, exact, on the committed state the
        block starts from; the caller holds the state lock): a transaction whose sender has no
        collateral now is dropped from the block and the mempool, and remembered as ``refused`` for
        its submitter (the latest ``REFUSED_KEPT``); it is never logged or indexed."""
        admitted, refused = [], []
        for tx, typed in taken:
            try:
                self.app.check_ante(tx.sender, typed)
            except ProtocolError as error:
                refused.append((tx, error))
                continue
            admitted.append((tx, typed))
        if refused:
            with self._mempool_changed:
                for tx, refusal in refused:
                    self.mempool.drop(tx)
                    self._refused[(tx.sender, tx.nonce)] = {"code": refusal.code, "message": refusal.message}
                    if len(self._refused) > REFUSED_KEPT:
                        del self._refused[next(iter(self._refused))]
        return admitted

    def flush(self) -> LoggedBlock | None:
        """Wait until every block started is durable and acknowledged and the writer is idle (its
        snapshot written), run their callbacks, and return the newest durable block. Raises
        ``NodeStopped`` if a write failed."""
        self._writes.join()
        with self.lock:
            failure, durable = self._failure, self._durable
        self._deliver()
        if failure is not None:
            raise failure
        return durable

    def _write_loop(self, log: BlockLog) -> None:
        """The writer thread: each block handed over is written (compressed, one SQLite transaction,
        fsync), then acknowledged (its transactions leave the mempool, ``tx_status`` finds them),
        then ``lock`` is released; then the snapshot taken at that block, if any, is written. The
        first error stops the node (``_failure``): from then on the lock of a block handed over is
        released without writing or acknowledging anything."""
        try:
            while (job := self._writes.get()) is not None:
                self._write_job(log, *job)
                self._writes.task_done()
        finally:
            log.close()

    def _write_job(self, log: BlockLog, sealed: SealedBlock, snapshot: bytes | None) -> None:
        if self._failure is None:
            try:
                self._acknowledge(log.write(sealed), sealed)
            except BaseException as error:  # noqa: BLE001 - the node stops on it (fail-stop)
                self._stop(f"writing block {sealed.block.height} failed", error)
        self.lock.notify_all()  # ``wait_committed``
        self.lock.release()
        if snapshot is not None and self._failure is None:
            try:
                self._store_snapshot(sealed.block.height, snapshot)
            except Exception as error:  # noqa: BLE001 - not fatal: the log is durable; next snapshot point
                self._snapshot_failed(sealed.block.height, error)

    def _acknowledge(self, block: LoggedBlock, sealed: SealedBlock) -> None:
        """A block is durable: its transactions leave the mempool (``tx_status`` now finds them in
        the log) and its callbacks are due."""
        with self._mempool_changed:
            self.mempool.done(sealed.txs)
            self._mempool_changed.notify_all()  # ``run`` delivers the callbacks
        self._durable = block
        self._delivered.append(block)

    @property
    def failure(self) -> NodeStopped | None:
        """Why the node stopped (a failed block write, an exception applying a block), or None."""
        return self._failure

    def _stop(self, what: str, error: BaseException) -> None:
        """Fail-stop, called holding the state lock: record the failure (every later call raises
        it) and call ``on_fatal`` before anything else can read the state or acknowledge a block."""
        if self._failure is not None:
            return
        failure = (UpgradeRequired(str(error)) if isinstance(error, UpgradeRequired)
                   else NodeStopped(f"{what}: {error!r}"))
        failure.__cause__ = error
        self._failure = failure
        if self.on_fatal is not None:
            self.on_fatal(failure)

    def _snapshot_failed(self, height: int, error: BaseException) -> None:
        self.snapshot_error = f"snapshot at height {height} failed: {error!r}"
        self.on_warning(f"{self.snapshot_error} (not fatal: the log is durable; retried at the next snapshot point)")

    def _deliver(self) -> None:
        """Run the callbacks of the blocks made durable since the last call, in order (in the
        calling thread: the producer's)."""
        while self._delivered:
            block = self._delivered.popleft()
            if self.indexer is not None:
                self.indexer.notify()
            for listener in ([self.on_block] if self.on_block is not None else []) + self.block_listeners:
                try:
                    listener(block)
                except Exception as error:  # noqa: BLE001 - a reader's failure never stops the chain
                    self.on_warning(f"block listener {getattr(listener, '__qualname__', listener)} failed at "
                                    f"height {block.height}: {error!r}")

    def run(self, stop: threading.Event, block_time_ms: int = 250) -> None:
        """Produce blocks until ``stop`` is set: every ``block_time_ms``, or at once when full;
        the callbacks of each block run as soon as it is durable. Everything started is durable
        when it returns; raises ``NodeStopped`` if a write failed. Any other exception escaping
        the loop stops the node too (fail-stop): a dead producer never looks healthy."""
        try:
            self._run(stop, block_time_ms)
        except NodeStopped:
            raise
        except BaseException as error:
            with self.lock:
                self._stop("the block producer failed", error)
            raise self._failure from error  # type: ignore[misc]

    def _run(self, stop: threading.Event, block_time_ms: int) -> None:
        next_at = time.monotonic()
        while not stop.is_set():
            next_at += block_time_ms / 1000
            while not stop.is_set():
                self._deliver()
                with self._mempool_changed:
                    remaining = next_at - time.monotonic()
                    if len(self.mempool) >= self.max_block_txs or remaining <= 0:
                        break
                    self._mempool_changed.wait(min(remaining, 0.05))
            if stop.is_set():
                break
            self.start_block()
            next_at = max(next_at, time.monotonic() - block_time_ms / 1000)
        self.flush()

    # -- snapshots
    def write_snapshot(self) -> Path:
        """Write the state at the log's head (once every block started is durable) as a snapshot
        and prune old ones."""
        with self.lock:
            height, data = self.state.height, self._snapshot_bytes()
        return self._store_snapshot(height, data)

    def _snapshot_bytes(self) -> bytes:
        """The snapshot document of the current state, as ``bastion.core.snapshot.canonical_bytes``
        encodes it (the same bytes, through ``json_bytes``); the caller holds ``lock``."""
        document = {"height": self.state.height, "block_hash": self._head_hash if self.state.height else "",
                    "state": state_to_document(self.state)}
        self._txs_since_snapshot = 0
        return json_bytes(document, sort_keys=True)

    def _store_snapshot(self, height: int, data: bytes) -> Path:
        """Write ``DIR/snapshots/HEIGHT.json`` (temporary file, fsync, rename, fsync of the directory)
        and prune the others (``bastion.node.retention.prune_snapshots``)."""
        directory = self.data_dir / SNAPSHOTS
        path = directory / f"{height:012d}.json"
        with self._snapshot_files:
            write_atomically(path, data)
            self.snapshot_error = None
            if self.keep_snapshots:
                prune_snapshots(directory, self.keep_snapshots)
        return path

    def close(self) -> None:
        """Let the block in flight become durable (and its snapshot written) and run its callbacks,
        then stop the writer, the indexer and the log (a failed write was already raised by
        ``start_block``/``flush``)."""
        self._writes.join()
        self._deliver()
        self._writes.put(None)
        self._writer.join()
        if self.indexer is not None:
            self.indexer.stop()
        self.log.close()


def _print_warning(message: str) -> None:
    print(f"bastion node: warning: {message}", file=sys.stderr, flush=True)
