"""The durable block log: the node's source of truth (DESIGN.md section 1).

One SQLite file (``DIR/blocks.db``) in WAL mode with ``synchronous=FULL``: a block is written in one
transaction and is durable when ``append`` returns; only then does the node report its
transactions as committed ("acknowledged"). State is a replay of this log; snapshots only make the
replay shorter.

Tables:
    meta      key/value: format version, chain id, the genesis document and its state hash
    blocks    height, time_ms, prev_hash, tx_root, results_root, events_root, state_hash, block_hash,
              and three blobs: txs (compact JSON list of [sender, nonce, arrival, msg]), results
              and events (compact JSON lists), each stored zlib-compressed (level 1: about 8x smaller
              for 1 ms per block of 1,000 orders; the roots hash the uncompressed JSON)
    tx_index  (sender, nonce) -> (height, index): single use of a nonce, and lookup by sender/nonce.
              Its primary key is ordered (nonce, sender): nonces that count up (the SDK's are
              microsecond times) then land at the end of the B-tree, so a block dirties a few pages
              instead of one per sender (its write took a third of the time at 300,000 rows). Logs created
              before are keyed (sender, nonce); every statement reads and writes both alike, so
              this is not a new format.

Integrity: each root is the SHA-256 of its blob, and ``block_hash`` is the SHA-256 of the header
(height, time, previous block hash, the three roots, the state hash), chained from the genesis
hash. ``verify_block`` recomputes a block's roots and link (a bit flipped anywhere in a block, a
block lost from the middle or a tail that does not follow is reported with its height) and returns
its transactions decoded, so that the replay (``bastion.node.replay``) reads each body once;
``check_tx_index`` finds a head block cut off with its transactions still indexed. SQLite's own
journal makes a torn write invisible, and ``PRAGMA quick_check`` runs at open.

JSON: the bodies are the bytes of the standard library's compact, ASCII-escaped encoding
(``json.dumps(..., separators=(",", ":"), ensure_ascii=True)``), in the values' key order.
``json_bytes`` produces exactly those bytes with orjson (several times faster) and, member by
member, the standard library's for the parts where orjson's bytes would differ: non-ASCII text
and DEL (orjson writes them raw, the standard library escapes them), lone surrogates and integers
beyond 64 bits (orjson refuses them). The values are JSON from envelopes and from the state
machine: ints, strings, booleans, null, lists and objects, never floats (``decode_message``
refuses them and the core has none), so the rule is complete. ``json_value`` reads with orjson
unless a number of 19 digits or more may be beyond 64 bits (orjson would read a float) or orjson
refuses the text. The format is unchanged: logs written before orjson verify and replay, and the
other way round.

Writing is in two steps so the node can pipeline it: ``seal_block`` (encoding, roots, the
header hash: done by the producer, which knows the previous block's hash) and ``BlockLog.write``
(compression and the one SQLite transaction with its fsync: done by the node's writer thread on its
own connection; zlib and sqlite3 release the GIL). ``append`` does both.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

FORMAT = "bastion-blocklog/1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    tx_root TEXT NOT NULL,
    results_root TEXT NOT NULL,
    events_root TEXT NOT NULL,
    state_hash TEXT NOT NULL,
    block_hash TEXT NOT NULL,
    tx_count INTEGER NOT NULL,
    txs BLOB NOT NULL,
    results BLOB NOT NULL,
    events BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tx_index (
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (nonce, sender)
) WITHOUT ROWID;
"""


# A block's tx_index rows in one statement, from the JSON list of its transactions' [sender, nonce]:
# SQLite's json_each does in C what ``executemany`` does with a return to Python per row (6x slower,
# and each return is a GIL hand-over with the producer for a writer thread).
_INDEX_TXS = """INSERT INTO tx_index (sender, nonce, height, idx)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), ?, key FROM json_each(?)"""


# The height of the newest block ever written, in the block's own transaction: a log whose tail was
# cut off afterwards is caught by it (``BlockLog.rollback_evidence``)
_HIGH_WATER = """INSERT INTO meta (key, value) VALUES ('high_water', ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value"""


