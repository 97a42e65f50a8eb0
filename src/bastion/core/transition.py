"""The state transition: ``apply_block(state, time_ms, txs)`` and its named steps.

A block is applied as::

    begin_block   advance height and time, accumulate each market's oracle price over the
                  elapsed time (the settlement TWAP, bastion.core.twap), expire good-til-time
                  orders, expire idle senders' nonce sets (bastion.core.nonces)
    apply_tx      for each (sender, message) in order: spend its nonce when the block comes with
                  nonces (a nonce already spent: {"ok": false, "code": "nonce_used"} and nothing
                  changes), then validate and apply; a rejection by the handler changes nothing
                  but the spent nonce and yields {"ok": false, "code": ..., "message": ...}
    end_block     expire_pauses (guardian pauses whose end has come), run_scheduled_cancels (dead-man's
                  switches, bastion.core.deadman), update_oracle_prices, trigger_conditional_orders,
                  execute_twap_slices (bastion.core.twap_orders), settle_final_markets, liquidate (with deleveraging),
                  advance_rollouts (staged rollouts' gates and steps), update_funding,
                  process_proposals (start and tally votes, expire queued proposals),
                  update_replenishment (insurance funds against their targets, bastion.core.staking),
                  advance_disputes (record the block's dispute targets, escalate and finalise
                  disputes, close incident programs: bastion.core.governance.dispute_votes),
                  run_maker_rewards (sample makers' depth, close reward epochs),
                  commit_state_hash

Senders are taken as authenticated here (the node and API check signatures). Time is data:
the block time is given by the caller, never read from a clock.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bastion.core import (
    accounts, conditional, deadman, events as ev, governance, guardian, liquidation, modify, nonces, oracle, orders,
    twap, twap_orders, votes,
)
from bastion.core import agents, maker_rewards
from bastion.core.governance import council, dispatch
from bastion.core.governance import counter_reports
from bastion.core.book import BUY, SELL
from bastion.core.errors import InvariantViolation, ProtocolError
from bastion.core.events import Events, emit
from bastion.core.funding import funding_index_delta, funding_rate_8h_ppm, median_low, premium_ppm
from bastion.core.hashing import commit_state_hash
from bastion.core.messages import (
    ACTION_NAMES, CancelAll, CancelOrder, CancelProposal, CouncilAttest, Delegate, Deposit, Execute, GuardianPause,
    GuardianUnpause, GuardianVeto, Message, OracleUpdate, PlaceOrder, Queue, RegisterStressReport, SetLeverage,
    SetMarginMode, StewardChange, SubmitProposal, Transfer, TransferBgov, Vote, Withdraw, action_requires_proposal,
)
from bastion.core.messages import AuthorizeAgent, RevokeAgent
from bastion.core.messages import CancelTwap, ModifyOrder, PlaceTwap, ScheduleCancel
from bastion.core import disputes, incidents, staking
from bastion.core.governance import dispute_votes
from bastion.core.messages import (AppealDispute, ClaimIncident, CompleteUnstake, OpenDispute, RequestUnstake,
                                   RuleDispute, StakeInsurance)
from bastion.core.messages import AnswerCounterReport, JudgeCounterReport, PostCounterReport
from bastion.core.state import State
from bastion.risk_model import funding_clamp_ppm


# handler(state, sender, message, events) -> result fields; each takes the message type it is keyed by
Handler = Callable[[State, str, Any, Events], dict[str, Any]]

HANDLERS: dict[type, Handler] = {
    Deposit: accounts.deposit,
    Withdraw: accounts.withdraw,
    Transfer: accounts.transfer,
    PlaceOrder: orders.place_order,
    CancelOrder: orders.cancel_order,
    CancelAll: orders.cancel_all,
    SetLeverage: accounts.set_leverage,
    SetMarginMode: accounts.set_margin_mode,
    OracleUpdate: oracle.oracle_update,
    TransferBgov: votes.transfer_bgov,
    Delegate: votes.delegate,
    SubmitProposal: governance.submit_proposal,
    Vote: governance.vote,
    Queue: governance.queue,
    Execute: governance.execute,
    CancelProposal: governance.cancel_proposal,
    GuardianPause: guardian.guardian_pause,
    GuardianUnpause: guardian.guardian_unpause,
    GuardianVeto: governance.guardian_veto,
    CouncilAttest: council.council_attest,
    RegisterStressReport: council.register_stress_report,
    StewardChange: council.steward_change,
    AuthorizeAgent: agents.authorize_agent,
    RevokeAgent: agents.revoke_agent,
    ModifyOrder: modify.modify_order,
    ScheduleCancel: deadman.schedule_cancel,
    PlaceTwap: twap_orders.place_twap,
    CancelTwap: twap_orders.cancel_twap,
    StakeInsurance: staking.stake_insurance,
    RequestUnstake: staking.request_unstake,
    CompleteUnstake: staking.complete_unstake,
    OpenDispute: disputes.open_dispute,
    RuleDispute: disputes.rule_dispute,
    AppealDispute: dispute_votes.appeal_dispute,
    ClaimIncident: incidents.claim_incident,
    PostCounterReport: counter_reports.post_counter_report,
    JudgeCounterReport: counter_reports.judge_counter_report,
    AnswerCounterReport: counter_reports.answer_counter_report,
}


@dataclass(slots=True)
class BlockResult:
    """One applied block: its height and time, the state hash after it, each transaction's result
    (``{"ok": true, ...}`` or ``{"ok": false, "code", "message"}``) and the block's events."""
    height: int
    time_ms: int
    state_hash: str
    results: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def begin_block(state: State, time_ms: int, events: Events) -> None:
    """Open block ``height + 1`` at ``time_ms`` (``time_goes_backwards`` if before the previous block):
    accumulate the settlement TWAPs, expire good-til-time orders and spent nonces past their window."""
    if time_ms < state.time_ms:
        raise ProtocolError("time_goes_backwards",
                            f"block time {time_ms} is before the previous block's {state.time_ms}", field="time")
    previous_ms = state.time_ms
    state.height += 1
    state.time_ms = time_ms
    state.touch(("global",))
    twap.accumulate_prices(state, previous_ms)
    orders.expire_orders(state, events)  # resting and untriggered conditional orders
    nonces.expire_nonces(state)


