"""Insurance-fund staking and replenishment (DESIGN.md section 12, issue 19).

**Two parts of one fund.** ``state.insurance_funds[pool]`` stays the whole fund (what the loss
waterfall may draw, what the collateral invariant counts). Of it, ``StakePool.staked`` belongs to the
stakers, who hold ``StakePool.shares``; the rest is *protocol-owned*. Every credit to or debit from
a fund goes through ``move_fund(state, pool, delta, flow)``, which changes the fund and gives the
stakers their part of the change:

* ``FundFlow.FEE``: a fee flowing in (the fund's share of trading fees, a liquidation's fee, a
  backstop takeover's surplus): the stakers get ``staker_fee_share_ppm`` of it, rounded down, when
  the pool has shares outstanding; a negative ``FEE`` (a liquidation filled beyond bankruptcy) is a
  loss, as below;
* ``FundFlow.RESULT``: the backstop's realised result and the deficits the fund pays: a gain is
  shared in proportion to the two parts (the stakers' part rounded down); a loss is borne by the
  stakers in proportion (their part rounded *up*) or first (``loss_mode`` = ``first_loss``: the
  staked part first, the protocol-owned part after), never more than the staked part;
* ``FundFlow.PROTOCOL``: governance transfers in and out and settlement rounding: the
  protocol-owned part only (a transfer can never take the stakers' money: ``_check_money_moves``
  in ``bastion.core.governance.actions`` counts only the protocol-owned part).

Every rounding goes to the protocol-owned part's favour and every micro-USDC belongs to exactly one
part, so nothing leaks either way.

**Shares.** ``stake_insurance`` moves USDC from one of the sender's subaccounts (free collateral, as
a withdrawal) into the fund and mints ``amount`` shares for the first stake of a pool, else
``floor(amount * shares / staked)`` (a stake that would mint nothing is refused). ``request_unstake``
locks shares for ``cooldown_ms``; the locked shares still earn and still bear losses, and
``complete_unstake`` pays ``floor(shares * staked / shares_total)`` at the share price *of that
block*, so a crash during the cooldown is borne. A stake or an unstake never lowers the share
price (the rounding stays with the remaining holders). A loss that takes the whole staked part
cancels every share of the pool and its pending requests (``insurance_stakes_wiped_out``), so a
pool's staked part is zero exactly when it has no shares.

**Replenishment.** A fund's target is ``target_floor_usdc + target_oi_ppm`` of the open-interest
notional of its pool's live markets (at the oracle price). ``update_replenishment`` (an end-of-block
step) marks each fund below its target as replenishing, with an ``insurance_replenishment`` event
when that changes; while it is, the fund's share of net trading fees is ``replenish_share_ppm``
(if above ``FeeParams.insurance_share_ppm``), from the next block on (``fee_share_ppm``).
"""
from __future__ import annotations

from typing import Any, Final

from bastion.core import events as ev
from bastion.core.accounts import (
    check_free_collateral, check_open_orders_covered, check_subaccount_number, check_withdrawals_open,
    get_or_create_subaccount, get_own_subaccount, parse_positive_usdc, settle_funding,
)
from bastion.core.enums import STAKING_LOSS_MODES, FundFlow, MarketStatus, StakingLossMode
from bastion.core.errors import InvariantViolation, ProtocolError
from bastion.core.events import Events, emit
from bastion.core.messages import CompleteUnstake, RequestUnstake, StakeInsurance
from bastion.core.params import InsuranceStakingParams
from bastion.core.state import CROSS_POOL, StakePool, State, UnstakeRequest
from bastion.core.units import PPM, format_ppm, format_usdc, parse_ppm, parse_usdc, ppm_of_down
from bastion.risk_model import notional

STAKING_FIELDS: Final = ("cooldown_ms", "staker_fee_share", "loss_mode", "min_stake", "target_oi_share",
                         "target_floor", "replenish_share")
MAX_COOLDOWN_MS: Final = 90 * 86_400_000   # a cooldown of at most 90 days


# --------------------------------------------------------------------------------------- apportioning
def get_stake_pool(state: State, pool: str) -> StakePool:
    """The pool's staking record, created empty the first time it is needed."""
    record = state.stake_pools.get(pool)
    if record is None:
        record = state.stake_pools[pool] = StakePool()
    return record


def protocol_part(state: State, pool: str) -> int:
    """The protocol-owned part of a fund: the fund less its staked part."""
    record = state.stake_pools.get(pool)
    return state.insurance_funds[pool] - (record.staked if record is not None else 0)


