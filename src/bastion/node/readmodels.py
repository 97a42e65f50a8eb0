"""Read models: queryable tables derived from the core's events, in SQLite or PostgreSQL.

The indexer (``bastion.node.indexer``) turns each committed block's events into rows; this module
stores them and answers queries. Nothing here touches the live state machine: every row comes from
an event (or, at height 0, from the genesis document). The block log stays the source of truth; the
read models can always be dropped and rebuilt by replaying it.

Choose a backend by URL with ``open_read_models(url)``:

    sqlite:///relative/path.db     SQLite file (stdlib ``sqlite3``, WAL), path relative to the cwd
    sqlite:////absolute/path.db    (four slashes: an absolute path, as in SQLAlchemy)
    sqlite:///:memory:             in memory (tests)
    postgresql://user@host:port/db PostgreSQL through psycopg 3 (``pip install 'bastion[postgres]'``)

Both backends share one schema description (``TABLES``) and the same SQL, so they answer every
query identically (a test drives one long run into both and compares every query).

Units and types. Heights, times (ms), order ids, subaccount numbers and counts are BIGINT.
Money (micro-USDC), prices (ticks) and sizes (lots) are *amounts*: Python ints of any size. In
PostgreSQL an amount column is ``NUMERIC``; SQLite's INTEGER is 64-bit and its NUMERIC turns larger
integers into lossy REALs, so there an amount column has no declared type (no affinity) and holds an
INTEGER when the value fits in 64 bits, its decimal text otherwise. Queries return Python ints
either way. No query sorts or compares amounts in SQL. Flags (``liquidation``, ``reduce_only``) are
0/1. JSON columns hold canonical JSON text (sorted keys) and are returned parsed.

The tables (columns in ``TABLES``; ``seq`` is the event's index in its block's event list, so
``(height, seq)`` names one event):

    meta              key -> value: schema_version, genesis_hash, indexed_height
    orders            one row per order id: terms as far as the events tell them, filled and
                      remaining lots, status, last reason (see ORDER_STATUSES), and the agent key
                      that placed it for its owner (null: the owner itself, or the protocol)
    fills             one row per fill event, with its quote notional; liquidation = 1 for the
                      fills of liquidation orders (their taker is the liquidated account, no order id)
    positions         the current size per (owner, number, market): the indexer's working state
    position_changes  size after each change, with its cause (genesis, fill, liquidation,
                      deleveraging, bad_debt, final_settlement)
    funding_payments  funding_payment events (amount received; negative when paid), with the
                      markets the subaccount held positions in when it was paid
    funding_ticks     funding_tick events, per market
    liquidations      liquidation, deleveraging, bad_debt and liquidation_incomplete events
    candles           OHLC in ticks, volume in lots and in quote micro-USDC, and the number of
                      trades, per market, resolution (``RESOLUTIONS``) and bucket start (block time)
    parameters        governed parameter values: the genesis values at height 0, then every
                      ``param_changed`` event (shape in ``bastion.node.indexer``)

Writes go through ``write_block(batch)``: one database transaction per block, which also moves
``indexed_height``; the indexer reads its working rows back with the ``load_*`` methods first.
"""
from __future__ import annotations

import abc
import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bastion.node.blocklog import sqlite_transaction

__all__ = [
    "ORDER_STATUSES", "RESOLUTIONS", "SCHEMA_VERSION", "BlockBatch", "ReadModels", "ReadModelsError",
    "open_read_models",
]

SCHEMA_VERSION = 3  # 2: parameters.proposal_id is the proposal's hash id (text); 3: orders.agent

# Candle resolutions: name -> bucket length in ms. A fill belongs to the bucket that holds its block's time.
RESOLUTIONS: dict[str, int] = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "1d": 86_400_000}

