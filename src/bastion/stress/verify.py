"""Recompute a stress report from the chain's data: ``bastion stress --verify HASH`` (issue 20).

A registered report names its inputs (``inputs``: the state hash and height it stressed, the
scenario set's name, version and hash, the seed; ``thresholds_source`` and ``thresholds``). Anyone
holding the chain (a node's data directory: its block log and snapshots) can therefore redo it:

1. the report's bytes (a file, or the node's report store ``DIR/reports/HASH.json``) must hash
   to ``HASH``;
2. the state at ``inputs.height`` is rebuilt from the log (the newest snapshot at or below it, then
   the blocks replayed, each state hash checked against the log: ``state_at``);
3. if that state's hash is ``inputs.state_hash`` the report stressed the chain as it was; otherwise
   it stressed a proposal applied to it: the proposal given (``--proposal``) or, by default, every
   proposal the council attested with this report hash, tried in order, must give that hash once
   applied (``stress.proposal.apply_proposal``);
4. the scenario set is the shipped gate set when its hash (with the report's seed) matches, else the
   set file given (``--scenarios``), whose hash must match;
5. the thresholds are the governed ones, or the report's own when it says ``override``;
6. the sweep is run again and the canonical bytes compared: ``reproduced`` only when they are
   identical byte for byte (the report hash is then the same).

A missing input (no report, a state hash no candidate gives, a scenario set not at hand) is a
``VerifyInputError`` (exit 2: nothing was judged); a run that gives other bytes is ``reproduced:
false`` (exit 1) with the first key path where the documents differ.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from bastion.core.errors import ProtocolError
from bastion.core.state import State
from bastion.stress.chainlog import VerifyInputError, state_at
from bastion.stress.report import OVERRIDE, parse_thresholds
from bastion.stress.runner import load_set, run
from bastion.stress.scenarios import ScenarioSet, scenario_set_hash

__all__ = ["VerifyInputError", "find_difference", "load_report_bytes", "state_at", "verify_report"]

REPORTS_DIRECTORY = "reports"   # the node's report store (``bastion.api.reports.DIRECTORY``)


def load_report_bytes(report_hash: str, *, data: Path | None = None, report: Path | None = None) -> bytes:
    """The report's bytes from ``report`` (a file) or the node's report store in ``data``; their
    SHA-256 must be ``report_hash``."""
    path = report
    if path is None and data is not None:
        path = data / REPORTS_DIRECTORY / f"{report_hash}.json"
    if path is None or not path.is_file():
        raise VerifyInputError(f"no report {report_hash} at hand: give --report FILE (or upload it to the node)")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != report_hash:
        raise VerifyInputError(f"{path} is not the report {report_hash} (its SHA-256 differs)")
    return raw


def _scenario_set(inputs: dict[str, Any], scenarios: Path | ScenarioSet | None,
                  tickers: tuple[str, ...]) -> ScenarioSet:
    """The set to run: ``scenarios`` (a file or a parsed set; default the shipped gate set) with the
    report's seed, which must then have the report's scenario-set hash."""
    declared = inputs["scenario_set"]["hash"]
    if isinstance(scenarios, ScenarioSet):
        candidate = dataclasses.replace(scenarios, seed=inputs["seed"])
    else:
        candidate = load_set(scenarios, inputs["seed"], (), tickers)
    if scenario_set_hash(candidate) != declared:
        where = ("the shipped gate set" if scenarios is None
                 else "the given set" if isinstance(scenarios, ScenarioSet) else str(scenarios))
        raise VerifyInputError(f"{where} with seed {inputs['seed']} is not the report's scenario set "
                               f"{inputs['scenario_set']['name']!r} v{inputs['scenario_set']['version']} "
                               f"(hash {declared}): give it with --scenarios FILE")
    return candidate


def _proposal_for(state: State, head: State, report_hash: str, target: str, proposal: str | None) -> str:
    """The proposal whose application to ``state`` gives the state hash ``target``."""
    from bastion.core.hashing import compute_state_hash_full
    from bastion.stress.proposal import apply_proposal

    candidates = [proposal] if proposal is not None else [
        pid for pid, by_member in head.attestations.items()
        if any(a.report_hash == report_hash for a in by_member.values())]
    for pid in candidates:
        found = state.proposals.get(pid)
        if found is None or found.status != "queued":
            continue
        if compute_state_hash_full(apply_proposal(state, found.actions)) == target:
            return pid
    raise VerifyInputError(f"the report stressed state {target}: neither the chain at its height nor "
                           f"{'proposal ' + proposal if proposal else 'a proposal attested with it'} applied to it "
                           "gives that state")


def find_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first key path (``summary.var99_loss_usdc``, ``scenarios[3].loss_usdc``) where two JSON
    documents differ, or None when they are equal."""
    if type(a) is not type(b):
        return path or "."
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key}".lstrip(".")
            found = find_difference(a[key], b[key], f"{path}.{key}")
            if found is not None:
                return found.lstrip(".")
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}[len]".lstrip(".")
        for index, (x, y) in enumerate(zip(a, b)):
            found = find_difference(x, y, f"{path}[{index}]")
            if found is not None:
                return found.lstrip(".")
        return None
    return None if a == b else (path.lstrip(".") or ".")


