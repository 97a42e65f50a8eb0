"""The recipe of docs/governance.md, "Adding a governance action", kept honest.

* The recipe names three files, the first two in ``src/`` with the anchors it tells the reader to
  edit (``ACTION_TYPES``, the ``Action`` union, ``compute_action_changes`` and its ``case _:``).
* Every action of ``ACTION_TYPES`` is in the ``Action`` union and has its own ``case`` in the
  ``match`` of ``dispatch.compute_action_changes`` (so the dispatch really is that ``match``).
* The recipe is followed on a copy of ``src/``: a toy action ``set_withdrawal_pause{blocks}``
  (moves ``liquidation.withdrawal_pause_blocks``) is added by editing only the two source files
  the recipe names, at its anchors, and the copy is run in a subprocess: the action decodes, is
  refused as a transaction, validates and classifies (with the pending proposals), is refused on
  bad input with stable codes, and applies through ``apply_effect`` with its parameter history.
"""
from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

from bastion.core.messages import ACTION_TYPES, Action

ROOT = Path(__file__).resolve().parents[1]
DISPATCH = ROOT / "src" / "bastion" / "core" / "governance" / "dispatch.py"
MESSAGES = ROOT / "src" / "bastion" / "core" / "messages.py"


TABLE = re.compile(r"^ACTION_TYPES: .* = \{\n", re.MULTILINE)    # the opening line of the table in messages.py


def recipe_files() -> list[str]:
    """The files of the recipe's numbered steps (the first backquoted path of each step)."""
    text = (ROOT / "docs" / "governance.md").read_text(encoding="utf-8")
    section = text.split("## Adding a governance action", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\d+\. (?:A test module under )?`([^`]+)`", section, flags=re.MULTILINE)


def test_the_recipe_names_three_files_with_their_anchors():
    files = recipe_files()

    assert files == ["src/bastion/core/messages.py", "src/bastion/core/governance/dispatch.py", "tests/"]
    messages, dispatch = (ROOT / name for name in files[:2])
    assert TABLE.search(messages.read_text()) and "\nAction = (" in messages.read_text()
    assert "def compute_action_changes(" in dispatch.read_text() and "        case _:\n" in dispatch.read_text()


def dispatched_classes() -> tuple[set[str], bool]:
    """The class patterns of the ``match`` in ``compute_action_changes``, and whether it ends in ``case _``."""
    tree = ast.parse(DISPATCH.read_text(encoding="utf-8"))
    function = next(node for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name == "compute_action_changes")
    match = next(node for node in ast.walk(function) if isinstance(node, ast.Match))
    names = {node.cls.id for case in match.cases for node in ast.walk(case.pattern)
             if isinstance(node, ast.MatchClass) and isinstance(node.cls, ast.Name)}
    last = match.cases[-1].pattern
    return names, isinstance(last, ast.MatchAs) and last.pattern is None and last.name is None


def test_every_action_is_in_the_union_and_has_its_case_in_the_dispatch_match():
    names, ends_with_wildcard = dispatched_classes()

    assert set(typing.get_args(Action)) == set(ACTION_TYPES.values())
    assert names == {cls.__name__ for cls in ACTION_TYPES.values()}
    assert ends_with_wildcard


TOY_CLASS = '''
@dataclass(frozen=True, slots=True)
class SetWithdrawalPause(_Checked):
    """A toy action (tests/test_governance_recipe.py): the withdrawal pause after a negative account."""
    blocks: int


'''
TOY_CASE = '''        case SetWithdrawalPause():
            changes.extend(compute_withdrawal_pause_changes(state, action))
'''
TOY_FUNCTION = '''

def compute_withdrawal_pause_changes(state: State, action: SetWithdrawalPause) -> list[Change]:
    """``set_withdrawal_pause``: a shorter pause is riskier. Raises ``invalid_field``."""
    if not 0 <= action.blocks <= 10_000:
        raise ProtocolError("invalid_field", "blocks must be from 0 to 10000", field="blocks")
    old = state.liquidation.withdrawal_pause_blocks
    return [Change(ParamPath(ParamGroup.LIQUIDATION, "", "withdrawal_pause_blocks"), old, action.blocks,
                   compare_risk(old, action.blocks, riskier_when_higher=False))]
'''
CHECK = '''
import json
from bastion.core import governance
from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.governance import classify
from bastion.core.messages import canonical_action, decode_action, decode_message
from bastion.core.state import ParamSource

state = build_state({"markets": []})
out = {}
try:
    decode_message({"type": "set_withdrawal_pause", "blocks": 10})
except ProtocolError as error:
    out["as_transaction"] = error.code
action = decode_action({"type": "set_withdrawal_pause", "blocks": 10}, 0)
out["canonical"] = canonical_action(action)
changes, out["class"] = classify.classify_proposal(state, (action,))
out["rows"] = [[c.name, c.old, c.new, c.risk] for c in changes]
out["refused"] = []
for bad in ({"blocks": 10_001}, {"blocks": -1}, {"blocks": "10"}, {}):
    try:
        governance.compute_action_changes(state, decode_action({"type": "set_withdrawal_pause", **bad}, 0))
        out["refused"].append(None)
    except ProtocolError as error:
        out["refused"].append(error.code)
events = []
for change in changes:
    governance.apply_effect(state, change, ParamSource("proposal", "toy", 1), events)
out["applied"] = state.liquidation.withdrawal_pause_blocks
out["history"] = [state.param_history[-1].name, state.param_history[-1].old, state.param_history[-1].new]
out["events"] = [event["type"] for event in events]
print(json.dumps(out))
'''


def insert_before(text: str, anchor: str, snippet: str) -> str:
    assert text.count(anchor) == 1, anchor
    return text.replace(anchor, snippet + anchor)


def test_following_the_recipe_adds_a_working_action(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src", copy, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"))
    messages, dispatch = (copy / name.removeprefix("src/") for name in recipe_files()[:2])
    text = messages.read_text(encoding="utf-8")
    table = TABLE.search(text).group(0)
    text = insert_before(text, table, TOY_CLASS)
    text = text.replace(table, table + '    "set_withdrawal_pause": SetWithdrawalPause,\n')
    text = text.replace("\nAction = (", "\nAction = (SetWithdrawalPause | ")
    messages.write_text(text, encoding="utf-8")
    text = dispatch.read_text(encoding="utf-8")
    text = insert_before(text, "        case _:\n            raise InvariantViolation(f\"unhandled action", TOY_CASE)
    text = text.replace("    SetStewardBounds, StartRollout,",
                        "    SetStewardBounds, SetWithdrawalPause, StartRollout,")
    dispatch.write_text(text + TOY_FUNCTION, encoding="utf-8")
    changed = sorted(str(path.relative_to(copy)) for path in copy.rglob("*.py")
                     if path.read_bytes() != (ROOT / "src" / path.relative_to(copy)).read_bytes())
    assert changed == ["bastion/core/governance/dispatch.py", "bastion/core/messages.py"]

    run = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})

    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["as_transaction"] == "action_requires_proposal"
    assert out["canonical"] == {"type": "set_withdrawal_pause", "blocks": 10}
    assert out["rows"] == [["liquidation.withdrawal_pause_blocks", 50, 10, "risk_increasing"]]
    assert out["class"] == "risk_increasing"
    assert out["refused"] == ["invalid_field", "invalid_field", "invalid_field", "missing_field"]
    assert out["applied"] == 10
    assert out["history"] == ["liquidation.withdrawal_pause_blocks", 50, 10]
    assert out["events"] == ["param_changed"]
