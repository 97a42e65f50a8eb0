"""Hypothesis properties over random message sequences across blocks (STYLE.md, "Tests").

A ``RuleBasedStateMachine`` drives one chain (``builders.genesis``: BTC-USD, ETH-USD with a binding
open-interest cap and truncating notionals, isolated-only PEPE-USD) with random orders of every
type, time in force and self-trade mode, cancels, deposits, withdrawals, transfers, leverage and
margin-mode changes, BGOV transfers and delegations, oracle updates (small, large and huge moves,
gaps that make markets stale) and block boundaries (0..120 s, jumps to the next funding hour). Messages are applied one
by one with ``apply_tx`` inside an open block (``begin_block`` ... ``end_block``) so that every message
can be judged on its own:

* after every step: collateral is conserved to the micro-USDC, long OI == short OI == market OI
  (never above the cap), the book is never crossed, order indexes agree with the books, and every
  subaccount's (TNC, IMR, MMR) equals a recomputation from the public risk model (no stale cache);
* every rejected message leaves the full state hash, the non-hashed indexes and the events unchanged;
* every fill is replayed on a copy of the pre-message state: makers' price within the taker's
  limit, fees, reduce-only and stale/reduce-only-market clipping, open-interest cap, and for both
  sides the margin rule (TNC >= IMR, or a weak account that gets no riskier) *relative to the
  state just before that fill*; the replayed balances and positions must equal the engine's;
* withdrawals/transfers move exactly the amount and never leave the sender below IMR; orders
  rest, fill or cancel as their time in force says; good-til-time orders are gone at their time;
* the oracle price follows an independent model (single operator, half-even rounding,
  staleness, circuit breaker of at least one tick) and the funding index moves only on hour
  boundaries, by its ``funding_tick`` event, within the clamp;
* replay equals live: at the end of every example the recorded blocks are replayed through
  ``apply_block`` from genesis and from a pickled mid-run snapshot, to the same results, events
  and hashes;
* after every block the incremental state hash equals ``compute_state_hash_full``.
* oracle crashes (``CrashMachine``: a third or three times the price asked for 2-5 blocks in a row,
  slid by the 2% circuit breaker past the resting orders) send bankrupt accounts down the loss
  waterfall; after every block (in both machines) ``waterfall_checks.check_waterfall`` holds: no deleveraging or
  socialisation unless the backstop was asked and was at a limit, every ADL counterparty in profit and realising no loss
  on the closed lots, no backstop liquidated (conservation and OI hold as above, backstops included).
* voting power: the sum of all delegatees' votes equals the delegated supply and never exceeds the
  total supply, each delegatee's votes are the balances delegated to it, a transfer moves exactly
  its amount between the two delegates, and checkpoint heights strictly increase.

Below the machine, three small properties of the edges: decimal strings round-trip on every grid
(negative decimals included), oracle prices round half-to-even exactly as ``Fraction`` does, and
ISO-8601 times round-trip over years 1..9999.

The CI profile runs 200 examples of up to 100 steps (over 20,000 steps; at least 10,000 is
asserted), deterministically (``derandomize``, no example database); the ``slow`` profile runs
600 examples of up to 150 steps.
"""
from __future__ import annotations

import pickle
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from bastion.core import liquidation
from bastion.core.errors import ProtocolError
from bastion.core.genesis import DEFAULT_TIERS, build_state
from bastion.core.hashing import compute_state_hash_full
from bastion.core.margin import get_subaccount_risk
from bastion.core.messages import PlaceOrder, decode_message
from bastion.core.state import Position, State
from bastion.core.timefmt import format_iso_ms, parse_iso_ms
from bastion.core.transition import apply_block, apply_tx, check_invariants
from bastion.core.units import MAX_INTEGER_DIGITS, format_decimal, parse_decimal, parse_decimal_rounded
from bastion.risk_model import funding_clamp_ppm, insurance_fund_delta, is_liquidatable, margin_requirements, notional
from builders import (
    BRIDGE, BTC, ETH, ORACLE, OWNERS, PEPE, STRANGER, TICKERS, Chain, account, address, decimal_text, genesis,
    market, subaccount,
)
from waterfall_checks import check_waterfall

CI_SETTINGS = settings(max_examples=200, stateful_step_count=100, derandomize=True, database=None, deadline=None,
                       suppress_health_check=list(HealthCheck), print_blob=False)
SLOW_SETTINGS = settings(CI_SETTINGS, max_examples=600, stateful_step_count=150)
CI_MIN_STEPS = 10_000

PPM = 1_000_000
HOUR_MS = 3_600_000
NEWCOMER = address(0xF0)  # has no subaccount until a deposit or transfer creates one
SUBACCOUNT_NUMBERS = (0, 0, 0, 0, 0, 1, 1, 1, 1, 2)
TARGET_NOTIONALS_USDC = (1, 25, 300, 2_000, 10_000, 40_000, 150_000, 600_000, 2_000_000)
ACTION_WEIGHTS = {  # the first is what Hypothesis shrinks toward
    "place_limit_order": 12, "take_resting_order": 14, "place_crossing_limit_order": 5, "place_market_order": 3,
    "reduce_position": 4, "cancel_order": 4, "cancel_all": 2, "deposit": 3, "withdraw": 3, "transfer": 3,
    "set_leverage": 3, "set_margin_mode": 2, "oracle_update": 10, "end_block": 9, "end_block_and_jump_to_next_hour": 1,
    "place_conditional_order": 4, "transfer_bgov": 2, "delegate": 1,
}
BGOV_UNIT = 1_000_000  # BGOV has 6 decimals
DELEGATEES = OWNERS + (NEWCOMER, address(0))  # the zero address removes the delegation
LIQUIDATION_EVENTS = ("liquidation", "deleveraging", "bad_debt", "withdrawals_paused", "liquidation_incomplete",
                      "deleveraging_skipped", "liquidation_deferred", "backstop_takeover", "backstop_refused",
                      "backstop_unwind", "backstop_pnl", "deleveraging_deferred")
CONDITIONAL_ORDER_TYPES = ("stop_market", "stop_limit", "take_profit_market", "take_profit_limit")
ACTIONS = tuple(action for action, weight in ACTION_WEIGHTS.items() for _ in range(weight))
CRASH_ACTIONS = ACTIONS + ("oracle_crash",) * 3  # the crash machine's mix (``CrashMachine``)
ADVANCES_MS = (1_000, 0, 1_000, 2_000, 1_000, 3_000, 1_000, 5_000, 10_000, 1_000, 30_000, 61_000, None)