class LogCorrupted(Exception):
    """The log does not verify; ``height`` is the first block that fails (or 0 for the metadata)."""

    def __init__(self, height: int, reason: str) -> None:
        super().__init__(f"block log corrupted at height {height}: {reason}")
        self.height = height
        self.reason = reason


class LogRolledBack(LogCorrupted):
    """The log ends at ``head_height`` but other records (``evidence``: what -> height) prove it
    reached ``proven_height``: its tail, with acknowledged transactions, was lost or cut off."""

    def __init__(self, head_height: int, proven_height: int, evidence: dict[str, int]) -> None:
        sources = ", ".join(f"{what} at height {height}" for what, height in sorted(evidence.items()))
        super().__init__(proven_height, f"the log ends at block {head_height} but it reached block {proven_height} "
                         f"({sources}): {proven_height - head_height} blocks and the transactions acknowledged in "
                         "them are missing; restore the log, or start with --accept-rollback to continue from "
                         f"block {head_height}")
        self.head_height, self.proven_height, self.evidence = head_height, proven_height, evidence


def canonical(value: Any) -> bytes:
    """Compact JSON with sorted keys: the encoding of the genesis and of block headers."""
    return json_bytes(value, sort_keys=True)


_stdlib_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, check_circular=False).encode
_stdlib_sorted = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, check_circular=False,
                                  sort_keys=True).encode
# A number of 19 digits or more (maybe beyond 64 bits: 2**63 has 19) where compact JSON puts one; the
# same bytes inside a string only send the text to the standard library, slower but exact
_BIG_NUMBER = re.compile(rb"(?:^|[\[,:])-?[0-9]{19}")


def json_bytes(value: Any, *, sort_keys: bool = False) -> bytes:
    """The standard library's compact ASCII JSON of ``value`` (keys sorted with ``sort_keys``),
    byte for byte, computed with orjson wherever its bytes are the same (see the module docstring):
    an object or a list that orjson cannot encode so is encoded member by member, so that only the
    smallest parts holding such a value (a 21 MB snapshot holds a few big integers) go through the
    standard library."""
    try:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a non-string key
        data = None
    if data is not None and data.isascii() and b"\x7f" not in data:
        return data
    if type(value) is dict and all(type(key) is str for key in value):
        items = sorted(value.items()) if sort_keys else value.items()  # as the standard library sorts
        return b"{" + b",".join(json_bytes(key) + b":" + json_bytes(member, sort_keys=sort_keys)
                                for key, member in items) + b"}"
    if type(value) in (list, tuple):
        return b"[" + b",".join(json_bytes(member, sort_keys=sort_keys) for member in value) + b"]"
    return (_stdlib_sorted if sort_keys else _stdlib_compact)(value).encode()


def json_value(data: bytes) -> Any:
    """Parse JSON bytes (a body of the log, a snapshot): orjson, unless the text may hold an integer
    of 19 digits or more (orjson reads one beyond 64 bits as a float) or orjson refuses it (a lone
    surrogate escape, which ``json_bytes`` writes for such a string): then the standard library."""
    if _BIG_NUMBER.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def compact(value: Any) -> bytes:
    """Compact JSON in the values' own key order: the encoding of block bodies. Results and events
    are built by the state machine with a fixed key order, so a replay encodes them to the same
    bytes; transactions are hashed as they were written."""
    return json_bytes(value)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def header_hash(height: int, time_ms: int, prev_hash: str, tx_root: str, results_root: str, events_root: str,
                state_hash: str) -> str:
    return sha256(canonical([height, time_ms, prev_hash, tx_root, results_root, events_root, state_hash]))


@dataclass(frozen=True, slots=True)
class Tx:
    """A transaction as ordered into a block: who, their single-use nonce, the arrival number the
    mempool gave it, and the message's JSON object (validated by ``check_tx``)."""

    sender: str
    nonce: int
    arrival: int
    msg: dict[str, Any]