def move_fund(state: State, pool: str, delta: int, flow: FundFlow, events: Events | None = None) -> int:
    """THE way an insurance fund changes: add ``delta`` micro-USDC to the fund of ``pool`` and give
    the stakers their part of it by ``flow`` (module docstring); returns the stakers' part. The
    caller has checked that the fund covers a debit (a ``PROTOCOL`` debit: its protocol-owned part)."""
    funds = state.insurance_funds
    before = funds[pool]
    funds[pool] = before + delta
    record = state.stake_pools.get(pool)
    if record is None or record.shares == 0 or delta == 0:
        return 0   # no stakers: the whole fund is protocol-owned
    params = state.insurance_staking
    staked = record.staked
    if flow == FundFlow.PROTOCOL:
        part = 0
        if funds[pool] < staked:
            raise InvariantViolation(f"a protocol debit of {-delta} took staked money from the {pool} fund")
    elif delta > 0:
        part = ppm_of_down(delta, params.staker_fee_share_ppm) if flow == FundFlow.FEE else delta * staked // before
        record.fees_earned += part
    elif params.loss_mode == StakingLossMode.FIRST_LOSS:
        part = -min(-delta, staked)
    else:
        part = -min(staked, -((delta * staked) // before))   # ceil(loss * staked / fund): the stakers' part up
    if part < 0:
        record.losses_borne -= part
    record.staked = staked + part
    state.touch(("stake_pool", pool))
    if part < 0 and events is not None:
        emit(events, ev.InsuranceStakersLoss, pool=pool, loss=-delta, stakers_loss=-part, staked=record.staked,
             shares=record.shares, loss_mode=params.loss_mode)
    if record.staked == 0:
        _wipe_out(state, pool, record, events)
    return part


def _wipe_out(state: State, pool: str, record: StakePool, events: Events | None) -> None:
    """The staked part is gone: cancel every share of the pool and its pending requests."""
    owners = sorted(owner for (p, owner) in state.stakes if p == pool)
    for owner in owners:
        del state.stakes[(pool, owner)]
        state.touch(("stake", pool, owner))
    requests = [rid for rid, request in state.unstake_requests.items() if request.pool == pool]
    for rid in requests:
        del state.unstake_requests[rid]
        state.touch(("unstake_request", rid))
    shares, record.shares = record.shares, 0
    if events is not None:
        emit(events, ev.InsuranceStakesWipedOut, pool=pool, shares=shares, holders=len(owners),
             requests=tuple(requests))


def fee_share_ppm(state: State, pool: str) -> int:
    """The share of net trading fees that goes to the fund of ``pool``: the governed
    ``insurance_share_ppm``, or the replenishment share while the fund is below its target."""
    base = state.fees.insurance_share_ppm
    record = state.stake_pools.get(pool)
    if record is not None and record.replenishing:
        return max(base, state.insurance_staking.replenish_share_ppm)
    return base


# --------------------------------------------------------------------------------------- replenishment
def open_interest_notional(state: State) -> dict[str, int]:
    """Per pool, the open-interest notional (micro-USDC, at the oracle price) of its markets that
    are not settled."""
    totals = {pool: 0 for pool in state.insurance_funds}
    for market in state.markets.values():
        if market.status == MarketStatus.SETTLED or market.pool not in totals:
            continue
        totals[market.pool] += notional(market.open_interest, market.oracle_price,
                                        size_decimals=market.size_decimals, price_decimals=market.price_decimals)
    return totals


def fund_targets(state: State) -> dict[str, tuple[int, int, int]]:
    """Per pool (sorted): ``(fund, target, gap)``; the gap is what the fund lacks (0 at or above)."""
    params = state.insurance_staking
    out = {}
    oi = open_interest_notional(state)
    for pool in sorted(state.insurance_funds):
        target = params.target_floor_usdc + ppm_of_down(oi[pool], params.target_oi_ppm)
        fund = state.insurance_funds[pool]
        out[pool] = (fund, target, max(target - fund, 0))
    return out


def update_replenishment(state: State, events: Events) -> None:
    """End-of-block step: mark each fund below its target as replenishing (and back), with an
    ``insurance_replenishment`` event when that changes. Nothing to do while no target is set and
    no fund replenishes (the default)."""
    params = state.insurance_staking
    if not (params.target_floor_usdc or params.target_oi_ppm) and not any(
            record.replenishing for record in state.stake_pools.values()):
        return
    for pool, (fund, target, gap) in fund_targets(state).items():
        record = state.stake_pools.get(pool)
        below = gap > 0
        if below == (record.replenishing if record is not None else False):
            continue
        record = get_stake_pool(state, pool)
        record.replenishing = below
        state.touch(("stake_pool", pool))
        emit(events, ev.InsuranceReplenishment, pool=pool, replenishing=below, insurance_fund=fund, target=target,
             fee_share_ppm=fee_share_ppm(state, pool))


# --------------------------------------------------------------------------------------- handlers
def _get_fund(state: State, fund: str) -> str:
    if fund not in state.insurance_funds:
        raise ProtocolError("unknown_pool", f"no insurance fund {fund!r}", field="fund")
    return fund


def share_value(record: StakePool, shares: int) -> int:
    """What ``shares`` of a pool are worth now, rounded down (0 for a pool without shares)."""
    return shares * record.staked // record.shares if record.shares else 0


def stake_insurance(state: State, sender: str, msg: StakeInsurance, events: Events) -> dict[str, Any]:
    """Stake ``amount`` USDC from the sender's ``subaccount`` into the insurance fund ``fund`` for
    shares (module docstring). Refusals: ``unknown_pool``, ``invalid_subaccount``,
    ``subaccount_not_found``, ``non_positive_amount`` and the decimal codes, ``stake_below_minimum``,
    ``withdrawals_paused`` (the subaccount's pool is paused after a loss),
    ``insufficient_free_collateral``, ``too_many_open_orders`` (as ``withdraw``) and
    ``stake_too_small`` (it would mint no share)."""
    pool = _get_fund(state, msg.fund)
    sub = get_own_subaccount(state, sender, msg.subaccount)
    amount = parse_positive_usdc(msg.amount)
    params = state.insurance_staking
    if amount < params.min_stake_usdc:
        raise ProtocolError("stake_below_minimum", f"a stake must be at least {format_usdc(params.min_stake_usdc)} "
                            "USDC", field="amount", minimum=params.min_stake_usdc)
    record = state.stake_pools.get(pool)
    minted = amount if record is None or record.shares == 0 else amount * record.shares // record.staked
    if minted == 0:
        raise ProtocolError("stake_too_small", "the amount is worth less than one share unit", field="amount")
    check_withdrawals_open(state, sub)
    check_free_collateral(state, sub, amount)
    check_open_orders_covered(state, sub, amount)
    settle_funding(state, sub, events)
    record = get_stake_pool(state, pool)
    sub.balance -= amount
    state.insurance_funds[pool] += amount
    record.staked += amount
    record.shares += minted
    key = (pool, sender)
    state.stakes[key] = state.stakes.get(key, 0) + minted
    for leaf in (sub.key, ("global",), ("stake_pool", pool), ("stake", pool, sender)):
        state.touch(leaf)
    emit(events, ev.InsuranceStaked, pool=pool, owner=sender, number=msg.subaccount, amount=amount, shares=minted,
         staked=record.staked, total_shares=record.shares, insurance_fund=state.insurance_funds[pool])
    return {"shares": minted}


def request_unstake(state: State, sender: str, msg: RequestUnstake, events: Events) -> dict[str, Any]:
    """Lock ``shares`` of the sender's stake in ``fund`` for the governed cooldown; the payout goes
    to the sender's ``subaccount`` at ``complete_unstake``. Refusals: ``unknown_pool``,
    ``invalid_subaccount``, ``non_positive_amount`` and the decimal codes (shares have 6 decimals),
    ``insufficient_shares`` (more than the sender's free shares)."""
    pool = _get_fund(state, msg.fund)
    check_subaccount_number(msg.subaccount)
    shares = parse_positive_usdc(msg.shares, field="shares")
    key = (pool, sender)
    held = state.stakes.get(key, 0)
    if shares > held:
        raise ProtocolError("insufficient_shares", f"{format_usdc(shares)} shares requested, "
                            f"{format_usdc(held)} held (not already in a request)", field="shares", held=held)
    if held == shares:
        del state.stakes[key]
    else:
        state.stakes[key] = held - shares
    request_id = state.next_unstake_id
    state.next_unstake_id += 1
    available_ms = state.time_ms + state.insurance_staking.cooldown_ms
    state.unstake_requests[request_id] = UnstakeRequest(sender, pool, shares, msg.subaccount, state.time_ms,
                                                        available_ms)
    for leaf in (("stake", pool, sender), ("unstake_request", request_id), ("insurance_staking",)):
        state.touch(leaf)
    emit(events, ev.UnstakeRequested, request_id=request_id, pool=pool, owner=sender, number=msg.subaccount,
         shares=shares, value=share_value(state.stake_pools[pool], shares), available_ms=available_ms)
    return {"request_id": request_id, "available_ms": available_ms}


def complete_unstake(state: State, sender: str, msg: CompleteUnstake, events: Events) -> dict[str, Any]:
    """Pay a cooled-down unstake request at the share price of this block. Refusals:
    ``unknown_unstake_request`` (none with that id: never made, completed, or wiped out),
    ``not_request_owner``, ``unstake_cooling_down`` (before its ``available_ms``) and
    ``withdrawals_paused`` (the fund's pool is paused after a loss: it waits out the crash)."""
    request = state.unstake_requests.get(msg.request)
    if request is None:
        raise ProtocolError("unknown_unstake_request", f"no pending unstake request {msg.request}", field="request")
    if request.owner != sender:
        raise ProtocolError("not_request_owner", "only the staker who made the request may complete it",
                            field="request")
    if state.time_ms < request.available_ms:
        raise ProtocolError("unstake_cooling_down", f"the cooldown ends at block time {request.available_ms}",
                            field="request", available_ms=request.available_ms)
    until = state.withdrawals_paused_until.get(request.pool, 0)
    if state.height <= until:
        raise ProtocolError("withdrawals_paused", f"withdrawals from the {request.pool} pool are paused until "
                            f"block {until}", field="request", paused_until=until)
    record = state.stake_pools[request.pool]
    amount = share_value(record, request.shares)
    record.staked -= amount
    record.shares -= request.shares
    state.insurance_funds[request.pool] -= amount
    del state.unstake_requests[msg.request]
    sub = get_or_create_subaccount(state, sender, request.subaccount)
    settle_funding(state, sub, events)
    sub.balance += amount
    for leaf in (sub.key, ("global",), ("stake_pool", request.pool), ("unstake_request", msg.request)):
        state.touch(leaf)
    emit(events, ev.InsuranceUnstaked, request_id=msg.request, pool=request.pool, owner=sender,
         number=request.subaccount, shares=request.shares, amount=amount, staked=record.staked,
         total_shares=record.shares, insurance_fund=state.insurance_funds[request.pool])
    return {"amount": amount}


# --------------------------------------------------------------------------------------- merge
def merge_stakes(state: State, pool: str) -> None:
    """An isolated fund merges into the cross fund (``upgrade_isolated_to_cross``), before the fund
    moves: its staked part joins the cross staked part and its holders' shares (free and in
    requests) become cross shares worth what they were worth, rounded down (the dust stays with
    the cross stakers)."""
    source = state.stake_pools.pop(pool, None)
    state.touch(("stake_pool", pool))
    if source is None or source.shares == 0:
        return
    target = get_stake_pool(state, CROSS_POOL)

    def convert(shares: int) -> int:
        value = share_value(source, shares)
        return value if target.shares == 0 else value * target.shares // target.staked

    holders = sorted((owner, shares) for (p, owner), shares in state.stakes.items() if p == pool)
    minted = 0
    for owner, shares in holders:
        del state.stakes[(pool, owner)]
        state.touch(("stake", pool, owner))
        new = convert(shares)
        if new:
            state.stakes[(CROSS_POOL, owner)] = state.stakes.get((CROSS_POOL, owner), 0) + new
            state.touch(("stake", CROSS_POOL, owner))
            minted += new
    for rid, request in list(state.unstake_requests.items()):
        if request.pool == pool:
            new = convert(request.shares)
            state.unstake_requests[rid] = UnstakeRequest(request.owner, CROSS_POOL, new, request.subaccount,
                                                         request.requested_ms, request.available_ms)
            state.touch(("unstake_request", rid))
            minted += new
    if minted or target.shares:   # else every holder's part rounded to nothing: it becomes protocol-owned
        target.staked += source.staked
    target.shares += minted
    target.fees_earned += source.fees_earned
    target.losses_borne += source.losses_borne
    state.touch(("stake_pool", CROSS_POOL))


# --------------------------------------------------------------------------------------- parameters
def parse_staking_params(obj: object, base: InsuranceStakingParams, path: str) -> InsuranceStakingParams:
    """A (partial) genesis ``insurance_staking`` section merged over ``base``: ``cooldown_ms`` (an
    integer, at most 90 days), ``staker_fee_share``, ``target_oi_share`` and ``replenish_share``
    (ratios 0..1), ``loss_mode`` (``pro_rata`` | ``first_loss``), ``min_stake`` (USDC, > 0) and
    ``target_floor`` (USDC). The same parser validates genesis and ``set_insurance_staking_params``;
    errors (``invalid_field``, ``unknown_field``, the decimal codes) name the field path."""
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_field", f"{path} must be an object", field=path)
    for key in sorted(set(obj) - set(STAKING_FIELDS)):
        raise ProtocolError("unknown_field", f"{path} has no field {key!r}", field=f"{path}.{key}")
    values: dict[str, Any] = {
        "cooldown_ms": base.cooldown_ms, "staker_fee_share_ppm": base.staker_fee_share_ppm,
        "loss_mode": base.loss_mode, "min_stake_usdc": base.min_stake_usdc, "target_oi_ppm": base.target_oi_ppm,
        "target_floor_usdc": base.target_floor_usdc, "replenish_share_ppm": base.replenish_share_ppm}
    if "cooldown_ms" in obj:
        value = obj["cooldown_ms"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COOLDOWN_MS:
            raise ProtocolError("invalid_field", f"{path}.cooldown_ms must be an integer in 0..{MAX_COOLDOWN_MS}",
                                field=f"{path}.cooldown_ms")
        values["cooldown_ms"] = value
    for name, attr in (("staker_fee_share", "staker_fee_share_ppm"), ("target_oi_share", "target_oi_ppm"),
                       ("replenish_share", "replenish_share_ppm")):
        if name in obj:
            ratio = parse_ppm(_text(obj[name], f"{path}.{name}"), field=f"{path}.{name}")
            if not 0 <= ratio <= PPM:
                raise ProtocolError("invalid_field", f"{path}.{name} must be between 0 and 1", field=f"{path}.{name}")
            values[attr] = ratio
    if "loss_mode" in obj:
        if obj["loss_mode"] not in STAKING_LOSS_MODES:
            raise ProtocolError("invalid_field", f"{path}.loss_mode must be one of {list(STAKING_LOSS_MODES)}",
                                field=f"{path}.loss_mode")
        values["loss_mode"] = StakingLossMode(obj["loss_mode"])
    if "min_stake" in obj:
        values["min_stake_usdc"] = parse_positive_usdc(_text(obj["min_stake"], f"{path}.min_stake"),
                                                       field=f"{path}.min_stake")
    if "target_floor" in obj:
        values["target_floor_usdc"] = parse_usdc(_text(obj["target_floor"], f"{path}.target_floor"),
                                                 field=f"{path}.target_floor")
    return InsuranceStakingParams(**values)


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError("invalid_field", f"{field} must be a decimal string", field=field)
    return value


def format_staking_params(params: InsuranceStakingParams) -> dict[str, Any]:
    """The genesis form of ``params`` (``bastion scenario defaults``)."""
    return {"cooldown_ms": params.cooldown_ms, "staker_fee_share": format_ppm(params.staker_fee_share_ppm),
            "loss_mode": str(params.loss_mode), "min_stake": format_usdc(params.min_stake_usdc),
            "target_oi_share": format_ppm(params.target_oi_ppm), "target_floor": format_usdc(params.target_floor_usdc),
            "replenish_share": format_ppm(params.replenish_share_ppm)}


# --------------------------------------------------------------------------------------- invariants
def check_staking_invariants(state: State) -> None:
    """Raise ``InvariantViolation`` unless, per pool, the staked part is within the fund, is zero
    exactly when no share is outstanding, and the shares held and requested add up to the total."""
    totals: dict[str, int] = {}
    for (pool, _), shares in state.stakes.items():
        totals[pool] = totals.get(pool, 0) + shares
    for request in state.unstake_requests.values():
        totals[request.pool] = totals.get(request.pool, 0) + request.shares
    for pool, record in state.stake_pools.items():
        fund = state.insurance_funds.get(pool)
        if fund is None or not 0 <= record.staked <= fund:
            raise InvariantViolation(f"{pool}: staked part {record.staked} outside the fund {fund}")
        if (record.staked == 0) != (record.shares == 0) or totals.pop(pool, 0) != record.shares:
            raise InvariantViolation(f"{pool}: {record.shares} shares for a staked part of {record.staked}")
    if any(totals.values()):
        raise InvariantViolation(f"shares held in pools without a staking record: {sorted(totals)}")
