"""Golden scenarios: every ``tests/scenarios/*.json`` is run and checked against its ``expect``.

A golden scenario is a scenario file (docs/scenarios.md) plus three documentation/check fields that
``run_scenario`` ignores:

* ``description`` -- one line;
* ``notes`` -- the hand arithmetic behind every expected number (the numbers in ``expect`` are
  worked out from the spec, never copied from the engine's output);
* ``expect`` -- what must hold in the result:

  ``results``    ``[[block, tx, subset], ...]``: the tx result contains ``subset``;
  ``events``     ``[[block, subset], ...]``: some event of that block contains ``subset``;
  ``event_order``  ``[[block, [subset, ...]], ...]``: events containing these subsets occur in
                 that block in this order (a subsequence);
  ``no_events``  ``[[block, type_or_subset], ...]``: no event of that block matches;
  ``final``      subset of the ``final`` section; ``subaccounts`` are matched by (owner, number)
                 and ``markets`` by ticker, every other dict key by key;
  ``rejections_change_nothing``  ``true``: rerunning the document with every rejected tx removed
                 gives the same state hash after every block.

"Contains" is a recursive subset: dicts by key, lists element by element with equal lengths,
everything else by equality. Block indices are 0-based positions in ``blocks``.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import bastion.scenario
from bastion.core.hashing import compute_state_hash_full
from bastion.scenario import ScenarioError, run_scenario

SCENARIO_DIR = Path(__file__).parent / "scenarios"
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.json"))
EXPECT_KEYS = {"results", "events", "event_order", "no_events", "final", "rejections_change_nothing"}

# Scenarios whose hand-computed expectations disagree with the engine: an engine bug to fix in src/.
# strict=True, so the test fails (and this entry must go) as soon as the engine is fixed.
KNOWN_ENGINE_BUGS: dict[str, str] = {}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def _param(path: Path, known: dict[str, str]) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=known[path.stem])] if path.stem in known else []
    return pytest.param(path, id=path.stem, marks=marks)


def scenarios(known: dict[str, str] | None = None, *, only_flagged: str | None = None) -> Any:
    files = [p for p in SCENARIO_FILES if only_flagged is None or load(p).get("expect", {}).get(only_flagged)]
    return pytest.mark.parametrize("path", [_param(p, known or {}) for p in files])


# --------------------------------------------------------------------------------------- matching
def subset_diff(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Differences between ``expected`` and the part of ``actual`` it describes (empty = match)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where or '.'}: expected an object, got {actual!r}"]
        diffs = []
        for key, value in expected.items():
            if key not in actual:
                diffs.append(f"{where}.{key}: missing (expected {value!r})")
            else:
                diffs += subset_diff(value, actual[key], f"{where}.{key}")
        return diffs
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where or '.'}: expected {expected!r}, got {actual!r}"]
        diffs = []
        for i, (e, a) in enumerate(zip(expected, actual)):
            diffs += subset_diff(e, a, f"{where}[{i}]")
        return diffs
    if expected != actual or _json_type(expected) is not _json_type(actual):
        return [f"{where or '.'}: expected {expected!r}, got {actual!r}"]
    return []


def _json_type(value: Any) -> type:
    """The JSON type a value is written as: exact (a bool is not an int, 1.0 is not 1), except that
    a status or mode of ``bastion.core.enums`` (a ``StrEnum`` member) is the string it equals."""
    return str if isinstance(value, str) else type(value)


def matches(expected: Any, actual: Any) -> bool:
    return not subset_diff(expected, actual)


def _event_pattern(pattern: str | dict) -> dict:
    return {"type": pattern} if isinstance(pattern, str) else pattern


def _show_events(events: list[dict]) -> str:
    return "\n".join("      " + json.dumps(e, sort_keys=True) for e in events) or "      (no events)"


def _final_diff(expected: dict, final: dict) -> list[str]:
    diffs = []
    for key, value in expected.items():
        if key == "subaccounts":
            by_id = {(s["owner"], s["number"]): s for s in final["subaccounts"]}
            for want in value:
                ident = (want["owner"], want.get("number", 0))
                got = by_id.get(ident)
                if got is None:
                    diffs.append(f"final.subaccounts: no subaccount {ident[0]}/{ident[1]}")
                else:
                    diffs += subset_diff(want, got, f"final.subaccounts[{ident[0][-2:]}/{ident[1]}]")
        elif key == "markets":
            by_ticker = {m["ticker"]: m for m in final["markets"]}
            for want in value:
                got = by_ticker.get(want["ticker"])
                if got is None:
                    diffs.append(f"final.markets: no market {want['ticker']}")
                else:
                    diffs += subset_diff(want, got, f"final.markets[{want['ticker']}]")
        elif key not in final:
            diffs.append(f"final.{key}: missing")
        else:
            diffs += subset_diff(value, final[key], f"final.{key}")
    return diffs


def check_expectations(expect: dict, out: dict) -> list[str]:
    """Every way ``out`` (a ``run_scenario`` result) differs from ``expect``."""
    blocks = out["blocks"]
    diffs: list[str] = []

    def block_of(index: int, what: str) -> dict | None:
        if not 0 <= index < len(blocks):
            diffs.append(f"{what}: no block {index} (the scenario has {len(blocks)})")
            return None
        return blocks[index]

    for b, t, want in expect.get("results", []):
        blk = block_of(b, f"results[{b}][{t}]")
        if blk is None:
            continue
        if not 0 <= t < len(blk["results"]):
            diffs.append(f"results: block {b} has no tx {t}")
            continue
        got = blk["results"][t]
        diffs += [f"block {b} tx {t} result{d}  (whole result: {json.dumps(got)})"
                  for d in subset_diff(want, got, "")]
    for b, want in expect.get("events", []):
        blk = block_of(b, f"events[{b}]")
        if blk is not None and not any(matches(want, e) for e in blk["events"]):
            diffs.append(f"block {b}: no event contains {json.dumps(want)}; the block's events:\n"
                         + _show_events(blk["events"]))
    for b, sequence in expect.get("event_order", []):
        blk = block_of(b, f"event_order[{b}]")
        if blk is None:
            continue
        position = 0
        for want in sequence:
            while position < len(blk["events"]) and not matches(want, blk["events"][position]):
                position += 1
            if position == len(blk["events"]):
                diffs.append(f"block {b}: events not in the expected order, {json.dumps(want)} missing after "
                             f"the previous ones; the block's events:\n" + _show_events(blk["events"]))
                break
            position += 1
    for b, pattern in expect.get("no_events", []):
        blk = block_of(b, f"no_events[{b}]")
        if blk is None:
            continue
        found = [e for e in blk["events"] if matches(_event_pattern(pattern), e)]
        if found:
            diffs.append(f"block {b}: unexpected event(s) matching {json.dumps(pattern)}:\n" + _show_events(found))
    if "final" in expect:
        diffs += _final_diff(expect["final"], out["final"])
    return diffs


def without_rejected_txs(doc: dict, out: dict) -> dict:
    """The same document with every tx whose result was a rejection removed."""
    twin = copy.deepcopy(doc)
    for block, result in zip(twin["blocks"], out["blocks"]):
        block["txs"] = [t for t, r in zip(block["txs"], result["results"]) if r["ok"]]
    return twin


# --------------------------------------------------------------------------------------- tests
def test_there_are_golden_scenarios() -> None:
    assert len(SCENARIO_FILES) >= 25, [p.name for p in SCENARIO_FILES]
    assert set(KNOWN_ENGINE_BUGS) <= {p.stem for p in SCENARIO_FILES}


@scenarios()
def test_scenario_is_documented(path: Path) -> None:
    doc = load(path)
    assert isinstance(doc.get("description"), str) and doc["description"], "a one-line description is required"
    notes = doc.get("notes")
    assert isinstance(notes, list) and notes and all(isinstance(n, str) and n for n in notes), \
        "notes (the hand arithmetic, one line each) are required"
    expect = doc.get("expect")
    assert isinstance(expect, dict) and set(expect) - {"rejections_change_nothing"}, "a non-empty expect is required"
    assert set(expect) <= EXPECT_KEYS, f"unknown expect keys {sorted(set(expect) - EXPECT_KEYS)}"


@scenarios(KNOWN_ENGINE_BUGS)
def test_scenario_expectations(path: Path) -> None:
    doc = load(path)
    out = run_scenario(doc)
    diffs = check_expectations(doc["expect"], out)
    assert not diffs, f"{path.name}: {len(diffs)} difference(s) from the hand-computed expectations:\n" + \
        "\n".join("  - " + d for d in diffs)


@scenarios()
def test_scenario_is_deterministic(path: Path) -> None:
    doc = load(path)
    first, second = run_scenario(copy.deepcopy(doc)), run_scenario(copy.deepcopy(doc))
    assert first["final"]["state_hash"] == second["final"]["state_hash"]
    assert [b["state_hash"] for b in first["blocks"]] == [b["state_hash"] for b in second["blocks"]]
    assert first == second


@scenarios()
def test_incremental_state_hash_matches_full_recomputation(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every block's (incremental) state hash equals the hash recomputed from every leaf: nothing
    the scenario changes was left out of ``State.touch``."""
    real_apply_block = bastion.scenario.apply_block
    checked = []

    def apply_and_check(state, time_ms, txs):
        result = real_apply_block(state, time_ms, txs)
        assert compute_state_hash_full(state) == result.state_hash, f"block {len(checked)}: incremental hash is stale"
        checked.append(result.height)
        return result

    monkeypatch.setattr(bastion.scenario, "apply_block", apply_and_check)
    doc = load(path)
    run_scenario(doc)
    assert len(checked) == len(doc["blocks"])


