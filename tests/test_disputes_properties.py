"""Properties of disputes (issue 18, ``bastion.core.disputes``), on random glitch liquidations,
claims, bonds, rulings and caps:

* compensation never exceeds the award, the claim, the target's loss or any cap (per dispute,
  share of the fund, per epoch);
* no target is paid twice (one dispute per target, a second is refused; an incident program over
  the same blocks leaves the disputed targets out);
* collateral is conserved after every block (``check_invariants`` counts the dispute escrow), and
  the incremental state hash equals the full recomputation;
* a dispute never blocks the liquidations or withdrawals of others: the same chain without the
  dispute messages gives the bystanders the same withdrawals and liquidations.
"""
from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.core.genesis import build_state
from bastion.core.hashing import compute_state_hash_full
from bastion.core.governance import apply_effect, compute_action_changes
from bastion.core.messages import OpenIncidentProgram, decode_message
from bastion.core.state import ParamSource
from bastion.core.state import State
from bastion.core.transition import apply_block, check_invariants
from bastion.core.units import PPM

OWNERS = [f"0x{'0' * 38}e{i}" for i in range(1, 5)]
B0, C0, F0 = (f"0x{'0' * 38}{x}" for x in ("b0", "c0", "f0"))
C1, C2, C3 = (f"0x{'0' * 38}{x}" for x in ("c1", "c2", "c3"))
ORACLE, BRIDGE = f"0x{'0' * 38}a1", f"0x{'0' * 38}b1"
DISPUTE_TYPES = {"open_dispute", "rule_dispute"}


def make_genesis(balances: list[int], fund: int, caps: dict[str, str]) -> dict[str, Any]:
    accounts = [{"address": owner, "subaccounts": [{"number": 0, "usdc": str(usdc),
                                                     "positions": [{"market": "BTC-USD", "size": "1"}]}]}
                for owner, usdc in zip(OWNERS, balances, strict=False)]
    accounts += [{"address": B0, "subaccounts": [{"number": 0, "usdc": "300000", "positions": [
                     {"market": "BTC-USD", "size": f"-{len(balances)}"}]}]},
                 {"address": C0, "subaccounts": [{"number": 0, "usdc": "300000"}]},
                 {"address": F0, "subaccounts": [{"number": 0, "usdc": "10000"}]}]
    return {
        "chain_id": "bastion-prop", "time": "2026-01-01T00:00:00Z",
        "oracle": {"operators": [ORACLE], "min_sources": 1, "max_staleness_s": 100000,
                   "max_source_deviation": "0.05", "max_move_per_block": "0.5"},
        "liquidity_tiers": [{"id": 0, "name": "large-cap", "initial_margin": "0.05", "maintenance_fraction": "0.6",
                             "oi_lower_cap": "0", "oi_upper_cap": "0", "impact_notional": "10000"}],
        "markets": [{"ticker": "BTC-USD", "size_decimals": 4, "price_decimals": 0, "liquidity_tier": 0,
                     "min_order_size": "0.0001", "maker_fee": "0.0001", "taker_fee": "0.0005",
                     "oracle_price": "50000"}],
        "insurance_funds": {"cross": str(fund)},
        "council": {"members": [C1, C2, C3], "threshold": 2},
        "disputes": {"window_s": 3600, "ruling_deadline_s": 600, "appeal_window_s": 60, "bond_floor": "10",
                     "bond_claim": "0.05", **caps},
        "accounts": accounts,
    }


def tx(sender: str, **msg: Any) -> tuple[str, Any]:
    return sender, decode_message(msg)


def usdc(micro: int) -> str:
    return f"{micro // 1_000_000}.{micro % 1_000_000:06d}"


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(2, 4))
    return {
        "balances": [draw(st.integers(-48_000, -47_200)) for _ in range(n)],
        "fund": draw(st.integers(0, 5_000)),
        "bid": draw(st.integers(48_900, 48_990)),
        "caps": {"max_award": str(draw(st.integers(1, 300))), "max_epoch_award": str(draw(st.integers(1, 600))),
                 "max_award_fund_share": draw(st.sampled_from(["0.01", "0.05", "0.5", "1"]))},
        "disputers": [draw(st.booleans()) for _ in range(n)],
        "claims_ppm": [draw(st.integers(1, 1_100_000)) for _ in range(n)],     # of the loss; > 1e6 is refused
        "upheld": [draw(st.booleans()) for _ in range(n)],
        "awards_ppm": [draw(st.integers(1, 1_000_000)) for _ in range(n)],    # of the claim
        "second_shock": draw(st.integers(45_500, 48_500)),
        "stake": draw(st.sampled_from([0, 1, 2_500, 9_000])),    # f0's stake in the cross fund (USDC)
        "loss_mode": draw(st.sampled_from(["pro_rata", "first_loss"])),
    }


