"""Liquidations, the loss waterfall and final settlement: end-of-block steps (DESIGN.md section 8).

``settle_final_markets`` closes every position of a market in ``final_settlement`` and marks it
``settled``. ``liquidate`` then works through the liquidatable subaccounts:

1. **Who.** Candidates are the subaccounts that can have become liquidatable since the last scan:
   those touched this block, the holders of a market whose oracle price, funding index or governed
   parameters moved, and those left liquidatable by the last scan (``State.liquidation_watch``).
   A healthy account with no position in a moved market is never valued. A candidate is
   liquidatable when ``MMR > 0 and TNC < MMR`` and no market it holds is stale; one with negative
   TNC pauses withdrawals from its collateral pool (``withdrawal_pause_blocks``). The backstops
   (below) are never liquidated.
2. **Order.** Subaccounts by ``(TNC/MMR ascending, owner, number)``; within one, positions by
   maintenance margin descending (then ticker), each at most once per block. The subaccount's
   resting orders are cancelled first (reason ``liquidation``).
3. **How many.** The work of one block is bounded (no input may stall a block): at most
   ``max_liquidations_per_block`` subaccounts, the first in that order, are worked on, and rungs 3
   and 4 run for at most ``max_deleveragings_per_block`` positions; the rest wait for the next
   block, still watched (``liquidation_deferred`` / ``deleveraging_deferred``, reason
   ``block_limit``). Each block starts from the worst account, so the backlog always shrinks.

Then, for each position, the **loss waterfall**: each rung only for what the rung above could not do.

Rung 1, the book. ``risk_model.liquidation_size`` with the block limits (minimum position notional,
   maximum portion, what is left of the subaccount's notional per block, at least one lot while that
   is positive) is sent as an IOC against the book up to ``risk_model.fillable_price`` (rounded to
   the tick grid in the liquidated account's favour), at the makers' prices, with no taker fee and
   no maker rebate (a positive maker fee is charged). Makers are judged as in normal matching
   (reduce-only, including a guardian ``reduce_only`` pause, margin: a maker that would breach is
   cancelled); a maker of the same owner is cancelled (``self_trade``). **Never into a halted
   book:** while a guardian ``market`` or ``trading`` pause holds the market, and during the
   ``liquidation_grace`` after it (``guardian.liquidation_hold``), rung 1 is skipped for that
   market: a solvent account waits (``liquidation_deferred``, its stall count frozen when every
   position waits), one at or below bankruptcy goes straight to rung 2 at the oracle price; the
   backstop does not unwind there either (issue 16, ``bastion.core.guardian``). Per fill,
   ``risk_model.insurance_fund_delta`` against the bankruptcy quote of that fill: a fill better than
   bankruptcy pays the (capped) fee to the fund of the market's pool; a worse fill is paid by the
   fund, only while the fund's equity (below) covers it and the subaccount's fund loss this block
   stays within ``max_insurance_loss_per_block`` (else the order stops). Retried every block.

Rung 2, the backstop. If the book did not take the whole attempted size and the account is at or
   below bankruptcy (TNC <= 0), or it has reduced nothing for ``backstop_after_blocks`` consecutive
   blocks while liquidatable (``State.liquidation_stalls``), the pool's **backstop** takes over the
   position (``backstop_takeover``). The backstop of a pool (the cross pool, or one isolated
   market) is the subaccount ``(BACKSTOP_PREFIX + pool, 0)``, e.g. ``backstop:cross``: not an
   address, so no signature, deposit or transfer can ever name it (messages accept only 0x-prefixed
   20-byte hex addresses); only this module moves it. The takeover is a trade at the oracle price
   in which the fund settles the difference to the bankruptcy quote exactly as rung 1 does for a
   fill (``insurance_fund_delta`` with the oracle value as the fill), the quote attributing the
   account's deficit to its losing positions only (``deficit_quote``, as in rungs 3 and 4): a
   bankrupt account receives that quote, the fund paying what it exceeds the oracle value by (``fund_delta < 0``);
   a stalled account that is still solvent pays the capped liquidation fee (``fund_delta > 0``).
   **The backstop's margin is its pool's fund:** its positions cost the oracle value, so its own
   equity is its unrealised PnL, and the pool's *fund equity* is the fund plus that PnL when it is
   negative (``fund_equity``). A takeover of ``k`` lots is allowed while the fund's cash and equity
   stay >= 0 after paying, and the backstop's inventory in the market (notional at the oracle
   price) is at most ``backstop_max_notional`` and ``backstop_max_fund_share`` of the fund equity
   after paying (a takeover that shrinks the inventory is always within the limits); the largest
   allowed ``k`` is taken (binary search, every condition being monotone in ``k``).
   Each block after the liquidations, every backstop **unwinds**: per market it offers
   ``backstop_unwind_portion`` of its inventory (at least one lot) as a reduce-only IOC against
   the book, never beyond ``max_liquidation_fee`` away from the oracle price (it does not dump
   through a thin book; it waits for the book to return), with no taker fee. Then its realised PnL
   (and funding) is **swept** into its pool's fund, so that its balance is always minus the cost of
   its inventory (``_sweep_backstop``; a realised loss larger than the fund stays as the backstop's
   negative balance, counted in the fund equity, until the fund can pay it).

Rung 3, auto-deleveraging (only if TNC < 0 and the backstop could not take the whole position).
   ``deleverage`` closes the position against opposing positions **in profit** at the oracle price,
   ranked by ``risk_model.adl_score`` (unrealised PnL ratio x effective leverage) descending, then
   owner and number; winners whose own TNC is not positive come after every scored one. The ranking
   of a market side is built once per block and kept current (``AdlRanking``: only the subaccounts
   the step changed are re-scored), so an ADL costs what it touches, not a valuation per holder. Each pair
   closes at the deleveraged account's bankruptcy quote, but never worse for the winner than its
   entry price (``risk_model.adl_quote``: the winner's realised PnL on the closed lots is >= 0); a
   candidate whose margin cannot take the whole size takes the largest size that keeps its update
   valid (binary search). Losing positions, and the backstops, are never deleveraged, so a loss in
   one market never lands on losing traders of another.

Rung 4, socialisation. What no winner could take is closed pro rata against every opposing position
   at the bankruptcy price, the loss against the oracle price recorded as bad debt of the pool
   (``socialise``). If the account is left flat with a negative balance (the entry-price bound of
   rung 3 gave it less than its bankruptcy quote), that deficit is charged pro rata to the opposing
   positions and recorded as bad debt too (``socialise_deficit``).

A solvent account that found no liquidity waits for the next block. Every fill, takeover, unwind,
fund movement, deleveraging and bad debt emits an event with its inputs.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Final

from bastion.core import events as ev, guardian, staking, twap
from bastion.core.accounts import change_position, settle_funding, subaccount_pool
from bastion.core.book import BUY, FILL_CANCEL_MAKER as REMOVE_MAKER, FILL_STOP as STOP, SELL, Order
from bastion.core.errors import InvariantViolation
from bastion.core.events import Events, emit
from bastion.core.margin import (
    compute_position_risk,
    cost_after,
    cost_change,
    get_net_collateral,
    get_subaccount_risk,
    is_valid_update,
    open_interest_change,
)
from bastion.core.orders import apply_fill, drop_order, fill_notional, remove_conditional_order, remove_order
from bastion.core.enums import TRADING, FundFlow, MarketStatus
from bastion.core.state import CROSS, ISOLATED, REDUCE_ONLY, Market, State, Subaccount
from bastion.core.units import PPM, USDC_DECIMALS, fee_for
from bastion.risk_model import (
    adl_quote,
    adl_score,
    bankruptcy_amount,
    fillable_price,
    insurance_fund_delta,
    is_liquidatable,
    liquidation_size,
    notional,
)

SubKey = tuple[str, int]

# the backstop of pool P is the subaccount (BACKSTOP_PREFIX + P, 0): not an address, so unsignable
BACKSTOP_PREFIX: Final = "backstop:"


# --------------------------------------------------------------------------------------- the step
def liquidate(state: State, events: Events) -> None:
    """End-of-block step: run the loss waterfall for every liquidatable subaccount, then let the
    backstops unwind into the book and sweep their PnL into their funds."""
    ranked: list[tuple[Fraction, str, int]] = []
    watch: dict[SubKey, None] = {}
    stalls: dict[SubKey, int] = {}
    for key in _candidates(state):
        sub = state.subaccounts.get(key)
        if sub is None or not sub.positions or is_backstop(key[0]):
            continue
        net_collateral, _, maintenance = get_subaccount_risk(state, sub)
        if net_collateral < 0:
            _pause_withdrawals(state, subaccount_pool(state, sub), events)
        if not is_liquidatable(net_collateral, maintenance):
            continue
        watch[key] = None
        stale = [t for t in sub.positions if state.markets[t].stale]
        if stale:
            emit(events, ev.LiquidationDeferred, owner=sub.owner, number=sub.number, reason="stale_oracle",
                 markets=tuple(stale))
            if key in state.liquidation_stalls:  # no attempt: the count neither grows nor resets
                stalls[key] = state.liquidation_stalls[key]
            continue
        held = {t: hold for t in sorted(sub.positions) if (hold := guardian.liquidation_hold(state, t))}
        if held and len(held) == len(sub.positions) and net_collateral > 0:
            # a guardian halt or the grace after it: no book liquidation, and solvent accounts wait
            emit(events, ev.LiquidationDeferred,
                 owner=sub.owner, number=sub.number,
                 reason="guardian_pause" if "guardian_pause" in held.values() else "liquidation_grace",
                 markets=tuple(held))
            if key in state.liquidation_stalls:
                stalls[key] = state.liquidation_stalls[key]
            continue
        ranked.append((Fraction(net_collateral, maintenance), sub.owner, sub.number))
    ranked.sort()
    params = state.liquidation
    work = _BlockWork(AdlRanking(state), params.max_deleveragings_per_block)
    for index, (_, owner, number) in enumerate(ranked):
        sub = state.subaccounts[(owner, number)]
        stalled = state.liquidation_stalls.get((owner, number), 0)
        if index >= params.max_liquidations_per_block:
            # over the block's bound: it stays watched and comes first among its peers next block
            # (no attempt: its stall count neither grows nor resets)
            emit(events, ev.LiquidationDeferred, owner=owner, number=number, reason="block_limit",
                 markets=tuple(sorted(sub.positions)))
            if stalled:
                stalls[(owner, number)] = stalled
            continue
        reduced = _liquidate_subaccount(state, sub, stalled >= params.backstop_after_blocks, events, work)
        if not reduced and sub.positions:
            stalls[(owner, number)] = stalled + 1
    for market in state.markets.values():
        market.scanned = (market.oracle_price, market.funding_index, state.params_epoch)
    state.liquidation_watch = watch
    if stalls != state.liquidation_stalls:
        state.liquidation_stalls = dict(sorted(stalls.items()))
        state.touch(("global",))
    unwind_backstops(state, events)


def is_backstop(owner: str) -> bool:
    """True for the owner of a pool's backstop subaccount."""
    return owner.startswith(BACKSTOP_PREFIX)


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
            emit(events, ev.WithdrawalsPaused, pool=pool, until_height=until)
        state.withdrawals_paused_until[pool] = until
        state.touch(("global",))


