"""Snapshots (``bastion.core.snapshot``): a state written as canonical JSON and read back behaves
exactly as the original, from any point of a run."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import test_crash_replay as crash

from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import decode_message
from bastion.core.snapshot import canonical_bytes, state_from_document, state_to_document
from bastion.core.timefmt import parse_iso_ms
from bastion.core.transition import apply_block
from bastion.scenario import _block_time

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.json"))


def round_trip(state):
    document = json.loads(canonical_bytes(state_to_document(state)))
    return state_from_document(document)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_golden_scenario_state_round_trips_after_every_block(path: Path) -> None:
    data = json.loads(path.read_text())
    state = build_state(data["genesis"])
    for index, block in enumerate(data["blocks"]):
        txs = []
        for tx in block["txs"]:
            try:
                txs.append((tx["sender"].lower(), decode_message(tx["msg"])))
            except ProtocolError:
                continue  # messages the decoder refuses never reach a block
        apply_block(state, _block_time(block, index, state), txs)
        restored = round_trip(state)
        assert restored.state_hash == state.state_hash == compute_state_hash_full(restored)
        assert canonical_bytes(state_to_document(restored)) == canonical_bytes(state_to_document(state))


# maker rewards sampled every 2 blocks from the books' per-maker totals, which a restored book rebuilds
# (min_rest_blocks 0: the crash run's makers requote every block, as the demo's do)
MAKER_REWARDS = {"epoch_blocks": 8, "sample_interval_blocks": 2, "band": "0.05", "min_rest_blocks": 0,
                 "pool_share": "0.5", "max_share_per_maker": "0.5", "volatility_slope": "10",
                 "max_volatility_weight": "3"}


@pytest.mark.parametrize("rewards", [False, True], ids=["plain", "maker_rewards"])
def test_a_node_restored_mid_run_produces_the_same_blocks(rewards: bool) -> None:
    """The FTX crash run (liquidations, deleveraging, funding, makers requoting; and with maker
    rewards on): snapshot after block 120, restore, and both copies apply the next 120 blocks to
    identical results."""
    candles = [c for c in crash.load_candles() if "2022-11-08T12" <= c[0][:13]][:60]
    doc = crash.crash_genesis(candles[0][1], candles[0][0])
    if rewards:
        doc["maker_rewards"] = MAKER_REWARDS
    live = build_state(doc)
    quotes = crash.MakerQuotes()
    time_ms = parse_iso_ms(candles[0][0], field="time")
    restored = None
    outputs: list[tuple] = []
    compared_events: list[dict] = []
    for n, (_, prices) in enumerate(candles):
        paths = {t: crash.candle_path(*prices[t]) for t in crash.MARKETS}
        for step in range(4):
            time_ms += crash.BLOCK_S * 1_000
            txs = [(crash.ORACLE, {"type": "oracle_update", "prices": {t: paths[t][step] for t in crash.MARKETS}})]
            txs += quotes.txs(live)
            typed = [(sender, decode_message(msg)) for sender, msg in txs]
            result = apply_block(live, time_ms, typed)
            if restored is not None:
                again = apply_block(restored, time_ms, copy.deepcopy(typed))
                outputs.append((result.state_hash == again.state_hash, result.results == again.results,
                                result.events == again.events))
                compared_events += result.events
        if n == 29:
            restored = round_trip(live)
    assert len(outputs) == 120
    assert all(all(checks) for checks in outputs)
    kinds = {e["type"] for e in compared_events}
    assert {"liquidation", "deleveraging", "funding_tick", "fill"} <= kinds, kinds
    if rewards:
        assert {"maker_score", "maker_reward_paid"} <= kinds, kinds


def test_a_tampered_snapshot_is_refused() -> None:
    state = build_state(json.loads((SCENARIOS[0]).read_text())["genesis"])
    document = state_to_document(state)
    document["subaccounts"][0]["balance"] += 1
    with pytest.raises(ProtocolError) as caught:
        state_from_document(document)
    assert caught.value.code == "invalid_snapshot" and "does not reproduce its state hash" in caught.value.message
    with pytest.raises(ProtocolError):
        state_from_document({"format": "pickle"})


def test_the_document_is_the_leaf_kinds_fields_plus_the_derived_data_and_each_field_is_read() -> None:
    """The fields come from ``bastion.core.leaves.LEAF_KINDS`` (each kind's ``snapshot`` sections);
    the snapshot module adds only the format, the state hash and the derived data in no leaf."""
    from bastion.core.leaves import SNAPSHOT_SECTIONS

    path = next(p for p in SCENARIOS if p.stem == "governance_set_guardian_renewal")
    data = json.loads(path.read_text())
    state = build_state(data["genesis"])
    for index, block in enumerate(data["blocks"]):
        apply_block(state, _block_time(block, index, state), [(tx["sender"].lower(), decode_message(tx["msg"]))
                                                              for tx in block["txs"]])
    document = json.loads(canonical_bytes(state_to_document(state)))
    declared = [section.name for section in SNAPSHOT_SECTIONS]
    assert set(document) == set(declared) | {"format", "state_hash", "params_epoch", "gtt_queue", "liquidation_watch"}
    assert len(declared) == 62 and state.guardian.address is not None and state.pauses and state.attestations
    for name in declared:  # every declared field is read back: without it the document is malformed
        partial = {key: value for key, value in document.items() if key != name}
        with pytest.raises(ProtocolError) as caught:
            state_from_document(partial)
        assert caught.value.code == "invalid_snapshot" and repr(name) in caught.value.message, name
