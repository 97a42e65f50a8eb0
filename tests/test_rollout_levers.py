"""Issue 20: rollouts of every risk lever, contagion gates and the isolated-to-cross promotion in steps
(``bastion.core.governance.rollout``, ``bastion.core.cross_promotion``), with exact numbers.

The default test genesis (``builders``): ETH-USD on tier 2 (IMF 10%, maintenance fraction 0.5, oracle
3,000, 4 size decimals, maker -0.0001, taker 0.0005), BTC-USD on tier 0 (IMF 2% x 0.6, oracle 50,000),
PEPE-USD isolated-only on tier 4 (IMF 5% x 0.6, oracle 0.00001, size decimals -3). Oracle staleness
60 s. ``begin`` (from test_rollout) starts a rollout as a proposal's execution would.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from bastion.core import governance
from bastion.core.errors import ProtocolError
from bastion.core.governance import rollout
from bastion.core.messages import decode_action
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.units import USDC
from builders import ALICE, BOB, BTC, CAROL, DAVE, ETH, PEPE, Chain, account, genesis, place_order, subaccount
from test_governance import gov_chain
from test_rollout import at, begin, of_type, start_rollout

MARGIN = "liquidity_tiers.2.initial_margin_ppm"


def values_of(chain: Chain, record: rollout.Rollout) -> list[int]:
    """Run every step of ``record`` (interval 60 s) and return the stepped values."""
    values = []
    for _ in range(record.steps):
        values += [e["value"] for e in of_type(at(chain, record.next_step_ms), "rollout_step")]
    return values


# ------------------------------------------------------------------------------------------- interpolation
def test_a_margin_cut_rounds_toward_the_start_and_a_margin_raise_toward_the_target():
    """Both toward the safer side: a cut (risk increasing) moves at most the linear fraction, a raise
    (risk reducing) at least it. 100,000 ppm -> 90,000 in 3: 100,000 - floor(10,000 i / 3)."""
    chain = gov_chain()
    cut = begin(chain, market=ETH, param=MARGIN, target="0.09", steps=3)
    assert (cut.start, cut.target, cut.start_is_safer) == (100_000, 90_000, True)
    assert values_of(chain, cut) == [96_667, 93_334, 90_000]
    assert chain.state.tiers[2].initial_margin_ppm == 90_000 and cut.status == "completed"
    raise_ = begin(chain, market=ETH, param=MARGIN, target="0.1", steps=3)   # 90,000 + ceil(10,000 i / 3)
    assert raise_.start_is_safer is False
    assert values_of(chain, raise_) == [93_334, 96_667, 100_000]


def test_a_tier_move_steps_through_the_tiers_between_start_and_target():
    """ETH from tier 2 (maintenance 10% x 0.5 = 5%) to tier 0 (2% x 0.6 = 1.2%): the tiers between,
    by maintenance then IMF then id, downward: 4 and 1 (both 5% x 0.6 = 3%; 4 first going down)."""
    chain = gov_chain()
    record = begin(chain, market=ETH, param=f"markets.{ETH}.tier_id", target="0", steps=3)
    assert record.tiers == [2, 4, 1, 0]
    assert values_of(chain, record) == [4, 1, 0] and chain.state.markets[ETH].tier_id == 0
    with pytest.raises(ProtocolError) as error:          # 3 moves cannot make 4 steps
        governance.compute_action_changes(gov_chain().state, decode_action(start_rollout(
            param=f"markets.{ETH}.tier_id", target="0", steps=4), 0))
    assert error.value.code == "rollout_step_below_grid"


def test_an_oracle_staleness_rollout_steps_in_whole_seconds():
    """60 s -> 120 s in 7 (longer is riskier: toward the start): 60 + floor(60 i / 7) seconds."""
    chain = gov_chain()
    record = begin(chain, market=ETH, param=f"markets.{ETH}.oracle.max_staleness_ms", target="120", steps=7)
    assert values_of(chain, record) == [68_000, 77_000, 85_000, 94_000, 102_000, 111_000, 120_000]


@pytest.mark.parametrize("param, target, risk", [
    (MARGIN, "0.05", "risk_increasing"),
    (f"markets.{ETH}.tier_id", "3", "risk_reducing"),              # tier 3: 20% x 0.5, lower caps
    ("liquidation.max_liquidation_fee_ppm", "0.001", "risk_increasing"),
    ("fees.insurance_share_ppm", "0.2", "risk_reducing"),
    (f"markets.{ETH}.taker_fee_ppm", "0.0002", "risk_increasing"),
])
def test_a_rollout_carries_the_class_of_the_direct_change_to_its_target(param, target, risk):
    changes, risk_class = governance.compute_proposal_changes(
        gov_chain().state, (decode_action(start_rollout(param=param, target=target, steps=1), 0),))
    assert [(c.name, c.risk) for c in changes] == [(f"rollout:{param}", risk)] and risk_class == risk


def test_only_the_levers_in_the_table_are_rollable():
    """Every lever kind is accepted (a target the direct change accepts, one step); statuses,
    governance parameters, another market's parameters and unknown tiers are not."""
    state = gov_chain().state
    rollable = [(f"markets.{ETH}.max_order_lots", "50"), (f"markets.{ETH}.maker_fee_ppm", "0"),
                (f"markets.{ETH}.oracle.min_sources", "2"), (f"markets.{ETH}.oracle.max_move_per_block_ppm", "0.05"),
                ("liquidity_tiers.2.maintenance_fraction_ppm", "0.6"),
                ("liquidity_tiers.2.oi_upper_cap_usdc", "60000000"),
                ("liquidation.backstop_max_notional_usdc", "1000"), ("liquidation.settlement_twap_window_ms", "1200")]
    for param, target in rollable:
        changes = governance.compute_action_changes(state, decode_action(start_rollout(param=param, target=target,
                                                                                       steps=1), 0))
        assert [c.name for c in changes] == [f"rollout:{param}"]
    for param in ("governance.voting_delay_blocks", f"markets.{ETH}.status", f"markets.{BTC}.max_open_interest_lots",
                  "liquidity_tiers.9.initial_margin_ppm", "council.threshold", "markets.ETH-USD"):
        with pytest.raises(ProtocolError) as error:
            governance.compute_action_changes(state, decode_action(start_rollout(param=param, target="1"), 0))
        assert (error.value.code, error.value.fields.get("field")) == ("unknown_rollout_param", "param"), param