def apply_tx(state: State, sender: str, msg: Message, events: Events) -> dict[str, Any]:
    """Apply one message; on rejection return the error and leave state and events untouched."""
    handler = HANDLERS.get(type(msg))
    if handler is None:
        action = ACTION_NAMES.get(type(msg))
        if action is not None:  # a governance action outside a proposal (the decoder refuses it too)
            error = action_requires_proposal(action)
            return {"ok": False, "code": error.code, "message": error.message}
        return {"ok": False, "code": "unknown_message_type", "message": f"no handler for {type(msg).__name__}"}
    tx_events: Events = []
    try:
        if type(msg) in agents.AGENT_ACTIONS:  # the owner it acts for: the sender, or one that made it an agent
            sender = agents.acting_owner(state, sender, msg, tx_events)
        extra = handler(state, sender, msg, tx_events)
    except ProtocolError as error:
        return {"ok": False, "code": error.code, "message": error.message}
    events.extend(tx_events)
    return {"ok": True, **extra}


class HandlerCrash(InvariantViolation):
    """A message handler raised something other than ``ProtocolError``: a bug. The state may be half
    applied, so the block must not be committed (the node stops; nothing of the block is acknowledged)."""


def update_funding(state: State, events: Events) -> None:
    """End-of-block step: block premium sample, minute samples, hourly funding ticks (DESIGN.md section 7)."""
    params = state.funding
    minute = state.time_ms // params.sample_ms
    hour = state.time_ms // params.tick_ms
    expected_samples = params.tick_ms // params.sample_ms
    for market in state.markets.values():
        tier = state.tiers[market.tier_id]
        if minute != market.premium_minute:
            if market.block_premiums:
                market.minute_samples.append(median_low(market.block_premiums))
                market.block_premiums = []
            market.premium_minute = minute
        if hour > market.last_funding_hour:
            clamp = funding_clamp_ppm(params.clamp_factor_ppm, tier.initial_margin_ppm, tier.maintenance_fraction_ppm)
            rate = funding_rate_8h_ppm(market.minute_samples, expected_samples=expected_samples,
                                       default_funding_ppm=params.default_funding_ppm, clamp_ppm=clamp)
            elapsed_s = (hour - market.last_funding_hour) * params.tick_ms // 1000
            delta = funding_index_delta(rate_8h_ppm=rate, oracle_ticks=market.oracle_price,
                                        size_decimals=market.size_decimals, price_decimals=market.price_decimals,
                                        elapsed_s=elapsed_s)
            market.funding_index += delta
            emit(events, ev.FundingTick, market=market.ticker, rate_8h_ppm=rate, samples=len(market.minute_samples),
                 oracle_price=market.oracle_price, elapsed_s=elapsed_s, index_delta=delta,
                 funding_index=market.funding_index)
            market.minute_samples = []
            market.last_funding_hour = hour
        if not market.stale:
            book = market.book
            max_premium = funding_clamp_ppm(params.premium_vote_clamp_factor_ppm, tier.initial_margin_ppm,
                                            tier.maintenance_fraction_ppm)
            market.block_premiums.append(premium_ppm(
                bids=book.iter_levels(BUY), asks=book.iter_levels(SELL), oracle_ticks=market.oracle_price,
                size_decimals=market.size_decimals, price_decimals=market.price_decimals,
                impact_notional=tier.impact_notional_usdc, max_abs_premium_ppm=max_premium))
        state.touch(market.key)