# The status of an order in the ``orders`` table:
#   untriggered       a conditional order waiting for its trigger price
#   triggered         triggered at end of block (transient: it becomes one of the below at once)
#   open              resting, nothing filled yet
#   partially_filled  resting, some lots filled
#   filled            fully filled (as maker, or as taker without resting)
#   cancelled         removed with ``reason`` (cancelled, ioc_remainder, self_trade, liquidation,
#                     final_settlement, reduce_only, maker_margin, self_trade_decrement, ...)
#   expired           a good-til-time order whose time came (reason "expired")
#   failed            a triggered conditional order the book rejected (reason = the error code)
ORDER_STATUSES = ("untriggered", "triggered", "open", "partially_filled", "filled", "cancelled", "expired", "failed")

# Logical column types: "int" BIGINT, "amount" any-size integer, "text", "json" (text holding JSON).
TABLES: dict[str, dict[str, Any]] = {
    "meta": {"columns": {"key": "text", "value": "text"}, "key": ("key",)},
    "orders": {"columns": {
        "order_id": "int", "market": "text", "owner": "text", "number": "int", "client_id": "int",
        "side": "text", "order_type": "text", "time_in_force": "text", "reduce_only": "int",
        "price": "amount", "trigger_price": "amount", "size": "amount", "filled": "amount", "remaining": "amount",
        "status": "text", "reason": "text", "created_height": "int", "created_time_ms": "int",
        "triggered_height": "int", "updated_height": "int", "agent": "text",
    }, "key": ("order_id",)},
    "fills": {"columns": {
        "height": "int", "seq": "int", "time_ms": "int", "market": "text", "price": "amount", "size": "amount",
        "quote": "amount", "taker_side": "text", "taker_owner": "text", "taker_number": "int",
        "taker_order_id": "int", "taker_fee": "amount", "maker_owner": "text", "maker_number": "int",
        "maker_order_id": "int", "maker_fee": "amount", "to_insurance": "amount", "liquidation": "int",
    }, "key": ("height", "seq")},
    "positions": {"columns": {"owner": "text", "number": "int", "market": "text", "size": "amount"},
                  "key": ("owner", "number", "market")},
    "position_changes": {"columns": {
        "owner": "text", "number": "int", "market": "text", "height": "int", "seq": "int", "time_ms": "int",
        "cause": "text", "change": "amount", "size": "amount",
    }, "key": ("owner", "number", "market", "height", "seq")},
    "funding_payments": {"columns": {
        "height": "int", "seq": "int", "time_ms": "int", "owner": "text", "number": "int", "amount": "amount",
        "markets": "text",
    }, "key": ("height", "seq")},
    "funding_ticks": {"columns": {
        "height": "int", "seq": "int", "time_ms": "int", "market": "text", "rate_8h_ppm": "amount",
        "samples": "int", "oracle_price": "amount", "elapsed_s": "int", "index_delta": "amount",
        "funding_index": "amount",
    }, "key": ("height", "seq")},
    "liquidations": {"columns": {
        "height": "int", "seq": "int", "time_ms": "int", "type": "text", "market": "text", "owner": "text",
        "number": "int", "size": "amount", "price": "amount", "quote": "amount", "amount": "amount",
        "reason": "text", "detail": "json",
    }, "key": ("height", "seq")},
    "candles": {"columns": {
        "market": "text", "resolution": "text", "start_ms": "int", "open": "amount", "high": "amount",
        "low": "amount", "close": "amount", "volume_lots": "amount", "volume_quote": "amount", "trades": "int",
    }, "key": ("market", "resolution", "start_ms")},
    "parameters": {"columns": {
        "name": "text", "height": "int", "seq": "int", "value": "json", "proposal_id": "text",
    }, "key": ("name", "height", "seq")},
}

