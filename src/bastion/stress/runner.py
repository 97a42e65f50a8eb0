"""``bastion.stress.run``: one stress run from a state to the hashed report, the HTML and the
council's attestation (what ``bastion stress`` wraps).

Pipeline::

    load_state(data= | scenario= | genesis=)          the committed State to test
      -> [--proposal ID] load_proposal_actions + apply_proposal   (the queued proposal applied)
      -> extract_inputs -> execute_sweep (processes | Ray) -> build_report      (report.json)
      -> [proposal] the same sweep on the state before it                      (baseline.json)
      -> render_html                                                            (report.html)
      -> [--attest] council_attest{proposal_id, report_hash, verdict} signed as an envelope

With a proposal, **the report is the one of the state after the proposal** (the one the council
attests and the gate matches); the baseline, the same sweep on the state as it is, is written
beside it and drawn side by side in the HTML, but its hash is not what anyone signs.

The verdict's thresholds are the state's governance parameters (``GovernanceParams.stress_*``) unless
a thresholds file overrides them; the report says which (``thresholds_source``).

Errors of the inputs (a missing file, a state without the proposal, a malformed scenario set or
thresholds file) raise ``StressInputError`` (the CLI's exit code 2).
"""
from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.state import State
from bastion.stress.execution import Progress, execute_sweep
from bastion.stress.htmlreport import compute_series, render_html, representative_indices
from bastion.stress.inputs import StressInputs, extract_inputs
from bastion.stress.report import StressReport, StressThresholds, build_report, parse_thresholds
from bastion.stress.candles import load_candles
from bastion.stress.paths import check_path_markets
from bastion.stress.scenarios import (
    PathFile, PricePath, ScenarioSet, base_asset, default_scenario_set, load_scenario_set,
)

REPORT_FILE = "report.json"
BASELINE_FILE = "baseline.json"
HTML_FILE = "report.html"


class StressInputError(Exception):
    """The inputs of a run cannot be used (the message says which and why)."""


@dataclass(frozen=True, eq=False)
class StressRun:
    """A finished run: the report (after the proposal, when there is one) and what drew it."""

    report: StressReport
    inputs: StressInputs
    scenario_set: ScenarioSet
    chain_id: str
    proposal_id: str | None = None
    baseline: StressReport | None = None          # the state before the proposal
    baseline_inputs: StressInputs | None = None

    @property
    def passed(self) -> bool:
        return bool(self.report.document["verdict"]["passed"])

    @property
    def verdict(self) -> str:
        """The council's word for it: ``pass`` or ``fail``."""
        return "pass" if self.passed else "fail"

    def html(self) -> str:
        indices = representative_indices(self.report.document)
        baseline_series = None
        if self.baseline_inputs is not None:
            baseline_series = compute_series(self.baseline_inputs, self.scenario_set, indices)
        return render_html(self.report.document, compute_series(self.inputs, self.scenario_set, indices),
                           baseline=None if self.baseline is None else self.baseline.document,
                           baseline_series=baseline_series, proposal_id=self.proposal_id)

    def write(self, directory: str | Path) -> list[Path]:
        """``report.json`` (the canonical bytes), ``baseline.json`` (with a proposal) and ``report.html``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / REPORT_FILE]
        written[0].write_bytes(self.report.canonical_bytes)
        if self.baseline is not None:
            written.append(out / BASELINE_FILE)
            written[-1].write_bytes(self.baseline.canonical_bytes)
        written.append(out / HTML_FILE)
        written[-1].write_text(self.html(), encoding="utf-8")
        return written


# --------------------------------------------------------------------------------------- inputs
def load_state(*, data: str | Path | None = None, scenario: str | Path | None = None,
               genesis: str | Path | None = None) -> State:
    """The committed state to test: a node data directory's latest committed state (recovered
    read-only, as the node recovers it), a scenario file's final state, or a genesis (a bare genesis
    document or a scenario file's ``genesis``). Exactly one of the three."""
    given = [(name, value) for name, value in (("data", data), ("scenario", scenario), ("genesis", genesis))
             if value is not None]
    if len(given) != 1:
        raise StressInputError("give exactly one of --data DIR, --scenario FILE or --genesis FILE")
    name, value = given[0]
    try:
        if name == "data":
            from bastion.node.recovery import load_committed_state

            return load_committed_state(value)[0]
        if name == "scenario":
            from bastion.scenario import scenario_final_state

            return scenario_final_state(value)
        document = _read_json(value, "genesis")
        return build_state(document.get("genesis", document) if isinstance(document, dict) else document)
    except ProtocolError as error:
        raise StressInputError(f"{name}: {error.message}") from None
    except StressInputError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged log, a malformed scenario: named and refused
        raise StressInputError(f"{name} {value}: {error}") from None


