"""The node's commit path: the JSON encoders' bytes, the nonce check without a log lookup per
submit, and the writer thread (acknowledgement only after the durable write, a failed write stops
the node, snapshots only of durable blocks, ``close`` drains)."""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import pytest
from builders import ALICE, BOB, BRIDGE, genesis as make_genesis, place_order

from bastion.core.errors import ProtocolError
from bastion.core.snapshot import canonical_bytes, state_to_document
from bastion.node.blocklog import canonical, compact, json_bytes, json_value
from bastion.node.node import Node, NodeStopped
from bastion.node.replay import verify_log


def stdlib_json(value: object, *, sort_keys: bool = False) -> bytes:
    """The encoding the log has always used: the standard library's compact ASCII JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, sort_keys=sort_keys).encode()


def clock():
    return iter(range(1_767_225_601_000, 10**15, 1_000)).__next__


def new_node(data: Path, **options) -> Node:
    return Node(data, make_genesis(), clock_ms=clock(), **options)


def deposit_envelope(nonce: int, amount: str = "2") -> dict:
    return {"sender": BRIDGE, "nonce": nonce, "msg": {"type": "deposit", "owner": BOB, "subaccount": 0,
                                                       "amount": amount}}


@pytest.mark.parametrize("value", [
    [{"b": 1, "a": "x", "c": [True, False, None]}],  # orjson's bytes (key order kept)
    ["".join(chr(i) for i in range(127))],  # every ASCII character below DEL: control characters escaped alike
    ["caf\u00e9 \u20ac \U0001f680"],  # non-ASCII: the standard library escapes it (\u00e9, surrogate pairs)
    ["\x7f"],  # DEL: escaped by the standard library only
    [2**63 - 1, -(2**63), 2**64 - 1],  # the 64-bit edges orjson writes itself
    [2**64, -(2**63) - 1, 10**40],  # beyond 64 bits: orjson refuses them
    ["\ud800"],  # a lone surrogate: orjson refuses it (and refuses to read its escape)
    2**64,  # a number alone
    [{"z": {"\u00e9": 1, "a": [2**70]}, "a": 0}],  # both at once, nested
])
@pytest.mark.parametrize("sort_keys", [False, True])
def test_json_bytes_are_the_standard_librarys_bytes(value: object, sort_keys: bool) -> None:
    assert json_bytes(value, sort_keys=sort_keys) == stdlib_json(value, sort_keys=sort_keys)
    assert json_value(json_bytes(value)) == value


def test_compact_and_canonical_keep_their_encodings() -> None:
    value = {"b": [1, "\u00e9"], "a": 2**65}
    assert compact(value) == b'{"b":[1,"\\u00e9"],"a":36893488147419103232}'
    assert canonical(value) == b'{"a":36893488147419103232,"b":[1,"\\u00e9"]}'


def test_json_value_reads_big_integers_exactly() -> None:
    # orjson alone would read these as floats (1.8446744073709552e+19)
    assert json_value(b"[18446744073709551616,-9223372036854775809,1]") == [2**64, -(2**63) - 1, 1]
    assert json_value(b'["\\u00e9\\ud83d\\ude80",9223372036854775807]') == ["\u00e9\U0001f680", 2**63 - 1]


def test_non_ascii_and_big_integer_bodies_round_trip_through_the_log(tmp_path: Path) -> None:
    node = new_node(tmp_path / "n")
    big = place_order(client_id=2**53 - 1)  # the largest integer a message field takes (messages.MAX_INT)
    vote = {"type": "vote", "proposal_id": "\u00e9", "option": "yes", "reason": "r\u00e9duire \x7f \U0001f680"}
    for sender, msg, nonce in ((ALICE, big, 2**63 - 1), (BOB, vote, 1)):  # a 19-digit nonce
        node.submit({"sender": sender, "nonce": nonce, "msg": msg})
    block = node.produce_block()
    node.close()
    logged = block.txs
    assert [(tx.sender, tx.msg) for tx in logged] == [(ALICE, big), (BOB, vote)]
    assert block.tx_root == hashlib.sha256(stdlib_json([[tx.sender, tx.nonce, tx.arrival, tx.msg]
                                                         for tx in logged])).hexdigest()
    assert block.results[1] == {"ok": False, "code": "unknown_proposal", "message": "no proposal '\u00e9'"}
    assert block.results_root == hashlib.sha256(stdlib_json(block.results)).hexdigest()
    report = verify_log(tmp_path / "n", check_roots=True)
    assert (report["height"], report["txs"]) == (1, 2)


def test_a_snapshot_has_core_canonical_bytes(tmp_path: Path) -> None:
    node = new_node(tmp_path / "n")
    node.submit(deposit_envelope(1))
    node.submit({"sender": ALICE, "nonce": 1, "msg": place_order()})
    block = node.produce_block()
    path = node.write_snapshot()
    expected = canonical_bytes({"height": 1, "block_hash": block.block_hash, "state": state_to_document(node.state)})
    node.close()
    assert path.name == "000000000001.json"
    assert path.read_bytes() == expected


def count_tx_index_reads(node: Node) -> list[str]:
    reads: list[str] = []
    node.log.db.set_trace_callback(lambda sql: reads.append(sql) if "FROM tx_index" in sql else None)
    return reads


def test_a_used_nonce_is_refused_after_a_restart_without_a_log_read_per_submit(tmp_path: Path) -> None:
    node = new_node(tmp_path / "n")
    for nonce in (1, 2, 5):
        node.submit(deposit_envelope(nonce))
    node.produce_block()
    node.close()
    restarted = Node(tmp_path / "n", clock_ms=clock())
    reads = count_tx_index_reads(restarted)
    for nonce in (6, 7, 8):  # above the highest committed: fresh without asking the log
        restarted.submit(deposit_envelope(nonce))
    assert reads == []
    with pytest.raises(ProtocolError) as pending:  # pending: the mempool answers
        restarted.submit(deposit_envelope(7))
    assert pending.value.code == "duplicate_nonce" and reads == []
    with pytest.raises(ProtocolError) as committed:  # committed before the restart: the log answers
        restarted.submit(deposit_envelope(2))
    assert committed.value.code == "duplicate_nonce" and len(reads) == 1
    assert restarted.submit(deposit_envelope(3))["status"] == "accepted"  # a gap below the highest is free
    assert len(reads) == 2
    restarted.close()


def test_a_log_keyed_sender_first_is_read_and_written_alike(tmp_path: Path) -> None:
    (tmp_path / "n").mkdir()
    with sqlite3.connect(tmp_path / "n" / "blocks.db") as db:  # tx_index as logs created before had it
        db.execute("CREATE TABLE tx_index (sender TEXT NOT NULL, nonce INTEGER NOT NULL, height INTEGER NOT NULL, "
                   "idx INTEGER NOT NULL, PRIMARY KEY (sender, nonce)) WITHOUT ROWID")
    db.close()
    node = new_node(tmp_path / "n")
    node.submit(deposit_envelope(1))
    node.produce_block()
    node.close()
    restarted = Node(tmp_path / "n", clock_ms=clock())
    with pytest.raises(ProtocolError, match="nonce 1 of .* was already used"):
        restarted.submit(deposit_envelope(1))
    assert restarted.tx_status(BRIDGE, 1)["height"] == 1
    assert "PRIMARY KEY (sender, nonce)" in restarted.log.db.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'tx_index'").fetchone()[0]
    restarted.close()
    assert verify_log(tmp_path / "n")["txs"] == 1


def test_a_new_log_keys_its_tx_index_nonce_first(tmp_path: Path) -> None:
    node = new_node(tmp_path / "n")
    sql = node.log.db.execute("SELECT sql FROM sqlite_master WHERE name = 'tx_index'").fetchone()[0]
    node.close()
    assert "PRIMARY KEY (nonce, sender)" in sql


class BlockedLog:
    """Another connection holding the SQLite write lock: the node's writer waits (then fails after
    SQLite's busy timeout, 5 s)."""

    def __init__(self, data: Path) -> None:
        self.db = sqlite3.connect(data / "blocks.db", isolation_level=None)
        self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


