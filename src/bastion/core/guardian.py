"""The guardian (DESIGN.md section 9, issue 5): restrict-only emergency powers with an expiry.

**Who.** ``state.guardian`` is an address with an expiry (ms of block time), or none. Genesis may
name one (top-level ``"guardian": {"address", "expires"}``); afterwards only governance changes it,
with the ``critical`` action ``set_guardian{address | null, expires}``
(``governance.actions.compute_set_guardian_changes``, applied by ``governance.changes.change_param`` as
``guardian.address`` and ``guardian.expires_ms``).
Renewing is a new expiry. A guardian message is refused with ``not_guardian`` when the sender is not
the guardian (or there is none) and ``guardian_expired`` from the block whose time reaches
``expires`` on: the power lapses by itself unless governance renews it.

**Pauses** (``guardian_pause{scope, market?, duration_s}``), an overlay on the markets: the governed
``status`` is not changed and no parameter is. Scopes:

- ``market`` (a ticker): no new order and no trigger in that market; cancels still work;
- ``reduce_only`` (a ticker): the market accepts only reducing orders and matches only reducing
  makers, exactly as the governed status ``reduce_only`` (code ``market_reduce_only``);
- ``trading``: every market as under ``market``;
- ``withdrawals``: ``withdraw`` and ``transfer`` to another owner are refused; a transfer between
  the sender's own subaccounts stays allowed (collateral stays with its owner, and topping up an
  isolated subaccount may be what saves it from liquidation).

A pause is in force while ``start <= block time < end``. ``duration_s`` is 1 ..
``guardian_max_pause_s`` (governed, default 72 h). Pausing a key that is in force extends it: the
new end ``now + duration`` may not be earlier than the current one (``pause_would_shorten``: that
would loosen) nor later than ``start + max_pause`` (``pause_too_long``). **No chaining**: a key
``(scope, market)`` is started at most once per guardian term (``pause_already_used`` afterwards,
until governance renews the guardian), like Lido's one-shot GateSeal and Maker's one-shot ESM
(reference ``governance_timelock_guardian.md`` section 8, MK-09). A market can therefore stay
restricted by the guardian for at most ``3 x max_pause`` per term (market, reduce_only, trading).
The end-of-block step ``expire_pauses`` removes every pause whose end has come, with a
``pause_expired`` event; pauses outlive the guardian's own expiry or removal (they are bounded
anyway) and governance has no action to lift them early.

**Unpause** (``guardian_unpause{scope, market?}``): only to undo a mistake, while block time <=
``start + guardian_unpause_grace_s`` (governed, default 600 s, never above the maximum pause);
later ``unpause_grace_over``: the pause ends by itself. Compound's pause guardian cannot unpause at
all (reference section 5, PGd-02; only its admin can): we allow this short grace, and an unpaused
key stays spent for the term (so pause and unpause cannot be cycled).

**In a halted market** (a ``market`` or ``trading`` pause; issue 16) no liquidation fills into the
book: users cannot trade, so the only bids (asks) a forced sale could meet are the ones resting
before the pause, possibly the guardian's own or a colluding maker's, placed deep to harvest it.
Liquidations of positions in the market therefore wait, except for accounts at or below
bankruptcy (TNC <= 0): those go to the backstop at the oracle price (then deleveraging and
socialisation as usual, ``bastion.core.liquidation``), because their loss already falls on the
insurance fund and would only grow while they wait, and a takeover at the oracle price pays no
one who rests orders. The backstop does not unwind into a halted book either. A waiting account's
stall count (``backstop_after_blocks``) neither grows nor resets. After the pause ends (by itself
or by an unpause), a **liquidation grace** of ``liquidation_grace`` (governed, default 30 min, at
most 4 h as Aave's sentinel) applies the same rule to the market (every market after a
``trading`` pause), so users get time to add margin or reduce before a book liquidation can reach
them (``State.liquidation_grace_until``, ticker -> block time; ``liquidation_hold``). A guardian
``reduce_only`` pause does not hold liquidations: users can still reduce, and makers on the other
side must be reducing too. Untriggered conditional orders wait (as in a stale market) and trigger
once the pause is over.

**Veto**: ``governance.guardian_veto`` (the proposal lifecycle stays in ``bastion.core.governance``).

**Funds**: the guardian has no message that moves funds; governance actions sent as transactions
are refused by the decoder (``messages.action_requires_proposal``) for every sender, and its
``withdraw`` and ``transfer`` only reach its own subaccounts, like any account's.
"""
from __future__ import annotations