VALIDATION = [
    ({"param": MARGIN, "target": "1.5"}, "invalid_tier", "target"),              # the direct validator's code
    ({"param": MARGIN, "target": "0.1"}, "rollout_target_unchanged", "target"),
    ({"param": f"markets.{ETH}.tier_id", "target": "2"}, "rollout_target_unchanged", "target"),
    ({"param": f"markets.{ETH}.tier_id", "target": "9"}, "unknown_liquidity_tier", "target"),
    ({"param": f"markets.{ETH}.taker_fee_ppm", "target": "0.00005"}, "invalid_fees", "target"),  # maker -0.0001
    ({"param": f"markets.{ETH}.cross_margin_cap_usdc", "target": "100"}, "market_not_isolated", "target"),
    ({"param": MARGIN, "target": "0.05", "steps": 0}, "invalid_rollout_steps", "steps"),
    ({"param": MARGIN, "target": "0.05", "steps": 21}, "invalid_rollout_steps", "steps"),
    ({"param": MARGIN, "target": "0.099999", "steps": 2}, "rollout_step_below_grid", "steps"),  # one ppm
    ({"param": MARGIN, "target": "0.05", "gates": {"max_oi_skew": "1.5"}}, "invalid_field", "gates.max_oi_skew"),
    ({"param": MARGIN, "target": "0.05", "gates": {"max_cross_share": "-0.1"}}, "negative_value",
     "gates.max_cross_share"),
    ({"param": MARGIN, "target": "0.05", "gates": {"max_backstop_inventory": "0.00001"}}, "too_many_decimals",
     "gates.max_backstop_inventory"),
    ({"param": MARGIN, "target": "0.05", "gates": {"max_trader_losses": 5}}, "invalid_decimal",
     "gates.max_trader_losses"),
]


@pytest.mark.parametrize("fields, code, field", VALIDATION)
def test_an_invalid_lever_rollout_is_refused_with_its_code(fields, code, field):
    with pytest.raises(ProtocolError) as error:
        governance.compute_action_changes(gov_chain().state, decode_action(start_rollout(**fields), 0))
    assert (error.value.code, error.value.fields.get("field")) == (code, field)