def verify_report(report_hash: str, data: Path, *, report: Path | None = None,
                  scenarios: Path | ScenarioSet | None = None,
                  proposal: str | None = None, workers: int | None = 1) -> dict[str, Any]:
    """Recompute the report ``report_hash`` from the chain in ``data`` (module docstring). Returns
    ``{report_hash, reproduced, recomputed_hash, height, state_hash, proposal_id, scenario_set,
    difference}``; raises ``VerifyInputError`` when it cannot be recomputed."""
    raw = load_report_bytes(report_hash, data=data, report=report)
    document = json.loads(raw)
    try:
        inputs = document["inputs"]
        height, target = int(inputs["height"]), str(inputs["state_hash"])
    except (KeyError, TypeError, ValueError):
        raise VerifyInputError(f"{report_hash} is not a stress report (no inputs)") from None
    state = state_at(data, height)
    proposal_id = None
    if state.state_hash != target:
        from bastion.node.recovery import load_committed_state

        head = load_committed_state(data)[0]
        proposal_id = _proposal_for(state, head, report_hash, target, proposal)
    scenario_set = _scenario_set(inputs, scenarios, tuple(state.markets))
    thresholds = None
    if document.get("thresholds_source") == OVERRIDE:
        try:
            thresholds = parse_thresholds(document["thresholds"])
        except ProtocolError as error:
            raise VerifyInputError(f"the report's thresholds: {error.message}") from None
    stress_run = run(state, scenario_set=scenario_set, thresholds=thresholds, proposal_id=proposal_id,
                     workers=workers)
    if "testnet" in document:   # the testnet replay (stress.testnet), over the window it recorded
        from bastion.stress.runner import load_proposal_actions
        from bastion.stress.testnet import add_testnet, replay_recent

        section = document["testnet"]
        if proposal_id is None:
            raise VerifyInputError("the report has a testnet section but stressed no proposal")
        stress_run = add_testnet(stress_run, replay_recent(
            data, load_proposal_actions(state, proposal_id), section["days"], max_blocks=section["max_blocks"],
            proposal_id=section["proposal_id"],
            window=(section["from_height"], section["to_height"], section["truncated"])))
    again = stress_run.report
    return {"report_hash": report_hash, "reproduced": again.canonical_bytes == raw,
            "recomputed_hash": again.report_hash, "height": height, "state_hash": target,
            "proposal_id": proposal_id,
            "scenario_set": dict(inputs["scenario_set"], seed=inputs["seed"]),
            "difference": find_difference(document, again.document)}
