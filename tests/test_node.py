"""The node in-process: replay equals live on a long run, recovery from snapshots, ``check_tx``
and the HTTP intake in unsigned mode (the kill -9 tests are in ``test_node_crash.py``)."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import test_crash_replay as crash
from builders import BOB, BRIDGE, ORACLE, STRANGER, genesis as make_genesis, place_order
from fastapi.testclient import TestClient

from bastion.app import ApiConfig, create_app
from bastion.core.errors import ProtocolError
from bastion.core.timefmt import parse_iso_ms
from bastion.node.node import Node
from bastion.node.replay import verify_log


class Envelopes:
    """Wraps messages into envelopes with each sender's next nonce."""

    def __init__(self) -> None:
        self.nonces: dict[str, int] = {}

    def __call__(self, sender: str, msg: dict) -> dict:
        self.nonces[sender] = self.nonces.get(sender, 0) + 1
        return {"sender": sender, "nonce": self.nonces[sender], "msg": msg}


CANDLES = [c for c in crash.load_candles() if "2022-11-08T12" <= c[0][:13]]
START_MS = parse_iso_ms(CANDLES[0][0], field="time")


def block_clock():
    """Block times 225 s apart from the first candle (one clock may serve several node lives)."""
    return iter(range(START_MS + crash.BLOCK_S * 1_000, 10**15, crash.BLOCK_S * 1_000)).__next__


def crash_node(data: Path, *, snapshot_every: int, clock=None) -> tuple[Node, list]:
    genesis = crash.crash_genesis(CANDLES[0][1], CANDLES[0][0])
    return Node(data, genesis, max_block_txs=5_000, snapshot_every=snapshot_every,
                clock_ms=clock or block_clock()), CANDLES


def drive(node: Node, candles: list, n_candles: int, seed: int, wrap: Envelopes | None = None,
          quotes: crash.MakerQuotes | None = None) -> None:
    """The FTX crash as oracle updates and maker quotes, plus random trader orders, through ``submit``."""
    rng = random.Random(seed)
    wrap, quotes = wrap or Envelopes(), quotes or crash.MakerQuotes()
    traders = [f"0x{0x10000 + i:040x}" for i in range(crash.TRADERS)]
    for _, prices in candles[:n_candles]:
        paths = {t: crash.candle_path(*prices[t]) for t in crash.MARKETS}
        for step in range(4):
            node.submit(wrap(ORACLE, {"type": "oracle_update", "prices": {t: paths[t][step] for t in crash.MARKETS}}))
            for sender, msg in quotes.txs(node.state):
                node.submit(wrap(sender, msg))
            for _ in range(20):
                ticker = rng.choice(sorted(crash.MARKETS))
                market = node.state.markets[ticker]
                ticks = market.oracle_price * rng.randint(9_900, 10_100) // 10_000
                envelope = wrap(rng.choice(traders), place_order(
                    market=ticker, side=rng.choice(("buy", "sell")), client_id=rng.randrange(2**32),
                    size=f"{rng.randint(1, 50) / 10 ** min(market.size_decimals, 1):.{min(market.size_decimals, 1)}f}",
                    price=str(ticks / 10**market.price_decimals), time_in_force=rng.choice(("gtc", "ioc"))))
                try:
                    node.submit(envelope)
                except ProtocolError as error:  # a trader the crash wiped out has no collateral left
                    assert error.code == "no_collateral", error
                    wrap.nonces[envelope["sender"]] -= 1
            node.produce_block()


def test_replay_equals_live_on_a_long_run_and_restarts_agree(tmp_path: Path) -> None:
    node, candles = crash_node(tmp_path / "n", snapshot_every=37)
    drive(node, candles, n_candles=75, seed=3)  # 300 blocks of 84 messages (25,200)
    live = (node.state.height, node.state.state_hash)
    kinds = {e["type"] for block in node.log.iter_blocks(1) for e in block.events}
    node.close()
    assert {"liquidation", "deleveraging", "fill", "funding_tick"} <= kinds
    report = verify_log(tmp_path / "n")
    assert (report["height"], report["state_hash"]) == live
    restarted = Node(tmp_path / "n")
    assert (restarted.state.height, restarted.state.state_hash) == live
    assert restarted.recovery.snapshot_height == 296 and restarted.recovery.replayed_blocks == 4
    restarted.close()


def test_a_damaged_snapshot_is_skipped_and_reported(tmp_path: Path) -> None:
    node, candles = crash_node(tmp_path / "n", snapshot_every=5)
    drive(node, candles, n_candles=3, seed=4)  # 12 blocks: snapshots at 5 and 10
    live = node.state.state_hash
    node.close()
    newest = sorted((tmp_path / "n" / "snapshots").glob("*.json"))[-1]
    newest.write_bytes(newest.read_bytes().replace(b'"balance":', b'"balance":1', 1))
    restarted = Node(tmp_path / "n")
    assert restarted.state.state_hash == live
    assert restarted.recovery.snapshot_height == 5 and restarted.recovery.replayed_blocks == 7
    assert restarted.recovery.skipped_snapshots and "000000000010.json" in restarted.recovery.skipped_snapshots[0]
    restarted.close()


