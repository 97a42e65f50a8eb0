"""The demo's life: an oracle feed, a market maker, trader bots, governance proposals and a council.

Everything goes through the node's **signed path**: each bot signs its envelopes with its demo key
(``bastion.signing.sign_envelope``, the SDK's signing) and hands them to the API's intake
(``accept``: signature and nonce window checked, rate-limited, ``check_tx``), exactly as an HTTP
client would, only without the socket. The bots read the committed state under the node's lock.

One step (``DemoDriver.step``, every ``step_ms``, by default ``STEP_MS``):

* **oracle**: the next point of the price path (``bastion.demo.genesis``), interpolated between
  hourly closes (``HOUR_STEPS`` steps per hour of history), PEPE on a seeded random walk;
* **maker**: every step, per market, a ``cancel_all`` then a ladder of ``len(LADDER)`` levels a side
  (2 bp to 1 % from the middle, sizes growing outwards) around the price the oracle was just sent,
  so that the book straddles the oracle of the block that carries them (PEPE from its isolated
  subaccount). At most ``2 * len(LADDER)`` orders per market rest, well inside the maker's
  open-order tier (``order_limits``: 1,000 orders above 10,000 USDC of equity);
* **staker**: carol stakes ``STAKE_USDC`` into the cross insurance fund at her first step (and again
  whenever she holds no share of it), so the staking page has a staker, fees and a share price;
* **traders**: bob and carol take liquidity now and then (carol also in PEPE, isolated); dave opens
  a ``DAVE_LEVERAGE``x BTC long at his first step and whenever he is flat, topping up from the
  faucet: the path's slide of May 16 (about -7 % from the start within 20 hours of history, 40 s)
  liquidates the first one, so the liquidations feed (and dave's own notification) show one early;
  once flat again, dave disputes that liquidation (``dispute``: an oracle-glitch claim of its loss),
  and the dispute stays in flight on the disputes page (the council has days to rule);
* **governance** (``govern``, every other step): the maker keeps one proposal in flight, alternating between cutting the
  ETH-USD taker fee (risk-increasing) and restoring it (risk-reducing); bob and carol vote yes once
  voting opens, the maker queues it once it succeeded; for a risk-increasing one the council runs a
  small stress test of the queued proposal (``stress_report``: the stress package on a copy of the
  state), keeps the report in the node's report store (where ``POST /v1/stress/reports`` puts
  uploads, so the governance page links it), ``council1`` registers it
  (``register_stress_report``) and ``council1`` and ``council2`` attest it (a report that fails is
  attested ``fail`` and the maker cancels the proposal); once the timelock has passed the maker
  executes it. A second start finds the proposal in flight and carries on.

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
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.units import format_decimal, format_ppm
from bastion.demo.genesis import MARKETS, PricePath, load_price_path, on_grid
from bastion.demo.keys import DemoKey, get_demo_keys
from bastion.node.node import Node
from bastion.signing import sign_envelope

__all__ = ["DEMO_PROPOSAL_TITLE", "DemoDriver", "LADDER", "NonceClock", "stress_report"]

STEP_MS = 500
HOUR_STEPS = 4                 # steps per hour of history: one day of the path in 48 s
# the maker's ladder, best level first: (distance from the middle, size as a multiple of the market's first quote size)
LADDER = ((Decimal("0.0002"), 2), (Decimal("0.0005"), 2), (Decimal("0.001"), 4), (Decimal("0.002"), 6),
          (Decimal("0.0035"), 10), (Decimal("0.005"), 16), (Decimal("0.0075"), 20), (Decimal("0.01"), 30))
DAVE_LEVERAGE = 20
STAKE_USDC = "5000"            # carol's stake in the cross insurance fund
FEE_MARKET, FEE_HIGH, FEE_LOW = "ETH-USD", "0.0005", "0.0004"
DEMO_PROPOSAL_TITLE = "Cut the ETH-USD taker fee to 0.04%"
RESTORE_PROPOSAL_TITLE = "Restore the ETH-USD taker fee to 0.05%"
IN_FLIGHT = ("pending", "active", "succeeded", "queued")
GATED = ("risk_increasing", "critical")
VOTERS = ("bob", "carol")
ATTESTERS = ("council1", "council2")
# the council's stress test in the demo: instant shocks of every market, small enough to run in a bot's step
STRESS_SHOCKS = ("-0.3", "-0.2", "-0.1", "0.1", "0.2", "0.3")


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
                 nonces: NonceClock | None = None, seed: int = 7, step_ms: int = STEP_MS,
                 report_store: Any = None) -> None:
        """``report_store``: the API's ``ReportStore`` (``app.state.reports``), where the council's
        stress reports are kept so that the governance page can show them; None keeps them nowhere.
        ``step_ms``: the pace of ``run`` (the path moves one step each time)."""
        self.node, self.accept = node, accept
        self.step_ms, self.report_store = step_ms, report_store
        self.reports: dict[str, tuple[dict[str, str], dict[str, str]]] = {}  # proposal id -> messages
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
        """One step of every bot (the module docstring)."""
        self.steps += 1
        prices = self.path_prices()
        self.submit(self.keys["oracle"], {"type": "oracle_update", "prices": prices})
        self.advance_path()
        self.quote(prices)
        if self.random.random() < 0.35:
            self.trade(self.random.choice(("bob", "carol")))
        if self.steps % 4 == 1:
            self.dispute()
            self.dave()
        if self.steps % 20 == 1:
            self.stake()
        if self.steps % 2 == 0:
            self.govern()

    def oracle(self, ticker: str) -> Decimal:
        market = self.node.state.markets[ticker]
        return Decimal(format_decimal(market.oracle_price, market.price_decimals))

    def quote(self, prices: dict[str, str]) -> None:
        """The maker: per market, cancel its quotes, then place ``LADDER`` a side around ``prices``
        (the oracle prices just submitted, so the ladder straddles the oracle they become)."""
        maker = self.keys["maker"]
        for market in MARKETS:
            subaccount = 1 if market.isolated_only else 0
            self.submit(maker, {"type": "cancel_all", "subaccount": subaccount, "market": market.ticker})
            middle = Decimal(prices[market.ticker])
            base, tick = Decimal(market.quote_sizes[0]), Decimal(1).scaleb(-market.price_decimals)
            for distance, multiple in LADDER:
                for side, sign in (("buy", -1), ("sell", 1)):
                    # at least a tick away from the middle (PEPE's tick is 0.1 % of its price)
                    price = Decimal(on_grid(middle * (1 + sign * distance), market.price_decimals))
                    limit = str(min(price, middle - tick) if sign < 0 else max(price, middle + tick))
                    self.submit(maker, {"type": "place_order", "subaccount": subaccount, "market": market.ticker,
                                        "side": side, "size": str(base * multiple), "price": limit,
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

    def dispute(self) -> None:
        """Dave disputes his first liquidation as an oracle glitch, claiming its whole loss, once he is
        flat again: the dispute stays in flight (the council has days to rule) for the disputes page."""
        dave = self.keys["dave"].address
        with self.node.lock:
            book = self.node.state.disputes
            if any(d.owner == dave for d in book.disputes.values()):
                return
            target = next((t for t in book.targets.values() if t.owner == dave and t.kind == "liquidation"
                           and t.claimed_by is None and t.loss_usdc > 0), None)
            sub = self.node.state.subaccounts.get((dave, 0))
            if target is None or sub is None or sub.positions:
                return
            claim = target.loss_usdc
            bond = book.params.bond_floor_usdc + -(-claim * book.params.bond_claim_ppm // 1_000_000)
            if sub.balance < bond:
                return
        self.submit(self.keys["dave"], {"type": "open_dispute", "target": target.target_id,
                                        "claim_kind": "oracle_glitch", "claim_usdc": format_decimal(claim, 6),
                                        "bond": format_decimal(bond, 6),
                                        "statement": "the BTC slide printed below the other venues for a block"})

    def dave(self) -> None:
        """Dave goes ``DAVE_LEVERAGE``x long BTC whenever he is flat (and is topped up by the faucet
        when broke): the path's falls liquidate him."""
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
        size = (Decimal(balance) / 1_000_000 * DAVE_LEVERAGE / price).quantize(Decimal("0.0001"))
        self.submit(dave, {"type": "place_order", "subaccount": 0, "market": "BTC-USD", "side": "buy",
                           "size": str(size), "price": on_grid(price * Decimal("1.01"), 0),
                           "client_id": self.next_client_id("dave"), "time_in_force": "ioc"})

    def stake(self) -> None:
        """Carol stakes into the cross insurance fund when she holds no share of it."""
        carol = self.keys["carol"]
        with self.node.lock:
            staked = ("cross", carol.address) in self.node.state.stakes
        if not staked:
            self.submit(carol, {"type": "stake_insurance", "fund": "cross", "amount": STAKE_USDC, "subaccount": 0})

    # ------------------------------------------------------------------ governance
    def in_flight_proposal(self) -> str | None:
        """The maker's proposal that is not finished yet, if any."""
        maker = self.keys["maker"].address
        with self.node.lock:
            for proposal in self.node.state.proposals.values():
                if proposal.proposer == maker and proposal.status in IN_FLIGHT:
                    return proposal.proposal_id
        return None

    def ensure_proposal(self) -> None:
        """Submit the next demo proposal unless one is already in flight (a restart submits nothing):
        cut the ETH-USD taker fee (risk-increasing: vote, timelock and the council's stress gate)
        while it is at its genesis value, else restore it (risk-reducing)."""
        if self.in_flight_proposal() is not None:
            return
        with self.node.lock:
            market = self.node.state.markets[FEE_MARKET]
            cut = format_ppm(market.taker_fee_ppm) == FEE_HIGH
        title, fee = (DEMO_PROPOSAL_TITLE, FEE_LOW) if cut else (RESTORE_PROPOSAL_TITLE, FEE_HIGH)
        why = ("A lower taker fee for the second market to draw flow from other venues (risk-increasing: a lower "
               "fee, so the council's stress attestation is needed)." if cut else
               "Back to the genesis fee after the trial (risk-reducing, so the shortest rules apply).")
        self.submit(self.keys["maker"], {
            "type": "submit_proposal", "title": title, "deposit": "100", "description": why,
            "actions": [{"type": "set_market_params", "market": FEE_MARKET, "taker_fee": fee}]})

    def govern(self) -> None:
        """Move the maker's proposal along: submit, vote (bob, carol), queue, stress report and
        attestations (council), execute; each step once its moment has come."""
        proposal_id = self.in_flight_proposal()
        if proposal_id is None:
            self.ensure_proposal()
            return
        with self.node.lock:
            state = self.node.state
            proposal = state.proposals[proposal_id]
            status, risk_class, queued_ms = proposal.status, proposal.risk_class, proposal.queued_ms
            voters = [name for name in VOTERS if self.keys[name].address not in proposal.ballots]
            attested = state.attestations.get(proposal_id, {})
            attesters = [name for name in ATTESTERS if self.keys[name].address not in attested]
            failed = any(attestation.verdict == "fail" for attestation in attested.values())
            ripe = queued_ms is not None and state.time_ms >= queued_ms + proposal.rules.timelock_ms
        if status == "active":
            for name in voters:
                self.submit(self.keys[name], {"type": "vote", "proposal_id": proposal_id, "option": "yes",
                                              "reason": "worth trying while the council watches the risk"})
        elif status == "succeeded":
            self.submit(self.keys["maker"], {"type": "queue", "proposal_id": proposal_id})
        elif status == "queued":
            if risk_class in GATED and attesters:
                self.attest(proposal_id, attesters)
            elif risk_class in GATED and failed:
                # the gate will not open: withdraw it rather than let it wait out its execution window
                self.submit(self.keys["maker"], {"type": "cancel_proposal", "proposal_id": proposal_id})
            elif ripe:
                self.submit(self.keys["maker"], {"type": "execute", "proposal_id": proposal_id})

    def attest(self, proposal_id: str, attesters: list[str]) -> None:
        """The council's part: stress the queued proposal (once per proposal), hand the report to
        the node's report store, register it and attest it with ``attesters``."""
        if self.reports.get(proposal_id) is None:
            with self.node.lock:
                document = state_to_document(self.node.state)
            self.reports[proposal_id] = stress_report(document, proposal_id, self.report_store)
        registration, attestation = self.reports[proposal_id]
        with self.node.lock:
            registered = registration["report_hash"] in self.node.state.stress_reports
        if not registered:
            self.submit(self.keys["council1"], registration)
            return
        for name in attesters:
            self.submit(self.keys[name], attestation)

    # ------------------------------------------------------------------ the loop
    # ------------------------------------------------------------------ the loop
    def run(self, stop: threading.Event) -> None:
        """Submit the proposal if needed, then step every ``step_ms`` until ``stop`` is set."""
        self.ensure_proposal()
        while not stop.wait(self.step_ms / 1000):
            try:
                self.step()
            except Exception as error:  # noqa: BLE001 - a bot's bug must not take the node down
                print(f"demo bots: step failed: {error!r}")


def stress_report(document: dict[str, Any], proposal_id: str,
                  store: Any = None) -> tuple[dict[str, str], dict[str, str]]:
    """The council's stress run of the queued ``proposal_id`` on the state ``document`` (a snapshot
    document, so the node's state is not touched): the stress package (``bastion.stress.runner.run``)
    with ``STRESS_SHOCKS`` on one process, judged by the governed thresholds. Stores the report in
    ``store`` (a ``ReportStore``) when given; returns the ``register_stress_report`` and
    ``council_attest`` messages (``pass`` or ``fail``, as the report says)."""
    from bastion.stress.runner import attestation_message, registration_message, run
    from bastion.stress.scenarios import FORMAT, parse_scenario_set

    scenario_set = parse_scenario_set({"format": FORMAT, "name": "demo shocks", "version": 1, "seed": 1,
                                       "scenarios": [{"kind": "shock", "name": f"shock {move}", "move": move}
                                                     for move in STRESS_SHOCKS]})
    stress_run = run(state_from_document(document), scenario_set=scenario_set, proposal_id=proposal_id, workers=1)
    if store is not None:
        store.put(stress_run.report.document)
    return registration_message(stress_run), attestation_message(stress_run)
