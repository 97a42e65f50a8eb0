"""Liquidations, auto-deleveraging and final settlement: end-of-block steps (DESIGN.md section 8).

``settle_final_markets`` closes every position of a market in ``final_settlement`` and marks it
``settled``. ``liquidate`` then works through the liquidatable subaccounts:

1. **Who.** Candidates are the subaccounts that can have become liquidatable since the last scan:
   those touched this block, the holders of a market whose oracle price, funding index or governed
   parameters moved, and those left liquidatable by the last scan (``State.liquidation_watch``).
   A healthy account with no position in a moved market is never valued. A candidate is
   liquidatable when ``MMR > 0 and TNC < MMR`` and no market it holds is stale; one with negative
   TNC pauses withdrawals from its collateral pool (``withdrawal_pause_blocks``).
2. **Order.** Subaccounts by ``(TNC/MMR ascending, owner, number)``; within one, positions by
   maintenance margin descending (then ticker), each at most once per block. The subaccount's
   resting orders are cancelled first (reason ``liquidation``).
3. **Size.** ``risk_model.liquidation_size`` with the block limits: minimum position notional,
   maximum portion, and what is left of the subaccount's notional per block (at least one lot while
   that is positive, so that a coarse lot cannot stall a liquidation).
4. **Price.** An IOC against the book up to ``risk_model.fillable_price`` (rounded to the tick
   grid in the liquidated account's favour), at the makers' prices, with no taker fee and no maker
   rebate (a positive maker fee is charged). Makers are judged as in normal matching (reduce-only,
   including a guardian ``reduce_only`` pause, margin: a maker that would breach is cancelled);
   a guardian ``market`` or ``trading`` pause does not stop liquidations (``bastion.core.guardian``); a maker of the same owner is cancelled
   (``self_trade``) so that nobody can buy their own liquidation at the insurance fund's expense.
5. **Insurance.** Per fill, ``risk_model.insurance_fund_delta`` against the bankruptcy quote of
   that fill: a fill better than bankruptcy pays the (capped) fee to the fund of the market's pool;
   a worse fill is paid by the fund, only while the fund holds enough and the subaccount's fund
   loss this block stays within ``max_insurance_loss_per_block`` (else the liquidation stops).
6. **Deleveraging.** If the account's TNC is negative and the book or the fund could not take the
   whole attempted size, its position in that market is closed against opposing positions at the
   bankruptcy price (``deleverage``): ranked by ``unrealised PnL ratio x leverage`` descending, then
   owner and number; each counterparty's update must be valid under the margin rules, else it is
   skipped. What no ranked counterparty can take is **socialised**: closed pro rata against every
   opposing position at the bankruptcy price, the loss relative to the oracle price recorded as bad
   debt of the pool. A solvent account that found no liquidity waits for the next block.

Every fill, fund movement, deleveraging and bad debt emits an event with its inputs.
"""
from __future__ import annotations

from fractions import Fraction

from bastion.core import guardian
from bastion.core.accounts import change_position, settle_funding, subaccount_pool
from bastion.core.book import BUY, FILL_CANCEL_MAKER as REMOVE_MAKER, FILL_STOP as STOP, SELL, Order
from bastion.core.errors import InvariantViolation
from bastion.core.margin import (
    compute_position_risk,
    cost_change,
    get_subaccount_risk,
    is_valid_update,
    open_interest_change,
)
from bastion.core.orders import apply_fill, drop_order, fill_notional, remove_conditional_order, remove_order
from bastion.core.state import ACTIVE, REDUCE_ONLY, Market, State, Subaccount
from bastion.core.units import USDC_DECIMALS, fee_for
from bastion.risk_model import (
    bankruptcy_amount,
    fillable_price,
    insurance_fund_delta,
    is_liquidatable,
    liquidation_size,
    notional,
)

Events = list[dict]
SubKey = tuple[str, int]

FINAL_SETTLEMENT = "final_settlement"
SETTLED = "settled"


