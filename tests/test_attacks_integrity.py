"""Attacks on the integrity of a node's records (issue 13): each one worked on main at e21f2c2.

- a replayed envelope after corrupting the ``tx_index`` row of its first commit: the state machine
  itself refuses the spent nonce (``nonce_used``), so the money moves once;
- a log holding the same transaction twice (as such a node would have written it): ``replay
  --verify`` finds the duplicate;
- a log whose tail was cut off while newer snapshots, index entries or the high-water mark prove
  it was longer: the node refuses to start (exit 3 from the CLI) unless ``--accept-rollback``;
- a damaged header below the newest snapshot: refused at start-up (the whole header chain is
  verified, not only the log above the snapshot);
- a snapshot forged to keep the former additive state hash (a sum of SHA-256 digests, built here
  with Wagner's four-list algorithm on a 40-bit version of that sum): the lattice commitment tells
  the two states apart and recovery refuses the snapshot.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from builders import ALICE, BOB, CAROL, GENESIS_TIME_MS, genesis as make_genesis, transfer
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.core.genesis import build_state
from bastion.core.hashing import compute_state_hash_full, iter_leaf_keys, leaf_encoding, serialize_leaf
from bastion.core.messages import decode_message
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.errors import ProtocolError
from bastion.core.transition import apply_block
from bastion.node.blocklog import BlockLog, LogCorrupted, LogRolledBack, Tx
from bastion.node.node import Node
from bastion.node.replay import ReplayDivergence, verify_log

USDC = 1_000_000


def start(data: Path, **options) -> Node:
    """A node on the builders' genesis, one block per second of its clock."""
    clock = iter(range(GENESIS_TIME_MS + 1_000, 10**15, 1_000)).__next__
    return Node(data, make_genesis(), clock_ms=clock, **options)


def balance(node: Node, owner: str) -> int:
    return node.state.subaccounts[(owner, 0)].balance


# ------------------------------------------------------------------ replay after corrupting tx_index
@pytest.mark.parametrize("corruption", ["flip a bit of the nonce", "delete the row"])
def test_a_replayed_envelope_after_corrupting_the_tx_index_is_refused_by_the_state(tmp_path: Path,
                                                                                   corruption: str) -> None:
    node = start(tmp_path / "n", snapshot_every=0)
    envelope = {"sender": ALICE, "nonce": 1_000, "msg": transfer(amount="1000")}
    node.submit(envelope)
    node.produce_block()
    alice, bob = balance(node, ALICE), balance(node, BOB)
    if corruption == "delete the row":
        node.log.db.execute("DELETE FROM tx_index WHERE sender = ?", (ALICE,))
    else:
        node.log.db.execute("UPDATE tx_index SET nonce = nonce | 1 WHERE sender = ?", (ALICE,))  # 1000 -> 1001

    node.submit(envelope)  # the off-state index no longer knows it: the mempool lets it in
    block = node.produce_block()

    assert block.results == [{"ok": False, "code": "nonce_used",
                              "message": f"nonce 1000 of {ALICE} was already used"}]
    assert (balance(node, ALICE), balance(node, BOB)) == (alice, bob)  # moved once: 1,000 USDC
    assert bob - alice == 2_000 * USDC
    node.close()


def test_the_spent_nonces_are_in_the_hashed_state_and_survive_a_snapshot(tmp_path: Path) -> None:
    node = start(tmp_path / "n", snapshot_every=0)
    for nonce in (5, 3, 9):  # out of order, as concurrent clients send them
        node.submit({"sender": ALICE, "nonce": nonce, "msg": transfer(amount="1")})
    node.produce_block()
    assert {key for key in iter_leaf_keys(node.state) if key[0] == "nonces"} == {("nonces", ALICE)}
    assert serialize_leaf(node.state, ("nonces", ALICE)) == [-1, GENESIS_TIME_MS + 1_000, [3, 5, 9]]
    node.write_snapshot()
    node.close()
    restarted = start(tmp_path / "n", snapshot_every=0)
    assert restarted.recovery.snapshot_height == 1 and restarted.recovery.replayed_blocks == 0
    restarted.log.db.execute("DELETE FROM tx_index")  # the index is gone: the state still knows
    restarted.submit({"sender": ALICE, "nonce": 3, "msg": transfer(amount="1")})
    restarted.submit({"sender": ALICE, "nonce": 4, "msg": transfer(amount="1")})
    assert [r["ok"] for r in restarted.produce_block().results] == [False, True]
    restarted.close()