def test_a_second_rollout_of_the_same_tier_parameter_is_refused_whatever_market_watches_it():
    chain = gov_chain()
    begin(chain, market=ETH, param=MARGIN, target="0.09", steps=3)
    with pytest.raises(ProtocolError) as error:
        governance.compute_action_changes(chain.state, decode_action(start_rollout(
            market=BTC, param=MARGIN, target="0.08"), 0))
    assert error.value.code == "rollout_in_progress"


def test_a_step_the_direct_validator_refuses_halts_the_rollout():
    """ETH taker 0.0005 -> 0.0001 in 4 (maker -0.0001). After step 1 (0.0004) the maker rebate is made
    -0.0003: step 2 (0.0003) still keeps maker + taker >= 0, step 3 (0.0002) would not: invalid_fees."""
    chain = gov_chain()
    record = begin(chain, market=ETH, param=f"markets.{ETH}.taker_fee_ppm", target="0.0001", steps=4)
    assert of_type(at(chain, record.next_step_ms), "rollout_step")[0]["value"] == 400
    chain.state.markets[ETH].maker_fee_ppm = -300          # as a direct change of the other fee would
    assert of_type(at(chain, record.next_step_ms), "rollout_step")[0]["value"] == 300
    events = at(chain, record.next_step_ms)
    assert of_type(events, "rollout_halted") == [
        {"type": "rollout_halted", "rollout_id": 1, "market": ETH, "param": f"markets.{ETH}.taker_fee_ppm",
         "step": 2, "reason": "invalid_step", "ref": "invalid_fees"}]
    assert chain.state.markets[ETH].taker_fee_ppm == 300


# ------------------------------------------------------------------------------------------- contagion gates
def contagion_genesis() -> dict:
    """ETH: Alice +2 and Dave +1 (cross), Bob -2 (cross), Carol -1 from a subaccount isolated to ETH;
    BTC: Alice +1, Bob -1 (cross). Open interest ETH 3."""
    def position(market: str, size: str) -> dict:
        return {"market": market, "size": size}
    return genesis(accounts=[
        account(ALICE, subaccount(0, positions=[position(ETH, "2"), position(BTC, "1")])),
        account(BOB, subaccount(0, positions=[position(ETH, "-2"), position(BTC, "-1")])),
        account(CAROL, subaccount(0), subaccount(2, "50000", mode="isolated", market=ETH,
                                                 positions=[position(ETH, "-1")])),
        account(DAVE, subaccount(0, positions=[position(ETH, "1")])),
    ])


def test_the_contagion_gates_measure_the_state_exactly_and_the_first_broken_one_halts():
    """Cross pool maintenance: ETH 6 ETH x 3,000 x 10% x 0.5 = 900 (Carol's isolated subaccount
    counts: an isolated subaccount of a cross market keeps its collateral in the cross pool), BTC
    2 x 50,000 x 2% x 0.6 = 1,200: share 900 / 2,100 = 0.428571.. -> 428,572 ppm (rounded up).
    Top account 2 of OI 3 -> 666,667. Cross-margin net +2 +1 -2 = +1 of 3 -> 333,334."""
    chain = Chain(contagion_genesis())
    record = begin(chain, market=ETH, target="30", gates={"max_cross_share": "0.5", "max_top_account_share": "0.6",
                                                          "max_oi_skew": "0.4"})
    events = at(chain, record.next_step_ms)
    assert of_type(events, "rollout_gates_measured") == [
        {"type": "rollout_gates_measured", "rollout_id": 1, "market": ETH, "step": 0,
         "insurance_fund": 100_000 * USDC, "bad_debt": 0, "liquidations": 0, "cross_share": 428_572,
         "top_account_share": 666_667, "oi_skew": 333_334, "backstop_inventory": 0, "trader_losses": 0}]
    assert of_type(events, "rollout_halted") == [
        {"type": "rollout_halted", "rollout_id": 1, "market": ETH, "param": "max_open_interest", "step": 0,
         "reason": "max_top_account_share", "gate": "max_top_account_share", "observed": 666_667,
         "limit": 600_000}]
    assert of_type(events, "rollout_step") == [] and chain.state.markets[ETH].max_open_interest_lots == 200_000
    assert chain.state.rollouts[1].measured["cross_share"] == 428_572