from typing import Any, Final

from bastion.core.enums import DELISTED
from bastion.core.errors import ProtocolError
from bastion.core import events as ev
from bastion.core.events import Events, emit
from bastion.core.messages import GuardianPause, GuardianUnpause
from bastion.core.state import Pause, PauseKey, State
from bastion.core.units import MS_PER_S


MARKET, REDUCE_ONLY_SCOPE, TRADING, WITHDRAWALS = "market", "reduce_only", "trading", "withdrawals"
PAUSE_SCOPES: Final = (MARKET, REDUCE_ONLY_SCOPE, TRADING, WITHDRAWALS)
MARKET_SCOPES: Final = (MARKET, REDUCE_ONLY_SCOPE)
_DELISTED: Final = DELISTED


# --------------------------------------------------------------------------------------- queries
def get_pause(state: State, scope: str, market: str | None = None) -> Pause | None:
    """The pause of ``(scope, market)`` if it is in force at the current block time."""
    pause = state.pauses.get((scope, market))
    if pause is None or state.time_ms >= pause.end_ms:
        return None
    return pause


def is_market_halted(state: State, ticker: str) -> bool:
    """True while a ``market`` pause of ``ticker`` or a ``trading`` pause is in force."""
    return bool(state.pauses) and (get_pause(state, MARKET, ticker) or get_pause(state, TRADING)) is not None


def is_reduce_only(state: State, ticker: str) -> bool:
    """True while a guardian ``reduce_only`` pause of ``ticker`` is in force."""
    return bool(state.pauses) and get_pause(state, REDUCE_ONLY_SCOPE, ticker) is not None


def liquidation_hold(state: State, ticker: str) -> str | None:
    """Why book liquidations of ``ticker`` wait now: ``guardian_pause`` while it is halted,
    ``liquidation_grace`` during the grace after a halt, else None (module docstring)."""
    if is_market_halted(state, ticker):
        return "guardian_pause"
    if state.liquidation_grace_until.get(ticker, 0) > state.time_ms:
        return "liquidation_grace"
    return None


def start_liquidation_grace(state: State, pause: Pause, from_ms: int, events: Events) -> None:
    """A halt ended at ``from_ms``: hold book liquidations of its market(s) for the governed grace."""
    grace_ms = state.liquidation.liquidation_grace_ms
    if pause.scope not in (MARKET, TRADING) or grace_ms == 0:
        return
    tickers = [pause.market] if pause.scope == MARKET and pause.market is not None else sorted(
        t for t, m in state.markets.items() if m.status not in _DELISTED)
    until = from_ms + grace_ms
    for ticker in tickers:
        if state.liquidation_grace_until.get(ticker, 0) < until:
            state.liquidation_grace_until[ticker] = until
    state.liquidation_grace_until = dict(sorted(state.liquidation_grace_until.items()))
    state.touch(("global",))
    emit(events, ev.LiquidationGrace, scope=pause.scope, markets=tuple(tickers), until_ms=until)


def check_market_open(state: State, ticker: str, *, reducing: bool) -> None:
    """Refuse an order in a market the guardian halted, or a non-reducing one under its reduce-only
    pause (called where the market status is checked: placement and conditional triggers)."""
    if not state.pauses:
        return
    pause = get_pause(state, MARKET, ticker) or get_pause(state, TRADING)
    if pause is not None:
        raise ProtocolError("market_paused_by_guardian", f"{ticker} is paused by the guardian ({pause.scope} pause) "
                            f"until block time {pause.end_ms} ms", field="market", paused_until_ms=pause.end_ms)
    pause = get_pause(state, REDUCE_ONLY_SCOPE, ticker)
    if pause is not None and not reducing:
        raise ProtocolError("market_reduce_only", f"{ticker} accepts only reducing orders (guardian pause until "
                            f"block time {pause.end_ms} ms)", field="market", paused_until_ms=pause.end_ms)