# --------------------------------------------------------------------------------------- the step
def liquidate(state: State, events: Events) -> None:
    """End-of-block step: liquidate, and deleverage where needed, every liquidatable subaccount."""
    ranked: list[tuple[Fraction, str, int]] = []
    watch: dict[SubKey, None] = {}
    for key in _candidates(state):
        sub = state.subaccounts.get(key)
        if sub is None or not sub.positions:
            continue
        net_collateral, _, maintenance = get_subaccount_risk(state, sub)
        if net_collateral < 0:
            _pause_withdrawals(state, subaccount_pool(state, sub), events)
        if not is_liquidatable(net_collateral, maintenance):
            continue
        watch[key] = None
        stale = [t for t in sub.positions if state.markets[t].stale]
        if stale:
            events.append({"type": "liquidation_deferred", "owner": sub.owner, "number": sub.number,
                           "reason": "stale_oracle", "markets": stale})
            continue
        ranked.append((Fraction(net_collateral, maintenance), sub.owner, sub.number))
    ranked.sort()
    for _, owner, number in ranked:
        _liquidate_subaccount(state, state.subaccounts[(owner, number)], events)
    for market in state.markets.values():
        market.scanned = (market.oracle_price, market.funding_index, state.params_epoch)
    state.liquidation_watch = watch


def _candidates(state: State) -> list[SubKey]:
    """Subaccounts whose risk may have changed since the last scan (see the module docstring)."""
    candidates: dict[SubKey, None] = dict(state.liquidation_watch)
    for key in state.dirty:
        if key[0] == "sub":
            candidates[(key[1], key[2])] = None
    for market in state.markets.values():
        if market.scanned != (market.oracle_price, market.funding_index, state.params_epoch):
            candidates.update(market.holders)
    return sorted(candidates)


def _pause_withdrawals(state: State, pool: str, events: Events) -> None:
    until = state.height + state.liquidation.withdrawal_pause_blocks
    if state.withdrawals_paused_until.get(pool, -1) < until:
        if state.withdrawals_paused_until.get(pool, -1) < state.height:
            events.append({"type": "withdrawals_paused", "pool": pool, "until_height": until})
        state.withdrawals_paused_until[pool] = until
        state.touch(("global",))


def _liquidate_subaccount(state: State, sub: Subaccount, events: Events) -> None:
    for order_id, ticker in list(sub.orders.items()):
        remove_order(state, state.markets[ticker], order_id, "liquidation", events)
    params = state.liquidation
    budget = _Budget(params.max_notional_per_block_usdc, params.max_insurance_loss_per_block_usdc)
    risk = get_subaccount_risk(state, sub)
    # by maintenance margin descending, then ticker (valuations memoised by get_subaccount_risk)
    order = sorted(sub.positions, key=lambda t: (-sub.positions[t].risk[2], t))
    for ticker in order:
        if not is_liquidatable(risk[0], risk[2]):
            return
        market = state.markets[ticker]
        if market.status not in (ACTIVE, REDUCE_ONLY) or ticker not in sub.positions:
            continue  # paused (or settling) markets do not trade; the account waits
        attempted, filled = _liquidate_position(state, sub, market, risk, budget, events)
        if filled:
            risk = get_subaccount_risk(state, sub)
        if filled < attempted and risk[0] < 0:
            deleverage(state, sub, market, events)
            risk = get_subaccount_risk(state, sub)


class _Budget:
    """What a subaccount may still have liquidated this block: notional and insurance-fund loss."""

    __slots__ = ("notional_left", "insurance_loss_left")

    def __init__(self, notional_left: int, insurance_loss_left: int) -> None:
        self.notional_left = notional_left
        self.insurance_loss_left = insurance_loss_left