def test_a_gate_equal_to_its_measure_holds():
    chain = Chain(contagion_genesis())
    record = begin(chain, market=ETH, target="30", gates={"max_cross_share": "0.428572",
                                                          "max_oi_skew": "0.333334"})
    assert of_type(at(chain, record.next_step_ms), "rollout_step")[0]["value"] == 225_000


def test_a_rollout_with_contagion_gates_survives_a_snapshot():
    chain = Chain(contagion_genesis())
    record = begin(chain, market=ETH, param=MARGIN, target="0.08", steps=2, gates={"max_cross_share": "0.9"})
    at(chain, record.next_step_ms)
    restored = state_from_document(state_to_document(chain.state))
    assert restored.rollouts[1] == chain.state.rollouts[1] and restored.state_hash == chain.state.state_hash


def test_trader_losses_count_what_deleveraging_and_socialisation_took():
    """The counter is what the max_trader_losses gate reads: a deleveraged winner's loss against the
    oracle value, and bad debt paid by traders."""
    from bastion.core import liquidation
    chain = gov_chain()
    liquidation.add_trader_loss(chain.state, ETH, 5 * USDC)
    liquidation.add_trader_loss(chain.state, ETH, -3 * USDC)      # a gain is no loss
    assert chain.state.trader_losses == {ETH: 5 * USDC}
    record = begin(chain, market=ETH, target="30", gates={"max_trader_losses": "4"})
    assert record.trader_losses_mark == 5 * USDC
    liquidation.add_trader_loss(chain.state, ETH, 4 * USDC + 1)
    events = at(chain, record.next_step_ms)
    assert of_type(events, "rollout_halted")[0]["observed"] == 4 * USDC + 1


# ------------------------------------------------------------------------------------------- isolated to cross
PEPE_LOTS = "1000000000"          # 1e9 PEPE x 0.00001 = 10,000 USDC; maintenance 5% x 0.6 = 300 USDC


def test_the_cross_margin_cap_is_a_governed_market_parameter_of_isolated_markets():
    state = gov_chain().state
    changes = governance.compute_action_changes(state, decode_action(
        {"type": "set_market_params", "market": PEPE, "cross_margin_cap": "300"}, 0))
    assert governance.changes.Change(governance.ParamPath(governance.ParamGroup.MARKET, PEPE, "cross_margin_cap_usdc"),
                                     0, 300 * USDC, "risk_increasing") in changes


def test_cross_subaccounts_trade_an_isolated_market_up_to_its_cross_margin_cap():
    chain = Chain()
    buy = place_order(market=PEPE, side="buy", size=PEPE_LOTS, price="0.00001", client_id=1)
    assert chain.submit(ALICE, buy)["code"] == "isolated_market_requires_isolated_subaccount"   # cap 0
    chain.end_block()
    chain.state.markets[PEPE].cross_margin_cap_usdc = 300 * USDC       # as a proposal or rollout step sets it
    assert chain.submit(BOB, place_order(subaccount=1, market=PEPE, side="sell", size=PEPE_LOTS, price="0.00001",
                                         client_id=1))["ok"]
    assert chain.submit(ALICE, buy)["ok"]                              # 300 <= 300: filled
    chain.end_block()
    assert chain.subaccount(ALICE).positions[PEPE].size == 1_000_000
    more = chain.submit(CAROL, place_order(market=PEPE, side="buy", size="1000", price="0.00001", client_id=1))
    assert (more["ok"], more["code"]) == (False, "cross_margin_cap_exceeded")     # 300.0003 > 300
    chain.state.markets[PEPE].cross_margin_cap_usdc = 0
    assert chain.submit(ALICE, place_order(market=PEPE, side="sell", size="1000", price="0.00002",
                                           client_id=2))["ok"]        # reducing is always allowed


def test_a_cross_margin_cap_rollout_ramps_the_isolated_market_open():
    chain = gov_chain()
    record = begin(chain, market=PEPE, param=f"markets.{PEPE}.cross_margin_cap_usdc", target="1000", steps=4,
                   gates={"max_cross_share": "0.5"})
    assert values_of(chain, record) == [250 * USDC, 500 * USDC, 750 * USDC, 1000 * USDC]


