"""The Python SDK: ``Client(url, private_key)`` (sync) and ``AsyncClient`` (async).

Every endpoint of ``bastion.app`` is a method, and every message of ``bastion.core.messages``
a typed method that builds it, signs it (EIP-712, ``bastion.signing``) with the client's key,
and submits it::

    from bastion.client import Client

    with Client("http://127.0.0.1:8545", private_key="0x...") as bastion:
        book = bastion.book("BTC-USD")
        status = bastion.place_order(market="BTC-USD", side="buy", size="0.1", price="50000",
                                     client_id=1, wait_ms=2_000)    # {"status": "committed", "height": ...}
        print(bastion.subaccount(bastion.address, 0)["equity"])

``place_order_isolated(...)`` trades an order from an isolated subaccount in one call: it asks
``POST /v1/preview/order`` where (``isolation.target_subaccount``) and how (``isolation.setup``), then
sends the setup messages and the order one by one, each after the previous one committed, and stops
at the first refusal (``IsolatedOrderRun``)::

    outcome = bastion.place_order_isolated(market="SOL-USD", side="buy", size="800", price="50", client_id=7)
    if outcome["refused"]:      # {"step": 3, "type": "place_order", "code": ..., "message": ...}
        print("funds left in subaccount", outcome["funds_in"])

**Agent keys** (docs/protocol.md, "Agent keys"): the owner authorises a key, and a client holding
that key with ``acting_for=owner`` trades for the owner (its ``place_order``, ``modify_order``,
``place_twap``, ``cancel_order`` and ``cancel_all`` carry ``owner``; it signs with its own key and its
own nonces)::

    with Client(url, private_key=owner_key) as owner:
        owner.authorize_agent(agent=bot_address, permissions=["trade", "cancel"], subaccounts=[0],
                              expires_ms=expiry_ms, label="mm-bot", wait_ms=2_000)
    with Client(url, private_key=bot_key, acting_for=owner_address) as bot:
        bot.place_order(market="BTC-USD", side="buy", size="0.1", price="50000", client_id=1)

An agent can do nothing else for the owner: no withdrawal, transfer, margin setting or vote takes
an owner, so those methods act on the agent's own (empty) account. ``agents(address)`` lists an
owner's grants and the owners an address is an agent of.

The two clients share their method definitions (``_Methods``): a method returns what the
transport's ``_request`` returns, a value for ``Client`` and an awaitable for ``AsyncClient``.
Decimal amounts are strings (ints are accepted and turned into strings). Refusals raise
``BastionError`` with the protocol's ``code``. Nonces are the clock in microseconds, strictly
increasing per client. WebSocket channels: ``Client.subscribe(...)`` (``bastion.api.ws``).
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from eth_account import Account

from bastion.reporthash import compute_report_hash
from bastion.signing import sign_envelope

__all__ = ["AsyncClient", "BastionError", "Client", "IsolatedOrderRun", "Subscription"]

Decimal = str | int


class BastionError(Exception):
    """A refusal by the node: HTTP ``status``, protocol ``code``, ``message`` and ``field``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.field = status, code, message, field


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _drop_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _decode(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        if isinstance(body, dict) and "code" in body:
            raise BastionError(response.status_code, body["code"], body.get("message", ""), body.get("field"))
        raise BastionError(response.status_code, "http_error", response.text)
    return body


def _order_message(*, market: str, side: str, size: Decimal, price: Decimal, client_id: int, subaccount: int = 0,
                   order_type: str = "limit", time_in_force: str = "gtc", good_til: str | None = None,
                   trigger_price: Decimal | None = None, reduce_only: bool = False,
                   self_trade: str = "cancel_resting", owner: str | None = None) -> dict[str, Any]:
    return _drop_none({
        "type": "place_order", "subaccount": subaccount, "market": market, "side": side, "size": str(size),
        "price": str(price), "client_id": client_id, "order_type": order_type, "time_in_force": time_in_force,
        "good_til": good_til, "trigger_price": _text(trigger_price), "reduce_only": reduce_only,
        "self_trade": self_trade, "owner": owner})


class IsolatedOrderRun:
    """The steps of an isolated order and their outcome, for ``place_order_isolated``.

    ``steps`` are the preview's ``isolation.setup`` (transfer, set_margin_mode) and then ``order``
    from ``isolation.target_subaccount``. The client sends them in order and hands each answer to
    ``record``, which says whether to go on: a step goes on only when it was committed with
    ``result.ok``. ``outcome`` is then::

        {"placed": bool, "subaccount": target, "amount": "602", "transfer_amount": "602",
         "steps": [{"msg": ..., "answer": ...}, ...],            # the steps sent, in order
         "refused": None | {"step": 1-based, "type", "code", "message"},
         "funds_in": None | target}   # set when the order was not placed but the target holds the funds

    A step is refused when the node refused it at intake (``BastionError``), committed it with
    ``ok: false``, or had not committed it after ``wait_ms`` (code ``pending``). Funds moved by a
    committed transfer stay in the target subaccount (``funds_in``): trade from it, or transfer
    them back.
    """

    def __init__(self, preview: dict[str, Any], order: dict[str, Any]) -> None:
        isolation = preview["isolation"]
        target = isolation["target_subaccount"]
        if target is None:
            raise BastionError(0, "no_free_subaccount", "all 128 subaccount numbers are in use")
        self.steps = [*isolation["setup"], {**order, "subaccount": target}]
        transfers = any(msg["type"] == "transfer" for msg in isolation["setup"])
        self.outcome: dict[str, Any] = {
            "placed": False, "subaccount": target, "amount": isolation["isolated"]["amount"],
            "transfer_amount": isolation["transfer_amount"], "steps": [], "refused": None,
            "funds_in": None if transfers else target}

    def record(self, msg: dict[str, Any], answer: dict[str, Any]) -> bool:
        """Note the answer to ``msg``; True when the next step may be sent."""
        outcome = self.outcome
        outcome["steps"].append({"msg": msg, "answer": answer})
        result = answer.get("result") or {}
        if answer.get("status") == "committed" and result.get("ok") is True:
            if msg["type"] == "transfer":
                outcome["funds_in"] = outcome["subaccount"]
            if msg["type"] == "place_order":
                outcome["placed"], outcome["funds_in"] = True, None
            return True
        if answer.get("status") == "committed":
            code, message = result.get("code", "refused"), result.get("message", "")
        elif answer.get("status") == "pending":
            code, message = "pending", "accepted but not committed within wait_ms"
        else:
            code, message = answer.get("code", "refused"), answer.get("message", "")
        outcome["refused"] = {"step": len(outcome["steps"]), "type": msg["type"], "code": code, "message": message}
        return False

    @staticmethod
    def preview_fields(order: dict[str, Any]) -> dict[str, Any]:
        """The ``preview_order`` arguments of a ``place_order`` message (from its own subaccount)."""
        return {key: order[key] for key in ("market", "side", "size", "price", "subaccount", "reduce_only")}

    @staticmethod
    def refusal_answer(error: BastionError) -> dict[str, Any]:
        """The answer recorded for a step the node refused at intake."""
        return {"status": "refused", "code": error.code, "message": error.message}


def _check_report(report_hash: str, document: Any) -> Any:
    """``document`` if its canonical bytes hash to ``report_hash`` (``bastion.reporthash``)."""
    if not isinstance(document, dict) or compute_report_hash(document) != report_hash:
        raise BastionError(200, "report_hash_mismatch", f"the node's answer is not the report {report_hash}")
    return document


class _Methods:
    """Endpoint and message methods over ``_request`` and ``submit`` (given by each client)."""

    address: str | None
    acting_for: str | None = None  # the owner an agent key trades for (None: the key's own account)

    def _request(self, method: str, path: str, *, params: dict | None = None, body: Any = None) -> Any:
        raise NotImplementedError

    def submit(self, msg: dict[str, Any], *, nonce: int | None = None, wait_ms: int = 0) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------ chain
    def status(self) -> Any:
        return self._request("GET", "/v1/status")

    def signing(self) -> Any:
        return self._request("GET", "/v1/signing")

    def blocks(self, *, from_height: int | None = None, limit: int = 20) -> Any:
        return self._request("GET", "/v1/blocks", params=_drop_none({"from_height": from_height, "limit": limit}))

    def block(self, height: int) -> Any:
        return self._request("GET", f"/v1/blocks/{height}")

    def tx_status(self, sender: str, nonce: int, *, wait_ms: int = 0) -> Any:
        return self._request("GET", f"/v1/tx/{sender}/{nonce}", params={"wait_ms": wait_ms})

    # ------------------------------------------------------------------ markets
    def markets(self) -> Any:
        return self._request("GET", "/v1/markets")

    def market(self, ticker: str) -> Any:
        return self._request("GET", f"/v1/markets/{ticker}")

    def book(self, ticker: str, *, depth: int = 20) -> Any:
        return self._request("GET", f"/v1/markets/{ticker}/book", params={"depth": depth})

    def trades(self, ticker: str, *, since_height: int = 0, limit: int = 100, cursor: str | None = None) -> Any:
        return self._request("GET", f"/v1/markets/{ticker}/trades", params=_drop_none(
            {"since_height": since_height, "limit": limit, "cursor": cursor}))

    def candles(self, ticker: str, *, resolution: str = "1m", start_ms: int | None = None,
                end_ms: int | None = None) -> Any:
        return self._request("GET", f"/v1/markets/{ticker}/candles",
                             params=_drop_none({"resolution": resolution, "start_ms": start_ms, "end_ms": end_ms}))

    def funding(self, ticker: str, *, limit: int | None = None, cursor: str | None = None) -> Any:
        return self._request("GET", f"/v1/markets/{ticker}/funding",
                             params=_drop_none({"limit": limit, "cursor": cursor}) or None)

    # ------------------------------------------------------------------ accounts and history
    def subaccounts(self, owner: str) -> Any:
        return self._request("GET", f"/v1/subaccounts/{owner}")

    def subaccount(self, owner: str, number: int = 0) -> Any:
        return self._request("GET", f"/v1/subaccounts/{owner}/{number}")

    def open_orders(self, owner: str, number: int = 0, *, limit: int | None = None, cursor: str | None = None) -> Any:
        """One page of open orders (``{"height", "orders", "next_cursor"}``): pass the answer's
        ``next_cursor`` as ``cursor`` for the next page (``Client.iter_pages`` walks them all)."""
        return self._request("GET", f"/v1/subaccounts/{owner}/{number}/orders",
                             params=_drop_none({"limit": limit, "cursor": cursor}) or None)

    def orders(self, *, owner: str | None = None, number: int | None = None, market: str | None = None,
               status: str | None = None, limit: int = 100, cursor: str | None = None) -> Any:
        return self._request("GET", "/v1/orders", params=_drop_none(
            {"owner": owner, "number": number, "market": market, "status": status, "limit": limit,
             "cursor": cursor}))

    def fills(self, *, owner: str | None = None, market: str | None = None, since_height: int = 0,
              limit: int = 100, cursor: str | None = None) -> Any:
        return self._request("GET", "/v1/fills", params=_drop_none(
            {"owner": owner, "market": market, "since_height": since_height, "limit": limit, "cursor": cursor}))

    def funding_payments(self, *, owner: str | None = None, number: int | None = None,
                         market: str | None = None, limit: int | None = None, cursor: str | None = None) -> Any:
        return self._request("GET", "/v1/funding-payments", params=_drop_none(
            {"owner": owner, "number": number, "market": market, "limit": limit, "cursor": cursor}))

    def liquidations(self, *, owner: str | None = None, market: str | None = None, limit: int | None = None,
                     cursor: str | None = None) -> Any:
        return self._request("GET", "/v1/liquidations", params=_drop_none(
            {"owner": owner, "market": market, "limit": limit, "cursor": cursor}))

    def insurance_funds(self) -> Any:
        return self._request("GET", "/v1/insurance-funds")

    def staking(self, *, window_s: int | None = None) -> Any:
        """``GET /v1/staking``: staking parameters and, per insurance fund, its staked and
        protocol-owned parts, share price, target and gap, and the stakers' fee APR over ``window_s``."""
        return self._request("GET", "/v1/staking", params=_drop_none({"window_s": window_s}))

    def staking_history(self, pool: str, *, limit: int | None = None) -> Any:
        """``GET /v1/staking/{pool}/history``: the fund's share price samples, oldest first."""
        return self._request("GET", f"/v1/staking/{pool}/history", params=_drop_none({"limit": limit}))

    def staker(self, owner: str) -> Any:
        """``GET /v1/staking/stakers/{owner}``: its free shares and pending unstake requests."""
        return self._request("GET", f"/v1/staking/stakers/{owner}")

    def agents(self, address: str | None = None, *, limit: int | None = None, cursor: str | None = None) -> Any:
        """``GET /v1/agents/{address}``: the agent keys ``address`` (default: this client's owner, or
        its own address) authorised, and one page (``limit``, ``cursor``) of the owners it is an agent of."""
        return self._request("GET", f"/v1/agents/{address or self.acting_for or self.address}",
                             params=_drop_none({"limit": limit, "cursor": cursor}))

    def twap_orders(self, owner: str | None = None, *, number: int | None = None, limit: int | None = None,
                    cursor: str | None = None) -> Any:
        """``GET /v1/twaps/{owner}``: the live TWAP orders of ``owner`` (default: this client's owner, or
        its own address), of one subaccount ``number`` or all, with their progress (``slices_done``,
        ``filled``, ``remaining``, ``next_slice``); pages by ``next_cursor``."""
        return self._request("GET", f"/v1/twaps/{owner or self.acting_for or self.address}",
                             params=_drop_none({"number": number, "limit": limit, "cursor": cursor}))

    def deadman(self, owner: str | None = None) -> Any:
        """``GET /v1/deadman/{owner}``: the dead-man's switch of ``owner`` (default: this client's own
        address): ``armed``, ``fires_at`` (block time), ``triggers_today`` and the governed limits."""
        return self._request("GET", f"/v1/deadman/{owner or self.address}")

    def bot_limits(self) -> Any:
        """``GET /v1/bot-limits``: the governed limits of the dead-man's switch, TWAP orders and agent keys."""
        return self._request("GET", "/v1/bot-limits")

    def rewards(self, address: str | None = None) -> Any:
        """``GET /v1/rewards`` (or ``/v1/rewards/{address}``: only that owner's leaderboard rows): the
        maker-reward pool, parameters, running epoch and leaderboard with each score's parts."""
        return self._request("GET", "/v1/rewards" if address is None else f"/v1/rewards/{address}")

    def preview_order(self, *, market: str, side: str, size: Decimal, price: Decimal, subaccount: int = 0,
                      owner: str | None = None, reduce_only: bool = False,
                      isolated_amount: Decimal | None = None) -> Any:
        return self._request("POST", "/v1/preview/order", body=_drop_none({
            "owner": owner or self.address, "subaccount": subaccount, "market": market, "side": side,
            "size": str(size), "price": str(price), "reduce_only": reduce_only,
            "isolated_amount": _text(isolated_amount)}))

    # ------------------------------------------------------------------ governance reads
    def proposals(self) -> Any:
        return self._request("GET", "/v1/governance/proposals")

    def proposal(self, proposal_id: str) -> Any:
        return self._request("GET", f"/v1/governance/proposals/{proposal_id}")

    def parameter_history(self) -> Any:
        return self._request("GET", "/v1/governance/parameters")

    def concentration(self) -> Any:
        return self._request("GET", "/v1/governance/concentration")

    def guardian(self) -> Any:
        return self._request("GET", "/v1/governance/guardian")

    def rollouts(self) -> Any:
        return self._request("GET", "/v1/governance/rollouts")

    def council(self) -> Any:
        return self._request("GET", "/v1/governance/council")

    # ------------------------------------------------------------------ stress reports (off-chain)
    def upload_stress_report(self, report: dict[str, Any] | bytes | str) -> Any:
        """Store a stress report on the node (``POST /v1/stress/reports``, no signature: the node
        names it by its hash): a report document or the text of a ``report.json``. Answers
        ``{report_hash, stored, created, verdict, url, html_url}`` (``report_hash`` recomputed by the
        node); a document that is not a report raises ``BastionError`` ``invalid_report``."""
        document = json.loads(report) if isinstance(report, (bytes, str)) else report
        return self._request("POST", "/v1/stress/reports", body=document)

    def stress_report(self, report_hash: str) -> Any:
        """The report the node holds under ``report_hash``, checked here against the hash
        (``BastionError`` ``report_hash_mismatch`` if the node sent other bytes; ``report_not_found``
        if it holds none)."""
        return self._then(self._request("GET", f"/v1/stress/reports/{report_hash}"),
                          lambda document: _check_report(report_hash, document))

    def _then(self, value: Any, then: Callable[[Any], Any]) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------ disputes (issue 18)
    def disputes(self, *, owner: str | None = None, limit: int | None = None, cursor: str | None = None) -> Any:
        """``GET /v1/disputes``: the disputes in opening order (only ``owner``'s if given); pages by
        ``next_cursor``."""
        return self._request("GET", "/v1/disputes", params=_drop_none({"owner": owner, "limit": limit,
                                                                       "cursor": cursor}))

    def dispute(self, dispute_id: int) -> Any:
        return self._request("GET", f"/v1/disputes/{dispute_id}")

    def dispute_check(self, dispute_id: int) -> Any:
        """The disputed block replayed from the node's log: ``deviation``, recorded vs replayed, evidence."""
        return self._request("GET", f"/v1/disputes/{dispute_id}/check")

    def dispute_targets(self, *, owner: str | None = None, limit: int | None = None,
                        cursor: str | None = None) -> Any:
        """``GET /v1/dispute-targets``: the targets a dispute may name; pages by ``next_cursor``."""
        return self._request("GET", "/v1/dispute-targets", params=_drop_none({"owner": owner, "limit": limit,
                                                                              "cursor": cursor}))

    def incident_programs(self) -> Any:
        return self._request("GET", "/v1/incidents")

    def open_dispute(self, *, target: int, claim_kind: str, claim: Decimal, bond: Decimal, statement: str = "",
                     wait_ms: int = 0) -> Any:
        """Contest a target of the key's own account (``bastion.core.disputes``), posting ``bond`` USDC."""
        return self.submit({"type": "open_dispute", "target": target, "claim_kind": claim_kind,
                            "claim_usdc": str(claim), "bond": str(bond), "statement": statement}, wait_ms=wait_ms)

    def rule_dispute(self, *, dispute_id: int, upheld: bool, award: Decimal, wait_ms: int = 0) -> Any:
        """A council member's ruling."""
        return self.submit({"type": "rule_dispute", "dispute_id": dispute_id, "upheld": upheld,
                            "award_usdc": str(award)}, wait_ms=wait_ms)

    def appeal_dispute(self, *, dispute_id: int, upheld: bool, award: Decimal, bond: Decimal, wait_ms: int = 0) -> Any:
        """Appeal a ruling to a token vote, posting ``bond`` USDC from subaccount 0."""
        return self.submit({"type": "appeal_dispute", "dispute_id": dispute_id, "upheld": upheld,
                            "award_usdc": str(award), "bond": str(bond)}, wait_ms=wait_ms)

    def claim_incident(self, *, program_id: int, wait_ms: int = 0) -> Any:
        return self.submit({"type": "claim_incident", "program_id": program_id}, wait_ms=wait_ms)

    # ------------------------------------------------------------------ messages (signed)
    def deposit(self, *, owner: str, amount: Decimal, subaccount: int = 0, wait_ms: int = 0) -> Any:
        """Bridge operator only."""
        return self.submit({"type": "deposit", "owner": owner, "subaccount": subaccount, "amount": str(amount)},
                           wait_ms=wait_ms)

    def withdraw(self, *, amount: Decimal, subaccount: int = 0, wait_ms: int = 0) -> Any:
        return self.submit({"type": "withdraw", "subaccount": subaccount, "amount": str(amount)}, wait_ms=wait_ms)

    def transfer(self, *, amount: Decimal, to_owner: str, to_subaccount: int = 0, subaccount: int = 0,
                 wait_ms: int = 0) -> Any:
        return self.submit({"type": "transfer", "subaccount": subaccount, "to_owner": to_owner,
                            "to_subaccount": to_subaccount, "amount": str(amount)}, wait_ms=wait_ms)

    def place_order(self, *, market: str, side: str, size: Decimal, price: Decimal, client_id: int,
                    subaccount: int = 0, order_type: str = "limit", time_in_force: str = "gtc",
                    good_til: str | None = None, trigger_price: Decimal | None = None, reduce_only: bool = False,
                    self_trade: str = "cancel_resting", wait_ms: int = 0) -> Any:
        return self.submit(_order_message(
            market=market, side=side, size=size, price=price, client_id=client_id, subaccount=subaccount,
            order_type=order_type, time_in_force=time_in_force, good_til=good_til, trigger_price=trigger_price,
            reduce_only=reduce_only, self_trade=self_trade, owner=self.acting_for), wait_ms=wait_ms)

    def cancel_order(self, *, client_id: int | None = None, order_id: int | None = None, subaccount: int = 0,
                     wait_ms: int = 0) -> Any:
        return self.submit(_drop_none({"type": "cancel_order", "subaccount": subaccount, "client_id": client_id,
                                       "order_id": order_id, "owner": self.acting_for}), wait_ms=wait_ms)

    def cancel_all(self, *, market: str | None = None, subaccount: int = 0, wait_ms: int = 0) -> Any:
        return self.submit(_drop_none({"type": "cancel_all", "subaccount": subaccount, "market": market,
                                       "owner": self.acting_for}), wait_ms=wait_ms)

    def authorize_agent(self, *, agent: str, expires_ms: int,
                        permissions: list[str] | tuple[str, ...] = ("trade", "cancel"),
                        subaccounts: list[int] | None = None, label: str | None = None, wait_ms: int = 0) -> Any:
        """Let the key ``agent`` trade for this client's address until the block time ``expires_ms``
        (at most 180 days ahead), on ``subaccounts`` (None: all) with ``permissions``; authorising it
        again replaces its grant."""
        msg = {"type": "authorize_agent", "agent": agent, "subaccounts": subaccounts,  # null (all) is sent
               "permissions": list(permissions), "expires_ms": expires_ms}
        return self.submit(msg if label is None else {**msg, "label": label}, wait_ms=wait_ms)

    def revoke_agent(self, *, agent: str, wait_ms: int = 0) -> Any:
        """Withdraw this client's grant to ``agent`` at once (its resting orders stay)."""
        return self.submit({"type": "revoke_agent", "agent": agent}, wait_ms=wait_ms)

    def modify_order(self, *, market: str, order_id: int | None = None, client_id: int | None = None,
                     size: Decimal | None = None, price: Decimal | None = None, subaccount: int = 0,
                     wait_ms: int = 0) -> Any:
        """Change a resting order's open size and/or price (cancel-replace; only a smaller size at
        the same price keeps the order's place in the queue). Name it by ``order_id`` or ``client_id``."""
        return self.submit(_drop_none({"type": "modify_order", "subaccount": subaccount, "market": market,
                                       "order_id": order_id, "client_id": client_id,
                                       "size": None if size is None else str(size),
                                       "price": None if price is None else str(price),
                                       "owner": self.acting_for}), wait_ms=wait_ms)

    def schedule_cancel(self, *, time_ms: int | None, wait_ms: int = 0) -> Any:
        """Arm (or move) the dead-man's switch: at the first block at or after ``time_ms`` (block time,
        at least 5 s ahead) every open order and TWAP of this address is cancelled; None disarms it."""
        return self.submit({"type": "schedule_cancel", "time_ms": time_ms}, wait_ms=wait_ms)

    def place_twap(self, *, market: str, side: str, size: Decimal, duration_ms: int, subaccount: int = 0,
                   reduce_only: bool = False, max_slippage: Decimal | None = None, wait_ms: int = 0) -> Any:
        """Trade ``size`` in slices (one IOC every 30 s of block time) over ``duration_ms``, each no worse
        than the oracle price moved by ``max_slippage`` (default 0.03). The result names its ``twap_id``."""
        return self.submit(_drop_none({"type": "place_twap", "subaccount": subaccount, "market": market, "side": side,
                                       "size": str(size), "duration_ms": duration_ms, "reduce_only": reduce_only,
                                       "max_slippage": None if max_slippage is None else str(max_slippage),
                                       "owner": self.acting_for}),
                           wait_ms=wait_ms)

    def cancel_twap(self, *, twap_id: int, wait_ms: int = 0) -> Any:
        """Stop one of this address's live TWAP orders."""
        return self.submit({"type": "cancel_twap", "twap_id": twap_id}, wait_ms=wait_ms)

    def stake_insurance(self, *, fund: str, amount: Decimal, subaccount: int = 0, wait_ms: int = 0) -> Any:
        """Stake ``amount`` USDC from ``subaccount`` into the insurance fund ``fund`` ("cross" or an
        isolated market's ticker); the result names the ``shares`` minted."""
        return self.submit({"type": "stake_insurance", "fund": fund, "amount": str(amount), "subaccount": subaccount},
                           wait_ms=wait_ms)

    def request_unstake(self, *, fund: str, shares: Decimal, subaccount: int = 0, wait_ms: int = 0) -> Any:
        """Start the cooldown of ``shares``; the result names the ``request_id`` and ``available_ms``."""
        return self.submit({"type": "request_unstake", "fund": fund, "shares": str(shares),
                            "subaccount": subaccount}, wait_ms=wait_ms)

    def complete_unstake(self, *, request: int, wait_ms: int = 0) -> Any:
        """Pay a cooled-down unstake request at the current share price (the result names the ``amount``)."""
        return self.submit({"type": "complete_unstake", "request": request}, wait_ms=wait_ms)

    def set_leverage(self, *, market: str, initial_margin: Decimal, subaccount: int = 0, wait_ms: int = 0) -> Any:
        return self.submit({"type": "set_leverage", "subaccount": subaccount, "market": market,
                            "initial_margin": str(initial_margin)}, wait_ms=wait_ms)

    def set_margin_mode(self, *, mode: str, market: str | None = None, subaccount: int = 0, wait_ms: int = 0) -> Any:
        return self.submit(_drop_none({"type": "set_margin_mode", "subaccount": subaccount, "mode": mode,
                                       "market": market}), wait_ms=wait_ms)

    def oracle_update(self, *, prices: dict[str, Decimal], wait_ms: int = 0) -> Any:
        """Oracle operators only."""
        return self.submit({"type": "oracle_update", "prices": {t: str(p) for t, p in prices.items()}},
                           wait_ms=wait_ms)

    def transfer_bgov(self, *, to: str, amount: Decimal, wait_ms: int = 0) -> Any:
        return self.submit({"type": "transfer_bgov", "to": to, "amount": str(amount)}, wait_ms=wait_ms)

    def delegate(self, *, delegatee: str, wait_ms: int = 0) -> Any:
        return self.submit({"type": "delegate", "delegatee": delegatee}, wait_ms=wait_ms)

    def submit_proposal(self, *, title: str, description: str, actions: list[dict[str, Any]], deposit: Decimal,
                        wait_ms: int = 0) -> Any:
        return self.submit({"type": "submit_proposal", "title": title, "description": description,
                            "actions": actions, "deposit": str(deposit)}, wait_ms=wait_ms)

    def vote(self, *, proposal_id: str, option: str, reason: str | None = None, wait_ms: int = 0) -> Any:
        return self.submit(_drop_none({"type": "vote", "proposal_id": proposal_id, "option": option,
                                       "reason": reason}), wait_ms=wait_ms)

    def queue(self, *, proposal_id: str, wait_ms: int = 0) -> Any:
        return self.submit({"type": "queue", "proposal_id": proposal_id}, wait_ms=wait_ms)

    def execute(self, *, proposal_id: str, wait_ms: int = 0) -> Any:
        return self.submit({"type": "execute", "proposal_id": proposal_id}, wait_ms=wait_ms)

    def cancel_proposal(self, *, proposal_id: str, wait_ms: int = 0) -> Any:
        return self.submit({"type": "cancel_proposal", "proposal_id": proposal_id}, wait_ms=wait_ms)

    def register_stress_report(self, *, report_hash: str, verdict: str, depletion_probability: Decimal,
                               var99_loss: Decimal, es99_loss: Decimal, insurance_funds_total: Decimal,
                               wait_ms: int = 0) -> Any:
        """Council members only: put a report's hash, verdict and headline figures on chain, which
        ``council_attest`` requires first (docs/protocol.md, "Registered stress reports")."""
        return self.submit({"type": "register_stress_report", "report_hash": report_hash, "verdict": verdict,
                            "depletion_probability": str(depletion_probability), "var99_loss": str(var99_loss),
                            "es99_loss": str(es99_loss), "insurance_funds_total": str(insurance_funds_total)},
                           wait_ms=wait_ms)

    def council_attest(self, *, proposal_id: str, report_hash: str, verdict: str, wait_ms: int = 0) -> Any:
        """Council members only: a pass or fail on a queued proposal, naming a registered report."""
        return self.submit({"type": "council_attest", "proposal_id": proposal_id, "report_hash": report_hash,
                            "verdict": verdict}, wait_ms=wait_ms)


class _Signer:
    """The key, the chain id (asked of the node once) and strictly increasing microsecond nonces."""

    def __init__(self, private_key: str | bytes | None) -> None:
        self.private_key = private_key
        self.address = Account.from_key(private_key).address.lower() if private_key is not None else None
        self.chain_id: str | None = None
        self._last_nonce = 0
        self._lock = threading.Lock()

    def next_nonce(self) -> int:
        with self._lock:
            self._last_nonce = max(time.time_ns() // 1_000, self._last_nonce + 1)
            return self._last_nonce

    def envelope(self, msg: dict[str, Any], nonce: int | None) -> dict[str, Any]:
        if self.private_key is None:
            raise BastionError(0, "no_private_key", "this client has no private key: it can only read")
        if self.chain_id is None:
            raise RuntimeError("chain id unknown")
        return sign_envelope(self.private_key, self.chain_id, msg, self.next_nonce() if nonce is None else nonce)


def _ws_url(url: str) -> str:
    return ("ws" + url[4:] if url.startswith("http") else url).rstrip("/") + "/v1/ws"


class Subscription:
    """A WebSocket with the given subscriptions; ``recv()`` returns the next message (a dict)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def send(self, command: dict[str, Any]) -> None:
        self._connection.send(json.dumps(command))

    def recv(self, timeout: float | None = 10.0) -> dict[str, Any]:
        return json.loads(self._connection.recv(timeout=timeout))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            yield self.recv(timeout=None)


class Client(_Methods):
    """Synchronous client (httpx). ``private_key`` is needed only to write; ``acting_for``: the owner
    this key is an agent of (its trading messages then act on the owner's subaccounts)."""

    def __init__(self, url: str, private_key: str | bytes | None = None, *, timeout: float = 35.0,
                 transport: httpx.BaseTransport | None = None, acting_for: str | None = None) -> None:
        self.url = url.rstrip("/")
        self._signer = _Signer(private_key)
        self.address = self._signer.address
        self.acting_for = None if acting_for is None else acting_for.lower()
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def _request(self, method: str, path: str, *, params: dict | None = None, body: Any = None) -> Any:
        return _decode(self._http.request(method, path, params=params, json=body))

    def _then(self, value: Any, then: Callable[[Any], Any]) -> Any:
        return then(value)

    def _chain_id(self) -> None:
        if self._signer.chain_id is None:
            self._signer.chain_id = self.status()["chain_id"]

    def sign(self, msg: dict[str, Any], *, nonce: int | None = None) -> dict[str, Any]:
        """A signed envelope of ``msg`` (not submitted)."""
        self._chain_id()
        return self._signer.envelope(msg, nonce)

    def submit(self, msg: dict[str, Any], *, nonce: int | None = None, wait_ms: int = 0) -> Any:
        """Sign and submit; ``wait_ms`` waits for the commit (``{"status": "committed", "height", ...}``)."""
        return self.submit_envelope(self.sign(msg, nonce=nonce), wait_ms=wait_ms)

    def submit_envelope(self, envelope: dict[str, Any], *, wait_ms: int = 0) -> Any:
        return self._request("POST", "/v1/tx", params={"wait_ms": wait_ms} if wait_ms else None, body=envelope)

    def submit_batch(self, msgs: list[dict[str, Any]]) -> Any:
        """Sign each message and submit them as one batch; each is accepted or refused on its own."""
        return self._request("POST", "/v1/tx/batch", body={"txs": [self.sign(m) for m in msgs]})

    def place_order_checked(self, *, market: str, side: str, size: Decimal, price: Decimal, client_id: int,
                            subaccount: int = 0, time_in_force: str = "gtc", reduce_only: bool = False,
                            confirm: bool = False, wait_ms: int = 0) -> Any:
        """Place a limit order as the market's governed UI requirements say a frontend must (issue 20):
        preview it first; refuse it (``BastionError`` with the preview's code, ``ui_max_leverage``
        over the offered maximum leverage) when the preview does; refuse it with
        ``confirmation_required`` when the account's leverage after it would be over the
        confirmation leverage, unless ``confirm`` (the trader confirmed); else sign and submit it."""
        order = _order_message(market=market, side=side, size=size, price=price, client_id=client_id,
                               subaccount=subaccount, time_in_force=time_in_force, reduce_only=reduce_only)
        preview = self.preview_order(**IsolatedOrderRun.preview_fields(order))
        if not preview["accepted"]:
            rejection = preview["rejection"]
            raise BastionError(0, rejection["code"], rejection["message"])
        ui = preview["ui_requirements"]
        if ui["confirmation_required"] and not confirm:
            raise BastionError(0, "confirmation_required", f"{market}: the account's leverage after this order "
                               f"would be {ui['leverage_after']}x, over the {ui['confirm_above_leverage']}x above "
                               "which the trader must confirm (confirm=True)")
        return self.submit(order, wait_ms=wait_ms)

    def place_order_isolated(self, *, market: str, side: str, size: Decimal, price: Decimal, client_id: int,
                             subaccount: int = 0, isolated_amount: Decimal | None = None,
                             time_in_force: str = "gtc", reduce_only: bool = False,
                             wait_ms: int = 5_000) -> dict[str, Any]:
        """Trade a limit order from an isolated subaccount funded from ``subaccount`` with the
        preview's amount (or ``isolated_amount``): the preview's setup messages, then the order, each
        sent after the previous one committed; the outcome of ``IsolatedOrderRun``."""
        order = _order_message(market=market, side=side, size=size, price=price, client_id=client_id,
                               subaccount=subaccount, time_in_force=time_in_force, reduce_only=reduce_only)
        preview = self.preview_order(**IsolatedOrderRun.preview_fields(order), isolated_amount=isolated_amount)
        run = IsolatedOrderRun(preview, order)
        for msg in run.steps:
            try:
                answer = self.submit(msg, wait_ms=wait_ms)
            except BastionError as error:
                answer = run.refusal_answer(error)
            if not run.record(msg, answer):
                break
        return run.outcome

    def iter_pages(self, read: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated read, page after page: ``client.iter_pages(client.open_orders,
        owner)`` yields each order, ``client.iter_pages(client.fills, owner=...)`` each row; each page
        is one request, with the previous answer's ``next_cursor``."""
        cursor = None
        while True:
            page = read(*args, **kwargs, cursor=cursor)
            yield from page["orders"] if "orders" in page else page["rows"]
            cursor = page.get("next_cursor")
            if cursor is None:
                return

    @contextmanager
    def subscribe(self, *subscriptions: dict[str, Any]) -> Iterator[Subscription]:
        """Open ``/v1/ws`` and subscribe (``{"channel": "book", "market": ...}``); the confirmations
        are read before this yields."""
        from websockets.sync.client import connect

        with connect(_ws_url(self.url)) as connection:
            subscription = Subscription(connection)
            for item in subscriptions:
                subscription.send({"op": "subscribe", **item})
                reply = subscription.recv()
                if reply.get("type") == "error":
                    raise BastionError(400, reply["code"], reply["message"])
            yield subscription

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncClient(_Methods):
    """Asynchronous client (httpx.AsyncClient): every method returns an awaitable."""

    def __init__(self, url: str, private_key: str | bytes | None = None, *, timeout: float = 35.0,
                 transport: httpx.AsyncBaseTransport | None = None, acting_for: str | None = None) -> None:
        self.url = url.rstrip("/")
        self._signer = _Signer(private_key)
        self.address = self._signer.address
        self.acting_for = None if acting_for is None else acting_for.lower()
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, transport=transport)

    async def _request(self, method: str, path: str, *, params: dict | None = None, body: Any = None) -> Any:
        return _decode(await self._http.request(method, path, params=params, json=body))

    async def _then(self, value: Any, then: Callable[[Any], Any]) -> Any:
        return then(await value)

    async def sign(self, msg: dict[str, Any], *, nonce: int | None = None) -> dict[str, Any]:
        if self._signer.chain_id is None:
            self._signer.chain_id = (await self.status())["chain_id"]
        return self._signer.envelope(msg, nonce)

    async def submit(self, msg: dict[str, Any], *, nonce: int | None = None, wait_ms: int = 0) -> Any:
        envelope = await self.sign(msg, nonce=nonce)
        return await self._request("POST", "/v1/tx", params={"wait_ms": wait_ms} if wait_ms else None, body=envelope)

    async def submit_batch(self, msgs: list[dict[str, Any]]) -> Any:
        return await self._request("POST", "/v1/tx/batch", body={"txs": [await self.sign(m) for m in msgs]})

    async def place_order_isolated(self, *, market: str, side: str, size: Decimal, price: Decimal, client_id: int,
                                   subaccount: int = 0, isolated_amount: Decimal | None = None,
                                   time_in_force: str = "gtc", reduce_only: bool = False,
                                   wait_ms: int = 5_000) -> dict[str, Any]:
        """``Client.place_order_isolated``, awaited."""
        order = _order_message(market=market, side=side, size=size, price=price, client_id=client_id,
                               subaccount=subaccount, time_in_force=time_in_force, reduce_only=reduce_only)
        preview = await self.preview_order(**IsolatedOrderRun.preview_fields(order), isolated_amount=isolated_amount)
        run = IsolatedOrderRun(preview, order)
        for msg in run.steps:
            try:
                answer = await self.submit(msg, wait_ms=wait_ms)
            except BastionError as error:
                answer = run.refusal_answer(error)
            if not run.record(msg, answer):
                break
        return run.outcome

    @asynccontextmanager
    async def subscribe(self, *subscriptions: dict[str, Any]) -> AsyncIterator[Any]:
        """Open ``/v1/ws`` and subscribe; yields the connection (``json.loads(await ws.recv())``)."""
        from websockets.asyncio.client import connect

        async with connect(_ws_url(self.url)) as connection:
            for item in subscriptions:
                await connection.send(json.dumps({"op": "subscribe", **item}))
                reply = json.loads(await connection.recv())
                if reply.get("type") == "error":
                    raise BastionError(400, reply["code"], reply["message"])
            yield connection

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
