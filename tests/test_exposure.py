"""Voter exposure disclosure (issue 20, ``bastion.core.exposure``): which delegates gain or lose from a
proposal through their own and their delegators' positions, the governed discount of directly exposed
votes in the critical tier (the golden scenario ``exposure_disclosure_delegate``), the exposure option's
bad input, and the API's disclosure endpoint. The governance page's rendering is checked in
``test_telemetry.py`` (beside the cited telemetry) and in the browser test."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from builders import BTC, ETH, PEPE, genesis

from bastion.api.views import describe_voter_exposure
from bastion.core import exposure
from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.hashing import compute_state_hash_full
from bastion.core.governance import compute_action_changes
from bastion.core.governance.proposals import get_proposal_effects
from bastion.core.messages import decode_action
from bastion.scenario import replay_scenario, run_scenario

SCENARIO = Path(__file__).parent / "scenarios" / "exposure_disclosure_delegate.json"
B0, C0 = "0x" + "0" * 38 + "b0", "0x" + "0" * 38 + "c0"


def effects(state, *actions):
    return [change for a in actions for change in compute_action_changes(state, decode_action(a, 0))]


def test_changed_markets_follow_the_parameter_groups():
    state = build_state(genesis())
    tier_of = {ticker: m.tier_id for ticker, m in state.markets.items()}
    same_tier = sorted(t for t, tier in tier_of.items() if tier == tier_of[BTC])

    tier_cut = effects(state, {"type": "set_liquidity_tier", "tier": tier_of[BTC], "initial_margin": "0.01"})
    oi_cut = effects(state, {"type": "set_market_params", "market": ETH, "max_open_interest": "1"})
    both = effects(state, {"type": "set_market_params", "market": ETH, "max_open_interest": "1", "maker_fee": "0",
                           "taker_fee": "0"})
    liquidation = effects(state, {"type": "set_liquidation_params", "max_liquidation_fee": "0.02"})
    fees = effects(state, {"type": "set_fee_params", "insurance_share": "0.5"})

    assert exposure.changed_markets(state, tier_cut) == {t: "gains" for t in same_tier}
    assert exposure.changed_markets(state, oi_cut) == {ETH: "loses"}
    assert exposure.changed_markets(state, both) == {ETH: "mixed"}    # a lower cap and a lower fee
    assert exposure.changed_markets(state, liquidation) == {t: "loses" for t in (BTC, ETH, PEPE)}
    assert exposure.changed_markets(state, fees) == {}


def _scenario(weight: str | None = None) -> dict:
    data = json.loads(SCENARIO.read_text())
    if weight is not None:
        data["genesis"]["governance"]["exposure"]["exposed_vote_weight"] = weight
    return data


def test_the_disclosure_names_the_exposed_delegates():
    """Figures worked out in the scenario's notes."""
    state, _ = replay_scenario(_scenario())
    proposal = next(iter(state.proposals.values()))

    disclosed = exposure.disclose(state, get_proposal_effects(state, proposal), proposal.snapshot_height)
    view = describe_voter_exposure(state, proposal)

    assert [(d.delegate, d.votes, d.directly_exposed) for d in disclosed] == [(B0, 300_000_000, True),
                                                                               (C0, 250_000_000, False)]
    assert disclosed[0].markets == (exposure.MarketExposure(BTC, "gains", 10_000, 50_000_000_000, 0, 0),)
    assert disclosed[1].markets == (exposure.MarketExposure(BTC, "gains", 0, 0, 50_000_000_000, 1),)
    assert view["markets"] == {BTC: "gains"} and view["risk_class"] == "critical"
    assert view["delegates"][0] == {"delegate": B0, "votes": "300", "directly_exposed": True, "markets": [
        {"market": BTC, "effect": "gains", "own_size": "1", "own_notional": "50000", "delegated_notional": "0",
         "delegators": 0}]}
    assert view["discount"] == {"exposed_vote_weight": "0.5", "threshold": "10000", "applies": True}


def test_without_the_discount_the_same_votes_pass():
    """The option off (weight 1): b0 votes with 300, yes 385 >= quorum 312, so the proposal succeeds;
    with the scenario's 0.5 it is defeated (the golden expectations)."""
    off = run_scenario(_scenario("1"))
    on = run_scenario(_scenario())

    assert off["blocks"][2]["results"][0] == {"ok": True, "weight": "300"}
    statuses = [e["to"] for b in off["blocks"] for e in b["events"] if e["type"] == "proposal_status"]
    assert statuses[-1] == "succeeded"
    assert [e["to"] for b in on["blocks"] for e in b["events"] if e["type"] == "proposal_status"][-1] == "defeated"