# ------------------------------------------------------------------------------------------- API view and page
def test_the_rollout_view_shows_steps_gates_and_measures_in_the_levers_units():
    from bastion.presentation import describe_rollout
    chain = Chain(contagion_genesis())
    record = begin(chain, market=ETH, param=MARGIN, target="0.09", steps=3,
                   gates={"max_top_account_share": "0.7", "max_liquidations": 0})
    at(chain, record.next_step_ms)
    view = describe_rollout(chain.state, record)
    assert {k: view[k] for k in ("path", "start", "target", "value", "planned", "gates", "status", "step")} == {
        "path": MARGIN, "start": "0.1", "target": "0.09", "value": "0.096667",
        "planned": ["0.096667", "0.093334", "0.09"], "gates": {"max_liquidations": 0, "max_top_account_share": "0.7"},
        "status": "active", "step": 1}
    assert view["gate_checks"] == [
        {"gate": "max_liquidations", "measure": "liquidations", "limit": 0, "measured": 0},
        {"gate": "max_top_account_share", "measure": "top_account_share", "limit": "0.7", "measured": "0.666667"}]


def test_the_governance_page_fragment_shows_a_rollouts_steps_gates_and_measured_values():
    from bastion.presentation import describe_rollout
    from bastion.web.context import TEMPLATES
    chain = Chain(contagion_genesis())
    record = begin(chain, market=ETH, target="30", gates={"max_top_account_share": "0.6"})
    at(chain, record.next_step_ms)
    text = TEMPLATES.get_template("_rollouts.html").render(p={"rollouts": [describe_rollout(chain.state, record)]})
    assert f"<code>markets.{ETH}.max_open_interest_lots</code>" in text and "halted: <b class=\"bad\">" in text
    assert ">22.5</td>" in text and ">30</td>" in text                       # the planned steps
    assert '<td class="num">0.6</td><td class="num bad">0.666667</td>' in text  # the broken gate, measured


def test_the_stress_gate_evaluates_a_lever_rollout_at_its_first_step():
    """A margin cut 10% -> 9% in 3 is stressed at step 1: 100,000 - floor(10,000 / 3) = 96,667 ppm."""
    from bastion.stress.proposal import plan_proposal
    state = gov_chain().state
    plan = plan_proposal(state, [start_rollout(param=MARGIN, target="0.09", steps=3)])
    assert plan.changes == ((MARGIN, 100_000, 96_667, "risk_increasing"),)
    assert plan.state.tiers[2].initial_margin_ppm == 96_667 and state.tiers[2].initial_margin_ppm == 100_000


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(start=st.integers(0, 10**12), distance=st.integers(1, 10**9), down=st.booleans(),
       steps=st.integers(1, 20), toward_start=st.booleans())
def test_every_step_lies_on_the_safer_side_of_the_linear_path_within_one_unit(start, distance, down, steps,
                                                                              toward_start):
    """The one interpolation rule: each step moves at least one unit (when the distance allows it),
    never leaves [start, target], ends exactly on the target, and differs from the exact linear value
    by less than one unit, on the start's side (toward_start) or the target's."""
    from fractions import Fraction
    steps = min(steps, distance)
    target = start - distance if down else start + distance
    values = [rollout.compute_step_value(start, target, i, steps, toward_start=toward_start)
              for i in range(1, steps + 1)]
    assert values[-1] == target
    previous = start
    for i, value in enumerate(values, 1):
        linear = start + Fraction((target - start) * i, steps)
        assert abs(value - linear) < 1 and abs(value - previous) >= 1
        moved, exact = abs(value - start), abs(linear - start)
        assert moved <= exact if toward_start else moved >= exact
        previous = value


def test_the_top_account_is_an_owner_over_all_its_subaccounts():
    """Alice holds +1 ETH in each of two subaccounts, Bob and Carol -1 each: open interest 2, and the
    top account is Alice with 2 (each subaccount alone would be 1 of 2): 1,000,000 ppm."""
    def holding(number: int, size: str) -> dict:
        return subaccount(number, positions=[{"market": ETH, "size": size}])
    chain = Chain(genesis(accounts=[account(ALICE, holding(0, "1"), holding(1, "1")), account(BOB, holding(0, "-1")),
                                    account(CAROL, holding(0, "-1"))]))
    record = begin(chain, market=ETH, target="30", gates={"max_top_account_share": "0.9"})
    events = at(chain, record.next_step_ms)
    assert of_type(events, "rollout_gates_measured")[0]["top_account_share"] == 1_000_000
    assert of_type(events, "rollout_halted")[0]["observed"] == 1_000_000
