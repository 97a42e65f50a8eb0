"""Hypothesis properties of governance (DESIGN.md section 9, issue 5) over random message sequences.

A small ``RuleBasedStateMachine`` of its own (the trading machine of ``test_properties.py`` keeps
its coverage): five BGOV holders (ALICE and CAROL self-delegated, BOB delegated to CAROL, DAVE and
EVE not delegated), two markets (BTC-USD, ETH-USD) with balanced leveraged positions so that
delistings, margin changes and oracle moves really move collateral, and short governance periods
(``GOVERNANCE``) so that whole lifecycles fit in one example. Its steps interleave
``transfer_bgov``, ``delegate``, ``council_attest``, ``submit_proposal`` (risk-reducing, neutral, risk-increasing,
critical and invalid actions from ``ACTIONS``, among them actions that a later execution makes
invalid or riskier: ``delist_market`` twice, a tier whose caps or margin another proposal
changes, a rebate that a lower taker fee forbids, an insurance share that another proposal
overtakes), ``vote`` (every option, and a bad one), ``queue``, ``execute``, ``cancel_proposal``,
oracle updates, and blocks after small (0..5 s), medium (minutes) and large steps (hours to days,
or exactly to the edges of a queued proposal's execution window: its first instant, one ms before,
its last instant, one ms after).

Checked, from the test's own records (status transitions seen in ``proposal_status`` events, block
times, its own copy of the rules, its own per-block model of votes and supplies):

1. **No timelock bypass**: every transition follows the lifecycle table written out here; a
   proposal executes only from ``queued`` (after ``succeeded``), at a block time within
   ``[queued + timelock of its class, + execution window]``; the queue event announces exactly that
   window; ``expired`` only after it; no queued proposal outlives it.
2. **Never executes an action that failed validation**: before every ``submit_proposal`` and
   ``execute`` the test runs ``governance.compute_proposal_changes`` on the pre-state; if it raises,
   the message must be rejected. An execution applies exactly the validated changes
   (``param_changed`` events, parameter values). A risk-reducing or neutral proposal that is valid,
   not escalated and inside its window must execute. A risk-increasing or critical one executes
   only with the stress gate open in the test's own record of ``council_attest`` messages (2 of
   the 3 council members passing one report hash since the queueing, within the maximum age), and
   is refused inside its window (valid, not escalated) only with ``stress_attestation_missing``
   while the record says the gate is shut; attestations from non-members are refused. Every rejected
   message leaves the full state hash unchanged; after every block the incremental hash equals the
   full recomputation.
3. **Voting power never exceeds delegated supply**: the votes of all delegatees sum to the
   delegated supply, which equals the balances of delegated holders and is at most the total supply;
   each vote's weight is the voter's votes at the snapshot (the minimum with the holding-age
   height for the high-risk classes) in the test's model; each tally (yes + no + abstain + veto)
   equals the test's ballots and is at most the delegated supply at the snapshot, also as read by
   ``transparency.get_proposal_participation``; the outcome (quorum, veto, approval) is recomputed.
4. **Conservation**: collateral (``transition.check_invariants`` and its equation written out) and
   BGOV: balances plus escrowed deposits equal the total supply, which is the genesis supply less
   the deposits of vetoed proposals.

5. **The attacker agent** (issue 16; MALLORY and MALLORY2): borrows DAVE's BGOV and repays it
   inside one block around a submission or a vote, splits its tokens over two addresses, votes
   yes from both in a proposal's last block, and races two executions of one proposal in a block.
   Checked: a submission passes only with the threshold met at the previous block (the test's
   model); every weight is the minimum over the holding window; at most one execution wins;
   nothing executes whose class on the state it executed on is stricter than the class it passed
   under; and the attacker never profits: its BGOV (with escrowed deposits) plus its USDC never
   exceed its genesis holdings plus the BGOV lent to it and not yet returned. The model follows the
   issue 16 rules: yes-only quorum for the risky classes, the fee and the cancel burn in the supply,
   the proposer re-check at queue, execution and cancel, ``max_live_proposals``.
6. **No settlement uses a price moved inside the execution block**: the attacker moves the oracle as
   far as one update may, executes a queued proposal and moves it again, all in one block. Every
   ``settlement_price`` must equal the test's own time-weighted average of the prices set by the
   blocks before the settling one, over the governed window ending at its start (docs/protocol.md,
   "Final settlement"), so neither move can reach it; the run counts settlements after such moves.

The run is deterministic (``derandomize``, no example database) and counts what it reached
(executions per class, expiries, cancels, vetoes, late-quorum extensions, rejections by code); the
test asserts minimums so that it never goes vacuous. The seed is fixed (``@seed``) and the minimums
hold over seeds 1 to 6 (the counts vary by a factor of two or three between seeds).
"""
from __future__ import annotations

import time
from collections import Counter
from fractions import Fraction
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from bastion.core import transparency, votes
from bastion.core.governance import classify
from bastion.core.errors import ProtocolError
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import decode_message
from bastion.core.params import RISK_CLASSES
from bastion.core.transition import apply_tx, check_invariants
from bastion.core.twap import TWAP_SAMPLE_MS
from bastion.core.units import parse_decimal
from builders import (
    ALICE, BOB, BTC, CAROL, DAVE, ETH, ORACLE, STRANGER, Chain, account, address, decimal_text, genesis, market,
    change_rows, subaccount,
)
from test_properties import pick

GOVERNANCE_SETTINGS = settings(max_examples=80, stateful_step_count=200, derandomize=True, database=None,
                               deadline=None, suppress_health_check=list(HealthCheck), print_blob=False)
MIN_STEPS = 12_000

PPM = 1_000_000
BGOV = votes.BGOV
HOUR_MS = 3_600_000
EVE = address(0xE0)                        # holds BGOV, no subaccount
MALLORY, MALLORY2 = address(0x66), address(0x67)   # the attacker agent: two addresses, one with USDC
ATTACKER = (MALLORY, MALLORY2)
HOLDERS = (ALICE, BOB, CAROL, DAVE, EVE)
ZERO = address(0)                          # delegating to it removes the delegation