def test_only_the_critical_tier_is_discounted():
    """The same voters on the margin cut alone (risk_increasing): b0 votes with its full 300."""
    data = _scenario()
    data["blocks"][0]["txs"][0]["msg"]["actions"] = data["blocks"][0]["txs"][0]["msg"]["actions"][:1]
    state, blocks = replay_scenario(_without_votes(data))
    proposal_id = next(iter(state.proposals))
    data = copy.deepcopy(data)
    for tx in data["blocks"][2]["txs"]:
        tx["msg"]["proposal_id"] = proposal_id

    result = run_scenario(data)

    assert blocks[0]["results"][0]["risk_class"] == "risk_increasing"
    assert result["blocks"][2]["results"][0] == {"ok": True, "weight": "300"}


def _without_votes(data: dict) -> dict:
    copied = copy.deepcopy(data)
    copied["blocks"][2]["txs"] = []
    return copied


@pytest.mark.parametrize("section, code", [
    ({"exposed_vote_weight": "1.5"}, "invalid_genesis"),
    ({"exposed_vote_weight": "half"}, "invalid_genesis"),
    ({"threshold": "-1"}, "invalid_genesis"),
    ({"weight": "0.5"}, "invalid_genesis"),
    ("0.5", "invalid_genesis"),
])
def test_bad_exposure_options_are_refused(section, code):
    with pytest.raises(ProtocolError) as refused:
        build_state(genesis(governance={"exposure": section}))
    assert refused.value.code == code and "genesis.governance" in refused.value.message


def test_set_governance_params_moves_the_option_in_the_critical_class():
    state = build_state(genesis())
    changed = {c.name: (c.old, c.new, c.risk) for c in effects(state, {
        "type": "set_governance_params", "params": {"exposure": {"exposed_vote_weight": "0.25", "threshold": "5000"}}})}
    assert changed["governance.exposed_vote_weight_ppm"] == (1_000_000, 250_000, "critical")
    assert changed["governance.exposure_threshold_usdc"] == (10_000_000_000, 5_000_000_000, "critical")
    with pytest.raises(ProtocolError) as refused:
        effects(state, {"type": "set_governance_params", "params": {"exposure": {"exposed_vote_weight": "2"}}})
    assert refused.value.fields["field"] == "params.exposure.exposed_vote_weight"


def _closing_trade(data: dict) -> dict:
    """b0 sells its 1 BTC long to e0 (who buys back its 1 BTC short) in h3, the block after the
    snapshot, before b0 votes: both positions close."""
    data = copy.deepcopy(data)
    e0 = "0x" + "0" * 38 + "e0"
    order = {"type": "place_order", "subaccount": 0, "market": BTC, "size": "1", "price": "50000",
             "order_type": "limit"}
    data["blocks"][2]["txs"][:0] = [
        {"sender": B0, "msg": {**order, "side": "sell", "time_in_force": "gtc", "client_id": 1}},
        {"sender": e0, "msg": {**order, "side": "buy", "time_in_force": "ioc", "client_id": 1}}]
    return data


def test_closing_a_position_after_the_snapshot_escapes_neither_the_disclosure_nor_the_discount():
    """The disclosure is frozen when the vote opens (end of h2): b0 closes its long in h3 and then
    votes; it still counts 150 of its 300 (the discount) and the disclosure still names it with the
    long it held at the snapshot. Read from the live state, b0 would vote with 300 and vanish."""
    data = _closing_trade(_scenario())
    state, blocks = replay_scenario(data)
    proposal = next(iter(state.proposals.values()))

    assert [r["ok"] for r in blocks[2]["results"][:2]] == [True, True]
    assert all(not sub.positions.get(BTC) or sub.positions[BTC].size == 0
               for (owner, _), sub in state.subaccounts.items() if owner == B0)     # closed now
    assert blocks[2]["results"][2] == {"ok": True, "weight": "150", "exposed_full_weight": "300"}
    view = describe_voter_exposure(state, proposal)
    assert view["positions_at"] == "snapshot"
    assert view["delegates"][0]["delegate"] == B0 and view["delegates"][0]["directly_exposed"] is True
    assert view["delegates"][0]["markets"][0]["own_size"] == "1"
    # the frozen record is hashed state: the incremental hash equals the full recomputation
    assert state.state_hash == compute_state_hash_full(state)


def test_a_pending_proposal_shows_a_live_preview():
    data = _scenario()
    data["blocks"] = data["blocks"][:1]          # submitted in h1; the snapshot (h2) is not reached
    state, _ = replay_scenario(data)
    proposal = next(iter(state.proposals.values()))

    view = describe_voter_exposure(state, proposal)

    assert proposal.status == "pending" and view["positions_at"] == "now"
    assert [d["delegate"] for d in view["delegates"]] == [B0, C0]
    assert state.proposal_exposures == {}
