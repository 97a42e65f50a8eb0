"""The state machine is deterministic: the same genesis and messages give the same state hashes.

A seeded ``random.Random`` in the test (never in the core) builds a few hundred messages over
forty blocks (orders of every kind around a random-walking oracle, cancels, collateral moves,
leverage, oracle updates, time gaps across funding hours). They are applied

* twice in this process, and in fresh interpreters with different ``PYTHONHASHSEED`` values
  (string hashing, hence set iteration order, changes between those runs): identical per-block
  state hashes, results and events;
* with the incremental state hash compared to ``compute_state_hash_full`` after every block;
* through the scenario runner (``bastion.scenario.run_scenario``): the same hashes again.

A second, governance workload (``random_governance_document``: proposals, votes of every option,
queue, execute, cancel, BGOV transfers and delegations across deadlines, timelocks and execution
windows) is run live with every block checked, and in fresh interpreters with different
``PYTHONHASHSEED`` values: identical hashes, results and events.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bastion.core import governance
from bastion.core.genesis import build_state
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import decode_message
from bastion.core.timefmt import format_iso_ms
from bastion.core.transition import apply_block, check_invariants
from bastion.core.units import parse_decimal
from bastion.scenario import run_scenario
from builders import (
    BRIDGE, GENESIS_TIME_MS, MARKETS, ORACLE, OWNERS, PEPE, TICKERS, decimal_text, genesis,
)

SRC = Path(__file__).resolve().parents[1] / "src"
SEED = 20260101
BLOCKS = 40
MESSAGES_PER_BLOCK = 10

# The child process runs exactly what ``run_document`` runs, printing JSON.
CHILD = """
import json, sys
from bastion.core.genesis import build_state
from bastion.core.messages import decode_message
from bastion.core.transition import apply_block
doc = json.load(sys.stdin)
state = build_state(doc["genesis"])
out = []
for block in doc["blocks"]:
    result = apply_block(state, block["time_ms"], [(tx["sender"], decode_message(tx["msg"])) for tx in block["txs"]])
    out.append({"state_hash": result.state_hash, "results": result.results, "events": result.events})
