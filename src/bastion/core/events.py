"""Typed events: every event the core emits, as a frozen dataclass whose fields carry their units.

An event records what a transaction or an end-of-block step did (a fill, a liquidation, a status
change...). Each kind is one class below, declared with ``@event(type_name, topic)``: a frozen
keyword-only dataclass; ``Event`` is the union of them all. A handler emits one with
``emit(events, OrderPlaced, market=..., ...)``: the type checker checks the fields as a call of
the class, and the event's JSON form is appended to the block's events.
The events of a block result, the node's log, replay, the API and scenario output are those JSON
dicts (the one serializer; ``to_json_dict`` gives the same dict from an event object), so typing
the events changed no byte of any of them.

**Units.** Every field's annotation names its unit: ``amount: Usdc`` is an integer of micro-USDC,
``price: Ticks`` a price on the market's tick grid, ``size: Lots`` a signed size in lots (see
``Unit`` for the whole list). The aliases are ``typing.Annotated`` types, so type checkers read
them as ``int``/``str``/``bool`` and ``units_of(type_name)`` reads the units back. A readers' tool
that formats an event (decimal strings on the market's grid) asks ``units_of`` instead of guessing
from key names; ``event_types(topic)`` lists the types of a topic (the WebSocket channels).

**The JSON form** (``to_json_dict``) is ``{"type": <type name>, <field>: <value>, ...}`` in the
fields' declaration order, with three rules:

* a field whose default is ``None`` is *left out* when it is None (``order_type`` of a cancelled
  conditional order, the flags ``liquidation``/``backstop`` of a fill...); a field without a
  default is always written, ``null`` included (``market`` of a platform-wide guardian pause);
* a nested record (``FillParty``..., a ``TypedDict``: already a dict) is written as it is, a
  tuple becomes a list;
* a trailing underscore is dropped from the key (``from_`` is written ``"from"``).

``from_json_dict`` is its inverse (it refuses an undeclared type, an unknown key or a missing
one): ``from_json_dict(to_json_dict(e)) == e`` and ``to_json_dict(from_json_dict(d)) == d``.

**Adding an event**: declare its class here (with ``@event`` and the units), emit it with
``emit(events, TheEvent, field=..., ...)`` naming the fields in declaration order;
``tests/test_events.py`` fails on an emitted type that is not declared, a field without a unit,
a class left out of ``Event`` and an emitter naming fields out of order or unknown ones.
"""
# no ``from __future__ import annotations``: the units are read from the live annotations
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Annotated, Any, ParamSpec, TypedDict, TypeVar, Union, dataclass_transform, get_args, get_origin

Events = list[dict[str, Any]]
"""The events of a block as they leave a handler: the JSON form of each event, in order."""


class Unit(StrEnum):
    """What an event field's value means (its unit, or its kind for non-numbers)."""

    USDC = "usdc"                    # integer micro-USDC (6 decimals)
    BGOV = "bgov"                    # integer BGOV base units (6 decimals)
    TICKS = "ticks"                  # a price on the market's tick grid (price_decimals); text: exact ratio
    LOTS = "lots"                    # a size on the market's lot grid (size_decimals), signed where a side is
    PPM = "ppm"                      # parts per million (rates, fees, margin fractions)
    FUNDING_INDEX = "funding_index"  # a funding index: ppm of micro-USDC per lot
    MS = "ms"                        # milliseconds: a block time (since the epoch) or a duration
    SECONDS = "s"                    # seconds (a duration)
    HEIGHT = "height"                # a block height
    COUNT = "count"                  # a plain number of things (sources, samples, approvals, decimals)
    ID = "id"                        # an identifier: order, client, proposal, rollout, tier, subaccount number
    ADDRESS = "address"              # an account address (0x + 40 hex digits, lower case)
    MARKET = "market"                # a market ticker
    POOL = "pool"                    # an insurance pool's name ("cross" or an isolated market's ticker)
    TEXT = "text"                    # a name from a fixed set (reason, side, status, scope...) or a message
    DECIMAL_TEXT = "decimal_text"    # a decimal number as text, as it was submitted
    RATIO = "ratio"                  # an exact dimensionless ratio as text ("7/2")
    HASH = "hash"                    # a hex digest
    FLAG = "flag"                    # a boolean
    PARAM = "param"                  # in the unit of the governed parameter the event names
    GATE = "gate"                    # in the unit of the rollout gate the event names


class Topic(StrEnum):
    """The part of the protocol an event belongs to (what the WebSocket channels select on)."""

    ACCOUNT = "account"            # deposits, withdrawals, transfers, margin settings, funding payments
    TRADING = "trading"            # orders and fills
    ORACLE = "oracle"              # submissions and aggregated prices
    FUNDING = "funding"            # funding ticks
    LIQUIDATION = "liquidation"    # liquidation, backstop, deleveraging, bad debt, final settlement
    GOVERNANCE = "governance"      # proposals, parameters, council, guardian, rollouts, executed actions
    VOTING_POWER = "voting_power"  # delegates' vote checkpoints (bookkeeping of every BGOV move)


# --------------------------------------------------------------------------------------- unit aliases
Usdc = Annotated[int, Unit.USDC]
Bgov = Annotated[int, Unit.BGOV]
Ticks = Annotated[int, Unit.TICKS]
Lots = Annotated[int, Unit.LOTS]
Ppm = Annotated[int, Unit.PPM]
FundingIndex = Annotated[int, Unit.FUNDING_INDEX]
Ms = Annotated[int, Unit.MS]
Seconds = Annotated[int, Unit.SECONDS]
Height = Annotated[int, Unit.HEIGHT]
Count = Annotated[int, Unit.COUNT]
Id = Annotated[int, Unit.ID]
TextId = Annotated[str, Unit.ID]           # a proposal id
Address = Annotated[str, Unit.ADDRESS]
Ticker = Annotated[str, Unit.MARKET]
Pool = Annotated[str, Unit.POOL]
Text = Annotated[str, Unit.TEXT]
DecimalText = Annotated[str, Unit.DECIMAL_TEXT]
ExactTicks = Annotated[str, Unit.TICKS]    # an exact fraction of ticks, as text
Ratio = Annotated[str, Unit.RATIO]
Hash = Annotated[str, Unit.HASH]
Flag = Annotated[bool, Unit.FLAG]
ParamValue = Annotated[Any, Unit.PARAM]    # int, decimal text, bool or list, as the parameter is
GateValue = Annotated[int, Unit.GATE]

