#!/usr/bin/env python3
"""The node in-process: durable commit throughput, replay speed, and recovery after a crash.

    python benchmarks/bench_node.py [--ops 1000000] [--block 1000] [--snapshot-every 200] [--workers N]

Workload: the state-machine benchmark's (``bench_state_machine.generate``: ~70% passive limit
orders, ~20% cancels, ~10% crossing orders over three markets and 1,000 accounts, one oracle update
per market per block), as JSON envelopes ``{sender, nonce, msg}``.

1. **Commit**: (with ``--index``, the indexer process building the read models alongside) every
   envelope goes through ``Node.submit`` (``check_tx``: decoding and checks;
   the mempool: arrival order and nonce uniqueness) and ``Node.start_block`` (the state machine,
   then the block handed to the writer thread, which appends it to the SQLite log in one
   ``synchronous=FULL`` transaction while the next block's envelopes are submitted) in blocks of
   ``--block``, with a snapshot every ``--snapshot-every`` blocks (all of them kept), and
   ``Node.flush`` at the end. Timed end to end: messages committed durably per second; ``submit_s``
   and ``produce_s`` split that time between the two calls (``produce_s`` includes waiting for the
   previous block's write).
2. **Replay**: ``bastion replay --verify`` on the resulting log (chain verification, every block
   re-applied from genesis, state hashes compared; ``--hashes-only`` mode, then with the results
   and events roots compared too), spread over ``--workers`` processors (default: all) by
   processes started from the snapshots (``bastion.node.replay``).
3. **Recovery**: the node object is dropped without closing (as after ``kill -9``) and a new one
   opened on the directory: newest snapshot + verification + replay of the blocks after it.
Prints one JSON line per phase. ``BASTION_PATH=build/compiled`` runs the node on the opt-in mypyc
build of the core (``benchmarks/build_compiled.py``; the replay processes inherit the path).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("BASTION_PATH") or str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_state_machine import generate, make_genesis

import bastion.core.orders
from bastion.core.messages import MESSAGE_TYPES
from bastion.node.node import Node, tune_garbage_collector
from bastion.node.replay import verify_log

TYPE_NAMES = {cls: name for name, cls in MESSAGE_TYPES.items()}


def envelopes(blocks: list[list[tuple[str, object]]]) -> list[list[dict]]:
    nonces: dict[str, int] = {}
    out = []
    for block in blocks:
        batch = []
        for sender, msg in block:
            nonce = nonces[sender] = nonces.get(sender, 0) + 1
            body = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg) if getattr(msg, f.name) is not None}
            batch.append({"sender": sender, "nonce": nonce, "msg": {"type": TYPE_NAMES[type(msg)], **body}})
        out.append(batch)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--block", type=int, default=1_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--snapshot-every", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None, help="data directory (default: a temporary one)")
    parser.add_argument("--index", action="store_true", help="run the indexer (read models in DIR) during the commit")
    parser.add_argument("--workers", type=int, default=None, help="replay processors (default: all)")
    args = parser.parse_args()

    genesis = make_genesis(args.accounts)
    work = envelopes(generate(args.ops, args.accounts, args.block))
    messages = sum(len(b) for b in work)
    data = args.dir or Path(tempfile.mkdtemp(prefix="bastion-bench-node-"))
    clock = iter(range(1_767_225_600_250, 10**15, 250))  # the state-machine benchmark's block times
    tune_garbage_collector()  # as `bastion node` does (it also freezes the pre-generated workload)
    node = Node(data, genesis, max_block_txs=args.block + 10, snapshot_every=args.snapshot_every, keep_snapshots=0,
                clock_ms=clock.__next__, read_models="default" if args.index else None)
    submit_seconds = 0.0
    started = time.perf_counter()
    for batch in work:
        submit_started = time.perf_counter()
        for env in batch:
            node.submit(env)
        submit_seconds += time.perf_counter() - submit_started
        node.start_block()
    node.flush()
    commit_seconds = time.perf_counter() - started
    index_lag = 0.0
    if node.indexer is not None:
        lag_started = time.perf_counter()
        node.indexer.wait_idle(600)
        index_lag = time.perf_counter() - lag_started
    head = node.log.head()
    snap_started = time.perf_counter()
    node.write_snapshot()
    one_snapshot = time.perf_counter() - snap_started
    print(json.dumps({"phase": "commit", "messages": messages, "blocks": head.height,
                      "seconds": round(commit_seconds, 2),
                      "messages_per_s": int(messages / commit_seconds), "submit_s": round(submit_seconds, 2),
                      "produce_s": round(commit_seconds - submit_seconds, 2), "snapshot_every": args.snapshot_every,
                      "indexer": args.index, "index_caught_up_after_s": round(index_lag, 2),
                      "one_snapshot_s": round(one_snapshot, 2),
                      "snapshot_mb": round(max(p.stat().st_size for p in (data / "snapshots").glob("*.json")) / 1e6, 1),
                      "log_mb": round((data / "blocks.db").stat().st_size / 1e6, 1),
                      "compiled": not bastion.core.orders.__file__.endswith(".py"),
                      "state_hash": head.state_hash}), flush=True)
    if node.indexer is not None:
        node.indexer.stop()
    node.log.db.close()  # no orderly shutdown: as after kill -9 (everything is durable: flushed above)
    del node
    for mode, roots in (("replay_hashes_only", False), ("replay_verify", True)):
        report = verify_log(data, check_roots=roots, workers=args.workers)
        assert report["state_hash"] == head.state_hash and not report["skipped_snapshots"]
        print(json.dumps({"phase": mode, "messages": report["txs"], "seconds": report["seconds"],
                          "messages_per_s": report["txs_per_s"], "from_snapshots": report["from_snapshots"]}),
              flush=True)
    newest = sorted((data / "snapshots").glob("*.json"))
    newest[-1].unlink()  # the final snapshot above was extra: recover from the periodic one before it
    started = time.perf_counter()
    recovered = Node(data)
    seconds = time.perf_counter() - started
    assert recovered.state.state_hash == head.state_hash
    print(json.dumps({"phase": "recovery", "log_messages": messages,
                      "snapshot_height": recovered.recovery.snapshot_height,
                      "replayed_blocks": recovered.recovery.replayed_blocks,
                      "replayed_messages": recovered.recovery.replayed_txs, "seconds": round(seconds, 2),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}), flush=True)
    recovered.close()
    if args.dir is None:
        shutil.rmtree(data)


if __name__ == "__main__":
    main()
