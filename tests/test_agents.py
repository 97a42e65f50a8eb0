"""Agent keys (``bastion.core.agents``) through the SDK against a live node (the ``live`` fixture of
tests/test_api_sdk.py: uvicorn on a loopback port, blocks every 50 ms, block time = the wall clock),
and the state machine's rules the golden scenarios ``agent_*`` do not reach: snapshots, the ante
check and the intake's codes."""
from __future__ import annotations

import asyncio
import dataclasses
import time

import httpx
import pytest
from builders import BTC, GENESIS_TIME_MS, Chain, address, genesis, place_order
from eth_account import Account
from test_api import BOB_KEY
from test_api_sdk import BRIDGE_KEY, live  # noqa: F401 - the live node fixture

from bastion.client import AsyncClient, BastionError, Client
from bastion.core.agents import AGENT_ACTION_NAMES, AGENT_ACTIONS
from bastion.core.ante import check_ante
from bastion.core.errors import ProtocolError
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import MESSAGE_TYPES, Deposit, decode_message
from bastion.core.snapshot import canonical_bytes, state_from_document, state_to_document

OWNER_KEY, BOT_KEY, BOT2_KEY = "0x" + "a7" * 32, "0x" + "b7" * 32, "0x" + "c7" * 32
OWNER, BOT, BOT2 = (Account.from_key(key).address.lower() for key in (OWNER_KEY, BOT_KEY, BOT2_KEY))
HOUR_MS = 3_600_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture(scope="module")
def funded(live):  # noqa: F811 - the fixture imported above
    """The live node with OWNER funded (10,000 USDC) and BOB resting a 1 BTC ask at 50,000."""
    url, node = live
    with Client(url, BRIDGE_KEY) as bridge, Client(url, BOB_KEY) as bob:
        assert bridge.deposit(owner=OWNER, amount="10000", wait_ms=5_000)["result"]["ok"] is True
        assert bob.place_order(market=BTC, side="sell", size="1", price="50000", client_id=77,
                               wait_ms=5_000)["result"]["ok"] is True
    return url, node


def test_an_agent_trades_and_cancels_for_its_owner_and_can_never_withdraw(funded) -> None:
    url, _ = funded
    with Client(url, OWNER_KEY) as owner, Client(url, BOT_KEY, acting_for=OWNER) as bot:
        granted = owner.authorize_agent(agent=BOT, expires_ms=now_ms() + HOUR_MS, subaccounts=[0], label="mm-bot",
                                        wait_ms=5_000)
        bought = bot.place_order(market=BTC, side="buy", size="0.1", price="50000", client_id=1,
                                 time_in_force="ioc", wait_ms=5_000)
        rested = bot.place_order(market=BTC, side="buy", size="0.1", price="40000", client_id=2, wait_ms=5_000)
        resting = owner.subaccount(OWNER, 0)["open_orders"]
        cancelled = bot.cancel_all(wait_ms=5_000)
        with pytest.raises(BastionError) as through_owner:   # no withdrawal takes an owner
            bot.submit({"type": "withdraw", "subaccount": 0, "amount": "100", "owner": OWNER})
        with pytest.raises(BastionError) as transfer:
            bot.submit({"type": "transfer", "subaccount": 0, "to_owner": BOT, "to_subaccount": 0, "amount": "100",
                        "owner": OWNER})
        with pytest.raises(BastionError) as own_account:     # without it: the agent's own, empty account
            bot.withdraw(amount="100")
        account = owner.subaccount(OWNER, 0)
        listed, acting = owner.agents(), bot.agents(BOT)

    assert granted["result"] == {"ok": True, "agent": BOT, "expires_ms": granted["result"]["expires_ms"]}
    assert bought["result"]["ok"] is True and bought["result"]["filled"] == 1_000   # lots: 0.1 BTC
    assert rested["result"]["ok"] is True and resting == 1
    assert cancelled["result"] == {"ok": True, "cancelled": 1}
    assert (through_owner.value.code, through_owner.value.field) == ("unknown_field", "owner")
    assert (transfer.value.code, transfer.value.field) == ("unknown_field", "owner")
    assert own_account.value.code == "no_collateral"
    # the fill is the owner's: 10,000 - 5,000 paid for 0.1 BTC - 2.5 taker fee (0.05%); nothing left the account
    assert account["balance"] == "4997.5" and account["open_orders"] == 0
    assert [(p["market"], p["size"]) for p in account["positions"]] == [(BTC, "0.1")]
    assert [(a["agent"], a["label"], a["subaccounts"], a["permissions"], a["live"]) for a in listed["agents"]] == [
        (BOT, "mm-bot", [0], ["trade", "cancel"], True)]
    assert acting["agents"] == [] and [a["owner"] for a in acting["acting_for"]] == [OWNER]