T = TypeVar("T")
P = ParamSpec("P")
_UnionType = type(int | None)  # types.UnionType (the core imports no ``types``)

_EVENT_CLASSES: dict[str, type] = {}      # type name -> class, in declaration order
_TYPE_NAMES: dict[type, str] = {}
_TOPICS: dict[str, Topic] = {}
# per event class: its type name, {field: key} for the fields whose key differs (or None), the
# keys of its records, the keys of its tuples, and its keys left out when None
_Shape = tuple[str, dict[str, str] | None, tuple[str, ...], tuple[str, ...], tuple[str, ...]]
_SHAPES: dict[object, _Shape] = {}   # keyed by class
_RECORDS: set[type] = set()


def _unit_and_shape(annotation: Any) -> tuple[Unit | None, type | None, bool]:
    """A field annotation's unit, the record class it holds (None for a plain value) and whether it
    is a tuple (written as a JSON list)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extras = get_args(annotation)
        units = [x for x in extras if isinstance(x, Unit)]
        return (units[0] if units else None), None, False
    if origin in (Union, _UnionType):  # X | None: the unit of X
        for arg in get_args(annotation):
            if arg is not type(None):
                return _unit_and_shape(arg)
    if origin is tuple:
        unit, record, _ = _unit_and_shape(get_args(annotation)[0])
        return unit, record, True
    if isinstance(annotation, type) and annotation in _RECORDS:
        return None, annotation, False
    return None, None, False


_Plan = list[tuple[str, str, bool, type | None, bool, Any]]


def _plan(cls: type) -> _Plan:
    """Per field of an event class or record: (JSON key, attribute, omitted when None, record class
    or None, is a tuple, annotation)."""
    if cls in _RECORDS:  # a TypedDict: every key required
        declared = [(name, annotation, False) for name, annotation in cls.__annotations__.items()]
    else:
        declared = [(f.name, f.type, f.default is None) for f in fields(cls)]
    plan: _Plan = []
    for name, annotation, omit in declared:
        unit, record_cls, is_tuple = _unit_and_shape(annotation)
        if unit is None and record_cls is None:
            raise TypeError(f"{cls.__name__}.{name}: every event field declares its unit "
                            f"(an alias such as Usdc, Ticks, Text) or is a record")
        key = name[:-1] if name.endswith("_") else name
        plan.append((key, name, omit, record_cls, is_tuple, annotation))
    return plan


def _shape(cls: type, type_name: str) -> _Shape:
    """How the serializer writes ``cls``'s instances, worked out once from the declaration."""
    plan = _plan(cls)
    renames = {attr: key for key, attr, *_ in plan if key != attr}
    return (type_name, renames or None,
            tuple(key for key, _, _, record_cls, is_tuple, _ in plan if record_cls and not is_tuple),
            tuple(key for key, _, _, _, is_tuple, _ in plan if is_tuple),
            tuple(key for key, _, omit, *_ in plan if omit))


def record(cls: type[T]) -> type[T]:
    """Declare a record: a ``TypedDict`` whose keys carry their units like an event's fields, the
    JSON object an event nests (a fill's parties). A record is its own JSON form: built with
    ``FillParty(owner=..., ...)`` (a plain dict, its keys and types checked by the type checker)."""
    _RECORDS.add(cls)
    _plan(cls)  # every key declares its unit
    return cls


@dataclass_transform(kw_only_default=True, frozen_default=True)
def event(type_name: str, topic: Topic) -> Callable[[type[T]], type[T]]:
    """Declare an event class: ``cls`` becomes a frozen keyword-only dataclass (the type checker
    knows it through ``dataclass_transform``) registered under ``type_name`` and ``topic``."""
    def register(cls: type[T]) -> type[T]:
        if type_name in _EVENT_CLASSES:
            raise TypeError(f"event type {type_name!r} is declared twice")
        cls = dataclass(frozen=True, kw_only=True)(cls)
        _SHAPES[cls] = _shape(cls, type_name)
        _EVENT_CLASSES[type_name] = cls
        _TYPE_NAMES[cls] = type_name
        _TOPICS[type_name] = topic
        return cls
    return register


# --------------------------------------------------------------------------------------- records
@record
class FillParty(TypedDict):
    """One side of a fill: the subaccount, its order (None for a liquidated or backstop taker) and fee paid."""

    owner: Address
    number: Id
    order_id: Id | None
    fee: Usdc


@record
class AdlCounterparty(TypedDict):
    """The winning account an auto-deleveraging closed against."""

    owner: Address
    number: Id
    score: Ratio | None          # its ADL score (None: ranked after every scored account)
    unrealized_pnl: Usdc         # before the close
    cost_closed: Usdc            # the part of its position's cost the close took out


@record
class DebtShare(TypedDict):
    """What one opposing position took of a socialised loss."""

    owner: Address
    number: Id
    size: Lots                   # lots it closed (0 for a deficit charged pro rata)
    payment: Usdc                # what it was charged


@record
class OracleRules(TypedDict):
    """A listed market's oracle aggregation rules (``params.OracleParams``)."""

    min_sources: Count
    max_staleness_ms: Ms
    max_source_deviation_ppm: Ppm
    max_move_per_block_ppm: Ppm


# --------------------------------------------------------------------------------------- accounts
@event("deposit", Topic.ACCOUNT)
class Deposit:
    """Collateral bridged in to a subaccount."""

    owner: Address
    number: Id
    amount: Usdc


@event("withdrawal", Topic.ACCOUNT)
class Withdrawal:
    """Collateral withdrawn from a subaccount."""

    owner: Address
    number: Id
    amount: Usdc


@event("transfer", Topic.ACCOUNT)
class Transfer:
    """Collateral moved between two subaccounts."""

    owner: Address
    number: Id
    to_owner: Address
    to_number: Id
    amount: Usdc


@event("leverage_set", Topic.ACCOUNT)
class LeverageSet:
    """A subaccount's initial margin fraction in a market, raised above its tier's."""

    owner: Address
    number: Id
    market: Ticker
    initial_margin_ppm: Ppm


@event("margin_mode_set", Topic.ACCOUNT)
class MarginModeSet:
    """A flat subaccount switched between cross and isolated margin."""

    owner: Address
    number: Id
    mode: Text
    market: Ticker | None        # the isolated market (None for cross)


@event("funding_payment", Topic.ACCOUNT)
class FundingPayment:
    """Funding settled on a subaccount's positions (before it trades or is liquidated)."""

    owner: Address
    number: Id
    amount: Usdc                 # received (negative: paid)