@dataclass(slots=True)
class LoggedBlock:
    """A block as the log holds it (blobs zlib-compressed; a ``SealedBlock``'s are not yet). ``txs``,
    ``results`` and ``events`` decode the blobs only when read: replay needs only the transactions."""

    height: int
    time_ms: int
    prev_hash: str
    tx_root: str
    results_root: str
    events_root: str
    state_hash: str
    block_hash: str
    tx_count: int
    txs_blob: bytes
    results_blob: bytes
    events_blob: bytes

    @property
    def txs(self) -> list[Tx]:
        return decode_txs(_inflate(self.txs_blob))

    @property
    def results(self) -> list[dict]:
        return json_value(_inflate(self.results_blob))

    @property
    def events(self) -> list[dict]:
        return json_value(_inflate(self.events_blob))


def _inflate(blob: bytes) -> bytes:
    return zlib.decompress(blob)


def decode_txs(body: bytes) -> list[Tx]:
    """The transactions of an (inflated) ``txs`` body, through ``json_value``."""
    return [Tx(sender, nonce, arrival, msg) for sender, nonce, arrival, msg in json_value(body)]


@dataclass(frozen=True, slots=True)
class SealedBlock:
    """A block ready to be written: ``block`` as it will be logged except that its three blobs are
    still the uncompressed JSON bodies (the bytes the roots hash; ``BlockLog.write`` compresses
    them), its transactions, and their tx_index keys as JSON (``[[sender, nonce], ...]``)."""

    block: LoggedBlock
    txs: list[Tx]
    tx_keys_json: bytes


def seal_block(height: int, time_ms: int, prev_hash: str, txs: list[Tx], results: list[dict], events: list[dict],
               state_hash: str) -> SealedBlock:
    """Encode a block's bodies and compute its roots and its hash (linked to ``prev_hash``)."""
    txs_json = compact([[tx.sender, tx.nonce, tx.arrival, tx.msg] for tx in txs])
    results_json, events_json = compact(results), compact(events)
    tx_root, results_root, events_root = sha256(txs_json), sha256(results_json), sha256(events_json)
    block_hash = header_hash(height, time_ms, prev_hash, tx_root, results_root, events_root, state_hash)
    block = LoggedBlock(height, time_ms, prev_hash, tx_root, results_root, events_root, state_hash, block_hash,
                        len(txs), txs_json, results_json, events_json)
    return SealedBlock(block, txs, compact([[tx.sender, tx.nonce] for tx in txs]))


