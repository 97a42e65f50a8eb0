"""Misuse telemetry (issue 20, ``bastion.telemetry``): the figures of a snapshot (the golden scenario
``telemetry_snapshot_cited`` cites the snapshot of its own first four blocks), the patterns that need
crafted events (liquidation clusters, oracle events, isolation suggestions ignored before a
liquidation), proposals citing snapshots as evidence (id, state, snapshot), and the node's API and
pages: ``/v1/telemetry``, the telemetry page and the governance page showing a cited snapshot and the
voter exposure beside the proposal."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from builders import BTC, ETH, PEPE, account, genesis, subaccount
from eth_account import Account
from fastapi.testclient import TestClient

from bastion.app import ApiConfig, create_app
from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.governance import compute_proposal_id
from bastion.core.messages import decode_message
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.transition import apply_block
from bastion.node.node import Node
from bastion.scenario import _block_time
from bastion.signing import sign_envelope
from bastion.telemetry import Suggestion, SuggestionLog, TelemetryStore, compute_telemetry, snapshot_hash
from bastion.web.mount import mount_web

SCENARIO = Path(__file__).parent / "scenarios" / "telemetry_snapshot_cited.json"
B0 = "0x" + "0" * 38 + "b0"


def replay(data: dict, count: int | None = None) -> tuple[object, list[tuple[int, int, list[dict]]]]:
    """The scenario's state after its first ``count`` blocks and their raw events (as the block log keeps them);
    the transactions refused when decoded are left out, as the runner does."""
    state = build_state(data["genesis"])
    blocks = []
    for index, block in enumerate(data["blocks"][:count]):
        txs = []
        for tx in block["txs"]:
            try:
                txs.append((tx["sender"], decode_message(tx["msg"])))
            except ProtocolError:
                continue
        result = apply_block(state, _block_time(block, index, state), txs)
        blocks.append((result.height, result.time_ms, result.events))
    return state, blocks


def test_the_snapshot_of_the_scenario_has_the_hand_worked_figures_and_is_the_cited_one():
    data = json.loads(SCENARIO.read_text())
    state, blocks = replay(data, 4)

    document = compute_telemetry(state, blocks, 1, 4)

    assert document["markets"][BTC] == {
        "orders": 7, "fills": 2, "fill_volume_usdc": 7_475_000_000, "cancels": 1, "self_trade_prevention_hits": 1,
        "liquidations": 0, "oracle_source_rejections": 0, "oracle_stale_events": 0, "order_to_trade_ppm": 3_500_000,
        "cancel_ratio_ppm": 142_857, "liquidation_clusters": [],
        "two_sided_owners": [{"owner": B0, "subaccounts": [0, 1], "volume_usdc": 7_475_000_000}],
        "isolation_suggestions": 0, "isolation_ignored": 0}
    assert document["governance"] == {"delegates": 3, "voting_power": 600_000_000, "top1_share_ppm": 500_000,
                                      "top5_share_ppm": 1_000_000, "nakamoto_coefficient": 2, "proposals": []}
    assert document["epoch"]["start_height"] == 1 and document["epoch"]["end_height"] == 4
    cited = data["blocks"][4]["txs"][0]["msg"]["evidence"]
    assert cited == [snapshot_hash(document)]
    final, _ = replay(data)
    proposal = next(iter(final.proposals.values()))
    assert proposal.evidence == tuple(cited)
    msg = decode_message(data["blocks"][4]["txs"][0]["msg"])
    assert proposal.proposal_id == compute_proposal_id(final.chain_id, proposal.proposer, 5, msg.title,
                                                       msg.description, msg.actions, tuple(cited))
    assert proposal.proposal_id != compute_proposal_id(final.chain_id, proposal.proposer, 5, msg.title,
                                                       msg.description, msg.actions)
    restored = state_from_document(json.loads(json.dumps(state_to_document(final))))
    assert restored.proposals[proposal.proposal_id].evidence == tuple(cited)
    assert restored.state_hash == final.state_hash


def _liquidation(owner: str, number: int, market: str) -> dict:
    return {"type": "liquidation", "owner": owner, "number": number, "market": market}


def test_clusters_oracle_events_and_ignored_isolation_suggestions():
    state = build_state(genesis())
    alice, bob = "0x" + "0" * 38 + "a0", B0
    blocks = [
        (1, 1_000, [{"type": "oracle_source_rejected", "market": BTC}, {"type": "oracle_stale", "market": PEPE}]),
        (2, 2_000, [_liquidation(alice, 0, BTC), _liquidation(bob, 0, BTC), _liquidation(bob, 1, BTC),
                    _liquidation(alice, 1, PEPE)]),
        (3, 3_000, [_liquidation(alice, 0, BTC), _liquidation(bob, 0, BTC)]),
        (9, 9_000, [_liquidation(bob, 0, BTC)]),   # outside the epoch
    ]
    suggestions = [Suggestion(alice, 0, BTC, 1),     # liquidated at 2: ignored
                   Suggestion(alice, 1, PEPE, 2),    # liquidated in the same block, not later: not counted
                   Suggestion(bob, 0, BTC, 3),       # liquidated only at 9, after the epoch
                   Suggestion(bob, 0, BTC, 7)]       # outside the epoch

    document = compute_telemetry(state, blocks, 1, 4, suggestions)

    btc, pepe = document["markets"][BTC], document["markets"][PEPE]
    assert (btc["liquidations"], btc["liquidation_clusters"]) == (5, [{"height": 2, "liquidations": 3}])
    assert (btc["oracle_source_rejections"], pepe["oracle_stale_events"]) == (1, 1)
    assert (btc["isolation_suggestions"], btc["isolation_ignored"]) == (2, 1)
    assert (pepe["isolation_suggestions"], pepe["isolation_ignored"]) == (1, 0)
    assert btc["order_to_trade_ppm"] is None and btc["cancel_ratio_ppm"] is None
    assert document["epoch"] == {"start_height": 1, "end_height": 4, "first_block_ms": 1_000, "last_block_ms": 3_000}


def test_a_snapshot_hash_names_its_canonical_bytes_and_the_store_keeps_the_latest():
    store, document = TelemetryStore(), {"format": "bastion-telemetry/1", "b": 1, "a": [2]}
    digest = store.put(document)
    assert digest == snapshot_hash({"a": [2], "format": "bastion-telemetry/1", "b": 1})
    assert store.get(digest) is document and store.get("0" * 64) is None
    log = SuggestionLog()
    log.record(Suggestion(B0, 0, BTC, 5))
    log.record(Suggestion(B0, 0, BTC, 5))    # the same preview asked twice in a block: once
    assert log.between(1, 5) == [Suggestion(B0, 0, BTC, 5)] and log.between(6, 9) == []


# --------------------------------------------------------------------------------------- the node
KEY = "0x" + "a1" * 32
OWNER = Account.from_key(KEY).address.lower()


@pytest.fixture
def served(tmp_path):
    doc = genesis(accounts=[account(OWNER, subaccount(0, "100000")),
                            account(B0, subaccount(0, "100000", positions=[{"market": BTC, "size": "-2"}]))])
    doc["accounts"][0]["bgov"] = "1000000"
    doc["accounts"][0]["delegate"] = OWNER
    doc["accounts"][0]["subaccounts"][0]["positions"] = [{"market": BTC, "size": "2"}]
    doc["accounts"][0]["subaccounts"][0]["usdc"] = "0"
    node = Node(tmp_path / "n", doc)
    app = create_app(node, ApiConfig())
    mount_web(app)
    client = TestClient(app)
    client.node, client.app = node, app
    yield client
    node.close()


def test_the_api_serves_and_keeps_snapshots(served):
    for _ in range(3):
        served.node.produce_block()
    # a preview that suggests isolation (ETH's volatile tier) is recorded for the telemetry
    preview = served.post("/v1/preview/order", json={"owner": OWNER, "subaccount": 0, "market": ETH,
                                                     "side": "buy", "size": "1", "price": "3000"}).json()
    assert preview["isolation"]["suggested"] is True

    answer = served.get("/v1/telemetry").json()

    assert answer["snapshot_hash"] == snapshot_hash(answer["snapshot"])
    assert answer["snapshot"]["epoch"]["start_height"] == 1 and answer["snapshot"]["epoch"]["end_height"] == 3
    assert answer["snapshot"]["markets"][ETH]["isolation_suggestions"] == 1
    assert served.get(f"/v1/telemetry/{answer['snapshot_hash']}").json() == answer
    missing = served.get("/v1/telemetry/" + "0" * 64)
    assert missing.status_code == 404 and missing.json()["code"] == "telemetry_not_found"
    for query, status in (("start_height=3&end_height=2", 400), ("end_height=4", 400),   # past the head (3)
                          ("start_height=1&end_height=3", 200)):
        response = served.get(f"/v1/telemetry?{query}")
        assert response.status_code == status, query
        assert status == 200 or response.json()["code"] == "invalid_epoch"
    assert "telemetry-hash" in served.get("/telemetry").text


def test_the_governance_page_shows_the_cited_snapshot_and_the_exposure_beside_the_proposal(served):
    served.node.produce_block()
    digest = served.get("/v1/telemetry").json()["snapshot_hash"]
    msg = {"type": "submit_proposal", "title": "Cut BTC margin", "description": "", "deposit": "100",
           "actions": [{"type": "set_liquidity_tier", "tier": 0, "initial_margin": "0.01"}],
           "evidence": [digest, "ab" * 32]}
    envelope = sign_envelope(KEY, "bastion-test", msg, time.time_ns() // 1_000)   # a nonce: microseconds now
    assert served.post("/v1/tx", json=envelope).status_code == 202
    served.node.produce_block()
    served.node.produce_block()
    proposal = served.get("/v1/governance/proposals/1").json()

    page = served.get("/governance").text
    exposure = served.get("/v1/governance/proposals/1/exposure").json()

    assert proposal["evidence"] == [digest, "ab" * 32]
    assert f'data-hash="{digest}"' in page and "this node does not hold it" in page
    assert page.count('telemetry-markets"') == 1     # the held snapshot's table, not the unknown one
    assert [d["delegate"] for d in exposure["delegates"]] == [OWNER]
    assert exposure["delegates"][0]["markets"][0]["own_size"] == "2" and exposure["markets"][BTC] == "gains"
    assert f'data-delegate="{OWNER}"' in page and "directly exposed" in page
    assert served.get("/v1/governance/proposals/9/exposure").status_code == 404


def test_a_snapshot_reads_the_blocks_without_the_node_lock_and_one_at_a_time(served, monkeypatch):
    """Reading an epoch's blocks (up to 10,000) must not stall block production: while the blocks are
    read, the node produces a block; a second request meanwhile is told to come back (429
    ``telemetry_busy``) instead of starting another read."""
    import threading

    from bastion import telemetry
    for _ in range(3):
        served.node.produce_block()
    reading, release = threading.Event(), threading.Event()
    real = telemetry.BlockLog.block

    def slow_block(self, height):
        reading.set()
        release.wait(10)
        return real(self, height)

    monkeypatch.setattr(telemetry.BlockLog, "block", slow_block)
    answers: list = []
    worker = threading.Thread(target=lambda: answers.append(served.get("/v1/telemetry")))
    worker.start()
    try:
        assert reading.wait(10)
        served.node.produce_block()                   # takes the node's lock: free while the blocks are read
        assert served.node.state.height == 4
        busy = served.get("/v1/telemetry")
        assert busy.status_code == 429 and busy.json()["code"] == "telemetry_busy"
    finally:
        release.set()
        worker.join(10)
    assert answers[0].status_code == 200 and answers[0].json()["snapshot"]["epoch"]["end_height"] == 3
