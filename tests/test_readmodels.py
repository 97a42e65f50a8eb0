"""The indexer and its read models (issue 4): rows derived from events, SQLite and PostgreSQL alike.

* Exact rows on small chains built with ``builders`` (orders, fills, positions, candles, funding,
  liquidations, parameters) and on golden scenarios.
* Every golden scenario: the indexed current positions equal the state machine's, the resting
  orders equal the books, the untriggered orders equal the conditional set.
* Idempotent replay, gaps and foreign read models refused, big integers kept exactly.
* SQLite and PostgreSQL answer every query identically after the golden scenarios and a long run
  (the FTX crash day of ``test_crash_replay`` with a seeded random order flow on top).

PostgreSQL: the ``postgres_models`` fixture (``conftest.py``) starts a throwaway cluster (Debian ``postgresql``
binaries, ``initdb`` + ``pg_ctl`` as the ``postgres`` user when run as root) on a free loopback
port for the session, and skips with the reason when the server or psycopg is missing.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from builders import ALICE, BOB, BTC, CAROL, ETH, GENESIS_TIME_MS, ORACLE, Chain, genesis, oracle_update, place_order
from test_crash_replay import BLOCK_S, MARKETS as CRASH_MARKETS, MakerQuotes, candle_path, crash_genesis, load_candles

from bastion.core.genesis import build_state
from bastion.core.messages import decode_message, normalize_address
from bastion.core.timefmt import format_iso_ms, parse_iso_ms
from bastion.core.transition import BlockResult, apply_block
from bastion.core.units import format_decimal
from bastion.node.indexer import Indexer
from bastion.node.readmodels import RESOLUTIONS, TABLES, ReadModels, ReadModelsError, open_read_models
from bastion.scenario import _block_time

SCENARIOS = sorted(Path(__file__).parent.glob("scenarios/*.json"))


# ------------------------------------------------------------------------------------ helpers
def sqlite_models() -> ReadModels:
    return open_read_models("sqlite:///:memory:")


def run_scenario_blocks(doc: dict) -> tuple[object, list[BlockResult]]:
    """Apply a scenario document's blocks (malformed messages dropped); (final state, results)."""
    state = build_state(doc["genesis"])
    results = []
    for i, block in enumerate(doc.get("blocks", [])):
        time_ms = _block_time(block, i, state)
        txs = []
        for tx in block.get("txs", []):
            try:
                txs.append((normalize_address(tx["sender"], field="sender"), decode_message(tx["msg"])))
            except Exception:  # noqa: BLE001 - the scenario's bad-input rows: rejected before the block
                continue
        results.append(apply_block(state, time_ms, txs))
    return state, results


def load_scenario(name: str) -> dict:
    return json.loads((Path(__file__).parent / "scenarios" / f"{name}.json").read_text())


def index(doc_genesis: dict, blocks: list, models: ReadModels | None = None) -> ReadModels:
    models = models or sqlite_models()
    indexer = Indexer(models, doc_genesis)
    for block in blocks:
        indexer.apply_block(block)
    return models


