"""The stress engines count staked insurance capital and report the stakers' losses (issue 19).

The state: Alice long 1 BTC at 50,000 with a balance of -45,000 (TNC 5,000 USDC), Bob the opposite
short with 150,000; the cross fund holds 40 USDC of the protocol's and Bob stakes 60 (fund 100,
staked 60). The -10% shock's known answer (``tests/test_stress.py``): Alice's sale fills at
44,943.75 and leaves a loss of 56.25 USDC, which the fund (100) pays whole.
"""
from __future__ import annotations

import numpy as np
import pytest
from builders import ALICE, BOB, BTC, Chain, genesis, market
from test_stress import btc_account, scenario_set, shock

from bastion.core.params import InsuranceStakingParams
from bastion.stress import extract_inputs, parse_scenario_set, run_stress, run_sweep
from bastion.stress.engine import _stakers_loss
from bastion.stress.report import check_report_document


def staked_state(loss_mode: str, **staking: str):
    chain = Chain(genesis(markets=[market(BTC)], insurance_funds={"cross": "40"},
                          accounts=[btc_account(ALICE, "1", "-45000"), btc_account(BOB, "-1", "150000")],
                          insurance_staking={"loss_mode": loss_mode, **staking}))
    chain.block([(BOB, {"type": "stake_insurance", "fund": "cross", "amount": "60"})])
    return chain.state


@pytest.mark.parametrize(("loss_mode", "stakers_loss"), [
    ("pro_rata", 33_750_000),     # ceil(56.25 x 60 / 100) = 33.75
    ("first_loss", 56_250_000),   # all 56.25 from the 60 staked
])
def test_a_shock_reports_the_stakers_part_of_the_fund_loss(loss_mode: str, stakers_loss: int):
    inputs = extract_inputs(staked_state(loss_mode))
    assert inputs.staked.tolist() == [60_000_000] and inputs.insurance_funds.tolist() == [100_000_000]
    [result] = run_sweep(inputs, parse_scenario_set(scenario_set(shock("-0.1"))))
    assert result.insurance_payouts_usdc == 56_250_000 and result.bad_debt_usdc == 0
    assert result.stakers_loss_usdc == stakers_loss
    # -9.5%: Alice leaves 193.347 USDC, all of it the fund's fee: the stakers lose nothing
    [calm] = run_sweep(inputs, parse_scenario_set(scenario_set(shock("-0.095"))))
    assert calm.insurance_fees_usdc == 193_347_000 and calm.stakers_loss_usdc == 0


def test_stakers_loss_follows_the_cores_split_event_by_event():
    params = InsuranceStakingParams(staker_fee_share_ppm=500_000)
    # fund 100 (staked 60): +10 fee (stakers +5: 65 of 110); -55 loss: the stakers' part is
    # 55 x 65 / 110 = 32.5 exactly (32.5 left of 55); -55 again: 55 x 32.5 / 55 = 32.5, all they have left
    usdc = 1_000_000
    fees = np.array([10 * usdc, 0, 0], dtype=np.int64)
    losses = np.array([0, 55 * usdc, 55 * usdc], dtype=np.int64)
    assert _stakers_loss(100 * usdc, 60 * usdc, fees, losses, params) == 60 * usdc
    assert _stakers_loss(100 * usdc, 60 * usdc, fees[:2], losses[:2], params) == 60 * usdc - 32_500_000
    first = InsuranceStakingParams(staker_fee_share_ppm=500_000, loss_mode="first_loss")
    assert _stakers_loss(100 * usdc, 60 * usdc, fees[:2], losses[:2], first) == 55 * usdc - 5 * usdc


def test_the_report_carries_staked_capital_the_fund_target_gap_and_stakers_losses():
    inputs = extract_inputs(staked_state("pro_rata", target_floor="500"))
    report = run_stress(inputs, parse_scenario_set(scenario_set(shock("-0.1"), shock("-0.095", name="mild"))))
    document = report.document
    assert document["inputs"]["staked_usdc"] == [["cross", 60_000_000]]
    assert document["inputs"]["fund_targets_usdc"] == [["cross", 500_000_000, 400_000_000]]   # 500 - 100
    assert [s["stakers_loss_usdc"] for s in document["scenarios"]] == [33_750_000, 0]
    assert document["summary"]["worst_stakers_loss_usdc"] == 33_750_000
    assert check_report_document(document).report_hash == report.report_hash


@pytest.mark.parametrize("loss_mode", ["pro_rata", "first_loss"])
def test_the_exact_replay_measures_the_stakers_loss_and_the_fast_path_bounds_it(loss_mode: str):
    from bastion.stress.replay import run_exact

    state = staked_state(loss_mode)
    scenarios = parse_scenario_set(scenario_set(shock("-0.1")))
    [fast] = run_sweep(extract_inputs(state), scenarios)
    [exact] = run_exact(state, scenarios)
    # the state machine's own split, measured as the fall of the staked part: some loss, never more
    # than the fast path's (which fills at the window's worst price)
    assert 0 < exact.stakers_loss_usdc <= fast.stakers_loss_usdc
    assert exact.stakers_loss_usdc <= exact.insurance_payouts_usdc   # never more than the fund paid