# --------------------------------------------------------------------------------------- orders
@event("order_accepted", Topic.TRADING)
class OrderAccepted:
    """A fresh order's terms, before it matches (a triggered order's are in conditional_order_placed)."""

    market: Ticker
    order_id: Id
    owner: Address
    number: Id
    client_id: Id
    side: Text
    order_type: Text
    time_in_force: Text
    price: Ticks
    size: Lots
    reduce_only: Flag


@event("order_placed", Topic.TRADING)
class OrderPlaced:
    """An order's remainder rests on the book."""

    market: Ticker
    order_id: Id
    owner: Address
    number: Id
    client_id: Id
    side: Text
    price: Ticks
    size: Lots                   # resting


@event("order_cancelled", Topic.TRADING)
class OrderCancelled:
    """An order left the book or the untriggered set without (the rest of) its size filling."""

    market: Ticker
    order_id: Id
    owner: Address
    number: Id
    client_id: Id
    size: Lots                   # what was left
    reason: Text
    order_type: Text | None = None   # only for an untriggered conditional order


@event("conditional_order_placed", Topic.TRADING)
class ConditionalOrderPlaced:
    """A stop or take-profit order waits for its trigger price."""

    market: Ticker
    order_id: Id
    owner: Address
    number: Id
    client_id: Id
    order_type: Text
    side: Text
    price: Ticks
    size: Lots
    trigger_price: Ticks
    time_in_force: Text
    reduce_only: Flag


@event("conditional_order_triggered", Topic.TRADING)
class ConditionalOrderTriggered:
    """A conditional order's trigger held: it is submitted as its underlying order."""

    market: Ticker
    order_id: Id
    owner: Address
    number: Id
    client_id: Id
    order_type: Text
    side: Text
    trigger_price: Ticks
    oracle_price: Ticks


@event("conditional_order_failed", Topic.TRADING)
class ConditionalOrderFailed:
    """A triggered conditional order was refused by the book's checks."""

    market: Ticker
    order_id: Id
    owner: Address
    number: Id
    client_id: Id
    code: Text                   # the ProtocolError code that refused the triggered order
    message: Text


@event("self_trade_decrement", Topic.TRADING)
class SelfTradeDecrement:
    """A resting order reduced instead of trading with its owner's taker (self_trade decrement)."""

    market: Ticker
    order_id: Id                 # the resting order, reduced
    taker_order_id: Id | None
    owner: Address
    size: Lots


@event("fill", Topic.TRADING)
class Fill:
    """A trade between a resting order (maker) and a taker."""

    market: Ticker
    price: Ticks                 # the maker's price
    size: Lots
    taker_side: Text
    to_insurance: Usdc           # the insurance share of the fees
    maker: FillParty
    taker: FillParty
    liquidation: Flag | None = None  # True: the taker is a liquidated account
    backstop: Flag | None = None     # True: the taker is a backstop unwinding


# --------------------------------------------------------------------------------------- oracle, funding
@event("oracle_submission", Topic.ORACLE)
class OracleSubmission:
    """An operator's price for a market (applied at the end of the block)."""

    market: Ticker
    operator: Address
    price: Ticks
    raw: DecimalText


@event("oracle_source_rejected", Topic.ORACLE)
class OracleSourceRejected:
    """A submission too far from the median of the fresh ones, left out of the price."""

    market: Ticker
    operator: Address
    price: Ticks
    median: Ticks
    max_source_deviation_ppm: Ppm


@event("oracle_stale", Topic.ORACLE)
class OracleStale:
    """A market's fresh sources fell below the minimum: no price, no liquidation."""

    market: Ticker
    fresh_sources: Count
    min_sources: Count


@event("oracle_fresh", Topic.ORACLE)
class OracleFresh:
    """A stale market has enough fresh sources again."""

    market: Ticker
    fresh_sources: Count
    min_sources: Count


@event("oracle_price", Topic.ORACLE)
class OraclePrice:
    """A market's oracle price moved (clamped to the per-block move)."""

    market: Ticker
    price: Ticks
    previous: Ticks
    median: Ticks
    sources: Count
    clamped: Flag
    settlement: Flag | None = None   # True: a delisted market's price set to its settlement price


@event("funding_tick", Topic.FUNDING)
class FundingTick:
    """A market's hourly funding: its rate and the move of its funding index."""

    market: Ticker
    rate_8h_ppm: Ppm
    samples: Count
    oracle_price: Ticks
    elapsed_s: Seconds
    index_delta: FundingIndex
    funding_index: FundingIndex


# --------------------------------------------------------------------------------------- liquidation
@event("liquidation_deferred", Topic.LIQUIDATION)
class LiquidationDeferred:
    """A liquidatable subaccount waits (stale oracle, guardian pause or grace, block limit)."""

    owner: Address
    number: Id
    reason: Text
    markets: tuple[Ticker, ...]


@event("withdrawals_paused", Topic.LIQUIDATION)
class WithdrawalsPaused:
    """An account with negative equity was seen: the pool's withdrawals pause."""

    pool: Pool
    until_height: Height


@event("liquidation_incomplete", Topic.LIQUIDATION)
class LiquidationIncomplete:
    """A liquidation could not close the size it tried (empty book, limit, budget)."""

    owner: Address
    number: Id
    market: Ticker
    attempted: Lots | None = None        # None (left out): nothing was tried (empty book)
    filled: Lots | None = None
    reason: Text
    fillable_price: Ticks | None = None


@event("liquidation", Topic.LIQUIDATION)
class Liquidation:
    """A liquidated position closed against a resting order."""

    owner: Address
    number: Id
    market: Ticker
    size: Lots                   # the liquidated account's change
    fill_price: Ticks
    oracle_price: Ticks
    net_collateral: Usdc
    maintenance: Usdc
    bankruptcy_quote: Usdc
    fill_quote: Usdc
    fillable_price: Ticks
    fillable_price_exact: ExactTicks
    insurance_delta: Usdc
    insurance_fund: Usdc
    pool: Pool
    maker: FillParty


@event("backstop_refused", Topic.LIQUIDATION)
class BackstopRefused:
    """The backstop could not take over a position (insurance fund, margin)."""

    market: Ticker
    owner: Address
    number: Id
    size: Lots
    pool: Pool
    inventory: Lots
    insurance_fund: Usdc
    fund_equity: Usdc
    fund_delta: Usdc             # of the one-lot takeover that failed
    oracle_price: Ticks
    reason: Text


