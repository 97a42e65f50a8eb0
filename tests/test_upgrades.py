"""Scheduled upgrades (issue 20, ``bastion.core.upgrades``): the critical ``schedule_upgrade`` /
``cancel_upgrade`` actions and the node that stops before the upgrade's height unless it runs the
named code (``bastion.node.node``, ``runtime.compute_code_hash``).

The node tests feed the golden scenario ``upgrade_scheduled`` (a schedule_upgrade to height 40,
code hash 64 x '1', executed at height 16) to a node block by block, with the node's clock set to
each block's time, then produce empty blocks up to the upgrade."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from builders import ScenarioPlayer, node_from_scenario
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bastion.app import ApiConfig, create_app
from bastion.cli.main import app
from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.governance import classify
from bastion.core.messages import CancelUpgrade, ScheduleUpgrade, decode_message
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.transition import apply_block
from bastion.core.upgrades import check_node_code, describe_upgrade
from bastion.node.node import Node, NodeStopped, UpgradeRequired
from bastion.node.runtime import compute_code_hash

SCENARIO = json.loads((Path(__file__).parent / "scenarios" / "upgrade_scheduled.json").read_text())
NAMED = "1" * 64                   # the code the scenario's upgrade names
OTHER = "2" * 64
UPGRADE_HEIGHT = 40


def chain_to_execution(data: Path, code_hash: str) -> tuple[Node, ScenarioPlayer]:
    """A node over ``data`` that has applied the scenario's blocks (the upgrade executed at h16)."""
    node, clock = node_from_scenario(data, SCENARIO, snapshot_every=0, code_hash=code_hash)
    assert node.state.upgrade.height == UPGRADE_HEIGHT and node.state.height == 16
    return node, clock


def test_the_governance_page_shows_the_upgrade_and_whether_this_node_will_stop(tmp_path):
    for code, verdict in ((OTHER, "it stops cleanly before block 40"), (NAMED, "This node runs it")):
        node, clock = chain_to_execution(tmp_path / code[:4], code)
        page = TestClient(create_app(node, ApiConfig(clock_ms=clock))).get("/governance").text
        node.close()
        banner = page[page.index('id="upgrade"'):page.index("</section>", page.index('id="upgrade"'))]
        assert "Upgrade v2.0 scheduled" in banner and 'data-upgrade-height="40"' in banner
        assert "24 blocks from now" in banner and f'title="{NAMED}"' in banner and verdict in banner
        assert (f'title="{OTHER}"' in banner) == (code == OTHER)


def produce_until(node: Node, clock: ScenarioPlayer, height: int) -> None:
    while node.state.height < height:
        clock.ms += 1_000
        node.produce_block()


def test_a_node_running_other_code_stops_cleanly_before_the_upgrade_height_and_the_named_code_continues(tmp_path):
    data = tmp_path / "node"
    node, clock = chain_to_execution(data, OTHER)
    produce_until(node, clock, UPGRADE_HEIGHT - 1)          # every block before the upgrade: this code may
    head_hash = node.state.state_hash
    answer = TestClient(create_app(node, ApiConfig(clock_ms=clock))).get("/v1/upgrade").json()
    assert answer == {"height": UPGRADE_HEIGHT - 1, "scheduled": True, "name": "v2.0", "upgrade_height": 40,
                      "code_hash": NAMED, "reached": False, "node_code_hash": OTHER, "node_ready": False,
                      "halt_reason": f"upgrade 'v2.0' scheduled at height 40 requires code {NAMED}; this node runs "
                                     f"{OTHER}: stopped before block 40"}
    with pytest.raises(UpgradeRequired) as stopped:
        node.produce_block()
    assert isinstance(stopped.value, NodeStopped)
    assert f"scheduled at height {UPGRADE_HEIGHT} requires code {NAMED}" in str(stopped.value)
    assert OTHER in str(stopped.value)
    # nothing of block 40 was applied or logged, and the node refuses to go on
    assert node.state.height == UPGRADE_HEIGHT - 1 and node.state.state_hash == head_hash
    assert node.log.head().height == UPGRADE_HEIGHT - 1
    with pytest.raises(UpgradeRequired):
        node.submit({"sender": SCENARIO["blocks"][0]["txs"][0]["sender"], "nonce": 10**6,
                     "msg": {"type": "cancel_all", "subaccount": 0}})
    node.close()

    # the operator restarts with the named code: it recovers the same head and applies block 40 and on
    upgraded = Node(data, clock_ms=clock, snapshot_every=0, code_hash=NAMED)
    assert upgraded.state.height == UPGRADE_HEIGHT - 1 and upgraded.state.state_hash == head_hash
    produce_until(upgraded, clock, UPGRADE_HEIGHT + 2)
    assert upgraded.failure is None and upgraded.log.head().height == UPGRADE_HEIGHT + 2
    upgraded.close()

    # the old code restarted on the upgraded chain stops again at once
    old = Node(data, clock_ms=clock, snapshot_every=0, code_hash=OTHER)
    with pytest.raises(UpgradeRequired):
        old.produce_block()
    assert old.log.head().height == UPGRADE_HEIGHT + 2
    old.close()


