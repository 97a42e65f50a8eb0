"""The bot tools' limits as a governed parameter group (``bastion.core.bot_limits``, issue 17).

The dead-man's switch, TWAP orders and agent keys read ``state.bot_limits``; genesis sets them
(section ``bot_limits``), ``set_bot_limits`` changes them (looser: risk increasing, tighter: risk
reducing), they are hashed (a leaf absent while at the defaults, so every state that never changed
them keeps its hash) and in snapshots. The golden scenario ``bot_limits_tightened`` holds a whole
proposal: tightened limits refuse a TWAP and a switch that were valid before."""
from __future__ import annotations

import pytest
from builders import ALICE, BOB, BTC, GENESIS_TIME_MS, Chain, address, genesis
from test_governance_actions import classify, enact

from bastion.core.bot_limits import BOT_LIMIT_FIELDS, RATIO, parse_bot_limits
from bastion.core.errors import ProtocolError
from bastion.core.genesis import GENESIS_DEFAULTS, build_state
from bastion.core.hashing import compute_state_hash_full, iter_leaf_keys
from bastion.core.params import BotLimitParams
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.units import format_ppm
from bastion.scenario import scenario_defaults

AGENT = address(0xE0)
DAY_MS = 86_400_000


def twap(duration_ms: int = 600_000, **fields) -> dict:
    return {"type": "place_twap", "subaccount": 0, "market": BTC, "side": "buy", "size": "0.01",
            "duration_ms": duration_ms, **fields}


def authorize(agent: str = AGENT, expires_ms: int = GENESIS_TIME_MS + DAY_MS) -> dict:
    return {"type": "authorize_agent", "agent": agent, "subaccounts": None, "permissions": ["trade"],
            "expires_ms": expires_ms}


def schedule(time_ms: int | None) -> dict:
    return {"type": "schedule_cancel", "time_ms": time_ms}


def codes(result) -> list[str | None]:
    return [r.get("code") for r in result.results]


# --------------------------------------------------------------------------------------- defaults and genesis
def test_the_defaults_are_the_former_constants_and_genesis_shows_them_in_people_units():
    assert BotLimitParams() == BotLimitParams(
        deadman_min_delay_ms=5_000, deadman_max_triggers_per_day=10, deadman_max_owners_per_block=100,
        deadman_max_orders_per_block=10_000, twap_interval_ms=30_000, twap_min_duration_ms=60_000,
        twap_max_duration_ms=86_400_000, twap_max_per_subaccount=5, twap_max_slices_per_block=64,
        twap_default_slippage_ppm=30_000, twap_max_slippage_ppm=500_000, agent_max_per_owner=8,
        agent_max_lifetime_ms=180 * DAY_MS)
    expected = {"deadman_min_delay_s": 5, "deadman_max_triggers_per_day": 10, "deadman_max_owners_per_block": 100,
                "deadman_max_orders_per_block": 10_000, "twap_interval_s": 30, "twap_min_duration_s": 60,
                "twap_max_duration_s": 86_400, "twap_max_per_subaccount": 5, "twap_max_slices_per_block": 64,
                "twap_default_slippage": "0.03", "twap_max_slippage": "0.5", "agent_max_per_owner": 8,
                "agent_max_lifetime_days": 180}
    assert GENESIS_DEFAULTS["bot_limits"] == scenario_defaults()["bot_limits"] == expected
    assert parse_bot_limits(expected, BotLimitParams(), "bot_limits") == BotLimitParams()
    assert build_state(genesis()).bot_limits == BotLimitParams()
    # the defaults spelled out hash as no section at all: the leaf is absent at the defaults
    assert build_state(genesis(bot_limits=expected)).state_hash == build_state(genesis()).state_hash
    assert build_state(genesis(bot_limits={"twap_max_per_subaccount": 4})).state_hash != \
        build_state(genesis()).state_hash


def test_a_genesis_section_sets_the_limits_and_bad_values_name_their_path():
    state = build_state(genesis(bot_limits={"twap_interval_s": 60, "twap_default_slippage": "0.01",
                                            "agent_max_lifetime_days": 30}))
    assert (state.bot_limits.twap_interval_ms, state.bot_limits.twap_default_slippage_ppm,
            state.bot_limits.agent_max_lifetime_ms) == (60_000, 10_000, 30 * DAY_MS)
    for section, path in (({"twap_interval_s": 0}, "genesis.bot_limits"), ({"nope": 1}, "genesis.bot_limits"),
                          ({"twap_interval_s": 90}, "genesis.bot_limits"),
                          ({"agent_max_per_owner": True}, "genesis.bot_limits")):
        with pytest.raises(ProtocolError) as caught:
            build_state(genesis(bot_limits=section))
        assert caught.value.code == "invalid_genesis" and path in caught.value.message


