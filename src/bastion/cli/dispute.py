"""``bastion dispute open|check|show`` (issue 18, ``bastion.core.disputes``).

``check ID --data DIR`` replays the disputed block from a node's data directory and says whether the
recorded outcome equals the rules' (``bastion.node.dispute_check``); ``show ID --data DIR`` prints the
dispute from the node's committed state; ``open`` signs an ``open_dispute`` with a key and sends it
to a node's API (``bastion.client``). Exit codes: 0 done (for ``check``: no deviation), 1 ``check``
found a deviation, 2 a refusal or a usage error.
"""
from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from bastion.core.errors import ProtocolError

dispute_app = typer.Typer(help="Disputes of liquidations: open one, check one by replay, show one.",
                          no_args_is_help=True)
console = Console()
errors = Console(stderr=True, soft_wrap=True)


def _fail(error: ProtocolError) -> None:
    errors.print(f"[red]{error.code}[/red]: {error.message}")
    raise typer.Exit(2)


@dispute_app.command("check")
def check(dispute_id: int = typer.Argument(..., help="the dispute id"),
          data: Path = typer.Option(..., "--data", help="the node's data directory"),
          as_json: bool = typer.Option(False, "--json", help="print the whole report as JSON")) -> None:
    """Replay the disputed block from DIR's log; exit 1 if the recorded outcome is not the rules'."""
    from bastion.node.dispute_check import check_dispute
    try:
        report = check_dispute(data, dispute_id)
    except ProtocolError as error:
        _fail(error)
    if as_json:
        print(json.dumps(report, indent=1))
    else:
        verdict = "[red]DEVIATION[/red]" if report["deviation"] else "[green]no deviation[/green]"
        console.print(f"dispute {dispute_id}: block {report['height']}, {report['kind']} of {report['owner']} "
                      f"#{report['number']} in {report['market']} ({report['evidence']['waterfall_rung']}): {verdict}")
        console.print(f"recorded {len(report['recorded'])} event(s), replayed {len(report['replayed'])}; "
                      f"state hash {'matches' if report['state_hash_matches'] else 'differs'}")
    if report["deviation"]:
        raise typer.Exit(1)


@dispute_app.command("show")
def show(dispute_id: int = typer.Argument(..., help="the dispute id"),
         data: Path = typer.Option(..., "--data", help="the node's data directory"),
         as_json: bool = typer.Option(False, "--json", help="print the dispute as JSON")) -> None:
    """Print a dispute (claim, bond, votes, ruling, appeal, outcome, timeline) from DIR's committed state."""
    from bastion.node.dispute_check import describe_dispute
    from bastion.node.recovery import load_committed_state
    try:
        state, _ = load_committed_state(data)
    except ProtocolError as error:
        _fail(error)
    found = state.disputes.disputes.get(dispute_id)
    if found is None:
        _fail(ProtocolError("unknown_dispute", f"no dispute {dispute_id}", field="dispute_id"))
        return
    view: dict[str, Any] = describe_dispute(state, found)
    if as_json:
        print(json.dumps(view, indent=1))
        return
    console.print(f"dispute {dispute_id} [bold]{view['status']}[/bold]: {view['claim_kind']} on target "
                  f"{view['target']} ({view['target_kind']}, block {view['target_height']}) by {view['owner']}")
    console.print(f"claim {view['claim']} of loss {view['loss']} USDC, bond {view['bond']}; "
                  f"ruling {view['ruling']}; outcome {view['outcome']}")
    for step in view["timeline"]:
        console.print(f"  {step}")


@dispute_app.command("open")
def open_(target: int = typer.Option(..., help="the target id (GET /v1/dispute-targets)"),
          claim: Decimal = typer.Option(..., help="USDC claimed, at most the target's loss"),
          bond: Decimal = typer.Option(..., help="USDC posted, at least the governed bond"),
          kind: str = typer.Option("oracle_glitch", help="oracle_glitch | engine_deviation | other"),
          statement: str = typer.Option("", help="what happened, in a few words"),
          url: str = typer.Option("http://127.0.0.1:8545", help="the node's API"),
          key_env: str = typer.Option("BASTION_KEY", help="environment variable holding the private key")) -> None:
    """Sign an open_dispute with the key in $BASTION_KEY and send it; prints the node's answer."""
    from bastion.client import BastionError, Client
    key = os.environ.get(key_env)
    if not key:
        errors.print(f"set {key_env} to the private key of the disputing owner")
        raise typer.Exit(2)
    try:
        with Client(url, private_key=key) as client:
            answer = client.open_dispute(target=target, claim_kind=kind, claim=str(claim), bond=str(bond),
                                         statement=statement,
                                         wait_ms=5_000)
    except BastionError as error:
        errors.print(f"[red]{error.code}[/red]: {error.message}")
        raise typer.Exit(2) from None
    print(json.dumps(answer, indent=1))
    result = answer.get("result") if isinstance(answer, dict) else None
    if isinstance(result, dict) and not result.get("ok", True):
        raise typer.Exit(2)
