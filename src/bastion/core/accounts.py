"""Subaccount lookups and the collateral messages: deposit, withdraw, transfer, leverage, margin mode.

Each handler validates everything first and only then applies, so a rejection changes nothing.
Funding is settled (``settle_funding``) on every subaccount an applied message touches.
A guardian ``withdrawals`` pause refuses withdrawals and transfers to other owners
(``guardian.check_withdrawals_open``). Collateral leaving a subaccount may not take it below the
open-order tier of its open orders (``check_open_orders_covered``).
"""
from __future__ import annotations

from typing import Any

from bastion.core import guardian
from bastion.core.errors import ProtocolError
from bastion.core.margin import cost_after, get_net_collateral, get_pending_funding, get_subaccount_risk
from bastion.core.messages import Deposit, SetLeverage, SetMarginMode, Transfer, Withdraw, normalize_address
from bastion.core.params import open_order_limit
from bastion.core.state import CROSS, CROSS_POOL, ISOLATED, SUBACCOUNT_NUMBERS, Market, Position, State, Subaccount
from bastion.core.units import PPM, format_usdc, parse_ppm, parse_usdc

Events = list[dict[str, Any]]


# --------------------------------------------------------------------------------------- lookups
def check_subaccount_number(number: int) -> None:
    """Refuse (``invalid_subaccount``) a subaccount number outside 0..127."""
    if number not in SUBACCOUNT_NUMBERS:
        raise ProtocolError("invalid_subaccount", f"subaccount number must be 0..127, got {number}",
                            field="subaccount")


def get_own_subaccount(state: State, sender: str, number: int) -> Subaccount:
    """The sender's subaccount ``number``; only its owner may act on it."""
    check_subaccount_number(number)
    sub = state.subaccounts.get((sender, number))
    if sub is None:
        raise ProtocolError("subaccount_not_found",
                            f"{sender} has no subaccount {number} (deposit or transfer into it first)",
                            field="subaccount")
    return sub


def get_or_create_subaccount(state: State, owner: str, number: int) -> Subaccount:
    """Subaccount ``number`` of ``owner``, created empty (cross margin, no balance) if it does not exist
    yet: the receiving end of a deposit or transfer."""
    sub = state.subaccounts.get((owner, number))
    if sub is None:
        sub = Subaccount(owner, number)
        state.subaccounts[(owner, number)] = sub
        state.touch(sub.key)
    return sub


def get_market(state: State, ticker: str) -> Market:
    """The market ``ticker``, or ``unknown_market``."""
    market = state.markets.get(ticker)
    if market is None:
        raise ProtocolError("unknown_market", f"unknown market {ticker!r}", field="market")
    return market


def parse_positive_usdc(text: str, *, field: str = "amount") -> int:
    """A USDC amount in micro-USDC (``units.parse_usdc``: ``invalid_decimal``, ``too_many_decimals``...)
    that must be above zero (``non_positive_amount``)."""
    amount = parse_usdc(text, field=field)
    if amount <= 0:
        raise ProtocolError("non_positive_amount", f"{field} must be positive", field=field)
    return amount


def subaccount_pool(state: State, sub: Subaccount) -> str:
    """The collateral pool (and insurance fund) of a subaccount: its isolated-only market's, else cross."""
    if sub.mode == ISOLATED and sub.isolated_market is not None:
        return state.markets[sub.isolated_market].pool
    return CROSS_POOL


def check_withdrawals_open(state: State, sub: Subaccount, to_pool: str | None = None) -> None:
    """Reject taking collateral out of a pool whose withdrawals are paused (DESIGN.md section 3):
    a withdrawal, or a transfer to a subaccount of another pool (``to_pool``)."""
    pool = subaccount_pool(state, sub)
    until = state.withdrawals_paused_until.get(pool, 0)
    if state.height <= until and to_pool != pool:
        raise ProtocolError("withdrawals_paused",
                            f"withdrawals from the {pool} pool are paused until block {until} "
                            f"(an account with negative equity was seen in it)", field="subaccount",
                            paused_until=until)


# --------------------------------------------------------------------------------------- mutation
def settle_funding(state: State, sub: Subaccount, events: Events) -> None:
    """Pay or collect the subaccount's pending funding; the protocol funding account is the other side.
    A ``funding_payment`` event (amount received, negative when paid) records every non-zero one."""
    if not has_accrued_funding(state, sub):
        return  # nothing accrued since the last settlement (also true when flat)
    markets = state.markets
    amount = get_pending_funding(state, sub)
    for ticker, position in sub.positions.items():
        position.funding_index = markets[ticker].funding_index
    sub.balance += amount
    state.funding_account -= amount
    state.touch(sub.key)
    state.touch(("global",))
    if amount:
        events.append({"type": "funding_payment", "owner": sub.owner, "number": sub.number, "amount": amount})