json.dump(out, sys.stdout)
"""


# ------------------------------------------------------------------------------------- workload
def random_document(seed: int = SEED) -> dict:
    """Genesis plus ``BLOCKS`` blocks of seeded random messages (JSON form, absolute block times)."""
    rng = random.Random(seed)
    grids = {t: (m["size_decimals"], m["price_decimals"]) for t, m in MARKETS.items()}
    prices = {t: parse_decimal(m["oracle_price"], grids[t][1], field="oracle_price") for t, m in MARKETS.items()}
    lots_per_10k_usdc = {t: max(1, 10_000 * 10**6 // max(1, _notional(1, prices[t], *grids[t]))) for t in TICKERS}
    time_ms = GENESIS_TIME_MS
    client_id = 0
    blocks = []
    for block_index in range(BLOCKS):
        time_ms += rng.choice([0, 1_000, 1_000, 2_000, 5_000, 30_000, 61_000])
        if block_index % 13 == 12:  # a gap to the next funding hour: markets go stale until the next update
            time_ms = (time_ms // 3_600_000 + 1) * 3_600_000 + rng.randrange(0, 2_000)
        txs = []
        for _ in range(MESSAGES_PER_BLOCK):
            kind = rng.choices(["order", "cancel", "cancel_all", "deposit", "withdraw", "transfer", "leverage",
                                "oracle"], weights=[60, 8, 2, 3, 3, 3, 3, 18])[0]
            owner = rng.choice(OWNERS)
            if kind == "order":
                ticker = rng.choice(TICKERS)
                number = 1 if ticker == PEPE else 0
                side = rng.choice(["buy", "sell"])
                ticks = max(1, prices[ticker] * (10_000 + rng.randint(-150, 150)) // 10_000)
                lots = max(1, lots_per_10k_usdc[ticker] * rng.randint(1, 40) // 10)
                order_type = rng.choice(["limit"] * 5 + ["market"])
                tif = rng.choice(["ioc", "fok"]) if order_type == "market" else \
                    rng.choice(["gtc", "gtc", "gtt", "ioc", "fok", "post_only"])
                client_id += 1
                msg = {"type": "place_order", "subaccount": number, "market": ticker, "side": side,
                       "size": decimal_text(lots, grids[ticker][0]), "price": decimal_text(ticks, grids[ticker][1]),
                       "order_type": order_type, "time_in_force": tif, "client_id": client_id,
                       "reduce_only": rng.random() < 0.1,
                       "self_trade": rng.choice(["cancel_resting", "cancel_taking", "decrement"])}
                if tif == "gtt":
                    msg["good_til"] = format_iso_ms(time_ms + rng.randint(1, 120) * 1_000)
            elif kind == "cancel":
                msg = {"type": "cancel_order", "subaccount": rng.choice([0, 1])}
                if rng.random() < 0.5:
                    msg["client_id"] = rng.randint(max(0, client_id - 30), client_id)
                else:
                    msg["order_id"] = rng.randint(1, max(1, client_id))
            elif kind == "cancel_all":
                msg = {"type": "cancel_all", "subaccount": rng.choice([0, 1])}
            elif kind == "deposit":
                msg = {"type": "deposit", "owner": owner, "subaccount": rng.choice([0, 2]),
                       "amount": decimal_text(rng.randint(1, 10**10), 6)}
                owner = BRIDGE
            elif kind == "withdraw":
                msg = {"type": "withdraw", "subaccount": rng.choice([0, 1, 2]),
                       "amount": decimal_text(rng.randint(1, 5 * 10**10), 6)}
            elif kind == "transfer":
                msg = {"type": "transfer", "subaccount": rng.choice([0, 1]), "to_owner": rng.choice(OWNERS),
                       "to_subaccount": rng.choice([0, 1, 2]), "amount": decimal_text(rng.randint(1, 10**10), 6)}
            elif kind == "leverage":
                msg = {"type": "set_leverage", "subaccount": 0, "market": rng.choice(TICKERS),
                       "initial_margin": rng.choice(["0.02", "0.05", "0.1", "0.25", "1"])}
            else:
                moved = rng.sample(TICKERS, rng.randint(1, 3))
                for ticker in moved:
                    prices[ticker] = max(1, prices[ticker] * (10_000 + rng.choice([-1, 1]) * rng.choice(
                        [10, 50, 200, 1_500])) // 10_000)
                msg = {"type": "oracle_update", "prices": {t: decimal_text(prices[t], grids[t][1]) for t in moved}}
                owner = ORACLE
            txs.append({"sender": owner, "msg": msg})
        blocks.append({"time_ms": time_ms, "txs": txs})
    return {"genesis": genesis(), "blocks": blocks}


def _notional(lots: int, ticks: int, size_decimals: int, price_decimals: int) -> int:
    exponent = 6 - size_decimals - price_decimals
    return lots * ticks * 10**exponent if exponent >= 0 else lots * ticks // 10 ** (-exponent)


def run_document(doc: dict, *, check_each_block: bool = False) -> list[dict]:
    state = build_state(doc["genesis"])
    out = []
    for block in doc["blocks"]:
        txs = [(tx["sender"], decode_message(tx["msg"])) for tx in block["txs"]]
        result = apply_block(state, block["time_ms"], txs)
        if check_each_block:
            check_invariants(state)
            assert result.state_hash == state.state_hash == compute_state_hash_full(state), block["time_ms"]
        out.append({"state_hash": result.state_hash, "results": result.results, "events": result.events})
    return out


def run_in_fresh_interpreter(doc: dict, *, hash_seed: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONHASHSEED": hash_seed}
    completed = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(doc), capture_output=True, text=True,
                               env=env, check=True, timeout=120)
    return json.loads(completed.stdout)


@pytest.fixture(scope="module")
def document() -> dict:
    return random_document()


@pytest.fixture(scope="module")
def live(document) -> list[dict]:
    return run_document(document, check_each_block=True)


# ------------------------------------------------------------------------------------- tests
def test_workload_is_not_trivial(document, live):
    messages = sum(len(block["txs"]) for block in document["blocks"])
    events = [e["type"] for block in live for e in block["events"]]
    results = [r for block in live for r in block["results"]]

    assert messages == BLOCKS * MESSAGES_PER_BLOCK >= 300
    assert events.count("fill") >= 30
    assert events.count("funding_tick") >= 3 * len(TICKERS)
    assert "oracle_stale" in events and "order_placed" in events
    assert sum(r["ok"] for r in results) >= 150 and sum(not r["ok"] for r in results) >= 30


def test_same_messages_twice_in_process_give_same_hashes_results_and_events(document, live):
    again = run_document(document)

    assert again == live
    assert len({block["state_hash"] for block in live}) == len(live)  # every block changed the state


@pytest.mark.parametrize("hash_seed", [
    "0",          # hash randomisation off
    "12345",      # a different fixed string-hash seed
    "random",     # whatever the interpreter picks
])
def test_fresh_interpreter_gives_same_hashes_results_and_events(document, live, hash_seed):
    child = run_in_fresh_interpreter(document, hash_seed=hash_seed)

    assert child == json.loads(json.dumps(live))


def test_incremental_hash_equals_full_recomputation_after_every_block(document):
    run_document(document, check_each_block=True)  # asserts per block


def test_scenario_runner_replays_to_the_same_hashes(document, live):
    scenario = {"genesis": document["genesis"],
                "blocks": [{"time": format_iso_ms(block["time_ms"]), "txs": block["txs"]}
                           for block in document["blocks"]]}

    result = run_scenario(scenario)

    assert [block["state_hash"] for block in result["blocks"]] == [block["state_hash"] for block in live]
    assert result["final"]["state_hash"] == live[-1]["state_hash"]


def test_changing_one_message_changes_the_hash(document, live):
    changed = json.loads(json.dumps(document))
    first_deposit = next(tx["msg"] for block in changed["blocks"] for tx in block["txs"]
                         if tx["msg"]["type"] == "deposit")
    first_deposit["amount"] += "1"  # ten times as much, plus one micro-USDC

    assert run_document(changed)[-1]["state_hash"] != live[-1]["state_hash"]


# ------------------------------------------------------------------------------------- governance
GOVERNANCE_BLOCKS = 80
GOVERNANCE_ACTIONS = (  # risk reducing, neutral or invalid at submission: nothing here needs the stress gate
    "raise_insurance_share", "raise_insurance_share_more", "raise_btc_taker_fee", "lower_eth_open_interest_cap",
    "btc_reduce_only", "raise_large_cap_margin", "delist_eth", "same_insurance_share", "unknown_market",
)


def random_governance_document(seed: int = SEED) -> dict:
    """The governance machine's genesis (``test_governance_properties``) plus ``GOVERNANCE_BLOCKS``
    blocks of seeded governance messages: proposals of ``GOVERNANCE_ACTIONS`` (their ids computed
    here, as a client would), votes of every option, queue, execute and cancel attempts on every
    known proposal, BGOV transfers and delegations, fresh oracle prices, and block times that
    cross voting deadlines, timelocks and execution windows."""
    from test_governance_properties import ACTIONS, HOLDERS, machine_genesis  # the machine's chain

    rng = random.Random(seed)
    doc_genesis = machine_genesis()
    time_ms = GENESIS_TIME_MS
    proposal_ids: list[str] = []
    blocks = []
    for height in range(1, GOVERNANCE_BLOCKS + 1):
        time_ms += rng.choice([1_000, 1_000, 2_000, 30_000, 600_000, 3_600_000, 3 * 3_600_000, 8 * 3_600_000])
        txs = [{"sender": ORACLE, "msg": {"type": "oracle_update", "prices": {"BTC-USD": "50000", "ETH-USD": "3000"}}}]
        for proposal_id in proposal_ids:
            for voter in HOLDERS:
                if rng.random() < 0.2:
                    option = rng.choice(["yes", "yes", "yes", "no", "abstain", "veto"])
                    txs.append({"sender": voter, "msg": {"type": "vote", "proposal_id": proposal_id, "option": option}})
            for kind in ("queue", "execute", "cancel_proposal"):
                if rng.random() < (0.05 if kind == "cancel_proposal" else 0.3):
                    txs.append({"sender": rng.choice(HOLDERS), "msg": {"type": kind, "proposal_id": proposal_id}})
        if rng.random() < 0.3:
            proposer = rng.choice([HOLDERS[0], HOLDERS[2]])
            msg = {"type": "submit_proposal", "title": f"proposal {height}", "description": "", "deposit": "5",
                   "actions": [ACTIONS[rng.choice(GOVERNANCE_ACTIONS)]]}
            proposal_ids.append(governance.compute_proposal_id(
                doc_genesis["chain_id"], proposer, height, msg["title"], "", decode_message(msg).actions))
            txs.append({"sender": proposer, "msg": msg})
        if rng.random() < 0.3:
            sender, to = rng.sample(HOLDERS, 2)
            txs.append({"sender": sender, "msg": {"type": "transfer_bgov", "to": to,
                                                  "amount": decimal_text(rng.randint(1, 60) * 10**6, 6)}})
        if rng.random() < 0.2:
            txs.append({"sender": rng.choice(HOLDERS), "msg": {"type": "delegate", "delegatee": rng.choice(HOLDERS)}})
        blocks.append({"time_ms": time_ms, "txs": txs})
    return {"genesis": doc_genesis, "blocks": blocks}


@pytest.fixture(scope="module")
def governance_document() -> dict:
    return random_governance_document()


@pytest.fixture(scope="module")
def governance_live(governance_document) -> list[dict]:
    return run_document(governance_document, check_each_block=True)


def test_governance_workload_is_not_trivial(governance_live):
    statuses = Counter(e["to"] for block in governance_live for e in block["events"] if e["type"] == "proposal_status")
    results = Counter(r.get("code", "ok") for block in governance_live for r in block["results"])

    assert {"executed", "queued", "succeeded", "defeated", "vetoed", "expired"} <= set(statuses), statuses
    assert results["ok"] >= 100 and results["timelock_not_elapsed"] >= 1 and results["market_delisted"] >= 1, results
    assert any(e["type"] == "param_changed" for block in governance_live for e in block["events"])


@pytest.mark.parametrize("hash_seed", ["0", "12345", "random"])
def test_governance_in_a_fresh_interpreter_gives_same_hashes_results_and_events(governance_document,
                                                                               governance_live, hash_seed):
    child = run_in_fresh_interpreter(governance_document, hash_seed=hash_seed)

    assert child == json.loads(json.dumps(governance_live))
