"""Typed messages: the only input of the state machine besides the block time.

A message is a frozen dataclass; ``decode_message`` turns the JSON form of scenario files and of
the API (``{"type": "place_order", ...}``) into one, checking field names and JSON types. Decimal
quantities stay decimal strings here: their grid depends on the market, so the handler converts
them (``bastion.core.units``) as the first step of its validation.
"""
from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, fields
from typing import Any

from bastion.core.errors import ProtocolError

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def normalize_address(value: object, *, field: str) -> str:
    """An Ethereum address as lowercase hex (``invalid_address`` otherwise)."""
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ProtocolError("invalid_address", f"{field} is not a 0x-prefixed 20-byte hex address: {value!r}",
                            field=field)
    return value.lower()


@dataclass(frozen=True, slots=True)
class Deposit:
    """Bridge operator credits ``amount`` USDC to ``owner``'s subaccount (creating it if new)."""
    owner: str
    subaccount: int
    amount: str


@dataclass(frozen=True, slots=True)
class Withdraw:
    subaccount: int
    amount: str


@dataclass(frozen=True, slots=True)
class Transfer:
    """Move USDC from one of the sender's subaccounts to any subaccount of any owner."""
    subaccount: int
    to_owner: str
    to_subaccount: int
    amount: str


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    subaccount: int
    market: str
    side: str
    size: str
    price: str
    client_id: int
    order_type: str = "limit"
    time_in_force: str = "gtc"
    good_til: str | None = None
    trigger_price: str | None = None
    reduce_only: bool = False
    self_trade: str = "cancel_resting"


@dataclass(frozen=True, slots=True)
class CancelOrder:
    subaccount: int
    client_id: int | None = None
    order_id: int | None = None


@dataclass(frozen=True, slots=True)
class CancelAll:
    subaccount: int
    market: str | None = None


@dataclass(frozen=True, slots=True)
class SetLeverage:
    """Choose a higher initial margin fraction (lower leverage) for one market, never below the tier's."""
    subaccount: int
    market: str
    initial_margin: str


@dataclass(frozen=True, slots=True)
class SetMarginMode:
    """Make a flat subaccount with no open orders ``cross`` or ``isolated`` to one ``market``."""
    subaccount: int
    mode: str
    market: str | None = None


@dataclass(frozen=True, slots=True)
class OracleUpdate:
    prices: dict[str, str]


@dataclass(frozen=True, slots=True)
class TransferBgov:
    """Move ``amount`` BGOV (6 decimals) from the sender to ``to``; voting power follows the delegates."""
    to: str
    amount: str


@dataclass(frozen=True, slots=True)
class Delegate:
    """Delegate the sender's whole BGOV balance to ``delegatee`` (itself to vote; the zero address: nobody)."""
    delegatee: str


# ------------------------------------------------------------------------------- governance actions
# Typed data inside ``submit_proposal.actions`` (``bastion.core.governance`` validates and applies
# them). Omitted fields (None) are left unchanged; decimals are strings on the genesis grids.
@dataclass(frozen=True, slots=True)
class SetMarketParams:
    market: str
    liquidity_tier: int | None = None
    max_open_interest: str | None = None
    maker_fee: str | None = None
    taker_fee: str | None = None
    min_order_size: str | None = None
    status: str | None = None              # active | reduce_only | paused
    # the market's oracle configuration (DESIGN.md section 6; bastion.core.actions)
    min_sources: int | None = None
    max_staleness_s: int | None = None
    max_source_deviation: str | None = None
    max_move_per_block: str | None = None
    max_order_size: str | None = None      # the largest order (anti-spam, bastion.core.orders)


@dataclass(frozen=True, slots=True)
class SetOrderLimits:
    """The anti-spam order limits (genesis ``order_limits`` names and units, ``bastion.core.orders``):
    ``open_order_tiers`` replaces the whole list of ``{min_equity, max_open_orders}`` tiers."""
    open_order_tiers: list | None = None
    max_open_orders: int | None = None
    min_order_notional: str | None = None


@dataclass(frozen=True, slots=True)
class SetLiquidityTier:
    tier: int
    initial_margin: str | None = None
    maintenance_fraction: str | None = None
    oi_lower_cap: str | None = None
    oi_upper_cap: str | None = None


@dataclass(frozen=True, slots=True)
class SetFeeParams:
    insurance_share: str


