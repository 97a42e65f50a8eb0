"""A proposal as stress input (issue 6, part 2a): its actions on a copy, the worst-case fill of the
headroom it opens, the before/after report, and the issue's proof on a seeded book.

The proof: ``stress.fixtures.generate_book`` (traders over BTC, ETH and SOL with a retail leverage
distribution; SOL-USD, the small-cap market at 10% IMF, capped 5% above its open interest) and the
proposal **"SOL-USD to the mid-cap tier (IMF 10% -> 5%: margin halved) and its open-interest cap to
twice its open interest"** (the same collateral carries twice the positions at half the margin):

* at once (``set_market_params`` with both), with the fund sized for today's book, it **fails** the
  default gate: the worst-case fill puts a second open interest of 20x pairs in SOL;
* with the cap **ramped** (``start_rollout`` of ``max_open_interest`` in 10 steps: the gate evaluates
  the first step, 1/10 of the way) **and a higher insurance fund**, it **passes**; the higher fund
  alone does not make the change at once pass. (Whether the ramp alone passes with today's fund
  depends on the book: it fails with 1,000 accounts and passes with 10,000, where moving SOL-USD out
  of the small-cap tier also moves the manipulation scenarios to another market; it is printed.)
"""
from __future__ import annotations

import time

import pytest

from bastion.core.margin import get_subaccount_risk
from bastion.core.messages import SetMarketParams, StartRollout
from bastion.core.transition import check_invariants
from bastion.core.units import format_decimal
from bastion.stress import build_report, default_scenario_set, extract_inputs, parse_scenario_set, run_stress, run_sweep
from bastion.stress.fixtures import generate_book
from bastion.stress.proposal import PAIR_NOTIONAL_USDC, SYNTHETIC_PREFIX, apply_proposal, plan_proposal
from bastion.stress.scenarios import FORMAT

SOL = "SOL-USD"


def halve_sol_margin(state, *, ramp_steps: int | None = None) -> list:
    """SOL-USD to tier 1 (IMF 5%) and its cap to twice its open interest: at once, or ramped."""
    target = format_decimal(2 * state.markets[SOL].open_interest, state.markets[SOL].size_decimals)
    if ramp_steps is None:
        return [SetMarketParams(market=SOL, liquidity_tier=1, max_open_interest=target)]
    return [SetMarketParams(market=SOL, liquidity_tier=1),
            StartRollout(market=SOL, param="max_open_interest", target=target, steps=ramp_steps, interval_s=86_400,
                         gates={"min_insurance_fund": "100000", "max_bad_debt": "0"})]


# --------------------------------------------------------------------------------------- applying a proposal
def test_proposal_is_applied_to_a_copy_and_its_headroom_filled_at_maximal_leverage():
    state = generate_book(accounts=200, seed=5)
    before_hash, sol = state.state_hash, state.markets[SOL]
    open_interest = sol.open_interest

    plan = plan_proposal(state, halve_sol_margin(state))
    after = plan.state

    assert state.state_hash == before_hash and state.markets[SOL].tier_id == 2          # the input is untouched
    assert after.markets[SOL].tier_id == 1 and after.tiers[1].initial_margin_ppm == 50_000
    assert plan.risk_class == "risk_increasing"
    [fill] = plan.fills
    assert (fill.market, fill.rule, fill.headroom_lots) == (SOL, "cap", open_interest)
    assert after.markets[SOL].open_interest == after.markets[SOL].max_open_interest_lots == 2 * open_interest
    synthetic = [sub for (owner, _), sub in after.subaccounts.items() if owner.startswith(SYNTHETIC_PREFIX)]
    assert len(synthetic) == 2 * fill.pairs
    assert sum(sub.positions[SOL].size for sub in synthetic) == 0                       # long/short pairs
    for sub in synthetic:                                                                # TNC = IMR: 20x
        net_collateral, initial, _ = get_subaccount_risk(after, sub)
        assert net_collateral == initial
    largest = max(abs(sub.positions[SOL].size) for sub in synthetic)
    assert largest * 15 * 10**6 >= PAIR_NOTIONAL_USDC                                     # 0.1 SOL lots at 150
    check_invariants(after)                                                              # collateral conserved
    assert extract_inputs(after).state_hash == after.state_hash


def test_a_rollout_is_stressed_at_its_first_step():
    state = generate_book(accounts=200, seed=5)
    sol = state.markets[SOL]
    cap, target = sol.max_open_interest_lots, 2 * sol.open_interest

    plan = plan_proposal(state, halve_sol_margin(state, ramp_steps=10))

    first_step = cap + (target - cap) // 10
    assert plan.state.markets[SOL].max_open_interest_lots == first_step
    assert plan.fills[0].headroom_lots == first_step - sol.open_interest
    assert [c[0] for c in plan.changes] == ["markets.SOL-USD.tier_id", "markets.SOL-USD.max_open_interest_lots"]
    assert plan.state.rollouts == {}       # the stress input is the parameter's value, not a running rollout


def test_a_risk_reducing_proposal_adds_no_positions():
    state = generate_book(accounts=50, seed=5)

    after = apply_proposal(state, [{"type": "set_market_params", "market": SOL, "liquidity_tier": 3}])  # IMF 20%

    assert after.markets[SOL].open_interest == state.markets[SOL].open_interest
    assert not any(owner.startswith(SYNTHETIC_PREFIX) for owner, _ in after.subaccounts)


