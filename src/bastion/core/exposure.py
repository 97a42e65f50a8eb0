"""Voter exposure disclosure (issue 20): which delegates gain or lose from a proposal's changes.

A pure function of the state and a proposal's validated effects (``bastion.core.governance.changes``:
``Change`` records with a ``path`` and a ``risk``), deterministic: the API serves it beside every
proposal and the governance page shows it; the vote handler uses ``is_directly_exposed`` for the
governed discount.

**Markets a change touches** (``changed_markets``): a market parameter, oracle setting or UI
requirement touches its market (``markets.<ticker>.*``, ``ui_requirements.<ticker>.*``); a liquidity
tier's parameter touches every market of the tier; a liquidation parameter touches every market.
Other groups (fees to the insurance fund, listing defaults, governance, the council, the guardian,
money moves, new listings) touch no position and disclose nothing.

**Direction** for a position holder, from the change's risk class: a ``risk_increasing`` change
(lower margins, higher caps, lower fees, more leverage offered) *gains* the holders of the market's
positions (less margin held, more room); a ``risk_reducing`` one (higher margins, reduce-only,
delisting) makes them *lose*; a ``neutral`` one only *affects* them. Changes of both directions on
one market make it ``mixed``.

**Disclosure** (``disclose``): for every delegate with votes at the proposal's snapshot, every touched
market where the delegate itself (its subaccounts) or the accounts that delegate to it hold a
position: the delegate's own signed size and notional at the oracle price, the delegators' notional
and how many of them hold one. Positions and delegations are those of ``state`` (the state the
caller passes); the votes are those at the snapshot. **Frozen at the snapshot**: when a proposal's
vote opens (the end of its snapshot block, ``governance.proposals.process_proposals``) its disclosure
is computed once and kept in the state (``State.proposal_exposures``, leaf ``proposal_exposure``), so
a delegate cannot escape the disclosure or the discount by closing its position before voting and
reopening it after, nor be caught by a position opened after the snapshot. A pending proposal's
disclosure is a live preview.

**The discount** (``GovernanceParams.exposed_vote_weight_ppm``, default 1_000_000: off): in the
critical tier, a voter *directly exposed* (its own positions in the touched markets worth at least
``exposure_threshold_usdc`` at the oracle price) votes with ``weight * exposed_vote_weight_ppm //
1e6`` (``discounted_weight``). Delegators' positions are disclosed but never discount a vote.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from bastion.core import votes
from bastion.core.orders import fill_notional
from bastion.core.params import RISK_CLASSES
from bastion.core.state import DelegateExposure, MarketExposure, State
from bastion.core.units import PPM

RISK_REDUCING, NEUTRAL, RISK_INCREASING, CRITICAL = RISK_CLASSES
GAINS: Final = "gains"
LOSES: Final = "loses"
AFFECTED: Final = "affected"
MIXED: Final = "mixed"
# the dotted groups of governance.changes.ParamGroup read here (this module sits below governance)
_PER_MARKET_GROUPS: Final = frozenset({"markets", "markets.oracle", "ui_requirements"})
_TIER_GROUP: Final = "liquidity_tiers"
_EVERY_MARKET_GROUPS: Final = frozenset({"liquidation"})
_DIRECTION: Final = {RISK_INCREASING: GAINS, RISK_REDUCING: LOSES}


def changed_markets(state: State, changes: Iterable[Any]) -> dict[str, str]:
    """Ticker -> effect on its position holders (module docstring) of validated effects; tickers sorted."""
    found: dict[str, set[str]] = {}
    for change in changes:
        path = getattr(change, "path", None)
        if path is None:                    # an operation (listing, money move): no position moves
            continue
        group = str(path.group)
        if group in _PER_MARKET_GROUPS:
            tickers = [path.key] if path.key in state.markets else []
        elif group == _TIER_GROUP:
            tickers = [t for t, m in state.markets.items() if str(m.tier_id) == path.key]
        elif group in _EVERY_MARKET_GROUPS:
            tickers = list(state.markets)
        else:
            continue
        direction = _DIRECTION.get(change.risk, AFFECTED)
        for ticker in tickers:
            found.setdefault(ticker, set()).add(direction)
    return {ticker: _combine(found[ticker]) for ticker in sorted(found)}


def _combine(directions: set[str]) -> str:
    if GAINS in directions and LOSES in directions:
        return MIXED
    for direction in (GAINS, LOSES):
        if direction in directions:
            return direction
    return AFFECTED


def _holdings(state: State, owner: str, tickers: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Ticker -> (signed size, notional) of ``owner``'s positions, over its subaccounts in number order."""
    wanted = set(tickers)
    result: dict[str, tuple[int, int]] = {}
    for number in range(128):
        sub = state.subaccounts.get((owner, number))
        if sub is None:
            continue
        for ticker, position in sub.positions.items():
            if ticker in wanted and position.size:
                market = state.markets[ticker]
                size, value = result.get(ticker, (0, 0))
                result[ticker] = (size + position.size,
                                  value + abs(fill_notional(market, position.size, market.oracle_price)))
    return result