INDEXES = (
    ("orders_by_owner", "orders", ("owner", "number", "order_id")),
    ("orders_by_market", "orders", ("market", "order_id")),
    ("fills_by_market", "fills", ("market", "height", "seq")),
    ("fills_by_taker", "fills", ("taker_owner", "height", "seq")),
    ("fills_by_maker", "fills", ("maker_owner", "height", "seq")),
    ("funding_payments_by_owner", "funding_payments", ("owner", "number", "height", "seq")),
    ("liquidations_by_owner", "liquidations", ("owner", "height", "seq")),
    ("parameters_by_height", "parameters", ("height", "seq", "name")),
)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_CHUNK = 500  # keys per ``IN (...)`` when loading working rows


class ReadModelsError(Exception):
    """The database does not hold what this code expects (another schema version, another chain,
    a gap in the indexed heights), or a URL names no supported backend."""


@dataclass
class BlockBatch:
    """Every row one block adds or changes, written in one transaction by ``ReadModels.write_block``.

    ``orders``, ``positions`` and ``candles`` are upserts of whole rows keyed as in ``TABLES``;
    the lists are inserts. Rows are dicts keyed by column name.
    """

    height: int
    orders: dict[int, dict] = field(default_factory=dict)
    fills: list[dict] = field(default_factory=list)
    positions: dict[tuple[str, int, str], int] = field(default_factory=dict)
    position_changes: list[dict] = field(default_factory=list)
    funding_payments: list[dict] = field(default_factory=list)
    funding_ticks: list[dict] = field(default_factory=list)
    liquidations: list[dict] = field(default_factory=list)
    candles: dict[tuple[str, str, int], dict] = field(default_factory=dict)
    parameters: list[dict] = field(default_factory=list)


class ReadModels(abc.ABC):
    """The storage interface: the indexer's writes and working reads, then the public queries.

    Queries are pure reads returning lists of plain dicts (ints, strings, None for what the
    events do not tell, parsed JSON for ``detail``/``value``), in a documented, total order.
    """

    # ---------------------------------------------------------------- the indexer's side
    @abc.abstractmethod
    def indexed_height(self) -> int:
        """The height of the last indexed block: 0 once genesis is indexed, -1 before."""

    @abc.abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def load_orders(self, order_ids: Iterable[int]) -> dict[int, dict]:
        """The stored rows of these order ids (absent ids are left out)."""

    @abc.abstractmethod
    def load_positions(self, subaccounts: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict[str, int]]:
        """Current sizes by market of each of these subaccounts (zero sizes included)."""

    @abc.abstractmethod
    def load_candles(self, keys: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str, int], dict]:
        """Stored candles keyed (market, resolution, start_ms)."""

    @abc.abstractmethod
    def write_block(self, batch: BlockBatch, meta: dict[str, str] | None = None) -> None:
        """Write ``batch`` and set ``indexed_height`` to its height, in one transaction. Raises
        ``ReadModelsError`` unless the stored height is ``batch.height - 1`` (-1 for genesis)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def prune_idle_orders(self, below_height: int) -> int:
        """Delete the rows of orders that ended cancelled or expired with nothing filled and last
        changed below ``below_height`` (``bastion.node.retention``); returns how many."""

    # ---------------------------------------------------------------- queries
    @abc.abstractmethod
    def orders(self, owner: str | None = None, number: int | None = None, market: str | None = None,
               status: str | None = None, limit: int = 100, before: int | None = None) -> list[dict]:
        """Orders, newest first (order id descending); ``before``: only order ids below it (the
        cursor of the previous page)."""

    @abc.abstractmethod
    def fills(self, market: str | None = None, owner: str | None = None, since_height: int = 0,
              limit: int = 100, after: tuple[int, int] | None = None,
              before: tuple[int, int] | None = None) -> list[dict]:
        """Fills at heights >= ``since_height``, oldest first (height, seq); ``owner`` as maker or taker;
        ``after``: only those after this (height, seq) (the cursor of the previous page); ``before``:
        only those before it, newest first (pages read backwards from the newest)."""

    @abc.abstractmethod
    def positions_history(self, owner: str, number: int, market: str | None = None) -> list[dict]:
        """Every change of the subaccount's positions, by (height, seq, market)."""

    @abc.abstractmethod
    def positions(self, owner: str | None = None, number: int | None = None) -> list[dict]:
        """Current non-zero positions, by (owner, number, market)."""

    @abc.abstractmethod
    def funding_payments(self, owner: str | None = None, number: int | None = None,
                         market: str | None = None, limit: int | None = None,
                         after: tuple[int, int] | None = None, before: tuple[int, int] | None = None) -> list[dict]:
        """Funding payments by (height, seq); ``market``: those of subaccounts that held it when paid.
        ``limit``, ``after`` and ``before`` (height, seq): pages, as for ``fills``."""

    @abc.abstractmethod
    def funding_ticks(self, market: str | None = None, limit: int | None = None,
                      after: tuple[int, int] | None = None, before: tuple[int, int] | None = None) -> list[dict]:
        """Hourly funding ticks by (height, seq); ``limit``, ``after`` and ``before``: pages, as for ``fills``."""

    @abc.abstractmethod
    def liquidations(self, market: str | None = None, owner: str | None = None, limit: int | None = None,
                     after: tuple[int, int] | None = None) -> list[dict]:
        """Liquidation, deleveraging, bad-debt and incomplete-liquidation events by (height, seq);
        ``owner`` is the liquidated account; ``limit`` and ``after``: pages, as for ``fills``."""

    @abc.abstractmethod
    def candles(self, market: str, resolution: str, start_ms: int | None = None,
                end_ms: int | None = None) -> list[dict]:
        """Candles with ``start_ms <= bucket start < end_ms``, oldest first."""

    @abc.abstractmethod
    def parameter_history(self, name: str | None = None) -> list[dict]:
        """Parameter values by (height, seq, name)."""


