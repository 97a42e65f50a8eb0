"""The loss waterfall's details that the golden scenarios (``liquidation_waterfall_*``) do not isolate:
the entry-price bound of ADL and the deficit it leaves, a winner with thin margin taking part of the
size, the takeover of a stalled solvent account, the backstop's unsignable owner, and the new
governed parameters. Numbers are worked by hand in each docstring (BTC-USD of the golden scenarios:
notional = lots x ticks x 100 micro-USDC, IMF 5%, maintenance fraction 0.6, so at 45,000 one lot is
worth 4.5 USDC with an MMR of 0.135 USDC and an IMR of 0.225 USDC)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.core import liquidation
from bastion.core.enums import MarketStatus
from bastion.core.governance.actions import LIQUIDATION_FIELDS, compute_numeric_changes
from bastion.core.governance.changes import ParamGroup
from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import SetLiquidationParams, decode_message, normalize_address
from bastion.core.transition import apply_block, check_invariants
from bastion.scenario import run_scenario, scenario_defaults

SCENARIOS = Path(__file__).parent / "scenarios"
A, C, D, E, F = ("0x" + "0" * 38 + x for x in ("a0", "c0", "d0", "e0", "f0"))


def base(name: str = "liquidation_waterfall_fund_exhausted") -> dict:
    doc = json.loads((SCENARIOS / f"{name}.json").read_text())
    doc.pop("expect")
    return doc


def account(address: str, usdc: str, *positions: tuple[str, str | None]) -> dict:
    return {"address": address, "subaccounts": [{"number": 0, "usdc": usdc, "positions": [
        {"market": "BTC-USD", "size": size, **({"entry_price": entry} if entry else {})}
        for size, entry in positions]}]}


def events_of(out: dict, kind: str, block: int = 0) -> list[dict]:
    return [e for e in out["blocks"][block]["events"] if e["type"] == kind]


def subaccount(out: dict, owner: str) -> dict:
    (found,) = [s for s in out["final"]["subaccounts"] if s["owner"] == owner]
    return found


def test_adl_never_closes_a_winner_below_its_entry_and_the_withheld_deficit_is_socialised() -> None:
    """a0 long 1 BTC, usdc -47,000 (TNC -2,000 at 45,000); f0 long 0.5; e0 short 1.5 BTC entered at
    46,000 (cost -69,000), the only winner. Fund 0: no backstop. ADL of a0's 10,000 lots against e0:
    bankruptcy quote 45,000 + 2,000 = 47,000, but e0's cost for those lots is -69,000 x 10,000 /
    15,000 = -46,000, so the quote is min(47,000, 46,000) = 46,000 (e0 realises exactly 0) and the
    counterparty loss is 1,000. a0 is flat with usdc -1,000: that deficit is charged to the opposing
    shorts left (e0's 0.5 BTC) as bad debt of 1,000."""
    doc = base()
    doc["genesis"]["accounts"] = [account(A, "-47000", ("1", None)), account(F, "30000", ("0.5", None)),
                                  account(E, "100000", ("-1.5", "46000"))]
    out = run_scenario(doc)
    (adl,) = events_of(out, "deleveraging")
    assert (adl["size"], adl["bankruptcy_quote"], adl["quote"], adl["counterparty_loss"]) == (
        "1", "47000", "46000", "1000")
    assert adl["counterparty"]["owner"] == E
    (debt,) = events_of(out, "bad_debt")
    assert (debt["size"], debt["amount"], debt["shares"]) == ("0", "1000", [{"owner": E, "number": 0, "size": "0",
                                                                             "payment": "1000"}])
    assert subaccount(out, A)["usdc"] == "0" and subaccount(out, A)["positions"] == []
    # e0: 100,000 - 46,000 - 1,000; its remaining 0.5 short keeps its entry (cost -23,000)
    e0 = subaccount(out, E)
    assert e0["usdc"] == "53000"
    assert [(p["size"], p["cost"]) for p in e0["positions"]] == [("-0.5", "-23000")]


def test_a_winner_with_thin_margin_takes_the_largest_size_it_can_instead_of_being_skipped() -> None:
    """a0 long 1 BTC, usdc -49,000: TNC -4,000, MMR 1,350 at 45,000, so each lot's bankruptcy quote is
    4.5 + 4,000 x 0.135 / 1,350 = 4.9 USDC. d0, short 1 BTC from 50,000 with usdc 47,600: TNC 2,600,
    IMR 2,250. Taking k lots costs it 0.4k and frees 0.225k of IMR: 2,600 - 0.4k >= 2,250 - 0.225k
    holds up to k = 2,000; beyond, it falls below its IMR with a lower TNC/MMR (invalid). So d0 takes
    0.2 BTC at 9,800 (today's engine skipped it), and the other 0.8 BTC is socialised onto it."""
    doc = base()
    doc["genesis"]["accounts"] = [account(A, "-49000", ("1", None)), account(D, "47600", ("-1", None))]
    out = run_scenario(doc)
    (adl,) = events_of(out, "deleveraging")
    assert (adl["size"], adl["quote"], adl["counterparty_loss"]) == ("0.2", "9800", "800")
    assert not events_of(out, "deleveraging_skipped")
    (debt,) = events_of(out, "bad_debt")
    # a0 after the ADL: usdc -39,200, 8,000 lots worth 36,000: quote 39,200, bad debt 3,200
    assert (debt["size"], debt["bankruptcy_quote"], debt["amount"]) == ("0.8", "39200", "3200")


def test_a_solvent_account_that_cannot_reduce_is_taken_over_after_backstop_after_blocks() -> None:
    """a0 long 1 BTC, usdc -44,000: at 45,000 TNC 1,000 < MMR 1,350 (liquidatable, solvent). The book
    stays empty; with backstop_after_blocks 2 it is retried in blocks 0 and 1 and taken over in block
    2: oracle value 45,000 vs bankruptcy quote 45,000 - 1,000 = 44,000, so the fund receives the
    capped fee floor(45,000 x 1.5%) = 675 and a0 receives 44,325 (usdc 325, flat)."""
    doc = base("liquidation_waterfall_backstop_full_fund")
    doc.pop("expect", None)
    doc["genesis"]["liquidation"] = {"backstop_after_blocks": 2}
    doc["genesis"]["accounts"][0]["subaccounts"][0]["usdc"] = "-44000"
    doc["blocks"] += [{"advance": 1, "txs": []}, {"advance": 1, "txs": []}]
    out = run_scenario(doc)
    assert [len(events_of(out, "backstop_takeover", b)) for b in range(3)] == [0, 0, 1]
    assert [len(events_of(out, "liquidation_incomplete", b)) for b in range(3)] == [1, 1, 1]
    (takeover,) = events_of(out, "backstop_takeover", 2)
    assert (takeover["reason"], takeover["fund_delta"], takeover["received"], takeover["bankruptcy_quote"]) == (
        "stalled", "675", "44325", "44000")
    assert out["final"]["insurance_funds"]["cross"] == "100675"
    assert subaccount(out, A)["usdc"] == "325"


def test_the_stall_counter_is_state_and_resets_when_the_account_leaves_liquidation() -> None:
    doc = base("liquidation_waterfall_backstop_full_fund")
    doc.pop("expect", None)
    doc["genesis"]["accounts"][0]["subaccounts"][0]["usdc"] = "-44000"
    state = build_state(doc["genesis"])
    apply_block(state, state.time_ms + 1000,
                [(tx["sender"], decode_message(tx["msg"])) for tx in doc["blocks"][0]["txs"]])
    assert state.liquidation_stalls == {(A, 0): 1}
    assert state.state_hash == compute_state_hash_full(state)
    apply_block(state, state.time_ms + 1000, [])
    assert state.liquidation_stalls == {(A, 0): 2}
    price = {"sender": doc["blocks"][0]["txs"][0]["sender"],
             "msg": {"type": "oracle_update", "prices": {"BTC-USD": "50000"}}}
    apply_block(state, state.time_ms + 1000, [(price["sender"], decode_message(price["msg"]))])
    assert state.liquidation_stalls == {}
    assert state.state_hash == compute_state_hash_full(state)


def test_nobody_can_sign_deposit_to_or_transfer_to_a_backstop() -> None:
    owner = liquidation.BACKSTOP_PREFIX + "cross"
    with pytest.raises(ProtocolError) as error:
        normalize_address(owner, field="to_owner")
    assert error.value.code == "invalid_address"
    assert liquidation.is_backstop(owner) and not liquidation.is_backstop(A)


def test_the_backstop_parameters_are_genesis_defaults_and_governed_with_a_risk_class() -> None:
    defaults = scenario_defaults()["liquidation"]  # what `bastion scenario defaults` prints
    assert {k: defaults[k] for k in ("backstop_max_notional", "backstop_max_fund_share", "backstop_unwind_portion",
                                     "backstop_after_blocks")} == {
        "backstop_max_notional": "1000000", "backstop_max_fund_share": "0.5", "backstop_unwind_portion": "0.1",
        "backstop_after_blocks": 10}
    state = build_state(base()["genesis"])
    params = state.liquidation
    assert (params.backstop_max_notional_usdc, params.backstop_max_fund_share_ppm, params.backstop_unwind_portion_ppm,
            params.backstop_after_blocks) == (1_000_000_000_000, 500_000, 100_000, 10)
    raised = compute_numeric_changes(ParamGroup.LIQUIDATION, "", params, SetLiquidationParams(
        backstop_max_notional="2000000", backstop_max_fund_share="0.6", backstop_unwind_portion="0.2",
        backstop_after_blocks=20), LIQUIDATION_FIELDS)
    assert [(c.name, c.old, c.new, c.risk) for c in raised] == [
        ("liquidation.backstop_max_notional_usdc", 1_000_000_000_000, 2_000_000_000_000, "risk_increasing"),
        ("liquidation.backstop_max_fund_share_ppm", 500_000, 600_000, "risk_increasing"),
        ("liquidation.backstop_unwind_portion_ppm", 100_000, 200_000, "risk_increasing"),
        ("liquidation.backstop_after_blocks", 10, 20, "risk_increasing")]
    lowered = compute_numeric_changes(ParamGroup.LIQUIDATION, "", params,
                                      SetLiquidationParams(backstop_max_notional="0"),
                                      LIQUIDATION_FIELDS)
    assert lowered[0].risk == "risk_reducing"
    with pytest.raises(ProtocolError):
        compute_numeric_changes(ParamGroup.LIQUIDATION, "", params, SetLiquidationParams(backstop_after_blocks=0),
                                LIQUIDATION_FIELDS)


def test_a_takeover_is_refused_when_the_backstop_is_underwater_beyond_the_fund() -> None:
    """The backstop's equity counts against its fund: with the cross backstop holding 1 BTC bought
    at 45,000 and the price at 40,000, the fund of 98,000 has an equity of 93,000."""
    doc = base("liquidation_waterfall_backstop_full_fund")
    doc.pop("expect", None)
    out_state = build_state(doc["genesis"])
    apply_block(out_state, out_state.time_ms + 1000,
                [(tx["sender"], decode_message(tx["msg"])) for tx in doc["blocks"][0]["txs"]])
    assert liquidation.fund_equity(out_state, "cross") == 98_000_000_000
    oracle = doc["blocks"][0]["txs"][0]["sender"]
    apply_block(out_state, out_state.time_ms + 1000,
                [(oracle, decode_message({"type": "oracle_update", "prices": {"BTC-USD": "40000"}}))])
    assert liquidation.fund_equity(out_state, "cross") == 93_000_000_000
    check_invariants(out_state)


def test_final_settlement_closes_the_backstop_at_the_oracle_and_its_loss_goes_to_the_fund() -> None:
    """liquidation_waterfall_backstop_full_fund's block 0 leaves the cross backstop long 1 BTC at cost
    45,000 (fund 98,000). The oracle then reads 44,000 for 61 minutes, the whole settlement window
    (issue 16: the settlement price is the window's average, not the settling block's oracle), and
    the market is put in final settlement (as an executed delist would): the backstop (TNC -1,000)
    is not deleveraged against b0 but closed
    at the oracle price like any solvent position: it receives 44,000 (usdc -1,000), and the sweep
    moves that loss to the fund (97,000); b0 pays 44,000 for its short (usdc 16,000)."""
    doc = base("liquidation_waterfall_backstop_full_fund")
    state = build_state(doc["genesis"])
    oracle = doc["blocks"][0]["txs"][0]["sender"]
    apply_block(state, state.time_ms + 1000, [(oracle, decode_message(doc["blocks"][0]["txs"][0]["msg"]))])
    at_44000 = [(oracle, decode_message({"type": "oracle_update", "prices": {"BTC-USD": "44000"}}))]
    apply_block(state, state.time_ms + 1000, at_44000)
    market = state.markets["BTC-USD"]
    market.status = MarketStatus.FINAL_SETTLEMENT
    state.touch(market.key)
    result = apply_block(state, state.time_ms + 3_660_000, at_44000)   # the window starts at minute 1
    assert [e["price"] for e in result.events if e["type"] == "settlement_price"] == [44_000]
    assert not [e for e in result.events if e["type"] in ("deleveraging", "bad_debt")]
    backstop = state.subaccounts[(liquidation.BACKSTOP_PREFIX + "cross", 0)]
    assert (backstop.balance, backstop.positions) == (0, {})
    assert state.insurance_funds["cross"] == 97_000_000_000
    assert state.subaccounts[("0x" + "0" * 38 + "b0", 0)].balance == 16_000_000_000
    check_invariants(state)
    assert state.state_hash == compute_state_hash_full(state)


def test_the_backstop_charges_the_fund_the_whole_deficit_at_the_losing_position() -> None:
    """liquidation_waterfall_cross_contagion with a cross fund of 100,000: a0 (TNC -5,500) loses on
    SOL and wins on BTC, so its deficit is attributed to SOL alone (deficit_quote): the backstop
    takes the 500 SOL at 40,000 + 5,500 = 45,500 (the fund pays 5,500; inventory 40,000 <= 0.5 x
    94,500), which leaves TNC 0; then the BTC short at its oracle value 9,000 (the fund pays 0).
    Nobody is deleveraged; c0 (the underwater BTC long) and d0 are untouched."""
    doc = base("liquidation_waterfall_cross_contagion")
    doc["genesis"]["insurance_funds"] = {"cross": "100000"}
    out = run_scenario(doc)
    takeovers = [(e["market"], e["size"], e["bankruptcy_quote"], e["fund_delta"], e["maintenance"])
                 for e in events_of(out, "backstop_takeover")]
    assert takeovers == [("SOL-USD", "500", "45500", "-5500", "1200"), ("BTC-USD", "-0.2", "-9000", "0", "270")]
    assert not events_of(out, "deleveraging") and not events_of(out, "bad_debt")
    assert out["final"]["insurance_funds"]["cross"] == "94500"
    assert subaccount(out, A)["usdc"] == "0" and subaccount(out, A)["positions"] == []
    backstop = subaccount(out, "backstop:cross")
    assert (backstop["usdc"], [(p["market"], p["size"]) for p in backstop["positions"]]) == (
        "-31000", [("BTC-USD", "-0.2"), ("SOL-USD", "500")])
    assert subaccount(out, C)["usdc"] == "5000" and subaccount(out, D)["usdc"] == "60000"
