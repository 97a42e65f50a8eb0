"""The demo's features for the web pages (``bastion.web.features.DemoFeatures``) over the demo keys.

``bastion demo`` builds one (``demo_features``) and passes it to ``create_app(..., demo=...)``:
the pages then offer "act as" a demo trader and a faucet, and sign with the **demo keys**
(``bastion.demo.keys``: public, never use in production).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.demo.bots import NonceClock
from bastion.demo.keys import DEMO_KEY_LABEL, DEMO_TRADERS, DemoKey, get_demo_keys
from bastion.signing import sign_envelope

__all__ = ["DemoKeyFeatures", "demo_features"]


class DemoKeyFeatures:
    """``DemoFeatures`` with the demo traders' keys and the demo bridge's, and microsecond nonces
    per signer (``NonceClock``)."""

    label = DEMO_KEY_LABEL

    def __init__(self, keys: dict[str, DemoKey]) -> None:
        self._traders = {name: key for name, key in keys.items() if name in DEMO_TRADERS}
        self._bridge = keys["bridge"]
        self._nonces = NonceClock()
        self.traders: Mapping[str, str] = {name: key.address for name, key in self._traders.items()}

    def _sign(self, key: DemoKey, chain_id: str, msg: dict[str, Any]) -> dict[str, Any]:
        return sign_envelope(key.private_key, chain_id, msg, self._nonces.next(key.address))

    def sign_as(self, trader: str, chain_id: str, msg: dict[str, Any]) -> dict[str, Any]:
        """An envelope of ``msg`` signed by the demo trader ``trader`` (a key of ``traders``)."""
        return self._sign(self._traders[trader], chain_id, msg)

    def sign_as_bridge(self, chain_id: str, msg: dict[str, Any]) -> dict[str, Any]:
        """An envelope of ``msg`` signed by the demo bridge operator."""
        return self._sign(self._bridge, chain_id, msg)


def demo_features() -> DemoKeyFeatures:
    """The demo's features over ``get_demo_keys()``."""
    return DemoKeyFeatures(get_demo_keys())