# ------------------------------------------------------------------------------------ the SQL backends
class SqlReadModels(ReadModels):
    """Everything both backends share; a subclass gives the connection, the placeholder, the
    amount column type and how amounts are bound."""

    placeholder = "?"
    amount_type = ""

    def __init__(self, connection: Any) -> None:
        self.db = connection
        self._create_schema()

    # ---------------------------------------------------------------- backend hooks
    @abc.abstractmethod
    def _transaction(self) -> Any:
        """A context manager around one write transaction."""

    def _bind_amount(self, value: int | None) -> Any:
        return value

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        cursor = self.db.execute(sql.replace("?", self.placeholder), params)
        return cursor.fetchall() if cursor.description else []

    def _executemany(self, sql: str, rows: list[Sequence[Any]]) -> None:
        if rows:
            cursor = self.db.cursor()
            cursor.executemany(sql.replace("?", self.placeholder), rows)
            cursor.close()

    # ---------------------------------------------------------------- schema
    def _column_sql(self, kind: str) -> str:
        return {"int": "BIGINT", "text": "TEXT", "json": "TEXT", "amount": self.amount_type}[kind]

    def _create_schema(self) -> None:
        with self._transaction():
            for table, spec in TABLES.items():
                columns = ", ".join(f"{name} {self._column_sql(kind)}".rstrip()
                                    for name, kind in spec["columns"].items())
                self._execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns}, PRIMARY KEY ({', '.join(spec['key'])}))")
            for index, indexed_table, indexed_columns in INDEXES:
                self._execute(f"CREATE INDEX IF NOT EXISTS {index} ON {indexed_table} ({', '.join(indexed_columns)})")
            stored = self._execute("SELECT value FROM meta WHERE key = ?", ("schema_version",))
            if not stored:
                self._execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("schema_version", str(SCHEMA_VERSION)))
            elif stored[0][0] != str(SCHEMA_VERSION):
                raise ReadModelsError(f"read models have schema version {stored[0][0]}, this code {SCHEMA_VERSION}: "
                                      "drop them and re-index from the block log")

    # ---------------------------------------------------------------- encoding
    def _encode(self, table: str, row: dict) -> list[Any]:
        out = []
        for name, kind in TABLES[table]["columns"].items():
            value = row.get(name)
            if kind == "amount" and value is not None:
                value = self._bind_amount(value)
            elif kind == "json" and value is not None:
                value = json.dumps(value, sort_keys=True, separators=(",", ":"))
            elif isinstance(value, bool):
                value = int(value)
            out.append(value)
        return out

    def _select(self, table: str, where: str = "", params: Sequence[Any] = (), order: str = "",
                limit: int | None = None) -> list[dict]:
        columns = TABLES[table]["columns"]
        sql = f"SELECT {', '.join(columns)} FROM {table}"
        if where:
            sql += f" WHERE {where}"
        sql += f" ORDER BY {order or ', '.join(TABLES[table]['key'])}"
        if limit is not None:
            sql += " LIMIT ?"
            params = (*params, int(limit))
        kinds = list(columns.items())
        rows = []
        for record in self._execute(sql, params):
            row = {}
            for (name, kind), value in zip(kinds, record):
                if value is not None:
                    if kind in ("int", "amount"):
                        value = int(value)  # Decimal (PostgreSQL NUMERIC) or decimal text (big SQLite amounts)
                    elif kind == "json":
                        value = json.loads(value)
                row[name] = value
            rows.append(row)
        return rows

    def _insert(self, table: str, rows: Iterable[dict]) -> None:
        columns = TABLES[table]["columns"]
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        self._executemany(sql, [self._encode(table, row) for row in rows])

    def _upsert(self, table: str, rows: Iterable[dict]) -> None:
        columns = TABLES[table]["columns"]
        key = TABLES[table]["key"]
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
               f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")
        self._executemany(sql, [self._encode(table, row) for row in rows])

    def _select_in(self, table: str, column: str, values: list[Any], where: str = "",
                   params: Sequence[Any] = ()) -> Iterator[dict]:
        """Rows whose ``column`` is one of ``values`` (and that match ``where``), in chunks."""
        for start in range(0, len(values), _CHUNK):
            chunk = values[start:start + _CHUNK]
            clause = " AND ".join(filter(None, [where, f"{column} IN ({', '.join('?' for _ in chunk)})"]))
            yield from self._select(table, clause, [*params, *chunk])

    # ---------------------------------------------------------------- the indexer's side
    def get_meta(self, key: str) -> str | None:
        rows = self._execute("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def indexed_height(self) -> int:
        value = self.get_meta("indexed_height")
        return -1 if value is None else int(value)

    def load_orders(self, order_ids: Iterable[int]) -> dict[int, dict]:
        return {row["order_id"]: row for row in self._select_in("orders", "order_id", sorted(set(order_ids)))}

    def load_positions(self, subaccounts: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict[str, int]]:
        wanted = set(subaccounts)
        out: dict[tuple[str, int], dict[str, int]] = {key: {} for key in wanted}
        for row in self._select_in("positions", "owner", sorted({owner for owner, _ in wanted})):
            key = (row["owner"], row["number"])
            if key in wanted:
                out[key][row["market"]] = row["size"]
        return out

    def load_candles(self, keys: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str, int], dict]:
        wanted = sorted(set(keys))
        out = {}
        for market, resolution in sorted({(m, r) for m, r, _ in wanted}):
            starts = [s for m, r, s in wanted if (m, r) == (market, resolution)]
            for row in self._select_in("candles", "start_ms", starts, "market = ? AND resolution = ?",
                                       (market, resolution)):
                out[(market, resolution, row["start_ms"])] = row
        return out

    def write_block(self, batch: BlockBatch, meta: dict[str, str] | None = None) -> None:
        with self._transaction():
            stored = self._execute("SELECT value FROM meta WHERE key = ?", ("indexed_height",))
            previous = int(stored[0][0]) if stored else -1
            if previous != batch.height - 1:
                raise ReadModelsError(f"read models are at height {previous}; cannot write block {batch.height}")
            self._upsert("orders", (batch.orders[k] for k in sorted(batch.orders)))
            self._insert("fills", batch.fills)
            self._upsert("positions", ({"owner": o, "number": n, "market": m, "size": size}
                                       for (o, n, m), size in sorted(batch.positions.items())))
            self._insert("position_changes", batch.position_changes)
            self._insert("funding_payments", batch.funding_payments)
            self._insert("funding_ticks", batch.funding_ticks)
            self._insert("liquidations", batch.liquidations)
            self._upsert("candles", (batch.candles[k] for k in sorted(batch.candles)))
            self._insert("parameters", batch.parameters)
            values = {**(meta or {}), "indexed_height": str(batch.height)}
            self._upsert("meta", ({"key": k, "value": v} for k, v in sorted(values.items())))

    def prune_idle_orders(self, below_height: int) -> int:
        with self._transaction():
            found = self._execute("SELECT COUNT(*) FROM orders WHERE status IN ('cancelled', 'expired') AND filled = 0 "
                                  "AND updated_height < ?", (below_height,))
            self._execute("DELETE FROM orders WHERE status IN ('cancelled', 'expired') AND filled = 0 "
                          "AND updated_height < ?", (below_height,))
        return int(found[0][0])

    # ---------------------------------------------------------------- queries
    def orders(self, owner: str | None = None, number: int | None = None, market: str | None = None,
               status: str | None = None, limit: int = 100, before: int | None = None) -> list[dict]:
        where, params = _filters(owner=owner, number=number, market=market, status=status)
        if before is not None:
            where = " AND ".join(filter(None, [where, "order_id < ?"]))
            params.append(before)
        return self._select("orders", where, params, order="order_id DESC", limit=limit)

    def fills(self, market: str | None = None, owner: str | None = None, since_height: int = 0,
              limit: int = 100, after: tuple[int, int] | None = None,
              before: tuple[int, int] | None = None) -> list[dict]:
        where, params = _filters(market=market)
        clauses = [where] if where else []
        clauses.append("height >= ?")
        params.append(since_height)
        if owner is not None:
            clauses.append("(taker_owner = ? OR maker_owner = ?)")
            params += [owner, owner]
        where, params = _before(*_after(" AND ".join(clauses), params, after), before)
        return self._select("fills", where, params, order=_order(before), limit=limit)

    def positions_history(self, owner: str, number: int, market: str | None = None) -> list[dict]:
        where, params = _filters(owner=owner, number=number, market=market)
        return self._select("position_changes", where, params, order="height, seq, market")

    def positions(self, owner: str | None = None, number: int | None = None) -> list[dict]:
        where, params = _filters(owner=owner, number=number)
        rows = self._select("positions", where, params, order="owner, number, market")
        return [row for row in rows if row["size"] != 0]  # amounts are not compared in SQL (module docstring)

    def funding_payments(self, owner: str | None = None, number: int | None = None,
                         market: str | None = None, limit: int | None = None,
                         after: tuple[int, int] | None = None, before: tuple[int, int] | None = None) -> list[dict]:
        where, params = _filters(owner=owner, number=number)
        if market is not None:  # ``markets`` is a comma-separated list of tickers (which never hold commas)
            where = " AND ".join(filter(None, [where, "(',' || markets || ',') LIKE ?"]))
            params.append(f"%,{market},%")
        where, params = _before(*_after(where, params, after), before)
        return self._select("funding_payments", where, params, order=_order(before), limit=limit)

    def funding_ticks(self, market: str | None = None, limit: int | None = None,
                      after: tuple[int, int] | None = None, before: tuple[int, int] | None = None) -> list[dict]:
        where, params = _before(*_after(*_filters(market=market), after), before)
        return self._select("funding_ticks", where, params, order=_order(before), limit=limit)

    def liquidations(self, market: str | None = None, owner: str | None = None, limit: int | None = None,
                     after: tuple[int, int] | None = None) -> list[dict]:
        where, params = _after(*_filters(market=market, owner=owner), after)
        return self._select("liquidations", where, params, order="height, seq", limit=limit)

    def candles(self, market: str, resolution: str, start_ms: int | None = None,
                end_ms: int | None = None) -> list[dict]:
        if resolution not in RESOLUTIONS:
            raise ValueError(f"unknown resolution {resolution!r}; one of {', '.join(RESOLUTIONS)}")
        where, params = _filters(market=market, resolution=resolution)
        if start_ms is not None:
            where += " AND start_ms >= ?"
            params.append(start_ms)
        if end_ms is not None:
            where += " AND start_ms < ?"
            params.append(end_ms)
        return self._select("candles", where, params, order="start_ms")

    def parameter_history(self, name: str | None = None) -> list[dict]:
        where, params = _filters(name=name)
        return self._select("parameters", where, params, order="height, seq, name")


