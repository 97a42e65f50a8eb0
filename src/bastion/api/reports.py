"""Stress reports held by a node: uploaded by anyone, stored by content, served to anyone.

The council attests a stress report by its hash (``council_attest{proposal_id, report_hash,
verdict}``, DESIGN.md section 9); the chain records only the hash. So that a reader of a proposal
can read the report itself, a node keeps reports **off-chain**, beside its block log::

    DATA_DIR/reports/<report_hash>.json      the report's canonical bytes

``ReportStore.put(document)`` checks the document with the stress package's own
``check_report_document`` (shape, and the summary and verdict rebuilt from the scenarios: no second
implementation here), computes its canonical bytes and hash with ``hash_report`` (the function
``build_report`` uses), and writes the bytes under their hash, atomically (a temporary file in the
same directory, fsynced, then renamed). Storing is idempotent: the same report is the same file.

**No signature is needed, and none is asked**: a report is named by the SHA-256 of its bytes, so
a report held under a hash *is* the report with that hash, whoever uploaded it. A tampered report
has another hash and is stored under it, never under the attested one; every read checks the
bytes against their name again (a file damaged on disk is not served). Uploads are rate-limited
per client address and size-limited (``ApiConfig.report_*``, ``bastion.app``).

None of this is state: the store is not part of the state machine, the state hash or replay; two
nodes may hold different reports, and a node may hold none (``held: false`` in what it serves).
"""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from bastion.core.errors import ProtocolError
from bastion.core.units import format_ppm, format_usdc
from bastion.durable import write_atomically

DIRECTORY = "reports"
MAX_CACHED = 1_024  # headline figures kept in memory (reports never change: a hash names its bytes)


def is_report_hash(value: str) -> bool:
    """A SHA-256 hex digest, lowercase (the only names the store has)."""
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def report_url(report_hash: str) -> str:
    return f"/v1/stress/reports/{report_hash}"


