"""Software upgrades scheduled by governance (DESIGN.md section 9, issue 20).

As a Cosmos chain's upgrade plan (dYdX's upgrade proposals halt the chain at a height), the
``critical`` action ``schedule_upgrade{name, height, code_hash}`` records one upgrade in
``state.upgrade``: from block ``height`` on, only the software whose code hash is ``code_hash`` may
apply blocks. The state machine cannot know which code runs it (it is pure); the node can:
before applying block ``h`` it calls ``check_node_code(state, own hash)`` and stops cleanly, with
nothing of that block applied, when ``h >= height`` and its hash differs (``bastion.node.upgrade``
computes the hash of the node's own ``bastion.core`` sources). Operators restart with the named
code, which then continues from the same state.

The three fields are governed parameters (``upgrade.name``, ``upgrade.height``,
``upgrade.code_hash``): the parameter history, ``param_changed`` events, the conflicts between
proposals and the web page's diff all follow. Scheduling again replaces the plan (a reschedule);
``cancel_upgrade`` clears it before its height. Rolling back after the height is another
``schedule_upgrade`` naming the previous code's hash. Both actions are ``critical``.

Checks of ``schedule_upgrade`` (at submission and again at execution): ``invalid_upgrade_name``
(1 to 64 characters of ``a-z 0-9 . _ -``, starting with a letter or digit), ``invalid_code_hash``
(64 lowercase hex), ``upgrade_height_passed`` (the height must be after the current block: a
proposal whose timelock ran past it must be proposed again). ``cancel_upgrade``:
``no_upgrade_scheduled``, ``upgrade_height_passed`` (the upgrade happened: schedule a rollback).
"""
from __future__ import annotations

import re
from typing import Final

from bastion.core.errors import ProtocolError
from bastion.core.messages import CancelUpgrade, ScheduleUpgrade
from bastion.core.state import ScheduledUpgrade, State

UPGRADE_NAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
CODE_HASH: Final = re.compile(r"[0-9a-f]{64}")
UPGRADE_FIELDS: Final = ("name", "height", "code_hash")


def parse_schedule_upgrade(state: State, action: ScheduleUpgrade) -> ScheduledUpgrade:
    """``schedule_upgrade`` validated: the new plan (``governance.dispatch`` turns it into the three
    critical ``upgrade.*`` changes). Raises
    ``invalid_upgrade_name``, ``invalid_code_hash``, ``upgrade_height_passed``."""
    if not UPGRADE_NAME.fullmatch(action.name):
        raise ProtocolError("invalid_upgrade_name", "an upgrade name is 1 to 64 characters of a-z, 0-9, '.', '_' "
                            "and '-', starting with a letter or digit", field="name")
    if not CODE_HASH.fullmatch(action.code_hash):
        raise ProtocolError("invalid_code_hash", "code_hash must be 64 lowercase hex digits (SHA-256)",
                            field="code_hash")
    if action.height <= state.height:
        raise ProtocolError("upgrade_height_passed", f"the upgrade height must be after the current block "
                            f"{state.height}", field="height", current_height=state.height)
    return ScheduledUpgrade(action.name, action.height, action.code_hash)


def parse_cancel_upgrade(state: State, action: CancelUpgrade) -> ScheduledUpgrade:
    """``cancel_upgrade`` validated: the empty plan (cleared before its height). Raises
    ``no_upgrade_scheduled``, ``upgrade_height_passed``."""
    if state.upgrade.height == 0:
        raise ProtocolError("no_upgrade_scheduled", "no upgrade is scheduled", field="type")
    if state.upgrade.height <= state.height:
        raise ProtocolError("upgrade_height_passed", f"the upgrade {state.upgrade.name!r} took effect at block "
                            f"{state.upgrade.height}: roll back with a new schedule_upgrade", field="type")
    return ScheduledUpgrade()


def check_node_code(state: State, code_hash: str) -> str | None:
    """Why a node whose code hash is ``code_hash`` must not apply the next block, or None: the next
    block is at or after the scheduled height and the hashes differ."""
    plan = state.upgrade
    if plan.height == 0 or state.height + 1 < plan.height or code_hash == plan.code_hash:
        return None
    return (f"upgrade {plan.name!r} scheduled at height {plan.height} requires code {plan.code_hash}; this node "
            f"runs {code_hash}: stopped before block {state.height + 1}")


def describe_upgrade(state: State, code_hash: str | None = None) -> dict[str, object]:
    """The scheduled upgrade for the API and ``bastion node`` (``scheduled`` False when none); with
    the node's ``code_hash``, whether it may apply the next block."""
    plan = state.upgrade
    result: dict[str, object] = {"scheduled": plan.height != 0, "name": plan.name or None,
                                 "height": plan.height or None, "code_hash": plan.code_hash or None,
                                 "reached": plan.height != 0 and state.height >= plan.height}
    if code_hash is not None:
        result["node_code_hash"] = code_hash
        result["node_ready"] = plan.height == 0 or code_hash == plan.code_hash
        result["halt_reason"] = check_node_code(state, code_hash)
    return result