class BlockLog:
    """Append-only block log in one SQLite file. Not thread-safe: one connection per thread (the
    node writes through its writer thread's own ``BlockLog`` and reads through another)."""

    def __init__(self, path: str | Path, *, quick_check: bool = True) -> None:
        """``quick_check=False`` skips ``PRAGMA quick_check`` (for the replay's worker processes: the
        process that started them checked the file)."""
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            check = self.db.execute("PRAGMA quick_check").fetchone()[0] if quick_check else "ok"
        except sqlite3.DatabaseError as error:  # a damaged file: not a database, malformed pages...
            self.db.close()
            raise LogCorrupted(0, f"the SQLite file is damaged ({error})") from error
        if check != "ok":
            self.db.close()
            raise LogCorrupted(0, f"SQLite quick_check: {check}")

    def close(self) -> None:
        self.db.close()

    # -- genesis
    def init_genesis(self, genesis: dict[str, Any], genesis_state_hash: str) -> None:
        """Record the chain's genesis (once); a log opened with another genesis is refused."""
        stored = self.meta("genesis")
        text = canonical(genesis).decode()
        if stored is None:
            with self._transaction():
                for key, value in (("format", FORMAT), ("genesis", text), ("genesis_state_hash", genesis_state_hash),
                                   ("chain_id", str(genesis.get("chain_id", "")))):
                    self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
        elif stored != text or self.meta("genesis_state_hash") != genesis_state_hash:
            raise LogCorrupted(0, "the log belongs to another genesis")

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def genesis(self) -> dict[str, Any] | None:
        text = self.meta("genesis")
        return None if text is None else json_value(text.encode())

    def genesis_hash(self) -> str:
        """The hash that block 1's ``prev_hash`` links to: the genesis document and its state hash."""
        return sha256(canonical([self.meta("genesis"), self.meta("genesis_state_hash")]))

    # -- writing
    def append(self, height: int, time_ms: int, txs: list[Tx], results: list[dict], events: list[dict],
               state_hash: str) -> LoggedBlock:
        """Seal and write one block durably (one transaction, fsync'd by ``synchronous=FULL``)."""
        head = self.head()
        prev_hash = self.genesis_hash() if head is None else head.block_hash
        return self.write(seal_block(height, time_ms, prev_hash, txs, results, events, state_hash))

    def write(self, sealed: SealedBlock) -> LoggedBlock:
        """Compress a sealed block and write it in one transaction, fsync'd by ``synchronous=FULL``:
        durable when this returns. Refused (``ValueError``) unless it follows the log's head."""
        head = self.head()
        expected = 1 if head is None else head.height + 1
        if sealed.block.height != expected:
            raise ValueError(f"block {sealed.block.height} does not follow the log's head (expected {expected})")
        if sealed.block.prev_hash != (self.genesis_hash() if head is None else head.block_hash):
            raise ValueError(f"block {sealed.block.height} does not link to the log's head")
        compressed: dict[str, Any] = {name: zlib.compress(getattr(sealed.block, name), 1)
                                      for name in ("txs_blob", "results_blob", "events_blob")}
        block = dataclasses.replace(sealed.block, **compressed)
        with self._transaction():
            self.db.execute("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            dataclasses.astuple(block))
            self.db.execute(_INDEX_TXS, (block.height, sealed.tx_keys_json))
            self.db.execute(_HIGH_WATER, (str(block.height),))
        return block

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        return sqlite_transaction(self.db)

    # -- reading
    def head(self) -> LoggedBlock | None:
        row = self.db.execute("SELECT * FROM blocks ORDER BY height DESC LIMIT 1").fetchone()
        return None if row is None else LoggedBlock(*row)

    def block(self, height: int) -> LoggedBlock | None:
        row = self.db.execute("SELECT * FROM blocks WHERE height = ?", (height,)).fetchone()
        return None if row is None else LoggedBlock(*row)

    def iter_blocks(self, start_height: int = 1, batch: int = 256) -> Iterator[LoggedBlock]:
        """Blocks from ``start_height`` upward, in order, read in batches."""
        height = start_height
        while True:
            rows = self.db.execute("SELECT * FROM blocks WHERE height >= ? ORDER BY height LIMIT ?",
                                   (height, batch)).fetchall()
            if not rows:
                return
            for row in rows:
                yield LoggedBlock(*row)
            height = rows[-1][0] + 1

    def find_tx(self, sender: str, nonce: int) -> tuple[int, int] | None:
        """(height, index) of the committed transaction with this sender and nonce, if any."""
        row = self.db.execute("SELECT height, idx FROM tx_index WHERE sender = ? AND nonce = ?",
                              (sender, nonce)).fetchone()
        return None if row is None else (row[0], row[1])

    def max_nonces(self) -> dict[str, int]:
        """Every sender's highest committed nonce (for a restarted mempool)."""
        return dict(self.db.execute("SELECT sender, MAX(nonce) FROM tx_index GROUP BY sender").fetchall())

    def tx_counts(self, start_height: int = 1) -> list[tuple[int, int]]:
        """(height, transaction count) of every block from ``start_height`` (headers only)."""
        return self.db.execute("SELECT height, tx_count FROM blocks WHERE height >= ? ORDER BY height",
                               (start_height,)).fetchall()

    # -- integrity
    def verify_block(self, block: LoggedBlock, prev_hash: str, expected_height: int) -> list[Tx]:
        """Raise ``LogCorrupted`` unless the block follows ``prev_hash`` and matches its own roots;
        returns its transactions, decoded once for the caller (the replay)."""
        if block.height != expected_height:
            raise LogCorrupted(expected_height, f"block {expected_height} is missing (found {block.height})")
        if block.prev_hash != prev_hash:
            raise LogCorrupted(block.height, "does not link to the previous block")
        bodies = []
        for name, blob, root in (("txs", block.txs_blob, block.tx_root), ("results", block.results_blob,
                                 block.results_root), ("events", block.events_blob, block.events_root)):
            try:
                body = _inflate(blob)
            except zlib.error:
                body = None
            if body is None or sha256(body) != root:
                raise LogCorrupted(block.height, f"{name} do not match their root")
            bodies.append(body)
        if header_hash(block.height, block.time_ms, block.prev_hash, block.tx_root, block.results_root,
                       block.events_root, block.state_hash) != block.block_hash:
            raise LogCorrupted(block.height, "header does not match its hash")
        txs = decode_txs(bodies[0])
        if len(txs) != block.tx_count:
            raise LogCorrupted(block.height, "transaction count does not match")
        return txs

    def verify_headers(self, end_height: int) -> None:
        """Raise ``LogCorrupted`` unless blocks 1..``end_height`` are all there, each header matches
        its hash, links to the previous block's hash (block 1 to the genesis hash) and has a time no
        earlier than the previous one. Reads the headers only (no body is inflated): the cheap
        whole-chain check of every start-up; the bodies are verified where they are replayed."""
        prev_hash, expected, previous_ms = self.genesis_hash(), 1, None
        rows = self.db.execute("SELECT height, time_ms, prev_hash, tx_root, results_root, events_root, state_hash, "
                               "block_hash FROM blocks WHERE height <= ? ORDER BY height", (end_height,))
        for height, time_ms, prev, tx_root, results_root, events_root, state_hash, block_hash in rows:
            if height != expected:
                raise LogCorrupted(expected, f"block {expected} is missing (found {height})")
            if prev != prev_hash:
                raise LogCorrupted(height, "does not link to the previous block")
            if header_hash(height, time_ms, prev, tx_root, results_root, events_root, state_hash) != block_hash:
                raise LogCorrupted(height, "header does not match its hash")
            if previous_ms is not None and time_ms < previous_ms:
                raise LogCorrupted(height, "block time goes backwards")
            prev_hash, expected, previous_ms = block_hash, height + 1, time_ms
        if expected <= end_height:
            raise LogCorrupted(expected, f"block {expected} is missing")

    def rollback_evidence(self) -> dict[str, int]:
        """The heights this file's own records prove the log reached: the newest transaction index
        entry and the high-water mark every write records (``meta.high_water``)."""
        evidence = {}
        indexed = self.db.execute("SELECT MAX(height) FROM tx_index").fetchone()[0]
        if indexed is not None:
            evidence["tx_index"] = int(indexed)
        high_water = self.meta("high_water")
        if high_water is not None and high_water.isdigit():
            evidence["meta high_water"] = int(high_water)
        return evidence

    def forget_after(self, height: int) -> None:
        """After an accepted rollback: drop the transaction index entries above ``height`` (their
        nonces are free again) and lower the high-water mark to it."""
        with self._transaction():
            self.db.execute("DELETE FROM tx_index WHERE height > ?", (height,))
            self.db.execute(_HIGH_WATER, (str(height),))

    def check_tx_index(self, start_height: int, head_height: int) -> None:
        """Raise ``LogCorrupted`` (at ``head_height``) unless the transaction index holds exactly one
        entry per logged transaction of blocks ``start_height``..``head_height`` (entries above the
        head, left by a tail cut off, are ``rollback_evidence``)."""
        indexed = self.db.execute("SELECT COUNT(*) FROM tx_index WHERE height BETWEEN ? AND ?",
                                  (start_height, head_height)).fetchone()[0]
        logged = self.db.execute("SELECT COALESCE(SUM(tx_count), 0) FROM blocks WHERE height >= ?",
                                 (start_height,)).fetchone()[0]
        if indexed != logged:
            raise LogCorrupted(head_height, f"transaction index has {indexed} entries for {logged} transactions")


@contextlib.contextmanager
def sqlite_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on an autocommit connection: ``BEGIN IMMEDIATE`` ... ``COMMIT``
    (``ROLLBACK`` and re-raise on error). Used by the block log and the SQLite read models."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
