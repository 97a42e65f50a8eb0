"""BGOV, delegation and voting power with per-block checkpoints (DESIGN.md section 9; OpenZeppelin ``Votes``).

The ledger: ``state.bgov`` holds every non-zero balance in BGOV units (``BGOV_DECIMALS`` = 6: one
BGOV is 1,000,000 units, the grid of genesis and message strings). The total supply is set at
genesis (no mint) and checkpointed like the delegated supply, so that a burn (a vetoed proposal's
deposit, ``bastion.core.governance``) keeps past quorums exact. Escrowed deposits are outside every
balance: the balances plus the escrowed deposits equal the total supply.

Delegation: ``state.bgov_delegates`` maps a holder to the address its whole balance votes for.
Nobody is delegated at first (as in OpenZeppelin), so a balance has no voting power until its
holder delegates, to itself to vote with its own tokens. Delegating to the zero address removes
the delegation. The voting power of a delegatee is the sum of the balances delegated to it.

Checkpoints: every change of a delegatee's votes, of the delegated supply or of the total supply
writes ``(height, value)`` in its list at the current block height, at most one entry per height
(the last change of a block wins), heights strictly increasing. ``get_past_votes(state, account,
height)`` is the value at the end of block ``height`` (the last checkpoint at or before it, 0 if
none), by binary search; ``height`` must be a finished block (``< state.height``), else
``future_lookup`` (OpenZeppelin ``ERC5805FutureLookup``).

Holding age (high-risk tiers): ``get_votes_with_holding_age`` counts the MINIMUM of the votes over
the window ``snapshot - min_age_blocks .. snapshot`` (every checkpoint in it), so tokens (or
delegations) acquired within the ``min_age_blocks`` blocks before the snapshot count for nothing,
and selling inside the window and renting back for the snapshot counts only the lowest level.
Genesis allocations count as held from height 0 (the window start is clamped to 0).

Handlers (``transfer_bgov``, ``delegate``) validate everything, then apply, then emit
``bgov_transfer``, ``delegate_changed`` and ``delegate_votes_changed`` events. Concentration
metrics (Nakamoto coefficients, Gini, HHI, effective voters, top-10 share) are pure functions over
a list of voting powers, exact (``int`` / ``Fraction``).

Hash leaves (``bastion.core.hashing``): ``("bgov", address)`` = ``[balance, delegate]`` per holder
or delegator, ``("votes", delegatee, i)`` = ``[height, votes]`` per checkpoint,
``("delegated_supply", i)`` and ``("total_supply", i)`` likewise: a transfer rehashes only the
leaves it touched, never anybody's whole history.
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

from bastion.core.errors import ProtocolError
from bastion.core import events as ev
from bastion.core.events import Events, emit
from bastion.core.messages import Delegate, TransferBgov, normalize_address
from bastion.core.state import State
from bastion.core.units import parse_decimal

BGOV_DECIMALS: Final = 6
BGOV: Final = 10**BGOV_DECIMALS            # units per BGOV
ZERO_ADDRESS: Final = "0x" + "0" * 40     # delegating to it removes the delegation

Checkpoints = list[tuple[int, int]]        # (height, value), heights strictly increasing


# --------------------------------------------------------------------------------------- queries
def get_balance(state: State, account: str) -> int:
    """``account``'s BGOV balance in base units (0 for an account that holds none)."""
    return state.bgov.get(account, 0)


def get_delegate(state: State, account: str) -> str | None:
    """The delegate of ``account``'s votes, None when it has not delegated (its votes count nowhere)."""
    return state.bgov_delegates.get(account)


def get_votes(state: State, account: str) -> int:
    """Current voting power: the sum of the balances delegated to ``account``."""
    checkpoints = state.vote_checkpoints.get(account)
    return checkpoints[-1][1] if checkpoints else 0


def get_delegated_supply(state: State) -> int:
    """The BGOV delegated to someone now (the last delegated-supply checkpoint)."""
    checkpoints = state.delegated_supply_checkpoints
    return checkpoints[-1][1] if checkpoints else 0