@event("backstop_takeover", Topic.LIQUIDATION)
class BackstopTakeover:
    """The backstop took over a bankrupt position at its bankruptcy price."""

    market: Ticker
    owner: Address
    number: Id
    size: Lots
    bankruptcy_quote: Usdc
    oracle_price: Ticks
    fund_delta: Usdc
    pool: Pool
    inventory: Lots
    received: Usdc
    oracle_value: Usdc
    net_collateral: Usdc
    maintenance: Usdc
    insurance_fund: Usdc
    fund_equity: Usdc
    reason: Text


@event("backstop_unwind", Topic.LIQUIDATION)
class BackstopUnwind:
    """The backstop sold (bought) inventory into the book."""

    market: Ticker
    size: Lots
    price: Ticks
    pool: Pool
    inventory: Lots
    quote: Usdc
    limit_price: Ticks
    oracle_price: Ticks
    maker: FillParty


@event("backstop_pnl", Topic.LIQUIDATION)
class BackstopPnl:
    """The backstop's realised result moved to its pool's insurance fund."""

    pool: Pool
    amount: Usdc
    insurance_fund: Usdc


@event("deleveraging_deferred", Topic.LIQUIDATION)
class DeleveragingDeferred:
    """A deleveraging waits (block limit, or a position in profit)."""

    market: Ticker
    owner: Address
    number: Id
    reason: Text


@event("deleveraging_skipped", Topic.LIQUIDATION)
class DeleveragingSkipped:
    """An ADL counterparty was passed over: the close would break its margin."""

    market: Ticker
    owner: Address               # the counterparty skipped
    number: Id
    reason: Text


@event("deleveraging", Topic.LIQUIDATION)
class Deleveraging:
    """A position auto-deleveraged against a ranked winner."""

    market: Ticker
    owner: Address
    number: Id
    size: Lots
    bankruptcy_quote: Usdc
    quote: Usdc
    oracle_price: Ticks
    net_collateral: Usdc
    maintenance: Usdc
    counterparty_loss: Usdc
    counterparty: AdlCounterparty


@event("bad_debt", Topic.LIQUIDATION)
class BadDebt:
    """A loss beyond the insurance fund, shared by the opposing positions."""

    market: Ticker
    owner: Address
    number: Id
    size: Lots
    bankruptcy_quote: Usdc
    oracle_price: Ticks
    net_collateral: Usdc
    maintenance: Usdc
    amount: Usdc
    pool: Pool
    shares: tuple[DebtShare, ...]


@event("settlement_price", Topic.GOVERNANCE)  # a delisting's fixed settlement price
class SettlementPrice:
    """A delisted market's settlement price, fixed from its price average."""

    market: Ticker
    price: Ticks
    window_start_ms: Ms
    window_end_ms: Ms
    spot: Ticks
    window_ms: Ms


@event("final_settlement", Topic.LIQUIDATION)
class FinalSettlement:
    """A position closed at a delisted market's settlement price."""

    market: Ticker
    owner: Address
    number: Id
    size: Lots
    oracle_price: Ticks
    amount: Usdc


@event("market_settled", Topic.LIQUIDATION)
class MarketSettled:
    """A delisted market closed, every position settled."""

    market: Ticker
    oracle_price: Ticks
    rounding_to_insurance: Usdc


# --------------------------------------------------------------------------------------- BGOV and votes
@event("bgov_transfer", Topic.GOVERNANCE)
class BgovTransfer:
    """BGOV moved between two accounts."""

    from_: Address
    to: Address
    amount: Bgov


@event("delegate_changed", Topic.GOVERNANCE)
class DelegateChanged:
    """An account chose (or dropped) the delegate of its votes."""

    delegator: Address
    from_delegate: Address | None
    to_delegate: Address | None


@event("delegate_votes_changed", Topic.VOTING_POWER)
class DelegateVotesChanged:
    """A delegate's voting power changed (a checkpoint)."""

    delegate: Address
    previous_votes: Bgov
    new_votes: Bgov


# --------------------------------------------------------------------------------------- proposals
@event("proposal_submitted", Topic.GOVERNANCE)
class ProposalSubmitted:
    """A proposal was submitted, its deposit escrowed and its fee burned."""

    proposal_id: TextId
    number: Id
    proposer: Address
    risk_class: Text
    deposit: Bgov
    snapshot_height: Height
    deadline_height: Height
    fee: Bgov                    # burned


@event("vote_cast", Topic.GOVERNANCE)
class VoteCast:
    """A ballot on a proposal."""

    proposal_id: TextId
    voter: Address
    option: Text
    weight: Bgov
    reason: Text


@event("proposal_extended", Topic.GOVERNANCE)
class ProposalExtended:
    """A proposal's voting deadline moved (late quorum, or an outcome flip)."""

    proposal_id: TextId
    deadline_height: Height
    reason: Text | None = None           # "outcome_flip" (left out: a late quorum)
    from_outcome: Text | None = None
    to_outcome: Text | None = None


@event("proposal_status", Topic.GOVERNANCE)
class ProposalStatus:
    """A proposal's status changed."""

    proposal_id: TextId
    from_: Text
    to: Text
    yes: Bgov | None = None              # the tally, when a vote ends
    no: Bgov | None = None
    abstain: Bgov | None = None
    veto: Bgov | None = None
    quorum_votes: Bgov | None = None
    executable_from_ms: Ms | None = None     # the execution window, when queued
    executable_until_ms: Ms | None = None
    by: Address | None = None            # who cancelled or vetoed
    reason: Text | None = None           # a guardian veto's reason


@event("deposit_returned", Topic.GOVERNANCE)
class DepositReturned:
    """A proposal's deposit returned to its proposer."""

    proposal_id: TextId
    to: Address
    amount: Bgov


@event("deposit_burned", Topic.GOVERNANCE)
class DepositBurned:
    """A proposal's deposit burned."""

    proposal_id: TextId
    amount: Bgov


@event("param_changed", Topic.GOVERNANCE)
class ParamChanged:
    """A governed parameter changed (by a proposal, the council or a rollout)."""

    name: Text                   # the dotted parameter name
    value: ParamValue
    old: ParamValue
    height: Height
    source: Text                 # "proposal", "council", "rollout"...
    proposal_id: TextId | None
    proposal_number: Id | None
    ref: Text | None = None      # the source's reference when it is not a proposal