def _after(where: str, params: list[Any], after: tuple[int, int] | None) -> tuple[str, list[Any]]:
    """``where`` narrowed to rows after ``after`` = (height, seq) in (height, seq) order (keyset paging)."""
    if after is None:
        return where, params
    clause = "(height > ? OR (height = ? AND seq > ?))"
    return " AND ".join(filter(None, [where, clause])), [*params, after[0], after[0], after[1]]


def _before(where: str, params: list[Any], before: tuple[int, int] | None) -> tuple[str, list[Any]]:
    """``where`` narrowed to rows before ``before`` = (height, seq): the pages of a history read
    newest first (``_order``); ``(H + 1, 0)`` pages from the newest row at or below height H."""
    if before is None:
        return where, params
    clause = "(height < ? OR (height = ? AND seq < ?))"
    return " AND ".join(filter(None, [where, clause])), [*params, before[0], before[0], before[1]]


def _order(before: tuple[int, int] | None) -> str:
    """Oldest first, or newest first when paging backwards (``before``)."""
    return "height, seq" if before is None else "height DESC, seq DESC"


def _filters(**equal: Any) -> tuple[str, list[Any]]:
    """``col = ?`` clauses for the arguments that are not None."""
    pairs = [(column, value) for column, value in equal.items() if value is not None]
    return " AND ".join(f"{column} = ?" for column, _ in pairs), [value for _, value in pairs]