def get_total_supply(state: State) -> int:
    """The BGOV supply now (the last total-supply checkpoint; burned deposits and fees are out of it)."""
    checkpoints = state.total_supply_checkpoints
    return checkpoints[-1][1] if checkpoints else 0


def check_past_height(state: State, height: int) -> None:
    """A past lookup must name a finished block (OpenZeppelin ``ERC5805FutureLookup``)."""
    if height >= state.height:
        raise ProtocolError("future_lookup", f"height {height} is not in the past (current height {state.height})",
                            field="height", height=height, current_height=state.height)


def compute_checkpoint_lookup(checkpoints: Checkpoints, height: int) -> int:
    """The value of the last checkpoint at or before ``height`` (0 if none): binary search."""
    index = bisect_right(checkpoints, (height, _INFINITY))
    return checkpoints[index - 1][1] if index else 0


_INFINITY: Final = 1 << 256  # larger than any value, so (height, _INFINITY) sorts after every (height, v)


def get_past_votes(state: State, account: str, height: int) -> int:
    """Voting power of ``account`` at the end of block ``height`` (``height < state.height``)."""
    check_past_height(state, height)
    return compute_checkpoint_lookup(state.vote_checkpoints.get(account, []), height)


def get_past_delegated_supply(state: State, height: int) -> int:
    """The BGOV delegated at the end of block ``height`` (``height < state.height``)."""
    check_past_height(state, height)
    return compute_checkpoint_lookup(state.delegated_supply_checkpoints, height)


def get_past_total_supply(state: State, height: int) -> int:
    """BGOV total supply at the end of block ``height`` (delegated or not, as OpenZeppelin's)."""
    check_past_height(state, height)
    return compute_checkpoint_lookup(state.total_supply_checkpoints, height)


def compute_checkpoint_minimum(checkpoints: Checkpoints, start: int, end: int) -> int:
    """The smallest value held at any point from the end of block ``start`` to the end of block
    ``end`` (``start <= end``): the value at ``start`` and every checkpoint written in
    ``start + 1 .. end``. Binary search for both ends, then a scan of the checkpoints between."""
    lowest = compute_checkpoint_lookup(checkpoints, start)
    first = bisect_right(checkpoints, (start, _INFINITY))
    last = bisect_right(checkpoints, (end, _INFINITY))
    for _, value in checkpoints[first:last]:
        lowest = min(lowest, value)
    return lowest


def get_min_past_votes(state: State, account: str, start: int, end: int) -> int:
    """The smallest voting power ``account`` had at the end of any block ``start .. end``
    (``start`` clamped at 0, ``end`` a finished block)."""
    check_past_height(state, end)
    return compute_checkpoint_minimum(state.vote_checkpoints.get(account, []), max(start, 0), end)


def get_votes_with_holding_age(state: State, account: str, snapshot_height: int, min_age_blocks: int) -> int:
    """The minimum of ``account``'s votes over the holding window ``snapshot - min_age_blocks ..
    snapshot`` (every checkpoint in it, not two points): power sold and rented back inside the
    window counts for its lowest level, power acquired inside it counts for nothing (window start
    clamped at 0, so genesis allocations count as held)."""
    if min_age_blocks < 0:
        raise ProtocolError("invalid_field", "min_age_blocks must not be negative", field="min_age_blocks")
    return get_min_past_votes(state, account, snapshot_height - min_age_blocks, snapshot_height)


def get_voting_powers(state: State) -> dict[str, int]:
    """Every delegatee with non-zero current votes, by address (sorted)."""
    return {account: cps[-1][1] for account, cps in sorted(state.vote_checkpoints.items()) if cps and cps[-1][1]}


def iter_bgov_accounts(state: State) -> list[str]:
    """Every address with a BGOV leaf: a holder or a delegator, sorted."""
    return sorted(set(state.bgov) | set(state.bgov_delegates))


