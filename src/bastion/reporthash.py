"""The content address of a stress report: its canonical bytes and their SHA-256 (``report_hash``).

The one definition, below both sides that need it: the stress tester (``bastion.stress.report``)
names the reports it builds with it, the node's report store checks uploads with it, and the SDK
(``bastion.client``) checks that what a node answers for a hash is that report, without importing
any server module.
"""
from __future__ import annotations

import hashlib
from typing import Any

from bastion.core.snapshot import canonical_bytes

__all__ = ["compute_report_hash", "report_bytes"]


def report_bytes(document: dict[str, Any]) -> bytes:
    """A report document's canonical bytes (``bastion.core.snapshot.canonical_bytes``)."""
    return canonical_bytes(document)


def compute_report_hash(document: dict[str, Any]) -> str:
    """The SHA-256 of a report document's canonical bytes (its ``report_hash``)."""
    return hashlib.sha256(report_bytes(document)).hexdigest()