@scenarios(only_flagged="rejections_change_nothing")
def test_rejections_change_nothing(path: Path) -> None:
    """Each rejected tx leaves the state exactly as if it had never been sent."""
    doc = load(path)
    out = run_scenario(doc)
    rejected = sum(not r["ok"] for b in out["blocks"] for r in b["results"])
    assert rejected, "the scenario claims rejections change nothing but rejects no tx"
    twin = run_scenario(without_rejected_txs(doc, out))
    for i, (a, b) in enumerate(zip(out["blocks"], twin["blocks"])):
        assert a["state_hash"] == b["state_hash"], f"block {i}: state differs once the rejected txs are removed"
        assert a["events"] == b["events"], f"block {i}: events differ once the rejected txs are removed"
    assert out["final"] == twin["final"]


# --------------------------------------------------------------------------------------- genesis errors
def _genesis(accounts: list[dict], **market: Any) -> dict:
    return {
        "chain_id": "bastion-golden", "time": "2026-01-01T00:00:00Z",
        "liquidity_tiers": [{"id": 0, "name": "large-cap", "initial_margin": "0.05", "maintenance_fraction": "0.6",
                             "impact_notional": "10000"}],
        "markets": [{"ticker": "BTC-USD", "size_decimals": 4, "price_decimals": 0, "liquidity_tier": 0,
                     "oracle_price": "50000", **market}],
        "accounts": accounts,
    }