def check_withdrawals_open(state: State, sender: str, to_owner: str | None) -> None:
    """Refuse a withdrawal (``to_owner`` None) or a transfer to another owner under a ``withdrawals`` pause."""
    if not state.pauses or to_owner == sender:
        return
    pause = get_pause(state, WITHDRAWALS)
    if pause is not None:
        raise ProtocolError("withdrawals_paused_by_guardian", "withdrawals and transfers to other owners are paused "
                            f"by the guardian until block time {pause.end_ms} ms", field="subaccount",
                            paused_until_ms=pause.end_ms)


def check_guardian(state: State, sender: str) -> int:
    """The sender must be the guardian and the block time before its expiry; returns the expiry,
    which identifies the guardian's term."""
    guardian = state.guardian
    expires_ms = guardian.expires_ms
    if guardian.address is None or expires_ms is None or sender != guardian.address:
        raise ProtocolError("not_guardian", "only the guardian may send this message", field="sender")
    if state.time_ms >= expires_ms:
        raise ProtocolError("guardian_expired", f"the guardian's power lapsed at block time {expires_ms} ms "
                            "(governance may renew it)", field="sender", expired_ms=expires_ms)
    return expires_ms


# --------------------------------------------------------------------------------------- governance
def check_grace_within_max_pause(max_pause_ms: int, grace_ms: int, path: str) -> None:
    """The unpause grace may not exceed the maximum pause (else the guardian could always unpause)."""
    if grace_ms > max_pause_ms:
        raise ProtocolError("invalid_field", f"{path}.guardian_unpause_grace_s may not exceed guardian_max_pause_s",
                            field=f"{path}.guardian_unpause_grace_s")


# --------------------------------------------------------------------------------------- handlers
def get_pause_key(state: State, scope: str, market: str | None) -> PauseKey:
    """Validate a scope and its market: ``(scope, ticker)`` or ``(scope, None)``."""
    if scope not in PAUSE_SCOPES:
        raise ProtocolError("invalid_pause_scope", f"scope must be one of {PAUSE_SCOPES}", field="scope")
    if scope not in MARKET_SCOPES:
        if market is not None:
            raise ProtocolError("invalid_field", f"a {scope} pause takes no market", field="market")
        return scope, None
    if market is None:
        raise ProtocolError("missing_field", f"a {scope} pause needs a market", field="market")
    found = state.markets.get(market)
    if found is None:
        raise ProtocolError("unknown_market", f"unknown market {market!r}", field="market")
    if found.status in _DELISTED:
        raise ProtocolError("market_delisted", f"{market} is delisted ({found.status})", field="market")
    return scope, market