class SqliteReadModels(SqlReadModels):
    """SQLite (stdlib), WAL. ``synchronous=NORMAL``: a power loss may drop the last indexed blocks,
    never corrupt the file, and the node re-indexes them from its block log on start-up."""

    placeholder = "?"
    amount_type = ""  # no declared type: no affinity, so big integers are kept exactly (as text)

    def __init__(self, path: str) -> None:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        super().__init__(db)

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        return sqlite_transaction(self.db)

    def _bind_amount(self, value: int | None) -> Any:
        if value is None or _INT64_MIN <= value <= _INT64_MAX:
            return value
        return str(value)

    def close(self) -> None:
        self.db.close()


class PostgresReadModels(SqlReadModels):
    """PostgreSQL through psycopg 3: autocommit for reads, one explicit transaction per write."""

    placeholder = "%s"
    amount_type = "NUMERIC"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - depends on the installed extras
            raise ReadModelsError("PostgreSQL read models need psycopg: pip install 'bastion[postgres]'") from None
        super().__init__(psycopg.connect(url, autocommit=True))

    def _transaction(self) -> Any:
        return self.db.transaction()

    def close(self) -> None:
        self.db.close()


def open_read_models(url: str) -> ReadModels:
    """Open (and create if needed) the read models a URL names; see the module docstring."""
    if url.startswith("sqlite:///"):
        return SqliteReadModels(url[len("sqlite:///"):])
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresReadModels(url)
    raise ReadModelsError(f"unsupported read-model URL {url!r}: use sqlite:///PATH or postgresql://...")
