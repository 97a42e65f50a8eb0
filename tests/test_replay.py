"""``bastion replay --verify`` in parallel from snapshots (``bastion.node.replay``): the same summary
as one sequential pass, the earliest failure by height whichever segment finds its failure first,
untrusted snapshots skipped and their segments merged, damaged logs still refused."""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import genesis as make_genesis
from test_node import block_clock, crash_node, drive
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.core.snapshot import canonical_bytes
from bastion.node.blocklog import BlockLog, LogCorrupted, compact, decode_txs, header_hash
from bastion.node.node import Node, snapshots_to_keep
from bastion.node.replay import ReplayDivergence, plan_segments, verify_log

WRONG = "f" * 64


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """15 blocks of 84 messages, a snapshot after every 5th (all kept)."""
    data = tmp_path_factory.mktemp("replay") / "n"
    node, candles = crash_node(data, snapshot_every=5)
    node.keep_snapshots = 0
    drive(node, candles, n_candles=4, seed=5)  # 16 blocks
    node.close()
    return data


@pytest.fixture
def copy(chain: Path, tmp_path: Path) -> Path:
    """A private copy of the chain to damage."""
    target = tmp_path / "n"
    (target / "snapshots").mkdir(parents=True)
    (target / "blocks.db").write_bytes((chain / "blocks.db").read_bytes())
    for path in (chain / "snapshots").glob("*.json"):
        (target / "snapshots" / path.name).write_bytes(path.read_bytes())
    return target


def summary(report: dict) -> tuple:
    return report["blocks"], report["txs"], report["height"], report["state_hash"]


def plant_divergence(data: Path, height: int) -> None:
    """Record a wrong state hash at ``height``, with the block hashes after it recomputed (and the
    snapshots' block hashes with them), so that the log verifies and only the replay can tell."""
    log = BlockLog(data / "blocks.db")
    log.db.execute("UPDATE blocks SET state_hash = ? WHERE height = ?", (WRONG, height))
    prev = log.block(height - 1).block_hash if height > 1 else log.genesis_hash()
    hashes = {}
    for block in list(log.iter_blocks(height)):
        block_hash = header_hash(block.height, block.time_ms, prev, block.tx_root, block.results_root,
                                 block.events_root, block.state_hash)
        log.db.execute("UPDATE blocks SET prev_hash = ?, block_hash = ? WHERE height = ?",
                       (prev, block_hash, block.height))
        prev = hashes[block.height] = block_hash
    log.close()
    for path in (data / "snapshots").glob("*.json"):
        document = json.loads(path.read_bytes())
        if document["height"] in hashes:
            document["block_hash"] = hashes[document["height"]]
            path.write_bytes(canonical_bytes(document))


@contextlib.contextmanager
def edit_snapshot(data: Path, height: int) -> Iterator[dict]:
    """Change the state document of the snapshot at ``height`` in place (written back canonically)."""
    snapshot = data / "snapshots" / f"{height:012d}.json"
    document = json.loads(snapshot.read_bytes())
    yield document["state"]
    snapshot.write_bytes(canonical_bytes(document))


def test_parallel_and_sequential_agree_on_the_summary(chain: Path) -> None:
    sequential = verify_log(chain, workers=1)
    assert sequential["from_snapshots"] == [] and sequential["skipped_snapshots"] == []
    assert summary(sequential)[:3] == (16, 16 * 84, 16)
    for check_roots in (True, False):
        parallel = verify_log(chain, workers=3, check_roots=check_roots)
        assert summary(parallel) == summary(sequential)
        assert parallel["from_snapshots"] == [5, 10] and parallel["skipped_snapshots"] == []
    # two processors: thirds would cost two snapshot loads (~190 KB each, about two blocks' work)
    assert verify_log(chain, workers=2)["from_snapshots"] == [10]


def test_plan_splits_the_work_evenly_between_snapshots() -> None:
    counts = [(h, 99) for h in range(1, 101)]  # 100 blocks of 100 units of work
    every_tenth = {h: 0 for h in range(10, 100, 10)}
    assert plan_segments(counts, every_tenth, 4) == [20, 40, 60, 80]  # five fifths on four: 1/4 of the time
    assert plan_segments(counts, {90: 0}, 4) == [90]
    assert plan_segments(counts, every_tenth, 1) == [] and plan_segments(counts, {}, 4) == []
    fifths = {h: 0 for h in (20, 40, 60, 80)}
    assert plan_segments(counts, fifths, 2) == [40, 60]  # 2/5, 1/5, 2/5 shared by two processors: 1/2
    assert plan_segments(counts, {h: 1_500 for h in fifths}, 2) == [60]  # loads too dear: 3/5 (later on a tie)
    assert plan_segments(counts, {h: 100 for h in every_tenth}, 2) == [50]


