"""The indexer: committed blocks' events in, read-model rows out (``bastion.node.readmodels``).

    indexer = Indexer(open_read_models("sqlite:///data/read.db"), genesis_doc)
    for block in block_log.iter_blocks(indexer.indexed_height() + 1):
        indexer.apply_block(block)          # anything with .height, .time_ms, .events

Rules:

* Rows come only from events (and, at height 0, from the genesis document, which gives the
  markets' grids, the genesis positions and the governed parameters). The live state machine is
  never read.
* One database transaction per block. A block at or below ``indexed_height()`` is ignored, so the
  node can replay its whole log into the indexer after a crash; a gap (block ``h`` when the read
  models are at ``h - 2``) raises ``ReadModelsError``. Read models made from another genesis raise
  too (the genesis state hash is kept in ``meta``).
* Events are applied in their order in the block. Unknown event types are ignored, so a newer core
  can run against an older indexer (it simply does not index what it does not know).

What each event does (``_BlockIndexer.on_*``):

    order_accepted               row created with the full terms of a fresh order that crosses the book
    order_placed                 row created or updated: resting, remaining = its size
    conditional_order_placed     row created: untriggered, with all its terms
    conditional_order_triggered  triggered (then its fills / order_placed / order_cancelled follow)
    conditional_order_failed     failed, reason = the error code
    order_cancelled              cancelled (expired when the reason is "expired"), remaining 0
    order_modified               an order reduced in place: its size and remaining shrink (a replaced
                                 order is cancelled, reason "modified", and its successor placed)
    agent_acted                  the next order the agent's place_order creates (its first order event),
                                 or its modify_order's replacement (``new_order_id``), gets ``agent``:
                                 the envelope signer that placed it for the owner
    self_trade_decrement         the maker's remaining shrinks; lots counted in the taker's size
    fill                         fills row, both orders, both positions, the candles
    liquidation, deleveraging, bad_debt, liquidation_incomplete, backstop_takeover, backstop_refused,
    backstop_unwind              liquidations row; deleveraging, bad_debt and backstop_takeover also move
                                 positions (a liquidation's or an unwind's position change is its fill
                                 event's); the backstop of pool P is the subaccount ("backstop:P", 0)
    final_settlement             the position closes
    funding_payment, funding_tick
                                 funding rows
    param_changed                parameters row (below)
    market_listed                the new market's grid, and a parameters row for each of its initial values
                                 (``markets.<ticker>.size_decimals`` and ``.price_decimals`` too: the grids of
                                 listed markets are read back from them when the indexer restarts)

A fresh order that crosses the book announces its terms (``order_accepted``) before its fills; one
that does not cross rests at once (``order_placed``); a triggered conditional order's terms come
from its ``conditional_order_placed``. A taker that still has status "taking" at the end of its
block was filled completely. (Read models indexed before ``order_accepted`` existed have takers
whose size is rebuilt from fills, self-trade decrements and the remainder, with no price or type.)

The ``param_changed`` event (for governance, a later issue) is::

    {"type": "param_changed", "name": "liquidation.max_liquidation_fee_ppm", "value": 20000,
     "height": 1234, "proposal_id": "9f2c...e1"}

``name`` is a dotted path as in ``genesis_parameters`` (``funding.*``, ``fees.*``,
``liquidation.*``, ``order_limits.*`` (``open_order_tiers``: a list of [min equity, max open orders]), ``bot_limits.*``,
``liquidity_tiers.<id>.*``, ``markets.<ticker>.*``, ``markets.<ticker>.oracle.*``),
``value`` an int in the unit its name carries (or a string, e.g. a market status), ``height`` the
block that applies it (the row takes the block's height when the event has none), ``proposal_id``
the proposal that decided it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import Any, Protocol

from bastion.core.genesis import build_state
from bastion.core.liquidation import BACKSTOP_PREFIX
from bastion.core.state import State
from bastion.node.readmodels import RESOLUTIONS, BlockBatch, ReadModels, ReadModelsError
from bastion.risk_model import notional

__all__ = ["Indexer", "IndexedBlock", "genesis_parameters"]


class IndexedBlock(Protocol):
    """What the indexer needs of a block: a ``BlockResult`` or the node's logged block."""

    height: int
    time_ms: int

    @property
    def events(self) -> list[dict]: ...