def has_accrued_funding(state: State, sub: Subaccount) -> bool:
    """True when a market's funding index has moved since one of the subaccount's positions settled."""
    markets = state.markets
    for ticker, position in sub.positions.items():
        if position.funding_index != markets[ticker].funding_index:
            return True
    return False


def change_position(state: State, sub: Subaccount, market: Market, delta: int, ticks: int) -> None:
    """Add ``delta`` lots traded at ``ticks`` to the subaccount's position (funding must already be
    settled), keeping its cost: opened lots add their notional, closed lots remove their share."""
    position = sub.positions.get(market.ticker)
    if position is None:
        sub.positions[market.ticker] = Position(delta, market.funding_index, cost_after(market, 0, 0, delta, ticks))
        market.holders[(sub.owner, sub.number)] = None
        return
    position.cost = cost_after(market, position.size, position.cost, delta, ticks)
    position.size += delta
    if position.size == 0:
        del sub.positions[market.ticker]
        del market.holders[(sub.owner, sub.number)]


def check_free_collateral(state: State, sub: Subaccount, amount: int) -> None:
    """Reject a debit of ``amount`` that would leave the subaccount below its initial margin."""
    net_collateral, initial, _ = get_subaccount_risk(state, sub, balance_delta=-amount)
    if net_collateral < initial:
        free = net_collateral + amount - initial
        raise ProtocolError("insufficient_free_collateral",
                            f"amount exceeds free collateral ({max(free, 0)} micro-USDC available)",
                            field="amount", free_collateral=max(free, 0))


# --------------------------------------------------------------------------------------- handlers
def deposit(state: State, sender: str, msg: Deposit, events: Events) -> dict[str, Any]:
    """Credit ``amount`` USDC to subaccount ``subaccount`` of ``owner`` (created if new), as the bridge
    reports it. Refusals: ``not_bridge_operator`` (only the bridge operator credits deposits),
    ``invalid_address``, ``invalid_subaccount``, ``non_positive_amount`` and the decimal parsing codes."""
    if sender != state.bridge_operator:
        raise ProtocolError("not_bridge_operator", "only the bridge operator may credit deposits", field="sender")
    owner = normalize_address(msg.owner, field="owner")
    check_subaccount_number(msg.subaccount)
    amount = parse_positive_usdc(msg.amount)
    sub = get_or_create_subaccount(state, owner, msg.subaccount)
    sub.balance += amount
    state.total_deposits += amount
    state.touch(sub.key)
    state.touch(("global",))
    events.append({"type": "deposit", "owner": owner, "number": msg.subaccount, "amount": amount})
    return {}


def check_open_orders_covered(state: State, sub: Subaccount, amount: int) -> None:
    """Collateral that leaves a subaccount (withdrawal, transfer) may not take its equity below the
    open-order tier of the orders it keeps open (``params.open_order_limit``, docs/protocol.md
    "Anti-spam"): otherwise the same collateral, moved from subaccount to subaccount, would rest
    the tier's orders in each. Refusal ``too_many_open_orders``: cancel orders first."""
    open_orders = len(sub.orders) + len(sub.conditional_orders)
    if not open_orders:
        return
    equity = get_net_collateral(state, sub) - amount
    allowed, _ = open_order_limit(state.order_limits, equity)
    if open_orders > allowed:
        raise ProtocolError("too_many_open_orders",
                            f"subaccount {sub.number} keeps {open_orders} open orders; with {format_usdc(equity)} "
                            f"USDC of equity left it could keep {allowed}: cancel orders first", field="amount",
                            open_orders=open_orders, allowed=allowed)


def withdraw(state: State, sender: str, msg: Withdraw, events: Events) -> dict[str, Any]:
    """Take ``amount`` USDC out of one of the sender's subaccounts (funding settled first). Refusals:
    ``invalid_subaccount``, ``subaccount_not_found``, ``non_positive_amount``,
    ``withdrawals_paused_by_guardian``, ``withdrawals_paused`` (the subaccount's insurance pool is
    paused after a loss), ``insufficient_free_collateral`` (initial margin must still be met) and
    ``too_many_open_orders`` (the equity left must cover the open orders' tier)."""
    sub = get_own_subaccount(state, sender, msg.subaccount)
    amount = parse_positive_usdc(msg.amount)
    guardian.check_withdrawals_open(state, sender, None)
    check_withdrawals_open(state, sub)
    check_free_collateral(state, sub, amount)
    check_open_orders_covered(state, sub, amount)
    settle_funding(state, sub, events)
    sub.balance -= amount
    state.total_withdrawals += amount
    state.touch(sub.key)
    state.touch(("global",))
    events.append({"type": "withdrawal", "owner": sender, "number": msg.subaccount, "amount": amount})
    return {}


