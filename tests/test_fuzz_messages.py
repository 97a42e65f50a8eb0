"""Fuzzing the state machine's input: no exception but ``ProtocolError`` leaves a message handler.

Hypothesis draws messages of **every type** (and every governance action, inside a proposal) from
the message schema (``bastion.core.messages``): each field is a valid value for its name (tickers,
addresses, decimals on the grids, ids of existing orders and proposals) or, one time in three, a
value of the hostile table (5,000- and 4,300-digit strings, ``"1\\n"``, ``" 1"``, ``"1e5"``,
Arabic-Indic digits, ``"+1"``, ``"-0"``, an address with a trailing newline, huge and negative
integers, booleans where integers belong, floats, NaN, None, nested lists and objects, very long
strings, lone surrogates); sometimes a field is left out or an unknown one added. The senders are
traders, the bridge, the oracle, a council member, the guardian and a stranger, and the state has
markets, resting orders, untriggered conditional orders and proposals in several statuses.

Each drawn transaction goes two ways:

* **through intake**: ``decode_message`` either refuses it (``ProtocolError``) or its typed message
  is applied;
* **around intake**: the raw values are put straight into the message dataclass (as another adapter
  might): building it refuses them (``ProtocolError``: ``messages._Checked``) or it is applied.

and, applied in an open block, must give ``{"ok": true, ...}`` or ``{"ok": false, "code", "message"}``
and nothing else; a refusal leaves the full state hash and the block's events as they were; the
block then closes with its incremental state hash equal to a from-scratch recompute. Run time: a
few seconds per test (``FUZZ_EXAMPLES``, override with ``BASTION_FUZZ_EXAMPLES``; examples are
derandomised so CI is repeatable, ``BASTION_FUZZ_RANDOM=1`` explores new ones). When atheris is
installed (optional), a short coverage-guided session of ``tests/atheris_messages.py`` runs too.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any

import pytest
from builders import ALICE, BOB, BRIDGE, BTC, CAROL, COUNCIL, DAVE, ETH, ORACLE, PEPE, STRANGER, Chain, address, genesis
from builders import account as account_doc
from builders import place_order, submit_proposal, vote
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.core.errors import ProtocolError
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import ACTION_TYPES, MESSAGE_TYPES, SubmitProposal, decode_message
from bastion.core.transition import apply_tx, begin_block, end_block

FUZZ_EXAMPLES = int(os.environ.get("BASTION_FUZZ_EXAMPLES", "250"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                derandomize=os.environ.get("BASTION_FUZZ_RANDOM") != "1",
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
GUARDIAN = address(0xE0)
SENDERS = (ALICE, BOB, CAROL, BRIDGE, ORACLE, COUNCIL[0], GUARDIAN, STRANGER)
DAY_S = 86_400

HOSTILE: list[Any] = [
    "1" * 5_000, "9" * 4_300, "1." + "1" * 4_999, "1\n", " 1", "1 ", "1e5", "\u0663", "\uff11", "+1", "-0", "-1",
    "0x" + "ab" * 20 + "\n", "0X" + "ab" * 20, "0x" + "ab" * 21, "", "NaN", "Infinity", "-Infinity", "null",
    "x" * 100_000, "\ud800", "\x00", "1_000", "0.0000000000000000000000000000001", "1" * 31,
    "2026-01-01T00:00:00Z\n", "liquidity_tiers." + "1" * 5_000 + ".initial_margin_ppm", "ab" * 32 + "\n",
    2**64, -(2**63) - 1, 10**4_000, -1, 0, 2**53, True, False, 1.5, float("nan"), float("inf"), None,
    [], {}, [[[[[[[]]]]]]], {"a": {"b": {"c": {"d": {"e": {}}}}}}, [1] * 1_000, {"x": "1" * 5_000},
    {BTC: "1" * 5_000}, {BTC: 1}, {1: "2"}, ["0x" + "ab" * 20 + "\n"],
]

ACTION_VALUES: dict[str, list[Any]] = {
    "market": [BTC, ETH, PEPE, "NOPE-USD"], "liquidity_tier": [0, 1, 2, 4, 9], "max_open_interest": ["100", "1000000"],
    "maker_fee": ["0.0001", "-0.0001"], "taker_fee": ["0.0005"], "min_order_size": ["0.001", "1000"],
    "status": ["active", "paused", "reduce_only", "final"], "min_sources": [1, 2], "max_staleness_s": [60, 3600],
    "max_source_deviation": ["0.05"], "max_move_per_block": ["0.1"], "tier": [0, 2, 7],
    "initial_margin": ["0.05", "0.2"], "maintenance_fraction": ["0.6"], "oi_lower_cap": ["0", "1000000"],
    "oi_upper_cap": ["2000000"], "insurance_share": ["0.2", "0.05", "1.5"], "max_liquidation_fee": ["0.01"],
    "max_insurance_loss_per_block": ["1000"], "withdrawal_pause_blocks": [10], "bankruptcy_adjustment": ["1"],
    "spread_to_maintenance": ["1.5"], "min_position_notional": ["1000"], "max_position_portion": ["0.1"],
    "max_notional_per_block": ["100000"],
    "params": [{"min_deposit": "6"}, {"veto_threshold": "1/4"}, {"tiers": {"neutral": {"quorum": "0.2"}}},
               {"veto_threshold": "1/" + "3" * 40}],
    "param": ["max_open_interest", "min_order_size", "fees.insurance_share_ppm", f"markets.{BTC}.taker_fee_ppm",
              "liquidity_tiers.0.initial_margin_ppm"],
    "target": ["100", "0.002"], "steps": [1, 2, 50], "interval_s": [60, 1], "gates": [{}, {"max_bad_debt": "0"}],
    "revert_on_breach": [True, False], "address": [GUARDIAN, None, BOB], "expires": ["2026-02-01T00:00:00Z"],
    "members": [list(COUNCIL), [BOB]], "threshold": [1, 2, 5],
    "bounds": [{}, {"fees.insurance_share_ppm": {"max_change": "0.5", "cooldown_s": 60}},
               {"fees.insurance_share_ppm": None}],
    "ticker": ["NEW-USD", BTC], "size_decimals": [2, -3], "price_decimals": [2, 9], "oracle_price": ["10", "0.5"],
    "oracle": [None, {"min_sources": 1}], "min_initial_margin": ["0.05"], "operators": [[ORACLE], [ORACLE, BOB]],
    "to_owner": [BOB, ALICE], "to_subaccount": [0, 1], "amount": ["1", "10", "0"],
    "from_pool": ["treasury", "cross", PEPE], "to_pool": ["cross", PEPE], "max_order_size": ["100", "0.5"],
    "open_order_tiers": [[{"min_equity": "0", "max_open_orders": 4}], [{"min_equity": "x"}]],
    "max_open_orders": [10, 0], "min_order_notional": ["1", "0"],
}
MESSAGE_VALUES: dict[str, list[Any]] = {
    "owner": [ALICE, BOB, STRANGER], "subaccount": [0, 0, 0, 1, 128], "amount": ["1", "0.5", "100", "0"],
    "to_owner": [BOB, ALICE, STRANGER], "to_subaccount": [0, 0, 1], "market": [BTC, BTC, BTC, ETH, PEPE, "NOPE-USD"],
    "side": ["buy", "sell"], "size": ["0.1", "0.01", "1", "1000"], "price": ["50000", "49000", "50500", "0.00001"],
    "client_id": [1, 2, 7, 99], "order_type": ["limit", "limit", "market", "stop_limit", "stop_market"],
    "time_in_force": ["gtc", "gtc", "ioc", "fok", "post_only", "gtt"], "good_til": ["2026-01-01T00:10:00Z"],
    "trigger_price": ["45000", "55000"], "reduce_only": [True, False],
    "self_trade": ["cancel_resting", "cancel_taking", "decrement"], "order_id": [1, 2, 3, 4, 50],
    "initial_margin": ["0.1", "0.5", "0.01"], "mode": ["cross", "isolated"],
    "prices": [{BTC: "50100"}, {BTC: "50100", ETH: "3010"}, {"NOPE-USD": "1"}],
    "to": [BOB, STRANGER], "delegatee": [ALICE, BOB, "0x" + "00" * 20], "title": ["t", "a proposal", ""],
    "description": ["", "why"], "deposit": ["5", "6"], "option": ["yes", "no", "abstain", "veto"],
    "reason": ["because"], "scope": ["market", "reduce_only", "trading", "withdrawals"],
    "duration_s": [60, 600, 10**6], "report_hash": ["ab" * 32], "verdict": ["pass", "fail"],
    "param": ["fees.insurance_share_ppm", f"markets.{BTC}.taker_fee_ppm"], "value": ["0.2", "0.0004"],
    # agent keys (authorize_agent, revoke_agent): the genesis is at 2026-01-01T00:00:00Z = 1,767,225,600,000 ms
    "agent": [BOB, STRANGER, ALICE], "subaccounts": [None, [0], [0, 1], [128]],
    "permissions": [["trade", "cancel"], ["trade"], ["cancel"], ["withdraw"]],
    "expires_ms": [1_767_225_600_000 + 86_400_000, 1_767_225_600_000, 2**53 - 1], "label": ["bot", None],
}


def fuzz_genesis() -> dict:
    """Markets, four traders with BGOV, a council of three (k = 1), a guardian, quick governance."""
    accounts = [account_doc(owner) for owner in (ALICE, BOB, CAROL, DAVE, GUARDIAN)]
    for entry, bgov in zip(accounts, ("100", "300", "200", "50"), strict=False):
        entry.update(bgov=bgov, delegate=entry["address"])
    tiers = {name: {"quorum": "0.1", "approval_threshold": "0.5", "voting_period_blocks": 2, "timelock_s": 10,
                    "min_holding_age_blocks": 0}
             for name in ("risk_reducing", "neutral", "risk_increasing", "critical")}
    return genesis(accounts=accounts,
                   governance={"voting_delay_blocks": 1, "proposal_threshold": "10", "min_deposit": "5",
                               "late_quorum_extension_blocks": 0, "max_live_proposals": 3, "proposal_fee": "0",
                               "execution_window_s": DAY_S, "tiers": tiers},
                   council={"members": list(COUNCIL), "threshold": 1,
                            "steward_bounds": {"fees.insurance_share_ppm": {"max_change": "1", "cooldown_s": 1}}},
                   guardian={"address": GUARDIAN, "expires": "2026-03-01T00:00:00Z"})


def build_base() -> tuple[Chain, list[str]]:
    """Resting orders on both sides, an untriggered stop, and proposals pending, active and queued."""
    chain = Chain(fuzz_genesis())
    fee = {"type": "set_fee_params", "insurance_share": "0.2"}
    results = chain.block([(BOB, place_order(side="sell", size="1", price="50500", client_id=1)),
                           (CAROL, place_order(side="buy", size="1", price="49500", client_id=2)),
                           (CAROL, place_order(side="sell", size="0.5", price="45000", trigger_price="46000",
                                               order_type="stop_limit", client_id=3)),
                           (ALICE, submit_proposal(fee, title="queued")),
                           (ALICE, submit_proposal(fee, title="active"))]).results
    assert all(r["ok"] for r in results), results
    ids = [results[3]["proposal_id"], results[4]["proposal_id"]]
    chain.block([])
    chain.block([(BOB, vote(ids[0])), (CAROL, vote(ids[0])), (BOB, vote(ids[1]))])
    chain.block([])
    chain.block([], advance_s=2)
    pending = chain.block([(BOB, submit_proposal(fee, title="pending"))]).results[0]
    queued = chain.block([(ALICE, {"type": "queue", "proposal_id": ids[0]})]).results[0]
    ids.append(pending.get("proposal_id", "none"))
    assert queued["ok"], queued
    return chain, ids


BASE, PROPOSAL_IDS = build_base()
MESSAGE_VALUES["proposal_id"] = [*PROPOSAL_IDS, "0" * 64, "x"]


NATURAL_SENDERS = {"deposit": BRIDGE, "oracle_update": ORACLE, "council_attest": COUNCIL[0],
                   "steward_change": COUNCIL[0], "guardian_pause": GUARDIAN, "guardian_unpause": GUARDIAN,
                   "guardian_veto": GUARDIAN}
CLEAN, ONE_HOSTILE, MANY_HOSTILE = "clean", "one", "many"


@st.composite
def action_dicts(draw: st.DrawFn, mode: str) -> Any:
    if mode != CLEAN and draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from(HOSTILE))
    kind = draw(st.sampled_from(sorted(ACTION_TYPES)))
    return fields_of(draw, kind, ACTION_TYPES[kind], ACTION_VALUES, mode)


def fields_of(draw: st.DrawFn, kind: str, cls: type, table: dict[str, list[Any]], mode: str) -> dict[str, Any]:
    """A message (or action) of ``kind``: every field valid (``CLEAN``), one field hostile, or each
    field hostile one time in three; optional fields sometimes left out."""
    names = [f.name for f in dataclasses.fields(cls)]
    hostile_one = draw(st.sampled_from(names)) if mode == ONE_HOSTILE and names else None
    out: dict[str, Any] = {"type": kind}
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING
        if not required and f.name != hostile_one and draw(st.integers(0, 3)) > 0:
            continue                                  # an optional field left out
        if required and mode == MANY_HOSTILE and draw(st.integers(0, 40)) == 0:
            continue                                  # a required field missing
        hostile = f.name == hostile_one or (mode == MANY_HOSTILE and draw(st.integers(0, 2)) == 0)
        if hostile:
            out[f.name] = draw(st.sampled_from(HOSTILE))
        elif f.name == "actions":
            out[f.name] = draw(st.lists(action_dicts(mode), min_size=1, max_size=3))
        else:
            out[f.name] = draw(st.sampled_from(table.get(f.name) or ACTION_VALUES.get(f.name) or ["1"]))
    if mode == MANY_HOSTILE and draw(st.integers(0, 20)) == 0:
        out["extra"] = draw(st.sampled_from(HOSTILE))
    return out


@st.composite
def transactions(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(sorted(MESSAGE_TYPES)))
    mode = draw(st.sampled_from((CLEAN, CLEAN, ONE_HOSTILE, ONE_HOSTILE, MANY_HOSTILE)))
    natural = NATURAL_SENDERS.get(kind, ALICE)
    sender = draw(st.sampled_from((natural, natural, natural, *SENDERS)))
    return sender, fields_of(draw, kind, MESSAGE_TYPES[kind], MESSAGE_VALUES, mode)


def typed_around_intake(msg: dict[str, Any]) -> Any:
    """The raw values in the dataclass of their type, without the decoder (None when that cannot
    even be built: a field missing or unknown)."""
    cls = MESSAGE_TYPES[msg["type"]]
    values = {k: v for k, v in msg.items() if k != "type"}
    if cls is SubmitProposal and isinstance(values.get("actions"), list):
        actions = []
        for action in values["actions"]:
            action_cls = ACTION_TYPES.get(action.get("type")) if isinstance(action, dict) else None
            try:
                actions.append(action if action_cls is None else
                               action_cls(**{k: v for k, v in action.items() if k != "type"}))
            except (TypeError, ProtocolError):
                actions.append(action)
        values["actions"] = tuple(actions)
    try:
        return cls(**values)
    except TypeError:
        return None
    except ProtocolError as error:  # building it checks the bounds (messages._Checked)
        assert isinstance(error.code, str) and error.code and error.message
        return None


def check_applied(txs: list[tuple[str, Any]]) -> None:
    """Apply typed messages in one block on a copy of the base state: each answer is a result, a
    refusal changes nothing, and the block's incremental hash equals the full recompute."""
    chain = copy.deepcopy(BASE)
    events: list[dict] = []
    begin_block(chain.state, chain.state.time_ms + 1_000, events)
    for sender, typed in txs:
        before, events_before = compute_state_hash_full(chain.state), list(events)
        result = apply_tx(chain.state, sender, typed, events)
        assert isinstance(result, dict) and isinstance(result.get("ok"), bool), result
        if not result["ok"]:
            assert set(result) == {"ok", "code", "message"}, result
            assert isinstance(result["code"], str) and result["code"], result
            assert compute_state_hash_full(chain.state) == before, (typed, result)
            assert events == events_before
    assert end_block(chain.state, events) == compute_state_hash_full(chain.state)