# --------------------------------------------------------------------------------------- executed actions
@event("market_listed", Topic.GOVERNANCE)
class MarketListed:
    """A market listed by an executed proposal."""

    market: Ticker
    size_decimals: Count
    price_decimals: Count
    oracle_price: Ticks
    tier_id: Id
    min_order_lots: Lots
    max_open_interest_lots: Lots
    maker_fee_ppm: Ppm
    taker_fee_ppm: Ppm
    isolated_only: Flag
    status: Text
    oracle: OracleRules
    source: Text
    proposal_id: TextId | None
    proposal_number: Id | None


@event("treasury_spent", Topic.GOVERNANCE)
class TreasurySpent:
    """Treasury funds paid to a subaccount by an executed proposal."""

    to_owner: Address
    to_number: Id
    amount: Usdc
    treasury: Usdc               # left in the treasury
    source: Text
    proposal_id: TextId | None
    proposal_number: Id | None


@event("insurance_transferred", Topic.GOVERNANCE)
class InsuranceTransferred:
    """Funds moved between insurance pools (or from the treasury) by an executed proposal."""

    from_pool: Pool
    to_pool: Pool
    amount: Usdc
    insurance_fund: Usdc         # the receiving pool's, after
    source: Text
    proposal_id: TextId | None
    proposal_number: Id | None


@event("insurance_fund_merged", Topic.GOVERNANCE)
class InsuranceFundMerged:
    """An isolated pool's insurance fund merged into the cross pool."""

    pool: Pool
    into: Pool
    amount: Usdc
    insurance_fund: Usdc
    source: Text
    proposal_id: TextId | None
    proposal_number: Id | None


# --------------------------------------------------------------------------------------- council
@event("stress_attested", Topic.GOVERNANCE)
class StressAttested:
    """A council member attested a stress report for a queued proposal."""

    proposal_id: TextId
    member: Address
    report_hash: Hash
    verdict: Text
    passes: Count
    threshold: Count


@event("stress_gate_passed", Topic.GOVERNANCE)
class StressGatePassed:
    """A gated proposal's stress attestations sufficed at its execution."""

    proposal_id: TextId
    report_hash: Hash
    passes: Count
    threshold: Count


@event("stress_report_registered", Topic.GOVERNANCE)
class StressReportRegistered:
    """A stress report's figures registered by a council member."""

    report_hash: Hash
    verdict: Text
    depletion_probability_ppm: Ppm
    var99_loss: Usdc
    es99_loss: Usdc
    insurance_funds_total: Usdc
    by: Address


@event("steward_change_approved", Topic.GOVERNANCE)
class StewardChangeApproved:
    """A council member approved a steward parameter change."""

    param: Text
    value: ParamValue
    member: Address
    approvals: Count
    threshold: Count


@event("steward_change_applied", Topic.GOVERNANCE)
class StewardChangeApplied:
    """A steward parameter change reached its threshold and applied."""

    param: Text
    value: ParamValue
    old: ParamValue
    approvers: tuple[Address, ...]


# --------------------------------------------------------------------------------------- guardian
@event("guardian_paused", Topic.GOVERNANCE)
class GuardianPaused:
    """The guardian paused a scope (or extended a pause)."""

    scope: Text
    market: Ticker | None        # None: a platform-wide scope
    start_ms: Ms
    end_ms: Ms
    extended: Flag


@event("guardian_unpaused", Topic.GOVERNANCE)
class GuardianUnpaused:
    """The guardian lifted a pause within its grace."""

    scope: Text
    market: Ticker | None
    start_ms: Ms
    end_ms: Ms


@event("pause_expired", Topic.GOVERNANCE)
class PauseExpired:
    """A guardian pause reached its end."""

    scope: Text
    market: Ticker | None
    start_ms: Ms
    end_ms: Ms


@event("liquidation_grace", Topic.GOVERNANCE)
class LiquidationGrace:
    """Book liquidations wait after a halt ended (the grace)."""

    scope: Text
    markets: tuple[Ticker, ...]
    until_ms: Ms


# --------------------------------------------------------------------------------------- rollouts
@event("rollout_started", Topic.GOVERNANCE)
class RolloutStarted:
    """A staged rollout of a market parameter began."""

    rollout_id: Id
    market: Ticker
    param: Text
    start: ParamValue
    target: ParamValue
    steps: Count
    interval_s: Seconds
    next_step_ms: Ms
    proposal_id: TextId


@event("rollout_step", Topic.GOVERNANCE)
class RolloutStep:
    """A staged rollout moved its parameter one step."""

    rollout_id: Id
    market: Ticker
    param: Text
    step: Count
    steps: Count
    value: ParamValue


@event("rollout_completed", Topic.GOVERNANCE)
class RolloutCompleted:
    """A staged rollout reached its target."""

    rollout_id: Id
    market: Ticker
    param: Text
    value: ParamValue


@event("rollout_reverted", Topic.GOVERNANCE)
class RolloutReverted:
    """A halted rollout put its parameter back to the start."""

    rollout_id: Id
    market: Ticker
    param: Text
    value: ParamValue


@event("rollout_halted", Topic.GOVERNANCE)
class RolloutHalted:
    """A staged rollout stopped (a gate broke, the market left active, or a newer change)."""

    rollout_id: Id
    market: Ticker
    param: Text
    step: Count
    reason: Text
    gate: Text | None = None             # a breached gate, with what it saw and its bound
    observed: GateValue | None = None
    limit: GateValue | None = None
    status: Text | None = None           # reason market_not_active: the market's status
    source: Text | None = None           # reason superseded: the change that superseded it
    ref: Text | None = None


# --------------------------------------------------------------------------------------- agent keys
@event("agent_authorized", Topic.ACCOUNT)
class AgentAuthorized:
    """An owner let an agent key sign trading messages for it (``bastion.core.agents``)."""

    owner: Address
    agent: Address
    subaccounts: tuple[Id, ...] | None   # None: every subaccount
    permissions: tuple[Text, ...]
    expires_ms: Ms                       # block time from which the grant no longer works
    label: Text | None
    replaced: Flag                       # True: it replaced the agent's previous grant


@event("agent_revoked", Topic.ACCOUNT)
class AgentRevoked:
    """An agent's grant left the state: revoked by its owner, or expired and dropped."""

    owner: Address
    agent: Address
    reason: Text                         # revoked | expired


@event("agent_acted", Topic.ACCOUNT)
class AgentActed:
    """An agent key sent a trading message for an owner; the message's own events follow."""

    owner: Address
    number: Id
    agent: Address
    action: Text                         # the message type


