"""Checks of the loss waterfall (``bastion.core.liquidation``) on one block's events, shared by the
crash replays (``test_crash_replay.py``) and the state machine (``test_properties.py``)."""
from __future__ import annotations

from bastion.core import liquidation
from bastion.risk_model import notional


def check_waterfall(state, events: list[dict]) -> None:
    """The loss waterfall's order and fairness in one block's events: a deleveraging or socialisation
    only after the backstop was asked for that position and could not take it (``backstop_was_at_a_limit``,
    except in final settlement, which has no backstop rung); every ADL counterparty in profit at the
    oracle price, realising no loss on the closed lots and paid at most the bankruptcy quote; no
    backstop liquidated or deleveraged."""
    params = state.liquidation
    asked: dict[tuple[str, int, str], dict] = {}  # the last backstop answer per (owner, number, market)
    for event in events:
        kind = event["type"]
        if kind in ("backstop_takeover", "backstop_refused"):
            asked[(event["owner"], event["number"], event["market"])] = event
        elif (kind == "deleveraging" or (kind == "bad_debt" and event["size"] != 0)) and \
                state.markets[event["market"]].status not in ("final_settlement", "settled"):
            answer = asked.get((event["owner"], event["number"], event["market"]))
            assert answer is not None, f"{kind} without asking the backstop first: {event}"
            assert backstop_was_at_a_limit(state, answer, params), (answer, event)
        if kind == "deleveraging":
            counterparty = event["counterparty"]
            assert not liquidation.is_backstop(counterparty["owner"]), event
            assert counterparty["unrealized_pnl"] > 0, f"ADL of a position not in profit: {event}"
            assert -event["quote"] - counterparty["cost_closed"] >= 0, f"ADL realised a loss: {event}"
            assert event["quote"] <= event["bankruptcy_quote"], event
        if kind in ("liquidation", "deleveraging"):
            assert not liquidation.is_backstop(event["owner"]), event


def backstop_was_at_a_limit(state, answer: dict, params) -> bool:
    """Whether the backstop's answer shows it could not take (more of) the position: a refusal whose
    one-lot check fails on the event's inputs, or a takeover that stopped within a lot or two of the
    inventory cap or of the fund."""
    market = state.markets[answer["market"]]
    grid = {"size_decimals": market.size_decimals, "price_decimals": market.price_decimals}
    lot_value = abs(notional(1, answer["oracle_price"], **grid))
    if answer["type"] == "backstop_refused":
        fund_delta = answer["fund_delta"]
        equity_after = answer["fund_equity"] + fund_delta
        if answer["insurance_fund"] + fund_delta < 0 or equity_after < 0:
            return True
        after = answer["inventory"] + (1 if answer["size"] > 0 else -1)  # the backstop takes the account's side
        cap = min(params.backstop_max_notional_usdc, equity_after * params.backstop_max_fund_share_ppm // 10**6)
        return abs(notional(after, answer["oracle_price"], **grid)) > cap
    per_lot_payment = -(-abs(answer["fund_delta"]) // abs(answer["size"]))
    cap = min(params.backstop_max_notional_usdc, answer["fund_equity"] * params.backstop_max_fund_share_ppm // 10**6)
    inventory_value = abs(notional(answer["inventory"], answer["oracle_price"], **grid))
    return (inventory_value + 2 * lot_value > cap or answer["insurance_fund"] < 2 * per_lot_payment
            or answer["fund_equity"] < 2 * per_lot_payment)