@dataclass(frozen=True, slots=True)
class SetLiquidationParams:
    """Any field of ``LiquidationParams`` (genesis ``liquidation`` names and units)."""
    max_liquidation_fee: str | None = None
    max_insurance_loss_per_block: str | None = None
    withdrawal_pause_blocks: int | None = None
    bankruptcy_adjustment: str | None = None
    spread_to_maintenance: str | None = None
    min_position_notional: str | None = None
    max_position_portion: str | None = None
    max_notional_per_block: str | None = None
    backstop_max_notional: str | None = None
    backstop_max_fund_share: str | None = None
    backstop_unwind_portion: str | None = None
    backstop_after_blocks: int | None = None
    settlement_twap_window_s: int | None = None
    liquidation_grace_s: int | None = None


@dataclass(frozen=True, slots=True)
class SetGovernanceParams:
    """A partial genesis ``governance`` section, merged over the current parameters."""
    params: dict


@dataclass(frozen=True, slots=True)
class DelistMarket:
    """Put ``market`` in final settlement: the liquidation engine settles it at the end of the block."""
    market: str


@dataclass(frozen=True, slots=True)
class StartRollout:
    """Move one market parameter (``max_open_interest`` or ``min_order_size``) to ``target`` in
    ``steps`` steps, at most one per ``interval_s`` of block time, each only while ``gates``
    (``{min_insurance_fund?, max_bad_debt?, max_liquidations?}``) hold (``bastion.core.rollout``)."""
    market: str
    param: str
    target: str
    steps: int
    interval_s: int
    gates: dict
    revert_on_breach: bool = False


@dataclass(frozen=True, slots=True)
class SetGuardian:
    """Appoint or renew the guardian until ``expires`` (RFC 3339), or remove it (``address`` null)."""
    address: str | None
    expires: str | None = None


@dataclass(frozen=True, slots=True)
class SetCouncil:
    """Replace the council: ``members`` (addresses, at least one) of whom ``threshold`` must sign."""
    members: list[str]
    threshold: int


@dataclass(frozen=True, slots=True)
class SetStewardBounds:
    """Per parameter (dotted name), ``{max_change | max_change_abs, cooldown_s}`` or null to remove
    its bound; parameters not named keep theirs (``bastion.core.council``)."""
    bounds: dict


@dataclass(frozen=True, slots=True)
class ListMarket:
    """List a new market on the default path (DESIGN.md section 9): isolated-only with its own
    (empty) insurance fund, a conservative tier, a small open-interest cap (``bastion.core.actions``).
    Fields as a genesis market; ``oracle`` overrides the listing oracle defaults."""
    ticker: str
    size_decimals: int
    price_decimals: int
    oracle_price: str
    min_order_size: str
    max_open_interest: str
    liquidity_tier: int | None = None      # default: the tier named "isolated"
    maker_fee: str | None = None
    taker_fee: str | None = None
    oracle: dict | None = None             # min_sources, max_staleness_s, max_source_deviation, max_move_per_block


@dataclass(frozen=True, slots=True)
class SetListingParams:
    """The bounds of the default listing path: minimum tier initial margin, maximum OI cap (USDC)."""
    min_initial_margin: str | None = None
    max_open_interest: str | None = None


@dataclass(frozen=True, slots=True)
class SetOracleOperators:
    """Replace the set of oracle operators (addresses)."""
    operators: tuple


@dataclass(frozen=True, slots=True)
class TreasurySpend:
    """Pay ``amount`` USDC from the protocol fee account (the treasury) to a subaccount."""
    to_owner: str
    to_subaccount: int
    amount: str


@dataclass(frozen=True, slots=True)
class InsuranceTransfer:
    """Move ``amount`` USDC between insurance funds ("cross" or an isolated market's ticker), or
    from the treasury ("treasury") into one."""
    from_pool: str
    to_pool: str
    amount: str


@dataclass(frozen=True, slots=True)
class UpgradeIsolatedToCross:
    """An isolated-only market joins the cross pool; its insurance fund merges into the cross fund."""
    market: str


ACTION_TYPES: dict[str, type] = {
    "set_market_params": SetMarketParams,
    "set_liquidity_tier": SetLiquidityTier,
    "set_fee_params": SetFeeParams,
    "set_liquidation_params": SetLiquidationParams,
    "set_governance_params": SetGovernanceParams,
    "delist_market": DelistMarket,
    "start_rollout": StartRollout,
    "set_guardian": SetGuardian,
    "set_council": SetCouncil,
    "set_steward_bounds": SetStewardBounds,
    "list_market": ListMarket,
    "set_listing_params": SetListingParams,
    "set_oracle_operators": SetOracleOperators,
    "treasury_spend": TreasurySpend,
    "insurance_transfer": InsuranceTransfer,
    "upgrade_isolated_to_cross": UpgradeIsolatedToCross,
    "set_order_limits": SetOrderLimits,
}
ACTION_NAMES: dict[type, str] = {cls: name for name, cls in ACTION_TYPES.items()}