def _liquidate_position(state: State, sub: Subaccount, market: Market, risk: tuple[int, int, int],
                        budget: _Budget, events: Events) -> tuple[int, int]:
    """Send the block's liquidation order for one position to the book; (lots attempted, filled).
    ``risk`` is the subaccount's current (TNC, IMR, MMR)."""
    params = state.liquidation
    position = sub.positions[market.ticker]
    side = SELL if position.size > 0 else BUY
    book = market.book
    if (book.best_bid() if side == SELL else book.best_ask()) is None:  # nothing to sell to (buy from)
        events.append({"type": "liquidation_incomplete", "owner": sub.owner, "number": sub.number,
                       "market": market.ticker, "reason": "empty_book"})
        return 1, 0
    lots = abs(liquidation_size(
        position.size, market.oracle_price, size_decimals=market.size_decimals,
        price_decimals=market.price_decimals, min_position_notional=params.min_position_notional_usdc,
        max_position_portion_ppm=params.max_position_portion_ppm, subaccount_notional_left=budget.notional_left))
    if lots == 0 and budget.notional_left > 0:
        lots = 1
    if lots == 0:
        return 0, 0
    value, _, position_maintenance = position.risk  # fresh: ``risk`` was just computed
    price = fillable_price(value, position_maintenance, position.size, risk[0], risk[2],
                           bankruptcy_adjustment_ppm=params.bankruptcy_adjustment_ppm,
                           spread_to_maintenance_ppm=params.spread_to_maintenance_ppm)
    limit = _limit_ticks(market, price, side)
    fills = _LiquidationFills(state, market, sub, side, budget, price, limit, events)
    book.match(side, limit, lots, fills)
    if fills.filled < lots:
        events.append({"type": "liquidation_incomplete", "owner": sub.owner, "number": sub.number,
                       "market": market.ticker, "attempted": lots, "filled": fills.filled,
                       "reason": fills.stop_reason or "no_liquidity", "fillable_price": limit})
    return lots, fills.filled


