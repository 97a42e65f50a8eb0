"""Disputes (issue 18, DESIGN.md section 11): contested liquidations adjudicated by rule.

**Targets.** At the end of every block (``record_targets``) the protocol reads the block's own
``liquidation``, ``backstop_takeover``, ``deleveraging`` and ``final_settlement`` events and keeps,
per (kind, owner, subaccount, market), one *target* (``DisputeTarget``): the size closed, what the
account received for it (net of the liquidation fee), the block's oracle price and the
**reference price**, the market's oracle price before the block (the ``previous`` of the block's
``oracle_price`` event, else the block's price). The target's **loss** is
``max(0, notional(size, reference) - received)``: what the account gave up against the last price it
could act on, fees included. A claim never exceeds it. Targets are kept ``record_retention``
(bounded) and then dropped (``expire_targets``).

**Opening.** ``open_dispute{target, claim_kind, claim_usdc, bond, statement}`` by the target's owner;
checks in order: ``unknown_target``, ``not_target_owner``, ``dispute_window_closed`` (block time >=
target time + ``window``), ``target_already_claimed`` (a target is disputed or compensated once, so
no target is ever paid twice), ``invalid_claim_kind``, the decimal codes and ``non_positive_amount``,
``claim_exceeds_loss``, ``bond_too_small`` (``bond_floor + claim x bond_claim_ppm``, rounded up),
``insufficient_free_collateral`` and ``too_many_open_orders`` (the bond leaves the target's subaccount
as a withdrawal would, into the dispute escrow).

**Ruling.** ``rule_dispute{dispute_id, upheld, award_usdc}`` by a council member: ``not_council_member``,
``unknown_dispute``, ``dispute_not_open`` (only an ``open`` dispute is ruled by the council),
``ruling_deadline_passed`` (block time >= the deadline: it escalates at the end of the block),
``dispute_conflict`` (the member is the disputing owner or holds a position in the target's market in
any subaccount), the decimal codes, ``invalid_award`` (upheld: 0 < award <= claim; rejected: award 0).
A member's newer vote replaces its older one; when ``threshold`` current members agree on the same
(upheld, award), the dispute is ``ruled`` and either side may appeal for ``appeal_window``
(``bastion.core.governance.dispute_votes``); unappealed, the ruling becomes final.

**Payment** (``finalize``): upheld, the award is paid from the target pool's insurance fund, capped
by ``max_award`` per dispute, ``max_award_fund_ppm`` of the fund, what is left of
``max_epoch_award`` in the epoch (block time // ``epoch``), and the fund itself; the bond is returned.
Rejected, the bond goes to the pool's fund. An appeal bond comes back when the token vote decided
what the appellant asked, else it goes to the fund.
"""
from __future__ import annotations

from typing import Any, Final

from bastion.core import accounts, staking
from bastion.core import events as ev
from bastion.core.enums import FundFlow
from bastion.core.dispute_state import (
    APPEALED, CLAIM_KINDS, ESCALATED, FINAL_STATUSES, OPEN, REJECTED, RULED, UPHELD, Dispute, DisputeBook,
    DisputeResolution, DisputeTarget,
)
from bastion.core.errors import ProtocolError
from bastion.core.events import Events, emit
from bastion.core.messages import OpenDispute, ResolveDispute, RuleDispute
from bastion.core.params import DAY_MS, RISK_CLASSES, DisputeParams
from bastion.core.state import SUBACCOUNT_NUMBERS, State
from bastion.core.units import MS_PER_S, PPM, format_ppm, format_usdc, parse_ppm, parse_usdc
from bastion.risk_model import notional

# event type -> (target kind, the field holding what the account received)
_TARGET_EVENTS: Final = {"liquidation": "fill_quote", "backstop_takeover": "received",
                         "deleveraging": "quote", "final_settlement": "amount"}
TargetKey = tuple[str, str, int, str]


# --------------------------------------------------------------------------------------- parameters
_SECONDS: Final = ("window", "record_retention", "ruling_deadline", "appeal_window", "epoch", "incident_claim")
_USDC: Final = ("bond_floor", "max_award", "max_epoch_award")
_RATIOS: Final = ("bond_claim", "max_award_fund_share")
_ATTRS: Final = {"window": "window_ms", "record_retention": "record_retention_ms", "ruling_deadline":
                 "ruling_deadline_ms", "appeal_window": "appeal_window_ms", "epoch": "epoch_ms",
                 "incident_claim": "incident_claim_ms", "bond_floor": "bond_floor_usdc", "max_award": "max_award_usdc",
                 "max_epoch_award": "max_epoch_award_usdc", "bond_claim": "bond_claim_ppm",
                 "max_award_fund_share": "max_award_fund_ppm"}


