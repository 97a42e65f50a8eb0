"""Test builders: a genesis, messages and a small chain driver, all valid by default.

Every builder takes keyword overrides, so a test states only what matters to it::

    chain = Chain(genesis(accounts=[account(ALICE, subaccount(usdc="500"))]))
    result = chain.submit(ALICE, place_order(size="0.5", price="49000", time_in_force="ioc"))

The default genesis has three markets with different grids (so that every unit conversion is
exercised): ``BTC-USD`` (large-cap tier, notional exponent 1), ``ETH-USD`` (small-cap tier, a
binding open-interest cap, notional exponent -1: notionals truncate) and ``PEPE-USD``
(``isolated_only``, isolated tier with open-interest scaled margins, negative ``size_decimals``).
Four owners each hold a cross subaccount 0 and a subaccount 1 isolated to PEPE-USD.
"""
from __future__ import annotations

import copy
import socket
from typing import Any

from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import decode_message
from bastion.core.state import State
from bastion.core.transition import BlockResult, apply_block, apply_tx, begin_block, end_block
from bastion.core.units import format_decimal

MS_PER_S = 1_000


def free_port() -> int:
    """A TCP port free on the loopback interface now (for servers the tests start)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def address(n: int) -> str:
    """A valid lowercase address whose last digits are ``n`` in hex (``address(0xa0)`` = 0x00..a0)."""
    return f"0x{n:040x}"


BRIDGE = address(0xB1)
ORACLE = address(0xA1)
ALICE = address(0xA0)
BOB = address(0xB0)
CAROL = address(0xC0)
DAVE = address(0xD0)
OWNERS = (ALICE, BOB, CAROL, DAVE)
STRANGER = address(0xEE)  # a valid address with no subaccount
COUNCIL = (address(0xC1), address(0xC2), address(0xC3))  # council members, when a genesis names a council
REPORT = "ab" * 32        # a stress report hash (64 lowercase hex)

BTC = "BTC-USD"
ETH = "ETH-USD"
PEPE = "PEPE-USD"
TICKERS = (BTC, ETH, PEPE)

GENESIS_TIME = "2026-01-01T00:00:00Z"
GENESIS_TIME_MS = 1_767_225_600_000

MARKETS: dict[str, dict[str, Any]] = {
    BTC: {"ticker": BTC, "size_decimals": 4, "price_decimals": 1, "liquidity_tier": 0,
          "min_order_size": "0.0001", "maker_fee": "0.0001", "taker_fee": "0.0005", "oracle_price": "50000"},
    ETH: {"ticker": ETH, "size_decimals": 4, "price_decimals": 3, "liquidity_tier": 2,
          "min_order_size": "0.001", "max_open_interest": "20", "maker_fee": "-0.0001", "taker_fee": "0.0005",
          "oracle_price": "3000"},
    PEPE: {"ticker": PEPE, "size_decimals": -3, "price_decimals": 9, "liquidity_tier": 4,
           "min_order_size": "1000", "maker_fee": "0.0002", "taker_fee": "0.0007", "isolated_only": True,
           "oracle_price": "0.00001"},
}


# ------------------------------------------------------------------------------------- genesis
def market(ticker: str = BTC, **overrides: Any) -> dict:
    """One genesis market: one of ``MARKETS`` (by ticker) with overrides, or a BTC-like new one."""
    base = copy.deepcopy(MARKETS.get(ticker, MARKETS[BTC]))
    base["ticker"] = ticker
    base.update(overrides)
    return base


def subaccount(number: int = 0, usdc: str = "100000", **overrides: Any) -> dict:
    return {"number": number, "usdc": usdc, **overrides}


def account(owner: str = ALICE, *subaccounts: dict) -> dict:
    return {"address": owner, "subaccounts": list(subaccounts) or [subaccount()]}


def default_accounts(owners: tuple[str, ...] = OWNERS, *, cross_usdc: str = "100000",
                     isolated_usdc: str = "50000") -> list[dict]:
    """Each owner: a cross subaccount 0 and a subaccount 1 isolated to PEPE-USD."""
    return [account(owner, subaccount(0, cross_usdc), subaccount(1, isolated_usdc, mode="isolated", market=PEPE))
            for owner in owners]


def genesis(**overrides: Any) -> dict:
    """A valid genesis document (docs/scenarios.md format); top-level keys can be overridden."""
    doc = {
        "chain_id": "bastion-test",
        "time": GENESIS_TIME,
        "bridge_operator": BRIDGE,
        "oracle": {"operators": [ORACLE], "min_sources": 1, "max_staleness_s": 60,
                   "max_source_deviation": "0.05", "max_move_per_block": "0.1"},
        "markets": [market(t) for t in TICKERS],
        "funding": {"default_funding": "0.0001"},
        "fees": {"insurance_share": "0.1"},
        "insurance_funds": {"cross": "100000", PEPE: "10000"},
        "accounts": default_accounts(),
    }
    doc.update(overrides)
    return doc


# ------------------------------------------------------------------------------------- messages
def change_rows(changes: list) -> list[tuple[str, Any, Any, str]]:
    """Governance effects (``bastion.core.governance.changes``) as ``(name, old, new, risk class)``
    rows in their recorded form, for comparing with expected values."""
    return [(change.name, change.old_record, change.new_record, change.risk) for change in changes]


def decimal_text(units: int, decimals: int) -> str:
    """``units`` of ``10**-decimals`` as a decimal string (``decimal_text(15, 1) == "1.5"``)."""
    return format_decimal(units, decimals)


def place_order(**fields: Any) -> dict:
    """A ``place_order`` message: by default ALICE's subaccount 0 buys 0.1 BTC at 50,000 gtc."""
    return {"type": "place_order", "subaccount": 0, "market": BTC, "side": "buy", "size": "0.1",
            "price": "50000", "client_id": 1, **fields}


