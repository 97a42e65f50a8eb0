"""The liquidation step's work per block is bounded (liveness: no input may stall a block).

A mass bankruptcy beyond the backstop's limits (``benchmarks/bench_liquidation.py --mass-bankruptcy``:
bankrupt longs, an empty book, a backstop that may take nothing, shorts in profit) is worked off
``max_deleveragings_per_block`` deleveragings and ``max_liquidations_per_block`` accounts per block,
worst first, with exactly the outcome of an unbounded run; and a deleveraging values the holders it
touches, not every holder of the market (``liquidation.AdlRanking``).
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from bastion.core import liquidation, margin
from bastion.core.genesis import build_state
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import OracleUpdate
from bastion.core.transition import apply_tx, begin_block, check_invariants, end_block
from waterfall_checks import check_waterfall

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
try:
    from bench_liquidation import MARKETS, OPERATOR, mass_bankruptcy_genesis
finally:
    sys.path.remove(str(ROOT / "benchmarks"))

UNBOUNDED = {"max_liquidations_per_block": 1_000_000, "max_deleveragings_per_block": 1_000_000}


def run(bankrupt: int, holders: int, bounds: dict) -> tuple[object, list[list[dict]]]:
    """Apply blocks from the oracle drop (100 to 80) until no account is liquidatable; (state, events per block)."""
    state = build_state(mass_bankruptcy_genesis(bankrupt, holders, bounds))
    blocks: list[list[dict]] = []
    for block in range(1, 200):
        events: list[dict] = []
        begin_block(state, state.time_ms + 1_000, events)
        if block == 2:
            assert apply_tx(state, OPERATOR, OracleUpdate(prices={MARKETS[0]: "80"}), events)["ok"]
        end_block(state, events)
        check_waterfall(state, events)
        check_invariants(state)
        blocks.append(events)
        if block > 2 and not state.liquidation_watch:
            return state, blocks
    raise AssertionError("the mass bankruptcy was never worked off")


def deleveraged(events: list[dict]) -> list[tuple[str, int]]:
    """The accounts deleveraged (rungs 3 and 4) in one block's events, in order, once each."""
    return list(dict.fromkeys((e["owner"], e["number"]) for e in events if e["type"] in ("deleveraging", "bad_debt")))


def test_a_mass_bankruptcy_is_worked_off_within_the_bounds_with_the_unbounded_outcome() -> None:
    # Arrange: 12 bankrupt longs of 10 units against 30 shorts (4 units each); at most 7 accounts
    # and 5 deleveragings per block
    bounds = {"max_liquidations_per_block": 7, "max_deleveragings_per_block": 5}

    # Act
    state, blocks = run(12, 30, bounds)
    free, free_blocks = run(12, 30, UNBOUNDED)

    # Assert: the unbounded run deleverages all 12 in the drop's block; the bounded one 5, 5, 2 in
    # three blocks, worst first (all equally bad: by owner), each block deferring what is over a bound
    # (each run's last block finds the watched accounts healthy and empties the watch)
    assert [len(deleveraged(events)) for events in free_blocks] == [0, 12, 0]
    per_block = [deleveraged(events) for events in blocks]
    assert [len(d) for d in per_block] == [0, 5, 5, 2, 0]
    assert [key for d in per_block for key in d] == deleveraged(free_blocks[1])
    drop = blocks[1]
    assert sum(e["type"] == "liquidation_deferred" and e["reason"] == "block_limit" for e in drop) == 12 - 7
    assert sum(e["type"] == "deleveraging_deferred" and e["reason"] == "block_limit" for e in drop) == 7 - 5
    # the same outcome, account by account: every long flat, the shorts' balances and positions equal
    assert not state.liquidation_watch
    for key, sub in free.subaccounts.items():
        bounded_sub = state.subaccounts[key]
        assert (bounded_sub.balance, {t: (p.size, p.cost) for t, p in bounded_sub.positions.items()}) == \
            (sub.balance, {t: (p.size, p.cost) for t, p in sub.positions.items()}), key
    market = state.markets[MARKETS[0]]
    assert market.open_interest == free.markets[MARKETS[0]].open_interest == 0
    assert state.bad_debt == free.bad_debt
    assert sum(s.balance for s in state.subaccounts.values()) == sum(s.balance for s in free.subaccounts.values())
    assert state.state_hash == compute_state_hash_full(state)


def test_the_bounds_are_genesis_defaults_and_governed_with_a_risk_class() -> None:
    from bastion.core.governance.actions import LIQUIDATION_FIELDS, compute_numeric_changes
    from bastion.core.governance.changes import ParamGroup
    from bastion.core.errors import ProtocolError
    from bastion.core.messages import SetLiquidationParams

    params = build_state(mass_bankruptcy_genesis(1, 1)).liquidation
    assert (params.max_liquidations_per_block, params.max_deleveragings_per_block) == (200, 10)
    changes = compute_numeric_changes(ParamGroup.LIQUIDATION, "", params, SetLiquidationParams(
        max_liquidations_per_block=500, max_deleveragings_per_block=5), LIQUIDATION_FIELDS)
    assert [(c.name, c.old, c.new, c.risk) for c in changes] == [
        ("liquidation.max_liquidations_per_block", 200, 500, "risk_increasing"),
        ("liquidation.max_deleveragings_per_block", 10, 5, "risk_reducing")]
    with pytest.raises(ProtocolError):  # a bound of 0 would stop the waterfall for good
        compute_numeric_changes(ParamGroup.LIQUIDATION, "", params, SetLiquidationParams(max_deleveragings_per_block=0),
                                LIQUIDATION_FIELDS)


def test_a_deleveraging_values_only_the_holders_it_touches(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: 30 bankrupt longs against 300 shorts of one unit, unbounded (all in one block); count
    # the valuations (TNC or margin) of every subaccount during the liquidation step
    valued: Counter = Counter()
    for name in ("get_subaccount_risk", "get_net_collateral"):
        real = getattr(margin, name)

        def counting(state, sub, *args, _real=real, **kwargs):
            valued[(sub.owner, sub.number)] += 1
            return _real(state, sub, *args, **kwargs)
        monkeypatch.setattr(liquidation, name, counting, raising=False)  # main had no get_net_collateral here

    # Act
    state, blocks = run(30, 300, UNBOUNDED)

    # Assert: 30 deleveragings, each closing one unit of ten shorts; every short is valued a few times
    # (the scan after the oracle move, the ranking once, its own deleveraging's margin checks), the
    # same for the first and the last to be deleveraged: not once per deleveraging before its own
    # (up to 30 times, as when each ADL re-ranked every holder)
    drop = blocks[1]
    assert len(deleveraged(drop)) == 30
    shorts = [key for key in state.subaccounts
              if key not in set(deleveraged(drop)) and not liquidation.is_backstop(key[0])]
    assert len(shorts) == 300
    assert max(valued[key] for key in shorts) <= 6