def transfer(state: State, sender: str, msg: Transfer, events: Events) -> dict[str, Any]:
    """Move ``amount`` USDC from one of the sender's subaccounts to any subaccount (created if new),
    funding settled on both. Refusals: ``invalid_subaccount``, ``subaccount_not_found``,
    ``invalid_address``, ``invalid_recipient`` (the same subaccount), ``non_positive_amount``,
    ``withdrawals_paused_by_guardian``, ``withdrawals_paused``, ``insufficient_free_collateral`` and
    ``too_many_open_orders``, as for ``withdraw``."""
    sub = get_own_subaccount(state, sender, msg.subaccount)
    to_owner = normalize_address(msg.to_owner, field="to_owner")
    check_subaccount_number(msg.to_subaccount)
    if (to_owner, msg.to_subaccount) == (sender, msg.subaccount):
        raise ProtocolError("invalid_recipient", "cannot transfer to the same subaccount", field="to_subaccount")
    amount = parse_positive_usdc(msg.amount)
    existing = state.subaccounts.get((to_owner, msg.to_subaccount))
    guardian.check_withdrawals_open(state, sender, to_owner)
    check_withdrawals_open(state, sub, CROSS_POOL if existing is None else subaccount_pool(state, existing))
    check_free_collateral(state, sub, amount)
    check_open_orders_covered(state, sub, amount)
    settle_funding(state, sub, events)
    recipient = get_or_create_subaccount(state, to_owner, msg.to_subaccount)
    settle_funding(state, recipient, events)
    sub.balance -= amount
    recipient.balance += amount
    state.touch(sub.key)
    state.touch(recipient.key)
    events.append({"type": "transfer", "owner": sender, "number": msg.subaccount, "to_owner": to_owner,
                   "to_number": msg.to_subaccount, "amount": amount})
    return {}


def set_leverage(state: State, sender: str, msg: SetLeverage, events: Events) -> dict[str, Any]:
    """Set the subaccount's initial margin fraction in one market (a leverage cap), at least its
    tier's. Refusals: ``invalid_subaccount``, ``subaccount_not_found``, ``unknown_market``,
    ``leverage_below_tier``, ``invalid_field`` (above 100%) and ``insufficient_margin`` (a stricter
    setting the account would not meet; a looser one is always accepted)."""
    sub = get_own_subaccount(state, sender, msg.subaccount)
    market = get_market(state, msg.market)
    imf = parse_ppm(msg.initial_margin, field="initial_margin")
    tier_imf = state.tiers[market.tier_id].initial_margin_ppm
    if imf < tier_imf:
        raise ProtocolError("leverage_below_tier",
                            f"initial margin must be at least the tier's {tier_imf} ppm", field="initial_margin")
    if imf > PPM:
        raise ProtocolError("invalid_field", "initial margin cannot exceed 100%", field="initial_margin")
    previous = sub.imf_overrides.get(market.ticker)
    sub.imf_overrides[market.ticker] = imf
    net_collateral, initial, _ = get_subaccount_risk(state, sub)
    if net_collateral < initial and imf > (previous or tier_imf):
        if previous is None:
            del sub.imf_overrides[market.ticker]
        else:
            sub.imf_overrides[market.ticker] = previous
        raise ProtocolError("insufficient_margin", "the account would fall below its new initial margin",
                            field="initial_margin")
    state.touch(sub.key)
    events.append({"type": "leverage_set", "owner": sender, "number": msg.subaccount, "market": market.ticker,
                   "initial_margin_ppm": imf})
    return {}


def set_margin_mode(state: State, sender: str, msg: SetMarginMode, events: Events) -> dict[str, Any]:
    """Switch a flat subaccount between cross margin and isolated to one market. Refusals:
    ``invalid_subaccount``, ``subaccount_not_found``, ``invalid_field`` (a mode other than cross or
    isolated, or a market with cross), ``subaccount_not_flat`` (positions or orders open),
    ``missing_field`` (isolated without a market) and ``unknown_market``."""
    sub = get_own_subaccount(state, sender, msg.subaccount)
    if msg.mode not in (CROSS, ISOLATED):
        raise ProtocolError("invalid_field", "mode must be 'cross' or 'isolated'", field="mode")
    if sub.positions or sub.orders or sub.conditional_orders:
        raise ProtocolError("subaccount_not_flat",
                            "close positions and cancel orders before changing the margin mode", field="mode")
    if msg.mode == ISOLATED:
        if msg.market is None:
            raise ProtocolError("missing_field", "isolated mode needs a market", field="market")
        market = get_market(state, msg.market).ticker
    else:
        if msg.market is not None:
            raise ProtocolError("invalid_field", "cross mode takes no market", field="market")
        market = None
    sub.mode = msg.mode
    sub.isolated_market = market
    state.touch(sub.key)
    events.append({"type": "margin_mode_set", "owner": sender, "number": msg.subaccount, "mode": msg.mode,
                   "market": market})
    return {}