END_BLOCK_STEPS = (
    guardian.expire_pauses,
    deadman.run_scheduled_cancels,     # before anything trades: a dead bot's orders go first
    oracle.update_oracle_prices,
    conditional.trigger_conditional_orders,
    twap_orders.execute_twap_slices,   # at this block's oracle price, after the triggered orders
    liquidation.settle_final_markets,
    liquidation.liquidate,
    dispatch.advance_rollouts,         # after liquidate: the gates see this block's liquidations
    update_funding,
    governance.process_proposals,
    staking.update_replenishment,      # each fund against its target, after this block's fees and losses
    dispute_votes.advance_disputes,    # the block's targets, dispute deadlines and votes, incident expiry
    maker_rewards.run_maker_rewards,   # last: samples the books as the block leaves them
)


def end_block(state: State, events: Events) -> str:
    """Run ``END_BLOCK_STEPS`` in order and return the state hash."""
    for step in END_BLOCK_STEPS:
        step(state, events)
    return commit_state_hash(state)


def apply_nonced_tx(state: State, sender: str, nonce: int, msg: Message, events: Events) -> dict[str, Any]:
    """Spend the sender's nonce (``bastion.core.nonces``), then ``apply_tx``. A nonce already spent
    is refused (``nonce_used``) with no change at all; otherwise the nonce stays spent whatever the
    handler decides."""
    try:
        nonces.use_nonce(state, sender, nonce)
    except ProtocolError as error:
        return {"ok": False, "code": error.code, "message": error.message}
    return apply_tx(state, sender, msg, events)


def apply_block(state: State, time_ms: int, txs: list[tuple[str, Message]],
                tx_nonces: list[int] | None = None) -> BlockResult:
    """Apply one block of authenticated ``(sender, message)`` pairs at ``time_ms``. ``tx_nonces``:
    each transaction's nonce, spent in the state (the node, and every replay of its log, give
    them); None for a block of messages without envelopes (scenario files, simulations), which
    keeps no nonces."""
    events: Events = []
    begin_block(state, time_ms, events)
    if tx_nonces is not None and len(tx_nonces) != len(txs):
        raise ValueError(f"{len(tx_nonces)} nonces for {len(txs)} transactions")
    results: list[dict[str, Any]] = []
    for index, (sender, msg) in enumerate(txs):
        try:
            if tx_nonces is None:
                results.append(apply_tx(state, sender, msg, events))
            else:
                results.append(apply_nonced_tx(state, sender, tx_nonces[index], msg, events))
        except Exception as error:  # never a refusal: re-raised, naming the transaction, for the node to stop
            raise HandlerCrash(f"block {state.height}: transaction {index} ({type(msg).__name__} from {sender}) "
                               f"raised {type(error).__name__}: {str(error)[:200]}; the block is not committed"
                               ) from error
    state_hash = end_block(state, events)
    return BlockResult(state.height, time_ms, state_hash, results, events)


def check_invariants(state: State) -> None:
    """Raise ``InvariantViolation`` if conservation (collateral, BGOV), open interest or the book are broken."""
    balances = sum(sub.balance for sub in state.subaccounts.values())
    held = (balances + sum(state.insurance_funds.values()) + state.fees_account + state.funding_account
            + state.maker_rewards.pool)
    held += state.disputes.escrow_usdc     # dispute bonds and incident escrows (core.disputes)
    held += counter_reports.held_bonds(state)   # bonds escrowed by counter-reports
    expected = state.total_deposits - state.total_withdrawals + state.seed_insurance
    if held != expected:
        raise InvariantViolation(f"collateral not conserved: held {held}, expected {expected}")
    staking.check_staking_invariants(state)
    escrowed = sum(p.deposit_bgov for p in state.proposals.values() if p.deposit_state == "escrowed")
    if sum(state.bgov.values()) + escrowed != votes.get_total_supply(state):
        raise InvariantViolation("BGOV not conserved: balances plus escrowed deposits differ from the total supply")
    for ticker, market in state.markets.items():
        longs = shorts = 0
        for sub in state.subaccounts.values():
            position = sub.positions.get(ticker)
            if position is not None:
                if position.size > 0:
                    longs += position.size
                else:
                    shorts -= position.size
        if longs != shorts or longs != market.open_interest:
            raise InvariantViolation(f"{ticker}: long {longs}, short {shorts}, open interest {market.open_interest}")
        bid, ask = market.book.best_bid(), market.book.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            raise InvariantViolation(f"{ticker}: crossed book {bid} >= {ask}")