def guardian_pause(state: State, sender: str, msg: GuardianPause, events: Events) -> dict[str, Any]:
    """The guardian pauses a scope (a market, trading, withdrawals...) for ``duration_s``, or extends a
    running pause of it up to the maximum pause from its start; once per scope and guardian term.
    Raises ``not_guardian``, ``guardian_expired``, ``invalid_pause_scope``, ``invalid_field``,
    ``missing_field``, ``unknown_market``, ``market_delisted``, ``invalid_pause_duration``,
    ``pause_would_shorten``, ``pause_too_long``, ``pause_already_used``."""
    # VALIDATION
    term = check_guardian(state, sender)
    key = get_pause_key(state, msg.scope, msg.market)
    max_pause_ms = state.governance.guardian_max_pause_ms
    if not 1 <= msg.duration_s <= max_pause_ms // MS_PER_S:
        raise ProtocolError("invalid_pause_duration", f"duration_s must be 1 to {max_pause_ms // MS_PER_S}",
                            field="duration_s")
    end_ms = state.time_ms + msg.duration_s * MS_PER_S
    current = get_pause(state, *key)
    if current is not None:
        if end_ms < current.end_ms:
            raise ProtocolError("pause_would_shorten", f"the pause already lasts until block time {current.end_ms} ms",
                                field="duration_s", paused_until_ms=current.end_ms)
        if end_ms > current.start_ms + max_pause_ms:
            raise ProtocolError("pause_too_long", f"a pause ends at the latest {max_pause_ms // MS_PER_S} s after "
                                f"its start (block time {current.start_ms + max_pause_ms} ms)", field="duration_s",
                                latest_end_ms=current.start_ms + max_pause_ms)
    elif state.guardian.pauses_used.get(key) == term:
        raise ProtocolError("pause_already_used", f"this guardian term already paused {_describe(key)}; a new term "
                            "(set_guardian) re-arms it", field="scope")
    # OPERATION
    if current is None:
        if key in state.pauses:  # ended earlier in this block's time but not yet removed
            expire_pause(state, key, events)
        pause = state.pauses[key] = Pause(key[0], key[1], state.time_ms, end_ms)
        state.guardian.pauses_used[key] = term
        state.touch(("guardian",))
    else:
        pause = current
        pause.end_ms = end_ms
    state.touch(("pause", *key))
    emit(events, ev.GuardianPaused, scope=key[0], market=key[1], start_ms=pause.start_ms, end_ms=end_ms,
         extended=current is not None)
    return {"start_ms": pause.start_ms, "end_ms": end_ms}


def guardian_unpause(state: State, sender: str, msg: GuardianUnpause, events: Events) -> dict[str, Any]:
    """The guardian lifts its own pause of a scope within the unpause grace after the pause started
    (the liquidation grace then starts). Raises ``not_guardian``, ``guardian_expired``,
    ``invalid_pause_scope``, ``invalid_field``, ``missing_field``, ``unknown_market``, ``market_delisted``,
    ``not_paused``, ``unpause_grace_over``."""
    # VALIDATION
    check_guardian(state, sender)
    key = get_pause_key(state, msg.scope, msg.market)
    pause = get_pause(state, *key)
    if pause is None:
        raise ProtocolError("not_paused", f"{_describe(key)} is not paused", field="scope")
    grace_end_ms = pause.start_ms + state.governance.guardian_unpause_grace_ms
    if state.time_ms > grace_end_ms:
        raise ProtocolError("unpause_grace_over", f"the guardian may lift its pause only until block time "
                            f"{grace_end_ms} ms; it ends by itself at {pause.end_ms} ms", field="scope",
                            grace_end_ms=grace_end_ms, paused_until_ms=pause.end_ms)
    # OPERATION
    del state.pauses[key]
    state.touch(("pause", *key))
    emit(events, ev.GuardianUnpaused, scope=key[0], market=key[1], start_ms=pause.start_ms, end_ms=pause.end_ms)
    start_liquidation_grace(state, pause, state.time_ms, events)
    return {}


# --------------------------------------------------------------------------------------- end of block
def expire_pauses(state: State, events: Events) -> None:
    """End-of-block step: remove every pause whose end has come (block time >= end), in start order
    (each starts its liquidation grace), and every liquidation grace that is over."""
    for key in [k for k, pause in state.pauses.items() if state.time_ms >= pause.end_ms]:
        expire_pause(state, key, events)
    over = [t for t, until in state.liquidation_grace_until.items() if until <= state.time_ms]
    for ticker in over:
        del state.liquidation_grace_until[ticker]
        state.touch(("global",))


def expire_pause(state: State, key: PauseKey, events: Events) -> None:
    """Remove the pause ``key`` that reached its end (``pause_expired``) and start its liquidation grace
    from the pause's end."""
    pause = state.pauses.pop(key)
    state.touch(("pause", *key))
    emit(events, ev.PauseExpired, scope=pause.scope, market=pause.market, start_ms=pause.start_ms,
         end_ms=pause.end_ms)
    start_liquidation_grace(state, pause, pause.end_ms, events)


def _describe(key: PauseKey) -> str:
    scope, market = key
    return f"{scope} {market}" if market is not None else scope