# ------------------------------------------------------------------ replay --verify finds a duplicate
def test_replay_verify_detects_a_log_holding_the_same_transaction_twice(tmp_path: Path) -> None:
    """The log of a node tricked into committing one envelope twice (the ``tx_index`` bit flip, and
    a state machine that did not check the nonce the second time): heights 1 and 2 hold the same
    transaction, each block with the results and state hash that node computed."""
    data = tmp_path / "n"
    (data / "snapshots").mkdir(parents=True)
    genesis = make_genesis()
    state = build_state(genesis)
    log = BlockLog(data / "blocks.db")
    log.init_genesis(genesis, state.state_hash)
    msg = transfer(amount="1000")
    for height, nonces in ((1, [1_000]), (2, None)):  # block 2: the nonce not checked
        result = apply_block(state, GENESIS_TIME_MS + height * 1_000, [(ALICE, decode_message(msg))], nonces)
        assert result.results == [{"ok": True}]
        log.append(height, GENESIS_TIME_MS + height * 1_000, [Tx(ALICE, 1_000, height, msg)], result.results,
                   result.events, result.state_hash)
        if height == 1:
            log.db.execute("UPDATE tx_index SET nonce = nonce | 1")  # 1000 -> 1001: the bit flip that let it in again
    log.close()
    assert state.subaccounts[(BOB, 0)].balance - state.subaccounts[(ALICE, 0)].balance == 4_000 * USDC

    with pytest.raises(ReplayDivergence) as caught:
        verify_log(data, workers=1)
    assert caught.value.height == 2 and caught.value.what == "results root"


# ------------------------------------------------------------------ a tail cut off
def chain_with_snapshots(data: Path) -> list[dict]:
    """30 blocks, one transfer each (nonce = height), a snapshot every 5 blocks (all kept)."""
    node = start(data, snapshot_every=5, keep_snapshots=0)
    envelopes = []
    for height in range(1, 31):
        envelope = {"sender": CAROL, "nonce": height, "msg": transfer(amount="1")}
        node.submit(envelope)
        envelopes.append(envelope)
        assert node.produce_block().height == height
    node.close()
    return envelopes


def cut_tail(data: Path, keep: int) -> None:
    log = BlockLog(data / "blocks.db")
    log.db.execute("DELETE FROM blocks WHERE height > ?", (keep,))
    log.close()


def test_a_log_cut_by_25_blocks_with_newer_snapshots_is_refused_then_accepted_with_the_flag(tmp_path: Path) -> None:
    data = tmp_path / "n"
    envelopes = chain_with_snapshots(data)
    cut_tail(data, 5)

    with pytest.raises(LogRolledBack) as caught:
        start(data)
    assert (caught.value.head_height, caught.value.proven_height) == (5, 30)
    assert caught.value.evidence == {"tx_index": 30, "meta high_water": 30, "snapshot 000000000030.json": 30}
    assert "--accept-rollback" in str(caught.value)
    result = CliRunner().invoke(app, ["node", "--data", str(data), "--read-models", "none", "--quiet"])
    assert result.exit_code == 3 and "refusing to start" in result.output and "reached block 30" in result.output
    with pytest.raises(LogRolledBack):
        verify_log(data, workers=1)

    node = start(data, accept_rollback=True)
    assert node.recovery.rolled_back_from == 30 and node.state.height == 5
    assert sorted(p.name for p in (data / "snapshots").glob("*.json")) == ["000000000005.json"]
    assert len(list((data / "snapshots" / "rolled-back").glob("*.json"))) == 5
    node.submit(envelopes[5])  # a transaction of the lost tail can be sent again
    assert node.produce_block().results == [{"ok": True}]
    node.close()
    again = start(data)  # the rollback was accepted once: the chain goes on
    assert again.state.height == 6 and again.recovery.rolled_back_from is None
    again.close()
    assert verify_log(data, workers=1)["height"] == 6


@pytest.mark.parametrize("evidence", ["tx_index", "meta high_water"])
def test_a_cut_tail_is_refused_on_the_logs_own_records_without_snapshots(tmp_path: Path, evidence: str) -> None:
    data = tmp_path / "n"
    chain_with_snapshots(data)
    cut_tail(data, 20)
    for path in (data / "snapshots").glob("*.json"):
        if int(path.stem) > 20:
            path.unlink()
    log = BlockLog(data / "blocks.db")
    log.db.execute("DELETE FROM tx_index WHERE height > 20" if evidence == "meta high_water"
                   else "DELETE FROM meta WHERE key = 'high_water'")
    log.close()
    with pytest.raises(LogRolledBack) as caught:
        start(data)
    assert caught.value.evidence == {evidence: 30}