def cancel_order(**fields: Any) -> dict:
    return {"type": "cancel_order", "subaccount": 0, **fields}


def cancel_all(**fields: Any) -> dict:
    return {"type": "cancel_all", "subaccount": 0, **fields}


def deposit(**fields: Any) -> dict:
    return {"type": "deposit", "owner": ALICE, "subaccount": 0, "amount": "100", **fields}


def withdraw(**fields: Any) -> dict:
    return {"type": "withdraw", "subaccount": 0, "amount": "100", **fields}


def transfer(**fields: Any) -> dict:
    return {"type": "transfer", "subaccount": 0, "to_owner": BOB, "to_subaccount": 0, "amount": "100", **fields}


def set_leverage(**fields: Any) -> dict:
    return {"type": "set_leverage", "subaccount": 0, "market": BTC, "initial_margin": "0.1", **fields}


def set_margin_mode(**fields: Any) -> dict:
    return {"type": "set_margin_mode", "subaccount": 0, "mode": "isolated", "market": PEPE, **fields}


def oracle_update(prices: dict | None = None, **fields: Any) -> dict:
    return {"type": "oracle_update", "prices": {BTC: "50000"} if prices is None else prices, **fields}


def transfer_bgov(**fields: Any) -> dict:
    return {"type": "transfer_bgov", "to": BOB, "amount": "10", **fields}


def delegate(**fields: Any) -> dict:
    return {"type": "delegate", "delegatee": ALICE, **fields}


def submit_proposal(*actions: dict, **fields: Any) -> dict:
    """A proposal (title "p", empty description, deposit "5" BGOV) with the given actions."""
    return {"type": "submit_proposal", "title": "p", "description": "", "deposit": "5", "actions": list(actions),
            **fields}


def vote(proposal_id: str, option: str = "yes", **fields: Any) -> dict:
    return {"type": "vote", "proposal_id": proposal_id, "option": option, **fields}


def queue(proposal_id: str) -> dict:
    return {"type": "queue", "proposal_id": proposal_id}


def execute(proposal_id: str) -> dict:
    return {"type": "execute", "proposal_id": proposal_id}


def cancel_proposal(proposal_id: str) -> dict:
    return {"type": "cancel_proposal", "proposal_id": proposal_id}


def registered_report(report_hash: str = REPORT, verdict: str = "pass") -> dict:
    """A genesis ``council.stress_reports`` entry (figures that pass the default thresholds)."""
    return {"report_hash": report_hash, "verdict": verdict, "depletion_probability": "0", "var99_loss": "0",
            "es99_loss": "0", "insurance_funds_total": "0"}


def register_stress_report(report_hash: str = REPORT, verdict: str = "pass", **figures: str) -> dict:
    """A ``register_stress_report`` message (figures default to "0", which pass any thresholds)."""
    return {"type": "register_stress_report", **registered_report(report_hash, verdict), **figures}