@pytest.mark.parametrize("workers", [1, 3])
def test_the_earliest_divergence_is_reported_even_when_a_later_segment_fails_first(copy: Path, workers: int) -> None:
    plant_divergence(copy, 11)  # first block of the last segment: found early
    plant_divergence(copy, 4)  # near the end of the first segment: found last
    with pytest.raises(ReplayDivergence) as caught:
        verify_log(copy, workers=workers)
    assert (caught.value.height, caught.value.what, caught.value.logged) == (4, "state hash", WRONG)


def test_a_divergence_in_a_late_segment_alone_is_reported(copy: Path) -> None:
    plant_divergence(copy, 13)
    with pytest.raises(ReplayDivergence) as caught:
        verify_log(copy, workers=3)
    assert (caught.value.height, caught.value.logged) == (13, WRONG)


def test_a_tampered_snapshot_is_not_trusted_and_its_blocks_are_still_replayed(copy: Path) -> None:
    sequential = verify_log(copy, workers=1)
    with edit_snapshot(copy, 5) as state:
        state["subaccounts"][0]["balance"] += 1  # well-formed, but not the state the log reached
    report = verify_log(copy, workers=3)
    assert summary(report) == summary(sequential)
    assert report["from_snapshots"] == [10]
    [skipped] = report["skipped_snapshots"]
    assert skipped.startswith("000000000005.json: snapshot does not reproduce its state hash")
    plant_divergence(copy, 7)  # in the merged segment: the process from genesis goes on through it
    with pytest.raises(ReplayDivergence) as caught:
        verify_log(copy, workers=3)
    assert (caught.value.height, caught.value.logged) == (7, WRONG)


def test_a_snapshot_with_the_logs_state_hash_but_other_contents_is_not_trusted(copy: Path) -> None:
    # The liquidation watch list is derived state outside the state hash: changing it gives a snapshot
    # that passes the state-hash check, like a crafted collision of the additive hash would. The
    # replayed state's SHA-256 digest at the cut tells them apart.
    sequential = verify_log(copy, workers=1)
    with edit_snapshot(copy, 5) as state:
        watch = [[sub["owner"], sub["number"]] for sub in state["subaccounts"]]
        assert watch != state["liquidation_watch"]
        state["liquidation_watch"] = watch

    report = verify_log(copy, workers=3)

    assert summary(report) == summary(sequential)
    assert report["from_snapshots"] == [10]
    assert report["skipped_snapshots"] == [("000000000005.json: its state has the log's state hash but is not "
                                            "the state the replay reached")]


def test_a_snapshot_named_for_another_height_is_not_trusted(copy: Path) -> None:
    (copy / "snapshots" / "000000000005.json").rename(copy / "snapshots" / "000000000006.json")
    report = verify_log(copy, workers=3)
    assert report["from_snapshots"] == [10]
    assert report["skipped_snapshots"] == ["000000000006.json: it holds height 5"]


