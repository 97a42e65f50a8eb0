"""Scenario files (docs/scenarios.md): a genesis and blocks of messages in, a JSON result out.

This is an adapter around the pure core: it parses the file, feeds ``apply_block`` and formats
integers back into decimal strings with each market's grid (``bastion.presentation``). Structural mistakes in the file
(a block without ``txs``, a missing sender, an invalid genesis...) raise ``ScenarioError`` with a
message naming the block, the transaction and the field; a well-formed message that the protocol
rejects is a result ``{"ok": false, "code", "message", "field"}`` like any other transaction.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bastion.core.errors import ProtocolError
from bastion.core.genesis import GENESIS_DEFAULTS, build_state
from bastion.core.messages import Message, decode_message, normalize_address
from bastion.core.state import State
from bastion.core.timefmt import format_iso_ms, parse_iso_ms
from bastion.core.transition import apply_block, check_invariants
from bastion.core.units import MS_PER_S
from bastion.presentation import describe_state, format_event, format_result


class ScenarioError(Exception):
    """A malformed scenario file; the message names where (block, tx, field)."""


def _block_time(block: Any, index: int, state: State) -> int:
    where = f"block {index + 1}"
    if not isinstance(block, dict):
        raise ScenarioError(f"{where}: must be an object with 'advance' or 'time' and 'txs'")
    unknown = sorted(set(block) - {"advance", "time", "txs"})
    if unknown:
        raise ScenarioError(f"{where}: unknown field {unknown[0]!r}")
    if ("advance" in block) == ("time" in block):
        raise ScenarioError(f"{where}: give exactly one of 'advance' (seconds) or 'time' (ISO-8601)")
    if "advance" in block:
        advance = block["advance"]
        if not isinstance(advance, int) or isinstance(advance, bool) or advance < 0:
            raise ScenarioError(f"{where}, field 'advance': must be a non-negative whole number of seconds")
        return state.time_ms + advance * MS_PER_S
    try:
        time_ms = parse_iso_ms(block["time"], field="time")
    except ProtocolError as error:
        raise ScenarioError(f"{where}, field 'time': {error.message}") from None
    if time_ms < state.time_ms:
        raise ScenarioError(f"{where}, field 'time': {block['time']} is before the previous block")
    return time_ms


def run_scenario(data: Any, *, check: bool = True) -> dict:
    """Run a parsed scenario document and return its result (see docs/scenarios.md)."""
    state, blocks = replay_scenario(data, check=check)
    return {"blocks": blocks, "final": describe_state(state)}


def replay_scenario(data: Any, *, check: bool = True) -> tuple[State, list[dict]]:
    """Run a parsed scenario document: its final (committed) state and the per-block results."""
    if not isinstance(data, dict) or "genesis" not in data:
        raise ScenarioError("a scenario is an object with 'genesis' and 'blocks'")
    unknown = sorted(set(data) - {"genesis", "blocks", "description", "notes", "expect"})
    if unknown:
        raise ScenarioError(f"unknown top-level field {unknown[0]!r}")
    try:
        state = build_state(data["genesis"])
    except ProtocolError as error:
        raise ScenarioError(error.message) from None
    blocks = data.get("blocks", [])
    if not isinstance(blocks, list):
        raise ScenarioError("'blocks' must be a list")
    out_blocks = []
    for i, block in enumerate(blocks):
        time_ms = _block_time(block, i, state)
        txs_in = block.get("txs", [])
        if not isinstance(txs_in, list):
            raise ScenarioError(f"block {i + 1}, field 'txs': must be a list")
        txs: list[tuple[str, Message] | None] = []
        decode_errors: dict[int, dict[str, Any]] = {}
        for j, tx in enumerate(txs_in):
            where = f"block {i + 1}, tx {j + 1}"
            if not isinstance(tx, dict) or set(tx) - {"sender", "msg"} or "msg" not in tx or "sender" not in tx:
                raise ScenarioError(f"{where}: a tx is an object with exactly 'sender' and 'msg'")
            try:
                sender = normalize_address(tx["sender"], field="sender")
            except ProtocolError as error:
                raise ScenarioError(f"{where}, field 'sender': {error.message}") from None
            try:
                txs.append((sender, decode_message(tx["msg"])))
            except ProtocolError as error:
                decode_errors[j] = {"ok": False, "code": error.code, "message": error.message,
                                    "field": error.fields.get("field")}
                txs.append(None)
        result = apply_block(state, time_ms, [tx for tx in txs if tx is not None])
        applied = iter(result.results)
        results = [decode_errors[j] if tx is None else next(applied) for j, tx in enumerate(txs)]
        if check:
            check_invariants(state)
        out_blocks.append({"height": result.height, "time": format_iso_ms(result.time_ms),
                           "state_hash": result.state_hash, "results": [format_result(r, state) for r in results],
                           "events": [format_event(e, state) for e in result.events]})
    return state, out_blocks


def run_scenario_file(path: str | Path, *, check: bool = True) -> dict:
    return run_scenario(read_scenario_file(path), check=check)


def read_scenario_file(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ScenarioError(f"{path}: not valid JSON ({error})") from None


def scenario_final_state(path: str | Path) -> State:
    """The final state of a scenario file (``bastion stress --scenario``)."""
    state, _ = replay_scenario(read_scenario_file(path))
    return state


def scenario_defaults() -> dict:
    """The defaults applied to omitted genesis fields."""
    return GENESIS_DEFAULTS