def test_a_damaged_header_below_the_newest_snapshot_is_refused_at_start_up(tmp_path: Path) -> None:
    data = tmp_path / "n"
    chain_with_snapshots(data)
    log = BlockLog(data / "blocks.db")
    log.db.execute("UPDATE blocks SET time_ms = time_ms + 1 WHERE height = 3")  # below snapshot 30
    log.close()
    with pytest.raises(LogCorrupted) as caught:
        start(data)
    assert str(caught.value) == "block log corrupted at height 3: header does not match its hash"


def test_a_relinked_header_chain_below_the_snapshot_is_refused(tmp_path: Path) -> None:
    """Block 2 dropped and the chain relinked above it (every header rehashed, and the snapshot's
    block hash with it): only the whole-chain check sees that block 2 is gone."""
    data = tmp_path / "n"
    chain_with_snapshots(data)
    log = BlockLog(data / "blocks.db")
    log.db.execute("DELETE FROM blocks WHERE height = 2")
    log.close()
    with pytest.raises(LogCorrupted) as caught:
        start(data)
    assert str(caught.value) == "block log corrupted at height 2: block 2 is missing (found 3)"


# ------------------------------------------------------------------ a snapshot forged for the old sum
def old_sum(leaves: list[bytes], bits: int) -> int:
    """The former state accumulator, reduced to ``bits``: SHA-256 leaf digests summed mod 2**bits."""
    return sum(int.from_bytes(hashlib.sha256(leaf).digest(), "big") for leaf in leaves) % (1 << bits)


def forged_subaccount(owner: str, balance_units: int) -> tuple[tuple, list]:
    return ("sub", owner, 0), [balance_units, "cross", None, [], []]


def wagner_four_leaves(bits: int, size: int) -> list[tuple[tuple, list]]:
    """Four new subaccount leaves whose digests sum to 0 mod 2**bits (Wagner's k-tree, k = 4): added
    to a state, they leave the former accumulator unchanged."""
    owners = [f"0x{0xF0 + k:040x}" for k in range(4)]
    low, mask = bits // 3, (1 << bits) - 1

    def digest(k: int, units: int) -> int:
        return int.from_bytes(hashlib.sha256(leaf_encoding(*forged_subaccount(owners[k], units))).digest(), "big")

    lists = [[(digest(k, units) & mask, units) for units in range(1, size + 1)] for k in range(4)]

    def merge(a: list, b: list) -> list:  # pairs whose sum is 0 on the low bits
        by_low: dict[int, list] = {}
        for value, units in b:
            by_low.setdefault(-value % (1 << low), []).append((value, units))
        return [((x + y) & mask, (ux, uy)) for x, ux in a for y, uy in by_low.get(x % (1 << low), [])]

    left = merge(lists[0], lists[1])
    right = {(-value) & mask: units for value, units in merge(lists[2], lists[3])}
    for value, (u0, u1) in left:
        if value in right:
            u2, u3 = right[value]
            return [forged_subaccount(owners[k], u) for k, u in enumerate((u0, u1, u2, u3))]
    raise AssertionError("no four-way collision: enlarge the lists")