def _acct(address: str, usdc: str, *positions: tuple[str, str]) -> dict:
    return {"address": address, "subaccounts": [
        {"number": 0, "usdc": usdc, "positions": [{"market": m, "size": s} for m, s in positions]}]}


A0 = "0x00000000000000000000000000000000000000a0"
B0 = "0x00000000000000000000000000000000000000b0"
C0 = "0x00000000000000000000000000000000000000c0"


def test_genesis_balanced_positions_are_accepted() -> None:
    # a0 long 0.5, b0 short 0.3, c0 short 0.2: long - short = 0 -> accepted, open interest 0.5
    doc = {"genesis": _genesis([_acct(A0, "-15000", ("BTC-USD", "0.5")), _acct(B0, "25000", ("BTC-USD", "-0.3")),
                                _acct(C0, "20000", ("BTC-USD", "-0.2"))]), "blocks": []}
    final = run_scenario(doc)["final"]
    assert final["markets"][0]["open_interest"] == "0.5"


@pytest.mark.parametrize("accounts, market, match", [
    pytest.param([_acct(A0, "0", ("BTC-USD", "0.5")), _acct(B0, "30000", ("BTC-USD", "-0.4"))], {},
                 "do not balance", id="unbalanced"),
    pytest.param([_acct(A0, "0", ("BTC-USD", "0.5"))], {}, "do not balance", id="long-only"),
    pytest.param([_acct(A0, "0", ("BTC-USD", "0.5")), _acct(B0, "30000", ("BTC-USD", "-0.5"))],
                 {"max_open_interest": "0.4"}, "max_open_interest", id="above-open-interest-cap"),
    pytest.param([_acct(A0, "0", ("ETH-USD", "1"))], {}, "unknown market", id="unknown-market"),
    pytest.param([_acct(A0, "0", ("BTC-USD", "0.00001")), _acct(B0, "0", ("BTC-USD", "-0.00001"))], {},
                 "decimals", id="off-grid-size"),
    pytest.param([_acct(A0, "0", ("BTC-USD", "0"))], {}, "non-zero", id="zero-position"),
])
def test_genesis_invalid_positions_are_a_scenario_error(accounts: list, market: dict, match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        run_scenario({"genesis": _genesis(accounts, **market), "blocks": []})


def test_malformed_block_is_a_scenario_error() -> None:
    doc = {"genesis": _genesis([]), "blocks": [{"advance": 1, "time": "2026-01-01T00:00:01Z", "txs": []}]}
    with pytest.raises(ScenarioError, match="exactly one of"):
        run_scenario(doc)