# ------------------------------------------------------------------------------------ genesis
def genesis_parameters(state: State) -> dict[str, int | str]:
    """The governed parameters of a genesis state, by dotted name (see the module docstring)."""
    params: dict[str, int | str] = {}
    for group, obj in (("funding", state.funding), ("fees", state.fees), ("liquidation", state.liquidation),
                       ("order_limits", state.order_limits), ("bot_limits", state.bot_limits),
                       ("insurance_staking", state.insurance_staking)):
        for f in dataclasses.fields(obj):
            params[f"{group}.{f.name}"] = getattr(obj, f.name)
    for tier_id, tier in state.tiers.items():
        for f in dataclasses.fields(tier):
            if f.name != "tier_id":
                params[f"liquidity_tiers.{tier_id}.{f.name}"] = getattr(tier, f.name)
    for ticker, market in state.markets.items():
        for name in ("tier_id", "min_order_lots", "max_order_lots", "max_open_interest_lots", "maker_fee_ppm",
                     "taker_fee_ppm", "isolated_only", "status"):
            value = getattr(market, name)
            params[f"markets.{ticker}.{name}"] = int(value) if isinstance(value, bool) else value
        for f in dataclasses.fields(market.oracle_params):
            params[f"markets.{ticker}.oracle.{f.name}"] = getattr(market.oracle_params, f.name)
    return dict(sorted(params.items()))


def _listed_grids(read_models: ReadModels) -> dict[str, tuple[int, int]]:
    """The grids of the markets listed after genesis, from their ``market_listed`` parameter rows."""
    decimals: dict[tuple[str, str], int] = {}
    for row in read_models.parameter_history():
        ticker, _, kind = row["name"].removeprefix("markets.").rpartition(".")
        if row["name"].startswith("markets.") and kind in ("size_decimals", "price_decimals"):
            decimals[(ticker, kind)] = row["value"]
    return {ticker: (value, decimals[(ticker, "price_decimals")])
            for (ticker, kind), value in decimals.items() if kind == "size_decimals"}


