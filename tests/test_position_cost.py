"""A position's cost (``Position.cost``): what opening its lots cost, the basis of entry price and
unrealised PnL (liquidation ranking, the unbacked-profit rule, the UI)."""
from __future__ import annotations

import pytest
from builders import ALICE, BOB, BTC, Chain, account, genesis, place_order, subaccount

from bastion.core.errors import ProtocolError


def trade(chain: Chain, size: str, price: str, taker_side: str) -> None:
    """BOB rests the other side at ``price``; ALICE takes it."""
    maker_side = "sell" if taker_side == "buy" else "buy"
    chain.block([(BOB, place_order(side=maker_side, size=size, price=price, client_id=chain.state.next_order_id)),
                 (ALICE, place_order(side=taker_side, size=size, price=price, time_in_force="ioc",
                                     client_id=chain.state.next_order_id + 1))])


def cost(chain: Chain, owner: str) -> tuple[int, int]:
    position = chain.subaccount(owner).positions.get(BTC)
    return (position.size, position.cost) if position else (0, 0)


def test_cost_opens_adds_reduces_flips_and_closes() -> None:
    chain = Chain()
    trade(chain, "0.3", "50000", "buy")             # BTC: 4 size decimals, 1 price decimal
    assert cost(chain, ALICE) == (3_000, 15_000_000_000)
    assert cost(chain, BOB) == (-3_000, -15_000_000_000)
    trade(chain, "0.1", "51000", "buy")             # adds at a new price: average entry 50,250
    assert cost(chain, ALICE) == (4_000, 20_100_000_000)
    trade(chain, "0.3", "52000", "sell")            # reduces by 3/4: the closed share of the cost goes
    assert cost(chain, ALICE) == (1_000, 5_025_000_000)
    trade(chain, "0.3", "49000", "sell")            # flips: 0.2 short opened at 49,000
    assert cost(chain, ALICE) == (-2_000, -9_800_000_000)
    trade(chain, "0.2", "48000", "buy")             # closes
    assert cost(chain, ALICE) == (0, 0)
    assert BTC not in chain.subaccount(ALICE).positions


def test_reduction_truncates_toward_zero() -> None:
    chain = Chain()
    trade(chain, "0.0003", "50000.1", "buy")        # cost 3 lots x 500,001 ticks x 10 = 15,000,030
    assert cost(chain, ALICE) == (3, 15_000_030)
    trade(chain, "0.0001", "50000", "sell")         # removes trunc(15,000,030 / 3) = 5,000,010
    assert cost(chain, ALICE) == (2, 10_000_020)
    assert cost(chain, BOB) == (-2, -10_000_020)


def test_genesis_entry_price_defaults_to_the_oracle_price() -> None:
    doc = genesis(accounts=[
        account(ALICE, subaccount(positions=[{"market": BTC, "size": "1", "entry_price": "40000"}])),
        account(BOB, subaccount(positions=[{"market": BTC, "size": "-1"}]))])
    chain = Chain(doc)
    assert cost(chain, ALICE) == (10_000, 40_000_000_000)
    assert cost(chain, BOB) == (-10_000, -50_000_000_000)


def test_genesis_rejects_an_entry_price_off_the_grid() -> None:
    doc = genesis(accounts=[
        account(ALICE, subaccount(positions=[{"market": BTC, "size": "1", "entry_price": "40000.05"}])),
        account(BOB, subaccount(positions=[{"market": BTC, "size": "-1"}]))])
    with pytest.raises(ProtocolError) as caught:
        Chain(doc)
    assert caught.value.fields["field"] == "genesis.accounts[0].subaccounts[0].positions[0].entry_price"