def test_an_agent_stops_at_its_expiry(funded) -> None:
    url, _ = funded
    with Client(url, OWNER_KEY) as owner, Client(url, BOT2_KEY, acting_for=OWNER) as bot:
        expires_ms = now_ms() + 1_500
        assert owner.authorize_agent(agent=BOT2, expires_ms=expires_ms, permissions=["trade"],
                                     wait_ms=5_000)["result"]["ok"] is True
        before = bot.place_order(market=BTC, side="buy", size="0.01", price="40000", client_id=11, wait_ms=5_000)
        time.sleep(max(0.0, (expires_ms - now_ms()) / 1_000) + 0.2)
        with pytest.raises(BastionError) as after:
            bot.place_order(market=BTC, side="buy", size="0.01", price="40000", client_id=12, wait_ms=5_000)
        grant = next(a for a in owner.agents()["agents"] if a["agent"] == BOT2)
        owner.cancel_all(wait_ms=5_000)

    assert before["result"]["ok"] is True
    assert after.value.code == "agent_expired"
    assert grant["live"] is False and grant["expires_ms"] == expires_ms


def test_a_revoked_agent_is_refused_at_once(funded) -> None:
    url, _ = funded
    with Client(url, OWNER_KEY) as owner, Client(url, BOT_KEY, acting_for=OWNER) as bot:
        owner.authorize_agent(agent=BOT, expires_ms=now_ms() + HOUR_MS, wait_ms=5_000)
        placed = bot.place_order(market=BTC, side="buy", size="0.01", price="40000", client_id=21, wait_ms=5_000)
        revoked = owner.revoke_agent(agent=BOT, wait_ms=5_000)
        with pytest.raises(BastionError) as refused:
            bot.cancel_order(client_id=21, wait_ms=5_000)
        still_resting = owner.subaccount(OWNER, 0)["open_orders"]
        owner.cancel_order(client_id=21, wait_ms=5_000)

    assert placed["result"]["ok"] is True and revoked["result"] == {"ok": True, "agent": BOT}
    assert refused.value.code == "agent_not_authorized"
    assert still_resting == 1   # a revocation cancels nothing: the owner decides


def test_the_async_client_trades_as_an_agent_too(funded) -> None:
    url, _ = funded

    async def scenario() -> tuple:
        async with AsyncClient(url, BOT_KEY, acting_for=OWNER.upper().replace("0X", "0x")) as bot:
            placed = await bot.place_order(market=BTC, side="buy", size="0.01", price="40000", client_id=31,
                                           wait_ms=5_000)
            cancelled = await bot.cancel_order(client_id=31, wait_ms=5_000)
            return placed, cancelled

    with Client(url, OWNER_KEY) as owner:
        owner.authorize_agent(agent=BOT, expires_ms=now_ms() + HOUR_MS, wait_ms=5_000)
        placed, cancelled = asyncio.run(scenario())

    assert placed["result"]["ok"] is True
    assert cancelled["result"] == {"ok": True, "order_id": placed["result"]["order_id"]}


def test_the_portfolio_page_lists_the_owners_agent_keys(funded) -> None:
    url, _ = funded
    with Client(url, OWNER_KEY) as owner:
        owner.authorize_agent(agent=BOT2, expires_ms=now_ms() + HOUR_MS, subaccounts=[0, 3], permissions=["cancel"],
                              label="hedger", wait_ms=5_000)
    cookies = {"bastion_signer": "wallet", "bastion_owner": OWNER}
    page = httpx.get(f"{url}/portfolio", cookies=cookies).text
    section = page[page.index('<section id="agents">'):]
    section = section[:section.index("</section>")]
    row = next(line for line in section.splitlines() if BOT2 in line)

    assert "<td>hedger</td><td>0, 3</td><td>cancel</td>" in row and "<td>in force</td>" in row


# ------------------------------------------------------------------------------------- the state machine
ALICE, AGENT = address(0xA0), address(0xE0)


def _authorize(**fields: object) -> dict:
    return {"type": "authorize_agent", "agent": AGENT, "subaccounts": None, "permissions": ["trade", "cancel"],
            "expires_ms": GENESIS_TIME_MS + 86_400_000, **fields}