def load_proposal_actions(state: State, proposal_id: str) -> tuple:
    """The typed actions of the queued proposal ``proposal_id`` (the only status the gate attests)."""
    proposal = state.proposals.get(proposal_id)
    if proposal is None:
        raise StressInputError(f"no proposal {proposal_id} in the state (height {state.height})")
    if proposal.status != "queued":
        raise StressInputError(f"proposal {proposal_id} is {proposal.status}: only a queued proposal is attested")
    return proposal.actions


def _read_json(path: str | Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise StressInputError(f"{what}: cannot read {path} ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise StressInputError(f"{what}: {path} is not valid JSON ({error})") from None


def load_thresholds(path: str | Path | None) -> StressThresholds | None:
    """An override of the governed thresholds from a file (``None``: no file, the governed ones)."""
    if path is None:
        return None
    try:
        return parse_thresholds(_read_json(path, "thresholds"))
    except ProtocolError as error:
        raise StressInputError(f"thresholds: {error.message}") from None


def load_set(path: str | Path | None, seed: int | None, price_paths: Sequence[str] = (),
             tickers: Sequence[str] = ()) -> ScenarioSet:
    """The scenario set of ``path`` (default: the shipped gate set), with ``seed`` if given (the
    seed is part of the set's document, so it changes the set's hash).

    ``price_paths`` (``--path``, each ``FILE`` or ``MARKET=FILE``): one ``path`` scenario entry of
    these candle files (both candle orders) is added to the set given by ``path``; without ``path``
    the run is of these files alone (the set ``price-paths``, version 1, default engine settings).
    A file without ``MARKET=`` drives the market of ``tickers`` named by its file name
    (``market_of_file``)."""
    try:
        if price_paths:
            spec = price_path_spec(price_paths, tickers)
            if path is None:
                scenario_set = ScenarioSet(name="price-paths", version=1, seed=0, specs=(spec,))
            else:
                base = load_scenario_set(path)
                if spec.name in {s.name for s in base.specs}:
                    raise StressInputError(f"--path: the scenario set already has a scenario named {spec.name!r}")
                scenario_set = dataclasses.replace(base, specs=(*base.specs, spec))
        else:
            scenario_set = default_scenario_set() if path is None else load_scenario_set(path)
    except ProtocolError as error:
        raise StressInputError(f"scenario set: {error.message}") from None
    except (OSError, json.JSONDecodeError) as error:
        raise StressInputError(f"scenario set {path}: {error}") from None
    return scenario_set if seed is None else dataclasses.replace(scenario_set, seed=seed)


PRICE_PATH_SCENARIO = "price-path"


def price_path_spec(arguments: Sequence[str], tickers: Sequence[str]) -> PricePath:
    """The ``path`` scenario entry of ``--path`` arguments: each ``MARKET=FILE`` or ``FILE`` (its
    market from its name, ``market_of_file``); the document records each file by its name only, so
    the set's hash depends on the files' contents and names, not on the directory they are in."""
    files = []
    for argument in arguments:
        market, sep, file = argument.partition("=")
        if not sep:
            market, file = market_of_file(argument, tickers), argument
        series = load_candles(file)
        files.append(PathFile(market, Path(file).name, series.sha256, str(file)))
    if len({f.market for f in files}) != len(files):
        raise StressInputError("--path: one file per market")
    return PricePath(name=PRICE_PATH_SCENARIO, files=tuple(files))


def market_of_file(file: str | Path, tickers: Sequence[str]) -> str:
    """The market a candle file's name names: the first token of its name (split at ``_``, ``-``,
    ``.`` and spaces) whose base asset (``BTCUSDT`` -> BTC, ``BTC`` -> BTC) is the base asset of
    exactly one market of the state (``BTC-USD``)."""
    by_asset: dict[str, list[str]] = {}
    for ticker in tickers:
        by_asset.setdefault(base_asset(ticker), []).append(ticker)
    for token in re.split(r"[_\-. ]+", Path(file).stem):
        if token and len(by_asset.get(base_asset(token), [])) == 1:
            return by_asset[base_asset(token)][0]
    raise StressInputError(f"--path {file}: its name names no market of the state ({', '.join(tickers)}); "
                           f"give --path MARKET={file}")


# --------------------------------------------------------------------------------------- the run
def run(state: State, *, scenario_set: ScenarioSet | None = None, thresholds: StressThresholds | None = None,
        proposal_id: str | None = None, workers: int | None = None, ray_address: str | None = None,
        on_progress: Progress | None = None) -> StressRun:
    """Stress ``state`` (after the queued proposal ``proposal_id`` when given) with ``scenario_set``
    (default: the shipped gate set) on ``workers`` local processes (default: one per CPU) or on Ray.
    ``on_progress(done)`` counts finished scenarios, across both sweeps when there is a baseline.

    The verdict is against ``thresholds`` when given (an override, recorded as such), otherwise
    against the governed thresholds of ``state``, the ones in force: with a proposal, its report and
    the baseline are both judged by them, even if the proposal changes them (a proposal does not
    set the bar of its own gate)."""
    scenario_set = scenario_set or default_scenario_set()
    try:
        check_path_markets(scenario_set, tuple(state.markets))
    except ProtocolError as error:
        raise StressInputError(f"scenario set: {error.message}") from None
    thresholds = thresholds or StressThresholds.governed(state.governance)
    total = len(scenario_set.scenarios())

    def sweep(inputs: StressInputs, offset: int) -> StressReport:
        progress = None if on_progress is None else (lambda done: on_progress(offset + done))
        results = execute_sweep(inputs, scenario_set, workers=workers, ray_address=ray_address,
                                on_progress=progress)
        return build_report(inputs, scenario_set, results, thresholds)

    if proposal_id is None:
        inputs = extract_inputs(state)
        return StressRun(sweep(inputs, 0), inputs, scenario_set, state.chain_id)
    actions = load_proposal_actions(state, proposal_id)
    from bastion.stress.proposal import apply_proposal  # the exact-replay side (issue 6, part 2a)

    baseline_inputs = extract_inputs(state)
    proposed_inputs = extract_inputs(apply_proposal(state, actions))
    report = sweep(proposed_inputs, 0)
    baseline = sweep(baseline_inputs, total)
    return StressRun(report, proposed_inputs, scenario_set, state.chain_id, proposal_id, baseline, baseline_inputs)


# --------------------------------------------------------------------------------------- attestation
def attestation_message(stress_run: StressRun) -> dict[str, str]:
    """``council_attest{proposal_id, report_hash, verdict}`` for this run's report."""
    if stress_run.proposal_id is None:
        raise StressInputError("an attestation names a queued proposal: run with --proposal ID")
    return {"type": "council_attest", "proposal_id": stress_run.proposal_id,
            "report_hash": stress_run.report.report_hash, "verdict": stress_run.verdict}


def registration_message(stress_run: StressRun) -> dict[str, str]:
    """``register_stress_report`` for this run's report: its hash, verdict and headline figures
    (the depletion probability as a ratio, VaR99 / ES99 of losses and the insurance funds' total in
    USDC), which the chain checks against the governed thresholds before any attestation."""
    from bastion.core.units import format_ppm, format_usdc

    document = stress_run.report.document
    summary = document["summary"]
    return {"type": "register_stress_report", "report_hash": stress_run.report.report_hash,
            "verdict": stress_run.verdict,
            "depletion_probability": format_ppm(summary["depletion_probability_ppm"]),
            "var99_loss": format_usdc(summary["var99_loss_usdc"]), "es99_loss": format_usdc(summary["es99_loss_usdc"]),
            "insurance_funds_total": format_usdc(document["verdict"]["insurance_funds_total_usdc"])}


def sign_registration(stress_run: StressRun, private_key: str | bytes, *, nonce: int | None = None) -> dict[str, Any]:
    """The registration as a signed envelope (as ``sign_attestation``)."""
    from bastion.api.signing import sign_envelope

    try:
        return sign_envelope(private_key, stress_run.chain_id, registration_message(stress_run),
                             time.time_ns() // 1_000 if nonce is None else nonce)
    except (ValueError, TypeError) as error:
        raise StressInputError(f"the council key cannot sign: {error}") from None


def sign_attestation(stress_run: StressRun, private_key: str | bytes, *, nonce: int | None = None) -> dict[str, Any]:
    """The attestation as a signed envelope (EIP-712, ``bastion.api.signing``) on the run's chain;
    ``nonce`` defaults to the clock in microseconds, as the SDK's."""
    from bastion.api.signing import sign_envelope

    message = attestation_message(stress_run)
    try:
        return sign_envelope(private_key, stress_run.chain_id, message,
                             time.time_ns() // 1_000 if nonce is None else nonce)
    except (ValueError, TypeError) as error:
        raise StressInputError(f"the council key cannot sign: {error}") from None
