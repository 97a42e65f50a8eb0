"""``bastion stress``: stress a state, write the hashed report and its HTML, attest it for the council.

Exit codes: 0 the verdict passes; 1 it fails (the report and, with ``--attest``, a ``fail``
attestation are still produced); 2 a usage or input error (nothing written). With ``--verify HASH``
(``bastion.stress.verify``): 0 the report reproduces byte for byte, 1 it does not, 2 it cannot be
recomputed (a missing or mismatching input).

Standard output is one JSON object: ``report_hash``, ``verdict``, ``state_hash``,
``thresholds_source`` (``governance``, or ``override`` with ``--thresholds``), the files written
and, with ``--attest``, the signed ``register_stress_report`` envelope under ``registration`` and
the signed ``council_attest`` envelope under ``attestation`` (nonces ``--nonce`` and ``--nonce`` + 1).
With ``--submit URL`` the report (and the baseline, with a proposal) is first uploaded to the node
(``POST /v1/stress/reports``; the node's answers under ``uploaded``), then the registration
submitted (the node's answer under ``registered``), then the attestation (the node's answer
under ``submitted``). Progress goes to standard error.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bastion.stress.execution import describe_execution
from bastion.stress.runner import (
    StressInputError, StressRun, load_set, load_state, load_thresholds, run, sign_attestation, sign_registration,
)

errors = Console(stderr=True, soft_wrap=True)


def stress(
    data: Path = typer.Option(None, "--data", file_okay=False, help="a node's data directory: its latest committed "
                                                                      "state (read only)"),
    scenario: Path = typer.Option(None, "--scenario", dir_okay=False, help="a scenario file: its final state"),
    genesis: Path = typer.Option(None, "--genesis", dir_okay=False, help="a genesis (or a scenario file's genesis)"),
    scenarios: Path = typer.Option(None, "--scenarios", dir_okay=False,
                                   help="scenario set JSON (default: the shipped gate set)"),
    seed: int = typer.Option(None, "--seed", help="replace the scenario set's seed (changes its hash)"),
    price_path: list[str] = typer.Option(None, "--path", metavar="[MARKET=]FILE",
                                         help="OHLC candles of one market, CSV (repeatable; docs/stress.md "
                                              "'Any price path')"),
    thresholds: Path = typer.Option(None, "--thresholds", dir_okay=False,
                                    help="verdict thresholds JSON, overriding the state's governed ones "
                                         "(recorded in the report)"),
    proposal: str = typer.Option(None, "--proposal", help="a queued proposal's id: its actions are applied first"),
    out: Path = typer.Option(None, "--out", file_okay=False, help="write report.json (canonical bytes), "
                                                                  "report.html (and baseline.json) here"),
    workers: int = typer.Option(None, "--workers", min=1, help="local worker processes (default: CPU count)"),
    ray: str = typer.Option(None, "--ray", help="run on Ray: a cluster ADDRESS, 'auto' or 'local' "
                                                "(pip install 'bastion\\[ray]')"),
    attest: bool = typer.Option(False, "--attest", help="print the council_attest envelope for the report "
                                                        "(needs --proposal and a key)"),
    key_file: Path = typer.Option(None, "--key-file", dir_okay=False, help="file holding the council member's "
                                                                           "private key (hex)"),
    key: str = typer.Option(None, "--key", help="the council member's private key (hex)"),
    nonce: int = typer.Option(None, "--nonce", help="envelope nonce (default: the clock in microseconds)"),
    submit: str = typer.Option(None, "--submit", help="node API URL: upload the report there, then submit "
                                                      "the attestation"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    verify: str = typer.Option(None, "--verify", metavar="HASH",
                               help="recompute the report HASH from the chain in --data (its state at the "
                                    "recorded height, its scenario set and seed): exit 0 when it reproduces byte "
                                    "for byte, 1 when it does not"),
    report_file: Path = typer.Option(None, "--report", dir_okay=False,
                                     help="with --verify: the report's file (default: the node's report store)"),
    replay_days: int = typer.Option(None, "--replay-days", min=1,
                                    help="with --data and --proposal: also replay the proposal over the last N "
                                         "days of the block log (the testnet result, in the report)"),
    replay_max_blocks: int = typer.Option(5_000, "--replay-max-blocks", min=1,
                                          help="at most this many (latest) blocks in the --replay-days window"),
) -> None:
    """Stress a state with a scenario set: the report's hash and verdict, its files, the attestation.
    With ``--verify HASH``: recompute a report from the chain and say whether it reproduces."""
    if verify is not None:
        _verify(verify, data=data, report=report_file, scenarios=scenarios, proposal=proposal, workers=workers)
        return
    try:
        private_key = _council_key(attest=attest, key=key, key_file=key_file, proposal=proposal, submit=submit)
        if replay_days is not None and (data is None or proposal is None):
            raise StressInputError("--replay-days replays the block log of --data DIR with --proposal ID applied")
        state = load_state(data=data, scenario=scenario, genesis=genesis)
        scenario_set = load_set(scenarios, seed, price_path or (), tuple(state.markets))
        limits = load_thresholds(thresholds)
        total = len(scenario_set.scenarios()) * (1 if proposal is None else 2)
        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=errors, disable=quiet, transient=False) as progress:
            task = progress.add_task(f"scenarios on {describe_execution(workers, ray)}", total=total)
            stress_run = run(state, scenario_set=scenario_set, thresholds=limits, proposal_id=proposal,
                             workers=workers, ray_address=ray,
                             on_progress=lambda done: progress.update(task, completed=done))
        if replay_days is not None:
            from bastion.stress.runner import load_proposal_actions
            from bastion.stress.testnet import add_testnet, replay_recent

            stress_run = add_testnet(stress_run, replay_recent(
                data, load_proposal_actions(state, proposal), replay_days, max_blocks=replay_max_blocks,
                proposal_id=proposal))
        files = [str(path) for path in stress_run.write(out)] if out is not None else []
        output = {"report_hash": stress_run.report.report_hash, "verdict": stress_run.verdict,
                  "state_hash": stress_run.inputs.state_hash, "height": stress_run.inputs.height,
                  "thresholds_source": stress_run.report.document["thresholds_source"],
                  "proposal_id": proposal, "files": files}
        if stress_run.baseline is not None:
            output["baseline_report_hash"] = stress_run.baseline.report_hash
        if "testnet" in stress_run.report.document:
            output["testnet"] = stress_run.report.document["testnet"]
        if private_key is not None:
            # the registration first (nonce), then the attestation (nonce + 1): the chain refuses an
            # attestation naming a report that is not registered
            first = time.time_ns() // 1_000 if nonce is None else nonce   # the SDK's clock nonce
            output["registration"] = sign_registration(stress_run, private_key, nonce=first)
            output["attestation"] = sign_attestation(stress_run, private_key, nonce=first + 1)
    except StressInputError as error:
        errors.print(f"[red]stress input error:[/red] {error}")
        raise typer.Exit(2) from None
    if submit is not None:
        output["uploaded"], output["registered"], output["submitted"] = _submit(
            submit, stress_run, output["registration"], output["attestation"])
    print(json.dumps(output, indent=2))
    errors.print(f"verdict [{'green' if stress_run.passed else 'red'}]{stress_run.verdict.upper()}[/], "
                 f"report hash {stress_run.report.report_hash}")
    if not stress_run.passed:
        raise typer.Exit(1)


def _verify(report_hash: str, *, data: Path | None, report: Path | None, scenarios: Path | None,
            proposal: str | None, workers: int | None) -> None:
    """``--verify``: one JSON object (``bastion.stress.verify.verify_report``); exit 0 reproduced,
    1 not reproduced, 2 when it cannot be recomputed (a missing or mismatching input)."""
    from bastion.stress.verify import verify_report

    if data is None:
        errors.print("[red]stress input error:[/red] --verify needs --data DIR (the chain to recompute from)")
        raise typer.Exit(2)
    try:
        outcome = verify_report(report_hash, data, report=report, scenarios=scenarios, proposal=proposal,
                                workers=workers or 1)
    except StressInputError as error:
        errors.print(f"[red]cannot verify:[/red] {error}")
        raise typer.Exit(2) from None
    print(json.dumps(outcome, indent=2))
    if not outcome["reproduced"]:
        errors.print(f"[red]NOT REPRODUCED[/red]: recomputed {outcome['recomputed_hash']}, first difference at "
                     f"{outcome['difference']}")
        raise typer.Exit(1)
    errors.print(f"[green]reproduced[/green] byte for byte: {report_hash}")


def _council_key(*, attest: bool, key: str | None, key_file: Path | None, proposal: str | None,
                 submit: str | None) -> str | None:
    """The private key for ``--attest`` (checked before the sweep, so a usage error costs nothing)."""
    if not attest:
        if key is not None or key_file is not None or submit is not None:
            raise StressInputError("--key, --key-file and --submit go with --attest")
        return None
    if proposal is None:
        raise StressInputError("--attest names a queued proposal: give --proposal ID")
    if (key is None) == (key_file is None):
        raise StressInputError("--attest needs exactly one of --key HEX or --key-file FILE")
    if key_file is not None:
        try:
            return key_file.read_text().strip()
        except OSError as error:
            raise StressInputError(f"--key-file: cannot read {key_file} ({error.strerror})") from None
    return key


def _submit(url: str, stress_run: StressRun, registration: dict,
            envelope: dict) -> tuple[dict[str, object], object, object]:
    """Upload the report (and the baseline, with a proposal) to the node, then submit the signed
    registration (``register_stress_report``) and the attestation, through the SDK: the report
    first, so that an attestation the node accepts always has its report there to read, and the
    registration before the attestation (a lower nonce of the same sender: the block applies it
    first), which the chain requires. When another member registered the report already, the
    registration fails in the block (``stress_report_exists``) and the attestation still counts. A
    refusal, a node naming another hash, or an unreachable node exits 2 (with nothing submitted
    when an upload failed)."""
    import httpx

    from bastion.client import BastionError, Client

    reports = {"report": stress_run.report}
    if stress_run.baseline is not None:
        reports["baseline"] = stress_run.baseline
    try:
        with Client(url) as client:
            uploaded = {}
            for name, report in reports.items():
                uploaded[name] = client.upload_stress_report(report.canonical_bytes)
                if uploaded[name]["report_hash"] != report.report_hash:
                    errors.print(f"[red]the node stored the {name} as {uploaded[name]['report_hash']}, "
                                 f"not {report.report_hash}:[/red] not submitting the attestation")
                    raise typer.Exit(2)
            registered = client.submit_envelope(registration)
            return uploaded, registered, client.submit_envelope(envelope)
    except BastionError as error:
        errors.print(f"[red]submission refused:[/red] {error}")
    except httpx.HTTPError as error:
        errors.print(f"[red]cannot reach {url}:[/red] {error}")
    raise typer.Exit(2)