def test_the_default_code_hash_is_the_state_machine_sources_and_the_cli_prints_it(tmp_path):
    first = compute_code_hash()
    assert len(first) == 64 and first == compute_code_hash()
    package = tmp_path / "bastion"
    (package / "core").mkdir(parents=True)
    (package / "core" / "a.py").write_text("x = 1\n")
    (package / "risk_model.py").write_text("y = 2\n")
    (package / "cli.py").write_text("not part of the state machine\n")
    before = compute_code_hash.__wrapped__(package)
    (package / "cli.py").write_text("an adapter changed\n")
    assert compute_code_hash.__wrapped__(package) == before             # adapters do not count
    (package / "core" / "a.py").write_text("x = 2\n")
    assert compute_code_hash.__wrapped__(package) != before             # the core does
    result = CliRunner().invoke(app, ["node", "--code-hash"])
    assert result.exit_code == 0 and result.stdout.strip() == first


def _state_at_upgrade_submission():
    state = build_state(SCENARIO["genesis"])
    apply_block(state, state.time_ms + 1_000, [])
    return state


@pytest.mark.parametrize(("action", "code"), [
    (ScheduleUpgrade(name="v2.0", height=1, code_hash=NAMED), "upgrade_height_passed"),
    (ScheduleUpgrade(name="", height=9, code_hash=NAMED), "invalid_upgrade_name"),
    (ScheduleUpgrade(name="a" * 65, height=9, code_hash=NAMED), "invalid_upgrade_name"),
    (ScheduleUpgrade(name="-v2", height=9, code_hash=NAMED), "invalid_upgrade_name"),
    (ScheduleUpgrade(name="v2", height=9, code_hash="AB" * 32), "invalid_code_hash"),
    (ScheduleUpgrade(name="v2", height=9, code_hash=NAMED[:63]), "invalid_code_hash"),
    (CancelUpgrade(), "no_upgrade_scheduled"),
])
def test_bad_upgrade_actions_are_refused_with_a_stable_code(action, code):
    state = _state_at_upgrade_submission()
    with pytest.raises(ProtocolError) as refused:
        classify.classify_proposal(state, (action,))
    assert refused.value.code == code


def test_schedule_reschedule_and_cancel_are_critical_and_the_plan_survives_a_snapshot():
    state = _state_at_upgrade_submission()
    changes, risk = classify.classify_proposal(state, (ScheduleUpgrade(name="v2", height=9, code_hash=NAMED),))
    assert risk == "critical"
    assert [(c.name, c.old, c.new) for c in changes] == [
        ("upgrade.name", "", "v2"), ("upgrade.height", 0, 9), ("upgrade.code_hash", "", NAMED)]
    state.upgrade.name, state.upgrade.height, state.upgrade.code_hash = "v2", 9, NAMED
    state.touch(("upgrade",))
    apply_block(state, state.time_ms + 1_000, [])
    restored = state_from_document(copy.deepcopy(state_to_document(state)))
    assert restored.state_hash == state.state_hash and restored.upgrade == state.upgrade
    # a reschedule replaces the plan; a cancel clears it (before the height)
    changes, risk = classify.classify_proposal(state, (ScheduleUpgrade(name="v2.1", height=12, code_hash=OTHER),))
    assert risk == "critical" and [c.new for c in changes] == ["v2.1", 12, OTHER]
    changes, risk = classify.classify_proposal(state, (CancelUpgrade(),))
    assert risk == "critical" and [c.new for c in changes] == ["", 0, ""]
    # the node check: blocks before the height run on any code, from the height on only on the named code
    state.height = 7
    assert check_node_code(state, OTHER) is None
    state.height = 8
    assert check_node_code(state, NAMED) is None and "before block 9" in check_node_code(state, OTHER)
    assert describe_upgrade(state, OTHER)["node_ready"] is False
    state.height = 9                                   # reached: it can no longer be cancelled
    with pytest.raises(ProtocolError) as refused:
        classify.classify_proposal(state, (CancelUpgrade(),))
    assert refused.value.code == "upgrade_height_passed"


def test_the_upgrade_actions_decode_from_json_and_a_transaction_cannot_carry_them():
    with pytest.raises(ProtocolError) as refused:
        decode_message({"type": "schedule_upgrade", "name": "v2", "height": 9, "code_hash": NAMED})
    assert refused.value.code == "action_requires_proposal"
    proposal = decode_message({"type": "submit_proposal", "title": "t", "description": "", "deposit": "5",
                               "actions": [{"type": "cancel_upgrade"},
                                           {"type": "schedule_upgrade", "name": "v2", "height": 9,
                                            "code_hash": NAMED}]})
    assert proposal.actions == (CancelUpgrade(), ScheduleUpgrade(name="v2", height=9, code_hash=NAMED))