def council_attest(proposal_id: str, report_hash: str = REPORT, verdict: str = "pass") -> dict:
    return {"type": "council_attest", "proposal_id": proposal_id, "report_hash": report_hash, "verdict": verdict}


def steward_change(param: str, value: str) -> dict:
    return {"type": "steward_change", "param": param, "value": value}


def without(msg: dict, *names: str) -> dict:
    """A copy of ``msg`` without the given fields."""
    return {k: v for k, v in msg.items() if k not in names}


def tx(sender: str, msg: dict) -> dict:
    """A scenario-file transaction."""
    return {"sender": sender, "msg": msg}


# ------------------------------------------------------------------------------------- scenarios on a node
class ScenarioPlayer:
    """Plays a scenario file's blocks on a ``Node``; also the node's clock (``ms``: the genesis time,
    then each block's ``advance`` or ``time``). Each sender's nonces count 1, 2, ..."""

    def __init__(self, doc: dict) -> None:
        from bastion.core.timefmt import parse_iso_ms
        self.doc = doc
        self.ms = parse_iso_ms(doc["genesis"]["time"], field="time")
        self.nonces: dict[str, int] = {}
        self.played = 0

    def __call__(self) -> int:
        return self.ms

    def play(self, node: Any, blocks: int | None = None) -> None:
        """Produce the next ``blocks`` blocks of the scenario (all that are left by default)."""
        from bastion.core.timefmt import parse_iso_ms
        end = len(self.doc["blocks"]) if blocks is None else self.played + blocks
        for block in self.doc["blocks"][self.played:end]:
            self.ms = self.ms + block["advance"] * MS_PER_S if "advance" in block else parse_iso_ms(
                block["time"], field="time")
            for item in block["txs"]:
                self.nonces[item["sender"]] = self.nonces.get(item["sender"], 0) + 1
                node.submit({"sender": item["sender"], "nonce": self.nonces[item["sender"]], "msg": item["msg"]})
            node.produce_block()
            self.played += 1


def node_from_scenario(data: Any, doc: dict, blocks: int | None = None,
                       **node_options: Any) -> tuple[Any, ScenarioPlayer]:
    """A ``Node`` over the directory ``data`` that has produced the first ``blocks`` blocks (all by
    default) of the scenario ``doc``, and the player (its clock) to go on."""
    from bastion.node.node import Node
    player = ScenarioPlayer(doc)
    node = Node(data, doc["genesis"], clock_ms=player, **node_options)
    player.play(node, blocks)
    return node, player


# ------------------------------------------------------------------------------------- driver
class Chain:
    """A state plus an optionally open block: ``submit`` applies one message at a time.

    ``submit`` opens a block (at ``next_time_ms``) if none is open and returns the handler's result,
    or the decoding rejection ``{"ok": False, "code": ...}`` of a malformed message.
    ``end_block`` closes it; ``block`` applies a whole block through ``apply_block``.
    """

    def __init__(self, genesis_doc: dict | None = None) -> None:
        self.state: State = build_state(genesis() if genesis_doc is None else genesis_doc)
        self.is_open = False
        self.events: list[dict] = []
        self.next_time_ms = self.state.time_ms + MS_PER_S

    def open_block(self) -> None:
        if not self.is_open:
            self.events = []
            begin_block(self.state, self.next_time_ms, self.events)
            self.is_open = True

    def end_block(self, *, advance_ms: int = MS_PER_S) -> str:
        self.open_block()
        state_hash = end_block(self.state, self.events)
        self.is_open = False
        self.next_time_ms = self.state.time_ms + advance_ms
        return state_hash

    def submit(self, sender: str, msg: dict) -> dict:
        self.open_block()
        try:
            typed = decode_message(msg)
        except ProtocolError as error:
            return {"ok": False, "code": error.code, "message": error.message}
        return apply_tx(self.state, sender, typed, self.events)

    def block(self, txs: list[tuple[str, dict]], *, advance_s: int = 1) -> BlockResult:
        if self.is_open:
            self.end_block()
        time_ms = self.state.time_ms + advance_s * MS_PER_S
        result = apply_block(self.state, time_ms, [(sender, decode_message(msg)) for sender, msg in txs])
        self.next_time_ms = time_ms + MS_PER_S
        return result

    def full_hash(self) -> str:
        return compute_state_hash_full(self.state)

    def subaccount(self, owner: str, number: int = 0):
        return self.state.subaccounts[(owner, number)]