def _limit_ticks(market: Market, price: Fraction, side: int) -> int:
    """The fillable price (micro-USDC per lot) on the tick grid, never worse for the liquidated
    account: up for a sale, down for a purchase (at least one tick)."""
    ticks = price * Fraction(10) ** (market.size_decimals + market.price_decimals - USDC_DECIMALS)
    if side == SELL:
        return max(1, -(-ticks.numerator // ticks.denominator))
    return max(1, ticks.numerator // ticks.denominator)


class _LiquidationFills:
    """The ``on_fill`` judge of one liquidation order (compare ``orders._Matcher.decide``)."""

    __slots__ = ("state", "market", "sub", "side", "budget", "fillable", "limit", "events", "filled",
                 "stop_reason")

    def __init__(self, state: State, market: Market, sub: Subaccount, side: int, budget: _Budget,
                 fillable: Fraction, limit: int, events: Events) -> None:
        self.state, self.market, self.sub, self.side = state, market, sub, side
        self.budget, self.fillable, self.limit, self.events = budget, fillable, limit, events
        self.filled = 0
        self.stop_reason = ""

    def __call__(self, maker: Order, lots: int) -> int:
        state, market, sub = self.state, self.market, self.sub
        maker_sub = state.subaccounts[(maker.owner, maker.number)]
        if maker.owner == sub.owner:
            self._cancel(maker, maker_sub, "self_trade")
            return REMOVE_MAKER
        sign = 1 if self.side == BUY else -1  # the liquidated account's delta per lot
        maker_position = maker_sub.positions.get(market.ticker)
        maker_size = maker_position.size if maker_position is not None else 0
        if maker.reduce_only or market.status == REDUCE_ONLY or market.stale or guardian.is_reduce_only(state,
                                                                                                     market.ticker):
            cap = abs(maker_size) if maker_size * sign > 0 else 0
            if cap == 0:
                self._cancel(maker, maker_sub, "reduce_only")
                return REMOVE_MAKER
            lots = min(lots, cap)
        position = sub.positions[market.ticker]
        delta = sign * lots
        quote = fill_notional(market, delta, maker.price)  # what the liquidated account pays (signed)
        bankruptcy, net_collateral, maintenance = bankruptcy_quote(state, sub, market, delta)
        insurance = insurance_fund_delta(-quote, bankruptcy, state.liquidation.max_liquidation_fee_ppm)
        pool = market.pool
        if insurance < 0 and (state.insurance_funds[pool] < -insurance
                              or self.budget.insurance_loss_left < -insurance):
            self.stop_reason = "insurance_fund"
            return STOP
        maker_fee = fee_for(abs(quote), max(market.maker_fee_ppm, 0))
        oi_delta = open_interest_change(position.size, delta, maker_size, -delta)
        maker_new = get_subaccount_risk(state, maker_sub, market, -delta, quote - maker_fee, oi_delta,
                                        cost_change(state, market, maker_position, -delta, maker.price))
        if maker_new[0] < maker_new[1] and not is_valid_update(get_subaccount_risk(state, maker_sub), maker_new):
            self._cancel(maker, maker_sub, "maker_margin")
            return REMOVE_MAKER
        fill = apply_fill(state, market, sub, None, self.side, maker, maker_sub, lots, delta, quote, maker_fee, 0,
                          oi_delta, events=self.events)
        fill["liquidation"] = True
        sub.balance -= insurance
        state.insurance_funds[pool] += insurance
        self.budget.notional_left -= abs(quote)
        self.budget.insurance_loss_left -= max(-insurance, 0)
        self.filled += lots
        self.events.append({
            "type": "liquidation", "owner": sub.owner, "number": sub.number, "market": market.ticker,
            "size": -delta, "fill_price": maker.price, "oracle_price": market.oracle_price,
            "net_collateral": net_collateral, "maintenance": maintenance, "bankruptcy_quote": bankruptcy,
            "fill_quote": -quote, "fillable_price": self.limit, "fillable_price_exact": str(self.fillable),
            "insurance_delta": insurance, "insurance_fund": state.insurance_funds[pool], "pool": pool,
            "maker": {"owner": maker.owner, "number": maker.number, "order_id": maker.order_id, "fee": maker_fee}})
        # the per-market count that staged rollouts' max_liquidations gate reads (core.rollout)
        state.liquidation_counts[market.ticker] = state.liquidation_counts.get(market.ticker, 0) + 1
        state.touch(("liquidations", market.ticker))
        return lots

    def _cancel(self, maker: Order, maker_sub: Subaccount, reason: str) -> None:
        drop_order(self.state, maker_sub, maker, self.market.ticker, reason, self.events)


def bankruptcy_quote(state: State, sub: Subaccount, market: Market, delta: int) -> tuple[int, int, int]:
    """(bankruptcy quote, TNC, total MMR): what the subaccount must receive (signed) for ``delta``
    lots of its position so that closing them uses exactly their share of its collateral
    (``risk_model.bankruptcy_amount``, with the account's totals before the change)."""
    net_collateral, _, maintenance = get_subaccount_risk(state, sub)
    position = sub.positions[market.ticker]
    override = sub.imf_overrides.get(market.ticker)
    old_value, _, old_maintenance = compute_position_risk(state, market, position.size, market.open_interest,
                                                          override)
    new_value, _, new_maintenance = compute_position_risk(state, market, position.size + delta,
                                                          market.open_interest, override)
    quote = bankruptcy_amount(new_value - old_value, net_collateral, new_maintenance - old_maintenance, maintenance)
    return quote, net_collateral, maintenance


# --------------------------------------------------------------------------------------- deleveraging
def deleverage(state: State, sub: Subaccount, market: Market, events: Events) -> None:
    """Close the subaccount's whole position in ``market`` at its bankruptcy price against ranked
    opposing positions, then socialise what none of them can take (module docstring, step 6)."""
    ticker = market.ticker
    settle_funding(state, sub, events)
    ranked = ranked_counterparties(state, market, sub)
    for score, counterparty in ranked:
        position = sub.positions.get(ticker)
        if position is None:
            return
        other = counterparty.positions[ticker]
        lots = min(abs(position.size), abs(other.size))
        delta = -lots if position.size > 0 else lots
        quote, net_collateral, maintenance = bankruptcy_quote(state, sub, market, delta)
        old = get_subaccount_risk(state, counterparty)
        new = get_subaccount_risk(state, counterparty, market, -delta, -quote, -lots,
                                  cost_change(state, market, other, -delta, market.oracle_price))
        if not is_valid_update(old, new):
            events.append({"type": "deleveraging_skipped", "market": ticker, "owner": counterparty.owner,
                           "number": counterparty.number, "reason": "counterparty_margin"})
            continue
        _close_pair(state, market, sub, counterparty, delta, quote, events)
        events.append({"type": "deleveraging", "market": ticker, "owner": sub.owner, "number": sub.number,
                       "size": -delta, "bankruptcy_quote": quote, "oracle_price": market.oracle_price,
                       "net_collateral": net_collateral, "maintenance": maintenance,
                       "counterparty": {"owner": counterparty.owner, "number": counterparty.number,
                                        "score": str(score)}})
    if ticker in sub.positions:
        socialise(state, sub, market, [c for _, c in ranked], events)


def ranked_counterparties(state: State, market: Market, sub: Subaccount) -> list[tuple[Fraction, Subaccount]]:
    """Opposing positions in the ADL order (DESIGN.md section 8): ``unrealised PnL / |cost| x
    |notional| / TNC`` descending (profit ratio times effective leverage), ties by owner and number.
    Counterparties with no positive equity come last, by owner and number."""
    ticker = market.ticker
    side = 1 if sub.positions[ticker].size > 0 else -1
    scored: list[tuple[int, Fraction, str, int, Subaccount]] = []
    for key in sorted(market.holders):
        other = state.subaccounts[key]
        position = other.positions[ticker]
        if position.size * side >= 0:
            continue
        net_collateral = get_subaccount_risk(state, other)[0]
        value = notional(position.size, market.oracle_price, size_decimals=market.size_decimals,
                         price_decimals=market.price_decimals)
        if net_collateral > 0:
            score = Fraction((value - position.cost) * abs(value), max(abs(position.cost), 1) * net_collateral)
            scored.append((0, -score, other.owner, other.number, other))
        else:
            scored.append((1, Fraction(0), other.owner, other.number, other))
    scored.sort(key=lambda entry: entry[:4])
    return [(-negated, other) for _, negated, _, _, other in scored]


def socialise(state: State, sub: Subaccount, market: Market, counterparties: list[Subaccount],
              events: Events) -> None:
    """Close what is left of the position at its bankruptcy price against every opposing position,
    pro rata to their sizes (remaining lots one each in ranking order), each paying its share of
    the bankruptcy quote (the remainder of the division likewise); the loss against the oracle
    price is recorded as the pool's bad debt."""
    ticker = market.ticker
    position = sub.positions[ticker]
    total_lots = abs(position.size)
    delta = -position.size
    quote, net_collateral, maintenance = bankruptcy_quote(state, sub, market, delta)
    opposing = [c for c in counterparties if ticker in c.positions]
    sizes = [abs(c.positions[ticker].size) for c in opposing]
    total_opposing = sum(sizes)
    if total_opposing < total_lots:
        raise InvariantViolation(f"{ticker}: {total_lots} lots to socialise, {total_opposing} opposing")
    # floor(T * s_i / S) <= s_i - 1 whenever T < S, so one more lot each never exceeds a position
    shares = [total_lots * size // total_opposing for size in sizes]
    for i in range(total_lots - sum(shares)):
        shares[i] += 1
    takers = [(c, lots) for c, lots in zip(opposing, shares) if lots]
    payments = [quote * lots // total_lots for _, lots in takers]
    for i in range(quote - sum(payments)):
        payments[i] += 1
    bad_debt = quote + notional(delta, market.oracle_price, size_decimals=market.size_decimals,
                                price_decimals=market.price_decimals)  # what it receives beyond the oracle value
    shares_out = []
    for (counterparty, lots), payment in zip(takers, payments):
        lot_delta = lots if delta > 0 else -lots
        _close_pair(state, market, sub, counterparty, lot_delta, payment, events)
        shares_out.append({"owner": counterparty.owner, "number": counterparty.number, "size": lots,
                           "payment": payment})
    pool = market.pool
    state.bad_debt[pool] = state.bad_debt.get(pool, 0) + bad_debt
    state.touch(("global",))
    events.append({"type": "bad_debt", "market": ticker, "owner": sub.owner, "number": sub.number,
                   "size": -delta, "bankruptcy_quote": quote, "oracle_price": market.oracle_price,
                   "net_collateral": net_collateral, "maintenance": maintenance, "amount": bad_debt,
                   "pool": pool, "shares": shares_out})


def _close_pair(state: State, market: Market, sub: Subaccount, counterparty: Subaccount, delta: int,
                quote: int, events: Events) -> None:
    """``sub`` trades ``delta`` lots with ``counterparty`` (both positions shrink), receiving ``quote``."""
    settle_funding(state, sub, events)
    settle_funding(state, counterparty, events)
    sub.balance += quote
    counterparty.balance -= quote
    change_position(state, sub, market, delta, market.oracle_price)
    change_position(state, counterparty, market, -delta, market.oracle_price)
    market.open_interest -= abs(delta)
    state.touch(sub.key)
    state.touch(counterparty.key)
    state.touch(market.key)


# --------------------------------------------------------------------------------------- final settlement
def settle_final_markets(state: State, events: Events) -> None:
    """End-of-block step: close every position of each market in ``final_settlement`` (not while its
    oracle is stale) and mark it ``settled`` (DESIGN.md section 8, delisting).

    Resting and untriggered conditional orders are cancelled. Accounts with negative TNC are deleveraged at their bankruptcy
    price (``deleverage``); every other position closes at the oracle price, longs receiving their
    notional rounded down and shorts paying theirs rounded up; the rounding difference goes to the
    pool's insurance fund, so collateral is conserved exactly.
    """
    for market in state.markets.values():
        if market.status != FINAL_SETTLEMENT or market.stale:
            continue
        ticker = market.ticker
        for order in list(market.book.orders()):
            remove_order(state, market, order.order_id, FINAL_SETTLEMENT, events)
        for order_id in [i for i, c in state.conditional_orders.items() if c.terms.market == ticker]:
            remove_conditional_order(state, order_id, FINAL_SETTLEMENT, events)
        for key in sorted(market.holders):
            sub = state.subaccounts[key]
            if ticker in sub.positions and get_subaccount_risk(state, sub)[0] < 0:
                deleverage(state, sub, market, events)
        residue = 0
        for key in sorted(market.holders):
            sub = state.subaccounts[key]
            settle_funding(state, sub, events)
            position = sub.positions[ticker]
            exact = Fraction(position.size * market.oracle_price) * Fraction(10) ** (
                USDC_DECIMALS - market.size_decimals - market.price_decimals)
            received = exact.numerator // exact.denominator  # floor: a long receives less, a short pays more
            residue -= received
            sub.balance += received
            events.append({"type": "final_settlement", "market": ticker, "owner": sub.owner, "number": sub.number,
                           "size": position.size, "oracle_price": market.oracle_price, "amount": received})
            change_position(state, sub, market, -position.size, market.oracle_price)
            state.touch(sub.key)
        state.insurance_funds[market.pool] += residue
        market.open_interest = 0
        market.status = SETTLED
        state.touch(market.key)
        state.touch(("global",))
        events.append({"type": "market_settled", "market": ticker, "oracle_price": market.oracle_price,
                       "rounding_to_insurance": residue})