def action_requires_proposal(kind: str) -> ProtocolError:
    """The refusal of a governance action sent as a transaction: actions only run inside an executed
    proposal, whoever sends them (the guardian included)."""
    return ProtocolError("action_requires_proposal",
                         f"{kind} is a governance action: only an executed proposal applies it", field="type")


# Fields added to an action after proposals using it could exist: they enter the proposal id only when
# set, so that the id of a proposal that does not use them stays what it was (``canonical_action``).
LATER_FIELDS: dict[type, tuple[str, ...]] = {
    SetMarketParams: ("min_sources", "max_staleness_s", "max_source_deviation", "max_move_per_block",
                      "max_order_size"),
    SetLiquidationParams: ("bankruptcy_adjustment", "spread_to_maintenance", "min_position_notional",
                           "max_position_portion", "max_notional_per_block", "backstop_max_notional",
                           "backstop_max_fund_share", "backstop_unwind_portion", "backstop_after_blocks",
                           "settlement_twap_window_s", "liquidation_grace_s"),
}

Action = (SetMarketParams | SetLiquidityTier | SetFeeParams | SetLiquidationParams | SetGovernanceParams | DelistMarket
          | StartRollout | SetGuardian | SetCouncil | SetStewardBounds | ListMarket | SetListingParams
          | SetOracleOperators | TreasurySpend | InsuranceTransfer | UpgradeIsolatedToCross | SetOrderLimits)


# ------------------------------------------------------------------------------- governance messages
@dataclass(frozen=True, slots=True)
class SubmitProposal:
    """Propose ``actions`` (typed, see above), escrowing ``deposit`` BGOV from the sender."""
    title: str
    description: str
    actions: tuple
    deposit: str


@dataclass(frozen=True, slots=True)
class Vote:
    proposal_id: str
    option: str                            # yes | no | abstain | veto
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Queue:
    proposal_id: str


@dataclass(frozen=True, slots=True)
class Execute:
    proposal_id: str


@dataclass(frozen=True, slots=True)
class CancelProposal:
    proposal_id: str


# ------------------------------------------------------------------------------- guardian messages
@dataclass(frozen=True, slots=True)
class GuardianPause:
    """Pause ``scope`` (market | reduce_only | trading | withdrawals; ``market`` for the first two)
    for ``duration_s`` seconds of block time (``bastion.core.guardian``)."""
    scope: str
    duration_s: int
    market: str | None = None


@dataclass(frozen=True, slots=True)
class GuardianUnpause:
    """Lift the guardian's own pause, only within the unpause grace after its start."""
    scope: str
    market: str | None = None


@dataclass(frozen=True, slots=True)
class GuardianVeto:
    """Veto a succeeded or queued proposal; the reason is required."""
    proposal_id: str
    reason: str
@dataclass(frozen=True, slots=True)
class CouncilAttest:
    """A council member's stress verdict on a queued proposal: ``pass`` or ``fail`` for the report
    whose SHA-256 is ``report_hash`` (64 lowercase hex)."""
    proposal_id: str
    report_hash: str
    verdict: str


@dataclass(frozen=True, slots=True)
class StewardChange:
    """A council member's approval to set ``param`` (dotted name) to ``value`` (decimal string as in
    the governance action that sets it) without a vote; applies at the k-th approval."""
    param: str
    value: str


MESSAGE_TYPES: dict[str, type] = {
    "deposit": Deposit,
    "withdraw": Withdraw,
    "transfer": Transfer,
    "place_order": PlaceOrder,
    "cancel_order": CancelOrder,
    "cancel_all": CancelAll,
    "set_leverage": SetLeverage,
    "set_margin_mode": SetMarginMode,
    "oracle_update": OracleUpdate,
    "transfer_bgov": TransferBgov,
    "delegate": Delegate,
    "submit_proposal": SubmitProposal,
    "vote": Vote,
    "queue": Queue,
    "execute": Execute,
    "cancel_proposal": CancelProposal,
    "guardian_pause": GuardianPause,
    "guardian_unpause": GuardianUnpause,
    "guardian_veto": GuardianVeto,
    "council_attest": CouncilAttest,
    "steward_change": StewardChange,
}

Message = (Deposit | Withdraw | Transfer | PlaceOrder | CancelOrder | CancelAll | SetLeverage | SetMarginMode
           | OracleUpdate | TransferBgov | Delegate | SubmitProposal | Vote | Queue | Execute | CancelProposal
           | GuardianPause | GuardianUnpause | GuardianVeto | CouncilAttest | StewardChange)