def all_queries(models: ReadModels) -> dict:
    """Every query, with every filter the data offers, as one comparable value."""
    out: dict = {}
    orders = models.orders(limit=10**9)
    fills = models.fills(limit=10**9)
    owners = sorted({o["owner"] for o in orders if o["owner"]} | {f["maker_owner"] for f in fills}
                    | {p["owner"] for p in models.positions()})
    markets = sorted({o["market"] for o in orders if o["market"]} | {f["market"] for f in fills})
    subaccounts = sorted({(o["owner"], o["number"]) for o in orders if o["owner"]}
                         | {(p["owner"], p["number"]) for p in models.positions()})
    out["orders"] = orders
    out["orders_limited"] = models.orders(limit=7)
    for status in ("open", "partially_filled", "filled", "cancelled", "expired", "untriggered", "failed"):
        out[f"orders/{status}"] = models.orders(status=status, limit=10**9)
    for owner in owners:
        out[f"orders/{owner}"] = models.orders(owner=owner, limit=10**9)
        out[f"fills/{owner}"] = models.fills(owner=owner, limit=10**9)
        out[f"funding/{owner}"] = models.funding_payments(owner=owner)
        out[f"liquidations/{owner}"] = models.liquidations(owner=owner)
    for owner, number in subaccounts:
        out[f"orders/{owner}/{number}"] = models.orders(owner=owner, number=number, limit=10**9)
        out[f"history/{owner}/{number}"] = models.positions_history(owner, number)
        out[f"funding/{owner}/{number}"] = models.funding_payments(owner=owner, number=number)
    for market in markets:
        out[f"orders/{market}"] = models.orders(market=market, limit=10**9)
        out[f"fills/{market}"] = models.fills(market=market, limit=10**9)
        out[f"fills/{market}/since"] = models.fills(market=market, since_height=3, limit=50)
        out[f"funding/{market}"] = models.funding_payments(market=market)
        out[f"ticks/{market}"] = models.funding_ticks(market=market)
        out[f"liquidations/{market}"] = models.liquidations(market=market)
        for resolution in RESOLUTIONS:
            candles = models.candles(market, resolution)
            out[f"candles/{market}/{resolution}"] = candles
            if candles:
                middle = candles[len(candles) // 2]["start_ms"]
                out[f"candles/{market}/{resolution}/window"] = models.candles(
                    market, resolution, start_ms=middle, end_ms=middle + 10 * RESOLUTIONS[resolution])
    out["fills"] = fills
    out["positions"] = models.positions()
    out["funding"] = models.funding_payments()
    out["ticks"] = models.funding_ticks()
    out["liquidations"] = models.liquidations()
    out["parameters"] = models.parameter_history()
    out["parameters/one"] = models.parameter_history("fees.insurance_share_ppm")
    out["indexed_height"] = models.indexed_height()
    return out


# ------------------------------------------------------------------------------------ exact rows
def test_resting_order_partly_taken_by_an_ioc_order() -> None:
    # Arrange: ALICE rests a sell of 0.2 BTC at 50,000; BOB takes 0.1 with an ioc buy at 50,100
    chain = Chain()
    models = sqlite_models()
    indexer = Indexer(models, genesis())
    first = chain.block([(ALICE, place_order(side="sell", size="0.2", price="50000", client_id=7))])
    second = chain.block([(BOB, place_order(side="buy", size="0.1", price="50100", time_in_force="ioc",
                                            client_id=9))])
    # Act
    indexer.apply_block(first)
    indexer.apply_block(second)
    # Assert (event 0 of the second block is BOB's order_accepted with its terms, event 1 the fill)
    t1, t2 = GENESIS_TIME_MS + 1_000, GENESIS_TIME_MS + 2_000
    base = {"market": BTC, "number": 0, "order_type": None, "time_in_force": None, "reduce_only": None,
            "trigger_price": None, "reason": None, "triggered_height": None, "agent": None}
    assert models.orders() == [
        {**base, "order_id": 2, "owner": BOB, "client_id": 9, "side": "buy", "price": 501000, "size": 1000,
         "order_type": "limit", "time_in_force": "ioc", "reduce_only": 0,
         "filled": 1000, "remaining": 0, "status": "filled", "created_height": 2, "created_time_ms": t2,
         "updated_height": 2},
        {**base, "order_id": 1, "owner": ALICE, "client_id": 7, "side": "sell", "price": 500000, "size": 2000,
         "filled": 1000, "remaining": 1000, "status": "partially_filled", "created_height": 1,
         "created_time_ms": t1, "updated_height": 2},
    ]
    # 0.1 BTC x 50,000 = 5,000 USDC; taker fee 0.05% = 2.5 USDC, maker 0.01% = 0.5; 10% of 3 USDC to insurance
    assert models.fills() == [
        {"height": 2, "seq": 1, "time_ms": t2, "market": BTC, "price": 500000, "size": 1000, "quote": 5_000_000_000,
         "taker_side": "buy", "taker_owner": BOB, "taker_number": 0, "taker_order_id": 2, "taker_fee": 2_500_000,
         "maker_owner": ALICE, "maker_number": 0, "maker_order_id": 1, "maker_fee": 500_000,
         "to_insurance": 300_000, "liquidation": 0},
    ]
    assert models.positions_history(ALICE, 0) == [
        {"owner": ALICE, "number": 0, "market": BTC, "height": 2, "seq": 1, "time_ms": t2, "cause": "fill",
         "change": -1000, "size": -1000}]
    assert models.positions() == [
        {"owner": ALICE, "number": 0, "market": BTC, "size": -1000},
        {"owner": BOB, "number": 0, "market": BTC, "size": 1000}]
    minute = t2 // 60_000 * 60_000
    assert models.candles(BTC, "1m") == [
        {"market": BTC, "resolution": "1m", "start_ms": minute, "open": 500000, "high": 500000, "low": 500000,
         "close": 500000, "volume_lots": 1000, "volume_quote": 5_000_000_000, "trades": 1}]
    assert models.fills(since_height=3) == [] and models.fills(owner=CAROL) == []
    assert indexer.indexed_height() == 2


def test_candles_aggregate_fills_by_block_time() -> None:
    # Arrange: two makers' asks; three taker buys in blocks 30 s apart (minutes 0, 0 and 1 after genesis)
    chain = Chain()
    models = sqlite_models()
    indexer = Indexer(models, genesis())
    blocks = [chain.block([(ALICE, place_order(side="sell", size="1", price="50000", client_id=1)),
                           (CAROL, place_order(side="sell", size="1", price="50200", client_id=1))], advance_s=10)]
    for size, price in (("0.5", "50000"), ("0.6", "50200"), ("0.2", "50200")):
        blocks.append(chain.block([(ORACLE, oracle_update()),  # keeps the oracle fresh (60 s staleness)
                                   (BOB, place_order(side="buy", size=size, price=price, time_in_force="ioc"))],
                                  advance_s=30))
    # Act
    for block in blocks:
        indexer.apply_block(block)
    # Assert: block times 10 s, 40 s, 70 s, 100 s after genesis. Minute 0: 0.5 at 50,000. Minute 1:
    # the 0.6 buy takes ALICE's last 0.5 at 50,000 and 0.1 of CAROL's at 50,200, then 0.2 at 50,200
    start = GENESIS_TIME_MS
    assert models.candles(BTC, "1m") == [
        {"market": BTC, "resolution": "1m", "start_ms": start, "open": 500000, "high": 500000, "low": 500000,
         "close": 500000, "volume_lots": 5000, "volume_quote": 25_000_000_000, "trades": 1},
        {"market": BTC, "resolution": "1m", "start_ms": start + 60_000, "open": 500000, "high": 502000,
         "low": 500000, "close": 502000, "volume_lots": 8000,
         "volume_quote": 25_000_000_000 + 5_020_000_000 + 10_040_000_000, "trades": 3},
    ]
    [hour] = models.candles(BTC, "1h")
    assert (hour["open"], hour["close"], hour["volume_lots"], hour["trades"]) == (500000, 502000, 13000, 4)
    assert models.candles(BTC, "1m", start_ms=start + 1) == models.candles(BTC, "1m")[1:]
    assert models.candles(BTC, "1m", end_ms=start + 60_000) == models.candles(BTC, "1m")[:1]
    with pytest.raises(ValueError):
        models.candles(BTC, "2m")


def test_conditional_stop_order_lifecycle() -> None:
    # Arrange: the golden scenario's stop-market order triggers and fills
    doc = load_scenario("conditional_stop_market")
    _, blocks = run_scenario_blocks(doc)
    # Act
    models = index(doc["genesis"], blocks)
    # Assert
    conditional = [o for o in models.orders(limit=1000) if o["order_type"] is not None]
    assert conditional and all(o["triggered_height"] is not None for o in conditional)
    for order in conditional:
        assert order["status"] in ("filled", "cancelled", "partially_filled", "open", "failed")
        assert order["trigger_price"] is not None and order["time_in_force"] in ("ioc", "fok")
    filled = [o for o in conditional if o["status"] == "filled"]
    assert filled and all(o["filled"] == o["size"] for o in filled)


@pytest.mark.parametrize("name, statuses", [
    ("gtt_expiry", {"expired"}),                      # resting and untriggered gtt orders expire
    ("conditional_trigger_failure", {"failed"}),      # a triggered order the book rejects
    ("cancel_orders", {"cancelled"}),                 # explicit cancels
    ("conditional_cancel_and_expiry", {"cancelled", "expired"}),
])
def test_order_end_states_from_golden_scenarios(name: str, statuses: set[str]) -> None:
    doc = load_scenario(name)
    _, blocks = run_scenario_blocks(doc)
    models = index(doc["genesis"], blocks)
    seen = {o["status"] for o in models.orders(limit=1000)}
    assert statuses <= seen
    for order in models.orders(limit=1000):
        if order["status"] in ("cancelled", "expired", "failed"):
            assert order["reason"] and order["remaining"] == 0


def test_liquidation_paid_by_the_fund_then_taken_over_deleveraged_and_unwound() -> None:
    # Arrange (the golden scenario's notes work the numbers): a0 long 1 BTC is liquidated 0.1 BTC at
    # 47,000 in block 1; in block 2 the fund cannot pay the book's price, the backstop takes 3 lots
    # over (its limit), the remaining 0.8997 BTC is deleveraged to b0, and the backstop unwinds 1 lot
    # into c0's bid at 46,500
    doc = load_scenario("liquidation_fund_pays")
    _, blocks = run_scenario_blocks(doc)
    a0, b0, c0 = (normalize_address(a["address"], field="a") for a in doc["genesis"]["accounts"][:3])
    backstop = "backstop:cross"
    # Act
    models = index(doc["genesis"], blocks)
    # Assert
    fills = sorted(models.fills(limit=10), key=lambda f: f["height"])
    assert [(f["height"], f["liquidation"], f["taker_owner"], f["taker_order_id"], f["maker_owner"], f["price"],
             f["size"], f["quote"]) for f in fills] == [
        (1, 1, a0, None, c0, 47000, 1000, 4_700_000_000),     # price_decimals 0
        (2, 0, backstop, None, c0, 46500, 1, 4_650_000)]      # the unwind
    rows = [(r["height"], r["type"], r["owner"], r["size"], r["price"], r["quote"], r["amount"], r["reason"])
            for r in models.liquidations()]
    assert rows == [
        (1, "liquidation", a0, 1000, 47000, 4_700_000_000, -71_200_000, None),  # the fund pays 71.2
        (2, "liquidation_incomplete", a0, 900, 44885, None, None, "insurance_fund"),  # attempted, fillable price
        (2, "backstop_takeover", a0, 3, 47000, 14_313_600, -213_600, "bankrupt"),  # received, fund delta
        (2, "deleveraging", a0, 8997, 47000, 42_926_486_400, None, None),  # at the bankruptcy quote
        (2, "backstop_unwind", backstop, 1, 46500, 4_650_000, None, None),
    ]
    assert models.liquidations()[0]["detail"]["insurance_fund"] == 28_800_000
    assert [(r["height"], r["cause"], r["change"], r["size"]) for r in models.positions_history(a0, 0)] == [
        (0, "genesis", 10000, 10000), (1, "liquidation", -1000, 9000), (2, "backstop_takeover", -3, 8997),
        (2, "deleveraging", -8997, 0)]
    assert [(r["cause"], r["size"]) for r in models.positions_history(b0, 0)][-1] == ("deleveraging", -1003)
    assert [(r["cause"], r["size"]) for r in models.positions_history(backstop, 0)] == [
        ("backstop_takeover", 3), ("fill", 2)]
    assert models.liquidations(owner=b0) == [] and len(models.liquidations(market=BTC)) == 5


def test_bad_debt_shares_move_the_counterparties_positions() -> None:
    doc = load_scenario("bad_debt_socialised")
    state, blocks = run_scenario_blocks(doc)
    models = index(doc["genesis"], blocks)
    [bad_debt] = [r for r in models.liquidations() if r["type"] == "bad_debt"]
    for share in bad_debt["detail"]["shares"]:
        last = models.positions_history(share["owner"], share["number"], bad_debt["market"])[-1]
        assert (last["cause"], last["height"]) == ("bad_debt", bad_debt["height"])
    owner = bad_debt["owner"]
    assert models.positions_history(owner, bad_debt["number"], bad_debt["market"])[-1]["size"] == 0


def test_final_settlement_closes_every_position() -> None:
    # Arrange: SET-USD settles in block 1; c0 (negative TNC) is deleveraged against b0 first
    doc = load_scenario("final_settlement")
    _, blocks = run_scenario_blocks(doc)
    a0, b0, c0, d0 = (normalize_address(a["address"], field="a") for a in doc["genesis"]["accounts"][:4])
    # Act
    models = index(doc["genesis"], blocks)
    # Assert: (cause, change, size after) for every holder of the market
    history = {owner: [(r["cause"], r["change"], r["size"]) for r in models.positions_history(owner, 0, "SET-USD")]
               for owner in (a0, b0, c0, d0)}
    assert history == {
        a0: [("genesis", 1000001, 1000001), ("final_settlement", -1000001, 0)],
        b0: [("genesis", -800002, -800002), ("deleveraging", 500003, -299999), ("final_settlement", 299999, 0)],
        c0: [("genesis", 500003, 500003), ("deleveraging", -500003, 0)],
        d0: [("genesis", -700002, -700002), ("final_settlement", 700002, 0)],
    }
    assert models.positions() == []


def test_funding_ticks_and_payments() -> None:
    # Arrange: BOB long 1 BTC against ALICE; two hourly ticks at the 0.01% default rate, then a trade
    chain = Chain()
    models = sqlite_models()
    indexer = Indexer(models, genesis())
    blocks = [chain.block([(ALICE, place_order(side="sell", size="1", price="50000", client_id=1)),
                           (BOB, place_order(side="buy", size="1", price="50000", time_in_force="ioc"))])]
    for _ in range(3):
        blocks.append(chain.block([(ORACLE, oracle_update())], advance_s=3_000))
    blocks.append(chain.block([(ORACLE, oracle_update()),  # a fill settles both sides' funding
                               (ALICE, place_order(side="buy", size="0.1", price="50000", client_id=2)),
                               (BOB, place_order(side="sell", size="0.1", price="50000", time_in_force="ioc",
                                                 reduce_only=True))]))
    # Act
    for block in blocks:
        indexer.apply_block(block)
    # Assert
    ticks = models.funding_ticks(market=BTC)
    assert len(ticks) == 2 and all(t["rate_8h_ppm"] == 100 and t["elapsed_s"] == 3_600 for t in ticks)
    assert len(models.funding_ticks()) == 6  # three markets tick every hour
    payments = models.funding_payments()
    assert payments and {(p["owner"], p["markets"]) for p in payments} <= {(ALICE, BTC), (BOB, BTC)}
    assert sum(p["amount"] for p in models.funding_payments(owner=BOB)) < 0  # longs pay a positive rate
    assert models.funding_payments(market=BTC) == payments and models.funding_payments(market=ETH) == []
    assert models.funding_payments(owner=BOB, number=1) == []


def test_parameters_at_genesis_then_param_changed_events() -> None:
    models = sqlite_models()
    indexer = Indexer(models, genesis())
    change = {"type": "param_changed", "name": "liquidation.max_liquidation_fee_ppm", "value": 20_000,
              "height": 1, "proposal_id": "a7" * 32}
    indexer.apply_block(SimpleNamespace(height=1, time_ms=GENESIS_TIME_MS + 1_000, events=[change]))
    assert models.parameter_history("liquidation.max_liquidation_fee_ppm") == [
        {"name": "liquidation.max_liquidation_fee_ppm", "height": 0, "seq": 0, "value": 15_000, "proposal_id": None},
        {"name": "liquidation.max_liquidation_fee_ppm", "height": 1, "seq": 0, "value": 20_000,
         "proposal_id": "a7" * 32},
    ]
    names = {row["name"]: row["value"] for row in models.parameter_history()}
    assert names["fees.insurance_share_ppm"] == 100_000 and names["markets.BTC-USD.status"] == "active"
    assert names["markets.ETH-USD.max_open_interest_lots"] == 200_000
    assert names["liquidity_tiers.0.initial_margin_ppm"] == 20_000


def test_genesis_positions_are_height_zero_history() -> None:
    doc = load_scenario("genesis_positions")
    models = index(doc["genesis"], [])
    rows = [r for key in {(p["owner"], p["number"]) for p in models.positions()}
            for r in models.positions_history(*key)]
    assert rows and all((r["height"], r["cause"], r["change"]) == (0, "genesis", r["size"]) for r in rows)
    assert models.indexed_height() == 0


# ------------------------------------------------------------------------------------ consistency
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_indexed_positions_and_orders_match_the_state_machine(path: Path) -> None:
    doc = json.loads(path.read_text())
    state, blocks = run_scenario_blocks(doc)
    models = index(doc["genesis"], blocks)
    positions = {(p["owner"], p["number"], p["market"]): p["size"] for p in models.positions()}
    assert positions == {(s.owner, s.number, t): p.size for s in state.subaccounts.values()
                         for t, p in s.positions.items()}
    orders = models.orders(limit=10**9)
    resting = {o["order_id"]: o["remaining"] for o in orders if o["status"] in ("open", "partially_filled")}
    assert resting == {o.order_id: o.remaining for m in state.markets.values() for o in m.book.orders()}
    assert {o["order_id"] for o in orders if o["status"] == "untriggered"} == set(state.conditional_orders)
    assert not [o for o in orders if o["status"] in ("taking", "triggered")]
    assert models.indexed_height() == state.height


# ------------------------------------------------------------------------------------ the indexer's contract
def test_replaying_indexed_blocks_changes_nothing(tmp_path: Path) -> None:
    # Arrange: a scenario indexed into a file, then the indexer restarted as after a crash
    doc = load_scenario("liquidation_fund_pays")
    _, blocks = run_scenario_blocks(doc)
    url = f"sqlite:///{tmp_path / 'read.db'}"
    first = open_read_models(url)
    index(doc["genesis"], blocks[:1], first)
    first.close()
    # Act: the node replays its whole log into a fresh indexer on the same file
    reopened = open_read_models(url)
    indexer = Indexer(reopened, doc["genesis"])
    applied = [indexer.apply_block(block) for block in blocks]
    # Assert
    assert applied == [False] + [True] * (len(blocks) - 1)
    assert all_queries(reopened) == all_queries(index(doc["genesis"], blocks))


def test_a_gap_in_heights_is_refused() -> None:
    doc = load_scenario("liquidation_fund_pays")
    _, blocks = run_scenario_blocks(doc)
    indexer = Indexer(sqlite_models(), doc["genesis"])
    with pytest.raises(ReadModelsError, match="at height 0"):
        indexer.apply_block(blocks[1])


def test_read_models_of_another_genesis_are_refused() -> None:
    models = sqlite_models()
    Indexer(models, genesis())
    with pytest.raises(ReadModelsError, match="another genesis"):
        Indexer(models, genesis(chain_id="bastion-other"))


def test_unknown_url_is_refused() -> None:
    with pytest.raises(ReadModelsError, match="unsupported"):
        open_read_models("mysql://localhost/db")


def test_events_of_unknown_type_are_ignored() -> None:
    models = sqlite_models()
    indexer = Indexer(models, genesis())
    indexer.apply_block(SimpleNamespace(height=1, time_ms=GENESIS_TIME_MS, events=[{"type": "from_the_future"}]))
    assert models.indexed_height() == 1


BIG = 2**80 + 12345  # beyond BIGINT: amounts are unbounded integers


def big_amount_block() -> SimpleNamespace:
    events = [{"type": "funding_payment", "owner": ALICE, "number": 0, "amount": -BIG},
              {"type": "param_changed", "name": "fees.insurance_share_ppm", "value": BIG, "height": 1,
               "proposal_id": "01" * 32}]
    return SimpleNamespace(height=1, time_ms=GENESIS_TIME_MS, events=events)


def test_amounts_beyond_64_bits_round_trip_in_sqlite() -> None:
    models = sqlite_models()
    Indexer(models, genesis()).apply_block(big_amount_block())
    assert [p["amount"] for p in models.funding_payments()] == [-BIG]
    assert models.parameter_history("fees.insurance_share_ppm")[-1]["value"] == BIG


def test_amounts_beyond_64_bits_round_trip_in_postgres(postgres_models) -> None:
    models = postgres_models()
    Indexer(models, genesis()).apply_block(big_amount_block())
    assert [p["amount"] for p in models.funding_payments()] == [-BIG]
    assert all_queries(models) == all_queries(index(genesis(), [big_amount_block()]))


def test_postgres_schema_matches_the_table_description(postgres_models) -> None:
    models = postgres_models()
    for table, spec in TABLES.items():
        rows = models.db.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
                                 (table,)).fetchall()
        expected = [(c, {"int": "bigint", "text": "text", "json": "text", "amount": "numeric"}[k])
                    for c, k in spec["columns"].items()]
        assert rows == expected