def test_a_snapshot_forged_to_keep_the_additive_sum_is_told_apart_and_refused(tmp_path: Path) -> None:
    bits = 40  # the attack on 256 bits is the same algorithm with about 2**64 work instead of 2**14
    node = start(tmp_path / "n", snapshot_every=0)
    node.submit({"sender": ALICE, "nonce": 1, "msg": transfer(amount="1000")})
    node.produce_block()
    node.write_snapshot()  # the honest snapshot at height 1
    honest = state_to_document(node.state)
    node.close()

    document = json.loads(json.dumps(honest))
    forged_leaves = wagner_four_leaves(bits, 1 << 14)
    for (_, owner, number), (units, mode, isolated, _, _) in forged_leaves:
        document["subaccounts"].append({"owner": owner, "number": number, "balance": units, "mode": mode,
                                        "isolated_market": isolated, "positions": [], "imf_overrides": [],
                                        "orders": [], "client_ids": [], "conditional_orders": []})
    honest_state = state_from_document(honest)
    forged_state = state_from_document({**document, "state_hash": ""}, check_hash=False)

    def leaves(state) -> list[bytes]:
        return [leaf_encoding(key, serialize_leaf(state, key)) for key in iter_leaf_keys(state)]

    assert len(leaves(forged_state)) == len(leaves(honest_state)) + 4
    assert old_sum(leaves(forged_state), bits) == old_sum(leaves(honest_state), bits)  # the old scheme is fooled
    assert forged_state.state_hash != honest_state.state_hash  # the lattice commitment is not
    assert compute_state_hash_full(forged_state) == forged_state.state_hash
    with pytest.raises(ProtocolError) as caught:
        state_from_document(document)
    assert caught.value.code == "invalid_snapshot"

    path = tmp_path / "n" / "snapshots" / "000000000001.json"
    snapshot = json.loads(path.read_bytes())
    snapshot["state"] = document
    path.write_text(json.dumps(snapshot, separators=(",", ":")))  # compact, as the node writes it
    recovered = start(tmp_path / "n", snapshot_every=0)
    assert recovered.recovery.snapshot_height == 0 and recovered.recovery.replayed_blocks == 1
    assert recovered.recovery.skipped_snapshots == [
        ("000000000001.json: snapshot does not reproduce its state hash "
         f"{honest['state_hash']} (got {forged_state.state_hash})")]
    assert recovered.state.state_hash == honest_state.state_hash
    assert all(owner not in {o for o, _ in recovered.state.subaccounts} for (_, owner, _), _ in forged_leaves)
    recovered.close()



# ------------------------------------------------------------------ the nonce rules (bastion.core.nonces)
def test_nonces_may_come_out_of_order_within_the_window_and_are_never_spent_twice() -> None:
    from bastion.core.nonces import NONCE_SET_SIZE

    state = build_state(make_genesis())
    msg = decode_message(transfer(amount="1"))

    def block(nonces: list[int], seconds: int = 1) -> list[str]:
        result = apply_block(state, state.time_ms + seconds * 1_000, [(ALICE, msg)] * len(nonces), nonces)
        assert result.state_hash == compute_state_hash_full(state)
        return [r.get("code", "ok") for r in result.results]

    assert block([7, 5, 6, 5]) == ["ok", "ok", "ok", "nonce_used"]
    assert block(list(range(100, 100 + NONCE_SET_SIZE))) == ["ok"] * NONCE_SET_SIZE  # 5, 6, 7 pushed out
    record = state.nonces[ALICE]
    assert (record.floor, record.used[0], len(record.used)) == (7, 100, NONCE_SET_SIZE)
    assert block([6, 7, 8, 99]) == ["nonce_used", "nonce_used", "ok", "ok"]  # 8 is above the floor, unused
    assert state.subaccounts[(ALICE, 0)].balance == (100_000 - 3 - NONCE_SET_SIZE - 2) * USDC
    insufficient = decode_message(transfer(amount="1000000"))  # refused by the handler: the nonce is spent
    result = apply_block(state, state.time_ms + 1_000, [(ALICE, insufficient), (ALICE, msg)], [500, 500])
    assert [r["ok"] for r in result.results] == [False, False] and result.results[1]["code"] == "nonce_used"


def test_an_idle_sender_keeps_only_its_floor_after_a_day_of_block_time() -> None:
    from bastion.core.nonces import NONCE_IDLE_MS

    state = build_state(make_genesis())
    msg = decode_message(transfer(amount="1"))
    apply_block(state, state.time_ms + 1_000, [(ALICE, msg), (ALICE, msg), (BOB, msg)], [10, 30, 4])
    start_ms = state.time_ms
    apply_block(state, start_ms + NONCE_IDLE_MS - 1_000, [(BOB, msg)], [5])  # BOB stays active
    assert state.nonces[ALICE].used == [10, 30]
    apply_block(state, start_ms + NONCE_IDLE_MS, [], [])
    alice, bob = state.nonces[ALICE], state.nonces[BOB]
    assert (alice.floor, alice.used, bob.floor, bob.used) == (30, [], -1, [4, 5])
    assert state.state_hash == compute_state_hash_full(state)
    result = apply_block(state, state.time_ms + 1_000, [(ALICE, msg)] * 3, [10, 29, 31])
    assert [r.get("code", "ok") for r in result.results] == ["nonce_used", "nonce_used", "ok"]
    document = state_to_document(state)  # the expiry queue is rebuilt from the records
    assert sorted(state_from_document(document).nonce_expiry) == sorted(state.nonce_expiry)
