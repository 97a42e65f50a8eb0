"""Valuation and margin of a subaccount at oracle prices (DESIGN.md section 3).

``subaccount_risk`` returns ``(net_collateral, initial_requirement, maintenance_requirement)``
in micro-USDC, with pending funding included (funding is settled before every check), optionally
for a hypothetical change of one market's position, of the balance and of that market's open
interest. Every formula comes from ``bastion.risk_model``; this module only sums.
"""
from __future__ import annotations

from bastion.core.state import Market, Position, State, Subaccount
from bastion.core.units import PPM, ppm_of_up
from bastion.risk_model import funding_settlement, is_valid_undercollateralized_update, margin_requirements, notional

Risk = tuple[int, int, int]


def get_pending_funding(state: State, sub: Subaccount) -> int:
    """USDC the subaccount would receive (negative: pay) if its funding were settled now (floored)."""
    total_ppm = 0
    markets = state.markets
    for ticker, position in sub.positions.items():
        total_ppm += funding_settlement(markets[ticker].funding_index, position.funding_index, position.size)
    return total_ppm // PPM


def cost_after(market: Market, size: int, cost: int, delta: int, ticks: int) -> int:
    """A position's cost (``Position.cost``) after ``delta`` lots trade at ``ticks``: opened lots add
    their notional, closed lots remove their share of the cost (truncated toward zero), and a flip
    starts over with the notional of the new side."""
    if size == 0 or (size > 0) == (delta > 0):
        return cost + notional(delta, ticks, size_decimals=market.size_decimals, price_decimals=market.price_decimals)
    if abs(delta) <= abs(size):
        removed = abs(cost) * abs(delta) // abs(size)
        return cost - (removed if cost >= 0 else -removed)
    return notional(size + delta, ticks, size_decimals=market.size_decimals, price_decimals=market.price_decimals)


def cost_change(state: State, market: Market, position: Position | None, delta: int, ticks: int,
                pending_size: int = 0, pending_cost: int = 0) -> int:
    """The change of a position's cost if ``delta`` lots traded at ``ticks`` after the pending
    hypothetical changes ``pending_size``/``pending_cost`` (a fill-or-kill dry run), relative to its
    current cost: the ``cost_delta`` of ``get_subaccount_risk``. Zero when the market's tier counts
    all unrealised profit, because the cost then enters no margin check."""
    if state.tiers[market.tier_id].unrealized_profit_weight_ppm >= PPM:
        return 0
    size, cost = (position.size, position.cost) if position is not None else (0, 0)
    return cost_after(market, size + pending_size, cost + pending_cost, delta, ticks) - cost


def compute_position_risk(state: State, market: Market, size: int, open_interest: int,
                          imf_override: int | None, cost: int = 0) -> Risk:
    """(signed net notional, initial requirement, MMR) of ``size`` lots costing ``cost`` at the
    oracle price, with ``open_interest`` lots in the market.

    The initial requirement is the IMR plus the position's *unbacked profit*: the part of its
    unrealised profit (``notional - cost`` when positive) that its tier does not count as
    collateral (``1 - unrealized_profit_weight``, rounded up). So paper profit in a market whose
    oracle can be pushed cannot be withdrawn or used to open risk until it is realised
    (docs/protocol.md, "Unbacked profit"); the maintenance side, and so liquidation, is unaffected.
    """
    value = notional(size, market.oracle_price, size_decimals=market.size_decimals,
                     price_decimals=market.price_decimals)
    tier = state.tiers[market.tier_id]
    if tier.oi_upper_cap_usdc:
        oi_notional = notional(open_interest, market.oracle_price, size_decimals=market.size_decimals,
                               price_decimals=market.price_decimals)
    else:
        oi_notional = 0  # no open-interest scaling in this tier
    imr, mmr = margin_requirements(abs(value), tier.initial_margin_ppm, tier.maintenance_fraction_ppm,
                                   open_interest_notional=oi_notional, oi_lower_cap=tier.oi_lower_cap_usdc,
                                   oi_upper_cap=tier.oi_upper_cap_usdc)
    if imf_override is not None:
        imr = max(imr, ppm_of_up(abs(value), imf_override))
    if value > cost and tier.unrealized_profit_weight_ppm < PPM:
        imr += ppm_of_up(value - cost, PPM - tier.unrealized_profit_weight_ppm)
    return value, imr, mmr