# what else a field's extreme value needs so that the TWAP limits stay consistent
_CONSISTENT_WITH = {
    "twap_interval_s": {"twap_min_duration_s": 7 * 86_400, "twap_max_duration_s": 7 * 86_400},
    "twap_min_duration_s": {"twap_interval_s": 1, "twap_max_duration_s": 7 * 86_400},
    "twap_max_duration_s": {"twap_interval_s": 1, "twap_min_duration_s": 1},
    "twap_default_slippage": {"twap_max_slippage": "1"},
    "twap_max_slippage": {"twap_default_slippage": "0.000001"},
}
_SCALE = {"seconds": 1_000, "days": DAY_MS, "count": 1, RATIO: 1}


@pytest.mark.parametrize("spec", BOT_LIMIT_FIELDS, ids=lambda spec: spec.name)
def test_every_field_is_bounded_on_both_sides(spec):
    def wire(value: int) -> object:
        return format_ppm(value) if spec.kind == RATIO else value

    for value in (spec.minimum, spec.maximum):
        parsed = parse_bot_limits({spec.name: wire(value), **_CONSISTENT_WITH.get(spec.name, {})}, BotLimitParams(),
                                  "set_bot_limits")
        assert getattr(parsed, spec.param) == value * _SCALE[spec.kind]
    for value in (spec.minimum - 1, spec.maximum + 1):
        with pytest.raises(ProtocolError) as caught:
            parse_bot_limits({spec.name: wire(value), **_CONSISTENT_WITH.get(spec.name, {})}, BotLimitParams(),
                             "set_bot_limits")
        assert (caught.value.code, caught.value.fields["field"]) == ("invalid_field", f"set_bot_limits.{spec.name}")