def _genesis_id(genesis_doc: dict, state: State) -> str:
    """Names the chain the read models belong to: the genesis state hash and the document's hash."""
    document = hashlib.sha256(json.dumps(genesis_doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"{state.state_hash}:{document}"


# ------------------------------------------------------------------------------------ the indexer
class Indexer:
    """Feeds committed blocks into a ``ReadModels``; indexes genesis (height 0) on first use."""

    def __init__(self, read_models: ReadModels, genesis_doc: dict) -> None:
        state = build_state(genesis_doc)  # a fresh genesis state: grids, genesis positions, parameters
        self.read_models = read_models
        self.grids = {t: (m.size_decimals, m.price_decimals) for t, m in state.markets.items()}
        genesis_id = _genesis_id(genesis_doc, state)
        stored = read_models.get_meta("genesis")
        if stored is None:
            read_models.write_block(_genesis_batch(state), meta={"genesis": genesis_id})
        elif stored != genesis_id:
            raise ReadModelsError("the read models were built from another genesis: drop them and re-index")
        self.grids.update(_listed_grids(read_models))

    def indexed_height(self) -> int:
        return self.read_models.indexed_height()

    def apply_block(self, block: IndexedBlock) -> bool:
        """Index one committed block; False (nothing done) if it is already indexed."""
        indexed = self.read_models.indexed_height()
        if block.height <= indexed:
            return False
        if block.height != indexed + 1:  # before its events, which may name orders of the missing blocks
            raise ReadModelsError(f"read models are at height {indexed}; cannot write block {block.height}")
        events = block.events
        builder = _BlockIndexer(self, block.height, block.time_ms, events)
        builder.run()
        self.read_models.write_block(builder.batch)
        return True


def _genesis_batch(state: State) -> BlockBatch:
    batch = BlockBatch(height=0)
    seq = 0
    for (owner, number), sub in sorted(state.subaccounts.items()):
        for ticker, position in sorted(sub.positions.items()):
            batch.positions[(owner, number, ticker)] = position.size
            batch.position_changes.append({"owner": owner, "number": number, "market": ticker, "height": 0,
                                           "seq": seq, "time_ms": state.time_ms, "cause": "genesis",
                                           "change": position.size, "size": position.size})
            seq += 1
    for name, value in genesis_parameters(state).items():
        batch.parameters.append({"name": name, "height": 0, "seq": 0, "value": value, "proposal_id": None})
    return batch


# ------------------------------------------------------------------------------------ one block
class _BlockIndexer:
    """Applies one block's events to the working rows it loaded, collecting a ``BlockBatch``."""

    def __init__(self, indexer: Indexer, height: int, time_ms: int, events: list[dict]) -> None:
        self.grids = indexer.grids
        self.read_models = indexer.read_models
        self.height, self.time_ms, self.events = height, time_ms, events
        self.batch = BlockBatch(height=height)
        self.orders: dict[int, dict] = {}
        self.positions: dict[tuple[str, int], dict[str, int]] = {}
        self.pending_decrements: dict[int, int] = {}  # taker order id -> lots decremented before its row exists
        # the agent key of the transaction whose events are being read (``agent_acted`` opens it): the
        # next order it creates is the agent's (a place_order's first order event, a modify's new id)
        self.acting_agent: dict[str, Any] | None = None
        self.agent_orders: dict[int, str] = {}  # order id -> the agent key that placed it (modify_order)
        self._touched_positions: dict[tuple[str, int, str], int] = {}
        self.seq = 0

    def run(self) -> None:
        self._load()
        for seq, event in enumerate(self.events):
            self.seq = seq
            handler = self.HANDLERS.get(event["type"])
            if handler is not None:
                handler(self, event)
        for row in self.orders.values():
            if row["status"] == "taking":  # a taker that neither rested nor left a remainder
                row["status"] = "filled" if row["filled"] else "cancelled"
                if not row["filled"]:
                    row["reason"] = "self_trade_decrement"
        self.batch.orders = {oid: row for oid, row in self.orders.items() if row["updated_height"] == self.height}
        for key, size in self._touched_positions.items():
            self.batch.positions[key] = size

    # ---------------------------------------------------------------- working rows
    def _load(self) -> None:
        order_ids: set[int] = set()
        subaccounts: set[tuple[str, int]] = set()
        candle_keys: set[tuple[str, str, int]] = set()
        for event in self.events:
            kind = event["type"]
            if "order_id" in event and event["order_id"] is not None:
                order_ids.add(event["order_id"])
            if kind == "fill":
                order_ids.update(side["order_id"] for side in (event["maker"], event["taker"])
                                 if side["order_id"] is not None)
                subaccounts.update((side["owner"], side["number"]) for side in (event["maker"], event["taker"]))
                for resolution, length in RESOLUTIONS.items():
                    candle_keys.add((event["market"], resolution, self.time_ms // length * length))
            elif kind == "self_trade_decrement":
                order_ids.add(event["taker_order_id"])
            elif kind in ("funding_payment", "deleveraging", "bad_debt", "final_settlement", "backstop_takeover"):
                subaccounts.add((event["owner"], event["number"]))
                if kind == "backstop_takeover":
                    subaccounts.add((BACKSTOP_PREFIX + event["pool"], 0))
                if kind == "deleveraging":
                    subaccounts.add((event["counterparty"]["owner"], event["counterparty"]["number"]))
                elif kind == "bad_debt":
                    subaccounts.update((share["owner"], share["number"]) for share in event["shares"])
        self.orders = self.read_models.load_orders(order_ids)
        self.positions = self.read_models.load_positions(subaccounts)
        self.batch.candles = self.read_models.load_candles(candle_keys)

    def _order(self, order_id: int, **identity: Any) -> dict:
        """The order's row, created (with ``identity``: market, owner, number, ...) if unknown."""
        row = self.orders.get(order_id)
        if row is None:
            row = {"order_id": order_id, "market": None, "owner": None, "number": None, "client_id": None,
                   "side": None, "order_type": None, "time_in_force": None, "reduce_only": None, "price": None,
                   "trigger_price": None, "size": self.pending_decrements.pop(order_id, 0), "filled": 0,
                   "remaining": 0, "status": "taking", "reason": None, "created_height": self.height,
                   "created_time_ms": self.time_ms, "triggered_height": None, "agent": None}
            self.orders[order_id] = row
        for name, value in identity.items():
            if value is not None:
                row[name] = value
        row["updated_height"] = self.height
        return row

    def _known_order(self, order_id: int) -> dict:
        """The row of an order an earlier event created (a resting maker, a conditional order)."""
        if order_id not in self.orders:
            raise ReadModelsError(f"block {self.height}, event {self.seq}: order {order_id} was never placed "
                                  "(read models not built from genesis?)")
        return self._order(order_id)

    def _is_new_taker(self, row: dict) -> bool:
        """True while an order is taking in its first block and its size is still being counted
        (a conditional order's size is known from its placement)."""
        return row["status"] == "taking" and row["order_type"] is None

    def _move_position(self, owner: str, number: int, market: str, change: int, cause: str) -> None:
        sizes = self.positions.setdefault((owner, number), {})
        size = sizes.get(market, 0) + change
        sizes[market] = size
        self._touched_positions[(owner, number, market)] = size
        self.batch.position_changes.append({"owner": owner, "number": number, "market": market,
                                            "height": self.height, "seq": self.seq, "time_ms": self.time_ms,
                                            "cause": cause, "change": change, "size": size})

    # ---------------------------------------------------------------- orders
    def on_agent_acted(self, event: dict) -> None:
        """An agent key's transaction for an owner: its events follow (a refused one has none)."""
        self.acting_agent = event if event["action"] in ("place_order", "modify_order") else None

    def _attribute(self, row: dict) -> None:
        """Record the agent key that placed ``row``'s order: the first order event after an agent's
        ``place_order`` names the order it placed (accepted, resting, cancelled as an IOC remainder, or
        conditional); a ``modify_order``'s replacement is named by its ``order_modified``."""
        agent = self.agent_orders.pop(row["order_id"], None)
        acting = self.acting_agent
        if agent is None and acting is not None and acting["action"] == "place_order" \
                and (acting["owner"], acting["number"]) == (row["owner"], row["number"]):
            agent, self.acting_agent = acting["agent"], None
        if agent is not None:
            row["agent"] = agent

    def on_order_placed(self, event: dict) -> None:
        row = self._order(event["order_id"], market=event["market"], owner=event["owner"], number=event["number"],
                          client_id=event["client_id"], side=event["side"], price=event["price"])
        self._attribute(row)
        if self._is_new_taker(row):
            row["size"] += event["size"]
        row["remaining"] = event["size"]
        row["status"] = "partially_filled" if row["filled"] else "open"

    def on_order_accepted(self, event: dict) -> None:
        """A fresh order that crosses the book: its full terms, before its fills."""
        row = self._order(event["order_id"], market=event["market"], owner=event["owner"], number=event["number"],
                          client_id=event["client_id"], side=event["side"], price=event["price"],
                          order_type=event["order_type"], time_in_force=event["time_in_force"],
                          reduce_only=int(event["reduce_only"]))
        self._attribute(row)
        row["size"] = event["size"]
        row["status"] = "taking"

    def on_conditional_order_placed(self, event: dict) -> None:
        row = self._order(event["order_id"], market=event["market"], owner=event["owner"], number=event["number"],
                          client_id=event["client_id"], side=event["side"], price=event["price"],
                          order_type=event["order_type"], time_in_force=event["time_in_force"],
                          reduce_only=int(event["reduce_only"]), trigger_price=event["trigger_price"])
        self._attribute(row)
        row["size"] = event["size"]
        row["remaining"] = event["size"]
        row["status"] = "untriggered"

    def on_conditional_order_triggered(self, event: dict) -> None:
        row = self._known_order(event["order_id"])
        row["status"] = "triggered"
        row["triggered_height"] = self.height
        row["remaining"] = 0  # until it rests (order_placed)

    def on_conditional_order_failed(self, event: dict) -> None:
        row = self._known_order(event["order_id"])
        row["status"] = "failed"
        row["reason"] = event["code"]
        row["remaining"] = 0

    def on_order_cancelled(self, event: dict) -> None:
        row = self._order(event["order_id"], market=event["market"], owner=event["owner"], number=event["number"],
                          client_id=event["client_id"])
        self._attribute(row)
        if self._is_new_taker(row):
            row["size"] += event["size"]
        row["remaining"] = 0
        row["status"] = "expired" if event["reason"] == "expired" else "cancelled"
        row["reason"] = event["reason"]

    def on_order_modified(self, event: dict) -> None:
        """A resting order reduced in place keeps its row (its size and remaining shrink); a replaced
        one is its ``order_cancelled`` and the new order's own events, which follow (an agent's
        replacement is the agent's order; a reduction in place keeps the row's own placer)."""
        acting = self.acting_agent
        if acting is not None and acting["action"] == "modify_order":
            self.acting_agent = None
            if not event["kept_priority"]:
                self.agent_orders[event["new_order_id"]] = acting["agent"]
        if event["kept_priority"]:
            row = self._known_order(event["order_id"])
            row["size"] -= event["old_size"] - event["size"]
            row["remaining"] = event["size"]

    def on_self_trade_decrement(self, event: dict) -> None:
        maker = self._known_order(event["order_id"])
        maker["remaining"] -= event["size"]
        if maker["remaining"] == 0:
            maker["status"] = "cancelled"
            maker["reason"] = "self_trade_decrement"
        taker_id = event["taker_order_id"]
        taker = self.orders.get(taker_id)
        if taker is None:
            self.pending_decrements[taker_id] = self.pending_decrements.get(taker_id, 0) + event["size"]
        elif self._is_new_taker(taker) or taker["status"] == "triggered":
            taker["status"] = "taking"
            if taker["order_type"] is None:
                taker["size"] += event["size"]
            taker["updated_height"] = self.height

    # ---------------------------------------------------------------- fills
    def on_fill(self, event: dict) -> None:
        market, price, lots = event["market"], event["price"], event["size"]
        maker, taker = event["maker"], event["taker"]
        liquidation = bool(event.get("liquidation"))
        size_decimals, price_decimals = self.grids[market]
        quote = notional(lots, price, size_decimals=size_decimals, price_decimals=price_decimals)
        self.batch.fills.append({
            "height": self.height, "seq": self.seq, "time_ms": self.time_ms, "market": market, "price": price,
            "size": lots, "quote": quote, "taker_side": event["taker_side"], "taker_owner": taker["owner"],
            "taker_number": taker["number"], "taker_order_id": taker["order_id"], "taker_fee": taker["fee"],
            "maker_owner": maker["owner"], "maker_number": maker["number"], "maker_order_id": maker["order_id"],
            "maker_fee": maker["fee"], "to_insurance": event["to_insurance"], "liquidation": int(liquidation)})
        # orders
        resting = self._known_order(maker["order_id"])
        resting["filled"] += lots
        resting["remaining"] -= lots
        resting["status"] = "filled" if resting["remaining"] == 0 else "partially_filled"
        if taker["order_id"] is not None:  # a liquidation order has none
            row = self._order(taker["order_id"], market=market, owner=taker["owner"], number=taker["number"],
                              side=event["taker_side"])
            if self._is_new_taker(row):
                row["size"] += lots
            row["filled"] += lots
            row["status"] = "taking"
        # positions
        taker_change = lots if event["taker_side"] == "buy" else -lots
        self._move_position(taker["owner"], taker["number"], market, taker_change,
                            "liquidation" if liquidation else "fill")
        self._move_position(maker["owner"], maker["number"], market, -taker_change, "fill")
        # candles
        for resolution, length in RESOLUTIONS.items():
            start = self.time_ms // length * length
            key = (market, resolution, start)
            candle = self.batch.candles.get(key)
            if candle is None:
                self.batch.candles[key] = {"market": market, "resolution": resolution, "start_ms": start,
                                           "open": price, "high": price, "low": price, "close": price,
                                           "volume_lots": lots, "volume_quote": quote, "trades": 1}
            else:
                candle["high"] = max(candle["high"], price)
                candle["low"] = min(candle["low"], price)
                candle["close"] = price
                candle["volume_lots"] += lots
                candle["volume_quote"] += quote
                candle["trades"] += 1

    # ---------------------------------------------------------------- liquidations
    def _liquidation_row(self, event: dict, *, size: int | None = None, price: int | None = None,
                         quote: int | None = None, amount: int | None = None, reason: str | None = None) -> None:
        detail = {k: v for k, v in event.items() if k != "type"}
        self.batch.liquidations.append({
            "height": self.height, "seq": self.seq, "time_ms": self.time_ms, "type": event["type"],
            "market": event["market"], "owner": event["owner"], "number": event["number"], "size": size,
            "price": price, "quote": quote, "amount": amount, "reason": reason, "detail": detail})

    def on_liquidation(self, event: dict) -> None:
        # ``size``: the lots of the position closed (its sign); the position moved with the fill event just before
        self._liquidation_row(event, size=event["size"], price=event["fill_price"], quote=event["fill_quote"],
                              amount=event["insurance_delta"])

    def on_liquidation_incomplete(self, event: dict) -> None:
        self._liquidation_row(event, size=event.get("attempted"), price=event.get("fillable_price"),
                              reason=event["reason"])

    def on_deleveraging(self, event: dict) -> None:
        # ``size`` is the part of the position closed (its sign); the counterparty takes it over
        self._liquidation_row(event, size=event["size"], price=event["oracle_price"], quote=event["bankruptcy_quote"])
        counterparty = event["counterparty"]
        self._move_position(event["owner"], event["number"], event["market"], -event["size"], "deleveraging")
        self._move_position(counterparty["owner"], counterparty["number"], event["market"], event["size"],
                            "deleveraging")

    def on_backstop_takeover(self, event: dict) -> None:
        # the pool's backstop takes the closed part of the position over at the oracle price
        self._liquidation_row(event, size=event["size"], price=event["oracle_price"], quote=event["received"],
                              amount=event["fund_delta"], reason=event["reason"])
        self._move_position(event["owner"], event["number"], event["market"], -event["size"], "backstop_takeover")
        self._move_position(BACKSTOP_PREFIX + event["pool"], 0, event["market"], event["size"], "backstop_takeover")

    def on_backstop_refused(self, event: dict) -> None:
        self._liquidation_row(event, size=event["size"], price=event["oracle_price"], amount=event["fund_delta"],
                              reason=event["reason"])

    def on_backstop_unwind(self, event: dict) -> None:
        # the row is the backstop's; its position moved with the fill event just before
        self._liquidation_row({**event, "owner": BACKSTOP_PREFIX + event["pool"], "number": 0}, size=event["size"],
                              price=event["price"], quote=event["quote"])

    def on_bad_debt(self, event: dict) -> None:
        self._liquidation_row(event, size=event["size"], price=event["oracle_price"], quote=event["bankruptcy_quote"],
                              amount=event["amount"])
        if event["size"] == 0:  # a flat account's deficit charged to balances: no position moves
            return
        direction = 1 if event["size"] > 0 else -1
        self._move_position(event["owner"], event["number"], event["market"], -event["size"], "bad_debt")
        for share in event["shares"]:
            self._move_position(share["owner"], share["number"], event["market"], direction * share["size"],
                                "bad_debt")

    def on_final_settlement(self, event: dict) -> None:
        self._move_position(event["owner"], event["number"], event["market"], -event["size"], "final_settlement")

    # ---------------------------------------------------------------- funding and parameters
    def on_funding_payment(self, event: dict) -> None:
        held = self.positions.get((event["owner"], event["number"]), {})
        self.batch.funding_payments.append({
            "height": self.height, "seq": self.seq, "time_ms": self.time_ms, "owner": event["owner"],
            "number": event["number"], "amount": event["amount"],
            "markets": ",".join(sorted(m for m, size in held.items() if size != 0))})

    def on_funding_tick(self, event: dict) -> None:
        self.batch.funding_ticks.append({
            "height": self.height, "seq": self.seq, "time_ms": self.time_ms, "market": event["market"],
            **{k: event[k] for k in ("rate_8h_ppm", "samples", "oracle_price", "elapsed_s", "index_delta",
                                     "funding_index")}})

    def on_param_changed(self, event: dict) -> None:
        value = event["value"]
        self.batch.parameters.append({"name": event["name"], "height": event.get("height", self.height),
                                      "seq": self.seq, "value": int(value) if isinstance(value, bool) else value,
                                      "proposal_id": event.get("proposal_id")})

    def on_market_listed(self, event: dict) -> None:
        ticker = event["market"]
        self.grids[ticker] = (event["size_decimals"], event["price_decimals"])
        values = {name: event[name] for name in ("size_decimals", "price_decimals", "tier_id", "min_order_lots",
                                                 "max_open_interest_lots", "maker_fee_ppm", "taker_fee_ppm", "status")}
        values["isolated_only"] = int(event["isolated_only"])
        values.update({f"oracle.{name}": value for name, value in event["oracle"].items()})
        self.batch.parameters.extend({"name": f"markets.{ticker}.{name}", "height": self.height, "seq": self.seq,
                                      "value": value, "proposal_id": event.get("proposal_id")}
                                     for name, value in sorted(values.items()))

    HANDLERS: dict[str, Callable[[_BlockIndexer, dict], None]] = {
        "order_accepted": on_order_accepted,
        "agent_acted": on_agent_acted,
        "order_placed": on_order_placed,
        "conditional_order_placed": on_conditional_order_placed,
        "conditional_order_triggered": on_conditional_order_triggered,
        "conditional_order_failed": on_conditional_order_failed,
        "order_cancelled": on_order_cancelled,
        "self_trade_decrement": on_self_trade_decrement,
        "order_modified": on_order_modified,
        "fill": on_fill,
        "liquidation": on_liquidation,
        "liquidation_incomplete": on_liquidation_incomplete,
        "deleveraging": on_deleveraging,
        "backstop_takeover": on_backstop_takeover,
        "backstop_refused": on_backstop_refused,
        "backstop_unwind": on_backstop_unwind,
        "bad_debt": on_bad_debt,
        "final_settlement": on_final_settlement,
        "funding_payment": on_funding_payment,
        "funding_tick": on_funding_tick,
        "param_changed": on_param_changed,
        "market_listed": on_market_listed,
    }