def test_only_the_agent_actions_take_an_owner_so_an_agent_can_never_withdraw_vote_or_authorize() -> None:
    with_owner = sorted(name for name, cls in MESSAGE_TYPES.items()
                        if "owner" in {f.name for f in dataclasses.fields(cls)} and cls is not Deposit)

    assert with_owner == sorted(AGENT_ACTION_NAMES.values()) == [
        "cancel_all", "cancel_order", "modify_order", "place_order", "place_twap"]
    assert {AGENT_ACTION_NAMES[cls]: permission for cls, permission in AGENT_ACTIONS.items()} == {
        "place_order": "trade", "cancel_order": "cancel", "cancel_all": "cancel", "modify_order": "trade",
        "place_twap": "trade"}


def test_an_agent_modifies_orders_and_places_twaps_for_its_owner_with_the_trade_permission() -> None:
    """A market maker's bot reprices through ``modify_order`` and works size through ``place_twap``:
    both act on the owner's subaccount with ``trade``; with ``cancel`` only they are refused."""
    chain = Chain(genesis())
    chain.block([(ALICE, _authorize(permissions=["cancel"]))])
    placed = chain.block([(ALICE, place_order(size="0.01", price="49000", client_id=7))]).results[0]
    assert placed["ok"], placed
    modify = {"type": "modify_order", "subaccount": 0, "market": BTC, "client_id": 7, "price": "48900",
              "owner": ALICE}
    twap = {"type": "place_twap", "subaccount": 0, "market": BTC, "side": "buy", "size": "0.02",
            "duration_ms": 120_000, "owner": ALICE}
    denied = chain.block([(AGENT, modify), (AGENT, twap)]).results
    chain.block([(ALICE, _authorize())])
    modified, twapped = chain.block([(AGENT, modify), (AGENT, twap)]).results

    assert [r["code"] for r in denied] == ["agent_permission_denied", "agent_permission_denied"]
    assert modified["ok"] and twapped["ok"], (modified, twapped)
    [order] = [o for o in chain.state.markets[BTC].book.orders() if o.owner == ALICE]
    assert (order.price, order.client_id) == (489_000, 7)   # 48,900.0 on the one-decimal tick grid
    [working] = chain.state.twap_orders.values()
    assert (working.owner, working.number) == (ALICE, 0)
    assert AGENT not in {owner for owner, _ in chain.state.subaccounts}


def test_the_grants_survive_a_snapshot_and_the_reverse_index_is_rebuilt() -> None:
    chain = Chain(genesis())
    chain.block([(ALICE, _authorize(subaccounts=[2, 0], label="bot"))])
    document = state_to_document(chain.state)
    restored = state_from_document(document)

    assert document["agents"] == [[ALICE, AGENT, [0, 2], ["trade", "cancel"], GENESIS_TIME_MS + 86_400_000,
                                   "bot", chain.state.time_ms]]
    assert restored.agents == chain.state.agents and restored.agent_owners == {AGENT: {ALICE: None}}
    assert canonical_bytes(state_to_document(restored)) == canonical_bytes(document)
    assert compute_state_hash_full(restored) == chain.state.state_hash
    chain.block([(ALICE, {"type": "revoke_agent", "agent": AGENT})])
    assert chain.state.agents == {} and chain.state.agent_owners == {}
    assert compute_state_hash_full(chain.state) == chain.state.state_hash


def test_the_ante_check_counts_the_owners_collateral_and_checks_the_grant() -> None:
    chain = Chain(genesis())
    order = decode_message(place_order(size="0.01", price="49000", client_id=1) | {"owner": ALICE})
    with pytest.raises(ProtocolError) as before:
        check_ante(chain.state, AGENT, msg=order)
    chain.block([(ALICE, _authorize(permissions=["cancel"]))])
    with pytest.raises(ProtocolError) as denied:
        check_ante(chain.state, AGENT, msg=order)
    chain.block([(ALICE, _authorize())])
    check_ante(chain.state, AGENT, msg=order)          # the owner's 10,000 USDC count
    with pytest.raises(ProtocolError) as own:
        check_ante(chain.state, AGENT, msg=decode_message(place_order(size="0.01", price="49000", client_id=1)))

    assert before.value.code == "agent_not_authorized" and denied.value.code == "agent_permission_denied"
    assert own.value.code == "no_collateral"
