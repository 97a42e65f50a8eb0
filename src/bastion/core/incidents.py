"""Incident programs (issue 18): retroactive compensation at scale, computed by the protocol.

Governance opens one with the critical action ``open_incident_program{market, from_height,
to_height, reference, reference_price?, exclude_sources?, budget}`` (money leaves an insurance fund). Validation, at
submission and again at execution: ``unknown_market``, ``invalid_window`` (``from_height <= to_height
<= `` the current height), ``invalid_reference`` (``pre_block``, ``fixed`` or ``sources_median``; ``fixed`` needs
``reference_price``, a positive price on the market's grid, the others take none;
``sources_median`` needs 1 to 64 ``exclude_sources`` addresses, the others take none),
``non_positive_amount``, ``insufficient_insurance_fund`` (the budget exceeds the market pool's fund).

**Execution** (``apply_opening``) recomputes every target of the market recorded in the window and
not yet claimed (``bastion.core.disputes``: liquidations, takeovers, deleveragings, settlements; a
target is kept ``record_retention``, so a window older than that finds nothing) against the
reference: the market's oracle price before the target's block (``pre_block``: the last price that
was not the glitch's, as the target recorded it), the ``fixed`` price the proposal gives (say, a
TWAP read from the log), or ``sources_median``: the lower median of the oracle submissions the target
recorded for its block (``DisputeTarget.sources``, the fresh ones) without the operators the proposal
names in ``exclude_sources`` (the ones that glitched; a target with no source left is skipped). A
target's compensation is ``max(0, notional(size, reference) - received)``; compensations add up
per subaccount (``entitled``). If their total ``E`` fits the budget ``B``, each is paid in full;
else each gets ``floor(e x B / E)`` (pro rata, rounded toward the protocol). Only the sum of what is
payable leaves the fund, into escrow: rounding dust never leaves it. Each target with a positive
compensation is marked claimed by the program (no target is paid twice, by a dispute or another
program). The program is claimable ``incident_claim`` long.

``claim_incident{program_id}``: ``unknown_program``, ``program_closed``, ``nothing_to_claim``; pays
every subaccount of the sender its amount. At the end of the claim period (``close_expired``, end of
block) what was not claimed returns to the fund.
"""
from __future__ import annotations

from typing import Any, Final

from bastion.core import accounts, staking
from bastion.core import events as ev
from bastion.core.enums import FundFlow
from bastion.core.dispute_state import DisputeTarget, IncidentOpening, IncidentProgram
from bastion.core.funding import median_low
from bastion.core.errors import ProtocolError
from bastion.core.events import Events, emit
from bastion.core.messages import MAX_LIST_ITEMS, ClaimIncident, OpenIncidentProgram, normalize_address
from bastion.core.state import SUBACCOUNT_NUMBERS, ParamSource, State
from bastion.core.units import parse_decimal, parse_usdc
from bastion.core.disputes import compute_loss

REFERENCE_RULES: Final = ("pre_block", "fixed", "sources_median")


def compute_opening(state: State, action: OpenIncidentProgram) -> list[IncidentOpening]:
    """``open_incident_program``, validated (module docstring). Raises ``unknown_market``,
    ``invalid_window``, ``invalid_reference``, ``non_positive_amount``, ``insufficient_insurance_fund``
    and the decimal codes."""
    market = state.markets.get(action.market)
    if market is None:
        raise ProtocolError("unknown_market", f"unknown market {action.market!r}", field="market")
    if not 0 <= action.from_height <= action.to_height <= state.height:
        raise ProtocolError("invalid_window", f"the window must satisfy 0 <= from_height <= to_height <= "
                            f"{state.height}", field="to_height")
    if action.reference not in REFERENCE_RULES:
        raise ProtocolError("invalid_reference", f"reference must be one of {REFERENCE_RULES}", field="reference")
    price = 0
    if action.reference == "fixed":
        if action.reference_price is None:
            raise ProtocolError("invalid_reference", "a fixed reference needs reference_price",
                                field="reference_price")
        price = parse_decimal(action.reference_price, market.price_decimals, field="reference_price")
        if price <= 0:
            raise ProtocolError("invalid_reference", "reference_price must be positive", field="reference_price")
    elif action.reference_price is not None:
        raise ProtocolError("invalid_reference", f"a {action.reference} reference takes no reference_price",
                            field="reference_price")
    excluded: tuple[str, ...] = ()
    if action.reference == "sources_median":
        if not action.exclude_sources or len(action.exclude_sources) > MAX_LIST_ITEMS:
            raise ProtocolError("invalid_reference", f"a sources_median reference names 1 to {MAX_LIST_ITEMS} "
                                "operators to leave out (exclude_sources)", field="exclude_sources")
        excluded = tuple(sorted({normalize_address(operator, field=f"exclude_sources[{i}]")
                                 for i, operator in enumerate(action.exclude_sources)}))
    elif action.exclude_sources is not None:
        raise ProtocolError("invalid_reference", "only a sources_median reference takes exclude_sources",
                            field="exclude_sources")
    budget = parse_usdc(action.budget, field="budget")
    if budget <= 0:
        raise ProtocolError("non_positive_amount", "budget must be positive", field="budget")
    fund = state.insurance_funds.get(market.pool, 0)
    if budget > fund:
        raise ProtocolError("insufficient_insurance_fund", f"the budget exceeds the {market.pool} insurance fund "
                            f"({fund} micro-USDC)", field="budget")
    return [IncidentOpening(market.ticker, action.from_height, action.to_height, action.reference, price, budget,
                            excluded)]