class _BlockWork:
    """What one block's liquidation step shares between subaccounts: the ADL ranking (kept current)
    and how many deleveragings (rungs 3 and 4) it may still run (``max_deleveragings_per_block``)."""

    __slots__ = ("ranks", "deleveragings_left")

    def __init__(self, ranks: AdlRanking, deleveragings_left: int) -> None:
        self.ranks = ranks
        self.deleveragings_left = deleveragings_left


def _liquidate_subaccount(state: State, sub: Subaccount, stalled: bool, events: Events, work: _BlockWork) -> bool:
    """The waterfall for each position of a liquidatable subaccount; True if any position shrank.
    ``stalled``: it has reduced nothing for ``backstop_after_blocks`` blocks (rung 2 applies)."""
    for order_id, ticker in list(sub.orders.items()):
        remove_order(state, state.markets[ticker], order_id, "liquidation", events)
    params = state.liquidation
    budget = _Budget(params.max_notional_per_block_usdc, params.max_insurance_loss_per_block_usdc)
    risk = get_subaccount_risk(state, sub)
    reduced = False
    # by maintenance margin descending, then ticker (valuations memoised by get_subaccount_risk)
    order = sorted(sub.positions, key=lambda t: (-sub.positions[t].risk[2], t))
    for ticker in order:
        if not is_liquidatable(risk[0], risk[2]):
            return reduced
        market = state.markets[ticker]
        if market.status not in TRADING or ticker not in sub.positions:
            continue  # paused (or settling) markets do not trade; the account waits
        hold = guardian.liquidation_hold(state, ticker)
        if hold is not None:  # no fill into a halted book (or during the grace after it)
            if risk[0] > 0:
                emit(events, ev.LiquidationDeferred, owner=sub.owner, number=sub.number, reason=hold,
                     markets=(ticker,))
                continue
            reduced = _backstop_and_deleverage(state, sub, market, "bankrupt", events, work) or reduced
            risk = get_subaccount_risk(state, sub)
            continue
        attempted, filled = _liquidate_position(state, sub, market, risk, budget, events, work.ranks)
        if filled:
            risk = get_subaccount_risk(state, sub)
            reduced = True
        if filled < attempted and (risk[0] <= 0 or stalled):
            reason = "bankrupt" if risk[0] <= 0 else "stalled"
            reduced = _backstop_and_deleverage(state, sub, market, reason, events, work) or reduced
            risk = get_subaccount_risk(state, sub)
    return reduced


