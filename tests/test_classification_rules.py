"""The risk classification table of docs/protocol.md ("Risk classification by effect", issue 16):
every row of the table has a case here, every case a row, and every ``classify.RULES`` entry a row.

Each case builds a state, classifies a proposal's actions with ``classify.classify_proposal`` and
checks the class exactly, and (for the effect rules) that the named rule is one that fired.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from bastion.core import governance
from bastion.core.governance import classify
from bastion.core.genesis import DEFAULT_TIERS, build_state
from bastion.core.messages import decode_action
from bastion.core.state import ParamSource, Proposal, State
from builders import BTC, COUNCIL, ETH, ORACLE, PEPE, address, genesis

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
ORACLE2, ORACLE3, ORACLE4, ORACLE5 = (address(n) for n in (0xA2, 0xA3, 0xA4, 0xA5))
# a tier that looks stricter than PEPE's "isolated" tier 4 (IMF 10% > 5%, same caps) but counts all
# unrealised profit (weight 1 instead of 0): the Mango tier move
STRICT_LOOKING = {"id": 6, "name": "strict-looking", "initial_margin": "0.1", "maintenance_fraction": "0.6",
                  "oi_lower_cap": "500000", "oi_upper_cap": "1000000", "impact_notional": "2500",
                  "unrealized_profit_weight": "1"}


def table_rows() -> list[tuple[str, str]]:
    """``(rule, floor)`` of every row of the classification table in docs/protocol.md."""
    text = DOC.read_text()
    section = text[text.index("## Risk classification by effect"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"^\| `([a-z_]+)` \| ([^|]+?) \|", section, flags=re.MULTILINE)


def chain_state(*, min_sources: int = 3, operators: tuple[str, ...] = (ORACLE, ORACLE2, ORACLE3)) -> State:
    doc = genesis(oracle={"operators": list(operators), "min_sources": min_sources, "max_staleness_s": 60,
                          "max_source_deviation": "0.05", "max_move_per_block": "0.1"},
                  liquidity_tiers=[*copy.deepcopy(DEFAULT_TIERS), STRICT_LOOKING],
                  council={"members": list(COUNCIL), "threshold": 2},
                  guardian={"address": address(0x6A), "expires": "2027-01-01T00:00:00Z"})
    return build_state(doc)


def typed(*actions: dict) -> tuple:
    return tuple(decode_action(action, index) for index, action in enumerate(actions))


def classify_actions(state: State, *actions: dict) -> str:
    return classify.classify_proposal(state, typed(*actions))[1]


def fired(state: State, *actions: dict) -> dict[str, str]:
    """The effect rules that apply to the proposal on the current state."""
    changes, _ = governance.compute_proposal_changes(state, typed(*actions))
    before = classify.copy_governed_state(state)
    after = classify.copy_governed_state(before)
    classify.apply_simulated(after, changes)
    return dict(classify.compute_effect_floor(before, after, state))


def add_pending(state: State, *actions: dict, status: str = "succeeded") -> str:
    """A proposal in ``status`` (voted as classified now), as if it had passed its vote."""
    proposal_actions = typed(*actions)
    _, risk_class = classify.classify_proposal(state, proposal_actions)
    proposal_id = f"{len(state.proposals) + 1:064x}"
    state.proposals[proposal_id] = Proposal(
        proposal_id=proposal_id, number=len(state.proposals) + 1, proposer=address(0xA0), title="pending",
        description="", actions=proposal_actions, deposit_bgov=0, risk_class=risk_class, submitted_height=0,
        snapshot_height=1, deadline_height=2, rules=copy.copy(state.governance.tiers[risk_class]), status=status)
    return proposal_id


def operators(*addresses: str) -> dict:
    return {"type": "set_oracle_operators", "operators": list(addresses)}


# ------------------------------------------------------------------------------------------- rows
def case_oracle_operators_added() -> tuple[State, tuple, str]:
    # one newcomer among 4, min_sources 3: 2 x 1 < 4 and < 3, not a capture (issue 5: risk_reducing)
    return chain_state(), (operators(ORACLE, ORACLE2, ORACLE3, ORACLE4),), "risk_increasing"


def case_oracle_operators_removed() -> tuple[State, tuple, str]:
    return chain_state(min_sources=1), (operators(ORACLE, ORACLE2),), "risk_increasing"


def case_oracle_params_changed() -> tuple[State, tuple, str]:
    # a higher min_sources tightens the field (risk_reducing alone) but changes who sets prices
    return chain_state(min_sources=2), ({"type": "set_market_params", "market": BTC, "min_sources": 3},), \
        "risk_increasing"


def case_oracle_median_capture() -> tuple[State, tuple, str]:
    # two newcomers among 5: 2 x 2 >= min_sources 3
    return chain_state(), (operators(ORACLE, ORACLE2, ORACLE3, ORACLE4, ORACLE5),), "critical"


def case_guardian_changed() -> tuple[State, tuple, str]:
    return chain_state(), ({"type": "set_guardian", "address": address(0x6B), "expires": "2027-01-01T00:00:00Z"},), \
        "critical"


def case_council_changed() -> tuple[State, tuple, str]:
    return chain_state(), ({"type": "set_council", "members": list(COUNCIL[:2]), "threshold": 2},), "critical"


def case_governance_changed() -> tuple[State, tuple, str]:
    return chain_state(), ({"type": "set_governance_params", "params": {"voting_delay_blocks": 2}},), "critical"


def case_profit_weight_raised() -> tuple[State, tuple, str]:
    # PEPE: tier 4 (IMF 5%, weight 0) -> tier 6 (IMF 10%, same caps, weight 1): every margin field is
    # stricter (issue 5: risk_reducing), but unbacked profit becomes withdrawable
    return chain_state(), ({"type": "set_market_params", "market": PEPE, "liquidity_tier": 6},), "risk_increasing"


def case_market_margin_lowered() -> tuple[State, tuple, str]:
    # ETH: tier 2 (IMF 10%) -> tier 1 (IMF 5%)
    return chain_state(), ({"type": "set_market_params", "market": ETH, "liquidity_tier": 1},), "risk_increasing"


def case_cap_widened() -> tuple[State, tuple, str]:
    return chain_state(), ({"type": "set_market_params", "market": ETH, "max_open_interest": "30"},), \
        "risk_increasing"


def case_funds_moved() -> tuple[State, tuple, str]:
    return chain_state(), ({"type": "insurance_transfer", "from_pool": "cross", "to_pool": PEPE, "amount": "1"},), \
        "critical"


def case_pending_combination() -> tuple[State, tuple, str]:
    # alone: ETH's taker fee 0.0005 -> 0.0006 is risk_reducing; a pending proposal already raised it to
    # 0.0008, so against the pending state this one lowers it: risk_increasing
    state = chain_state()
    add_pending(state, {"type": "set_market_params", "market": ETH, "taker_fee": "0.0008"})
    return state, ({"type": "set_market_params", "market": ETH, "taker_fee": "0.0006"},), "risk_increasing"


def case_execution_recheck() -> tuple[State, tuple, str]:
    # voted risk_increasing alone (one newcomer among 4, min_sources 3); a proposal lowering BTC's
    # min_sources to 2 succeeded since: with it, the newcomer is half of min_sources, critical
    state = chain_state()
    add_pending(state, {"type": "set_market_params", "market": BTC, "min_sources": 2})
    return state, (operators(ORACLE, ORACLE2, ORACLE3, ORACLE4),), "critical"


CASES = {name.removeprefix("case_"): fn for name, fn in globals().items() if name.startswith("case_")}


def test_every_table_row_has_a_case_and_every_rule_a_row():
    rows = dict(table_rows())
    assert set(rows) == set(CASES)
    assert {rule.name for rule in classify.RULES} <= set(rows)
    assert all(rows[rule.name] == rule.floor for rule in classify.RULES)


@pytest.mark.parametrize("row, floor", table_rows())
def test_table_row(row, floor):
    state, actions, expected = CASES[row]()
    assert classify_actions(state, *actions) == expected
    if row in {rule.name for rule in classify.RULES}:
        assert fired(state, *actions)[row] == floor


def test_alone_the_pending_combination_is_risk_reducing():
    state, actions, _ = case_pending_combination()
    state.proposals.clear()
    assert classify_actions(state, *actions) == "risk_reducing"


def test_a_pending_proposal_in_voting_does_not_count():
    """Only succeeded or queued proposals make the pending state (a vote may still fail)."""
    state = chain_state()
    add_pending(state, {"type": "set_market_params", "market": BTC, "min_sources": 2}, status="active")
    assert classify_actions(state, operators(ORACLE, ORACLE2, ORACLE3, ORACLE4)) == "risk_increasing"
    state.proposals[next(iter(state.proposals))].status = "queued"
    assert classify_actions(state, operators(ORACLE, ORACLE2, ORACLE3, ORACLE4)) == "critical"


def test_operators_added_in_a_recent_proposal_still_count_as_new():
    """An operator takeover split over successive executed proposals is still a capture."""
    state = chain_state()
    governance.change_param(state, governance.ParamPath(governance.ParamGroup.ORACLE_OPERATORS),
                            list(state.oracle_operators), sorted([ORACLE, ORACLE2, ORACLE3, ORACLE5]),
                            ParamSource("proposal", "p", 1), [])
    assert classify_actions(state, operators(ORACLE, ORACLE2, ORACLE3, ORACLE4, ORACLE5)) == "critical"
    state.height += state.governance.tiers["critical"].voting_period_blocks + 1      # established by now
    assert classify_actions(state, operators(ORACLE, ORACLE2, ORACLE3, ORACLE4, ORACLE5)) == "risk_increasing"


def test_classification_does_not_touch_the_state():
    state, actions, _ = case_execution_recheck()
    before = (copy.deepcopy(state.markets[BTC].oracle_params), state.oracle_operators, dict(state.insurance_funds),
              len(state.param_history), dict(state.dirty))
    classify_actions(state, *actions)
    assert before == (state.markets[BTC].oracle_params, state.oracle_operators, dict(state.insurance_funds),
                      len(state.param_history), dict(state.dirty))


# ------------------------------------------------------------------- classification never writes to the state
def test_the_governed_copy_shares_no_object_a_change_writes_to():
    """``copy_governed_state`` copies every object ``apply_change`` writes to (a shared one would let a
    mere classification, at submission, change the live parameter: set_order_limits did)."""
    state = chain_state()
    sim = classify.copy_governed_state(state)
    for attr in ("fees", "liquidation", "listing", "order_limits", "governance", "guardian", "insurance_funds",
                 "withdrawals_paused_until", "steward_bounds", "param_history", "markets", "tiers", "insurance_staking",
                 "stake_pools", "stakes", "unstake_requests", "disputes"):
        assert getattr(sim, attr) is not getattr(state, attr), attr
    assert sim.disputes.params is not state.disputes.params
    for ticker, market in state.markets.items():
        clone = sim.markets[ticker]
        assert clone is not market and clone.oracle_params is not market.oracle_params
        assert clone.submissions is not market.submissions
    assert all(sim.tiers[tier_id] is not tier for tier_id, tier in state.tiers.items())
    assert sim.governance.tiers is not state.governance.tiers


@pytest.mark.parametrize("action", [
    {"type": "set_order_limits", "open_order_tiers": [{"min_equity": "0", "max_open_orders": 4}],
     "max_open_orders": 10, "min_order_notional": "1"},
    {"type": "set_fee_params", "insurance_share": "0.05"},
    {"type": "set_liquidity_tier", "tier": 0, "initial_margin": "0.015"},
    {"type": "set_market_params", "market": BTC, "taker_fee": "0.001"},
])
def test_classifying_a_proposal_changes_nothing_in_the_state(action):
    """A proposal is classified at submission on copies; the live state (its full snapshot document)
    is exactly what it was, whatever the action."""
    from bastion.core.hashing import compute_state_hash_full
    from bastion.core.snapshot import state_to_document

    state = chain_state()
    before_doc, before_hash = state_to_document(state), compute_state_hash_full(state)
    classify.classify_proposal(state, (decode_action(action, 0),))
    assert state_to_document(state) == before_doc
    assert compute_state_hash_full(state) == before_hash