def test_nothing_is_acknowledged_before_the_block_is_durable(tmp_path: Path) -> None:
    seen: list[int] = []
    node = new_node(tmp_path / "n", on_block=lambda block: seen.append(block.height), snapshot_every=1)
    blocked = BlockedLog(tmp_path / "n")
    node.submit(deposit_envelope(1))
    assert node.start_block() == 1  # applied and handed to the writer, which waits for the SQLite lock
    assert node.lock.acquire(timeout=0.5) is False  # tx_status, the API's reads: held until durable
    assert node.mempool.is_pending(BRIDGE, 1) and seen == []
    assert list((tmp_path / "n" / "snapshots").glob("*.json")) == []  # the block is not durable yet
    assert node.submit(deposit_envelope(2))["status"] == "accepted"  # the intake stays open
    blocked.release()
    block = node.flush()
    assert block is not None and block.height == 1 and seen == [1]
    assert node.tx_status(BRIDGE, 1) == {"status": "committed", "height": 1, "index": 0, "result": {"ok": True}}
    assert node.tx_status(BRIDGE, 2) == {"status": "pending"}
    node.close()
    assert [p.name for p in (tmp_path / "n" / "snapshots").glob("*.json")] == ["000000000001.json"]


def test_a_failed_write_stops_the_node_and_acknowledges_nothing(tmp_path: Path) -> None:
    seen: list[int] = []
    node = new_node(tmp_path / "n", on_block=lambda block: seen.append(block.height))
    node.submit(deposit_envelope(1))
    blocked = BlockedLog(tmp_path / "n")  # held past SQLite's busy timeout: "database is locked"
    node.start_block()
    with pytest.raises(NodeStopped, match="writing block 1 failed: OperationalError"):
        node.flush()
    blocked.release()
    assert node.tx_status(BRIDGE, 1) == {"status": "pending"} and seen == []
    for call in (node.start_block, node.produce_block, lambda: node.submit(deposit_envelope(2))):
        with pytest.raises(NodeStopped):
            call()
    node.close()
    restarted = Node(tmp_path / "n", clock_ms=clock())  # the log is the truth: block 1 never happened
    assert restarted.state.height == 0
    assert restarted.submit(deposit_envelope(1))["status"] == "accepted"
    restarted.close()


def test_close_makes_the_block_in_flight_durable(tmp_path: Path) -> None:
    node = new_node(tmp_path / "n")
    node.submit(deposit_envelope(1))
    node.start_block()
    node.close()
    restarted = Node(tmp_path / "n", clock_ms=clock())
    assert restarted.state.height == 1
    assert restarted.tx_status(BRIDGE, 1)["status"] == "committed"
    restarted.close()


def test_run_produces_until_stopped_and_returns_with_everything_durable(tmp_path: Path) -> None:
    seen: list[int] = []
    node = new_node(tmp_path / "n", max_block_txs=2, on_block=lambda block: seen.append(block.tx_count))
    for nonce in range(1, 6):
        node.submit(deposit_envelope(nonce))
    stop = threading.Event()
    producer = threading.Thread(target=node.run, args=(stop, 10))
    producer.start()
    assert node.wait_committed(BRIDGE, 5, timeout_s=10)["status"] == "committed"
    stop.set()
    producer.join()
    assert seen[:3] == [2, 2, 1]
    assert [node.tx_status(BRIDGE, n)["height"] for n in range(1, 6)] == [1, 1, 2, 2, 3]
    node.close()
