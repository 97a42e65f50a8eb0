"""Insurance-fund staking and replenishment (``bastion.core.staking``, issue 19).

The golden scenarios ``tests/scenarios/staking_*.json`` walk the main paths with hand-worked numbers
(a stake, fee accrual, a pro-rata loss, a cooldown unstake at the reduced price, replenishment,
bad input). Here: the first-loss mode and the wipe-out, governance transfers that may not touch the
staked part, the merge of an isolated fund with stakers, the governance action, snapshots, and
properties over random sequences (collateral conserved, nobody withdraws more than its part, the
share price never moves on a stake or an unstake alone).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings, strategies as st

from bastion.core import governance, staking
from bastion.core.enums import FundFlow
from bastion.core.errors import ProtocolError
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import decode_action
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.state import CROSS_POOL, ParamSource
from bastion.core.transition import check_invariants
from builders import ALICE, BOB, CAROL, DAVE, PEPE, Chain, genesis

SOURCE = ParamSource("proposal", "p-staking", 1)
USDC = 1_000_000


def stake(fund: str = CROSS_POOL, amount: str = "1000", subaccount: int = 0) -> dict:
    return {"type": "stake_insurance", "fund": fund, "amount": amount, "subaccount": subaccount}


def request(fund: str = CROSS_POOL, shares: str = "1000", subaccount: int = 0) -> dict:
    return {"type": "request_unstake", "fund": fund, "shares": shares, "subaccount": subaccount}


def complete(request_id: int) -> dict:
    return {"type": "complete_unstake", "request": request_id}


def staking_chain(**params: Any) -> Chain:
    """The builders' genesis (cross fund 100,000, PEPE fund 10,000; owners with 100,000 cross) with
    an insurance_staking section."""
    return Chain(genesis(insurance_staking={"cooldown_ms": 60_000, **params}))


def flow(state: Any, pool: str, delta: int, kind: FundFlow, events: list[dict] | None = None) -> int:
    """``staking.move_fund`` standing in for a liquidation or a fee: the money comes from (or goes to)
    outside the accounts here, so the collateral books (``seed_insurance``) move with it."""
    state.seed_insurance += delta
    return staking.move_fund(state, pool, delta, kind, events)


def enact(chain: Chain, *actions_json: dict) -> list[dict]:
    """Validate and apply governance actions as ``execute`` does, in an open block; check the hash."""
    chain.open_block()
    typed = tuple(decode_action(a, i) for i, a in enumerate(actions_json))
    changes, _ = governance.compute_proposal_changes(chain.state, typed)
    for change in changes:
        governance.apply_effect(chain.state, change, SOURCE, chain.events)
    events = chain.events
    assert chain.end_block() == chain.full_hash()
    check_invariants(chain.state)
    return events


# ------------------------------------------------------------------------------------ loss modes
def test_first_loss_takes_the_staked_part_first_then_wipes_out_shares_and_requests():
    chain = staking_chain(loss_mode="first_loss")
    assert chain.submit(ALICE, stake(amount="600"))["ok"]
    assert chain.submit(BOB, stake(amount="400"))["ok"]
    assert chain.submit(BOB, request(shares="100"))["request_id"] == 1
    chain.end_block()
    state = chain.state
    assert state.insurance_funds[CROSS_POOL] == 101_000 * USDC
    events: list[dict] = []
    # a 700 USDC loss: first-loss stakers take all of it (1,000 staked)
    assert flow(state, CROSS_POOL, -700 * USDC, FundFlow.RESULT, events) == -700 * USDC
    assert state.stake_pools[CROSS_POOL].staked == 300 * USDC
    assert staking.protocol_part(state, CROSS_POOL) == 100_000 * USDC
    assert events[-1]["type"] == "insurance_stakers_loss" and events[-1]["stakers_loss"] == 700 * USDC
    # a 500 USDC loss: 300 from the stakers (all they have), 200 from the protocol-owned part; shares gone
    assert flow(state, CROSS_POOL, -500 * USDC, FundFlow.RESULT, events) == -300 * USDC
    assert state.insurance_funds[CROSS_POOL] == 99_800 * USDC
    assert staking.protocol_part(state, CROSS_POOL) == 99_800 * USDC
    assert events[-1] == {"type": "insurance_stakes_wiped_out", "pool": CROSS_POOL, "shares": 1000 * USDC,
                          "holders": 2, "requests": [1]}
    assert state.stake_pools[CROSS_POOL].shares == 0 and not state.stakes and not state.unstake_requests
    check_invariants(state)
    # the pool starts again at 1:1 for the next staker
    assert chain.submit(CAROL, stake(amount="50"))["shares"] == 50 * USDC


def test_pro_rata_loss_rounds_the_stakers_part_up_and_never_beyond_the_staked_part():
    chain = staking_chain()
    chain.submit(ALICE, stake(amount="1"))
    chain.end_block()
    state = chain.state
    # fund 100,001; a loss of 3 micro-USDC: the stakers' exact part is 3 x 1/100,001 -> rounded up to 1
    assert flow(state, CROSS_POOL, -3, FundFlow.FEE) == -1
    assert state.stake_pools[CROSS_POOL].staked == USDC - 1
    # a loss of the whole fund takes the whole staked part and no more
    fund = state.insurance_funds[CROSS_POOL]
    assert flow(state, CROSS_POOL, -fund, FundFlow.RESULT) == -(USDC - 1)
    assert state.insurance_funds[CROSS_POOL] == 0 and state.stake_pools[CROSS_POOL].shares == 0
    check_invariants(state)


def test_gains_fees_and_protocol_flows_split_as_documented():
    chain = staking_chain(staker_fee_share="0.25")
    chain.submit(ALICE, stake(amount="100000"))   # staked 100,000 of a fund of 200,000: half
    chain.end_block()
    state = chain.state
    assert flow(state, CROSS_POOL, 10 * USDC + 3, FundFlow.FEE) == 2_500_000   # floor(0.25 x fee)
    # a backstop gain: pro rata on the fund before it (100,002.5 of 200,010.000003), rounded down
    staked, fund = state.stake_pools[CROSS_POOL].staked, state.insurance_funds[CROSS_POOL]
    assert flow(state, CROSS_POOL, 7 * USDC, FundFlow.RESULT) == 7 * USDC * staked // fund
    before = state.stake_pools[CROSS_POOL].staked
    assert flow(state, CROSS_POOL, 5 * USDC, FundFlow.PROTOCOL) == 0
    assert state.stake_pools[CROSS_POOL].staked == before
    check_invariants(state)


# ------------------------------------------------------------------------------------ governance
def test_an_insurance_transfer_can_take_only_the_protocol_owned_part():
    chain = staking_chain()
    chain.submit(ALICE, stake(fund=PEPE, amount="5000"))   # PEPE fund 10,000 protocol + 5,000 staked
    chain.end_block()
    move = {"type": "insurance_transfer", "from_pool": PEPE, "to_pool": CROSS_POOL, "amount": "10000.000001"}
    with pytest.raises(ProtocolError) as error:
        governance.compute_proposal_changes(chain.state, (decode_action(move, 0),))
    assert error.value.code == "insufficient_insurance_fund" and error.value.fields["available"] == 10_000 * USDC
    enact(chain, {**move, "amount": "10000"})
    assert chain.state.insurance_funds[PEPE] == 5_000 * USDC == chain.state.stake_pools[PEPE].staked
    assert chain.state.insurance_funds[CROSS_POOL] == 110_000 * USDC


def test_merging_an_isolated_fund_converts_its_shares_at_their_value():
    chain = staking_chain()
    chain.submit(ALICE, stake(amount="3000"))                       # cross: 3,000 shares for 3,000
    chain.submit(BOB, stake(fund=PEPE, amount="1000"))              # PEPE: 1,000 shares for 1,000
    chain.submit(CAROL, stake(fund=PEPE, amount="500"))
    chain.submit(CAROL, request(fund=PEPE, shares="200"))
    chain.end_block()
    state = chain.state
    flow(state, CROSS_POOL, 3 * USDC, FundFlow.FEE)   # cross staked 3,001.5: price 1.0005
    flow(state, PEPE, -1_100 * USDC, FundFlow.RESULT)  # PEPE: 11,500 -> 10,400; stakers lose 143.478261
    pepe = state.stake_pools[PEPE]
    pepe_staked = pepe.staked
    assert pepe_staked == 1_500 * USDC - 143_478_261
    value_bob = 1_000 * USDC * pepe_staked // pepe.shares
    value_carol = 300 * USDC * pepe_staked // pepe.shares
    value_request = 200 * USDC * pepe_staked // pepe.shares
    cross_before = state.stake_pools[CROSS_POOL]
    price = Fraction(cross_before.shares, cross_before.staked)
    enact(chain, {"type": "upgrade_isolated_to_cross", "market": PEPE})
    assert PEPE not in state.insurance_funds and PEPE not in state.stake_pools
    cross = state.stake_pools[CROSS_POOL]
    assert state.stakes[(CROSS_POOL, BOB)] == int(value_bob * price)
    assert state.stakes[(CROSS_POOL, CAROL)] == int(value_carol * price)
    assert state.unstake_requests[1].pool == CROSS_POOL
    assert state.unstake_requests[1].shares == int(value_request * price)
    assert cross.staked == 3_001_500_000 + pepe_staked
    # a converted holding is worth at most what it was worth in its own pool (less than a share unit
    # less); the rounding dust stays with the cross stakers, whose holdings never lose value
    for owner, before in ((BOB, value_bob), (CAROL, value_carol)):
        assert before - 2 <= staking.share_value(cross, state.stakes[(CROSS_POOL, owner)]) <= before
    assert staking.share_value(cross, state.stakes[(CROSS_POOL, ALICE)]) >= 3_001_500_000


def test_set_insurance_staking_params_validates_classifies_and_applies():
    chain = staking_chain()
    action = {"type": "set_insurance_staking_params", "cooldown_ms": 30_000, "staker_fee_share": "0.6",
              "loss_mode": "first_loss", "min_stake": "5", "target_oi_share": "0.02", "target_floor": "1000",
              "replenish_share": "0.3"}
    changes, risk = governance.compute_proposal_changes(chain.state, (decode_action(action, 0),))
    assert [(c.name, c.old, c.new, c.risk) for c in changes] == [
        ("insurance_staking.cooldown_ms", 60_000, 30_000, "risk_increasing"),
        ("insurance_staking.staker_fee_share_ppm", 500_000, 600_000, "neutral"),
        ("insurance_staking.loss_mode", "pro_rata", "first_loss", "neutral"),
        ("insurance_staking.min_stake_usdc", USDC, 5 * USDC, "risk_reducing"),
        ("insurance_staking.target_oi_ppm", 0, 20_000, "risk_reducing"),
        ("insurance_staking.target_floor_usdc", 0, 1_000 * USDC, "risk_reducing"),
        ("insurance_staking.replenish_share_ppm", 0, 300_000, "risk_reducing")]
    assert risk == "risk_increasing"
    enact(chain, action)
    params = chain.state.insurance_staking
    assert (params.cooldown_ms, params.loss_mode, params.target_floor_usdc) == (30_000, "first_loss", 1_000 * USDC)
    assert chain.state.param_history[-1].name == "insurance_staking.replenish_share_ppm"


@pytest.mark.parametrize(("field", "value", "code"), [
    ("loss_mode", "last_loss", "invalid_field"), ("staker_fee_share", "1.5", "invalid_field"),
    ("cooldown_ms", 91 * 86_400_000, "invalid_field"), ("min_stake", "0", "non_positive_amount"),
    ("target_floor", "-1", "negative_value"),
])
def test_set_insurance_staking_params_refuses_bad_values(field: str, value: Any, code: str):
    chain = staking_chain()
    with pytest.raises(ProtocolError) as error:
        governance.compute_proposal_changes(chain.state, (decode_action(
            {"type": "set_insurance_staking_params", field: value}, 0),))
    assert error.value.code == code


def test_a_stake_refuses_to_mint_nothing_when_a_share_is_worth_more_than_the_stake():
    chain = staking_chain(min_stake="0.000001")
    chain.submit(ALICE, stake(amount="0.000001"))          # 1 share unit for 1 micro-USDC
    chain.end_block()
    flow(chain.state, CROSS_POOL, 10 * USDC, FundFlow.FEE)   # the single unit is now worth 5 USDC
    result = chain.submit(BOB, stake(amount="4"))
    assert result["code"] == "stake_too_small"
    assert (BOB, CROSS_POOL) not in chain.state.stakes and chain.subaccount(BOB).balance == 100_000 * USDC


def test_staking_state_survives_a_snapshot_with_the_same_hash():
    chain = staking_chain(target_floor="200000")
    chain.submit(ALICE, stake(amount="700"))
    chain.submit(ALICE, request(shares="300"))
    chain.end_block()
    assert chain.state.stake_pools[CROSS_POOL].replenishing   # 100,700 < 200,000
    restored = state_from_document(state_to_document(chain.state))
    assert compute_state_hash_full(restored) == chain.state.state_hash
    assert restored.unstake_requests == chain.state.unstake_requests and restored.stakes == chain.state.stakes


# ------------------------------------------------------------------------------------ properties
OWNERS_ = (ALICE, BOB, CAROL, DAVE)
STEP = st.one_of(
    st.tuples(st.just("stake"), st.sampled_from(OWNERS_), st.integers(1, 50_000 * USDC)),
    st.tuples(st.just("request"), st.sampled_from(OWNERS_), st.integers(1, 100)),          # percent of free shares
    st.tuples(st.just("complete"), st.sampled_from(OWNERS_), st.integers(0, 5)),
    st.tuples(st.just("fee"), st.just(""), st.integers(1, 5_000 * USDC)),
    st.tuples(st.just("gain"), st.just(""), st.integers(1, 5_000 * USDC)),
    st.tuples(st.just("loss"), st.just(""), st.integers(1, 1_000_000)),                     # ppm of the fund
    st.tuples(st.just("wait"), st.just(""), st.integers(1, 120)),
)


@seed(19)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=25), first_loss=st.booleans())
def test_staking_conserves_collateral_and_never_pays_more_than_a_part(steps: list, first_loss: bool):
    chain = staking_chain(loss_mode="first_loss" if first_loss else "pro_rata", min_stake="0.000001")
    state = chain.state
    for kind, owner, n in steps:
        record = state.stake_pools.get(CROSS_POOL)
        before = (record.staked, record.shares) if record is not None else (0, 0)
        if kind == "stake":
            result = chain.submit(owner, stake(amount=f"{n / USDC:.6f}"))
            if result["ok"]:
                staked, shares = state.stake_pools[CROSS_POOL].staked, state.stake_pools[CROSS_POOL].shares
                # the minted shares are worth at most what was paid, and the share price did not fall;
                # it rose by the rounding only: what the staker left behind is less than one share unit
                assert staking.share_value(state.stake_pools[CROSS_POOL], result["shares"]) <= n
                assert before[1] == 0 or staked * before[1] >= before[0] * shares
                assert before[1] == 0 or n * before[1] - result["shares"] * before[0] < before[0]
        elif kind == "request":
            held = state.stakes.get((CROSS_POOL, owner), 0)
            if held:
                assert chain.submit(owner, request(shares=f"{max(held * n // 100, 1) / USDC:.6f}"))["ok"]
        elif kind == "complete":
            mine = [rid for rid, r in state.unstake_requests.items() if r.owner == owner]
            if mine:
                rid = mine[n % len(mine)]
                shares = state.unstake_requests[rid].shares
                exact = Fraction(shares * before[0], before[1])
                result = chain.submit(owner, complete(rid))
                if result["ok"]:
                    # never more than its exact part; and the price of the shares left did not fall
                    assert result["amount"] <= exact and exact - result["amount"] < 1
                    after = state.stake_pools[CROSS_POOL]
                    assert after.shares == 0 or after.staked * before[1] >= before[0] * after.shares
                else:
                    assert result["code"] in ("unstake_cooling_down", "withdrawals_paused")
        elif kind == "fee":
            chain.open_block()
            staking.move_fund(state, CROSS_POOL, n, FundFlow.FEE)
            state.seed_insurance += n          # money from outside the accounts: keep the invariant's books
        elif kind == "gain":
            chain.open_block()
            staking.move_fund(state, CROSS_POOL, n, FundFlow.RESULT)
            state.seed_insurance += n
        elif kind == "loss":
            chain.open_block()
            fund = state.insurance_funds[CROSS_POOL]
            loss = fund * n // 1_000_000
            part = staking.move_fund(state, CROSS_POOL, -loss, FundFlow.RESULT, chain.events)
            state.seed_insurance -= loss
            # the stakers bear at most their staked part: in proportion (rounded up), or all of it first
            expected = min(loss, before[0]) if first_loss else -(-loss * before[0] // fund) if before[1] else 0
            assert -part == expected
        else:
            chain.end_block(advance_ms=n * 1_000)
        check_invariants(state)
    assert chain.end_block() == chain.full_hash()