@pytest.mark.parametrize("workers", [1, 3])
def test_a_damaged_or_truncated_log_is_refused_with_the_height(copy: Path, workers: int) -> None:
    pristine = (copy / "blocks.db").read_bytes()

    def damage(sql: str, *args: object) -> str:
        (copy / "blocks.db").write_bytes(pristine)
        log = BlockLog(copy / "blocks.db")
        log.db.execute(sql, args)
        log.close()
        with pytest.raises(LogCorrupted) as caught:
            verify_log(copy, workers=workers)
        return str(caught.value)

    log = BlockLog(copy / "blocks.db")
    (events,) = log.db.execute("SELECT events FROM blocks WHERE height = 16").fetchone()
    log.close()
    flipped = bytearray(events)
    flipped[len(flipped) // 2] ^= 0x01
    assert damage("UPDATE blocks SET events = ? WHERE height = 16", bytes(flipped)) == \
        "block log corrupted at height 16: events do not match their root"
    assert damage("DELETE FROM blocks WHERE height = 16") == \
        ("block log corrupted at height 16: the log ends at block 15 but it reached block 16 (meta high_water at "
         "height 16, tx_index at height 16): 1 blocks and the transactions acknowledged in them are missing; restore "
         "the log, or start with --accept-rollback to continue from block 15")
    assert damage("DELETE FROM blocks WHERE height = 12") == \
        "block log corrupted at height 12: block 12 is missing (found 13)"
    assert damage("DELETE FROM blocks WHERE height = 10") == \
        "block log corrupted at height 10: block 10 is missing (found 11)"


def test_logged_transactions_decode_to_the_values_written() -> None:
    """orjson reads an integer beyond 64 bits as a float and refuses a lone surrogate: such bodies
    are read by json, exactly."""
    rows = [["0x" + "0" * 39 + "1", 1, 2,
             {"big": 10**19, "neg": -(10**19), "small": 12_345, "text": "a,1234567890123456789"}],
            ["0x" + "0" * 39 + "2", 2, 3, {"surrogate": "\ud800", "price": "1.5"}]]
    for row in rows:
        [tx] = decode_txs(compact([row]))
        assert (tx.sender, tx.nonce, tx.arrival, tx.msg) == tuple(row)
        assert [type(v) for v in tx.msg.values()] == [type(v) for v in row[3].values()]


def test_the_cli_reports_the_segments_and_refuses_a_divergence(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bastion.node.node.tune_garbage_collector", lambda: None)  # not in the test process
    runner = CliRunner()
    result = runner.invoke(app, ["replay", str(copy), "--hashes-only", "--workers", "3"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["verified"], report["blocks"], report["from_snapshots"], report["skipped_snapshots"]) == \
        (True, 16, [5, 10], [])
    plant_divergence(copy, 12)
    result = runner.invoke(app, ["replay", str(copy), "--workers", "3"])
    assert result.exit_code == 3
    assert f"replay diverges at height 12: state hash logged {WRONG}" in " ".join(result.stderr.split())


def test_the_cli_refuses_a_log_whose_tail_was_cut_below_its_snapshots(copy: Path) -> None:
    log = BlockLog(copy / "blocks.db")
    log.db.execute("DELETE FROM blocks WHERE height > 12")  # snapshots at 15 (and 5, 10) remain
    log.db.execute("DELETE FROM tx_index WHERE height > 12")
    log.close()
    result = CliRunner().invoke(app, ["replay", str(copy), "--workers", "3"])
    assert result.exit_code == 3
    assert ("block log corrupted at height 16: the log ends at block 12 but it reached block 16 (meta high_water "
            "at height 16, snapshot 000000000015.json at height 15)") in " ".join(result.stderr.split())


def test_a_header_damaged_below_every_snapshot_is_refused_before_any_segment_runs(copy: Path) -> None:
    log = BlockLog(copy / "blocks.db")
    log.db.execute("UPDATE blocks SET results_root = ? WHERE height = 2", (WRONG,))
    log.close()
    with pytest.raises(LogCorrupted) as caught:
        verify_log(copy, workers=3)
    assert str(caught.value) == "block log corrupted at height 2: header does not match its hash"


def test_snapshot_retention_keeps_the_newest_and_an_even_spread_along_the_chain(tmp_path: Path) -> None:
    # 40 snapshots, the newest 2 kept: stride = the largest power of two <= 40 // 8 = 4, so the first
    # snapshot at or above each multiple of 4 stays too (1, then 4, 8, ... 40)
    assert sorted(snapshots_to_keep(list(range(1, 41)), 2)) == [1, 4, 8, 12, 16, 20, 24, 28, 32, 36, 39, 40]
    heights: list[int] = []
    for height in range(7, 20_000, 7):  # pruning as a node does it, one snapshot at a time
        heights = sorted(snapshots_to_keep([*heights, height], 3))
        stride = 1 << max(0, (height // 8).bit_length() - 1)
        assert len(heights) <= 3 + 17  # bounded: the newest 3 and at most 2 x 8 + 1 stretches
        if stride >= 7:  # every stretch holds a snapshot: at least 9 cut points
            assert len(heights) >= 9
        assert all(b - a <= stride + 7 for a, b in zip(heights, heights[1:]))  # no gap wider than a stretch
    # a long chain: every snapshot once dropped stays dropped (the one-shot answer is the same)
    everything = list(range(7, 20_000, 7))
    assert heights == sorted(snapshots_to_keep(everything, 3))

    node = Node(tmp_path / "n", make_genesis(), snapshot_every=1, keep_snapshots=2, clock_ms=block_clock())
    for _ in range(40):
        node.produce_block()
    node.close()
    on_disk = sorted(int(path.stem) for path in (tmp_path / "n" / "snapshots").glob("*.json"))
    assert on_disk == [1, 4, 8, 12, 16, 20, 24, 28, 32, 36, 39, 40]