# ------------------------------------------------------------------------------------ SQLite == PostgreSQL
def test_sqlite_and_postgres_agree_on_every_golden_scenario(postgres_models) -> None:
    for path in SCENARIOS:
        doc = json.loads(path.read_text())
        _, blocks = run_scenario_blocks(doc)
        postgres, sqlite = index(doc["genesis"], blocks, postgres_models()), index(doc["genesis"], blocks)
        assert all_queries(postgres) == all_queries(sqlite), path.stem
        postgres.close()  # one connection at a time: there are more scenarios than the server's connection slots
        sqlite.close()


def crash_day_with_order_flow(blocks: int, *, seed: int = 4) -> tuple[dict, list[BlockResult]]:
    """The FTX crash (Nov 8 2022, from noon) with its market makers, plus seeded traders: ioc
    orders around the oracle, resting gtt orders that expire, stop orders, cancels."""
    candles = [(t, p) for t, p in load_candles() if t >= "2022-11-08T12"][: (blocks + 3) // 4]
    genesis_doc = crash_genesis(candles[0][1], candles[0][0])
    state = build_state(genesis_doc)
    rng = random.Random(seed)
    traders = [a["address"] for a in genesis_doc["accounts"][:520]]
    quotes = MakerQuotes()
    time_ms = parse_iso_ms(candles[0][0], field="time")
    client_id = 0
    out = []
    for _, prices in candles:
        paths = {t: candle_path(*prices[t]) for t in CRASH_MARKETS}
        for step in range(4):
            if len(out) == blocks:
                return genesis_doc, out
            time_ms += BLOCK_S * 1_000
            txs = [(ORACLE, {"type": "oracle_update", "prices": {t: paths[t][step] for t in CRASH_MARKETS}})]
            txs += quotes.txs(state)
            for _ in range(12):
                trader = rng.choice(traders)
                ticker = rng.choice(sorted(CRASH_MARKETS))
                _, size_decimals, price_decimals, _, _ = CRASH_MARKETS[ticker]
                oracle = state.markets[ticker].oracle_price
                side = rng.choice(("buy", "sell"))
                lots = rng.randint(1, 30) * 10 ** max(0, size_decimals - 1)
                client_id += 1
                order = {"type": "place_order", "subaccount": 0, "market": ticker, "side": side,
                         "size": format_decimal(lots, size_decimals), "client_id": client_id}
                kind = rng.random()
                if kind < 0.5:  # take liquidity
                    away = oracle * 2 // 100 * (1 if side == "buy" else -1)
                    order.update(price=format_decimal(oracle + away, price_decimals), time_in_force="ioc")
                elif kind < 0.8:  # rest, good for a few blocks
                    away = oracle * rng.randint(1, 20) // 1000 * (-1 if side == "buy" else 1)
                    order.update(price=format_decimal(oracle + away, price_decimals), time_in_force="gtt",
                                 good_til=format_iso_ms(time_ms + rng.randint(1, 5) * BLOCK_S * 1_000))
                elif kind < 0.95:  # stop market
                    away = oracle * rng.randint(1, 5) // 100 * (1 if side == "buy" else -1)
                    order.update(order_type="stop_market", time_in_force="ioc",
                                 trigger_price=format_decimal(oracle + away, price_decimals),
                                 price=format_decimal(oracle + 2 * away, price_decimals))
                else:
                    order = {"type": "cancel_all", "subaccount": 0}
                txs.append((trader, order))
            out.append(apply_block(state, time_ms, [(sender, decode_message(msg)) for sender, msg in txs]))
    return genesis_doc, out


def timed_index(genesis_doc: dict, blocks: list[BlockResult], models: ReadModels) -> float:
    """Events indexed per second."""
    indexer = Indexer(models, genesis_doc)
    started = time.perf_counter()
    for block in blocks:
        indexer.apply_block(block)
    return sum(len(block.events) for block in blocks) / (time.perf_counter() - started)


def test_sqlite_and_postgres_agree_on_a_long_run_with_liquidations(postgres_models, tmp_path: Path) -> None:
    # Arrange: 240 blocks of the crash day (thousands of fills, liquidations, deleveraging)
    genesis_doc, blocks = crash_day_with_order_flow(240)
    kinds = {event["type"] for block in blocks for event in block.events}
    assert {"fill", "liquidation", "deleveraging", "funding_payment", "conditional_order_triggered"} <= kinds
    # Act
    sqlite = open_read_models(f"sqlite:///{tmp_path / 'read.db'}")
    postgres = postgres_models()
    sqlite_rate = timed_index(genesis_doc, blocks, sqlite)
    postgres_rate = timed_index(genesis_doc, blocks, postgres)
    print(f"\nindexing {sum(len(b.events) for b in blocks)} events: SQLite {sqlite_rate:,.0f} events/s, "
          f"PostgreSQL {postgres_rate:,.0f} events/s")
    # Assert
    expected = all_queries(sqlite)
    assert all_queries(postgres) == expected
    assert len(expected["fills"]) > 1_000 and expected["liquidations"] and expected["funding"]
    assert {o["status"] for o in expected["orders"]} >= {"filled", "cancelled", "expired", "open"}