# --------------------------------------------------------------------------------------- governance
@pytest.mark.parametrize("spec", BOT_LIMIT_FIELDS, ids=lambda spec: spec.name)
def test_loosening_a_limit_is_risk_increasing_and_tightening_it_risk_reducing(spec):
    state = Chain().state
    current = getattr(state.bot_limits, spec.param)
    unit = {"seconds": 1_000, "days": DAY_MS}.get(spec.kind, 1)
    looser, tighter = (current // unit + 1, current // unit - 1) if spec.looser_when_higher else \
        (current // unit - 1, current // unit + 1)

    def action(value: int) -> dict:
        return {"type": "set_bot_limits", spec.name: format_ppm(value) if spec.kind == RATIO else value}

    assert classify(state, action(looser)) == "risk_increasing"
    assert classify(state, action(tighter)) == "risk_reducing"


def test_a_mixed_change_takes_the_strictest_class_and_contradictions_are_refused():
    state = Chain().state
    mixed = {"type": "set_bot_limits", "twap_max_per_subaccount": 2, "agent_max_per_owner": 9}
    assert classify(state, mixed) == "risk_increasing"
    for action, code in (({"twap_interval_s": 61}, "invalid_bot_limits"),              # above the 60 s minimum
                         ({"twap_min_duration_s": 100_000}, "invalid_bot_limits"),     # above the 86,400 s maximum
                         ({"twap_default_slippage": "0.6"}, "invalid_bot_limits"),     # above the 0.5 cap
                         ({"twap_max_slippage": "0.01"}, "invalid_bot_limits"),        # below the 0.03 default
                         ({"agent_max_lifetime_days": 0}, "invalid_field"),
                         ({"twap_max_slippage": "1.5"}, "invalid_field")):
        with pytest.raises(ProtocolError) as caught:
            classify(state, {"type": "set_bot_limits", **action})
        assert caught.value.code == code, action


def test_an_enacted_change_is_hashed_in_snapshots_and_its_leaf_leaves_when_back_at_the_defaults():
    chain = Chain()
    before = chain.full_hash()
    assert ("bot_limits",) not in list(iter_leaf_keys(chain.state))  # the hash of an unchanged state is as before

    events = enact(chain, {"type": "set_bot_limits", "twap_max_per_subaccount": 1, "deadman_min_delay_s": 60})
    assert [(e["name"], e["old"], e["value"]) for e in events if e["type"] == "param_changed"] == [
        ("bot_limits.deadman_min_delay_ms", 5_000, 60_000), ("bot_limits.twap_max_per_subaccount", 5, 1)]
    assert ("bot_limits",) in list(iter_leaf_keys(chain.state))
    changed = chain.full_hash()
    restored = state_from_document(state_to_document(chain.state))
    assert restored.bot_limits == chain.state.bot_limits and compute_state_hash_full(restored) == changed

    enact(chain, {"type": "set_bot_limits", "twap_max_per_subaccount": 5, "deadman_min_delay_s": 5})
    assert chain.state.bot_limits == BotLimitParams()
    assert ("bot_limits",) not in list(iter_leaf_keys(chain.state))  # enact checked incremental == full
    assert chain.full_hash() not in (before, changed)  # the parameter history records both changes


# --------------------------------------------------------------------------------------- the handlers read them
def test_tightened_agent_limits_refuse_new_grants_and_keep_the_grants_in_force():
    chain = Chain(genesis(bot_limits={"agent_max_per_owner": 1, "agent_max_lifetime_days": 2}))
    result = chain.block([(ALICE, authorize()), (ALICE, authorize(address(0xE1))),
                          (ALICE, authorize(address(0xE2), GENESIS_TIME_MS + 3 * DAY_MS)),
                          (ALICE, authorize(AGENT, GENESIS_TIME_MS + 2 * DAY_MS))])  # replacing its own grant
    assert codes(result) == [None, "too_many_agents", "invalid_agent_expiry", None]

    enact(chain, {"type": "set_bot_limits", "agent_max_per_owner": 0})
    assert list(chain.state.agents[ALICE]) == [AGENT]           # in force, untouched
    later = chain.block([(AGENT, {"type": "place_order", "owner": ALICE, "subaccount": 0, "market": BTC,
                                  "side": "buy", "size": "0.01", "price": "49000", "client_id": 1}),
                         (BOB, authorize())])
    assert codes(later) == [None, "too_many_agents"]


def test_twap_limits_set_the_slices_their_interval_the_guard_and_the_per_block_budget():
    chain = Chain(genesis(bot_limits={"twap_interval_s": 60, "twap_min_duration_s": 120,
                                      "twap_default_slippage": "0.01", "twap_max_slices_per_block": 2}))
    placed = chain.block([(ALICE, twap(600_000)), (ALICE, twap(60_000)), (BOB, twap(600_000)),
                          (BOB, twap(600_000, max_slippage="0.5")), (ALICE, twap(600_000))])
    assert codes(placed) == [None, "twap_duration_out_of_range", None, None, None]
    assert [r.get("slices") for r in placed.results] == [10, None, 10, 10, 10]   # 600 s / 60 s
    first = [r["twap_id"] for r in placed.results if r["ok"]]
    assert {t.slippage_ppm for t in chain.state.twap_orders.values()} == {10_000, 500_000}
    sliced = [e["twap_id"] for e in placed.events if e["type"] == "twap_slice"]
    assert sliced == first[:2]                                   # 2 slices a block, in id order
    assert [e["twap_id"] for e in chain.block([]).events if e["type"] == "twap_slice"] == first[2:]
    assert {t.next_slice_ms for t in chain.state.twap_orders.values()} == {placed.time_ms + 60_000}

    # a governed interval applies from the next slice on: the one due now runs, the next is 90 s later
    enact(chain, {"type": "set_bot_limits", "twap_interval_s": 90})
    twap_id = first[0]
    due = chain.state.twap_orders[twap_id].next_slice_ms
    chain.block([], advance_s=(due - chain.state.time_ms) // 1_000)
    assert chain.state.twap_orders[twap_id].next_slice_ms == due + 90_000


def test_deadman_limits_bound_the_delay_the_daily_firings_and_the_owners_per_block():
    chain = Chain(genesis(bot_limits={"deadman_min_delay_s": 30, "deadman_max_triggers_per_day": 1,
                                      "deadman_max_owners_per_block": 1}))
    now = chain.state.time_ms + 1_000
    armed = chain.block([(ALICE, schedule(now + 29_000)), (ALICE, schedule(now + 30_000)),
                         (BOB, schedule(now + 30_000))])
    assert codes(armed) == ["schedule_too_soon", None, None]
    fired = chain.block([], advance_s=30)
    assert [e["owner"] for e in fired.events if e["type"] == "scheduled_cancel"] == [ALICE]   # one owner a block
    assert [e["owner"] for e in chain.block([]).events if e["type"] == "scheduled_cancel"] == [BOB]
    again = chain.block([(ALICE, schedule(chain.state.time_ms + 1_000 + 30_000))])
    assert codes(again) == ["too_many_scheduled_cancels"]                                   # once a day
