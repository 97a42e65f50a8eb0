#!/usr/bin/env python3
"""The state commitment alone: candidate schemes over the same stream of leaf updates.

    python benchmarks/bench_commitments.py [--ops 100000]

The stream is recorded from the state-machine benchmark's workload (``bench_state_machine.py``):
for each block, every leaf touched and its bytes at the commit (None once gone). Each scheme then
consumes the same stream, timed alone (CPU seconds), and the figure is microseconds per block and
per touched leaf:

- ``adhash``: the former scheme, SHA-256 digests summed modulo 2**256 (forgeable: Wagner);
- ``lthash``: ``bastion.core.hashing.commit_state_hash``'s scheme (SHAKE256 of each leaf digest to
  1024 16-bit lanes, lane-wise sum, recent vectors cached), and the same with SHAKE128;
- ``merkle``: an incremental binary Merkle tree over the leaves, keyed by SHA-256 of the leaf key
  (the first ``depth`` bits pick a bucket, depth ~ log2(leaves) + 4; a bucket's hash is SHA-256 of
  its digests sorted; absent subtrees hash to per-level constants), with each block's dirty paths
  deduplicated level by level: the cheapest honest form of a sparse Merkle tree with inclusion and
  absence proofs in pure Python.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("BASTION_PATH") or str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bastion.core.hashing as hashing
import bastion.core.transition as transition
from bench_state_machine import block_nonces, generate, make_genesis

from bastion.core.genesis import build_state


def record(ops: int) -> list[list[tuple[tuple, bytes | None]]]:
    """Every block's touched leaves and their bytes, from the state-machine workload."""
    stream: list[list[tuple[tuple, bytes | None]]] = []
    original = transition.commit_state_hash

    def recording(state):  # type: ignore[no-untyped-def]
        stream.append([(key, hashing._leaf_bytes(state, key)) for key in state.dirty])
        return original(state)

    transition.commit_state_hash = recording
    blocks = generate(ops, 1_000, 1_000)
    state = build_state(make_genesis(1_000))
    stream.clear()  # genesis
    for txs, nonces in zip(blocks, block_nonces(blocks)):
        transition.apply_block(state, state.time_ms + 250, txs, nonces)
    transition.commit_state_hash = original
    return stream


def adhash(stream: list) -> None:
    leaves: dict[tuple, int] = {}
    acc = 0
    sha256, from_bytes = hashlib.sha256, int.from_bytes
    for block in stream:
        for key, data in block:
            old = leaves.pop(key, 0)
            new = 0 if data is None else from_bytes(sha256(data).digest(), "big")
            if new:
                leaves[key] = new
            acc += new - old
        acc %= 1 << 256
        hashlib.sha256(acc.to_bytes(32, "big")).hexdigest()


def lthash(xof_name: str):  # type: ignore[no-untyped-def]
    """``commit_state_hash``'s loop over the recorded stream, with the XOF ``xof_name``."""
    def run(stream: list) -> None:
        xof = getattr(hashlib, xof_name)
        leaves: dict[tuple, bytes] = {}
        cache: dict[tuple, tuple[bytes, int]] = {}
        acc = 0
        sha256, from_bytes, domain = hashlib.sha256, int.from_bytes, b"bastion/leaf/v2"
        for block in stream:
            lanes = hashing._LaneSum(acc)
            for key, data in block:
                old = leaves.get(key)
                new = None if data is None else sha256(data).digest()
                if new == old:
                    continue
                if old is not None:
                    cached = cache.pop(key, None)
                    if cached is not None and cached[0] == old:
                        lanes.sub(cached[1])
                    else:
                        lanes.sub(from_bytes(xof(domain + old).digest(2048), "little"))
                if new is None:
                    del leaves[key]
                else:
                    leaves[key] = new
                    vector = from_bytes(xof(domain + new).digest(2048), "little")
                    lanes.add(vector)
                    cache[key] = (new, vector)
                    if len(cache) > 2 * hashing._CACHED_VECTORS:
                        hashing._trim(cache)
            hashing._trim(cache)
            acc = lanes.result()
            hashlib.sha256(b"bastion/state/v2" + acc.to_bytes(2048, "little")).hexdigest()
    return run


def merkle(stream: list) -> None:
    n_keys = len({key for block in stream for key, _ in block})
    depth = max(8, n_keys.bit_length() + 4)
    sha256 = hashlib.sha256
    empty = [sha256(b"").digest()]
    for _ in range(depth):
        empty.append(sha256(empty[-1] + empty[-1]).digest())  # empty[h]: an empty subtree of height h
    buckets: dict[int, dict[tuple, bytes]] = {}
    nodes: list[dict[int, bytes]] = [{} for _ in range(depth + 1)]  # nodes[h][index], h = 0 the buckets
    slot_of: dict[tuple, int] = {}
    shift = 256 - depth
    for block in stream:
        dirty: set[int] = set()
        for key, data in block:
            slot = slot_of.get(key)
            if slot is None:
                slot = int.from_bytes(sha256(repr(key).encode()).digest(), "big") >> shift
                slot_of[key] = slot
            bucket = buckets.setdefault(slot, {})
            if data is None:
                bucket.pop(key, None)
            else:
                bucket[key] = sha256(data).digest()
            dirty.add(slot)
        level = nodes[0]
        for slot in dirty:
            bucket = buckets[slot]
            if bucket:
                level[slot] = sha256(b"".join(sorted(bucket.values()))).digest()
            else:
                level.pop(slot, None)
        for height in range(1, depth + 1):
            below, level, parents = nodes[height - 1], nodes[height], {i >> 1 for i in dirty}
            blank = empty[height - 1]
            for i in parents:
                left, right = below.get(2 * i), below.get(2 * i + 1)
                if left is None and right is None:
                    level.pop(i, None)
                else:
                    level[i] = sha256((left or blank) + (right or blank)).digest()
            dirty = parents
        nodes[depth].get(0, empty[depth]).hex()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=100_000)
    args = parser.parse_args()
    stream = record(args.ops)
    touched = sum(len(block) for block in stream)
    out = {"benchmark": "commitments", "ops": args.ops, "blocks": len(stream), "touched_leaves": touched}
    for name, scheme in (("adhash", adhash), ("lthash_shake256", lthash("shake_256")),
                         ("lthash_shake128", lthash("shake_128")), ("merkle", merkle)):
        started = time.process_time()
        scheme(stream)
        seconds = time.process_time() - started
        out[name] = {"us_per_block": round(seconds / len(stream) * 1e6),
                     "us_per_order": round(seconds / args.ops * 1e6, 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