def _backstop_and_deleverage(state: State, sub: Subaccount, market: Market, reason: str, events: Events,
                             work: _BlockWork) -> bool:
    """Rungs 2 to 4 for one position: the backstop takes over what it may, then, if the account's
    TNC is still negative, ``deleverage`` (within the block's ``max_deleveragings_per_block``, else
    the account waits for the next block); True if the position shrank."""
    ticker = market.ticker
    before = sub.positions[ticker].size
    backstop_takeover(state, sub, market, reason, events)
    work.ranks.changed(sub)
    if ticker in sub.positions and get_subaccount_risk(state, sub)[0] < 0:
        if work.deleveragings_left > 0:
            work.deleveragings_left -= 1
            deleverage(state, sub, market, events, work.ranks)
        else:  # over the block's bound: the account stays watched and is deleveraged next block
            emit(events, ev.DeleveragingDeferred, market=ticker, owner=sub.owner, number=sub.number,
                 reason="block_limit")
    return sub.positions.get(ticker) is None or sub.positions[ticker].size != before


class _Budget:
    """What a subaccount may still have liquidated this block: notional and insurance-fund loss."""

    __slots__ = ("notional_left", "insurance_loss_left")

    def __init__(self, notional_left: int, insurance_loss_left: int) -> None:
        self.notional_left = notional_left
        self.insurance_loss_left = insurance_loss_left


def _liquidate_position(state: State, sub: Subaccount, market: Market, risk: tuple[int, int, int],
                        budget: _Budget, events: Events, ranks: AdlRanking) -> tuple[int, int]:
    """Send the block's liquidation order for one position to the book; (lots attempted, filled).
    ``risk`` is the subaccount's current (TNC, IMR, MMR)."""
    params = state.liquidation
    position = sub.positions[market.ticker]
    side = SELL if position.size > 0 else BUY
    book = market.book
    if (book.best_bid() if side == SELL else book.best_ask()) is None:  # nothing to sell to (buy from)
        emit(events, ev.LiquidationIncomplete, owner=sub.owner, number=sub.number, market=market.ticker,
             reason="empty_book")
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
    fills = _LiquidationFills(state, market, sub, side, budget, price, limit, events, ranks)
    book.match(side, limit, lots, fills)
    if fills.filled < lots:
        emit(events, ev.LiquidationIncomplete, owner=sub.owner, number=sub.number, market=market.ticker,
             attempted=lots, filled=fills.filled,
             reason=fills.stop_reason or "no_liquidity", fillable_price=limit)
    return lots, fills.filled