# --------------------------------------------------------------------------------------- mutation
def write_checkpoint(state: State, checkpoints: Checkpoints, value: int, leaf: tuple[Any, ...]) -> None:
    """Record ``value`` at the current height (replacing this block's entry if there is one) and
    touch the leaf ``leaf + (index,)``."""
    height = state.height
    if checkpoints and checkpoints[-1][0] == height:
        checkpoints[-1] = (height, value)
    else:
        checkpoints.append((height, value))
    state.touch(leaf + (len(checkpoints) - 1,))


def move_voting_power(state: State, source: str | None, destination: str | None, amount: int,
                      events: Events) -> None:
    """Move ``amount`` votes from delegatee ``source`` to ``destination`` (None: undelegated
    balance), writing checkpoints and ``delegate_votes_changed`` events (source first)."""
    if source == destination or amount == 0:
        return
    for delegatee, delta in ((source, -amount), (destination, amount)):
        if delegatee is None:
            continue
        checkpoints = state.vote_checkpoints.setdefault(delegatee, [])
        previous = checkpoints[-1][1] if checkpoints else 0
        write_checkpoint(state, checkpoints, previous + delta, ("votes", delegatee))
        emit(events, ev.DelegateVotesChanged, delegate=delegatee, previous_votes=previous, new_votes=previous + delta)
    if source is None or destination is None:
        delta = amount if source is None else -amount
        write_checkpoint(state, state.delegated_supply_checkpoints, get_delegated_supply(state) + delta,
                         ("delegated_supply",))


def set_balance(state: State, account: str, balance: int) -> None:
    """Set ``account``'s BGOV balance (a zero balance leaves no entry); voting power is moved apart."""
    if balance:
        state.bgov[account] = balance
    else:
        state.bgov.pop(account, None)
    state.touch(("bgov", account))


def set_delegate(state: State, account: str, delegatee: str | None, events: Events) -> None:
    """Point ``account``'s whole balance at ``delegatee`` (None: no delegation), moving its votes."""
    previous = state.bgov_delegates.get(account)
    if delegatee is None:
        state.bgov_delegates.pop(account, None)
    else:
        state.bgov_delegates[account] = delegatee
    state.touch(("bgov", account))
    emit(events, ev.DelegateChanged, delegator=account, from_delegate=previous, to_delegate=delegatee)
    move_voting_power(state, previous, delegatee, get_balance(state, account), events)


def init_genesis_votes(state: State, delegations: Iterable[tuple[str, str]]) -> None:
    """At genesis (height 0): the total supply checkpoint and the initial delegations (no events)."""
    supply = sum(state.bgov.values())
    if supply:
        write_checkpoint(state, state.total_supply_checkpoints, supply, ("total_supply",))
    for account, delegatee in delegations:
        set_delegate(state, account, None if delegatee == ZERO_ADDRESS else delegatee, [])


# --------------------------------------------------------------------------------------- handlers
def parse_bgov(text: str, *, field: str = "amount") -> int:
    """A positive BGOV amount on the 6-decimal grid."""
    amount = parse_decimal(text, BGOV_DECIMALS, field=field)
    if amount <= 0:
        raise ProtocolError("non_positive_amount", f"{field} must be positive", field=field)
    return amount


def transfer_bgov(state: State, sender: str, msg: TransferBgov, events: Events) -> dict[str, Any]:
    """Move BGOV from the sender to another account; the votes follow from the sender's delegate to the
    recipient's. Raises ``invalid_recipient``, ``non_positive_amount``, ``insufficient_bgov``."""
    # VALIDATION
    to = normalize_address(msg.to, field="to")
    if to == sender:
        raise ProtocolError("invalid_recipient", "cannot transfer BGOV to yourself", field="to")
    amount = parse_bgov(msg.amount)
    balance = get_balance(state, sender)
    if amount > balance:
        raise ProtocolError("insufficient_bgov", f"amount exceeds the BGOV balance ({balance} units)",
                            field="amount", balance=balance)
    # OPERATION
    set_balance(state, sender, balance - amount)
    set_balance(state, to, get_balance(state, to) + amount)
    emit(events, ev.BgovTransfer, from_=sender, to=to, amount=amount)
    move_voting_power(state, get_delegate(state, sender), get_delegate(state, to), amount, events)
    return {}