def run(world: dict[str, Any], *, with_disputes: bool) -> tuple[State, list[list[dict[str, Any]]], list[list[Any]]]:
    """The world's chain; returns the final state, each block's events and results."""
    genesis = make_genesis(world["balances"], world["fund"], world["caps"])
    genesis["insurance_staking"] = {"loss_mode": world["loss_mode"]}
    state = build_state(genesis)
    n = len(world["balances"])
    all_events: list[list[dict[str, Any]]] = []
    all_results: list[list[Any]] = []

    def block(txs: list[tuple[str, Any]], advance_s: int = 1) -> None:
        if not with_disputes:
            txs = [(s, m) for s, m in txs if type(m).__name__ not in ("OpenDispute", "RuleDispute")]
        result = apply_block(state, state.time_ms + advance_s * 1000, txs)
        check_invariants(state)
        assert result.state_hash == compute_state_hash_full(state)   # every dispute change touched its leaf
        all_events.append(result.events)
        all_results.append(result.results)

    block([tx(C0, type="place_order", subaccount=0, market="BTC-USD", side="buy", size="2", price=str(world["bid"]),
              order_type="limit", time_in_force="gtc", client_id=1),
           tx(ORACLE, type="oracle_update", prices={"BTC-USD": "49000"})]
          + ([tx(F0, type="stake_insurance", fund="cross", amount=str(world["stake"]))] if world["stake"] else []))
    targets = {t.owner: t for t in state.disputes.targets.values()}
    block([tx(BRIDGE, type="deposit", owner=owner, subaccount=0, amount="3000") for owner in OWNERS[:n]]
          + [tx(F0, type="withdraw", subaccount=0, amount="10")])
    opens: list[tuple[str, Any]] = []
    claims: dict[str, int] = {}
    for i, owner in enumerate(OWNERS[:n]):
        target = targets.get(owner)
        if target is None or not world["disputers"][i] or target.loss_usdc == 0:
            continue
        claim = max(1, target.loss_usdc * world["claims_ppm"][i] // PPM)
        claims[owner] = claim
        bond = 10_000_000 + -(-claim * 50_000 // PPM)
        opens.append(tx(owner, type="open_dispute", target=target.target_id, claim_kind="oracle_glitch",
                        claim_usdc=usdc(claim), bond=usdc(bond)))
        opens.append(tx(owner, type="open_dispute", target=target.target_id, claim_kind="other",
                        claim_usdc=usdc(claim), bond=usdc(bond)))  # twice: refused
    block(opens + [tx(F0, type="withdraw", subaccount=0, amount="10")])
    rulings: list[tuple[str, Any]] = []
    for dispute in list(state.disputes.disputes.values()):
        i = OWNERS.index(dispute.owner)
        upheld = world["upheld"][i]
        award = max(1, dispute.claim_usdc * world["awards_ppm"][i] // PPM) if upheld else 0
        for member in (C1, C2):
            rulings.append(tx(member, type="rule_dispute", dispute_id=dispute.dispute_id, upheld=upheld,
                              award_usdc=usdc(award)))
    block(rulings + [tx(F0, type="withdraw", subaccount=0, amount="10")])
    block([tx(F0, type="withdraw", subaccount=0, amount="10")], advance_s=60)
    block([tx(ORACLE, type="oracle_update", prices={"BTC-USD": str(world["second_shock"])}),
           tx(F0, type="withdraw", subaccount=0, amount="10")])
    return state, all_events, all_results


@settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_compensation_is_capped_targets_are_paid_once_and_others_are_not_blocked(world: dict[str, Any]) -> None:
    state, events, results = run(world, with_disputes=True)
    params = state.disputes.params
    # no target paid twice: one dispute per target, the second open_dispute refused
    targets = [d.target_id for d in state.disputes.disputes.values()]
    assert len(targets) == len(set(targets))
    opened = [r for r in results[2] if r.get("dispute_id") is not None]
    refused = [r["code"] for r in results[2] if not r["ok"]]
    assert refused.count("target_already_claimed") == len(opened)
    assert set(refused) <= {"target_already_claimed", "claim_exceeds_loss"}
    # compensation within the award, the claim, the loss and every cap
    paid_total = 0
    for event in (e for block in events for e in block if e["type"] == "dispute_resolved"):
        dispute = state.disputes.disputes[event["dispute_id"]]
        assert 0 <= event["paid"] <= event["award"] <= dispute.claim_usdc <= dispute.loss_usdc
        assert event["paid"] <= params.max_award_usdc
        fund_before = event["insurance_fund"] + event["paid"] - event["bond_forfeited"]
        assert event["paid"] * PPM <= fund_before * params.max_award_fund_ppm
        assert event["paid"] == min(event["award"], params.max_award_usdc,
                                    fund_before * params.max_award_fund_ppm // PPM,
                                    params.max_epoch_award_usdc - paid_total)
        assert dispute.status == ("upheld" if event["upheld"] else "rejected")
        paid_total += event["paid"]
    assert paid_total <= params.max_epoch_award_usdc
    # stakers bear compensation like any other loss of their fund (staking.move_fund): a paid award
    # takes their part, pro rata or first, never more than they staked (check_invariants: staked <= fund)
    pool = state.stake_pools.get("cross")
    if pool is not None and pool.shares and paid_total > sum(e["bond_forfeited"] for b in events for e in b
                                                             if e["type"] == "dispute_resolved"):
        assert pool.losses_borne > 0
    assert state.disputes.escrow_usdc == 0 and not state.disputes.live
    # the same chain without the dispute messages: bystanders see the same liquidations and withdrawals
    _, plain_events, plain_results = run(world, with_disputes=False)
    disputers = {d.owner for d in state.disputes.disputes.values()}

    def others_liquidations(blocks: list[list[dict[str, Any]]]) -> list[list[tuple[Any, ...]]]:
        return [[(e["owner"], e["size"], e["fill_price"]) for e in block
                 if e["type"] == "liquidation" and e["owner"] not in disputers] for block in blocks]

    assert others_liquidations(events) == others_liquidations(plain_events)
    f0_withdrawals = [block[-1] for block in results[1:]]       # f0's withdrawal is each block's last message
    assert f0_withdrawals == [block[-1] for block in plain_results[1:]] == [{"ok": True}] * 5
    # an incident program over the whole chain afterwards pays no target a dispute already claimed
    fund = state.insurance_funds["cross"]
    if fund <= 0:
        return
    [effect] = compute_action_changes(state, OpenIncidentProgram(market="BTC-USD", from_height=1,
                                                                 to_height=state.height, reference="pre_block",
                                                                 budget=usdc(fund)))
    claimed_before = {t.target_id: t.claimed_by for t in state.disputes.targets.values()}
    apply_effect(state, effect, ParamSource("proposal", "p", 1), [])
    check_invariants(state)
    program = state.disputes.programs[1]
    for target in state.disputes.targets.values():
        if claimed_before[target.target_id] is not None:      # disputed: never in the program
            assert target.claimed_by == claimed_before[target.target_id]
        elif target.claimed_by == "incident:1":
            assert target.loss_usdc > 0
    covered = {(t.owner, t.number) for t in state.disputes.targets.values() if t.claimed_by == "incident:1"}
    assert set(program.payouts) <= covered and sum(program.payouts.values()) == program.escrow_usdc <= fund
    for owner, _ in list(program.payouts):
        apply_block(state, state.time_ms + 1000, [tx(owner, type="claim_incident", program_id=1)])
        check_invariants(state)
    assert program.escrow_usdc == 0 == state.disputes.escrow_usdc


@settings(max_examples=100, derandomize=True, deadline=None)
@given(st.dictionaries(st.tuples(st.sampled_from(OWNERS), st.integers(0, 3)), st.integers(1, 10**12), max_size=8),
       st.integers(1, 10**12))
def test_incident_pro_rata_never_exceeds_the_budget_or_an_entitlement_and_leaks_no_dust(
        entitled: dict[tuple[str, int], int], budget: int) -> None:
    from bastion.core.incidents import pro_rata

    paid = pro_rata(entitled, budget)
    total = sum(entitled.values())
    assert set(paid) == set(entitled)
    assert all(0 <= paid[key] <= entitled[key] for key in entitled)
    assert sum(paid.values()) <= min(budget, total)
    if total <= budget:
        assert paid == entitled
    else:   # floor per subaccount: what stays in the fund is less than one micro-USDC per subaccount
        assert budget - sum(paid.values()) < max(len(entitled), 1)
        assert all(paid[key] == entitled[key] * budget // total for key in entitled)
