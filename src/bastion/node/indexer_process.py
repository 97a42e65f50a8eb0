"""The indexer process: read models (``bastion.node.indexer``) kept up to the log's head by a worker
process with its own connections (``IndexerWorker``), woken by the node after each commit.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
from pathlib import Path
from typing import Any

from bastion.node.blocklog import BlockLog
from bastion.node.retention import ReadModelRetention, idle_orders_cutoff

__all__ = ["IndexerWorker"]


class IndexerWorker:
    """Keeps read models up to the log's head in a separate process (its own connections, and its
    own core: indexing is as much work as applying the blocks, and a thread would share the GIL
    with the block producer). It exits when told to, or when the node's process is gone."""

    def __init__(self, log_path: Path, url: str, genesis: dict[str, Any],
                 retention: ReadModelRetention | None = None) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._wake = context.Queue()
        self._height = context.Value("q", -1)
        self._idle = context.Event()
        self._errors = context.Queue()
        self._error: str | None = None
        self.process = context.Process(target=_index_loop, name="bastion-indexer", daemon=True,
                                       args=(str(log_path), url, genesis, self._wake, self._height, self._idle,
                                             self._errors, os.getpid(), retention))

    def start(self) -> None:
        self.process.start()

    def notify(self) -> None:
        self._wake.put(True)

    def stop(self) -> None:
        self._wake.put(False)
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()

    @property
    def indexed_height(self) -> int:
        return int(self._height.value)

    @property
    def error(self) -> str | None:
        while not self._errors.empty():
            self._error = self._errors.get()
        return self._error

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until everything committed so far is indexed (tests, benchmarks)."""
        self._idle.clear()
        self.notify()
        return self._idle.wait(timeout_s)


def _index_loop(log_path: str, url: str, genesis: dict[str, Any], wake: Any, height: Any, idle: Any, errors: Any,
                parent_pid: int, retention: ReadModelRetention | None = None) -> None:
    """The indexer process: on each wake-up, index every logged block after the read models' height,
    then prune idle orders when ``retention`` says it is due (``bastion.node.retention``)."""
    from bastion.node.indexer import Indexer
    from bastion.node.readmodels import open_read_models

    try:
        read_models = open_read_models(url)
        indexer = Indexer(read_models, genesis)
        log = BlockLog(log_path)
        last_pruned = indexer.indexed_height()
    except Exception as error:  # noqa: BLE001 - reported; block production goes on without read models
        errors.put(f"indexer could not start: {error!r}")
        return
    try:
        while True:
            try:
                keep_going = wake.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent_pid:
                    return  # the node is gone (killed): nothing will wake us again
                continue
            while not wake.empty():
                keep_going = wake.get() and keep_going
            for block in log.iter_blocks(indexer.indexed_height() + 1):
                indexer.apply_block(block)
                height.value = block.height
            height.value = indexer.indexed_height()
            cutoff = idle_orders_cutoff(retention, height.value, last_pruned)
            if cutoff is not None:
                read_models.prune_idle_orders(cutoff)
                last_pruned = height.value
            idle.set()
            if not keep_going:
                return
    except Exception as error:  # noqa: BLE001
        errors.put(f"indexing stopped at height {indexer.indexed_height() + 1}: {error!r}")
    finally:
        log.close()
        read_models.close()