def delegate(state: State, sender: str, msg: Delegate, events: Events) -> dict[str, Any]:
    """Point the sender's votes at ``delegatee`` (the zero address: no delegate), moving its whole balance's
    voting power. Raises ``delegate_unchanged``."""
    # VALIDATION
    target = normalize_address(msg.delegatee, field="delegatee")
    delegatee = None if target == ZERO_ADDRESS else target
    if delegatee == get_delegate(state, sender):
        raise ProtocolError("delegate_unchanged",
                            "already delegated to that address" if delegatee else "not delegated",
                            field="delegatee")
    # OPERATION
    set_delegate(state, sender, delegatee, events)
    return {}


# --------------------------------------------------------------------------------------- concentration
def _sorted_powers(powers: Iterable[int]) -> list[int]:
    values = sorted(powers, reverse=True)
    if values and values[-1] < 0:
        raise ValueError("voting powers are never negative")
    return values


def compute_nakamoto_coefficient(powers: Iterable[int], share: Fraction) -> int:
    """The smallest number of holders whose combined power strictly exceeds ``share`` of the total
    (0 when there is no power). [50, 30, 20] at 1/2: 50 is not above 50, 50 + 30 is: 2."""
    values = _sorted_powers(powers)
    total = sum(values)
    if total == 0:
        return 0
    running = 0
    for count, value in enumerate(values, start=1):
        running += value
        if running > share * total:
            return count
    return len(values)  # share >= 1 is never exceeded: everybody


def compute_gini(powers: Iterable[int]) -> Fraction:
    """Gini coefficient ``sum_i sum_j |x_i - x_j| / (2 n sum x)`` over the given holders, exact."""
    values = sorted(_sorted_powers(powers))
    n, total = len(values), sum(values)
    if total == 0:
        return Fraction(0)
    weighted = sum(rank * value for rank, value in enumerate(values, start=1))
    return Fraction(2 * weighted, n * total) - Fraction(n + 1, n)


def compute_hhi(powers: Iterable[int]) -> Fraction:
    """Herfindahl-Hirschman index: the sum of squared shares (1 = one holder, 1/n = n equal)."""
    values = _sorted_powers(powers)
    total = sum(values)
    if total == 0:
        return Fraction(0)
    return Fraction(sum(v * v for v in values), total * total)


def compute_effective_voters(powers: Iterable[int]) -> Fraction:
    """1 / HHI: the number of equal holders with the same concentration (0 when there is no power)."""
    hhi = compute_hhi(powers)
    return 1 / hhi if hhi else Fraction(0)


def compute_top_share(powers: Iterable[int], count: int = 10) -> Fraction:
    """The share of the total held by the ``count`` largest holders."""
    values = _sorted_powers(powers)
    total = sum(values)
    return Fraction(sum(values[:count]), total) if total else Fraction(0)


def is_quorum_alone(powers: Iterable[int], quorum_votes: int) -> bool:
    """Alert: one delegate alone reaches ``quorum_votes`` (>=, since a quorum is met at equality)."""
    values = _sorted_powers(powers)
    return bool(values) and values[0] > 0 and values[0] >= quorum_votes


@dataclass(frozen=True, slots=True)
class Concentration:
    """The concentration metrics of a set of voting powers (``compute_concentration``)."""

    holders: int
    total: int
    nakamoto_one_third: int
    nakamoto_one_half: int
    gini: Fraction
    hhi: Fraction
    effective_voters: Fraction
    top10_share: Fraction


def compute_concentration(powers: Iterable[int]) -> Concentration:
    """Every concentration metric of section 9 over the given voting powers (zeros ignored)."""
    values = [v for v in _sorted_powers(powers) if v]
    return Concentration(holders=len(values), total=sum(values),
                         nakamoto_one_third=compute_nakamoto_coefficient(values, Fraction(1, 3)),
                         nakamoto_one_half=compute_nakamoto_coefficient(values, Fraction(1, 2)),
                         gini=compute_gini(values), hhi=compute_hhi(values),
                         effective_voters=compute_effective_voters(values),
                         top10_share=compute_top_share(values, 10))