_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "str": (str,), "bool": (bool,), "int | None": (int, type(None)),
    "str | None": (str, type(None)), "dict[str, str]": (dict,), "dict": (dict,), "tuple": (list,),
    "list[str]": (list,),
    "dict | None": (dict, type(None)),
    "list | None": (list, type(None)),
}
MAX_ACTIONS = 16


def decode_message(data: Any) -> Message:
    """Build a typed message from its JSON object, rejecting unknown types, fields and JSON types."""
    if not isinstance(data, dict):
        raise ProtocolError("invalid_message", "a message must be a JSON object", field="msg")
    kind = data.get("type")
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        if isinstance(kind, str) and kind in ACTION_TYPES:
            raise action_requires_proposal(kind)
        raise ProtocolError("unknown_message_type", f"unknown message type {kind!r}", field="type")
    values = _decode_fields(str(kind), cls, data, prefix="")
    if cls is OracleUpdate:
        prices = values["prices"]
        if not prices or not all(isinstance(k, str) and isinstance(v, str) for k, v in prices.items()):
            raise ProtocolError("invalid_field", "oracle_update.prices must map tickers to decimal strings",
                                field="prices")
    if cls is SubmitProposal:
        actions = values["actions"]
        if not actions:
            raise ProtocolError("no_actions", "a proposal needs at least one action", field="actions")
        if len(actions) > MAX_ACTIONS:
            raise ProtocolError("too_many_actions", f"a proposal has at most {MAX_ACTIONS} actions", field="actions")
        values["actions"] = tuple(decode_action(action, index) for index, action in enumerate(actions))
    return cls(**values)


def decode_action(data: Any, index: int) -> Action:
    """One governance action from its JSON object (``{"type": "set_market_params", ...}``)."""
    prefix = f"actions[{index}]."
    if not isinstance(data, dict):
        raise ProtocolError("invalid_action", "an action must be a JSON object", field=prefix[:-1])
    kind = data.get("type")
    cls = ACTION_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError("unknown_action_type", f"unknown action type {kind!r}", field=prefix + "type")
    values = _decode_fields(str(kind), cls, data, prefix=prefix)
    if cls is SetOracleOperators:
        values["operators"] = tuple(values["operators"])   # immutable, like a proposal's actions
    return cls(**values)


def canonical_action(action: Action) -> dict[str, Any]:
    """An action as the proposal id hashes it: its ``type`` and every field (None when omitted),
    except the ``LATER_FIELDS`` that are not set."""
    later = LATER_FIELDS.get(type(action), ())
    values = {f.name: getattr(action, f.name) for f in fields(action)}  # type: ignore[arg-type]
    return {"type": ACTION_NAMES[type(action)],
            **{name: value for name, value in values.items() if value is not None or name not in later}}


# per message or action class: its field names (with "type") and, per field, the JSON types allowed,
# whether a bool is refused (bool is an int subclass in Python) and whether the field is required
_FieldSpec = tuple[str, tuple[type, ...], bool, bool]
_FIELD_SPECS: dict[type, tuple[frozenset[str], tuple[_FieldSpec, ...]]] = {}


def _field_specs(cls: type) -> tuple[frozenset[str], tuple[_FieldSpec, ...]]:
    """``cls``'s decoding table, built once from its dataclass fields (their annotations' text:
    postponed annotations)."""
    specs = _FIELD_SPECS.get(cls)
    if specs is None:
        table: list[_FieldSpec] = []
        for f in fields(cls):
            allowed = _FIELD_TYPES[str(f.type)]
            table.append((f.name, allowed, bool not in allowed, f.default is MISSING))
        specs = _FIELD_SPECS[cls] = (frozenset(name for name, *_ in table) | {"type"}, tuple(table))
    return specs


def _decode_fields(kind: str, cls: type, data: dict, *, prefix: str) -> dict[str, Any]:
    names, table = _field_specs(cls)
    if not names.issuperset(data):
        extra = sorted(set(data) - names)
        raise ProtocolError("unknown_field", f"{kind} has no field {extra[0]!r}", field=prefix + extra[0])
    values: dict[str, Any] = {}
    for name, allowed, refuses_bool, required in table:
        if name not in data:
            if required:
                raise ProtocolError("missing_field", f"{kind} needs field {name!r}", field=prefix + name)
            continue
        value = data[name]
        if not isinstance(value, allowed) or (refuses_bool and isinstance(value, bool)):
            raise ProtocolError("invalid_field", f"{kind}.{name} has the wrong type: {value!r}", field=prefix + name)
        values[name] = value
    return values