class ReportStore:
    """Content-addressed stress reports under ``directory`` (created on first use)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._headlines: dict[str, dict[str, Any] | None] = {}
        self._lock = threading.Lock()

    def path(self, report_hash: str) -> Path:
        if not is_report_hash(report_hash):
            raise ProtocolError("invalid_report_hash", "a report hash is 64 lowercase hex digits", field="report_hash")
        return self.directory / f"{report_hash}.json"

    def put(self, document: Any) -> tuple[str, bool, dict[str, Any]]:
        """Check and store a report document: ``(report_hash, created, document)``, ``created``
        false when the node already held it. Raises ``ProtocolError("invalid_report")`` (nothing
        written)."""
        from bastion.stress.report import check_report_document

        report = check_report_document(document)
        target = self.path(report.report_hash)
        if self.read_bytes(report.report_hash) is not None:
            return report.report_hash, False, report.document
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(target, report.canonical_bytes)
        return report.report_hash, True, report.document

    def read_bytes(self, report_hash: str) -> bytes | None:
        """The stored canonical bytes of ``report_hash``, or None when the node does not hold them
        (or holds a file whose bytes no longer hash to its name)."""
        try:
            data = self.path(report_hash).read_bytes()
        except FileNotFoundError:
            return None
        return data if hashlib.sha256(data).hexdigest() == report_hash else None

    def get(self, report_hash: str) -> dict[str, Any]:
        """The stored document; ``ProtocolError("report_not_found")`` (404) when not held."""
        data = self.read_bytes(report_hash)
        if data is None:
            raise ProtocolError("report_not_found", f"this node holds no stress report {report_hash}",
                                field="report_hash")
        return json.loads(data)

    def render_html(self, report_hash: str) -> str:
        """The report's self-contained HTML page (``stress.htmlreport.render_html``) drawn from the
        stored document: the plots that need the stressed state are left out (the page says so);
        with a proposal's report, the baseline (the state before it) is drawn beside it when the
        node holds the baseline report too."""
        from bastion.stress.htmlreport import render_html

        document = self.get(report_hash)
        baseline = None
        baseline_hash = document.get("baseline", {}).get("report_hash")
        if baseline_hash is not None and self.read_bytes(baseline_hash) is not None:
            baseline = self.get(baseline_hash)
        return render_html(document, None, baseline=baseline)

    def headline(self, report_hash: str) -> dict[str, Any]:
        """What a reader of a proposal sees next to an attestation of ``report_hash``: whether the
        node holds the report, links to it, and its verdict and headline figures (decimal strings:
        USDC, and ratios with 6 decimals); the figures are null when the report is not held."""
        with self._lock:
            cached = self._headlines.get(report_hash)
        if cached is None:
            data = self.read_bytes(report_hash) if is_report_hash(report_hash) else None
            cached = None if data is None else _describe_figures(json.loads(data))
            if cached is not None:
                with self._lock:
                    if len(self._headlines) >= MAX_CACHED:
                        self._headlines.clear()
                    self._headlines[report_hash] = cached
        held = cached is not None
        return {"report_hash": report_hash, "held": held,
                "url": report_url(report_hash) if held else None,
                "html_url": f"{report_url(report_hash)}/html" if held else None,
                **(cached or dict.fromkeys(HEADLINE_FIELDS))}


HEADLINE_FIELDS = ("verdict", "scenarios", "depleted", "depletion_probability", "var99_loss", "es99_loss",
                   "worst_bad_debt", "worst_drawdown", "insurance_funds_total", "thresholds", "thresholds_source",
                   "state_hash", "height", "scenario_set")


def _describe_figures(document: dict[str, Any]) -> dict[str, Any]:
    summary, verdict, inputs = document["summary"], document["verdict"], document["inputs"]
    scenario_set = inputs["scenario_set"]
    return {"verdict": "pass" if verdict["passed"] else "fail", "scenarios": summary["scenarios"],
            "depleted": summary["depleted"],
            "depletion_probability": format_ppm(summary["depletion_probability_ppm"]),
            "var99_loss": format_usdc(summary["var99_loss_usdc"]), "es99_loss": format_usdc(summary["es99_loss_usdc"]),
            "worst_bad_debt": format_usdc(summary["worst_bad_debt_usdc"]),
            "worst_drawdown": format_usdc(summary["worst_drawdown_usdc"]),
            "insurance_funds_total": format_usdc(verdict["insurance_funds_total_usdc"]),
            "thresholds": document["thresholds"], "thresholds_source": document["thresholds_source"],
            "state_hash": inputs["state_hash"], "height": inputs["height"],
            "scenario_set": f"{scenario_set['name']} v{scenario_set['version']}"}


def describe_gate_reports(gate: dict[str, Any], store: ReportStore) -> dict[str, Any]:
    """Add ``reports`` to a described stress gate (``api.views.describe_stress_gate``): for every
    report hash an attestation names, ``store.headline(hash)``. Called outside the node's lock (it
    reads files); the gate's other fields are the committed state's."""
    hashes = sorted({a["report_hash"] for a in gate["attestations"]})
    gate["reports"] = {report_hash: _with_registration(store.headline(report_hash),
                                                       gate.get("registered", {}).get(report_hash))
                       for report_hash in hashes}
    return gate


REGISTERED_FIELDS = ("verdict", "depletion_probability", "var99_loss", "es99_loss", "insurance_funds_total")


def _with_registration(headline: dict[str, Any], registered: dict[str, Any] | None) -> dict[str, Any]:
    """The headline plus the on-chain registration (``register_stress_report``, issue 16) and
    ``matches_registration``: whether the report this node holds has the registered verdict and
    figures (null when the node does not hold it or nothing is registered). The chain checks the
    registered figures against the thresholds, never against the report: this is where a reader
    sees a registration that misstates its report."""
    matches = None
    if headline["held"] and registered is not None:
        matches = all(headline[name] == registered[name] for name in REGISTERED_FIELDS)
    return {**headline, "registered": registered, "matches_registration": matches}