# --------------------------------------------------------------------------------- test oracles
def expected_fee(notional_abs: int, fee_ppm: int) -> int:
    """A positive fee rounds up, a rebate (negative fee) is paid rounded down (docs/protocol.md)."""
    if fee_ppm >= 0:
        return -((-notional_abs * fee_ppm) // PPM)
    return -((notional_abs * -fee_ppm) // PPM)


def update_allowed(old: tuple[int, int, int], new: tuple[int, int, int]) -> bool:
    """DESIGN.md section 3 (dYdX IsValidStateTransitionForUndercollateralizedSubaccount), written out here."""
    old_tnc, _, old_mmr = old
    new_tnc, new_imr, new_mmr = new
    if new_tnc >= new_imr:
        return True
    if new_mmr > old_mmr:
        return False
    if new_mmr == 0 or old_mmr == 0:
        return new_mmr == 0 and old_mmr == 0 and new_tnc > old_tnc
    return new_tnc * old_mmr >= old_tnc * new_mmr


def expected_risk(state: State, sub) -> tuple[int, int, int]:
    """(TNC, IMR, MMR) written out from DESIGN.md sections 3, 7 and 15 with the public risk model:
    the engine's memoised valuation must always agree with it."""
    pending_funding_ppm = net_notional = initial = maintenance = 0
    for ticker, position in sub.positions.items():
        market = state.markets[ticker]
        tier = state.tiers[market.tier_id]
        pending_funding_ppm += -(market.funding_index - position.funding_index) * position.size
        grid = {"size_decimals": market.size_decimals, "price_decimals": market.price_decimals}
        value = notional(position.size, market.oracle_price, **grid)
        open_interest = notional(market.open_interest, market.oracle_price, **grid) if tier.oi_upper_cap_usdc else 0
        imr, mmr = margin_requirements(abs(value), tier.initial_margin_ppm, tier.maintenance_fraction_ppm,
                                       open_interest_notional=open_interest, oi_lower_cap=tier.oi_lower_cap_usdc,
                                       oi_upper_cap=tier.oi_upper_cap_usdc)
        override = sub.imf_overrides.get(ticker)
        if override is not None:
            imr = max(imr, -(-abs(value) * override // PPM))
        imr += unbacked_profit(tier, value, position.cost)
        net_notional += value
        initial += imr
        maintenance += mmr
    return sub.balance + pending_funding_ppm // PPM + net_notional, initial, maintenance


def unbacked_profit(tier, value: int, cost: int) -> int:
    """docs/protocol.md, "Unbacked profit": the share of unrealised profit that the tier does not
    count as collateral, rounded up, is added to the initial requirement."""
    profit = max(value - cost, 0)
    return -(-profit * (PPM - tier.unrealized_profit_weight_ppm) // PPM)


def cost_model(market, size: int, cost: int, delta: int, ticks: int) -> int:
    """A position's cost after ``delta`` lots at ``ticks`` (state.Position): opening adds the
    notional, reducing removes the closed share truncated toward zero, a flip restarts."""
    grid = {"size_decimals": market.size_decimals, "price_decimals": market.price_decimals}
    new_size = size + delta
    if size == 0 or (size > 0) == (delta > 0):
        return cost + notional(delta, ticks, **grid)
    if new_size == 0 or (new_size > 0) == (size > 0):
        share = abs(cost) * abs(delta) // abs(size)
        return cost - share if cost >= 0 else cost + share
    return notional(new_size, ticks, **grid)


def settle_funding_model(state: State, sub) -> None:
    """DESIGN.md section 7: ``balance += floor(sum(-(index - index_i) * size_i) / 1e6)``, the protocol
    funding account taking the other side, every position then at its market's index."""
    amount_ppm = 0
    for ticker, position in sub.positions.items():
        index = state.markets[ticker].funding_index
        amount_ppm += -(index - position.funding_index) * position.size
        position.funding_index = index
    sub.balance += amount_ppm // PPM
    state.funding_account -= amount_ppm // PPM


def change_position_model(sub, market, delta: int, ticks: int) -> None:
    position = sub.positions.get(market.ticker)
    if position is None:
        sub.positions[market.ticker] = Position(delta, market.funding_index, cost_model(market, 0, 0, delta, ticks))
    elif position.size + delta == 0:
        del sub.positions[market.ticker]
    else:
        position.cost = cost_model(market, position.size, position.cost, delta, ticks)
        position.size += delta


def is_reduction(old_size: int, new_size: int) -> bool:
    """The position did not grow and did not flip."""
    return abs(new_size) <= abs(old_size) and (new_size == 0 or (new_size > 0) == (old_size > 0))


def position_size(state: State, key: tuple[str, int], ticker: str) -> int:
    sub = state.subaccounts.get(key)
    position = sub.positions.get(ticker) if sub is not None else None
    return position.size if position is not None else 0


def round_half_even(value: int, divisor: int) -> int:
    quotient, remainder = divmod(value, divisor)
    if 2 * remainder > divisor or (2 * remainder == divisor and quotient % 2):
        quotient += 1
    return quotient


def non_hashed_indexes(state: State) -> tuple:
    """What the state hash does not cover directly but later behaviour depends on."""
    return (tuple((key, tuple(sub.orders.items()), tuple(sub.client_ids.items()), tuple(sub.conditional_orders.items()))
                  for key, sub in state.subaccounts.items()),
            tuple(sorted(state.gtt_queue)),
            tuple((ticker, tuple(o.order_id for o in market.book.orders()))
                  for ticker, market in state.markets.items()))


def pick(data, items: list, label: str):
    """One of ``items``, drawn by index: Hypothesis labels ``sampled_from`` by the hash of its
    elements, which for orders is their address, and that would make the run depend on memory layout."""
    return items[data.draw(st.sampled_from(range(len(items))), label=label)]


def snapshot(state: State) -> State:
    """A deep copy of ``state`` without the hashing's derived vector cache (megabytes of 2 KB vectors,
    rebuilt on demand), which would otherwise dominate every copy."""
    vectors, state.leaf_vectors = state.leaf_vectors, {}
    try:
        return pickle.loads(pickle.dumps(state))
    finally:
        state.leaf_vectors = vectors


def machine_genesis() -> dict:
    """Thin accounts with leveraged genesis positions (BTC 15x, PEPE 15x), a 2% circuit breaker,
    a tight ETH open-interest cap and low open-interest caps on PEPE's tier, so that random orders
    are leveraged, oracle moves walk accounts through weak (below IMR) to bankrupt (negative equity)
    over several blocks, the cap binds and the IMF rises with open interest."""
    def sub(number: int, usdc: str, positions=(), **extra) -> dict:
        return subaccount(number, usdc, positions=[{"market": t, "size": size} for t, size in positions], **extra)

    isolated = {"mode": "isolated", "market": PEPE}  # balances below: 20k (10k isolated) of equity each
    alice, bob, carol, dave = OWNERS
    markets = [market(BTC), market(ETH, max_open_interest="8"), market(PEPE)]  # ETH: 5 of 8 taken at genesis
    # PEPE's tier raises its IMF from 160k USDC of open interest (150k at genesis) up to 400k
    tiers = [{**tier, "oi_lower_cap": "160000", "oi_upper_cap": "400000"} if tier["id"] == 4 else tier
             for tier in DEFAULT_TIERS]
    return genesis(oracle={"operators": [ORACLE], "max_move_per_block": "0.02"}, liquidity_tiers=tiers,
                   markets=markets, accounts=[
        {**account(alice, sub(0, "-265000", [(BTC, "6"), (ETH, "-5")]),
                   sub(1, "-140000", [(PEPE, "15000000000")], **isolated)), "bgov": "1000", "delegate": alice},
        {**account(bob, sub(0, "320000", [(BTC, "-6")]), sub(1, "160000", [(PEPE, "-15000000000")], **isolated)),
         "bgov": "250.5", "delegate": carol},
        {**account(carol, sub(0, "5000", [(ETH, "5")]), sub(1, "10000", **isolated)), "bgov": "0.000001"},
        account(dave, sub(0, "20000"), sub(1, "10000", **isolated)),
    ])


# --------------------------------------------------------------------------------- the machine
class ExchangeMachine(RuleBasedStateMachine):
    """One random chain; see the module docstring for what is checked where."""

    steps = 0
    coverage: Counter = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.chain = Chain(machine_genesis())
        self.state = self.chain.state
        genesis_ms = self.state.time_ms
        # independent oracle model: the single operator's last submission per market
        self.submissions = {t: (m.oracle_price, genesis_ms) for t, m in self.state.markets.items()}
        self.model_prices = {t: m.oracle_price for t, m in self.state.markets.items()}
        self.funding_hour = genesis_ms // HOUR_MS
        self.next_client_id = 100
        self.blocks: list[dict] = []  # what was applied, for the replay at teardown
        self.snapshot: tuple[int, bytes] | None = None

    # ----------------------------------------------------------------------------- the one rule
    @rule(action=st.sampled_from(ACTIONS), data=st.data())
    def step(self, action: str, data) -> None:
        """One random action; a single weighted rule rather than one rule per action, because
        Hypothesis draws rules uniformly (biased toward the first in its order) and the
        interesting paths need mostly orders."""
        ExchangeMachine.steps += 1
        getattr(self, action)(data)

    # ----------------------------------------------------------------------------- block plumbing
    def _open_block(self) -> None:
        if self.chain.is_open:
            return
        self.chain.open_block()
        now = self.state.time_ms
        self.blocks.append({"time_ms": now, "txs": [], "results": []})
        for market in self.state.markets.values():  # noqa: F402 - the strategy is not used here
            for order in market.book.orders():
                assert order.good_til_ms is None or order.good_til_ms > now, f"expired order still rests: {order!r}"
        for conditional in self.state.conditional_orders.values():
            assert conditional.terms.good_til_ms is None or conditional.terms.good_til_ms > now, conditional
        self.coverage["gtt_expired"] += sum(e.get("reason") == "expired" for e in self.chain.events)

    def _close_block(self, advance_ms: int) -> None:
        self._open_block()
        state = self.state
        funding_before = {t: m.funding_index for t, m in state.markets.items()}
        untriggered = dict(state.conditional_orders)
        events = self.chain.events
        state_hash = self.chain.end_block(advance_ms=advance_ms)
        # the incremental hash equals the full recomputation after every block
        assert state_hash == state.state_hash == compute_state_hash_full(state)
        self._check_oracle_model()
        self._check_funding(funding_before, events)
        self._check_triggers(untriggered, events)
        self._check_liquidations(events)
        self.coverage["blocks"] += 1
        self.blocks[-1].update(state_hash=state_hash, events=events)
        if len(self.blocks) == 3:  # a snapshot, as a node would take, to restore from at the end
            self.snapshot = (len(self.blocks), pickle.dumps(state))
        for market in state.markets.values():  # noqa: F402 - the strategy is not used here
            tier = state.tiers[market.tier_id]
            open_interest = notional(market.open_interest, market.oracle_price, size_decimals=market.size_decimals,
                                     price_decimals=market.price_decimals)
            scaled = 0 < tier.oi_upper_cap_usdc and tier.oi_lower_cap_usdc < open_interest
            self.coverage["oi_scaled_imf_blocks"] += scaled
        for sub in state.subaccounts.values():
            if sub.positions:
                tnc, imr, mmr = get_subaccount_risk(state, sub)
                self.coverage["undercollateralized_subaccount_blocks"] += tnc < imr
                self.coverage["negative_equity_subaccount_blocks"] += tnc < 0

    def _check_liquidations(self, events: list[dict]) -> None:
        """Each liquidation fill recomputes from its event's inputs (DESIGN.md section 8); no fund
        is negative; and every account still liquidatable is where the next scan will look for it
        (``liquidation._candidates``: the watch list or a holder of a market that moved since)."""
        state = self.state
        orders_seen: set[tuple] = set()
        last_order: tuple | None = None
        for event in events:
            if event["type"] == "liquidation":
                # the account was liquidatable when its liquidation order started (its later fills
                # complete the order's size even if an earlier fill made the account healthy, as dYdX)
                order = (event["owner"], event["number"], event["market"])
                if order not in orders_seen:
                    orders_seen.add(order)
                    assert event["net_collateral"] < event["maintenance"], "a healthy account was liquidated"
                else:  # each (subaccount, market) is liquidated at most once per block: its fills are adjacent
                    assert last_order == order, f"{order} liquidated twice in one block"
                last_order = order
                assert event["insurance_delta"] == insurance_fund_delta(
                    event["fill_quote"], event["bankruptcy_quote"], state.liquidation.max_liquidation_fee_ppm)
                sells = event["size"] > 0
                assert event["fill_price"] >= event["fillable_price"] if sells else (
                    event["fill_price"] <= event["fillable_price"]), event
            if event["type"] in LIQUIDATION_EVENTS:
                self.coverage[f"liquidation_event:{event['type']}"] += 1
        check_waterfall(state, events)  # the loss waterfall's order and fairness (tests/waterfall_checks.py)
        assert all(fund >= 0 for fund in state.insurance_funds.values()), state.insurance_funds
        moved = {t for t, m in state.markets.items()
                 if m.scanned != (m.oracle_price, m.funding_index, state.params_epoch)}
        for key, sub in state.subaccounts.items():
            if not sub.positions or liquidation.is_backstop(key[0]):  # a backstop's margin is its fund
                continue
            tnc, _, mmr = get_subaccount_risk(state, sub)
            if is_liquidatable(tnc, mmr):
                assert key in state.liquidation_watch or moved & set(sub.positions), f"{key} missed by the scan"

    def _check_oracle_model(self) -> None:
        state = self.state
        for ticker, market in state.markets.items():  # noqa: F402 - the strategy is not used here
            ticks, submitted_ms = self.submissions[ticker]
            stale = state.time_ms - submitted_ms > market.oracle_params.max_staleness_ms
            assert market.stale == stale, f"{ticker}: stale {market.stale}, expected {stale}"
            if not stale:
                previous = self.model_prices[ticker]
                max_move = max(1, previous * market.oracle_params.max_move_per_block_ppm // PPM)  # >= one tick
                self.model_prices[ticker] = min(max(ticks, previous - max_move), previous + max_move)
                self.coverage["oracle_clamped"] += self.model_prices[ticker] != ticks
            else:
                self.coverage["stale_market_blocks"] += 1
            assert market.oracle_price == self.model_prices[ticker], (ticker, market.oracle_price)

    def _check_funding(self, funding_before: dict[str, int], events: list[dict]) -> None:
        state = self.state
        hour = state.time_ms // HOUR_MS
        ticks = {e["market"]: e for e in events if e["type"] == "funding_tick"}
        if hour > self.funding_hour:
            assert set(ticks) == set(state.markets), "every market ticks on an hour boundary"
            for ticker, event in ticks.items():
                market = state.markets[ticker]
                tier = state.tiers[market.tier_id]
                clamp = funding_clamp_ppm(state.funding.clamp_factor_ppm, tier.initial_margin_ppm,
                                          tier.maintenance_fraction_ppm)
                assert abs(event["rate_8h_ppm"]) <= clamp
                # longs pay when the rate is positive: the index rises with the rate
                rate, delta = event["rate_8h_ppm"], event["index_delta"]
                assert rate * delta >= 0 and (rate or not delta)
                assert market.funding_index == funding_before[ticker] + event["index_delta"]
            self.coverage["funding_ticks"] += 1
            self.funding_hour = hour
        else:
            assert not ticks
            assert {t: m.funding_index for t, m in state.markets.items()} == funding_before

    def teardown(self) -> None:
        if self.chain.is_open:
            self._close_block(1_000)
        self._check_replay()

    def _check_replay(self) -> None:
        """Replay equals live: the recorded blocks through ``apply_block`` from genesis, and from a
        pickled mid-run snapshot, give the same results, events and state hashes."""
        replayed = build_state(machine_genesis())
        for block in self.blocks:
            result = apply_block(replayed, block["time_ms"], block["txs"])
            assert result.results == block["results"]
            assert result.events == block["events"]
            assert result.state_hash == block["state_hash"]
        if self.snapshot is not None:
            done, data = self.snapshot
            restored = pickle.loads(data)
            assert compute_state_hash_full(restored) == restored.state_hash == self.blocks[done - 1]["state_hash"]
            for block in self.blocks[done:]:
                assert apply_block(restored, block["time_ms"], block["txs"]).state_hash == block["state_hash"]

    # ----------------------------------------------------------------------------- submitting
    def _submit(self, sender: str, msg: dict) -> tuple[object, dict, list[dict]]:
        """Apply one message inside the open block; a rejection must change nothing at all."""
        self._open_block()
        state = self.state
        typed = decode_message(msg)  # the machine only builds well-formed messages
        hash_before = compute_state_hash_full(state)
        indexes_before = non_hashed_indexes(state)
        events: list[dict] = []
        result = apply_tx(state, sender, typed, events)
        self.blocks[-1]["txs"].append((sender, typed))
        self.blocks[-1]["results"].append(result)
        if result["ok"]:
            self.chain.events.extend(events)
            self.coverage[f"ok:{msg['type']}"] += 1
        else:
            assert events == [], f"a rejection emitted events: {events}"
            assert compute_state_hash_full(state) == hash_before, f"rejected {msg} ({result['code']}) changed the state"
            assert non_hashed_indexes(state) == indexes_before, f"rejected {msg} changed the order indexes"
            self.coverage[f"rejected:{result['code']}"] += 1
        return typed, result, events

    def _pick_subaccount(self, data) -> tuple[str, int]:
        owner = data.draw(st.sampled_from(OWNERS), label="owner")
        return owner, data.draw(st.sampled_from(SUBACCOUNT_NUMBERS), label="subaccount")

    def _pick_market(self, data, owner: str, number: int) -> str:
        sub = self.state.subaccounts.get((owner, number))
        home = data.draw(st.sampled_from((True,) * 8 + (False,) * 2), label="home market")
        if sub is not None and sub.isolated_market is not None and home:
            return sub.isolated_market
        return data.draw(st.sampled_from((BTC, ETH) * 4 + (PEPE,)), label="market")

    def _lots(self, data, ticker: str) -> int:
        market = self.state.markets[ticker]
        if data.draw(st.sampled_from((False,) * 19 + (True,)), label="tiny size"):
            return data.draw(st.integers(0, 2 * market.min_order_lots), label="lots")
        target = data.draw(st.sampled_from(TARGET_NOTIONALS_USDC), label="notional")
        per_lot = max(1, notional(1, market.oracle_price, size_decimals=market.size_decimals,
                                  price_decimals=market.price_decimals))
        lots = max(1, target * PPM // per_lot)
        return max(1, lots * data.draw(st.integers(1, 8), label="size x/4") // 4)

    def _price_ticks(self, data, ticker: str, *, aggressive_side: str | None = None) -> int:
        oracle_ticks = self.state.markets[ticker].oracle_price
        bps = data.draw(st.integers(-250, 250), label="price bps")
        if aggressive_side is not None:
            bps = abs(bps) if aggressive_side == "buy" else -abs(bps)
        return max(1, oracle_ticks * (10_000 + bps) // 10_000)

    # ----------------------------------------------------------------------------- order rules
    def place_limit_order(self, data) -> None:
        self._place(data, order_type="limit", aggressive=False)

    def place_crossing_limit_order(self, data) -> None:
        self._place(data, order_type="limit", aggressive=True)

    def place_conditional_order(self, data) -> None:
        """A stop or take-profit order with a trigger near the oracle price; ``_check_triggers`` judges
        at each block's end which ones trigger, and how."""
        self._open_block()
        owner, number = self._pick_subaccount(data)
        ticker = self._pick_market(data, owner, number)
        market = self.state.markets[ticker]
        order_type = data.draw(st.sampled_from(CONDITIONAL_ORDER_TYPES), label="order_type")
        side = data.draw(st.sampled_from(("buy", "sell")), label="side")
        position = position_size(self.state, (owner, number), ticker)
        reduce_only = data.draw(st.sampled_from((False,) * 3 + (True,)), label="reduce_only")
        if reduce_only and position:
            side = "sell" if position > 0 else "buy"
        lots = self._lots(data, ticker) if not (reduce_only and position) else abs(position)
        trigger = max(1, market.oracle_price * (10_000 + data.draw(st.integers(-300, 300), label="trigger bps"))
                      // 10_000)
        ticks = self._price_ticks(data, ticker, aggressive_side=side if order_type.endswith("_market") else None)
        tifs = ("ioc", "fok") if order_type.endswith("_market") else ("gtc", "gtc", "gtt", "ioc", "fok", "post_only")
        tif = data.draw(st.sampled_from(tifs), label="tif")
        msg = {"type": "place_order", "subaccount": number, "market": ticker, "side": side,
               "size": decimal_text(lots, market.size_decimals), "price": decimal_text(ticks, market.price_decimals),
               "order_type": order_type, "time_in_force": tif, "client_id": self.next_client_id,
               "trigger_price": decimal_text(trigger, market.price_decimals), "reduce_only": reduce_only,
               "self_trade": data.draw(st.sampled_from(("cancel_resting", "cancel_taking", "decrement")),
                                       label="self_trade")}
        self.next_client_id += 1
        if tif == "gtt":
            msg["good_til"] = format_iso_ms(self.state.time_ms
                                            + data.draw(st.integers(1, 120), label="good_til s") * 1_000)
        after_full_fill = self._risk_after_full_fill(owner, number, market, side, lots, ticks)
        _, result, events = self._submit(owner, msg)
        if result["ok"]:
            reduces = position != 0 and (position > 0) == (side == "sell") and lots <= abs(position)
            assert reduces or reduce_only or after_full_fill[0] >= after_full_fill[1], f"accepted beyond margin: {msg}"
            assert result["status"] == "untriggered" and result["order_id"] in self.state.conditional_orders
            assert [e["type"] for e in events] == ["conditional_order_placed"]
            self.coverage["conditional_placed"] += 1

    def _check_triggers(self, untriggered: dict, events: list[dict]) -> None:
        """At the end of a block: exactly the conditional orders whose market is fresh and whose
        condition holds at the new oracle price triggered, in order id order; each then either failed
        (no trace of it in the book or in fills) or went the way of a fresh order with its own id."""
        state = self.state

        def holds(order) -> bool:
            market = state.markets[order.terms.market]
            rises = (order.terms.side == 0) == order.order_type.startswith("stop")  # stop buy, take-profit sell
            price = market.oracle_price
            return not market.stale and (price >= order.trigger_ticks if rises else price <= order.trigger_ticks)

        expected = [oid for oid, order in untriggered.items() if holds(order)]
        triggered = [e["order_id"] for e in events if e["type"] == "conditional_order_triggered"]
        assert triggered == expected, (triggered, expected)
        assert set(state.conditional_orders) == set(untriggered) - set(triggered)
        failed = {e["order_id"]: e["code"] for e in events if e["type"] == "conditional_order_failed"}
        for order_id in triggered:
            order = untriggered[order_id]
            fills = [e for e in events if e["type"] == "fill" and e["taker"]["order_id"] == order_id]
            if order_id in failed:
                assert not fills and all(order_id not in m.book for m in state.markets.values())
                assert not any(e.get("order_id") == order_id and e["type"] in ("order_placed", "order_cancelled")
                               for e in events)
                self.coverage["conditional_failed"] += 1
                self.coverage[f"conditional_failed:{failed[order_id]}"] += 1
                continue
            limit = order.terms.ticks
            assert all(f["price"] <= limit if order.terms.side == 0 else f["price"] >= limit for f in fills), fills
            resting = state.markets[order.terms.market].book.get(order_id)
            if resting is not None:
                assert resting.owner == order.terms.owner and resting.price == limit
            if order.terms.time_in_force in ("ioc", "fok"):
                assert resting is None
            if order.terms.time_in_force == "post_only":
                assert not fills
            self.coverage["conditional_triggered"] += 1
            self.coverage["conditional_fills"] += len(fills)

    def place_market_order(self, data) -> None:
        self._place(data, order_type="market", aggressive=True)

    def take_resting_order(self, data) -> None:
        """An order against a resting one (usually another owner's, sometimes the same owner's)."""
        candidates = [(t, o) for t, m in self.state.markets.items() for o in m.book.orders()]
        if not candidates:
            return self.place_crossing_limit_order(data)
        ticker, order = pick(data, candidates, "resting order")
        owner = data.draw(st.sampled_from(OWNERS), label="owner")
        number = 1 if ticker == PEPE else data.draw(st.sampled_from((0,) * 6 + (2,)), label="subaccount")
        lots = max(1, order.remaining * data.draw(st.sampled_from(range(1, 13)), label="size x/4") // 4)
        through_bps = data.draw(st.sampled_from((0, 0, 10, 100)), label="bps through")
        side = "sell" if order.side == 0 else "buy"
        ticks = order.price * (10_000 + (through_bps if side == "buy" else -through_bps)) // 10_000
        order_type = data.draw(st.sampled_from(("limit", "limit", "market")), label="order_type")
        self._place(data, order_type=order_type, aggressive=True, chosen=(owner, number, ticker, side, lots, ticks))

    def reduce_position(self, data) -> None:
        """A weak or strong account closes part of a position by taking liquidity (or resting)."""
        holders = [(key, t) for key, sub in self.state.subaccounts.items() for t in sub.positions]
        if not holders:
            return self.take_resting_order(data)
        weak = [(key, t) for key, t in holders
                if (lambda risk: risk[0] < risk[1])(get_subaccount_risk(self.state, self.state.subaccounts[key]))]
        if weak and data.draw(st.sampled_from((True, True, False)), label="a weak account"):
            holders = weak
        (owner, number), ticker = pick(data, holders, "position")
        size = self.state.subaccounts[(owner, number)].positions[ticker].size
        side = "sell" if size > 0 else "buy"
        lots = max(1, abs(size) * data.draw(st.sampled_from(range(1, 9)), label="size x/4") // 4)
        ticks = self._price_ticks(data, ticker, aggressive_side=side)
        self._place(data, order_type=data.draw(st.sampled_from(("limit", "market")), label="order_type"),
                    aggressive=True, chosen=(owner, number, ticker, side, lots, ticks))

    def _place(self, data, *, order_type: str, aggressive: bool, chosen: tuple | None = None) -> None:
        self._open_block()
        if chosen is None:
            owner, number = self._pick_subaccount(data)
            ticker = self._pick_market(data, owner, number)
            side = data.draw(st.sampled_from(("buy", "sell")), label="side")
            lots = self._lots(data, ticker)
            ticks = self._price_ticks(data, ticker, aggressive_side=side if aggressive else None)
        else:
            owner, number, ticker, side, lots, ticks = chosen
        market = self.state.markets[ticker]
        if order_type == "market":
            tif = data.draw(st.sampled_from(("ioc", "fok")), label="tif")
        else:
            tif = data.draw(st.sampled_from(("gtc", "gtc", "gtt", "ioc", "fok", "post_only")), label="tif")
        reduce_only = data.draw(st.sampled_from((False,) * 9 + (True,)), label="reduce_only")
        position = position_size(self.state, (owner, number), ticker)
        if reduce_only and position and data.draw(st.sampled_from((True,) * 4 + (False,)), label="reducing side"):
            side = "sell" if position > 0 else "buy"
        sub = self.state.subaccounts.get((owner, number))
        client_id = self.next_client_id
        self.next_client_id += 1
        if sub is not None and sub.client_ids and data.draw(st.sampled_from((False,) * 19 + (True,)), label="reuse"):
            client_id = data.draw(st.sampled_from(sorted(sub.client_ids)), label="duplicate client_id")
        msg = {"type": "place_order", "subaccount": number, "market": ticker, "side": side,
               "size": decimal_text(lots, market.size_decimals), "price": decimal_text(ticks, market.price_decimals),
               "order_type": order_type, "time_in_force": tif, "client_id": client_id, "reduce_only": reduce_only,
               "self_trade": data.draw(st.sampled_from(("cancel_resting", "cancel_taking", "decrement")),
                                       label="self_trade")}
        if tif == "gtt":
            good_til_ms = self.state.time_ms + data.draw(st.integers(-2, 180), label="good_til s") * 1_000
            msg["good_til"] = format_iso_ms(good_til_ms)
        book = market.book
        best = book.best_ask() if side == "buy" else book.best_bid()
        crosses = best is not None and (best <= ticks if side == "buy" else best >= ticks)
        before = snapshot(self.state) if crosses else None
        after_full_fill = self._risk_after_full_fill(owner, number, market, side, lots, ticks)
        typed, result, events = self._submit(owner, msg)
        if result["ok"]:
            reduces = position != 0 and (position > 0) == (side == "sell") and lots <= abs(position)
            if not (reduces or reduce_only):  # placement margin (docs/protocol.md, Orders and matching)
                assert after_full_fill[0] >= after_full_fill[1], f"accepted beyond margin: {msg} {after_full_fill}"
            self._check_order_outcome(typed, result, events, lots, ticks, before)

    def _risk_after_full_fill(self, owner: str, number: int, market, side: str, lots: int, ticks: int) -> tuple:
        """(TNC, IMR, MMR) after a hypothetical full fill at the limit price, worst-case fee charged."""
        sub = self.state.subaccounts.get((owner, number))
        if sub is None:
            return (0, 0, 0)
        signed = lots if side == "buy" else -lots
        quote = notional(signed, ticks, size_decimals=market.size_decimals, price_decimals=market.price_decimals)
        fee = expected_fee(abs(quote), max(market.taker_fee_ppm, market.maker_fee_ppm, 0))
        position = sub.positions.get(market.ticker)
        size, cost = (position.size, position.cost) if position is not None else (0, 0)
        return get_subaccount_risk(self.state, sub, market, size_delta=signed, balance_delta=-quote - fee,
                                   cost_delta=cost_model(market, size, cost, signed, ticks) - cost)

    def _check_order_outcome(self, msg: PlaceOrder, result: dict, events: list[dict], lots: int, ticks: int,
                             before: State | None) -> None:
        order_id, filled = result["order_id"], result["filled"]
        fills = [e for e in events if e["type"] == "fill"]
        decremented = sum(e["size"] for e in events if e["type"] == "self_trade_decrement")
        assert all(f["taker"]["order_id"] == order_id for f in fills)
        # lots taken off by self-trade "decrement" are reported apart: they are not fills
        assert sum(f["size"] for f in fills) == filled and result.get("decremented", 0) == decremented
        consumed = filled + decremented
        assert consumed <= lots
        placed = [e for e in events if e["type"] == "order_placed" and e["order_id"] == order_id]
        cancelled = [e for e in events if e["type"] == "order_cancelled" and e["order_id"] == order_id]
        resting = self.state.markets[msg.market].book.get(order_id)
        if consumed == lots:
            assert not placed and not cancelled and resting is None and result["status"] == "filled"
        else:
            assert len(placed) + len(cancelled) == 1, events
            assert (resting is not None) == bool(placed)
        if resting is not None:
            assert (resting.remaining, resting.price, resting.reduce_only) == (lots - consumed, ticks, msg.reduce_only)
        if msg.time_in_force in ("ioc", "fok"):
            assert resting is None
        if msg.time_in_force == "fok":
            assert consumed == lots, "fill-or-kill accepted but not filled"
        if msg.time_in_force == "post_only":
            assert filled == 0 and not fills, "post-only order took liquidity"
        prices = [f["price"] for f in fills]
        if msg.side == "buy":
            assert all(p <= ticks for p in prices) and prices == sorted(prices)
        else:
            assert all(p >= ticks for p in prices) and prices == sorted(prices, reverse=True)
        if fills:
            assert before is not None, "an order that did not cross filled"
            self._replay_fills(before, msg, fills)
            self.coverage["fills"] += len(fills)
        self.coverage["self_trade_decrements"] += decremented > 0
        self.coverage["self_trade_cancels"] += any(e.get("reason") == "self_trade" for e in events)
        self.coverage["maker_margin_cancels"] += any(e.get("reason") == "maker_margin" for e in events)
        self.coverage["oi_cap_stops"] += any(e.get("reason") == "open_interest_cap" for e in events)

    def _replay_fills(self, before: State, msg: PlaceOrder, fills: list[dict]) -> None:
        """Apply the fill events one by one to the pre-message copy and judge each against the rules."""
        market = before.markets[msg.market]
        restricted = market.stale or market.status == "reduce_only"
        buy = msg.side == "buy"
        first_risk: dict[tuple, tuple] = {}  # risk before the message, per subaccount
        for fill in fills:
            taker_key = (fill["taker"]["owner"], fill["taker"]["number"])
            maker_key = (fill["maker"]["owner"], fill["maker"]["number"])
            assert taker_key[0] != maker_key[0], f"self-trade executed: {fill}"
            maker_order = market.book.get(fill["maker"]["order_id"])
            assert maker_order is not None and (maker_order.owner, maker_order.number) == maker_key
            assert maker_order.price == fill["price"] and (maker_order.side == 1) == buy
            taker, maker = before.subaccounts[taker_key], before.subaccounts[maker_key]
            delta = fill["size"] if buy else -fill["size"]
            quote = notional(delta, fill["price"], size_decimals=market.size_decimals,
                             price_decimals=market.price_decimals)
            taker_fee = expected_fee(abs(quote), market.taker_fee_ppm)
            maker_fee = expected_fee(abs(quote), market.maker_fee_ppm)
            assert (fill["taker"]["fee"], fill["maker"]["fee"]) == (taker_fee, maker_fee), fill
            old_taker, old_maker = expected_risk(before, taker), expected_risk(before, maker)
            first_risk.setdefault(taker_key, old_taker)
            first_risk.setdefault(maker_key, old_maker)
            taker_size = position_size(before, taker_key, msg.market)
            maker_size = position_size(before, maker_key, msg.market)
            settle_funding_model(before, taker)
            settle_funding_model(before, maker)
            taker.balance -= quote + taker_fee
            maker.balance += quote - maker_fee
            net_fee = taker_fee + maker_fee
            insurance = net_fee * before.fees.insurance_share_ppm // PPM
            before.insurance_funds[market.pool] += insurance
            before.fees_account += net_fee - insurance
            change_position_model(taker, market, delta, fill["price"])
            change_position_model(maker, market, -delta, fill["price"])
            market.open_interest += (max(taker_size + delta, 0) - max(taker_size, 0)
                                     + max(maker_size - delta, 0) - max(maker_size, 0))
            assert market.open_interest <= market.max_open_interest_lots, "fill above the open-interest cap"
            new_taker, new_maker = expected_risk(before, taker), expected_risk(before, maker)
            assert update_allowed(old_taker, new_taker), f"taker {taker_key}: {old_taker} -> {new_taker} by {fill}"
            assert update_allowed(old_maker, new_maker), f"maker {maker_key}: {old_maker} -> {new_maker} by {fill}"
            if msg.reduce_only or restricted:
                assert is_reduction(taker_size, taker_size + delta), f"taker grew in a reduce-only fill {fill}"
            if maker_order.reduce_only or restricted:
                assert is_reduction(maker_size, maker_size - delta), f"maker grew in a reduce-only fill {fill}"
            self.coverage["restricted_fills"] += restricted
            self.coverage["undercollateralized_fills"] += new_taker[0] < new_taker[1] or new_maker[0] < new_maker[1]
        state = self.state
        for key in first_risk:
            real, model = state.subaccounts[key], before.subaccounts[key]
            assert real.balance == model.balance, f"{key}: balance {real.balance}, replayed {model.balance}"
            assert ({t: (p.size, p.funding_index, p.cost) for t, p in real.positions.items()}
                    == {t: (p.size, p.funding_index, p.cost) for t, p in model.positions.items()}), key
        assert state.markets[msg.market].open_interest == market.open_interest
        assert (state.fees_account, state.funding_account, state.insurance_funds) == (
            before.fees_account, before.funding_account, before.insurance_funds), "fees or funding mis-booked"

    def cancel_order(self, data) -> None:
        self._open_block()
        owner, number = self._pick_subaccount(data)
        sub = self.state.subaccounts.get((owner, number))
        mine = list(sub.orders) + list(sub.conditional_orders) if sub is not None else []
        msg = {"type": "cancel_order", "subaccount": number}
        if mine and data.draw(st.sampled_from((True, True, True, False)), label="an existing order"):
            order_id = data.draw(st.sampled_from(mine), label="order_id")
            if data.draw(st.booleans(), label="by client id"):
                msg["client_id"] = (self.state.conditional_orders[order_id].terms.client_id
                                    if order_id not in sub.orders
                                    else self.state.markets[sub.orders[order_id]].book.get(order_id).client_id)
            else:
                msg["order_id"] = order_id
        elif data.draw(st.booleans(), label="by client id"):
            msg["client_id"] = data.draw(st.sampled_from(range(100, self.next_client_id + 2)), label="client_id")
        else:  # possibly someone else's order: must be order_not_found
            msg["order_id"] = data.draw(st.integers(1, self.state.next_order_id), label="order_id")
        _, result, _ = self._submit(owner, msg)
        if result["ok"]:
            assert all(result["order_id"] not in m.book for m in self.state.markets.values())
            assert result["order_id"] not in self.state.conditional_orders

    def cancel_all(self, data) -> None:
        self._open_block()
        owner, number = self._pick_subaccount(data)
        ticker = data.draw(st.sampled_from((None, None) + TICKERS), label="market")
        msg = {"type": "cancel_all", "subaccount": number}
        if ticker is not None:
            msg["market"] = ticker
        _, result, _ = self._submit(owner, msg)
        if result["ok"]:
            sub = self.state.subaccounts[(owner, number)]
            assert all(t != ticker for t in sub.orders.values()) if ticker else not sub.orders
            assert all(t != ticker for t in sub.conditional_orders.values()) if ticker else not sub.conditional_orders

    # ----------------------------------------------------------------------------- collateral rules
    def _amount(self, data) -> int:
        return data.draw(st.one_of(st.integers(0, 3), st.integers(1, 5_000).map(lambda u: u * PPM),
                                   st.integers(1, 10**12)), label="amount micro-USDC")

    def _tnc(self, key: tuple[str, int]) -> int | None:
        sub = self.state.subaccounts.get(key)
        return None if sub is None else get_subaccount_risk(self.state, sub)[0]

    def deposit(self, data) -> None:
        self._open_block()
        sender = data.draw(st.sampled_from((BRIDGE, BRIDGE, BRIDGE, OWNERS[0])), label="sender")
        owner = data.draw(st.sampled_from(OWNERS + (NEWCOMER,)), label="owner")
        number = data.draw(st.sampled_from((0, 1, 2, 3)), label="subaccount")
        amount = self._amount(data)
        before = self._tnc((owner, number)) or 0
        msg = {"type": "deposit", "owner": owner, "subaccount": number, "amount": decimal_text(amount, 6)}
        _, result, _ = self._submit(sender, msg)
        if result["ok"]:
            assert self._tnc((owner, number)) == before + amount

    def withdraw(self, data) -> None:
        self._open_block()
        owner, number = self._pick_subaccount(data)
        amount = self._amount(data)
        before = self._tnc((owner, number))
        _, result, _ = self._submit(owner, {"type": "withdraw", "subaccount": number,
                                            "amount": decimal_text(amount, 6)})
        if result["ok"]:
            self._check_debit((owner, number), before, amount)

    def transfer(self, data) -> None:
        self._open_block()
        owner, number = self._pick_subaccount(data)
        to_owner = data.draw(st.sampled_from((owner, owner) + OWNERS + (NEWCOMER,)), label="to_owner")
        to_number = data.draw(st.sampled_from(SUBACCOUNT_NUMBERS + (3,)), label="to_subaccount")
        amount = self._amount(data)
        before, recipient_before = self._tnc((owner, number)), self._tnc((to_owner, to_number)) or 0
        msg = {"type": "transfer", "subaccount": number, "to_owner": to_owner, "to_subaccount": to_number,
               "amount": decimal_text(amount, 6)}
        _, result, _ = self._submit(owner, msg)
        if result["ok"]:
            self._check_debit((owner, number), before, amount)
            assert self._tnc((to_owner, to_number)) == recipient_before + amount
            assert self._is_settled(self.state.subaccounts[(to_owner, to_number)])

    def _check_debit(self, key: tuple[str, int], tnc_before: int, amount: int) -> None:
        sub = self.state.subaccounts[key]
        tnc, imr, _ = get_subaccount_risk(self.state, sub)
        assert tnc == tnc_before - amount
        assert self._is_settled(sub), f"{key} touched without settling its funding"
        assert tnc >= imr, f"{key} debited below its initial margin: TNC {tnc} < IMR {imr}"

    def _is_settled(self, sub) -> bool:
        return all(p.funding_index == self.state.markets[t].funding_index for t, p in sub.positions.items())

    def set_leverage(self, data) -> None:
        self._open_block()
        owner, number = self._pick_subaccount(data)
        ticker = self._pick_market(data, owner, number)
        tier_imf = self.state.tiers[self.state.markets[ticker].tier_id].initial_margin_ppm
        imf = data.draw(st.one_of(st.integers(tier_imf, PPM), st.integers(tier_imf // 2, 2 * tier_imf)), label="imf")
        sub = self.state.subaccounts.get((owner, number))
        previous = sub.imf_overrides.get(ticker, tier_imf) if sub is not None else tier_imf
        msg = {"type": "set_leverage", "subaccount": number, "market": ticker, "initial_margin": decimal_text(imf, 6)}
        _, result, _ = self._submit(owner, msg)
        if result["ok"]:
            assert tier_imf <= imf <= PPM
            tnc, imr, _ = get_subaccount_risk(self.state, sub)
            assert tnc >= imr or imf <= previous, "leverage lowered below the initial margin"

    def set_margin_mode(self, data) -> None:
        self._open_block()
        owner, number = self._pick_subaccount(data)
        mode = data.draw(st.sampled_from(("cross", "isolated")), label="mode")
        msg = {"type": "set_margin_mode", "subaccount": number, "mode": mode}
        if mode == "isolated":
            msg["market"] = data.draw(st.sampled_from((PEPE, PEPE) + TICKERS), label="market")
        sub = self.state.subaccounts.get((owner, number))
        was_flat = sub is not None and not sub.positions and not sub.orders
        _, result, _ = self._submit(owner, msg)
        if result["ok"]:
            assert was_flat

    # ----------------------------------------------------------------------------- BGOV and delegation
    def transfer_bgov(self, data) -> None:
        sender = data.draw(st.sampled_from(OWNERS + (NEWCOMER,)), label="sender")
        to = data.draw(st.sampled_from(OWNERS + (NEWCOMER,)), label="to")
        balance = self.state.bgov.get(sender, 0)
        amount = data.draw(st.sampled_from((1, BGOV_UNIT, max(balance // 3, 1), balance, balance + 1)), label="bgov")
        votes_before = self._votes()
        _, result, events = self._submit(sender, {"type": "transfer_bgov", "to": to,
                                                  "amount": decimal_text(amount, 6)})
        if result["ok"]:
            assert 0 < amount <= balance and to != sender
            source, destination = (self.state.bgov_delegates.get(a) for a in (sender, to))
            expected = dict(votes_before)
            if source != destination:
                for delegatee, delta in ((source, -amount), (destination, amount)):
                    if delegatee is not None:
                        expected[delegatee] = expected.get(delegatee, 0) + delta
            assert self._votes() == {k: v for k, v in expected.items() if v or k in votes_before}
            self.coverage["bgov_votes_moved"] += any(e["type"] == "delegate_votes_changed" for e in events)

    def delegate(self, data) -> None:
        sender = data.draw(st.sampled_from(OWNERS + (NEWCOMER,)), label="sender")
        delegatee = data.draw(st.sampled_from(DELEGATEES), label="delegatee")
        _, result, _ = self._submit(sender, {"type": "delegate", "delegatee": delegatee})
        if result["ok"]:
            assert self.state.bgov_delegates.get(sender) == (None if delegatee == address(0) else delegatee)

    def _votes(self) -> dict[str, int]:
        return {delegatee: cps[-1][1] for delegatee, cps in self.state.vote_checkpoints.items()}

    # ----------------------------------------------------------------------------- oracle and time
    def oracle_update(self, data) -> None:
        self._open_block()
        sender = data.draw(st.sampled_from((ORACLE,) * 9 + (STRANGER,)), label="sender")
        tickers = data.draw(st.sampled_from((TICKERS, TICKERS, TICKERS, (BTC,), (ETH,), (PEPE,), (BTC, PEPE))),
                            label="tickers")
        prices, expected = {}, {}
        for ticker in tickers:
            market = self.state.markets[ticker]
            move = data.draw(st.sampled_from(("small", "small", "large", "up", "down")), label="move")
            current = market.oracle_price
            if move == "small":
                ticks = current * (10_000 + data.draw(st.integers(-100, 100), label="bps")) // 10_000
            elif move == "large":
                ticks = current * (10_000 + data.draw(st.integers(-3_000, 3_000), label="bps")) // 10_000
            else:
                ticks = current * 3 if move == "up" else current // 3
            ticks = max(1, ticks)
            extra_digit = data.draw(st.sampled_from((0, 0, 0, 5, 7, 3)), label="extra digit")
            raw = ticks * 10 + extra_digit  # one decimal more than the grid: rounded half-even
            prices[ticker] = decimal_text(raw, market.price_decimals + 1)
            expected[ticker] = round_half_even(raw, 10)
        _, result, _ = self._submit(sender, {"type": "oracle_update", "prices": prices})
        if result["ok"]:
            for ticker, ticks in expected.items():
                self.submissions[ticker] = (ticks, self.state.time_ms)
                assert self.state.markets[ticker].submissions[ORACLE] == (ticks, self.state.time_ms)

    def oracle_crash(self, data) -> None:
        """A crash: the operator asks for a third of the price (or three times it) of some markets
        for 2-5 consecutive blocks one second apart; the 2% circuit breaker turns it into a slide of
        up to about 10% that outruns the resting orders, so that the book thins out and bankrupt
        accounts go down the loss waterfall (backstop, ADL, socialisation)."""
        tickers = data.draw(st.sampled_from((TICKERS, (BTC,), (ETH,), (PEPE,), (BTC, ETH))), label="crash tickers")
        direction = data.draw(st.sampled_from(("down", "down", "up")), label="crash direction")
        for _ in range(data.draw(st.integers(2, 5), label="crash blocks")):
            self._open_block()
            prices = {}
            for ticker in tickers:
                market = self.state.markets[ticker]
                ticks = max(1, market.oracle_price // 3 if direction == "down" else market.oracle_price * 3)
                prices[ticker] = decimal_text(ticks, market.price_decimals)
                self.submissions[ticker] = (ticks, self.state.time_ms)
            _, result, _ = self._submit(ORACLE, {"type": "oracle_update", "prices": prices})
            assert result["ok"], result
            self.coverage["crash_blocks"] += 1
            self._close_block(1_000)

    def end_block(self, data) -> None:
        advance_ms = data.draw(st.sampled_from(ADVANCES_MS), label="advance")
        if advance_ms is None:
            advance_ms = data.draw(st.integers(0, 120_000), label="advance ms")
        self._close_block(advance_ms)

    def end_block_and_jump_to_next_hour(self, data) -> None:
        """A gap up to the next funding hour (markets go stale: no oracle update for > 60 s)."""
        offset_ms = data.draw(st.integers(-3_000, 3_000), label="offset ms")
        self._close_block(0)
        now = self.state.time_ms
        boundary = (now // HOUR_MS + 1) * HOUR_MS
        self.chain.next_time_ms = max(now, boundary + offset_ms)

    # ----------------------------------------------------------------------------- invariants
    @invariant()
    def voting_power_equals_delegated_balances(self) -> None:
        """The sum of all delegatees' votes equals the delegated supply, never above the total supply;
        each delegatee's votes are the balances delegated to it; checkpoint heights strictly increase."""
        state = self.state
        delegated: Counter = Counter()
        for holder, delegatee in state.bgov_delegates.items():
            delegated[delegatee] += state.bgov.get(holder, 0)
        current = {d: cps[-1][1] for d, cps in state.vote_checkpoints.items() if cps[-1][1]}
        assert current == {d: v for d, v in delegated.items() if v}
        supply = sum(state.bgov.values())
        delegated_supply = state.delegated_supply_checkpoints[-1][1] if state.delegated_supply_checkpoints else 0
        assert sum(current.values()) == delegated_supply <= supply == state.total_supply_checkpoints[-1][1]
        for checkpoints in (*state.vote_checkpoints.values(), state.delegated_supply_checkpoints,
                            state.total_supply_checkpoints):
            heights = [height for height, _ in checkpoints]
            assert heights == sorted(set(heights)) and heights[-1] <= state.height, heights
            assert all(value >= 0 for _, value in checkpoints)

    @invariant()
    def collateral_open_interest_and_books_are_consistent(self) -> None:
        state = self.state
        check_invariants(state)
        held = (sum(sub.balance for sub in state.subaccounts.values()) + sum(state.insurance_funds.values())
                + state.fees_account + state.funding_account)
        assert held == state.total_deposits - state.total_withdrawals + state.seed_insurance
        resting = 0
        for ticker, market in state.markets.items():  # noqa: F402 - the strategy is not used here
            longs = sum(max(position_size(state, key, ticker), 0) for key in state.subaccounts)
            shorts = sum(max(-position_size(state, key, ticker), 0) for key in state.subaccounts)
            assert longs == shorts == market.open_interest <= market.max_open_interest_lots, ticker
            bid, ask = market.book.best_bid(), market.book.best_ask()
            assert bid is None or ask is None or bid < ask, f"{ticker} crossed: {bid} >= {ask}"
            for order in market.book.orders():
                sub = state.subaccounts[(order.owner, order.number)]
                assert sub.orders.get(order.order_id) == ticker
                assert sub.client_ids.get(order.client_id) == order.order_id
                assert 0 < order.remaining <= order.size
                resting += 1
        assert resting == sum(len(sub.orders) for sub in state.subaccounts.values())
        for key, sub in state.subaccounts.items():
            assert get_subaccount_risk(state, sub) == expected_risk(state, sub), key
        assert all(len(sub.orders) + len(sub.conditional_orders) == len(sub.client_ids)
                   for sub in state.subaccounts.values())
        for order_id, conditional in state.conditional_orders.items():
            sub = state.subaccounts[(conditional.terms.owner, conditional.terms.number)]
            assert sub.conditional_orders.get(order_id) == conditional.terms.market
            assert sub.client_ids.get(conditional.terms.client_id) == order_id
            assert all(order_id not in market.book for market in state.markets.values())


class CrashMachine(ExchangeMachine):
    """The same machine with oracle crashes in its mix (``oracle_crash``): every check above, and
    ``check_waterfall`` after every block, under the liquidations, backstop takeovers and unwinds,
    ADL and socialisation that crashes bring (a separate machine so that the plain one keeps its mix
    and its coverage)."""

    @rule(action=st.sampled_from(CRASH_ACTIONS), data=st.data())
    def step(self, action: str, data) -> None:
        ExchangeMachine.steps += 1
        getattr(self, action)(data)


def run_machine(machine_settings: settings, machine: type = ExchangeMachine) -> Counter:
    ExchangeMachine.steps = 0
    ExchangeMachine.coverage = Counter()
    run_state_machine_as_test(machine, settings=machine_settings)
    return Counter(ExchangeMachine.coverage, steps=ExchangeMachine.steps)


# Lower bounds (about a third of what the seeded runs reach) that keep the run from going vacuous.
CI_COVERAGE = {
    "fills": 300, "blocks": 1_000, "funding_ticks": 50, "stale_market_blocks": 200, "oracle_clamped": 200,
    "gtt_expired": 10, "self_trade_cancels": 20, "self_trade_decrements": 10, "maker_margin_cancels": 5,
    "oi_cap_stops": 3, "oi_scaled_imf_blocks": 10, "restricted_fills": 5, "undercollateralized_fills": 10,
    "negative_equity_subaccount_blocks": 10, "liquidation_event:liquidation": 10,
    "liquidation_event:deleveraging": 10, "liquidation_event:withdrawals_paused": 10, "conditional_triggered": 50,
    "conditional_failed": 15,
    "conditional_fills": 5, "conditional_placed": 300,  # fills at the trigger itself (7 in the pinned run)
    "ok:withdraw": 20, "ok:transfer": 20, "ok:deposit": 20, "ok:set_leverage": 20, "ok:set_margin_mode": 5,
    "ok:cancel_order": 5, "ok:cancel_all": 5, "rejected:insufficient_margin": 10, "rejected:market_reduce_only": 5,
    "rejected:insufficient_free_collateral": 5, "rejected:fok_not_filled": 5, "rejected:post_only_would_cross": 5,
    "ok:transfer_bgov": 100, "ok:delegate": 50, "bgov_votes_moved": 50, "rejected:insufficient_bgov": 30,
    "rejected:delegate_unchanged": 5,
}


def test_random_message_sequences_keep_every_invariant():
    coverage = run_machine(CI_SETTINGS)

    print(f"\n{coverage['steps']} steps; coverage: {dict(sorted(coverage.items()))}")
    assert coverage["steps"] >= CI_MIN_STEPS
    assert {key: coverage[key] for key in CI_COVERAGE if coverage[key] < CI_COVERAGE[key]} == {}


CRASH_SETTINGS = settings(CI_SETTINGS, max_examples=60)
CRASH_COVERAGE = {  # about a third of what the seeded run reaches
    "crash_blocks": 200, "liquidation_event:backstop_takeover": 45, "liquidation_event:backstop_unwind": 20,
    "liquidation_event:deleveraging": 35, "negative_equity_subaccount_blocks": 300,
}


def test_oracle_crashes_keep_every_invariant_and_the_loss_waterfall():
    coverage = run_machine(CRASH_SETTINGS, CrashMachine)

    print(f"\n{coverage['steps']} steps; coverage: {dict(sorted(coverage.items()))}")
    assert {key: coverage[key] for key in CRASH_COVERAGE if coverage[key] < CRASH_COVERAGE[key]} == {}


@pytest.mark.slow
def test_random_message_sequences_keep_every_invariant_long_run():
    coverage = run_machine(SLOW_SETTINGS)

    print(f"\n{coverage['steps']} steps; coverage: {dict(sorted(coverage.items()))}")
    assert coverage["steps"] >= 5 * CI_MIN_STEPS


# --------------------------------------------------------------------------------- the edges of the core
EDGE_SETTINGS = settings(max_examples=500, derandomize=True, database=None, deadline=None)


@EDGE_SETTINGS
@given(value=st.integers(-10**30, 10**30), decimals=st.integers(-12, 18))
def test_decimal_strings_round_trip_on_every_grid(value, decimals):
    text = format_decimal(value, decimals)

    assert text == decimal_text(value, decimals)
    if len(text.lstrip("-").split(".")[0]) <= MAX_INTEGER_DIGITS:
        assert parse_decimal(text, decimals, field="x", signed=True) == value
    else:  # beyond the bound of a decimal string (units.MAX_INTEGER_DIGITS): refused, never converted
        with pytest.raises(ProtocolError) as refused:
            parse_decimal(text, decimals, field="x", signed=True)
        assert refused.value.code == "decimal_too_long"


@EDGE_SETTINGS
@given(units=st.integers(1, 10**24), extra_digits=st.integers(0, 8), decimals=st.integers(-6, 12))
def test_oracle_prices_round_half_even_onto_the_grid(units, extra_digits, decimals):
    text = decimal_text(units, extra_digits)  # units / 10**extra_digits
    exact = Fraction(units, 10**extra_digits) * Fraction(10) ** decimals

    assert parse_decimal_rounded(text, decimals, field="price") == round(exact)  # Fraction rounds half to even


@EDGE_SETTINGS
@given(time_ms=st.integers(parse_iso_ms("0001-01-01T00:00:00Z", field="t"),
                           parse_iso_ms("9999-12-31T23:59:59.999Z", field="t")))
def test_iso_times_round_trip(time_ms):
    assert parse_iso_ms(format_iso_ms(time_ms), field="t") == time_ms
