"""What the web pages may be given besides the node: the demo's features, by injection.

Production page code never imports ``bastion.demo``. A demo (``bastion demo``, ``bastion.demo``)
builds an object with this shape and hands it to ``create_app(..., demo=...)``, which passes it to
``mount_web``; without one the pages have no demo keys, no "act as" choices and no demo endpoints.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["DemoFeatures"]


class DemoFeatures(Protocol):
    """The demo's keys, seen from the pages: who may be acted as, and envelopes signed for them.

    ``traders`` maps each demo trader's name to its address, in the order the page-level selector
    shows them (the first is the default signer); ``label`` is the warning shown beside them. The
    keys themselves stay behind ``sign_as`` (one of ``traders``) and ``sign_as_bridge`` (the demo
    bridge operator, for the faucet), which return signed envelopes (``bastion.signing``) with
    fresh nonces for the chain ``chain_id``."""

    label: str
    traders: Mapping[str, str]

    def sign_as(self, trader: str, chain_id: str, msg: dict[str, Any]) -> dict[str, Any]: ...

    def sign_as_bridge(self, chain_id: str, msg: dict[str, Any]) -> dict[str, Any]: ...