# The machine's governance: short periods; the test's own copy of the rules it checks against.
GOVERNANCE = {
    "voting_delay_blocks": 1, "proposal_threshold": "10", "min_deposit": "5", "execution_window_s": 6 * 3_600,
    "veto_threshold": "1/3", "late_quorum_extension_blocks": 2, "max_swing_extensions": 2, "max_live_proposals": 8,
    "proposal_fee": "1", "tiers": {
        "risk_reducing": {"quorum": "0.1", "approval_threshold": "0.5", "voting_period_blocks": 5,
                          "timelock_s": 3_600, "min_holding_age_blocks": 0},
        "neutral": {"quorum": "0.1", "approval_threshold": "0.5", "voting_period_blocks": 5,
                    "timelock_s": 2 * 3_600, "min_holding_age_blocks": 0},
        "risk_increasing": {"quorum": "0.2", "approval_threshold": "0.6", "voting_period_blocks": 6,
                            "timelock_s": 6 * 3_600, "min_holding_age_blocks": 1},
        "critical": {"quorum": "0.3", "approval_threshold": "0.667", "voting_period_blocks": 8,
                     "timelock_s": 12 * 3_600, "min_holding_age_blocks": 2},
    }}
TIMELOCK_MS = {name: tier["timelock_s"] * 1_000 for name, tier in GOVERNANCE["tiers"].items()}
QUORUM_PPM = {"risk_reducing": 100_000, "neutral": 100_000, "risk_increasing": 200_000, "critical": 300_000}
APPROVAL_PPM = {"risk_reducing": 500_000, "neutral": 500_000, "risk_increasing": 600_000, "critical": 667_000}
HOLDING_AGE_BLOCKS = {"risk_reducing": 0, "neutral": 0, "risk_increasing": 1, "critical": 2}
YES_QUORUM = ("risk_increasing", "critical")   # their quorum counts yes votes only (issue 16)
FEE = 1 * votes.BGOV                           # GOVERNANCE["proposal_fee"], burned at every submission
MAX_LIVE = GOVERNANCE["max_live_proposals"]
EXECUTION_WINDOW_MS = GOVERNANCE["execution_window_s"] * 1_000
# The lifecycle of docs/protocol.md ("Proposals"), written out: status -> statuses it may go to.
LIFECYCLE = {
    None: {"pending"},
    "pending": {"active", "canceled"},
    "active": {"defeated", "vetoed", "succeeded", "canceled"},
    "succeeded": {"queued", "canceled"},
    "queued": {"executed", "expired", "canceled"},
}
OPEN_STATUSES = ("pending", "active", "succeeded", "queued")

# Proposal actions by name; comments give the class against genesis (the engine computes it from the
# state of the moment: after other executions some become neutral, riskier or invalid).
ACTIONS: dict[str, dict[str, Any]] = {
    # risk reducing
    "raise_insurance_share": {"type": "set_fee_params", "insurance_share": "0.2"},   # riskier once it is 0.3
    "raise_insurance_share_more": {"type": "set_fee_params", "insurance_share": "0.3"},
    "raise_btc_taker_fee": {"type": "set_market_params", "market": BTC, "taker_fee": "0.001"},
    "lower_eth_open_interest_cap": {"type": "set_market_params", "market": ETH, "max_open_interest": "15"},
    "btc_reduce_only": {"type": "set_market_params", "market": BTC, "status": "reduce_only"},
    "raise_large_cap_margin": {"type": "set_liquidity_tier", "tier": 0, "initial_margin": "0.03"},
    "lower_small_cap_upper_cap": {"type": "set_liquidity_tier", "tier": 2, "oi_upper_cap": "30000000"},
    "eth_to_long_tail_tier": {"type": "set_market_params", "market": ETH, "liquidity_tier": 3},
    "longer_withdrawal_pause": {"type": "set_liquidation_params", "withdrawal_pause_blocks": 60},
    "delist_eth": {"type": "delist_market", "market": ETH},                          # invalid once delisted
    "delist_btc": {"type": "delist_market", "market": BTC},
    # neutral (nothing changes at genesis)
    "same_insurance_share": {"type": "set_fee_params", "insurance_share": "0.1"},
    "same_btc_taker_fee": {"type": "set_market_params", "market": BTC, "taker_fee": "0.0005"},
    # risk increasing
    "lower_insurance_share": {"type": "set_fee_params", "insurance_share": "0.05"},
    "btc_active": {"type": "set_market_params", "market": BTC, "status": "active"},  # neutral while active
    "lower_large_cap_margin": {"type": "set_liquidity_tier", "tier": 0, "initial_margin": "0.015"},
    "raise_small_cap_lower_cap": {"type": "set_liquidity_tier", "tier": 2, "oi_lower_cap": "40000000"},
    "lower_long_tail_margin": {"type": "set_liquidity_tier", "tier": 3, "initial_margin": "0.05"},
    "eth_to_mid_cap_tier": {"type": "set_market_params", "market": ETH, "liquidity_tier": 1},
    "eth_maker_rebate": {"type": "set_market_params", "market": ETH, "maker_fee": "-0.0004"},
    "lower_eth_taker_fee": {"type": "set_market_params", "market": ETH, "taker_fee": "0.0003"},
    # critical (governance parameters that leave the timing rules alone)
    "raise_min_deposit": {"type": "set_governance_params", "params": {"min_deposit": "6"}},
    "raise_proposal_threshold": {"type": "set_governance_params", "params": {"proposal_threshold": "20"}},
    # invalid whatever the state
    "unknown_market": {"type": "set_market_params", "market": "DOGE-USD", "taker_fee": "0.001"},
    "unknown_tier": {"type": "set_liquidity_tier", "tier": 99, "initial_margin": "0.1"},
    "share_above_one": {"type": "set_fee_params", "insurance_share": "1.5"},
    "upper_cap_below_lower": {"type": "set_liquidity_tier", "tier": 2, "oi_upper_cap": "10000000"},
    "laxer_critical_tier": {"type": "set_governance_params", "params": {"tiers": {"critical": {"timelock_s": 1}}}},
}
# Pairs submitted together: executing the first makes the second invalid or riskier than voted.
CONFLICTS = (
    ("delist_eth", "delist_eth"),                                   # market_delisted
    ("delist_eth", "lower_eth_open_interest_cap"),                  # market_delisted
    ("lower_small_cap_upper_cap", "raise_small_cap_lower_cap"),     # invalid_tier (lower cap above upper)
    ("eth_maker_rebate", "lower_eth_taker_fee"),                    # invalid_fees (rebate above the taker fee)
    ("raise_insurance_share_more", "raise_insurance_share"),        # 0.3 -> 0.2: risk_class_escalated
    ("lower_long_tail_margin", "eth_to_long_tail_tier"),            # to a 5% tier from 10%: escalated
    ("raise_insurance_share", "same_insurance_share"),              # 0.2 -> 0.1: escalated from neutral
    ("btc_reduce_only", "btc_active"),                              # reduce_only -> active: escalated
    ("btc_reduce_only", "raise_btc_taker_fee"),                     # both valid: both execute
)
# How often each is drawn: mostly risk reducing, so that executions happen whatever the stress gate does.
ACTION_WEIGHTS = {
    "raise_insurance_share": 4, "raise_insurance_share_more": 2, "raise_btc_taker_fee": 3,
    "lower_eth_open_interest_cap": 2, "btc_reduce_only": 2, "raise_large_cap_margin": 2,
    "lower_small_cap_upper_cap": 2, "eth_to_long_tail_tier": 2, "longer_withdrawal_pause": 2, "delist_eth": 3,
    "delist_btc": 1, "same_insurance_share": 2, "same_btc_taker_fee": 1, "lower_insurance_share": 2, "btc_active": 2,
    "lower_large_cap_margin": 1, "raise_small_cap_lower_cap": 2, "lower_long_tail_margin": 2,
    "eth_to_mid_cap_tier": 1, "eth_maker_rebate": 2, "lower_eth_taker_fee": 2, "raise_min_deposit": 2,
    "raise_proposal_threshold": 2, "unknown_market": 1, "unknown_tier": 1, "share_above_one": 1,
    "upper_cap_below_lower": 1, "laxer_critical_tier": 1,
}
ACTION_NAMES = tuple(name for name, weight in ACTION_WEIGHTS.items() for _ in range(weight))
STEP_WEIGHTS = {  # the first is what Hypothesis shrinks toward
    "end_block": 6, "submit_proposal": 3, "submit_conflicting_pair": 3, "vote": 16, "queue": 5, "execute": 8,
    "cancel_proposal": 2, "council_attest": 4,
    "attacker_flash_loan": 1, "attacker_split": 1, "attacker_votes_at_the_bell": 1, "attacker_races_execution": 1,
    "attacker_pumps_the_execution_block": 2,
    "transfer_bgov": 3, "delegate": 3, "oracle_update": 3, "end_block_after_minutes": 2, "end_block_and_jump": 6,
}
STEPS = tuple(step for step, weight in STEP_WEIGHTS.items() for _ in range(weight))
JUMPS = ("eta", "eta", "eta", "eta", "inside", "before_eta", "last", "after_last", "hours", "hours")
PROPOSERS = (ALICE, ALICE, ALICE, CAROL, CAROL, DAVE, EVE)
VOTERS = (ALICE, CAROL, CAROL, DAVE, EVE, BOB, STRANGER)
VOTE_OPTIONS = ("yes",) * 8 + ("no", "no", "abstain", "abstain", "veto", "veto", "maybe")  # "maybe" is refused
DEPOSITS = ("5", "5", "5", "7.5", "4", "500")
# The council (2 of 3) whose pass attestations on one report hash open the stress gate of
# risk_increasing and critical proposals (docs/protocol.md "Council"); STRANGER is refused.
COUNCIL = (address(0xC1), address(0xC2), address(0xC3))
COUNCIL_THRESHOLD = 2
REPORT_HASHES = ("ab" * 32, "cd" * 32)
ATTESTATION_MAX_AGE_MS = 172_800_000   # the default attestation_max_age_s