def get_reference(effect: IncidentOpening, target: DisputeTarget) -> int | None:
    """The reference price of ``target`` under the program's rule (None: no source is left)."""
    if effect.rule == "pre_block":
        return target.reference_price
    if effect.rule == "fixed":
        return effect.reference_price
    kept = [int(ticks) for operator, ticks in target.sources if operator not in effect.exclude_sources]
    return median_low(kept) if kept else None


def pro_rata(entitled: dict[tuple[str, int], int], budget: int) -> dict[tuple[str, int], int]:
    """Each entitlement in full when they fit ``budget``, else ``floor(e x budget / total)``."""
    total = sum(entitled.values())
    if total <= budget:
        return dict(entitled)
    return {key: amount * budget // total for key, amount in entitled.items()}


def apply_opening(state: State, effect: IncidentOpening, source: ParamSource, events: Events) -> None:
    """Execute a validated ``open_incident_program`` (module docstring)."""
    book = state.disputes
    market = state.markets[effect.market]
    program_id = book.next_program_id
    entitled: dict[tuple[str, int], int] = {}
    covered = []
    for target in book.targets.values():
        if (target.market != effect.market or not effect.from_height <= target.height <= effect.to_height
                or target.claimed_by is not None):
            continue
        reference = get_reference(effect, target)
        if reference is None:
            continue
        amount = compute_loss(state, target.market, target.size, target.received_usdc, reference)
        if amount > 0:
            key = (target.owner, target.number)
            entitled[key] = entitled.get(key, 0) + amount
            covered.append(target)
    budget = min(effect.budget, max(state.insurance_funds[market.pool], 0))
    payouts = {key: amount for key, amount in pro_rata(entitled, budget).items() if amount > 0}
    escrow = sum(payouts.values())
    for target in covered:
        target.claimed_by = f"incident:{program_id}"
        state.touch(("dispute_target", target.target_id))
    staking.move_fund(state, market.pool, -escrow, FundFlow.RESULT, events)   # stakers bear their part
    book.escrow_usdc += escrow
    book.next_program_id += 1
    program = IncidentProgram(program_id, market.ticker, market.pool, effect.from_height, effect.to_height,
                              effect.rule, effect.reference_price, effect.budget, sum(entitled.values()), escrow,
                              len(covered), state.height, state.time_ms + book.params.incident_claim_ms,
                              source.ref, payouts=payouts, exclude_sources=list(effect.exclude_sources))
    book.programs[program_id] = program
    state.touch(("global",))
    state.touch(("disputes",))
    state.touch(("incident", program_id))
    emit(events, ev.IncidentProgramOpened, program_id=program_id, market=market.ticker,
         from_height=effect.from_height, to_height=effect.to_height, rule=effect.rule,
         reference_price=effect.reference_price, budget=effect.budget, entitled=program.entitled_usdc, escrow=escrow,
         targets=len(covered), claim_until_ms=program.claim_until_ms,
         insurance_fund=state.insurance_funds[market.pool])


def claim_incident(state: State, sender: str, msg: ClaimIncident, events: Events) -> dict[str, Any]:
    """Pay the sender's compensation from a program (module docstring). Raises ``unknown_program``,
    ``program_closed``, ``nothing_to_claim``."""
    program = state.disputes.programs.get(msg.program_id)
    if program is None:
        raise ProtocolError("unknown_program", f"no incident program {msg.program_id}", field="program_id")
    if program.status != "open":
        raise ProtocolError("program_closed", f"incident program {msg.program_id} is closed", field="program_id")
    keys: list[tuple[str, int]] = [(sender, number) for number in SUBACCOUNT_NUMBERS
                                   if (sender, number) in program.payouts]
    if not keys:
        raise ProtocolError("nothing_to_claim", f"{sender} has nothing to claim from program {msg.program_id}",
                            field="program_id")
    total = 0
    for key in keys:
        amount = program.payouts.pop(key)
        sub = accounts.get_or_create_subaccount(state, key[0], key[1])
        sub.balance += amount
        total += amount
        state.touch(sub.key)
        emit(events, ev.IncidentClaimed, program_id=program.program_id, owner=sender, number=key[1], amount=amount)
    program.escrow_usdc -= total
    state.disputes.escrow_usdc -= total
    state.touch(("incident", program.program_id))
    state.touch(("disputes",))
    return {"amount": total}


def close_expired(state: State, events: Events) -> None:
    """Close the open programs whose claim period ended; the unclaimed escrow returns to the fund."""
    book = state.disputes
    for program in book.programs.values():
        if program.status != "open" or state.time_ms < program.claim_until_ms:
            continue
        returned = program.escrow_usdc
        pool = program.pool if program.pool in state.insurance_funds else "cross"
        staking.move_fund(state, pool, returned, FundFlow.RESULT, events)
        book.escrow_usdc -= returned
        program.escrow_usdc, program.status, program.payouts = 0, "closed", {}
        state.touch(("global",))
        state.touch(("disputes",))
        state.touch(("incident", program.program_id))
        emit(events, ev.IncidentProgramClosed, program_id=program.program_id, returned=returned,
             insurance_fund=state.insurance_funds[pool])