def format_dispute_params(params: DisputeParams) -> dict[str, Any]:
    """The genesis form of ``params`` (``bastion scenario defaults``): durations in whole seconds
    (``<name>_s``), amounts as USDC decimal text, shares as ratios."""
    out: dict[str, Any] = {}
    for name in _SECONDS:
        out[f"{name}_s"] = getattr(params, _ATTRS[name]) // MS_PER_S
    for name in _USDC:
        out[name] = format_usdc(getattr(params, _ATTRS[name]))
    for name in _RATIOS:
        out[name] = format_ppm(getattr(params, _ATTRS[name]))
    out["appeal_bond_multiple"] = params.appeal_bond_multiple
    out["appeal_tier"] = params.appeal_tier
    return out


def parse_dispute_params(obj: Any, base: DisputeParams, path: str) -> DisputeParams:
    """A (partial) genesis ``disputes`` section over ``base`` (``format_dispute_params``'s form).
    Raises ``invalid_field``, ``unknown_field`` and the decimal codes; the window must not outlast
    the retention of targets, and an appeal's bond multiple is at least 1."""
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_field", f"{path} must be an object", field=path)
    known = {f"{name}_s" for name in _SECONDS} | set(_USDC) | set(_RATIOS) | {"appeal_bond_multiple", "appeal_tier"}
    for key in sorted(set(obj) - known):
        raise ProtocolError("unknown_field", f"{path} has no field {key!r}", field=f"{path}.{key}")
    values = {name: getattr(base, name) for name in base.__slots__}
    for name in _SECONDS:
        if f"{name}_s" in obj:
            seconds = obj[f"{name}_s"]
            if (not isinstance(seconds, int) or isinstance(seconds, bool)
                    or not 1 <= seconds <= 3650 * DAY_MS // MS_PER_S):
                raise ProtocolError("invalid_field", f"{path}.{name}_s must be a whole number of seconds >= 1",
                                    field=f"{path}.{name}_s")
            values[_ATTRS[name]] = seconds * MS_PER_S
    for name in _USDC:
        if name in obj:
            values[_ATTRS[name]] = parse_usdc(obj[name], field=f"{path}.{name}")
    for name in _RATIOS:
        if name in obj:
            values[_ATTRS[name]] = parse_ppm(obj[name], field=f"{path}.{name}")
            if values[_ATTRS[name]] > PPM:
                raise ProtocolError("invalid_field", f"{path}.{name} must be at most 1", field=f"{path}.{name}")
    if "appeal_bond_multiple" in obj:
        multiple = obj["appeal_bond_multiple"]
        if not isinstance(multiple, int) or isinstance(multiple, bool) or not 1 <= multiple <= 1000:
            raise ProtocolError("invalid_field", f"{path}.appeal_bond_multiple must be an integer in 1..1000",
                                field=f"{path}.appeal_bond_multiple")
        values["appeal_bond_multiple"] = multiple
    if "appeal_tier" in obj:
        if obj["appeal_tier"] not in RISK_CLASSES:
            raise ProtocolError("invalid_field", f"{path}.appeal_tier must be one of {RISK_CLASSES}",
                                field=f"{path}.appeal_tier")
        values["appeal_tier"] = obj["appeal_tier"]
    params = DisputeParams(**values)
    if params.window_ms > params.record_retention_ms:
        raise ProtocolError("invalid_field", f"{path}.window_s must not exceed record_retention_s",
                            field=f"{path}.window_s")
    return params


# --------------------------------------------------------------------------------------- targets
def compute_loss(state: State, market: str, size: int, received: int, reference: int) -> int:
    """What closing ``size`` lots (signed as the position) for ``received`` micro-USDC cost the owner
    against ``reference`` ticks: ``max(0, notional(size, reference) - received)``."""
    m = state.markets[market]
    value = notional(size, reference, size_decimals=m.size_decimals, price_decimals=m.price_decimals)
    return max(0, value - received)


def record_targets(state: State, events: Events) -> None:
    """End-of-block (called by ``dispute_votes.advance_disputes``): one target per (kind, owner,
    subaccount, market) closed in this block, from the block's events (module docstring)."""
    previous: dict[str, int] = {}
    found: dict[TargetKey, DisputeTarget] = {}
    for event in events:
        kind = event["type"]
        if kind == "oracle_price":
            previous.setdefault(event["market"], event["previous"])
            continue
        received_field = _TARGET_EVENTS.get(kind)
        if received_field is None:
            continue
        ticker = event["market"]
        received = event[received_field] - (event["insurance_delta"] if kind == "liquidation" else 0)
        key = (kind, event["owner"], event["number"], ticker)
        target = found.get(key)
        if target is None:
            market = state.markets[ticker]
            found[key] = DisputeTarget(0, kind, event["owner"], event["number"], ticker, market.pool, state.height,
                                       state.time_ms, event["size"], received, event["oracle_price"],
                                       event["oracle_price"], 0)
        else:
            target.size += event["size"]
            target.received_usdc += received
    if not found:
        return
    book = state.disputes
    for target in found.values():
        market = state.markets[target.market]
        target.sources = [[operator, ticks] for operator, (ticks, submitted_ms) in sorted(market.submissions.items())
                          if state.time_ms - submitted_ms <= market.oracle_params.max_staleness_ms]
        target.reference_price = previous.get(target.market, target.oracle_price)
        target.loss_usdc = compute_loss(state, target.market, target.size, target.received_usdc,
                                        target.reference_price)
        target.target_id = book.next_target_id
        book.next_target_id += 1
        book.targets[target.target_id] = target
        state.touch(("dispute_target", target.target_id))
    state.touch(("disputes",))


def expire_targets(state: State) -> None:
    """Drop the targets older than ``record_retention`` (oldest first; ids grow with time)."""
    book = state.disputes
    retention = book.params.record_retention_ms
    while book.targets:
        target_id, target = next(iter(book.targets.items()))
        if state.time_ms - target.time_ms < retention:
            break
        del book.targets[target_id]
        state.touch(("dispute_target", target_id))


def required_bond(params: DisputeParams, claim: int) -> int:
    """The bond a claim needs: the floor plus ``bond_claim_ppm`` of the claim, rounded up."""
    return params.bond_floor_usdc + -(-claim * params.bond_claim_ppm // PPM)


def take_bond(state: State, owner: str, number: int, amount: int, events: Events) -> None:
    """Move ``amount`` from a subaccount into the dispute escrow, as a withdrawal would be checked
    (``insufficient_free_collateral``, ``too_many_open_orders``, ``subaccount_not_found``)."""
    sub = state.subaccounts.get((owner, number))
    if sub is None:
        raise ProtocolError("subaccount_not_found", f"{owner} has no subaccount {number}", field="subaccount")
    accounts.check_free_collateral(state, sub, amount)
    accounts.check_open_orders_covered(state, sub, amount)
    accounts.settle_funding(state, sub, events)
    sub.balance -= amount
    state.disputes.escrow_usdc += amount
    state.touch(sub.key)
    state.touch(("disputes",))


# --------------------------------------------------------------------------------------- handlers
def open_dispute(state: State, sender: str, msg: OpenDispute, events: Events) -> dict[str, Any]:
    """Contest a recorded target, posting a bond (module docstring). Raises ``unknown_target``,
    ``not_target_owner``, ``dispute_window_closed``, ``target_already_claimed``, ``invalid_claim_kind``,
    ``non_positive_amount``, ``claim_exceeds_loss``, ``bond_too_small``, ``subaccount_not_found``,
    ``insufficient_free_collateral``, ``too_many_open_orders`` and the decimal codes."""
    book = state.disputes
    params = book.params
    target = book.targets.get(msg.target)
    if target is None:
        raise ProtocolError("unknown_target", f"no recorded liquidation, takeover, deleveraging or settlement "
                            f"{msg.target} (targets are kept {params.record_retention_ms // MS_PER_S} s)",
                            field="target")
    if target.owner != sender:
        raise ProtocolError("not_target_owner", "only the owner whose position the target closed may dispute it",
                            field="target")
    if state.time_ms >= target.time_ms + params.window_ms:
        raise ProtocolError("dispute_window_closed", f"disputes on target {target.target_id} closed at "
                            f"{target.time_ms + params.window_ms} ms", field="target")
    if target.claimed_by is not None:
        raise ProtocolError("target_already_claimed", f"target {target.target_id} is already claimed by "
                            f"{target.claimed_by}", field="target")
    if msg.claim_kind not in CLAIM_KINDS:
        raise ProtocolError("invalid_claim_kind", f"claim_kind must be one of {CLAIM_KINDS}", field="claim_kind")
    claim = parse_usdc(msg.claim_usdc, field="claim_usdc")
    if claim <= 0:
        raise ProtocolError("non_positive_amount", "claim_usdc must be positive", field="claim_usdc")
    if claim > target.loss_usdc:
        raise ProtocolError("claim_exceeds_loss", f"the claim exceeds the loss the target caused "
                            f"({target.loss_usdc} micro-USDC)", field="claim_usdc", loss=target.loss_usdc)
    bond = parse_usdc(msg.bond, field="bond")
    needed = required_bond(params, claim)
    if bond < needed:
        raise ProtocolError("bond_too_small", f"the bond must be at least {needed} micro-USDC", field="bond",
                            required=needed)
    take_bond(state, sender, target.number, bond, events)
    dispute = Dispute(book.next_dispute_id, target.target_id, target.kind, target.height, sender, target.number,
                      target.market, target.pool, msg.claim_kind, claim, target.loss_usdc, bond, msg.statement,
                      state.height, state.time_ms, state.time_ms + params.ruling_deadline_ms)
    book.next_dispute_id += 1
    book.disputes[dispute.dispute_id] = dispute
    book.live[dispute.dispute_id] = None
    target.claimed_by = f"dispute:{dispute.dispute_id}"
    state.touch(("dispute", dispute.dispute_id))
    state.touch(("dispute_target", target.target_id))
    emit(events, ev.DisputeOpened, dispute_id=dispute.dispute_id, target=target.target_id, target_kind=target.kind,
         target_height=target.height, owner=sender, number=target.number, market=target.market,
         claim_kind=msg.claim_kind, claim=claim, loss=target.loss_usdc, bond=bond, deadline_ms=dispute.deadline_ms)
    return {"dispute_id": dispute.dispute_id, "bond": bond}


def get_dispute(state: State, dispute_id: int) -> Dispute:
    """The dispute, or ``unknown_dispute``."""
    dispute = state.disputes.disputes.get(dispute_id)
    if dispute is None:
        raise ProtocolError("unknown_dispute", f"no dispute {dispute_id}", field="dispute_id")
    return dispute


def has_conflict(state: State, member: str, dispute: Dispute) -> bool:
    """A member is a party (the disputing owner) or holds a position in the target's market."""
    if member == dispute.owner:
        return True
    for number in SUBACCOUNT_NUMBERS:
        sub = state.subaccounts.get((member, number))
        if sub is not None and dispute.market in sub.positions:
            return True
    return False


def parse_award(dispute: Dispute, upheld: bool, text: str) -> int:
    """An award for ``dispute``: upheld, in (0, claim]; rejected, 0. Raises ``invalid_award`` and the
    decimal codes."""
    award = parse_usdc(text, field="award_usdc")
    if upheld and not 0 < award <= dispute.claim_usdc:
        raise ProtocolError("invalid_award", f"an upheld dispute's award is in (0, {dispute.claim_usdc}] micro-USDC",
                            field="award_usdc")
    if not upheld and award != 0:
        raise ProtocolError("invalid_award", "a rejected dispute's award is 0", field="award_usdc")
    return award


def rule_dispute(state: State, sender: str, msg: RuleDispute, events: Events) -> dict[str, Any]:
    """A council member's ruling (module docstring). Raises ``not_council_member``, ``unknown_dispute``,
    ``dispute_not_open``, ``ruling_deadline_passed``, ``dispute_conflict``, ``invalid_award`` and the decimal codes."""
    if sender not in state.council.members:
        raise ProtocolError("not_council_member", f"{sender} is not a member of the council", field="sender")
    dispute = get_dispute(state, msg.dispute_id)
    if dispute.status != OPEN:
        raise ProtocolError("dispute_not_open", f"dispute {dispute.dispute_id} is {dispute.status}",
                            field="dispute_id", status=dispute.status)
    if state.time_ms >= dispute.deadline_ms:
        raise ProtocolError("ruling_deadline_passed", f"the council's deadline was {dispute.deadline_ms} ms: the "
                            "dispute goes to a token vote", field="dispute_id")
    if has_conflict(state, sender, dispute):
        raise ProtocolError("dispute_conflict", "a council member who is a party or holds a position in the "
                            f"market {dispute.market} cannot rule on this dispute", field="sender")
    award = parse_award(dispute, msg.upheld, msg.award_usdc)
    dispute.votes[sender] = (msg.upheld, award)
    agreeing = sum(1 for member in state.council.members if dispute.votes.get(member) == (msg.upheld, award))
    threshold = state.council.threshold
    state.touch(("dispute", dispute.dispute_id))
    emit(events, ev.DisputeVote, dispute_id=dispute.dispute_id, member=sender, upheld=msg.upheld, award=award,
         votes=agreeing, threshold=threshold)
    if agreeing >= threshold:
        dispute.status = RULED
        dispute.ruling_upheld, dispute.ruling_award_usdc = msg.upheld, award
        dispute.appeal_until_ms = state.time_ms + state.disputes.params.appeal_window_ms
        emit(events, ev.DisputeRuled, dispute_id=dispute.dispute_id, upheld=msg.upheld, award=award,
             appeal_until_ms=dispute.appeal_until_ms)
    return {"votes": agreeing, "threshold": threshold, "status": dispute.status}


# --------------------------------------------------------------------------------------- resolution
def compute_resolution(state: State, action: ResolveDispute) -> list[DisputeResolution]:
    """``resolve_dispute``: only a dispute waiting for a token vote (``appealed`` or ``escalated``).
    Raises ``unknown_dispute``, ``dispute_not_appealed``, ``invalid_award`` and the decimal codes."""
    dispute = get_dispute(state, action.dispute_id)
    if dispute.status not in (APPEALED, ESCALATED):
        raise ProtocolError("dispute_not_appealed", f"dispute {dispute.dispute_id} is {dispute.status}: only an "
                            "appealed or escalated dispute is decided by a vote", field="dispute_id")
    award = parse_award(dispute, action.upheld, action.award_usdc)
    return [DisputeResolution(dispute.dispute_id, action.upheld, award, state.disputes.params.appeal_tier)]


def apply_resolution(state: State, effect: DisputeResolution, events: Events) -> None:
    """Execute a validated ``resolve_dispute``: the vote's outcome is final."""
    finalize(state, state.disputes.disputes[effect.dispute_id], effect.upheld, effect.award, "token_vote", events)


def _cap(book: DisputeBook, state: State, pool: str, award: int) -> tuple[int, str | None]:
    params = book.params
    epoch = state.time_ms // params.epoch_ms
    epoch_paid = book.epoch_paid_usdc if epoch == book.epoch else 0
    fund = max(state.insurance_funds.get(pool, 0), 0)
    caps = (("dispute", params.max_award_usdc), ("fund_share", fund * params.max_award_fund_ppm // PPM),
            ("epoch", max(params.max_epoch_award_usdc - epoch_paid, 0)), ("fund", fund))
    paid, capped_by = award, None
    for name, cap in caps:
        if cap < paid:
            paid, capped_by = cap, name
    return paid, capped_by


def finalize(state: State, dispute: Dispute, upheld: bool, award: int, decided_by: str, events: Events) -> None:
    """Make ``dispute``'s outcome final and move its money (module docstring, "Payment")."""
    book = state.disputes
    pool = dispute.pool if dispute.pool in state.insurance_funds else "cross"
    sub = accounts.get_or_create_subaccount(state, dispute.owner, dispute.number)
    paid, capped_by = _cap(book, state, pool, award) if upheld else (0, None)
    bond_returned = dispute.bond_usdc if upheld else 0
    appeal_returned = appeal_forfeited = 0
    if dispute.appellant is not None:
        won = dispute.status == APPEALED and decided_by == "token_vote"
        appeal_returned, appeal_forfeited = ((dispute.appeal_bond_usdc, 0) if won else (0, dispute.appeal_bond_usdc))
        appellant = accounts.get_or_create_subaccount(state, dispute.appellant, 0)
        appellant.balance += appeal_returned
        state.touch(appellant.key)
    forfeited = dispute.bond_usdc - bond_returned + appeal_forfeited
    book.escrow_usdc -= dispute.bond_usdc + dispute.appeal_bond_usdc
    staking.move_fund(state, pool, forfeited - paid, FundFlow.RESULT, events)   # stakers share the result
    sub.balance += paid + bond_returned
    if paid:
        epoch = state.time_ms // book.params.epoch_ms
        if epoch != book.epoch:
            book.epoch, book.epoch_paid_usdc = epoch, 0
        book.epoch_paid_usdc += paid
    dispute.status = UPHELD if upheld else REJECTED
    dispute.upheld, dispute.award_usdc, dispute.paid_usdc, dispute.capped_by = upheld, award, paid, capped_by
    dispute.closed_height = state.height
    book.live.pop(dispute.dispute_id, None)
    for key in (sub.key, ("global",), ("disputes",), ("dispute", dispute.dispute_id)):
        state.touch(key)
    emit(events, ev.DisputeResolved, dispute_id=dispute.dispute_id, upheld=upheld, award=award, paid=paid,
         capped_by=capped_by, bond_returned=bond_returned, bond_forfeited=dispute.bond_usdc - bond_returned,
         appeal_bond_returned=appeal_returned, appeal_bond_forfeited=appeal_forfeited, pool=pool,
         insurance_fund=state.insurance_funds[pool], decided_by=decided_by)


def is_final(dispute: Dispute) -> bool:
    """True once the dispute is upheld or rejected."""
    return dispute.status in FINAL_STATUSES