def machine_genesis() -> dict:
    """BTC-USD and ETH-USD with balanced leveraged positions (ALICE long BTC and short ETH at about
    23x, BOB short BTC, CAROL long ETH, DAVE flat), and the BGOV holders of the module docstring."""
    def sub(usdc: str, *positions: tuple[str, str]) -> dict:
        return subaccount(0, usdc, positions=[{"market": ticker, "size": size} for ticker, size in positions])

    doc = genesis(markets=[market(BTC), market(ETH)], insurance_funds={"cross": "100000"}, governance=GOVERNANCE,
                  accounts=[
                       {**account(ALICE, sub("-80000", (BTC, "2"), (ETH, "-5"))), "bgov": "400", "delegate": ALICE},
                       {**account(BOB, sub("110000", (BTC, "-2"))), "bgov": "300", "delegate": CAROL},
                       {**account(CAROL, sub("-12000", (ETH, "5"))), "bgov": "150", "delegate": CAROL},
                       {**account(DAVE, sub("20000")), "bgov": "100"},
                       {"address": EVE, "bgov": "50"},
                       {**account(MALLORY, sub("1000")), "bgov": "40", "delegate": MALLORY},
                   ])
    doc["council"] = {"members": list(COUNCIL), "threshold": COUNCIL_THRESHOLD,
                      "stress_reports": [{"report_hash": h, "verdict": "pass", "depletion_probability": "0",
                                          "var99_loss": "0", "es99_loss": "0", "insurance_funds_total": "0"}
                                         for h in REPORT_HASHES]}
    return doc


@dataclass
class ProposalRecord:
    """What the test saw of one proposal: never read back from the engine's own fields."""

    risk_class: str
    proposer: str
    deposit: int
    snapshot_height: int
    submitted_height: int
    statuses: list[str] = field(default_factory=lambda: ["pending"])
    ballots: dict[str, tuple[str, int]] = field(default_factory=dict)  # voter -> (option, weight)
    queued_ms: int | None = None
    deposit_state: str = "escrowed"
    attestations: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # member -> (hash, verdict, ms)
    executed_class: str | None = None      # the class its actions had on the state it executed on

    @property
    def status(self) -> str:
        return self.statuses[-1]

    def window(self) -> tuple[int, int]:
        if self.queued_ms is None:
            raise AssertionError("not queued")
        eta = self.queued_ms + TIMELOCK_MS[self.risk_class]
        return eta, eta + EXECUTION_WINDOW_MS

    def gate_passes(self, now_ms: int) -> int:
        """The most valid pass attestations on one report hash at block time ``now_ms``."""
        assert self.queued_ms is not None
        per_hash = Counter(report for report, verdict, at in self.attestations.values()
                           if verdict == "pass" and at >= self.queued_ms and now_ms - at <= ATTESTATION_MAX_AGE_MS)
        return max(per_hash.values(), default=0)

    def tally(self) -> dict[str, int]:
        totals = dict.fromkeys(("yes", "no", "abstain", "veto"), 0)
        for option, weight in self.ballots.values():
            totals[option] += weight
        return totals


def delegated_balances(state) -> Counter:
    """Each delegatee's votes as the sum of the balances delegated to it (never the checkpoints)."""
    delegated: Counter = Counter()
    for holder, delegatee in state.bgov_delegates.items():
        delegated[delegatee] += state.bgov.get(holder, 0)
    return delegated