# --------------------------------------------------------------------------------------- bot tools
@event("order_modified", Topic.TRADING)
class OrderModified:
    """A resting order's size or price changed (``modify_order``): reduced in place (the same order
    id, its queue place kept) or replaced by ``new_order_id`` (priority lost)."""

    market: Ticker
    order_id: Id
    new_order_id: Id
    owner: Address
    number: Id
    client_id: Id
    old_price: Ticks
    price: Ticks
    old_size: Lots               # open size before
    size: Lots                   # open size asked for (a replacement may fill some at once)
    kept_priority: Flag


@event("cancel_scheduled", Topic.TRADING)
class CancelScheduled:
    """An owner set (or, ``time_ms`` None, cleared) its dead-man's switch."""

    owner: Address
    time_ms: Ms | None


@event("scheduled_cancel", Topic.TRADING)
class ScheduledCancel:
    """An owner's dead-man's switch fired: its open orders, untriggered orders and TWAPs were cancelled."""

    owner: Address
    time_ms: Ms                  # the scheduled time
    cancelled: Count             # resting and untriggered orders cancelled
    twaps: Count                 # TWAP orders stopped
    triggers_today: Count        # firings on this UTC day, this one included
    complete: Flag               # false: the block's budget ran out, the rest goes in the next block


@event("twap_placed", Topic.TRADING)
class TwapPlaced:
    """A TWAP order was accepted; its slices trade at the end of blocks."""

    twap_id: Id
    market: Ticker
    owner: Address
    number: Id
    side: Text
    size: Lots
    duration_ms: Ms
    slices: Count
    interval_ms: Ms
    reduce_only: Flag
    max_slippage_ppm: Ppm


@event("twap_slice", Topic.TRADING)
class TwapSlice:
    """One slice of a TWAP order: an IOC order (``order_id``, None when there was nothing to trade)
    of ``size`` at worst ``price``; ``code`` says why it was refused, if it was."""

    twap_id: Id
    market: Ticker
    owner: Address
    number: Id
    slice: Count                 # 1, 2, ... of ``slices``
    slices: Count
    order_id: Id | None
    price: Ticks                 # the slippage guard: the oracle price moved against the trader
    size: Lots                   # what this slice tried: its share plus what earlier slices left
    filled: Lots
    code: Text | None = None


@event("twap_finished", Topic.TRADING)
class TwapFinished:
    """A TWAP order ended: ``completed`` (all filled or all slices done), ``cancelled`` or ``deadman``."""

    twap_id: Id
    market: Ticker
    owner: Address
    number: Id
    size: Lots
    filled: Lots
    slices_done: Count
    reason: Text


@event("rollout_gates_measured", Topic.GOVERNANCE)
class RolloutGatesMeasured:
    """What a staged rollout's health gates measured when a step was due (before the step or the
    halt it decides; ``bastion.core.governance.rollout``): the market's pool insurance fund, bad
    debt, liquidations and trader losses since the previous step, the market's share of the cross
    pool's maintenance requirement, its top account's share of the open interest, the cross
    accounts' net position against it and the backstops' inventory."""

    rollout_id: Id
    market: Ticker
    step: Count
    insurance_fund: Usdc
    bad_debt: Usdc
    liquidations: Count
    cross_share: Ppm
    top_account_share: Ppm
    oi_skew: Ppm
    backstop_inventory: Lots
    trader_losses: Usdc


@event("insurance_staked", Topic.ACCOUNT)
class InsuranceStaked:
    """USDC staked into an insurance fund for shares (``bastion.core.staking``)."""

    pool: Pool
    owner: Address
    number: Id
    amount: Usdc
    shares: Usdc                 # shares minted (6 decimals, like USDC)
    staked: Usdc                 # the fund's staked part, after
    total_shares: Usdc           # the pool's shares outstanding, after
    insurance_fund: Usdc         # the whole fund, after


@event("unstake_requested", Topic.ACCOUNT)
class UnstakeRequested:
    """Shares locked for the unstake cooldown; ``value`` is what they are worth now (the payout is
    at the share price of ``complete_unstake``)."""

    request_id: Id
    pool: Pool
    owner: Address
    number: Id
    shares: Usdc
    value: Usdc
    available_ms: Ms


@event("insurance_unstaked", Topic.ACCOUNT)
class InsuranceUnstaked:
    """A cooled-down unstake request paid at the share price of this block."""

    request_id: Id
    pool: Pool
    owner: Address
    number: Id
    shares: Usdc
    amount: Usdc
    staked: Usdc
    total_shares: Usdc
    insurance_fund: Usdc


@event("insurance_stakers_loss", Topic.LIQUIDATION)
class InsuranceStakersLoss:
    """The stakers' part of a loss of their fund (``loss_mode`` says how it was split)."""

    pool: Pool
    loss: Usdc                   # the fund's whole loss
    stakers_loss: Usdc           # the part taken from the staked part
    staked: Usdc                 # the staked part, after
    shares: Usdc                 # shares outstanding (before a wipe-out)
    loss_mode: Text


@event("insurance_stakes_wiped_out", Topic.LIQUIDATION)
class InsuranceStakesWipedOut:
    """A loss took the whole staked part: every share of the pool and its pending requests are cancelled."""

    pool: Pool
    shares: Usdc
    holders: Count
    requests: tuple[Id, ...]


@event("insurance_replenishment", Topic.LIQUIDATION)
class InsuranceReplenishment:
    """A fund fell below its governed target (``replenishing``) or reached it again; ``fee_share_ppm``
    is its share of net trading fees from the next block on."""

    pool: Pool
    replenishing: Flag
    insurance_fund: Usdc
    target: Usdc
    fee_share_ppm: Ppm


# --------------------------------------------------------------------------------------- disputes (issue 18)
@event("dispute_opened", Topic.GOVERNANCE)
class DisputeOpened:
    """An owner contested a recorded liquidation, takeover, deleveraging or settlement, posting a bond."""

    dispute_id: Id
    target: Id
    target_kind: Text
    target_height: Height
    owner: Address
    number: Id
    market: Ticker
    claim_kind: Text
    claim: Usdc
    loss: Usdc
    bond: Usdc
    deadline_ms: Ms


@event("dispute_vote", Topic.GOVERNANCE)
class DisputeVote:
    """A council member's ruling on a dispute; ``votes`` members (of ``threshold``) agree with it now."""

    dispute_id: Id
    member: Address
    upheld: Flag
    award: Usdc
    votes: Count
    threshold: Count