def own_exposure_notional(state: State, owner: str, tickers: Iterable[str]) -> int:
    """The notional of ``owner``'s own positions in ``tickers`` at the oracle price (micro-USDC)."""
    return sum(value for _, value in _holdings(state, owner, tickers).values())


def is_directly_exposed(state: State, voter: str, tickers: Iterable[str]) -> bool:
    """The voter's own positions in ``tickers`` are worth at least ``exposure_threshold_usdc``."""
    return own_exposure_notional(state, voter, tickers) >= state.governance.exposure_threshold_usdc


def is_exposed_at_snapshot(state: State, proposal_id: str, voter: str) -> bool:
    """``voter`` was directly exposed in ``proposal_id``'s disclosure frozen when its vote opened."""
    return any(d.delegate == voter and d.directly_exposed for d in state.proposal_exposures.get(proposal_id, ()))


def freeze_disclosure(state: State, proposal_id: str, changes: Iterable[Any], snapshot_height: int) -> None:
    """Record ``disclose`` for a proposal whose vote opens now (module docstring, "Frozen at the
    snapshot"); nothing is recorded when no delegate is exposed."""
    disclosed = tuple(disclose(state, changes, snapshot_height))
    if disclosed:
        state.proposal_exposures[proposal_id] = disclosed
        state.touch(("proposal_exposure", proposal_id))


def discounted_weight(state: State, proposal_id: str, voter: str, weight: int, risk_class: str) -> int:
    """A ballot's weight after the governed discount (module docstring): unchanged outside the critical
    tier, while the option is off (``exposed_vote_weight_ppm`` = 1e6) or for a voter not directly
    exposed in the disclosure frozen at the snapshot."""
    ppm = state.governance.exposed_vote_weight_ppm
    if risk_class != CRITICAL or ppm >= PPM or not is_exposed_at_snapshot(state, proposal_id, voter):
        return weight
    return weight * ppm // PPM


def disclose(state: State, changes: Iterable[Any], snapshot_height: int) -> list[DelegateExposure]:
    """Every delegate with votes at ``snapshot_height`` (``votes.get_past_votes``; the snapshot must be
    past, or the current height's votes are read) exposed in a touched market, largest own plus
    delegated notional first, then by address."""
    touched = changed_markets(state, changes)
    if not touched:
        return []
    delegators: dict[str, list[str]] = {}
    for account in sorted(state.bgov_delegates):
        delegators.setdefault(state.bgov_delegates[account], []).append(account)
    height = min(snapshot_height, state.height)
    result: list[DelegateExposure] = []
    for delegate in sorted(state.vote_checkpoints):
        power = votes.compute_checkpoint_lookup(state.vote_checkpoints[delegate], height)
        if power == 0:
            continue
        own = _holdings(state, delegate, touched)
        others = [(account, _holdings(state, account, touched))
                  for account in delegators.get(delegate, []) if account != delegate]
        markets = []
        for ticker, effect in touched.items():
            size, value = own.get(ticker, (0, 0))
            held = [h[ticker][1] for _, h in others if ticker in h]
            if size == 0 and not held:
                continue
            markets.append(MarketExposure(ticker, effect, size, value, sum(held), len(held)))
        if markets:
            own_total = sum(m.own_notional for m in markets)
            result.append(DelegateExposure(delegate, power, own_total >= state.governance.exposure_threshold_usdc,
                                           tuple(markets)))
    result.sort(key=lambda d: (-sum(m.own_notional + m.delegated_notional for m in d.markets), d.delegate))
    return result