def read_param(state, name: str) -> Any:
    """A governed parameter by its dotted name (docs/protocol.md "Proposals")."""
    group, _, rest = name.partition(".")
    if group == "markets":
        ticker, attr = rest.rsplit(".", 1)
        return getattr(state.markets[ticker], attr)
    if group == "liquidity_tiers":
        tier_id, attr = rest.split(".")
        return getattr(state.tiers[int(tier_id)], attr)
    if group == "governance" and rest.startswith("tiers."):
        _, tier_name, attr = rest.split(".")
        return getattr(state.governance.tiers[tier_name], attr)
    return getattr(getattr(state, group), rest)


# --------------------------------------------------------------------------------- the machine
# A fixed seed: the run is the same whatever the file's text (``derandomize`` alone seeds from the
# source, so a reworded comment changed the sequence and the coverage counts).
@seed(1)
class GovernanceMachine(RuleBasedStateMachine):
    """One random chain; see the module docstring for what is checked where."""

    steps = 0
    coverage: Counter = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.chain = Chain(machine_genesis())
        self.state = self.chain.state
        self.records: dict[str, ProposalRecord] = {}
        self.full_hash: str | None = None  # the full state hash while it is known to be current
        self.genesis_supply = sum(self.state.bgov.values())
        self.burned = 0
        # the attacker's BGOV and USDC at genesis, and the BGOV it received less what it sent back
        self.attacker_start = self._attacker_holdings()
        self.attacker_received = 0
        # the test's model after every block: delegated votes per delegatee, delegated and total supply
        self.votes_at: dict[int, dict[str, int]] = {}
        self.delegated_at: dict[int, int] = {}
        self.supply_at: dict[int, int] = {}
        self._record_block_model()
        # the test's own oracle history: per market, (block time, price that block's end set), the
        # price holding from that time until the next block's (genesis: the genesis prices)
        self.price_history: dict[str, list[tuple[int, int]]] = {
            ticker: [(self.state.time_ms, entry.oracle_price)] for ticker, entry in self.state.markets.items()}
        self.oracle_moved_in_block = False
        self.settlements: dict[str, int] = {}   # market -> settlement price the test computed

    @rule(step=st.sampled_from(STEPS), data=st.data())
    def step(self, step: str, data) -> None:
        """One random step; a single weighted rule, as in ``test_properties`` (Hypothesis draws
        rules uniformly, and lifecycles need mostly votes and blocks)."""
        GovernanceMachine.steps += 1
        getattr(self, step)(data)

    # ----------------------------------------------------------------------------- plumbing
    def _submit(self, sender: str, msg: dict) -> tuple[dict, list[dict]]:
        """Apply one message inside the open block; a rejection must change nothing at all (the
        full state hash before it is kept while messages are rejected, as it must stay the same)."""
        self._open_block()
        typed = decode_message(msg)
        if self.full_hash is None:
            self.full_hash = compute_state_hash_full(self.state)
        events: list[dict] = []
        result = apply_tx(self.state, sender, typed, events)
        if result["ok"]:
            self.full_hash = None
            self.chain.events.extend(events)
            self.coverage[f"ok:{msg['type']}"] += 1
            self._follow_status_events(events)
        else:
            assert events == [], f"a rejection emitted events: {events}"
            assert compute_state_hash_full(self.state) == self.full_hash, \
                f"rejected {msg} ({result['code']}) changed state"
            self.coverage[f"rejected:{result['code']}"] += 1
        return result, events

    def _open_block(self) -> None:
        if not self.chain.is_open:
            self.chain.open_block()
            self.full_hash = None  # a new height and time

    def _close_block(self, advance_ms: int) -> None:
        self._open_block()
        already = len(self.chain.events)
        block_ms = self.state.time_ms
        state_hash = self.chain.end_block(advance_ms=advance_ms)
        self.full_hash = None
        assert state_hash == self.state.state_hash == compute_state_hash_full(self.state)
        self._follow_status_events(self.chain.events[already:])
        self._check_settlements(self.chain.events[already:], block_ms)
        self._record_block_model()
        for proposal_id, record in self.records.items():
            if record.status == "queued":  # nothing stays queued past its window
                assert self.state.time_ms <= record.window()[1], proposal_id
        self.coverage["blocks"] += 1

    def _record_block_model(self) -> None:
        """The test's own votes, delegated and total supply at the end of block ``state.height``."""
        delegated = delegated_balances(self.state)
        height = self.state.height
        self.votes_at[height] = dict(delegated)
        self.delegated_at[height] = sum(delegated.values())
        self.supply_at[height] = self.genesis_supply - self.burned

    def _check_settlements(self, events: list[dict], block_ms: int) -> None:
        """Property 6: a delisted market settles at the time-weighted average of the oracle prices
        set by the blocks *before* the one that settles it, over the governed window ending at that
        block's start (the test's own integral of ``price_history``), so no price moved inside the
        execution block, before or after the ``execute``, reaches a settlement. Then this block's
        closing prices enter the history."""
        window = self.state.liquidation.settlement_twap_window_ms
        for event in events:
            if event["type"] != "settlement_price":
                continue
            ticker = event["market"]
            history = self.price_history[ticker]
            start = max(history[0][0], (block_ms - window) // TWAP_SAMPLE_MS * TWAP_SAMPLE_MS)
            assert block_ms > start, (block_ms, start)
            area = 0
            for (t0, price), (t1, _) in zip(history, history[1:] + [(block_ms, 0)]):
                area += price * max(0, min(t1, block_ms) - max(t0, start))
            expected = max(1, round(Fraction(area, block_ms - start)))
            assert event["price"] == expected == self.state.markets[ticker].settlement_price, (event, expected)
            assert ticker not in self.settlements, f"{ticker} settled twice"
            self.settlements[ticker] = expected
            self.coverage["settled"] += 1
            self.coverage["settled_after_in_block_move"] += self.oracle_moved_in_block
        for ticker, entry in self.state.markets.items():
            self.price_history[ticker].append((block_ms, entry.oracle_price))
        self.oracle_moved_in_block = False

    def _follow_status_events(self, events: list[dict]) -> None:
        """Every ``proposal_status`` transition, checked against the lifecycle, the timelock and the
        window (property 1) and, for a tally, against the test's own recount (property 3)."""
        now = self.state.time_ms
        for event in events:
            if event["type"] == "proposal_extended":
                self.coverage["late_quorum_extended"] += 1
            if event["type"] != "proposal_status":
                continue
            record = self.records[event["proposal_id"]]
            assert event["from"] == record.status and event["to"] in LIFECYCLE[record.status], (event, record.statuses)
            record.statuses.append(event["to"])
            self.coverage[f"status:{event['to']}"] += 1
            if event["to"] == "queued":
                record.queued_ms = now
                assert (event["executable_from_ms"], event["executable_until_ms"]) == record.window()
            elif event["to"] == "executed":
                eta, last = record.window()
                assert record.statuses[-3:] == ["succeeded", "queued", "executed"], record.statuses
                assert eta <= now <= last, f"executed at {now}, outside its window {eta}..{last}"
                self.coverage[f"executed:{record.risk_class}"] += 1
            elif event["to"] == "expired":
                assert now > record.window()[1]
            elif event["to"] in ("defeated", "vetoed", "succeeded"):
                self._check_tally(record, event)
            elif event["to"] == "canceled" and record.deposit_state == "escrowed":
                # the proposer cancelling after voting started forfeits the deposit (issue 16)
                burn = event["by"] == record.proposer and record.statuses[-2] != "pending"
                record.deposit_state = "burned" if burn else "returned"
                self.burned += record.deposit if burn else 0

    def _check_tally(self, record: ProposalRecord, event: dict) -> None:
        """Quorum on all votes against the supply at the snapshot (met at equality); veto above 1/3
        of yes + no + veto; approval strictly above the class's threshold (docs/protocol.md)."""
        tally = record.tally()
        assert {option: event[option] for option in tally} == tally
        supply = self.supply_at[record.snapshot_height]
        decisive = tally["yes"] + tally["no"] + tally["veto"]
        counted = tally["yes"] if record.risk_class in YES_QUORUM else sum(tally.values())
        if counted * PPM < supply * QUORUM_PPM[record.risk_class]:
            outcome = "defeated"
        elif 3 * tally["veto"] > decisive:
            outcome = "vetoed"
        elif tally["yes"] * PPM > APPROVAL_PPM[record.risk_class] * decisive:
            outcome = "succeeded"
        else:
            outcome = "defeated"
        assert event["to"] == outcome, (event, tally, supply)
        if outcome == "vetoed":
            record.deposit_state = "burned"
            self.burned += record.deposit
        else:
            record.deposit_state = "returned"

    def _pick_proposal(self, data, statuses: tuple[str, ...]) -> str:
        """Mostly a proposal in one of ``statuses``; sometimes any, or an id that does not exist."""
        ids = list(self.records)
        preferred = [pid for pid in ids if self.records[pid].status in statuses]
        choice = data.draw(st.sampled_from(("preferred",) * 12 + ("any", "any", "unknown")), label="which proposal")
        if choice == "preferred" and preferred:
            return pick(data, preferred, "proposal")
        if choice != "unknown" and ids:
            return pick(data, ids, "proposal")
        return "0" * 64

    def _proposer_below(self, record: ProposalRecord) -> bool:
        """The proposer's votes from the block before submission to the snapshot, in the test's own
        per-block model, below the current threshold (only once the snapshot is past)."""
        if self.state.height <= record.snapshot_height:
            return False
        window = range(max(record.submitted_height - 1, 0), record.snapshot_height + 1)
        power = min(self.votes_at[h].get(record.proposer, 0) for h in window)
        return power < self.state.governance.proposal_threshold_bgov

    def _validate(self, actions: tuple, exclude: str | None = None) -> tuple[list, str] | str:
        """The changes validated on the current state and the class by effect with every other
        pending proposal applied (``classify.classify_proposal``, issue 16), or the error code."""
        try:
            return classify.classify_proposal(self.state, actions, exclude)
        except ProtocolError as error:
            return error.code

    # ----------------------------------------------------------------------------- governance steps
    def submit_proposal(self, data) -> None:
        sender = data.draw(st.sampled_from(PROPOSERS), label="proposer")
        names = [data.draw(st.sampled_from(ACTION_NAMES), label="action")
                 for _ in range(data.draw(st.sampled_from((1, 1, 1, 2)), label="actions"))]
        self._submit_actions(sender, names, title=data.draw(st.sampled_from(("p", "p", "q")), label="title"),
                             deposit=data.draw(st.sampled_from(DEPOSITS), label="deposit"))

    def _submit_actions(self, sender: str, names: list[str], *, title: str, deposit: str) -> None:
        """Property 2 at submission: an action that fails validation on the pre-state is refused."""
        msg = {"type": "submit_proposal", "title": title, "description": "", "deposit": deposit,
               "actions": [ACTIONS[name] for name in names]}
        self._open_block()
        validation = self._validate(decode_message(msg).actions)
        live = sum(r.proposer == sender and r.status in OPEN_STATUSES for r in self.records.values())
        result, _ = self._submit(sender, msg)
        if result["ok"]:
            assert live < MAX_LIVE, "a proposer went above max_live_proposals"
            self.burned += FEE
            committed = (FEE + parse_decimal(deposit, 6, field="deposit")
                         if votes.get_delegate(self.state, sender) == sender else 0)
            power = min(self.votes_at[self.state.height - 1].get(sender, 0),
                        votes.get_votes(self.state, sender) + committed) - committed
            assert power >= self.state.governance.proposal_threshold_bgov, "threshold passed with borrowed power"
        if isinstance(validation, str):
            assert not result["ok"], f"a proposal that fails validation ({validation}) was accepted: {names}"
            self.coverage["submit_invalid_refused"] += 1
        if result["ok"]:
            assert result["risk_class"] == validation[1]
            proposal = self.state.proposals[result["proposal_id"]]
            assert proposal.snapshot_height == self.state.height + GOVERNANCE["voting_delay_blocks"]
            self.records[result["proposal_id"]] = ProposalRecord(
                risk_class=result["risk_class"], proposer=sender, deposit=parse_decimal(deposit, 6, field="deposit"),
                snapshot_height=proposal.snapshot_height, submitted_height=self.state.height)
            self.coverage[f"submitted:{result['risk_class']}"] += 1

    def submit_conflicting_pair(self, data) -> None:
        """Two proposals in one block whose actions conflict (``CONFLICTS``), in either order."""
        first, second = data.draw(st.sampled_from(CONFLICTS), label="conflict")
        if data.draw(st.booleans(), label="swap"):
            first, second = second, first
        sender = data.draw(st.sampled_from((ALICE, CAROL)), label="proposer")
        for title, name in (("first", first), ("second", second)):
            self._submit_actions(sender, [name], title=title, deposit="5")

    def vote(self, data) -> None:
        if not self.records:  # nothing to vote on yet: propose instead
            return self.submit_proposal(data)
        proposal_id = self._pick_proposal(data, ("active",))
        delegatees = list(votes.get_voting_powers(self.state))
        if delegatees and data.draw(st.booleans(), label="a delegatee votes"):
            voter = pick(data, delegatees, "voter")
        else:
            voter = data.draw(st.sampled_from(VOTERS), label="voter")
        option = data.draw(st.sampled_from(VOTE_OPTIONS), label="option")
        result, _ = self._submit(voter, {"type": "vote", "proposal_id": proposal_id, "option": option})
        if result["ok"]:
            record = self.records[proposal_id]
            assert record.status == "active" and voter not in record.ballots
            snapshot = record.snapshot_height
            assert snapshot < self.state.height
            age = HOLDING_AGE_BLOCKS[record.risk_class]
            # the minimum over the whole holding window, every block of it (issue 16), not two points
            expected = min(self.votes_at[h].get(voter, 0) for h in range(max(snapshot - age, 0), snapshot + 1))
            assert result["weight"] == expected > 0
            record.ballots[voter] = (option, result["weight"])
            self.coverage[f"vote:{option}"] += 1

    def queue(self, data) -> None:
        if not self.records:
            return self.submit_proposal(data)
        proposal_id = self._pick_proposal(data, ("succeeded",))
        status = self.records[proposal_id].status if proposal_id in self.records else None
        result, _ = self._submit(data.draw(st.sampled_from(HOLDERS + (STRANGER,)), label="sender"),
                                 {"type": "queue", "proposal_id": proposal_id})
        below = status is not None and self._proposer_below(self.records[proposal_id])
        assert result["ok"] == (status == "succeeded" and not below), (status, result)

    def execute(self, data, proposal_id: str | None = None) -> None:
        """Property 2: the test validates the actions on the pre-state itself. Half the time the
        oracle moves in the same block just before and just after (property 6's attacker)."""
        if not self.records:
            return self.submit_proposal(data)
        if proposal_id is None:
            proposal_id = self._pick_proposal(data, ("queued",))
        sender = data.draw(st.sampled_from(HOLDERS + (STRANGER,)), label="sender")
        self._open_block()
        pump = data.draw(st.booleans(), label="oracle moves around the execute")
        if pump:
            self.oracle_update(data)
        record = self.records.get(proposal_id)
        proposal = self.state.proposals.get(proposal_id)
        validation = (self._validate(proposal.actions, proposal.proposal_id) if proposal is not None
                      else "unknown_proposal")
        was_queued = record is not None and record.status == "queued"
        now = self.state.time_ms
        result, events = self._submit(sender, {"type": "execute", "proposal_id": proposal_id})
        if pump:
            self.oracle_update(data)
        if isinstance(validation, str):
            assert not result["ok"], f"executed a proposal whose actions fail validation ({validation})"
            if was_queued:
                self.coverage["execute_refused_revalidation"] += 1
                self.coverage[f"execute_refused_invalid:{validation}"] += 1
            return
        changes, risk_class = validation
        escalated = RISK_CLASSES.index(risk_class) > RISK_CLASSES.index(record.risk_class) if record else False
        in_window = was_queued and record.window()[0] <= now <= record.window()[1]
        gated = record is not None and record.risk_class in ("risk_increasing", "critical")
        if result["ok"]:
            assert was_queued and in_window and not escalated
            record.executed_class = risk_class
            if gated:  # the stress gate: k members passed one report hash since the queueing, recently enough
                assert record.gate_passes(now) >= COUNCIL_THRESHOLD, record.attestations
                self.coverage[f"executed_through_gate:{record.risk_class}"] += 1
            changed = [(e["name"], e["old"], e["value"]) for e in events if e["type"] == "param_changed"]
            rows = change_rows(changes)
            assert changed == [(name, old, new) for name, old, new, _ in rows if old != new]
            assert all(e["proposal_id"] == proposal_id for e in events if e["type"] == "param_changed")
            final = {name: new for name, _, new, _ in rows}
            assert {name: read_param(self.state, name) for name in final} == final
            return
        if was_queued:
            code = result["code"]
            eta, last = record.window()
            if code == "proposer_below_threshold":      # the re-check at execution (a raised threshold)
                assert eta <= now <= last and self._proposer_below(record)
                self.coverage["execute_refused_proposer_below"] += 1
                return
            assert code != "timelock_not_elapsed" or now < eta, (code, now, eta)
            assert code != "proposal_expired" or now > last, (code, now, last)
            if record.risk_class in ("risk_reducing", "neutral"):  # no stress gate: only time and validity
                assert (code == "timelock_not_elapsed") == (now < eta) and (code == "proposal_expired") == (now > last)
                assert not in_window or escalated, f"a valid {record.risk_class} proposal in its window was refused"
            elif in_window and not escalated:  # gated: refused only for want of attestations
                assert code == "stress_attestation_missing" and record.gate_passes(now) < COUNCIL_THRESHOLD, \
                    (code, record.attestations)
            self.coverage[f"execute_refused_queued:{code}"] += 1
            self.coverage["execute_refused_revalidation"] += in_window and escalated

    def council_attest(self, data) -> None:
        """A council member (or a stranger, refused) attests a proposal; only queued ones take it."""
        if not self.records:
            return self.submit_proposal(data)
        proposal_id = self._pick_proposal(data, ("queued",))
        record = self.records.get(proposal_id)
        member = data.draw(st.sampled_from(COUNCIL + COUNCIL + (STRANGER,)), label="member")
        report = data.draw(st.sampled_from(REPORT_HASHES[:1] * 3 + REPORT_HASHES[1:]), label="report")
        verdict = data.draw(st.sampled_from(("pass", "pass", "pass", "fail")), label="verdict")
        self._open_block()
        result, _ = self._submit(member, {"type": "council_attest", "proposal_id": proposal_id,
                                          "report_hash": report, "verdict": verdict})
        allowed = member in COUNCIL and record is not None and record.status == "queued"
        assert result["ok"] == allowed, (member, record and record.status, result)
        if allowed:
            record.attestations[member] = (report, verdict, self.state.time_ms)

    def cancel_proposal(self, data) -> None:
        proposal_id = self._pick_proposal(data, OPEN_STATUSES)
        record = self.records.get(proposal_id)
        sender = data.draw(st.sampled_from(((record.proposer,) * 3 if record else ()) + HOLDERS), label="sender")
        self._open_block()  # the re-check reads the height of the block the cancel lands in
        allowed = False
        if record is not None and record.status in OPEN_STATUSES:
            allowed = sender == record.proposer or (record.status != "pending" and self._proposer_below(record))
        result, _ = self._submit(sender, {"type": "cancel_proposal", "proposal_id": proposal_id})
        assert result["ok"] == allowed, (record and record.statuses, sender, result)

    # ----------------------------------------------------------------------------- the attacker agent
    def _attacker_holdings(self) -> int:
        """The attacker's BGOV (balances and escrowed deposits) plus its USDC, in units of each."""
        bgov = sum(votes.get_balance(self.state, a) for a in ATTACKER)
        escrow = sum(p.deposit_bgov for p in self.state.proposals.values()
                     if p.proposer in ATTACKER and p.deposit_state == "escrowed")
        usdc = sum(sub.balance for (owner, _), sub in self.state.subaccounts.items() if owner in ATTACKER)
        return bgov + escrow + usdc

    def _attacker_transfer(self, sender: str, to: str, amount: int) -> dict:
        result, _ = self._submit(sender, {"type": "transfer_bgov", "to": to, "amount": decimal_text(amount, 6)})
        if result["ok"] and (sender in ATTACKER) != (to in ATTACKER):
            self.attacker_received += amount if to in ATTACKER else -amount
        return result

    def attacker_flash_loan(self, data) -> None:
        """Borrow DAVE's BGOV, propose or vote, and repay it, all inside one block (Beanstalk): the
        generic checks assert that the threshold and the weights ignore the loan."""
        self._open_block()
        lent = votes.get_balance(self.state, DAVE)
        borrower = data.draw(st.sampled_from(ATTACKER), label="borrower")
        if lent == 0 or not self._attacker_transfer(DAVE, borrower, lent)["ok"]:
            return
        if self.records and data.draw(st.booleans(), label="vote rather than propose"):
            proposal_id = self._pick_proposal(data, ("active",))
            record = self.records.get(proposal_id)
            result, _ = self._submit(borrower, {"type": "vote", "proposal_id": proposal_id, "option": "yes"})
            if result["ok"]:
                assert record is not None and borrower not in record.ballots
                window = range(max(record.snapshot_height - HOLDING_AGE_BLOCKS[record.risk_class], 0),
                               record.snapshot_height + 1)
                assert result["weight"] == min(self.votes_at[h].get(borrower, 0) for h in window)
                record.ballots[borrower] = ("yes", result["weight"])
                self.coverage["vote:yes"] += 1
        else:
            names = [data.draw(st.sampled_from(ACTION_NAMES), label="action")]
            self._submit_actions(borrower, names, title="flash", deposit="5")
        assert self._attacker_transfer(borrower, DAVE, min(lent, votes.get_balance(self.state, borrower)))["ok"]
        self.coverage["attacker_flash_loan"] += 1

    def attacker_split(self, data) -> None:
        """Move BGOV between the attacker's addresses and point the second one's votes somewhere."""
        balance = votes.get_balance(self.state, MALLORY)
        if balance:
            self._attacker_transfer(MALLORY, MALLORY2, max(balance // 2, 1))
        target = data.draw(st.sampled_from(ATTACKER), label="delegatee")
        if votes.get_delegate(self.state, MALLORY2) != target:
            self._submit(MALLORY2, {"type": "delegate", "delegatee": target})

    def attacker_votes_at_the_bell(self, data) -> None:
        """Yes from both addresses on an active proposal in its last block (the swing)."""
        self._open_block()
        last = [pid for pid, r in self.records.items()
                if r.status == "active" and self.state.proposals[pid].deadline_height == self.state.height]
        if not last:
            return
        proposal_id = pick(data, last, "proposal")
        record = self.records[proposal_id]
        for voter in ATTACKER:
            result, events = self._submit(voter, {"type": "vote", "proposal_id": proposal_id, "option": "yes"})
            if result["ok"]:
                record.ballots[voter] = ("yes", result["weight"])
                self.coverage["attacker_vote_at_the_bell"] += 1
                self.coverage["swing_extended"] += any(e.get("reason") == "outcome_flip" for e in events)

    def attacker_races_execution(self, data) -> None:
        """Both attacker addresses execute the same queued proposal in one block: at most one wins."""
        queued = [pid for pid, r in self.records.items() if r.status == "queued"]
        if not queued:
            return
        proposal_id = pick(data, queued, "proposal")
        self._open_block()
        before = len([r for r in self.records.values() if r.status == "executed"])
        for sender in ATTACKER:
            self._submit(sender, {"type": "execute", "proposal_id": proposal_id})
        assert len([r for r in self.records.values() if r.status == "executed"]) <= before + 1
        self.coverage["attacker_race"] += 1

    # ----------------------------------------------------------------------------- BGOV, oracle and time
    def transfer_bgov(self, data) -> None:
        sender = data.draw(st.sampled_from(HOLDERS), label="sender")
        to = data.draw(st.sampled_from(HOLDERS), label="to")
        balance = votes.get_balance(self.state, sender)
        amount = data.draw(st.sampled_from((1, 5 * BGOV, max(balance // 2, 1), balance, balance + 1)), label="bgov")
        result, _ = self._submit(sender, {"type": "transfer_bgov", "to": to, "amount": decimal_text(amount, 6)})
        assert result["ok"] == (0 < amount <= balance and to != sender), result

    def delegate(self, data) -> None:
        sender = data.draw(st.sampled_from(HOLDERS), label="sender")
        delegatee = data.draw(st.sampled_from(HOLDERS + (ZERO,)), label="delegatee")
        result, _ = self._submit(sender, {"type": "delegate", "delegatee": delegatee})
        if result["ok"]:
            assert votes.get_delegate(self.state, sender) == (None if delegatee == ZERO else delegatee)

    def oracle_update(self, data) -> None:
        """Fresh prices (markets go stale after 60 s; a delisted market settles only on a fresh price)."""
        self._open_block()
        prices = {}
        for ticker, entry in self.state.markets.items():
            bps = data.draw(st.sampled_from((0, 50, -50, 200, -200, 500, -500)), label="move bps")
            ticks = max(1, entry.oracle_price * (10_000 + bps) // 10_000)
            prices[ticker] = decimal_text(ticks, entry.price_decimals)
        result, _ = self._submit(ORACLE, {"type": "oracle_update", "prices": prices})
        assert result["ok"], result
        self.oracle_moved_in_block = True

    def attacker_pumps_the_execution_block(self, data) -> None:
        """Move the oracle as far as one update may, execute a queued proposal (a delisting settles
        at this block's end), and move it again, all in one block: property 6 checks that neither
        move reaches the settlement price."""
        queued = [pid for pid, r in self.records.items() if r.status == "queued"]
        if not queued:
            return
        self._open_block()
        now = self.state.time_ms
        # a queued delisting executable in this block if there is one (then a settlement follows)
        delistings = [pid for pid in queued if self.records[pid].window()[0] <= now <= self.records[pid].window()[1]
                      and any(type(action).__name__ == "DelistMarket" for action in self.state.proposals[pid].actions)]
        self.oracle_update(data)
        self.execute(data, pick(data, delistings, "delisting") if delistings else None)
        self.coverage["attacker_pump"] += 1

    def end_block(self, data) -> None:
        self._close_block(data.draw(st.sampled_from((1_000, 0, 2_000, 5_000)), label="advance ms"))

    def end_block_after_minutes(self, data) -> None:
        self._close_block(data.draw(st.integers(60_000, 30 * 60_000), label="advance ms"))

    def end_block_and_jump(self, data) -> None:
        """A gap of hours to days, or to an edge of a queued proposal's execution window."""
        kind = data.draw(st.sampled_from(JUMPS), label="jump")
        self._close_block(0)
        now = self.state.time_ms
        windows = [record.window() for record in self.records.values() if record.status == "queued"]
        if windows and kind != "hours":
            eta, last = pick(data, windows, "window")
            target = {"eta": eta, "inside": (eta + last) // 2, "before_eta": eta - 1, "last": last,
                      "after_last": last + 1}[kind]
        else:
            target = now + data.draw(st.sampled_from((1, 2, 6, 13, 30)), label="hours") * HOUR_MS
        self.chain.next_time_ms = max(now, target)

    # ----------------------------------------------------------------------------- invariants
    @invariant()
    def voting_power_never_exceeds_delegated_supply(self) -> None:
        """Property 3 over the ledger now, and per proposal at its snapshot."""
        state = self.state
        delegated = delegated_balances(state)
        powers = votes.get_voting_powers(state)
        assert powers == {d: v for d, v in sorted(delegated.items()) if v}
        assert sum(powers.values()) == votes.get_delegated_supply(state) <= votes.get_total_supply(state)
        for proposal_id, record in self.records.items():
            proposal = state.proposals[proposal_id]
            tally = record.tally()
            assert (proposal.yes, proposal.no, proposal.abstain, proposal.veto) == tuple(tally.values())
            if record.snapshot_height in self.delegated_at:
                assert sum(tally.values()) <= self.delegated_at[record.snapshot_height]
            if not self.chain.is_open and record.snapshot_height <= state.height:  # a committed snapshot
                seen = transparency.get_proposal_participation(state, proposal_id)
                assert seen.delegated_supply == self.delegated_at[record.snapshot_height]
                assert seen.total_supply == self.supply_at[record.snapshot_height]
                assert seen.votes_cast == sum(tally.values()) <= seen.voted_power <= seen.delegated_supply
                assert seen.delegates_voted == len(record.ballots)

    @invariant()
    def nothing_executes_stricter_than_it_was_voted(self) -> None:
        """Classification at execution (today's ``compute_proposal_changes`` on the pre-state) is
        never stricter than the class the proposal passed under."""
        for record in self.records.values():
            if record.executed_class is not None:
                assert RISK_CLASSES.index(record.executed_class) <= RISK_CLASSES.index(record.risk_class)

    @invariant()
    def the_attacker_never_profits(self) -> None:
        """The attacker's BGOV (with escrowed deposits) plus USDC never exceeds what it started with
        plus the BGOV it was lent and has not returned."""
        assert self._attacker_holdings() <= self.attacker_start + self.attacker_received

    @invariant()
    def collateral_and_bgov_are_conserved(self) -> None:
        """Property 4."""
        state = self.state
        check_invariants(state)
        held = (sum(sub.balance for sub in state.subaccounts.values()) + sum(state.insurance_funds.values())
                + state.fees_account + state.funding_account)
        assert held == state.total_deposits - state.total_withdrawals + state.seed_insurance
        escrowed = sum(r.deposit for r in self.records.values() if r.deposit_state == "escrowed")
        assert {pid: state.proposals[pid].deposit_state for pid in self.records} == {
            pid: r.deposit_state for pid, r in self.records.items()}
        supply = votes.get_total_supply(state)
        assert sum(state.bgov.values()) + escrowed == supply == self.genesis_supply - self.burned


def run_machine(machine_settings: settings) -> Counter:
    GovernanceMachine.steps = 0
    GovernanceMachine.coverage = Counter()
    run_state_machine_as_test(GovernanceMachine, settings=machine_settings)
    return Counter(GovernanceMachine.coverage, steps=GovernanceMachine.steps)


# Lower bounds (about a third of what the seeded run reaches) that keep the run from going vacuous.
COVERAGE_MINIMUMS = {
    "blocks": 2_000, "submitted:risk_reducing": 250, "submitted:neutral": 20, "submitted:risk_increasing": 100,
    "submitted:critical": 3, "submit_invalid_refused": 60, "vote:yes": 200, "vote:no": 25, "vote:abstain": 40,
    "vote:veto": 50, "rejected:invalid_vote_option": 50, "rejected:no_voting_power": 200, "late_quorum_extended": 60,
    "status:succeeded": 130, "status:defeated": 190, "status:vetoed": 15, "status:queued": 90,
    "executed:risk_reducing": 25, "status:expired": 20, "status:canceled": 30,
    "rejected:proposer_above_threshold": 70, "execute_refused_queued:timelock_not_elapsed": 90,
    "execute_refused_queued:proposal_expired": 4,
    "execute_refused_revalidation": 0,   # seldom reached since issue 16; governance_ref_oz_revalidated_* covers it
    "ok:council_attest": 50, "rejected:not_council_member": 30,
    "executed_through_gate:risk_increasing": 0,   # seldom now (yes-only quorum); golden governance_council_*
    "attacker_flash_loan": 60, "attacker_vote_at_the_bell": 10, "attacker_race": 10,
    "execute_refused_queued:stress_attestation_missing": 2,
    "settled": 1, "settled_after_in_block_move": 1,   # property 6 (14 and 7 in the seeded run)
}


def test_random_governance_sequences_keep_every_property():
    started = time.monotonic()
    coverage = run_machine(GOVERNANCE_SETTINGS)

    print(f"\n{coverage['steps']} steps in {time.monotonic() - started:.1f} s; "
          f"coverage: {dict(sorted(coverage.items()))}")
    assert coverage["steps"] >= MIN_STEPS
    assert {key: coverage[key] for key in COVERAGE_MINIMUMS if coverage[key] < COVERAGE_MINIMUMS[key]} == {}
