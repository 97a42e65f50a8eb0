"""The demo's life: an oracle feed, a market maker, trader bots and a governance proposal.

Everything goes through the node's **signed path**: each bot signs its envelopes with its demo key
(``bastion.signing.sign_envelope``, the SDK's signing) and hands them to the API's intake
(``accept``: signature and nonce window checked, rate-limited, ``check_tx``), exactly as an HTTP
client would, only without the socket. The bots read the committed state under the node's lock.

One step (``DemoDriver.step``, every ``STEP_MS``):

* **oracle**: the next point of the price path (``bastion.demo.genesis``), interpolated between
  hourly closes (``HOUR_STEPS`` steps per hour of history), PEPE on a seeded random walk;
* **maker**: every other step, cancels and re-quotes three levels a side around each oracle price
  (PEPE from its isolated subaccount);
* **traders**: bob and carol take liquidity now and then (carol also in PEPE, isolated); dave opens
  a 10x BTC long whenever he is flat, topping up from the faucet, so that the crash in the path
  liquidates him and the liquidations feed has something to show;
* **governance**: ``ensure_proposal`` submits one risk-reducing proposal when none is in flight (a
  second start finds it and submits nothing), and bob votes yes on it once voting opens.

Randomness is a seeded ``random.Random``; the bots are an adapter, the state machine sees only signed
messages.
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bastion.core.errors import ProtocolError
from bastion.core.units import format_decimal
from bastion.demo.genesis import MARKETS, PricePath, load_price_path, on_grid
from bastion.demo.keys import DemoKey, get_demo_keys
from bastion.node.node import Node
from bastion.signing import sign_envelope

__all__ = ["DEMO_PROPOSAL_TITLE", "DemoDriver", "NonceClock"]

STEP_MS = 500
HOUR_STEPS = 4                 # steps per hour of history: one day of the path in 48 s
SPREADS = (Decimal("0.0005"), Decimal("0.0015"), Decimal("0.004"))
DEMO_PROPOSAL_TITLE = "Halve the PEPE-USD open interest cap"
IN_FLIGHT = ("pending", "active", "succeeded", "queued")


class NonceClock:
    """Microsecond nonces per signer: ``max(now_us, last + 1)`` (the SDK's rule)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def next(self, address: str) -> int:
        with self._lock:
            nonce = max(time.time_ns() // 1_000, self._last.get(address, 0) + 1)
            self._last[address] = nonce
            return nonce


class DemoDriver:
    """The demo's oracle, maker, traders and proposal over ``node``, submitting through ``accept``."""

    def __init__(self, node: Node, accept: Callable[[dict[str, Any]], dict[str, Any]], *,
                 nonces: NonceClock | None = None, seed: int = 7) -> None:
        self.node, self.accept = node, accept
        self.keys = get_demo_keys()
        self.nonces = nonces or NonceClock()
        self.random = random.Random(seed)
        self.path: PricePath = load_price_path()
        self.position = self._closest_path_position()
        self.direction = 1
        self.steps = 0
        self.client_ids: dict[str, int] = {}
        self.refusals = 0

    # ------------------------------------------------------------------ submission
    def submit(self, key: DemoKey, msg: dict[str, Any]) -> dict[str, Any] | None:
        """Sign ``msg`` with ``key`` and hand it to the API's intake; a refusal is counted, not raised."""
        envelope = sign_envelope(key.private_key, self.node.state.chain_id, msg, self.nonces.next(key.address))
        try:
            return self.accept(envelope)
        except ProtocolError:
            self.refusals += 1
            return None

    def next_client_id(self, name: str) -> int:
        self.client_ids[name] = (self.client_ids.get(name, self.random.randrange(1, 1 << 30)) + 1) % (1 << 31)
        return self.client_ids[name]

    # ------------------------------------------------------------------ the oracle path
    def _closest_path_position(self) -> int:
        """Where the path is nearest the chain's BTC price (a restart resumes without a jump)."""
        market = self.node.state.markets["BTC-USD"]
        current = Decimal(format_decimal(market.oracle_price, market.price_decimals))
        prices = self.path.prices["BTC"]
        return min(range(len(prices)), key=lambda i: abs(prices[i] - current)) * HOUR_STEPS

    def path_prices(self) -> dict[str, str]:
        hour, part = divmod(self.position, HOUR_STEPS)
        following = min(hour + 1, len(self.path) - 1)
        weight = Decimal(part) / HOUR_STEPS
        prices = {}
        for market in MARKETS:
            symbol = market.ticker.split("-")[0]
            if symbol in self.path.prices:
                series = self.path.prices[symbol]
                prices[market.ticker] = on_grid(series[hour] + (series[following] - series[hour]) * weight,
                                                market.price_decimals)
        pepe = self.node.state.markets["PEPE-USD"]
        ticks = max(100, pepe.oracle_price + self.random.randint(-15, 15))
        prices["PEPE-USD"] = format_decimal(ticks, pepe.price_decimals)
        return prices

    def advance_path(self) -> None:
        last = (len(self.path) - 1) * HOUR_STEPS
        if not 0 <= self.position + self.direction <= last:
            self.direction = -self.direction
        self.position += self.direction

    # ------------------------------------------------------------------ one step
    def step(self) -> None:
        self.steps += 1
        self.submit(self.keys["oracle"], {"type": "oracle_update", "prices": self.path_prices()})
        self.advance_path()
        if self.steps % 2 == 1:
            self.quote()
        if self.random.random() < 0.35:
            self.trade(self.random.choice(("bob", "carol")))
        if self.steps % 4 == 0:
            self.dave()
        if self.steps % 10 == 0:
            self.vote_as_bob()

    def oracle(self, ticker: str) -> Decimal:
        market = self.node.state.markets[ticker]
        return Decimal(format_decimal(market.oracle_price, market.price_decimals))

    def quote(self) -> None:
        """The maker: cancel its quotes and place three levels a side around each oracle price."""
        maker = self.keys["maker"]
        for market in MARKETS:
            subaccount = 1 if market.isolated_only else 0
            self.submit(maker, {"type": "cancel_all", "subaccount": subaccount, "market": market.ticker})
            price = self.oracle(market.ticker)
            for spread, size in zip(SPREADS, market.quote_sizes):
                for side, sign in (("buy", -1), ("sell", 1)):
                    limit = on_grid(price * (1 + sign * spread), market.price_decimals)
                    self.submit(maker, {"type": "place_order", "subaccount": subaccount, "market": market.ticker,
                                        "side": side, "size": size, "price": limit,
                                        "client_id": self.next_client_id("maker"), "time_in_force": "gtc"})

    def trade(self, name: str) -> None:
        """A small immediate-or-cancel order across the spread."""
        market = self.random.choice(MARKETS if name == "carol" else MARKETS[:3])
        subaccount = 1 if market.isolated_only else 0
        side = self.random.choice(("buy", "sell"))
        limit = on_grid(self.oracle(market.ticker) * (Decimal("1.01") if side == "buy" else Decimal("0.99")),
                        market.price_decimals)
        self.submit(self.keys[name], {"type": "place_order", "subaccount": subaccount, "market": market.ticker,
                                      "side": side, "size": market.quote_sizes[0], "price": limit,
                                      "client_id": self.next_client_id(name), "time_in_force": "ioc"})

    def dave(self) -> None:
        """Dave goes 10x long BTC whenever he is flat (and is topped up by the faucet when broke)."""
        dave = self.keys["dave"]
        with self.node.lock:
            sub = self.node.state.subaccounts.get((dave.address, 0))
            flat = sub is None or not sub.positions
            balance = 0 if sub is None else sub.balance
        if not flat:
            return
        if balance < 1_000_000_000:  # under 1,000 USDC
            self.submit(self.keys["bridge"], {"type": "deposit", "owner": dave.address, "subaccount": 0,
                                              "amount": "5000"})
            return
        price = self.oracle("BTC-USD")
        size = (Decimal(balance) / 1_000_000 * 10 / price).quantize(Decimal("0.0001"))
        self.submit(dave, {"type": "place_order", "subaccount": 0, "market": "BTC-USD", "side": "buy",
                           "size": str(size), "price": on_grid(price * Decimal("1.01"), 0),
                           "client_id": self.next_client_id("dave"), "time_in_force": "ioc"})

    # ------------------------------------------------------------------ governance
    def in_flight_proposal(self) -> str | None:
        with self.node.lock:
            for proposal in self.node.state.proposals.values():
                if proposal.status in IN_FLIGHT:
                    return proposal.proposal_id
        return None

    def ensure_proposal(self) -> None:
        """Submit the demo proposal unless one is already in flight (a restart submits nothing)."""
        if self.in_flight_proposal() is not None:
            return
        with self.node.lock:
            pepe = self.node.state.markets["PEPE-USD"]
            halved = format_decimal(pepe.max_open_interest_lots // 2, pepe.size_decimals)
        self.submit(self.keys["maker"], {
            "type": "submit_proposal", "title": DEMO_PROPOSAL_TITLE, "deposit": "100",
            "description": "The long-tail market's open interest cap is large for its insurance fund: halve it "
                           "(risk-reducing, so the shortest timelock applies).",
            "actions": [{"type": "set_market_params", "market": "PEPE-USD", "max_open_interest": halved}]})

    def vote_as_bob(self) -> None:
        proposal_id = self.in_flight_proposal()
        bob = self.keys["bob"]
        if proposal_id is None:
            return
        with self.node.lock:
            proposal = self.node.state.proposals[proposal_id]
            ready = proposal.status == "active" and bob.address not in proposal.ballots
        if ready:
            self.submit(bob, {"type": "vote", "proposal_id": proposal_id, "option": "yes",
                              "reason": "a smaller cap for a thin market"})

    # ------------------------------------------------------------------ the loop
    def run(self, stop: threading.Event) -> None:
        """Submit the proposal if needed, then step every ``STEP_MS`` until ``stop`` is set."""
        self.ensure_proposal()
        while not stop.wait(STEP_MS / 1000):
            try:
                self.step()
            except Exception as error:  # noqa: BLE001 - a bot's bug must not take the node down
                print(f"demo bots: step failed: {error!r}")
