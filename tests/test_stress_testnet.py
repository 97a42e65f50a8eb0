"""The testnet result (issue 20, ``bastion.stress.testnet``): ``bastion stress --replay-days N
--proposal ID`` replays the real block log with the proposal's change applied and reports it beside
the synthetic sweep, in the hashed report and its HTML; ``--verify`` reproduces it.

The chain: a node over ``test_council.council_genesis`` (ETH-USD in tier 2, IMF 10%) where Alice
proposes ``LOWER_ETH_MARGIN`` (tier 1, IMF 5%), it is queued, then Bob rests a sell of 5 ETH at
3,000 and Alice's subaccount 2, holding 1,000 USDC, tries to buy it: 15,000 USDC of notional needs
1,500 at 10% (refused in the log) but only 750 at 5%: with the change the order fills."""
from __future__ import annotations

import json
from pathlib import Path

from builders import ALICE, BOB, ETH, GENESIS_TIME_MS, place_order, queue, submit_proposal, vote
from test_council import LOWER_ETH_MARGIN, council_genesis
from test_stress_cli import SET, stress

from bastion.core.messages import decode_action
from bastion.node.node import Node
from bastion.stress.testnet import replay_recent


def chain(tmp_path: Path) -> tuple[Path, str]:
    clock = iter(range(GENESIS_TIME_MS + 1_000, 10**15, 1_000)).__next__
    node = Node(tmp_path / "node", council_genesis(), clock_ms=clock, snapshot_every=0)
    nonce = iter(range(1, 10**6)).__next__

    def block(*txs: tuple[str, dict]) -> list[dict]:
        for sender, msg in txs:
            node.submit({"sender": sender, "nonce": nonce(), "msg": msg})
        return node.produce_block().results

    pid = block((ALICE, submit_proposal(LOWER_ETH_MARGIN)))[0]["proposal_id"]
    block()
    block((ALICE, vote(pid)))
    block()
    assert block((BOB, queue(pid)))[0]["ok"]
    transfer = {"type": "transfer", "subaccount": 0, "to_owner": ALICE, "to_subaccount": 2, "amount": "1000"}
    results = block((BOB, place_order(market=ETH, side="sell", size="5", price="3000", client_id=9)),
                    (ALICE, transfer),
                    (ALICE, place_order(subaccount=2, market=ETH, size="5", price="3000", time_in_force="ioc")))
    assert [r["ok"] for r in results] == [True, True, False]            # refused at IMF 10%
    node.close()
    (tmp_path / "set.json").write_text(json.dumps(SET))
    return tmp_path / "node", pid


def test_the_proposal_replayed_over_the_block_log_sits_beside_the_sweep_and_reproduces(tmp_path):
    data, pid = chain(tmp_path)
    result = stress("--data", str(data), "--proposal", pid, "--replay-days", "1", "--scenarios",
                    str(tmp_path / "set.json"), "--workers", "1", "--out", str(tmp_path / "out"))
    assert result.exit_code in (0, 1), result.output
    printed = json.loads(result.stdout)
    testnet = printed["testnet"]
    assert (testnet["from_height"], testnet["to_height"], testnet["blocks"], testnet["txs"]) == (1, 6, 6, 6)
    assert testnet["baseline_reproduced"] is True and testnet["truncated"] is False
    assert testnet["proposal_id"] == pid and testnet["days"] == 1
    # the change turns Alice's refused buy into a fill of Bob's resting sell
    assert {"height": 6, "tx": 2, "without_change": "insufficient_margin", "with_change": "ok"} in \
        testnet["flipped_examples"]
    assert testnet["with_change"]["fills"] == testnet["without_change"]["fills"] + 1
    report = json.loads((tmp_path / "out" / "report.json").read_bytes())
    assert report["testnet"] == testnet                              # in the hashed document
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Testnet result: the proposal over the real block log" in page and "without the change" in page
    verified = stress("--verify", printed["report_hash"], "--data", str(data), "--report",
                      str(tmp_path / "out" / "report.json"), "--scenarios", str(tmp_path / "set.json"),
                      "--proposal", pid)
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["proposal_id"] == pid
    # the bound keeps the latest blocks: the state before them is rebuilt from the log
    cut = replay_recent(data, (decode_action(LOWER_ETH_MARGIN, 0),), 1, max_blocks=2)
    assert (cut["from_height"], cut["to_height"], cut["truncated"], cut["baseline_reproduced"]) == (5, 6, True, True)
    assert cut["outcomes_flipped"] == 1


def test_replay_days_needs_the_log_and_the_proposal(tmp_path):
    result = stress("--genesis", str(tmp_path / "missing.json"), "--replay-days", "1")
    assert result.exit_code == 2 and "--replay-days replays the block log" in result.output