@pytest.mark.parametrize(("envelope", "code"), [
    ([1, 2], "invalid_envelope"),
    ({"sender": BOB, "nonce": 1, "msg": {"type": "withdraw", "subaccount": 0, "amount": "1"}, "x": 1},
     "invalid_envelope"),
    ({"sender": 7, "nonce": 1, "msg": {}}, "invalid_envelope"),
    ({"sender": "0x12", "nonce": 1, "msg": {}}, "invalid_address"),
    ({"sender": BOB, "nonce": -1, "msg": {}}, "invalid_nonce"),
    ({"sender": BOB, "nonce": True, "msg": {}}, "invalid_nonce"),
    ({"sender": BOB, "nonce": 1, "msg": {"type": "mint"}}, "unknown_message_type"),
    ({"sender": BOB, "nonce": 1, "msg": {"type": "withdraw", "subaccount": 0}}, "missing_field"),
    ({"sender": STRANGER, "nonce": 1, "msg": {"type": "deposit", "owner": BOB, "subaccount": 0, "amount": "1"}},
     "not_bridge_operator"),
    ({"sender": BOB, "nonce": 1, "msg": {"type": "oracle_update", "prices": {"BTC-USD": "1"}}},
     "not_oracle_operator"),
])
def test_check_tx_refuses_bad_envelopes_and_queues_nothing(tmp_path: Path, envelope: object, code: str) -> None:
    node = Node(tmp_path / "n", make_genesis())
    with pytest.raises(ProtocolError) as caught:
        node.submit(envelope)
    assert caught.value.code == code
    assert len(node.mempool) == 0
    node.close()


def test_http_intake_accepts_commits_and_refuses_a_reused_nonce(tmp_path: Path) -> None:
    node = Node(tmp_path / "n", make_genesis(), clock_ms=iter(range(1_767_225_601_000, 10**15, 1_000)).__next__)
    client = TestClient(create_app(node, ApiConfig(unsigned=True)))  # the node's intake; signatures: test_api.py
    deposit = {"sender": BRIDGE, "nonce": 9, "msg": {"type": "deposit", "owner": BOB, "subaccount": 0, "amount": "2"}}
    accepted = client.post("/v1/tx", json=deposit)
    assert accepted.status_code == 202 and accepted.json()["status"] == "accepted"
    assert client.get(f"/v1/tx/{BRIDGE}/9").json() == {"status": "pending"}
    assert client.post("/v1/tx", json=deposit).json()["code"] == "duplicate_nonce"
    block = node.produce_block()
    assert client.get(f"/v1/tx/{BRIDGE.upper().replace('0X', '0x')}/9").json() == {
        "status": "committed", "height": block.height, "index": 0, "result": {"ok": True}}
    again = client.post("/v1/tx", json=deposit)
    assert again.status_code == 400 and again.json()["code"] == "duplicate_nonce"
    assert client.get(f"/v1/tx/{BRIDGE}/10").json() == {"status": "unknown"}
    bad = client.post("/v1/tx", content=b"{not json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_json"
    status = client.get("/v1/status").json()
    assert (status["height"], status["state_hash"], status["mempool"]) == (1, node.state.state_hash, 0)
    node.close()


def test_the_node_indexes_its_blocks_and_catches_up_after_a_restart(tmp_path: Path) -> None:
    """Read models follow the log (DIR/readmodels.db by default) and, after a restart, index what a
    crash left behind; the fills they hold are the log's fill events."""
    clock, wrap, quotes = block_clock(), Envelopes(), crash.MakerQuotes()
    node, candles = crash_node(tmp_path / "n", snapshot_every=0, clock=clock)
    drive(node, candles, n_candles=5, seed=5, wrap=wrap, quotes=quotes)  # 20 blocks nobody indexed
    node.close()
    node = Node(tmp_path / "n", read_models="default", clock_ms=clock)
    assert node.indexer is not None and node.indexer.wait_idle()
    drive(node, candles[5:], n_candles=5, seed=6, wrap=wrap, quotes=quotes)
    assert node.indexer.wait_idle()
    assert node.indexer.error is None and node.indexer.indexed_height == node.state.height == 40
    logged = [e for block in node.log.iter_blocks(1) for e in block.events if e["type"] == "fill"]
    node.close()
    from bastion.node.readmodels import open_read_models
    read_models = open_read_models(f"sqlite:///{tmp_path / 'n' / 'readmodels.db'}")
    fills = read_models.fills(limit=10**6)
    read_models.close()
    assert len(fills) == len(logged) > 100
    assert [(f["price"], f["size"]) for f in fills] == [(e["price"], e["size"]) for e in logged]


def test_a_node_indexes_into_postgresql_as_into_sqlite(tmp_path: Path, postgres_schema_url) -> None:
    """The same chain indexed by two nodes, one into SQLite (the default), one into PostgreSQL
    (``--read-models postgresql://...``): every query answers the same."""
    from bastion.node.readmodels import open_read_models

    urls = {"sqlite": "default", "postgresql": postgres_schema_url()}
    answers = {}
    for name, url in urls.items():
        node, candles = crash_node(tmp_path / name, snapshot_every=0)
        node.close()
        node = Node(tmp_path / name, read_models=url, clock_ms=block_clock())
        drive(node, candles, n_candles=4, seed=7)
        assert node.indexer is not None and node.indexer.wait_idle() and node.indexer.error is None
        node.close()
        models = open_read_models(f"sqlite:///{tmp_path / name / 'readmodels.db'}" if url == "default" else url)
        answers[name] = {"fills": models.fills(limit=10**6), "orders": models.orders(limit=10**6),
                         "positions": models.positions(), "liquidations": models.liquidations(),
                         "candles": models.candles("SOL-USD", "15m")}
        models.close()
    assert answers["sqlite"] == answers["postgresql"]
    assert len(answers["sqlite"]["fills"]) > 50