@event("dispute_ruled", Topic.GOVERNANCE)
class DisputeRuled:
    """The council decided a dispute; either side may appeal until ``appeal_until_ms``."""

    dispute_id: Id
    upheld: Flag
    award: Usdc
    appeal_until_ms: Ms


@event("dispute_escalated", Topic.GOVERNANCE)
class DisputeEscalated:
    """A dispute went to a token vote: ``reason`` appeal (``appellant`` posted ``appeal_bond``) or
    deadline (the council did not rule in time)."""

    dispute_id: Id
    reason: Text
    proposal_id: TextId
    appellant: Address | None = None
    appeal_bond: Usdc
    upheld: Flag
    award: Usdc


@event("dispute_resolved", Topic.GOVERNANCE)
class DisputeResolved:
    """A dispute's final outcome and its money: ``paid`` (the award after the caps, ``capped_by`` the
    cap that bound) from the pool's fund, the bond back or forfeited, an appeal bond likewise."""

    dispute_id: Id
    upheld: Flag
    award: Usdc
    paid: Usdc
    capped_by: Text | None = None
    bond_returned: Usdc
    bond_forfeited: Usdc
    appeal_bond_returned: Usdc
    appeal_bond_forfeited: Usdc
    pool: Pool
    insurance_fund: Usdc
    decided_by: Text


@event("incident_program_opened", Topic.GOVERNANCE)
class IncidentProgramOpened:
    """Governance opened a compensation program: the protocol's computed compensation (``entitled``)
    pro rata within ``budget``; ``escrow`` left the insurance fund for the claims."""

    program_id: Id
    market: Ticker
    from_height: Height
    to_height: Height
    rule: Text
    reference_price: Ticks
    budget: Usdc
    entitled: Usdc
    escrow: Usdc
    targets: Count
    claim_until_ms: Ms
    insurance_fund: Usdc


@event("incident_claimed", Topic.ACCOUNT)
class IncidentClaimed:
    """An owner's subaccount received its compensation from an incident program."""

    program_id: Id
    owner: Address
    number: Id
    amount: Usdc


@event("incident_program_closed", Topic.GOVERNANCE)
class IncidentProgramClosed:
    """An incident program's claim period ended; what nobody claimed went back to the fund."""

    program_id: Id
    returned: Usdc
    insurance_fund: Usdc


# --------------------------------------------------------------------------------------- maker rewards
@event("maker_score", Topic.TRADING)
class MakerScore:
    """At an epoch's end, one maker's score on one market and its inputs: the summed weighted depth
    (micro-USDC x volatility weight), the samples in which it quoted both sides, the market's samples."""

    epoch: Count
    owner: Address
    number: Id
    market: Ticker
    weighted_depth: Usdc
    two_sided_samples: Count
    samples: Count
    score: Usdc


@event("maker_reward_paid", Topic.TRADING)
class MakerRewardPaid:
    """A maker's reward at an epoch's end: ``min(pool x score / total_score, cap)``, rounded down,
    credited to its subaccount."""

    epoch: Count
    owner: Address
    number: Id
    score: Usdc
    total_score: Usdc
    pool: Usdc
    cap: Usdc
    amount: Usdc


@event("maker_reward_epoch", Topic.TRADING)
class MakerRewardEpoch:
    """A maker-reward epoch closed: the pool it paid from, what it paid and what stays for the next."""

    epoch: Count
    start_height: Height
    end_height: Height
    pool: Usdc
    total_score: Usdc
    makers: Count
    paid: Usdc
    rolled_over: Usdc


@event("counter_report_posted", Topic.GOVERNANCE)
class CounterReportPosted:
    """A bonded counter-report contests a queued proposal's stress gate: it holds the execution."""

    counter_id: Id
    proposal_id: TextId
    poster: Address
    number: Id
    report_hash: Hash
    scenario_set_hash: Hash
    depletion_probability_ppm: Ppm
    var99_loss: Usdc
    es99_loss: Usdc
    insurance_funds_total: Usdc
    bond: Usdc


@event("counter_report_judged", Topic.GOVERNANCE)
class CounterReportJudged:
    """A council member's judgement of a counter-report (``votes``: members agreeing with it now)."""

    counter_id: Id
    member: Address
    reproduced: Flag
    votes: Count
    threshold: Count


@event("counter_report_decided", Topic.GOVERNANCE)
class CounterReportDecided:
    """k members agreed: a reproduced counter-report's bond goes back to the poster's subaccount, a
    non-reproducing one's to the cross insurance fund (``to``: ``poster`` or the pool)."""

    counter_id: Id
    proposal_id: TextId
    reproduced: Flag
    bond: Usdc
    to: Text
    insurance_fund: Usdc


@event("counter_report_answered", Topic.GOVERNANCE)
class CounterReportAnswered:
    """A council member named a newer registered report that covered a counter-report's scenario set:
    k pass attestations on it lift the counter-report's hold."""

    counter_id: Id
    proposal_id: TextId
    report_hash: Hash
    member: Address


Event = (
    Deposit | Withdrawal | Transfer | LeverageSet | MarginModeSet | FundingPayment
    | OrderAccepted | OrderPlaced | OrderCancelled | ConditionalOrderPlaced | ConditionalOrderTriggered
    | ConditionalOrderFailed | SelfTradeDecrement | Fill
    | OracleSubmission | OracleSourceRejected | OracleStale | OracleFresh | OraclePrice | FundingTick
    | LiquidationDeferred | WithdrawalsPaused | LiquidationIncomplete | Liquidation | BackstopRefused
    | BackstopTakeover | BackstopUnwind | BackstopPnl | DeleveragingDeferred | DeleveragingSkipped | Deleveraging
    | BadDebt | SettlementPrice | FinalSettlement | MarketSettled
    | BgovTransfer | DelegateChanged | DelegateVotesChanged
    | ProposalSubmitted | VoteCast | ProposalExtended | ProposalStatus | DepositReturned | DepositBurned
    | ParamChanged | MarketListed | TreasurySpent | InsuranceTransferred | InsuranceFundMerged
    | StressAttested | StressGatePassed | StressReportRegistered | StewardChangeApproved | StewardChangeApplied
    | GuardianPaused | GuardianUnpaused | PauseExpired | LiquidationGrace
    | RolloutStarted | RolloutStep | RolloutCompleted | RolloutReverted | RolloutHalted
    | AgentAuthorized | AgentRevoked | AgentActed
    | OrderModified | CancelScheduled | ScheduledCancel | TwapPlaced | TwapSlice | TwapFinished
    | RolloutGatesMeasured
    | InsuranceStaked | UnstakeRequested | InsuranceUnstaked | InsuranceStakersLoss | InsuranceStakesWipedOut
    | InsuranceReplenishment
    | DisputeOpened | DisputeVote | DisputeRuled | DisputeEscalated | DisputeResolved | IncidentProgramOpened
    | IncidentClaimed | IncidentProgramClosed
    | MakerScore | MakerRewardPaid | MakerRewardEpoch
    | CounterReportPosted | CounterReportJudged | CounterReportDecided | CounterReportAnswered
)
"""Every event the core emits (``event_types()`` names them)."""


