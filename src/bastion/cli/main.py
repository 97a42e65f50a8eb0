"""``bastion``: run scenarios and the demo.

Exit codes: 0 success, 1 a scenario ran but a transaction was rejected where ``--strict`` asks
for none, 2 a malformed scenario file or usage error.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from bastion.scenario import ScenarioError, run_scenario, run_scenario_file, scenario_defaults

app = typer.Typer(help="Bastion: a deterministic perpetual-futures exchange.", no_args_is_help=True,
                  add_completion=False)
scenario_app = typer.Typer(help="Run and inspect scenario files (SCENARIOS.md).", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")
console = Console()
errors = Console(stderr=True)


@scenario_app.command("run")
def scenario_run(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="scenario JSON file"),
    strict: bool = typer.Option(False, help="exit 1 if any transaction was rejected"),
) -> None:
    """Run FILE and print the JSON result (per-block results, events, final state and hash)."""
    try:
        result = run_scenario_file(file)
    except ScenarioError as error:
        errors.print(f"[red]scenario error:[/red] {error}")
        raise typer.Exit(2) from None
    print(json.dumps(result, indent=2))
    rejected = sum(not r["ok"] for block in result["blocks"] for r in block["results"])
    if strict and rejected:
        raise typer.Exit(1)


@scenario_app.command("defaults")
def scenario_defaults_command() -> None:
    """Print the defaults applied to omitted genesis fields."""
    print(json.dumps(scenario_defaults(), indent=2))


def _demo_document() -> dict:
    return json.loads(resources.files("bastion.examples").joinpath("demo.json").read_text())


@app.command()
def demo() -> None:
    """Run the bundled demo scenario and print a readable summary (the node replaces this later)."""
    result = run_scenario(_demo_document())
    blocks = result["blocks"]
    table = Table(title="Blocks")
    for column in ("height", "time", "txs", "rejected", "fills", "state hash"):
        table.add_column(column)
    for block in blocks:
        fills = sum(e["type"] == "fill" for e in block["events"])
        rejected = sum(not r["ok"] for r in block["results"])
        table.add_row(str(block["height"]), block["time"], str(len(block["results"])), str(rejected), str(fills),
                      block["state_hash"][:16])
    console.print(table)
    final = result["final"]
    accounts = Table(title="Subaccounts at the end")
    for column in ("owner", "#", "usdc", "equity", "IMR", "MMR", "positions"):
        accounts.add_column(column)
    for sub in final["subaccounts"]:
        positions = ", ".join(f"{p['market']} {p['size']}" for p in sub["positions"]) or "-"
        accounts.add_row(sub["owner"][:10] + "…", str(sub["number"]), sub["usdc"], sub["equity"], sub["imr"],
                         sub["mmr"], positions)
    console.print(accounts)
    markets = Table(title="Markets")
    for column in ("ticker", "oracle", "open interest", "best bid", "best ask", "funding index", "status"):
        markets.add_column(column)
    for m in final["markets"]:
        markets.add_row(m["ticker"], m["oracle_price"], m["open_interest"], str(m["best_bid"]), str(m["best_ask"]),
                        m["funding_index"], m["status"] + (" (stale)" if m["stale"] else ""))
    console.print(markets)
    console.print(f"insurance funds {final['insurance_funds']}, protocol accounts {final['protocol_accounts']}, "
                  f"totals {final['totals']}")
    console.print(f"final state hash [bold]{final['state_hash']}[/bold] at height {final['height']}")


if __name__ == "__main__":
    app()