def test_report_puts_the_run_without_the_proposal_beside_the_run_with_it():
    state = generate_book(accounts=100, seed=5)
    scenario_set = parse_scenario_set({"format": FORMAT, "name": "t", "version": 1, "seed": 1, "scenarios": [
        {"kind": "shock", "name": "down-20", "move": "-0.2"}, {"kind": "shock", "name": "up-20", "move": "0.2"}]})
    baseline = run_stress(extract_inputs(state), scenario_set)
    plan = plan_proposal(state, halve_sol_margin(state))
    inputs = extract_inputs(plan.state)

    report = build_report(inputs, scenario_set, run_sweep(inputs, scenario_set), baseline=baseline,
                          proposal=plan.document())

    document = report.document
    assert document["baseline"]["report_hash"] == baseline.report_hash
    assert document["baseline"]["summary"] == baseline.document["summary"]
    assert document["proposal"]["worst_case_fills"][0]["market"] == SOL
    assert document["proposal"]["actions"][0]["type"] == "set_market_params"
    assert document["summary"]["es99_loss_usdc"] > document["baseline"]["summary"]["es99_loss_usdc"]
    assert build_report(inputs, scenario_set, run_sweep(inputs, scenario_set), baseline=baseline,
                        proposal=plan.document()).report_hash == report.report_hash


# --------------------------------------------------------------------------------------- the proof
def gate(state):
    """The default gate sweep: its verdict and summary."""
    report = run_stress(extract_inputs(state), default_scenario_set())
    return report.document["verdict"], report.document["summary"]


def prove(accounts: int, fund_today_usdc: int, fund_raised_usdc: int) -> dict[str, tuple[bool, dict]]:
    today = generate_book(accounts=accounts, insurance_usdc=fund_today_usdc)
    raised = generate_book(accounts=accounts, insurance_usdc=fund_raised_usdc)
    runs = {
        "today, no proposal": today,
        "halved at once": apply_proposal(today, halve_sol_margin(today)),
        "halved at once, raised fund": apply_proposal(raised, halve_sol_margin(raised)),
        "ramped, today's fund": apply_proposal(today, halve_sol_margin(today, ramp_steps=10)),
        "ramped, raised fund": apply_proposal(raised, halve_sol_margin(raised, ramp_steps=10)),
    }
    verdicts = {}
    print(f"\n{accounts} accounts; funds {fund_today_usdc:,} / {fund_raised_usdc:,} USDC")
    for label, state in runs.items():
        started = time.perf_counter()
        verdict, summary = gate(state)
        checks = {c["name"]: c["value"] for c in verdict["checks"]}
        # the proof is about the fund's checks; the loss-to-traders check (issue 14) is asserted apart
        fund_checks = all(c["passed"] for c in verdict["checks"] if c["name"] != "loss_to_traders_var99")
        print(f"  {label:<28} {'PASS' if fund_checks else 'FAIL'}  depleted {summary['depleted']:>3}/1000  "
              f"VaR99 {summary['var99_loss_usdc'] // 10**6:>11,}  ES99 {summary['es99_loss_usdc'] // 10**6:>11,}  "
              f"fund {verdict['insurance_funds_total_usdc'] // 10**6:>11,} USDC  "
              f"traders VaR99 {summary['var99_trader_loss_usdc'] // 10**6:>9,} in "
              f"{summary['scenarios_with_trader_loss']} scenarios  ({time.perf_counter() - started:.1f} s)")
        verdicts[label] = (fund_checks, checks)
    return verdicts


def assert_the_proof(verdicts: dict[str, tuple[bool, dict]]) -> None:
    passed = {label: ok for label, (ok, _) in verdicts.items() if label != "ramped, today's fund"}  # printed only
    assert passed == {"today, no proposal": True, "halved at once": False, "halved at once, raised fund": False,
                      "ramped, raised fund": True}
    # beyond the backstop's limits (1M USDC a market) the waterfall deleverages winners: the gate sees it,
    # so with the default limit of 0 on losses to traders even today's book fails
    assert all(checks["loss_to_traders_var99"] > 0 for _, checks in verdicts.values())


def test_halving_a_margin_fails_the_gate_and_passes_ramped_with_a_raised_fund_1k_accounts():
    assert_the_proof(prove(1_000, fund_today_usdc=6_400_000, fund_raised_usdc=8_000_000))


@pytest.mark.slow
def test_halving_a_margin_fails_the_gate_and_passes_ramped_with_a_raised_fund_10k_accounts():
    assert_the_proof(prove(10_000, fund_today_usdc=FUND_10K[0], fund_raised_usdc=FUND_10K[1]))


# Today's book at 100M USDC: ES99 110.4M (VaR99 47.9M) once the fast path models stalled takeovers
# (fast-path/4); halved at once: VaR99 99.5M, ES99 159.9M; ramped: VaR99 47.9M, ES99 108.5M. So 120M
# passes today's book, and 140M fails the halving at once (VaR99 > 70M) and passes it ramped.
# (92M before the backstop's unwinding costs, 100M before the stalled takeovers, issue 14.)
FUND_10K = (120_000_000, 140_000_000)