@FUZZ
@given(st.lists(transactions(), min_size=1, max_size=4))
def test_every_decoded_message_is_applied_or_refused_with_a_code(txs):
    typed = []
    for sender, msg in txs:
        try:
            typed.append((sender, decode_message(msg)))
        except ProtocolError as error:
            assert isinstance(error.code, str) and error.code and error.message
    check_applied(typed)


@FUZZ
@given(st.lists(transactions(), min_size=1, max_size=4))
def test_a_message_that_skipped_intake_is_still_applied_or_refused_with_a_code(txs):
    typed = [(sender, message) for sender, message in ((s, typed_around_intake(m)) for s, m in txs)
             if message is not None]
    check_applied(typed)


def test_the_base_state_has_what_the_fuzzer_needs():
    state = BASE.state
    statuses = sorted(state.proposals[pid].status for pid in PROPOSAL_IDS if pid in state.proposals)
    assert "queued" in statuses and len(statuses) == 3
    assert any(sub.orders for sub in state.subaccounts.values())
    assert any(sub.conditional_orders for sub in state.subaccounts.values())
    assert compute_state_hash_full(state) == state.state_hash


def test_a_short_atheris_session_finds_no_exception(tmp_path):
    """The coverage-guided harness (``tests/atheris_messages.py``) for 2,000 inputs, when atheris is
    installed (optional: ``pip install atheris``); a failing input ends the session with an error."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("atheris", reason="atheris is optional (pip install atheris)")
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent / "src"), str(tests)])}
    arguments = ["-runs=2000", "-max_len=512", "-len_control=0", "-seed=13", f"-artifact_prefix={tmp_path}/"]
    run = subprocess.run([sys.executable, str(tests / "atheris_messages.py"), *arguments], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4_000:]
    assert "Done 2000 runs" in run.stderr

