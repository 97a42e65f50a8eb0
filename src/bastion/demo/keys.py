"""The demo's keys: **demo keys — never use in production**.

Every key here is derived from a public phrase (``keccak256("bastion demo key: NAME")``), so anyone
can sign as any demo account: they exist so that ``bastion demo`` can run its bots and let a
visitor of the web UI act as a demo trader without a wallet. A production node never holds keys.

Roles: ``maker`` (quotes every market), ``oracle`` (the only oracle operator), ``bridge`` (the bridge
operator, credits deposits: the demo faucet), the traders a visitor may act as, ``alice``,
``bob``, ``carol`` and ``dave`` (a bot each too, except ``alice``, who is left to the visitor), and
the three members of the demo's stress council, ``council1`` to ``council3`` (two of three attest).
"""
from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_utils import keccak

__all__ = ["DEMO_COUNCIL", "DEMO_KEY_LABEL", "DEMO_TRADERS", "DemoKey", "get_demo_keys"]

DEMO_KEY_LABEL = "demo key — never use in production"
DEMO_TRADERS = ("alice", "bob", "carol", "dave")
DEMO_COUNCIL = ("council1", "council2", "council3")
DEMO_ROLES = ("maker", "oracle", "bridge") + DEMO_TRADERS + DEMO_COUNCIL


@dataclass(frozen=True, slots=True)
class DemoKey:
    """One demo account: its name, public private key and lowercase address."""

    name: str
    private_key: str
    address: str


def compute_demo_key(name: str) -> DemoKey:
    private_key = "0x" + keccak(text=f"bastion demo key: {name}").hex()
    return DemoKey(name, private_key, Account.from_key(private_key).address.lower())


def get_demo_keys() -> dict[str, DemoKey]:
    """Every demo role's key, by name (maker, oracle, bridge, the traders, then the council)."""
    return {name: compute_demo_key(name) for name in DEMO_ROLES}