def _limit_ticks(market: Market, price: Fraction, side: int) -> int:
    """The fillable price (micro-USDC per lot) on the tick grid, never worse for the liquidated
    account: up for a sale, down for a purchase (at least one tick)."""
    ticks = price * Fraction(10) ** (market.size_decimals + market.price_decimals - USDC_DECIMALS)
    if side == SELL:
        return max(1, -(-ticks.numerator // ticks.denominator))
    return max(1, ticks.numerator // ticks.denominator)


def _maker_check(state: State, market: Market, maker: Order, maker_sub: Subaccount, delta: int,
                 lots: int) -> tuple[int, str]:
    """Judge a maker against a liquidation-side taker whose position changes by ``delta`` per lot
    sign: (lots it may fill, "" or the cancel reason). Reduce-only makers (or a reduce-only market,
    a stale oracle, a guardian ``reduce_only`` pause) may only shrink their position."""
    maker_position = maker_sub.positions.get(market.ticker)
    maker_size = maker_position.size if maker_position is not None else 0
    if maker.reduce_only or market.status == REDUCE_ONLY or market.stale or guardian.is_reduce_only(state,
                                                                                                 market.ticker):
        cap = abs(maker_size) if maker_size * delta > 0 else 0
        if cap == 0:
            return 0, "reduce_only"
        lots = min(lots, cap)
    return lots, ""


def _maker_margin_ok(state: State, market: Market, maker: Order, maker_sub: Subaccount, taker_size: int,
                     delta: int, quote: int, maker_fee: int) -> tuple[bool, int]:
    """Whether the maker's side of a fill (``-delta`` lots, receiving ``quote - maker_fee``) is a
    valid margin update; and the fill's open-interest change."""
    maker_position = maker_sub.positions.get(market.ticker)
    maker_size = maker_position.size if maker_position is not None else 0
    oi_delta = open_interest_change(taker_size, delta, maker_size, -delta)
    maker_new = get_subaccount_risk(state, maker_sub, market, -delta, quote - maker_fee, oi_delta,
                                    cost_change(state, market, maker_position, -delta, maker.price))
    ok = maker_new[0] >= maker_new[1] or is_valid_update(get_subaccount_risk(state, maker_sub), maker_new)
    return ok, oi_delta


class _LiquidationFills:
    """The ``on_fill`` judge of one liquidation order (compare ``orders._Matcher.decide``)."""

    __slots__ = ("state", "market", "sub", "side", "budget", "fillable", "limit", "events", "ranks", "filled",
                 "stop_reason")

    def __init__(self, state: State, market: Market, sub: Subaccount, side: int, budget: _Budget,
                 fillable: Fraction, limit: int, events: Events, ranks: AdlRanking) -> None:
        self.state, self.market, self.sub, self.side = state, market, sub, side
        self.budget, self.fillable, self.limit, self.events = budget, fillable, limit, events
        self.ranks = ranks
        self.filled = 0
        self.stop_reason = ""

    def __call__(self, maker: Order, lots: int) -> int:
        state, market, sub = self.state, self.market, self.sub
        maker_sub = state.subaccounts[(maker.owner, maker.number)]
        if maker.owner == sub.owner:
            self._cancel(maker, maker_sub, "self_trade")
            return REMOVE_MAKER
        sign = 1 if self.side == BUY else -1  # the liquidated account's delta per lot
        lots, reason = _maker_check(state, market, maker, maker_sub, sign, lots)
        if reason:
            self._cancel(maker, maker_sub, reason)
            return REMOVE_MAKER
        position = sub.positions[market.ticker]
        delta = sign * lots
        quote = fill_notional(market, delta, maker.price)  # what the liquidated account pays (signed)
        bankruptcy, net_collateral, maintenance = bankruptcy_quote(state, sub, market, delta)
        insurance = insurance_fund_delta(-quote, bankruptcy, state.liquidation.max_liquidation_fee_ppm)
        pool = market.pool
        if insurance < 0 and (fund_equity(state, pool) < -insurance
                              or self.budget.insurance_loss_left < -insurance):
            self.stop_reason = "insurance_fund"
            return STOP
        maker_fee = fee_for(abs(quote), max(market.maker_fee_ppm, 0))
        ok, oi_delta = _maker_margin_ok(state, market, maker, maker_sub, position.size, delta, quote, maker_fee)
        if not ok:
            self._cancel(maker, maker_sub, "maker_margin")
            return REMOVE_MAKER
        apply_fill(state, market, sub, None, self.side, maker, maker_sub, lots, delta, quote, maker_fee, 0,
                   oi_delta, events=self.events, liquidation=True)
        self.ranks.changed(sub)
        self.ranks.changed(maker_sub)
        sub.balance -= insurance
        staking.move_fund(state, pool, insurance, FundFlow.FEE, self.events)
        self.budget.notional_left -= abs(quote)
        self.budget.insurance_loss_left -= max(-insurance, 0)
        self.filled += lots
        emit(self.events, ev.Liquidation,
             owner=sub.owner, number=sub.number, market=market.ticker, size=-delta, fill_price=maker.price,
             oracle_price=market.oracle_price, net_collateral=net_collateral, maintenance=maintenance,
             bankruptcy_quote=bankruptcy, fill_quote=-quote, fillable_price=self.limit,
             fillable_price_exact=str(self.fillable), insurance_delta=insurance,
             insurance_fund=state.insurance_funds[pool], pool=pool,
             maker=ev.FillParty(owner=maker.owner, number=maker.number, order_id=maker.order_id, fee=maker_fee))
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
    value_change, maintenance_change = _position_change(state, sub, market, delta)
    quote = bankruptcy_amount(value_change, net_collateral, maintenance_change, maintenance)
    return quote, net_collateral, maintenance


def _position_change(state: State, sub: Subaccount, market: Market, delta: int) -> tuple[int, int]:
    """(value change, MMR change) of the subaccount's position in ``market`` moving by ``delta`` lots."""
    position = sub.positions[market.ticker]
    override = sub.imf_overrides.get(market.ticker)
    old_value, _, old_maintenance = compute_position_risk(state, market, position.size, market.open_interest,
                                                          override)
    new_value, _, new_maintenance = compute_position_risk(state, market, position.size + delta,
                                                          market.open_interest, override)
    return new_value - old_value, new_maintenance - old_maintenance


def _losing_maintenance(state: State, sub: Subaccount) -> int:
    """The MMR of the subaccount's positions not in profit at the oracle price (value <= cost)."""
    get_subaccount_risk(state, sub)  # refreshes every position's memoised (value, IMR, MMR)
    return sum(p.risk[2] for p in sub.positions.values() if p.risk[0] <= p.cost)


def deficit_quote(state: State, sub: Subaccount, market: Market, delta: int) -> tuple[int, int, int]:
    """(quote, TNC, maintenance share base) of rungs 2 to 4: the bankruptcy quote with the account's
    deficit attributed to its positions **not in profit** only (in proportion to their MMR), so that
    a loss made in one market is never charged to the counterparties of a winning position in
    another. A winning position of an account that also holds a losing one carries no share: its
    quote is its oracle value (base 0). With no losing position (every position in profit) the
    deficit is shared over all positions, as ``bankruptcy_quote``."""
    net_collateral, _, maintenance = get_subaccount_risk(state, sub)
    losing = _losing_maintenance(state, sub)
    position = sub.positions[market.ticker]
    value_change, maintenance_change = _position_change(state, sub, market, delta)
    if losing and position.risk[0] > position.cost:
        return -value_change, net_collateral, 0
    base = losing or maintenance
    quote = bankruptcy_amount(value_change, net_collateral, maintenance_change, base)
    return quote, net_collateral, base


def _largest(limit: int, allowed: Callable[[int], bool]) -> int:
    """The largest ``k`` in ``0..limit`` with ``allowed(k)`` (``allowed`` monotone, ``allowed(0)`` true)."""
    if limit <= 0 or allowed(limit):
        return max(limit, 0)
    low, high = 0, limit  # allowed(low), not allowed(high)
    while high - low > 1:
        middle = (low + high) // 2
        if allowed(middle):
            low = middle
        else:
            high = middle
    return low


# --------------------------------------------------------------------------------------- the backstop
def backstop_of(state: State, pool: str) -> Subaccount:
    """The pool's backstop subaccount ``(BACKSTOP_PREFIX + pool, 0)``, created when first needed
    (cross margin for the cross pool, isolated on the market for an isolated pool)."""
    key = (BACKSTOP_PREFIX + pool, 0)
    sub = state.subaccounts.get(key)
    if sub is None:
        sub = Subaccount(key[0], 0, 0, CROSS) if pool not in state.markets else Subaccount(key[0], 0, 0, ISOLATED, pool)
        state.subaccounts[key] = sub
        state.touch(sub.key)
    return sub


def fund_equity(state: State, pool: str) -> int:
    """What the pool's insurance fund can pay: its balance plus its backstop's equity when negative
    (the backstop's margin is the fund; its unrealised profit is not counted until realised)."""
    fund = state.insurance_funds[pool]
    backstop = state.subaccounts.get((BACKSTOP_PREFIX + pool, 0))
    if backstop is None:
        return fund
    return fund + min(get_subaccount_risk(state, backstop)[0], 0)


def backstop_takeover(state: State, sub: Subaccount, market: Market, reason: str, events: Events) -> int:
    """Rung 2: the pool's backstop takes over as much of ``sub``'s position in ``market`` as its
    limits allow (module docstring); returns the lots taken."""
    ticker, pool = market.ticker, market.pool
    params = state.liquidation
    existing = state.subaccounts.get((BACKSTOP_PREFIX + pool, 0))
    settle_funding(state, sub, events)
    if existing is not None:
        settle_funding(state, existing, events)
    size = sub.positions[ticker].size
    inventory = existing.positions[ticker].size if existing is not None and ticker in existing.positions else 0
    fund, equity = state.insurance_funds[pool], fund_equity(state, pool)
    sign = -1 if size > 0 else 1  # the account's delta per lot

    memo: dict[int, tuple[int, int, int, int, int]] = {}

    def terms(lots: int) -> tuple[int, int, int, int, int]:
        if lots in memo:
            return memo[lots]
        delta = sign * lots
        quote, net_collateral, maintenance = deficit_quote(state, sub, market, delta)
        fill = notional(-delta, market.oracle_price, size_decimals=market.size_decimals,
                        price_decimals=market.price_decimals)  # the oracle value: what the backstop pays
        memo[lots] = (quote, fill, insurance_fund_delta(fill, quote, params.max_liquidation_fee_ppm), net_collateral,
                      maintenance)
        return memo[lots]

    def allowed(lots: int) -> bool:
        _, _, fund_delta, _, _ = terms(lots)
        if fund + fund_delta < 0 or equity + fund_delta < 0:
            return False
        after = inventory - sign * lots
        if abs(after) <= abs(inventory):
            return True  # shrinking the inventory only lowers the fund's risk
        value = abs(notional(after, market.oracle_price, size_decimals=market.size_decimals,
                             price_decimals=market.price_decimals))
        cap = min(params.backstop_max_notional_usdc, (equity + fund_delta) * params.backstop_max_fund_share_ppm // PPM)
        return value <= cap

    lots = _largest(abs(size), allowed)
    if lots == 0:  # with the inputs of the one-lot check that failed
        emit(events, ev.BackstopRefused, market=ticker, owner=sub.owner, number=sub.number, size=size, pool=pool,
             inventory=inventory, insurance_fund=fund, fund_equity=equity,
             fund_delta=terms(1)[2], oracle_price=market.oracle_price, reason=reason)
        return 0
    backstop = backstop_of(state, pool)
    delta = sign * lots
    quote, fill, fund_delta, net_collateral, maintenance = terms(lots)
    oi_delta = open_interest_change(size, delta, inventory, -delta)
    sub.balance += fill - fund_delta
    backstop.balance -= fill
    staking.move_fund(state, pool, fund_delta, FundFlow.FEE, events)
    change_position(state, sub, market, delta, market.oracle_price)
    change_position(state, backstop, market, -delta, market.oracle_price)
    market.open_interest += oi_delta
    for key in (sub.key, backstop.key, market.key, ("global",)):
        state.touch(key)
    emit(events, ev.BackstopTakeover, market=ticker, owner=sub.owner, number=sub.number, size=-delta,
         bankruptcy_quote=quote, oracle_price=market.oracle_price, fund_delta=fund_delta,
         pool=pool, inventory=inventory - delta, received=fill - fund_delta,
         oracle_value=fill, net_collateral=net_collateral, maintenance=maintenance,
         insurance_fund=state.insurance_funds[pool], fund_equity=equity + fund_delta,
         reason=reason)
    return lots


def unwind_backstops(state: State, events: Events) -> None:
    """Each backstop offers ``backstop_unwind_portion`` of its inventory per market (at least one
    lot) to the book as a reduce-only IOC no further than ``max_liquidation_fee`` from the oracle
    price, then its realised PnL is swept into its pool's fund."""
    params = state.liquidation
    for pool in sorted(state.insurance_funds):
        backstop = state.subaccounts.get((BACKSTOP_PREFIX + pool, 0))
        if backstop is None:
            continue
        for ticker in sorted(backstop.positions):
            market = state.markets[ticker]
            if market.stale or market.status not in TRADING or guardian.liquidation_hold(state, ticker):
                continue
            inventory = backstop.positions[ticker].size
            lots = max(1, abs(inventory) * params.backstop_unwind_portion_ppm // PPM)
            side = SELL if inventory > 0 else BUY
            band = market.oracle_price * params.max_liquidation_fee_ppm
            if side == SELL:
                limit = max(1, -(-(market.oracle_price * PPM - band) // PPM))
            else:
                limit = (market.oracle_price * PPM + band) // PPM
            market.book.match(side, limit, lots, _UnwindFills(state, market, backstop, side, limit, events))
        _sweep_backstop(state, pool, backstop, events)


class _UnwindFills:
    """The ``on_fill`` judge of a backstop's unwind order: makers judged as for liquidations, no
    taker fee, a positive maker fee charged, one ``backstop_unwind`` event per fill."""

    __slots__ = ("state", "market", "backstop", "side", "limit", "events")

    def __init__(self, state: State, market: Market, backstop: Subaccount, side: int, limit: int,
                 events: Events) -> None:
        self.state, self.market, self.backstop, self.side, self.limit, self.events = (
            state, market, backstop, side, limit, events)

    def __call__(self, maker: Order, lots: int) -> int:
        state, market, backstop = self.state, self.market, self.backstop
        maker_sub = state.subaccounts[(maker.owner, maker.number)]
        sign = 1 if self.side == BUY else -1
        lots, reason = _maker_check(state, market, maker, maker_sub, sign, lots)
        if reason:
            drop_order(state, maker_sub, maker, market.ticker, reason, self.events)
            return REMOVE_MAKER
        delta = sign * lots
        quote = fill_notional(market, delta, maker.price)
        maker_fee = fee_for(abs(quote), max(market.maker_fee_ppm, 0))
        ok, oi_delta = _maker_margin_ok(state, market, maker, maker_sub, backstop.positions[market.ticker].size,
                                        delta, quote, maker_fee)
        if not ok:
            drop_order(state, maker_sub, maker, market.ticker, "maker_margin", self.events)
            return REMOVE_MAKER
        apply_fill(state, market, backstop, None, self.side, maker, maker_sub, lots, delta, quote, maker_fee,
                   0, oi_delta, events=self.events, backstop=True)
        position = backstop.positions.get(market.ticker)
        emit(self.events, ev.BackstopUnwind,
             market=market.ticker, size=-delta, price=maker.price, pool=market.pool,
             inventory=position.size if position is not None else 0, quote=-quote, limit_price=self.limit,
             oracle_price=market.oracle_price,
             maker=ev.FillParty(owner=maker.owner, number=maker.number, order_id=maker.order_id, fee=maker_fee))
        return lots


def _sweep_backstop(state: State, pool: str, backstop: Subaccount, events: Events) -> None:
    """Move the backstop's realised PnL and funding into its pool's fund, so that its balance is
    minus the cost of its inventory; a loss is paid only as far as the fund holds (the rest stays
    as the backstop's negative balance, which ``fund_equity`` counts against the fund)."""
    settle_funding(state, backstop, events)
    surplus = backstop.balance + sum(p.cost for p in backstop.positions.values())
    amount = surplus if surplus >= 0 else -min(-surplus, max(state.insurance_funds[pool], 0))
    if amount == 0:
        return
    backstop.balance -= amount
    staking.move_fund(state, pool, amount, FundFlow.RESULT, events)
    state.touch(backstop.key)
    state.touch(("global",))
    emit(events, ev.BackstopPnl, pool=pool, amount=amount, insurance_fund=state.insurance_funds[pool])


# --------------------------------------------------------------------------------------- deleveraging
def add_trader_loss(state: State, ticker: str, amount: int) -> None:
    """Count ``amount`` micro-USDC (if positive) taken from traders in ``ticker`` by deleveraging (the
    winner's loss against the oracle value) or socialisation (the bad debt they paid): the cumulative
    ``state.trader_losses`` that staged rollouts' ``max_trader_losses`` gate reads."""
    if amount > 0:
        state.trader_losses[ticker] = state.trader_losses.get(ticker, 0) + amount
        state.touch(("trader_losses", ticker))


def deleverage(state: State, sub: Subaccount, market: Market, events: Events,
               ranks: AdlRanking | None = None) -> None:
    """Rungs 3 and 4: close the subaccount's position in ``market`` against ranked winners (ADL),
    then socialise what none of them could take, then any deficit left on a flat account.
    ``ranks``: the block's ``AdlRanking`` (kept current across calls), or None for a fresh one."""
    ticker = market.ticker
    if ranks is None:
        ranks = AdlRanking(state)
    settle_funding(state, sub, events)
    ranks.changed(sub)
    position = sub.positions[ticker]
    side = 1 if position.size > 0 else -1
    get_subaccount_risk(state, sub)  # fresh memoised valuations
    if position.risk[0] > position.cost and _losing_maintenance(state, sub):
        # a winning position of an account that lost elsewhere: its counterparties must not pay for
        # that loss; the losing positions carry the whole deficit (``deficit_quote``), this one
        # waits for the book or the backstop (or closes at the oracle price in final settlement)
        emit(events, ev.DeleveragingDeferred, market=ticker, owner=sub.owner, number=sub.number,
             reason="profitable_position")
        return
    for score, counterparty in ranks.ranked(market, side):
        current = sub.positions.get(ticker)
        if current is None:
            break
        position = current
        other = counterparty.positions[ticker]
        sign = -1 if position.size > 0 else 1  # the deleveraged account's delta per lot
        old = get_subaccount_risk(state, counterparty)

        # terms() and allowed() read this iteration's sign, other, counterparty and old, and are only called
        # before the loop moves on (hence the B023 noqa: no late-binding surprise).
        def terms(lots: int) -> tuple[int, int, int, int]:
            delta = sign * lots  # noqa: B023
            bankruptcy, net_collateral, maintenance = deficit_quote(state, sub, market, delta)
            closed = other.cost - cost_after(market, other.size, other.cost, -delta, market.oracle_price)  # noqa: B023
            return adl_quote(bankruptcy, closed), bankruptcy, net_collateral, maintenance

        def allowed(lots: int) -> bool:
            quote = terms(lots)[0]
            delta = sign * lots  # noqa: B023
            new = get_subaccount_risk(state, counterparty, market, -delta, -quote, -lots,  # noqa: B023
                                      cost_change(state, market, other, -delta, market.oracle_price))  # noqa: B023
            return is_valid_update(old, new)  # noqa: B023

        lots = _largest(min(abs(position.size), abs(other.size)), allowed)
        if lots == 0:
            emit(events, ev.DeleveragingSkipped, market=ticker, owner=counterparty.owner, number=counterparty.number,
                 reason="counterparty_margin")
            continue
        delta = sign * lots
        quote, bankruptcy, net_collateral, maintenance = terms(lots)
        oracle_value = notional(-delta, market.oracle_price, size_decimals=market.size_decimals,
                                price_decimals=market.price_decimals)  # what the account would get at the oracle
        closed = other.cost - cost_after(market, other.size, other.cost, -delta, market.oracle_price)
        profit = notional(other.size, market.oracle_price, size_decimals=market.size_decimals,
                          price_decimals=market.price_decimals) - other.cost
        _close_pair(state, market, sub, counterparty, delta, quote, events)
        ranks.changed(counterparty)
        add_trader_loss(state, ticker, quote - oracle_value)
        emit(events, ev.Deleveraging,
             market=ticker, owner=sub.owner, number=sub.number, size=-delta, bankruptcy_quote=bankruptcy, quote=quote,
             oracle_price=market.oracle_price, net_collateral=net_collateral, maintenance=maintenance,
             counterparty_loss=quote - oracle_value,
             counterparty=ev.AdlCounterparty(owner=counterparty.owner, number=counterparty.number,
                                             score=None if score is None else str(score), unrealized_pnl=profit,
                                             cost_closed=closed))
    if ticker in sub.positions:
        socialise(state, sub, market, events, ranks)
    if not sub.positions and sub.balance < 0:
        socialise_deficit(state, sub, market, side, events, ranks)
    ranks.changed(sub)


def ranked_counterparties(state: State, market: Market, sub: Subaccount) -> list[tuple[Fraction | None, Subaccount]]:
    """The ADL candidates for ``sub``'s position in ``market``, in order: opposing positions in
    profit at the oracle price (never a backstop), by ``risk_model.adl_score`` descending, ties by
    owner and number; winners whose TNC is not positive (score None) last, by owner and number.
    (A fresh ``AdlRanking``: what ``deleverage`` walks, kept current within a block.)"""
    return list(AdlRanking(state).ranked(market, 1 if sub.positions[market.ticker].size > 0 else -1))


_Entry = tuple[int, Fraction, str, int]  # (0 scored / 1 unscored, -score, owner, number): ascending = ADL order


def _adl_entry(state: State, market: Market, side: int, key: SubKey) -> _Entry | None:
    """The ranking entry of subaccount ``key`` against a deleveraged position of ``side`` (+1 long,
    -1 short) in ``market``, or None if it is no candidate (no opposing position in profit at the
    oracle price, or a backstop). Its TNC is ``get_net_collateral``: the score needs no margin
    requirement, so ranking values no position's margin."""
    if is_backstop(key[0]):
        return None
    other = state.subaccounts.get(key)
    position = other.positions.get(market.ticker) if other is not None else None
    if other is None or position is None or position.size * side >= 0:
        return None
    value = notional(position.size, market.oracle_price, size_decimals=market.size_decimals,
                     price_decimals=market.price_decimals)
    if value <= position.cost:
        return None  # not in profit: never deleveraged
    net_collateral = get_net_collateral(state, other)
    if net_collateral <= 0:
        return (1, Fraction(0), key[0], key[1])
    score = adl_score(value, position.cost, net_collateral)
    if score is None:
        raise InvariantViolation(f"{market.ticker}: a winner without an ADL score")
    return (0, -score, key[0], key[1])


class AdlRanking:
    """The ADL rankings one block's liquidation step (or one final settlement) works with.

    The ranking of a market side (the winners opposite a deleveraged position, ``ranked_counterparties``
    order) is built once, the first time a deleveraging there needs it, and then kept current: every
    change to a subaccount during the step (a liquidation fill of it or its maker, a takeover, a
    deleveraging or socialisation pair) is reported with ``changed``, and before the next ranking is
    read those subaccounts' entries, in every ranking built so far, are recomputed and moved (a
    subaccount's score depends only on its own balance and positions and the oracle prices, which do
    not move during the step). So a deleveraging costs what it touches, not one valuation per holder
    of the market, and walks exactly the order a fresh ranking would give.
    """

    __slots__ = ("state", "lists", "members", "stale")

    def __init__(self, state: State) -> None:
        self.state = state
        self.lists: dict[tuple[str, int], list[_Entry]] = {}  # (ticker, deleveraged side) -> sorted entries
        self.members: dict[tuple[str, int], dict[SubKey, _Entry]] = {}
        self.stale: dict[SubKey, None] = {}

    def changed(self, sub: Subaccount) -> None:
        """``sub``'s balance or positions changed: recompute its entries before the next read."""
        if self.lists:
            self.stale[(sub.owner, sub.number)] = None

    def ranked(self, market: Market, side: int) -> Iterator[tuple[Fraction | None, Subaccount]]:
        """(score or None, subaccount) of the candidates against a position of ``side`` in ``market``,
        best first: the order at this call (later changes do not reorder what it yields)."""
        self._refresh()
        slot = (market.ticker, side)
        entries = self.lists.get(slot)
        if entries is None:
            members = {}
            for key in market.holders:
                entry = _adl_entry(self.state, market, side, key)
                if entry is not None:
                    members[key] = entry
            entries = sorted(members.values())
            self.members[slot], self.lists[slot] = members, entries
        subaccounts = self.state.subaccounts
        return ((None if group else -negated, subaccounts[(owner, number)])
                for group, negated, owner, number in list(entries))

    def _refresh(self) -> None:
        if not self.stale:
            return
        markets = self.state.markets
        for slot, members in self.members.items():
            market, side, entries = markets[slot[0]], slot[1], self.lists[slot]
            resort = 8 * len(self.stale) > len(entries)  # many changed (a socialisation): sort once
            for key in self.stale:
                old = members.pop(key, None)
                if old is not None and not resort:
                    del entries[bisect_left(entries, old)]
                new = _adl_entry(self.state, market, side, key)
                if new is not None:
                    members[key] = new
                    if not resort:
                        insort(entries, new)
            if resort:
                entries[:] = sorted(members.values())
        self.stale.clear()


def _opposing(state: State, market: Market, side: int) -> list[Subaccount]:
    """Every subaccount holding a position opposite to ``side`` (+1 long, -1 short), by owner and number."""
    ticker = market.ticker
    out = []
    for key in sorted(market.holders):
        other = state.subaccounts[key]
        if other.positions[ticker].size * side < 0:
            out.append(other)
    return out


def socialise(state: State, sub: Subaccount, market: Market, events: Events,
              ranks: AdlRanking | None = None) -> None:
    """Close what is left of the position at its bankruptcy price against every opposing position,
    pro rata to their sizes (remaining lots one each by owner and number), each paying its share of
    the bankruptcy quote (the remainder of the division likewise); the loss against the oracle
    price is recorded as the pool's bad debt."""
    ticker = market.ticker
    position = sub.positions[ticker]
    total_lots = abs(position.size)
    delta = -position.size
    quote, net_collateral, maintenance = deficit_quote(state, sub, market, delta)
    opposing = _opposing(state, market, 1 if position.size > 0 else -1)
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
    shares_out: list[ev.DebtShare] = []
    for (counterparty, lots), payment in zip(takers, payments):
        lot_delta = lots if delta > 0 else -lots
        _close_pair(state, market, sub, counterparty, lot_delta, payment, events)
        if ranks is not None:
            ranks.changed(counterparty)
        shares_out.append(ev.DebtShare(owner=counterparty.owner, number=counterparty.number, size=lots,
                                       payment=payment))
    pool = market.pool
    state.bad_debt[pool] = state.bad_debt.get(pool, 0) + bad_debt
    add_trader_loss(state, ticker, bad_debt)
    state.touch(("global",))
    emit(events, ev.BadDebt, market=ticker, owner=sub.owner, number=sub.number, size=-delta, bankruptcy_quote=quote,
         oracle_price=market.oracle_price, net_collateral=net_collateral, maintenance=maintenance,
         amount=bad_debt, pool=pool, shares=tuple(shares_out))


def socialise_deficit(state: State, sub: Subaccount, market: Market, side: int, events: Events,
                      ranks: AdlRanking | None = None) -> None:
    """A flat account's negative balance (what the entry-price bound of ADL withheld) charged pro
    rata to the positions opposite to ``side`` in ``market`` (the remainder one micro-USDC each by
    owner and number), recorded as the pool's bad debt. With no opposing position left the pool's
    fund pays what it holds (a fund never goes negative); anything beyond stays as the account's
    negative balance."""
    deficit = -sub.balance
    opposing = _opposing(state, market, side)
    sizes = [abs(c.positions[market.ticker].size) for c in opposing]
    total = sum(sizes)
    shares_out: list[ev.DebtShare] = []
    if total:
        payments = [deficit * size // total for size in sizes]
        for i in range(deficit - sum(payments)):
            payments[i] += 1
        for counterparty, payment in zip(opposing, payments):
            settle_funding(state, counterparty, events)
            counterparty.balance -= payment
            state.touch(counterparty.key)
            if ranks is not None:
                ranks.changed(counterparty)
            shares_out.append(ev.DebtShare(owner=counterparty.owner, number=counterparty.number, size=0,
                                           payment=payment))
    else:  # every opposing position is gone: the fund pays what it holds, the rest stays a hole
        paid = min(deficit, max(state.insurance_funds[market.pool], 0))
        staking.move_fund(state, market.pool, -paid, FundFlow.RESULT, events)
        deficit = paid
    sub.balance += deficit
    pool = market.pool
    state.bad_debt[pool] = state.bad_debt.get(pool, 0) + deficit
    if total:
        add_trader_loss(state, market.ticker, deficit)
    state.touch(sub.key)
    state.touch(("global",))
    emit(events, ev.BadDebt, market=market.ticker, owner=sub.owner, number=sub.number, size=0, bankruptcy_quote=0,
         oracle_price=market.oracle_price, net_collateral=-deficit, maintenance=0, amount=deficit,
         pool=pool, shares=tuple(shares_out))


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

    **The settlement price** is fixed at the first attempt (the block in which the market entered
    ``final_settlement``): the time-weighted oracle price over ``settlement_twap_window`` ending at
    the start of this block (``bastion.core.twap``, a ``settlement_price`` event), never this block's
    own oracle price; a stale market waits and settles later at that same price. At settlement the
    market's oracle price is set to it (``oracle_price`` event), so every valuation below uses it.
    Resting and untriggered conditional orders are cancelled. Accounts with negative TNC are deleveraged at their
    bankruptcy price (``deleverage``: rungs 3 and 4 of the waterfall); every other position, a backstop's included
    (its loss is its fund's, swept after the liquidations), closes at the settlement price, longs receiving their
    notional rounded down and shorts paying theirs rounded up; the rounding difference goes to the
    pool's insurance fund, so collateral is conserved exactly.
    """
    for market in state.markets.values():
        if market.status != MarketStatus.FINAL_SETTLEMENT:
            continue
        if market.settlement_price is None:
            price, start_ms, end_ms = twap.settlement_twap(state, market)
            market.settlement_price = price
            state.touch(market.key)
            emit(events, ev.SettlementPrice, market=market.ticker, price=price, window_start_ms=start_ms,
                 window_end_ms=end_ms, spot=market.oracle_price,
                 window_ms=state.liquidation.settlement_twap_window_ms)
        if market.stale:
            continue
        ticker = market.ticker
        if market.oracle_price != market.settlement_price:
            emit(events, ev.OraclePrice, market=ticker, price=market.settlement_price, previous=market.oracle_price,
                 median=market.settlement_price, sources=0, clamped=False, settlement=True)
            market.oracle_price = market.settlement_price
        for order in list(market.book.orders()):
            remove_order(state, market, order.order_id, MarketStatus.FINAL_SETTLEMENT, events)
        for order_id in [i for i, c in state.conditional_orders.items() if c.terms.market == ticker]:
            remove_conditional_order(state, order_id, MarketStatus.FINAL_SETTLEMENT, events)
        ranks = AdlRanking(state)  # kept current across this market's deleveragings
        for key in sorted(market.holders):
            sub = state.subaccounts[key]
            if ticker in sub.positions and not is_backstop(key[0]) and get_subaccount_risk(state, sub)[0] < 0:
                deleverage(state, sub, market, events, ranks)
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
            emit(events, ev.FinalSettlement, market=ticker, owner=sub.owner, number=sub.number, size=position.size,
                 oracle_price=market.oracle_price, amount=received)
            change_position(state, sub, market, -position.size, market.oracle_price)
            state.touch(sub.key)
        staking.move_fund(state, market.pool, residue, FundFlow.PROTOCOL)
        market.open_interest = 0
        market.status = MarketStatus.SETTLED
        state.touch(market.key)
        state.touch(("global",))
        emit(events, ev.MarketSettled, market=ticker, oracle_price=market.oracle_price,
             rounding_to_insurance=residue)