def get_subaccount_risk(state: State, sub: Subaccount, market: Market | None = None, size_delta: int = 0,
                        balance_delta: int = 0, open_interest_delta: int = 0, cost_delta: int = 0) -> Risk:
    """(TNC, initial requirement, MMR) now, or after the hypothetical change given by the keyword
    arguments: ``size_delta`` lots and ``cost_delta`` of cost in ``market`` (``cost_change``),
    ``balance_delta`` micro-USDC, ``open_interest_delta`` lots of the market's open interest.

    TNC includes the pending funding of every position (funding is settled before every check);
    the initial requirement includes unbacked profit (``compute_position_risk``).
    """
    funding_ppm = 0
    net_notional = initial = maintenance = 0
    markets = state.markets
    overrides = sub.imf_overrides
    changed_seen = market is None
    for ticker, position in sub.positions.items():
        m = markets[ticker]
        if position.funding_index != m.funding_index:  # else nothing is owed
            funding_ppm += funding_settlement(m.funding_index, position.funding_index, position.size)
        if m is market:
            changed_seen = True
            size = position.size + size_delta
            if not size:
                continue
            value, imr, mmr = compute_position_risk(state, m, size, m.open_interest + open_interest_delta,
                                                    overrides.get(ticker), position.cost + cost_delta)
        else:
            # memoised on the position: the valuation depends only on the size, the oracle price, the
            # override, the open interest (tiers with caps only) and the governed parameters, whose
            # every change bumps state.params_epoch
            override = overrides.get(ticker) if overrides else None
            open_interest = m.open_interest if state.tiers[m.tier_id].oi_upper_cap_usdc else -1
            if (position.risk_size != position.size or position.risk_oracle_price != m.oracle_price
                    or position.risk_open_interest != open_interest or position.risk_imf_override != override
                    or position.risk_params_epoch != state.params_epoch or position.risk_cost != position.cost):
                position.risk = compute_position_risk(state, m, position.size, m.open_interest, override,
                                                      position.cost)
                position.risk_size = position.size
                position.risk_oracle_price = m.oracle_price
                position.risk_open_interest = open_interest
                position.risk_imf_override = override
                position.risk_params_epoch = state.params_epoch
                position.risk_cost = position.cost
            value, imr, mmr = position.risk
        net_notional += value
        initial += imr
        maintenance += mmr
    if market is not None and not changed_seen and size_delta:
        value, imr, mmr = compute_position_risk(state, market, size_delta, market.open_interest + open_interest_delta,
                                                overrides.get(market.ticker), cost_delta)
        net_notional += value
        initial += imr
        maintenance += mmr
    return sub.balance + balance_delta + funding_ppm // PPM + net_notional, initial, maintenance


def get_net_collateral(state: State, sub: Subaccount) -> int:
    """The subaccount's TNC now (``get_subaccount_risk(state, sub)[0]``, without the requirements):
    balance, pending funding and the positions' notional at the oracle price. Its *equity*, as the
    anti-spam limits count it (``bastion.core.orders.check_order_limits``, ``bastion.core.ante``)."""
    funding_ppm = value = 0
    markets = state.markets
    for ticker, position in sub.positions.items():
        m = markets[ticker]
        if position.funding_index != m.funding_index:
            funding_ppm += funding_settlement(m.funding_index, position.funding_index, position.size)
        value += notional(position.size, m.oracle_price, size_decimals=m.size_decimals,
                          price_decimals=m.price_decimals)
    return sub.balance + funding_ppm // PPM + value


def is_valid_update(old: Risk, new: Risk) -> bool:
    """DESIGN.md section 3: ``TNC >= IMR`` afterwards, or a weak account that does not get riskier."""
    if new[0] >= new[1]:
        return True
    return is_valid_undercollateralized_update(old[0], old[1], old[2], new[0], new[2])


def open_interest_change(taker_size: int, taker_delta: int, maker_size: int, maker_delta: int) -> int:
    """Change of a market's open interest (sum of longs) when two positions change."""
    return (max(taker_size + taker_delta, 0) - max(taker_size, 0)
            + max(maker_size + maker_delta, 0) - max(maker_size, 0))