# --------------------------------------------------------------------------------------- the API
def to_json_dict(event: Event) -> dict[str, Any]:
    """The event's JSON form (the module docstring's rules): what the log, API and scenarios carry."""
    return _json_of(type(event), event.__dict__, copy_records=True)


def emit(events: Events, kind: Callable[P, Event], /, *args: P.args, **fields: P.kwargs) -> dict[str, Any]:
    """Append the JSON form of the event ``kind(**fields)`` to ``events`` and return it:
    ``emit(events, OrderPlaced, market=..., order_id=..., ...)``.

    The type checker checks ``fields`` against the class exactly as a call of ``kind`` (names,
    types, none missing: ``ParamSpec``); at run time the object is not built, the fields go
    straight to the one serializer (``to_json_dict`` gives the same dict from the object), which
    takes them in the order given. So an emitter names the fields in declaration order
    (``tests/test_events.py`` checks every emitter of the core); an optional field passed as None
    is left out, as one not passed. Building a throwaway object per event cost about 5% of the
    state machine's order throughput (docs/protocol.md "Events")."""
    if args:
        raise TypeError("event fields are keyword-only")
    type_name, renames, _, tuples, optional = _SHAPES[kind]
    if renames is None and not tuples:  # _json_of inlined: all but a few events, the order path's among them
        out = {"type": type_name, **fields}
        for key in optional:
            if key in out and out[key] is None:
                del out[key]
    else:
        out = _json_of(kind, fields, copy_records=False)
    events.append(out)
    return out


def _json_of(cls: object, values: dict[str, Any], *, copy_records: bool) -> dict[str, Any]:
    """The one serializer: the JSON form of an instance of ``cls`` with these field values (in
    declaration order: the instance dict of a dataclass is, its ``__init__`` setting the fields in
    that order). Tuples become lists and unset optional fields are deleted in place, so keys keep
    their places; the keys are renamed for the classes with a trailing-underscore field. A record
    is already a dict: copied only for ``to_json_dict`` (an emitter's records are fresh)."""
    type_name, renames, records, tuples, optional = _SHAPES[cls]
    if renames is not None:
        out: dict[str, Any] = {"type": type_name}
        for attr, value in values.items():
            out[renames.get(attr, attr)] = value
    else:
        out = {"type": type_name, **values}
    if copy_records:
        for key in records:
            if out.get(key) is not None:
                out[key] = dict(out[key])
    for key in tuples:
        value = out.get(key)
        if value is not None:
            out[key] = [dict(item) if copy_records and isinstance(item, dict) else item for item in value]
    for key in optional:
        if key in out and out[key] is None:
            del out[key]
    return out


def event_types(topic: Topic | None = None) -> tuple[str, ...]:
    """Every declared event type name (of ``topic`` when given), in declaration order."""
    return tuple(name for name, t in _TOPICS.items() if topic is None or t == topic)


def event_class(type_name: str) -> type:
    """The class of an event type; ``KeyError`` naming it when it is not declared."""
    try:
        return _EVENT_CLASSES[type_name]
    except KeyError:
        raise KeyError(f"undeclared event type {type_name!r}") from None


def type_name_of(event: Event) -> str:
    """The type name an event is written with."""
    return _TYPE_NAMES[type(event)]


def topic_of(type_name: str) -> Topic:
    """The topic of an event type (``KeyError`` when it is not declared)."""
    event_class(type_name)
    return _TOPICS[type_name]


def _field_units(cls: type, prefix: str) -> dict[str, Unit]:
    units: dict[str, Unit] = {}
    for key, _, _, record_cls, _, annotation in _plan(cls):
        if record_cls is not None:
            units.update(_field_units(record_cls, f"{prefix}{key}."))
        else:
            unit, _, _ = _unit_and_shape(annotation)
            if unit is not None:
                units[prefix + key] = unit
    return units


_UNITS: dict[str, dict[str, Unit]] = {name: _field_units(cls, "") for name, cls in _EVENT_CLASSES.items()}


def units_of(type_name: str) -> dict[str, Unit]:
    """Each JSON key of an event type and its unit, in key order; a nested record's keys are dotted
    (``"maker.fee"``), a list's elements have the list's key (``"shares.payment"``, ``"markets"``)."""
    event_class(type_name)
    return dict(_UNITS[type_name])


def unit_table() -> dict[str, dict[str, Unit]]:
    """``units_of`` for every event type."""
    return {name: dict(units) for name, units in _UNITS.items()}


def _from_json(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object")
    plan = _plan(cls)
    extra = sorted(set(data) - {key for key, *_ in plan} - {"type"})
    if extra:
        raise ValueError(f"{where}: unknown key {extra[0]!r}")
    values = {}
    for key, attr, omit, record_cls, is_tuple, _ in plan:
        if key not in data:
            if omit:
                continue
            raise ValueError(f"{where}: missing key {key!r}")
        value = data[key]
        if value is not None and is_tuple:
            value = tuple(_from_json(record_cls, item, f"{where}.{key}") if record_cls else item for item in value)
        elif value is not None and record_cls is not None:
            value = _from_json(record_cls, value, f"{where}.{key}")
        if not omit or value is not None:
            values[attr] = value
    return dict(values) if cls in _RECORDS else cls(**values)


def from_json_dict(data: dict[str, Any]) -> Event:
    """The typed event of a JSON form (``to_json_dict``'s inverse); ``KeyError`` for an undeclared
    type, ``ValueError`` for an unknown, missing or malformed key."""
    cls = event_class(data.get("type"))  # type: ignore[arg-type]
    result: Event = _from_json(cls, data, str(data.get("type")))
    return result
