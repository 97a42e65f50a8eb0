"""The closed vocabularies of markets, accounts and orders, each defined once as a ``StrEnum``.

A member *is* its string (``MarketStatus.FINAL_SETTLEMENT == "final_settlement"``, same hash, same
JSON, same f-string), so the wire forms, the log, snapshots and the state hash are exactly those of
the bare strings. State fields are annotated ``str`` and hold either a member (set by the state
machine) or the equal string read from JSON (genesis, a snapshot, a message); code compares them
with members and never needs to convert. Membership checks of untrusted input use the tuples
below (``value in MARKET_STATUSES``), which hold the members.

The governance vocabularies (proposal and rollout statuses, pause scopes, council verdicts, steward
bound kinds) live with the governance code.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Final


class Vocabulary(StrEnum):
    """A StrEnum whose members are indistinguishable from their strings wherever they are written:
    ``str``, f-strings, JSON and also ``repr`` (an error message such as ``f"one of {sorted(...)}"``
    reads ``['active', 'paused']`` as it did with bare strings, not ``[<MarketStatus.ACTIVE: ...>]``)."""

    def __repr__(self) -> str:
        return str.__repr__(self)


class MarketStatus(Vocabulary):
    """A market's trading status (``Market.status``)."""

    ACTIVE = "active"                      # trading
    REDUCE_ONLY = "reduce_only"            # only orders that reduce a position
    PAUSED = "paused"                      # no trading
    FINAL_SETTLEMENT = "final_settlement"  # delisted: every position closes at the settlement price
    SETTLED = "settled"                    # delisted and closed; nothing more happens in it


class MarginMode(Vocabulary):
    """How a subaccount's collateral backs its positions (``Subaccount.mode``)."""

    CROSS = "cross"                        # one balance for every cross market
    ISOLATED = "isolated"                  # one isolated market (``Subaccount.isolated_market``)


class OrderType(Vocabulary):
    """A ``place_order``'s type: a limit or market order, or a conditional one that submits its
    underlying type when the oracle price crosses its trigger."""

    LIMIT = "limit"
    MARKET = "market"
    STOP_MARKET = "stop_market"
    STOP_LIMIT = "stop_limit"
    TAKE_PROFIT_MARKET = "take_profit_market"
    TAKE_PROFIT_LIMIT = "take_profit_limit"


class TimeInForce(Vocabulary):
    """How long an order may rest (``Order.time_in_force``)."""

    GTC = "gtc"                            # good till cancelled
    GTT = "gtt"                            # good till a time (``good_til``)
    IOC = "ioc"                            # immediate or cancel: the remainder never rests
    FOK = "fok"                            # fill or kill: all at once or nothing
    POST_ONLY = "post_only"                # rests, refused if it would take liquidity


class SelfTrade(Vocabulary):
    """What happens when an order would fill against a resting order of the same owner (``Order.self_trade``)."""

    CANCEL_RESTING = "cancel_resting"
    CANCEL_TAKING = "cancel_taking"
    DECREMENT = "decrement"                # both shrink by the overlap, no fill


MARKET_STATUSES: Final = tuple(MarketStatus)
DELISTED: Final = (MarketStatus.FINAL_SETTLEMENT, MarketStatus.SETTLED)  # for the governance and guardian rules
TRADING: Final = (MarketStatus.ACTIVE, MarketStatus.REDUCE_ONLY)  # statuses that accept orders
MARGIN_MODES: Final = tuple(MarginMode)
ORDER_TYPES: Final = (OrderType.LIMIT, OrderType.MARKET)
# a conditional order type -> the type it enters the book as
UNDERLYING_ORDER_TYPES: Final[dict[str, OrderType]] = {
    OrderType.STOP_MARKET: OrderType.MARKET, OrderType.STOP_LIMIT: OrderType.LIMIT,
    OrderType.TAKE_PROFIT_MARKET: OrderType.MARKET, OrderType.TAKE_PROFIT_LIMIT: OrderType.LIMIT}
CONDITIONAL_ORDER_TYPES: Final = tuple(UNDERLYING_ORDER_TYPES)
STOP_ORDER_TYPES: Final = (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)
TIME_IN_FORCE: Final = tuple(TimeInForce)
RESTING_TIME_IN_FORCE: Final = (TimeInForce.GTC, TimeInForce.GTT, TimeInForce.POST_ONLY)
SELF_TRADE_MODES: Final = tuple(SelfTrade)


class AgentPermission(Vocabulary):
    """What an agent key may do for its owner (``authorize_agent.permissions``, ``bastion.core.agents``)."""

    TRADE = "trade"                        # place orders
    CANCEL = "cancel"                      # cancel orders (cancel_order, cancel_all)


AGENT_PERMISSIONS: Final = tuple(AgentPermission)


class StakingLossMode(Vocabulary):
    """How an insurance fund's loss is split between its stakers and its protocol-owned part
    (``InsuranceStakingParams.loss_mode``, ``bastion.core.staking``)."""

    PRO_RATA = "pro_rata"                  # in proportion to the two parts
    FIRST_LOSS = "first_loss"              # the stakers' part first, the protocol-owned part after


STAKING_LOSS_MODES: Final = tuple(StakingLossMode)


class FundFlow(Vocabulary):
    """What moves an insurance fund, which decides the stakers' part of it (``bastion.core.staking.move_fund``)."""

    FEE = "fee"                            # trading and liquidation fees: the governed staker share
    RESULT = "result"                      # backstop results and deficits paid: gains pro rata, losses by loss_mode
    PROTOCOL = "protocol"                  # governance transfers, settlement rounding: the protocol-owned part only
