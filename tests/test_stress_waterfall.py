"""The stress engines see the loss waterfall (issue 14): losses moved onto traders who were not
liquidated (ADL counterparties and socialised bad debt), the backstop's inventory, the funds' end,
and the gate's limit on losses to traders.

* the exact replay reads them from the state machine's events (``replay._Metrics``), with the
  contract's ``counterparty_loss`` or, before the core emits it, the same figure from the event's
  bankruptcy quote, size and oracle price;
* the fast path models the backstop (takeover within its limits, the fund paying its unwinding)
  and ADL beyond them (``engine._backstop``);
* the cross-check holds on a cascade: an ADL counterparty later liquidated itself.
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from builders import ALICE, BOB, BTC, CAROL, genesis, market

from bastion.core.genesis import build_state
from bastion.stress import StressThresholds, build_report, extract_inputs, parse_scenario_set, run_sweep
from bastion.stress import replay
from bastion.stress.engine import BACKSTOP_DEFAULTS
from bastion.stress.report import parse_thresholds
from bastion.stress.replay import compare_results, run_exact
from bastion.stress.scenarios import FORMAT

USDC = 10**6
DAVE = "0x" + "d0".rjust(40, "0")


def position(owner: str, usdc: str, size: str) -> dict:
    return {"address": owner,
            "subaccounts": [{"number": 0, "usdc": usdc, "positions": [{"market": BTC, "size": size}]}]}


def one_set(*specs: dict, baseline_depth: str = "2000000") -> object:
    return parse_scenario_set({"format": FORMAT, "name": "waterfall", "version": 1, "seed": 3,
                               "engine": {"block_ms": 1000, "spread": "0.001", "baseline_depth": baseline_depth,
                                          "max_slippage": "0.5"},
                               "scenarios": list(specs)})


# --------------------------------------------------------------------------------------- exact: events
def test_exact_metrics_read_losses_to_traders_and_the_backstop_from_events():
    # BTC-USD of the builders: 4 size and 1 price decimals, so lots x ticks x 10 micro-USDC
    state = build_state(genesis(markets=[market(BTC)], accounts=[], insurance_funds={"cross": "1000"}))
    metrics = replay._Metrics(state)
    common = {"market": BTC, "number": 0, "net_collateral": -1, "maintenance": 1}
    metrics.observe(state, [
        # a bankrupt long sells 1 BTC at its bankruptcy quote 51,000 against an oracle of 50,000: without the
        # field, the counterparty's loss is quote minus oracle value, 1,000 USDC
        {"type": "deleveraging", "owner": ALICE, "size": 10_000, "bankruptcy_quote": 51_000 * USDC,
         "oracle_price": 500_000, **common},
        # with the contract's field, the field is the figure
        {"type": "deleveraging", "owner": BOB, "size": 10_000, "bankruptcy_quote": 51_000 * USDC,
         "oracle_price": 500_000, "counterparty_loss": 700 * USDC, **common},
        {"type": "bad_debt", "owner": CAROL, "size": 10_000, "bankruptcy_quote": 50_300 * USDC,
         "oracle_price": 500_000, "amount": 300 * USDC, "pool": "cross", "shares": [], **common},
        # the backstop takes 1 BTC at 45,000 (the fund pays 2,000), then unwinds half at 44,000
        {"type": "backstop_takeover", "owner": DAVE, "number": 0, "market": BTC, "size": -10_000,
         "bankruptcy_quote": 47_000 * USDC, "oracle_price": 450_000, "fund_delta": -2_000 * USDC, "pool": "cross",
         "inventory": 10_000},
        {"type": "backstop_unwind", "market": BTC, "size": -5_000, "price": 440_000, "pool": "cross",
         "inventory": 5_000},
    ])
    result = metrics.result(SimpleNamespace(index=0, name="x", kind="shock"), SimpleNamespace(steps=1))

    assert result.trader_loss_usdc == (1_000 + 700 + 300) * USDC
    assert result.backstop_peak_usdc == 45_000 * USDC          # 1 BTC at 45,000; 22,000 after the unwind
    assert result.insurance_payouts_usdc == 2_000 * USDC
    assert result.liquidations == 4                            # Alice, Bob, Carol, Dave
    assert result.insurance_final_usdc == 1_000 * USDC         # the state's funds (no event moved them)


# --------------------------------------------------------------------------------------- fast path
def thin_book_state(fund: str):
    """Alice long 2 BTC at 50,000 with 6,000 USDC of equity (maintenance 1.2%: 1,200); Bob the short."""
    return build_state(genesis(markets=[market(BTC)], insurance_funds={"cross": fund}, accounts=[
        position(ALICE, "-94000", "2"), position(BOB, "1000000", "-2")]))


def with_backstop(inputs, **limits):
    """The inputs with other backstop limits (the core's LiquidationParams gains them with the waterfall)."""
    params = {field.name: getattr(inputs.liquidation, field.name) for field in dataclasses.fields(inputs.liquidation)}
    return dataclasses.replace(inputs, liquidation=SimpleNamespace(**{**params, **BACKSTOP_DEFAULTS, **limits}))


# -10% with 99% of a 10,000 USDC book gone: Alice is bankrupt (TNC 6,000 - 10,000 < 0) and the book holds
# 100 USDC per 1% of price: nearly all of her 90,000 USDC of BTC is beyond the fillable band
THIN = {"kind": "thin_book", "name": "thin-down-10", "move": "-0.1", "correlated": False, "depth_cut": "0.99"}


def test_the_backstop_takes_what_the_book_cannot_and_traders_lose_nothing():
    scenario_set = one_set(THIN, baseline_depth="10000")
    [result] = run_sweep(extract_inputs(thin_book_state("1000000")), scenario_set)

    assert result.liquidations == 1
    assert result.trader_loss_usdc == 0 and result.adl_notional_usdc == 0 and result.bad_debt_usdc == 0
    assert 85_000 * USDC < result.backstop_peak_usdc <= 90_000 * USDC    # within 1M USDC and half the fund
    # the fund pays her negative equity and the backstop's unwinding: more than her 4,000 USDC below zero
    assert result.insurance_payouts_usdc > 4_000 * USDC
    assert result.insurance_final_usdc == 1_000_000 * USDC + result.insurance_fees_usdc - result.insurance_payouts_usdc


def test_beyond_the_backstop_limits_winners_are_deleveraged_and_the_gate_sees_it():
    scenario_set = one_set(THIN, baseline_depth="10000")
    inputs = extract_inputs(thin_book_state("1000000"))
    [capped] = run_sweep(with_backstop(inputs, backstop_max_notional_usdc=0), scenario_set)
    [half] = run_sweep(with_backstop(inputs, backstop_max_notional_usdc=45_000 * USDC), scenario_set)
    [free] = run_sweep(inputs, scenario_set)

    assert capped.backstop_peak_usdc == 0 and capped.trader_loss_usdc > 0 and capped.adl_notional_usdc > 85_000 * USDC
    assert half.backstop_peak_usdc == 45_000 * USDC
    assert 0 < half.trader_loss_usdc < capped.trader_loss_usdc
    assert free.trader_loss_usdc == 0
    # counterparties lose the deleveraged share of her loss; the fund still pays it all (each metric bounds
    # its exact counterpart from above)
    assert capped.trader_loss_usdc <= capped.insurance_payouts_usdc

    strict = build_report(inputs, scenario_set, [capped])
    lenient = build_report(inputs, scenario_set, [capped], parse_thresholds({"max_loss_to_traders": "1000000"}))
    check = strict.document["verdict"]["checks"][-1]
    assert check == {"name": "loss_to_traders_var99", "value": capped.trader_loss_usdc, "limit_usdc": 0,
                     "passed": False}
    assert strict.document["verdict"]["passed"] is False and lenient.document["verdict"]["passed"] is True
    assert strict.document["thresholds"]["max_loss_to_traders"] == "0"
    assert strict.document["summary"]["worst_trader_loss_usdc"] == capped.trader_loss_usdc
    assert strict.document["summary"]["scenarios_with_trader_loss"] == 1


def test_an_empty_fund_socialises_and_the_backstop_cannot_take_anything():
    scenario_set = one_set(THIN, baseline_depth="10000")
    [result] = run_sweep(extract_inputs(thin_book_state("0")), scenario_set)

    assert result.backstop_peak_usdc == 0                      # half of an empty fund
    assert result.depleted_pools == ("cross",)
    assert result.trader_loss_usdc >= result.bad_debt_usdc > 0
    assert result.insurance_final_usdc == result.insurance_fees_usdc - result.insurance_payouts_usdc


def test_thresholds_parse_the_limit_on_losses_to_traders():
    assert parse_thresholds({"max_loss_to_traders": "2500.5"}).max_loss_to_traders_usdc == 2_500_500_000
    assert StressThresholds().document()["max_loss_to_traders"] == "0"
    with pytest.raises(Exception, match="max_loss_to_traders"):
        parse_thresholds({"max_loss_to_traders": "-1"})


# --------------------------------------------------------------------------------------- the cascade
def test_cross_check_holds_on_a_cascade_where_an_adl_counterparty_is_later_liquidated(monkeypatch):
    # Alice short 1 BTC with 2,000 USDC of equity at 50,000; Bob long 2 BTC at 10x (TNC 5,000); Carol long
    # 1 BTC unlevered; Dave short 2 with plenty. A 1,000 USDC fund: its backstop (half of it) cannot take
    # Alice's bitcoin. +10%: Alice is bankrupt (TNC -3,000) on a book of 10 USDC per 1%: her short is
    # deleveraged against the most profitable x levered long, Bob, at her bankruptcy price (52,000 against
    # an oracle of 55,000: Bob loses about 3,000). Then -14% to 43,000: Bob's remaining 1.0011 BTC (balance
    # -43,057.2, TNC 0.4 < MMR 1.2% x 43,047.3 = 516.6) is liquidated: the cascade. The fast path ignores what
    # ADL did to Bob and liquidates his whole 2 BTC at the dump (TNC -9,000): more loss, never less.
    state = build_state(genesis(markets=[market(BTC)], insurance_funds={"cross": "1000"}, accounts=[
        position(ALICE, "52000", "-1"), position(BOB, "-95000", "2"), position(CAROL, "0", "1"),
        position(DAVE, "1000000", "-2")]))
    scenario_set = one_set({"kind": "oracle_manipulation", "name": "pump-dump", "market": BTC, "pump": "0.1",
                            "pump_steps": 1, "hold_steps": 1, "dump": "-0.14", "dump_steps": 1,
                            "depth_cut": "0.999"}, baseline_depth="10000")
    seen: list[dict] = []
    observe = replay._Metrics.observe
    monkeypatch.setattr(replay._Metrics, "observe", lambda self, st, events: (seen.extend(events),
                                                                             observe(self, st, events))[1])

    [exact] = run_exact(state, scenario_set)
    [fast] = run_sweep(extract_inputs(state), scenario_set)

    deleveraged = [e for e in seen if e["type"] == "deleveraging"]
    assert deleveraged and deleveraged[0]["owner"] == ALICE and deleveraged[0]["counterparty"]["owner"] == BOB
    first_adl = seen.index(deleveraged[0])
    assert any(e["type"] in ("liquidation", "deleveraging", "bad_debt", "backstop_takeover") and e.get("owner") == BOB
               for e in seen[first_adl + 1:])
    assert exact.trader_loss_usdc > 0
    print(f"\nfast {fast}\nexact {exact}")
    assert compare_results(fast, exact, agreement=False) == []
    assert fast.loss_usdc >= exact.loss_usdc and fast.trader_loss_usdc >= exact.trader_loss_usdc
