"""``bastion``: the node, log verification, scenarios and the demo.

Exit codes: 0 success; 1 a scenario ran but a transaction was rejected where ``--strict`` asks
for none, or a stress verdict fails (``bastion stress``, ``bastion.stress.cli``); 2 a malformed
scenario file or usage error; 3 a block log that does not verify or a replay that diverges (the
node refuses to start on it); 4 the node stopped (fail-stop): a block write or fsync failed (disk
full, I/O error) or applying a block raised an unexpected exception; nothing of that block was
acknowledged, and a restart recovers from the log.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from bastion.scenario import ScenarioError, run_scenario, run_scenario_file, scenario_defaults
from bastion.stress.cli import stress
from bastion.cli.dispute import dispute_app

app = typer.Typer(help="Bastion: a deterministic perpetual-futures exchange.", no_args_is_help=True,
                  add_completion=False)
scenario_app = typer.Typer(help="Run and inspect scenario files (docs/scenarios.md).", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")
app.command("stress")(stress)
app.add_typer(dispute_app, name="dispute")
console = Console()
errors = Console(stderr=True, soft_wrap=True)


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


@app.command()
def node(
    data: Path = typer.Option(None, "--data", help="data directory (block log, snapshots, read models)"),
    genesis: Path = typer.Option(None, "--genesis", exists=True, dir_okay=False,
                                 help="genesis JSON (needed the first time; must match afterwards)"),
    host: str = typer.Option("127.0.0.1", help="API address"),
    port: int = typer.Option(8545, help="API port"),
    unsigned: bool = typer.Option(False, "--unsigned", help="trusted local bots: take envelope senders as given "
                                                             "(no EIP-712 signature); loopback addresses only"),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="allow browser calls from this origin "
                                                                    "(repeatable; CORS is closed by default)"),
    rate_limit: int = typer.Option(1_000, help="transactions per second per signed sender (token bucket)"),
    burst: int = typer.Option(2_000, help="token bucket size per sender"),
    ip_rate_limit: int = typer.Option(2_000, help="transactions per second per client address (token bucket, "
                                                  "checked before signatures)"),
    ip_burst: int = typer.Option(5_000, help="token bucket size per client address"),
    max_pending_per_sender: int = typer.Option(1_000, help="transactions one sender may have waiting in the mempool"),
    block_time: int = typer.Option(250, "--block-time", help="milliseconds between blocks"),
    max_block_txs: int = typer.Option(1_000, help="a block is produced at once when this many are waiting"),
    snapshot_every: int = typer.Option(1_000, help="blocks between snapshots (0: never)"),
    keep_snapshots: int = typer.Option(3, help="newest snapshots kept for recovery, besides up to 17 spread along the "
                                               "chain for `replay --verify`'s parallel cuts (0: keep all)"),
    verify_threads: int = typer.Option(2, help="threads recovering the signatures of a batch (1: none)"),
    quiet: bool = typer.Option(False, help="do not log blocks"),
    read_models: str = typer.Option("default", help="read models URL: sqlite:///PATH or postgresql://... "
                                                     "(default: DIR/readmodels.db); 'none' for no indexer"),
    demo: bool = typer.Option(False, help="a demo chain (the bundled demo markets and accounts, starting now) "
                                          "in --data, default .bastion-demo"),
    max_connections: int = typer.Option(0, min=0, help="open HTTP + WebSocket connections at most (0: the "
                                                       "descriptor limit less a reserve for the node's files)"),
    idle_timeout: float = typer.Option(10.0, help="seconds before a connection that sent nothing is closed"),
    slow_reader_timeout: float = typer.Option(10.0, help="seconds a WebSocket may keep its send buffer full"),
    ws_max_connections: int = typer.Option(1_000, help="WebSocket connections at most"),
    ws_max_per_ip: int = typer.Option(50, help="WebSocket connections per client address"),
    ws_max_subscriptions: int = typer.Option(50, help="subscriptions per WebSocket connection"),
    ws_idle_timeout: float = typer.Option(60.0, help="seconds a WebSocket may stay without a subscription"),
    accept_rollback: bool = typer.Option(False, "--accept-rollback",
                                         help="start even if snapshots or the log's own records prove the log "
                                              "was longer (its lost tail is reported and given up)"),
    code_hash: bool = typer.Option(False, "--code-hash", help="print the code hash of the state machine this "
                                                              "binary runs (what schedule_upgrade names) and exit"),
) -> None:
    """Run a node: recover from DIR, produce blocks, serve the API (Ctrl-C stops). A node stops
    (exit 5) before the height of a scheduled upgrade whose code hash is not its own."""
    import os
    import threading

    from bastion.node.runtime import compute_code_hash
    if code_hash:
        print(compute_code_hash())
        return

    from bastion.app import ApiConfig, create_app
    from bastion.api.security import is_loopback_host
    from bastion.api.server import ConnectionLimits, raise_descriptor_limit, serve
    from bastion.core.errors import ProtocolError
    from bastion.node.blocklog import LogCorrupted
    from bastion.node.node import Node, UpgradeRequired
    from bastion.node.replay import ReplayDivergence
    from bastion.node.runtime import tune_garbage_collector

    genesis_doc = None
    if genesis is not None:
        document = json.loads(genesis.read_text())
        genesis_doc = document.get("genesis", document)  # a scenario file's genesis, or a bare genesis
    if demo:
        data = data or Path(".bastion-demo")
        if genesis_doc is None and not (data / "blocks.db").exists():
            genesis_doc = _demo_genesis()
    if data is None:
        errors.print("[red]--data is required[/red] (or --demo)")
        raise typer.Exit(2)
    if demo and not _demo_host_allowed(host):
        raise typer.Exit(2)
    if unsigned and host not in ("127.0.0.1", "localhost", "::1"):
        errors.print("[red]--unsigned[/red] trusts every sender: it serves only on a loopback address")
        raise typer.Exit(2)
    soft_limit = raise_descriptor_limit()
    limits = ConnectionLimits.for_descriptors(soft_limit, first_byte_timeout_s=idle_timeout,
                                              slow_reader_s=slow_reader_timeout)
    if max_connections:
        limits = ConnectionLimits(min(max_connections, limits.max_connections), idle_timeout, slow_reader_timeout)

    def fail_stop(failure: Exception) -> None:
        """Fail-stop (``bastion.node.node``): one line, then exit 4 at once, acknowledging nothing more;
        exit 5 for a scheduled upgrade this binary does not run (a clean stop: restart with that code)."""
        if isinstance(failure, UpgradeRequired):
            os.write(2, f"bastion node: UPGRADE REQUIRED, stopping: {failure}\n".encode())
            os._exit(5)
        os.write(2, f"bastion node: FATAL, stopping: {failure}\n".encode())
        os._exit(4)

    try:
        the_node = Node(data, genesis_doc, max_block_txs=max_block_txs, snapshot_every=snapshot_every,
                        keep_snapshots=keep_snapshots, max_pending_per_sender=max_pending_per_sender,
                        on_block=None if quiet else _log_block,
                        read_models=None if read_models == "none" else read_models, on_fatal=fail_stop,
                        accept_rollback=accept_rollback)
    except (LogCorrupted, ReplayDivergence) as error:
        errors.print(f"[red]refusing to start:[/red] {error}")
        raise typer.Exit(3) from None
    except ProtocolError as error:
        errors.print(f"[red]{error.code}:[/red] {error.message}")
        raise typer.Exit(2) from None
    if not is_loopback_host(host) and _uses_demo_keys(the_node.state):
        the_node.close()
        errors.print(f"[red]refusing to start:[/red] this chain's operators are demo keys, which are public; serve "
                     f"it on a loopback address (--host 127.0.0.1), not {host!r}")
        raise typer.Exit(2)
    tune_garbage_collector()
    recovery = the_node.recovery
    console.print(f"chain {the_node.state.chain_id} at height {the_node.state.height} "
                  f"(snapshot {recovery.snapshot_height}, replayed {recovery.replayed_blocks} blocks / "
                  f"{recovery.replayed_txs} txs in {recovery.seconds:.2f} s); API http://{host}:{port}"
                  f"{' (UNSIGNED: trusted local mode)' if unsigned else ''}; at most {limits.max_connections} "
                  f"connections (descriptor limit {soft_limit})")
    console.print(_describe_upgrade_line(the_node.state, the_node.code_hash))
    for skipped in recovery.skipped_snapshots:
        errors.print(f"[yellow]skipped snapshot[/yellow] {skipped}")
    if recovery.rolled_back_from is not None:
        errors.print(f"[red]ROLLED BACK[/red] (--accept-rollback): the log had reached block "
                     f"{recovery.rolled_back_from} ({', '.join(sorted(recovery.rollback_evidence))}); blocks "
                     f"{the_node.state.height + 1}..{recovery.rolled_back_from} and their transactions are lost")
    stop = threading.Event()
    producer = threading.Thread(target=the_node.run, args=(stop, block_time), name="block-producer", daemon=True)
    producer.start()
    try:
        api = create_app(the_node, ApiConfig(unsigned=unsigned, rate_per_s=rate_limit, burst=burst,
                                             ip_rate_per_s=ip_rate_limit, ip_burst=ip_burst,
                                             cors_origins=tuple(cors_origin),
                                             verify_threads=verify_threads, ws_max_connections=ws_max_connections,
                                             ws_max_per_ip=ws_max_per_ip, ws_max_subscriptions=ws_max_subscriptions,
                                             ws_idle_s=ws_idle_timeout))
        serve(api, host, port, limits)
    finally:
        stop.set()
        producer.join()
        the_node.close()


def _describe_upgrade_line(state, code_hash: str) -> str:
    """``bastion node``'s report of the scheduled upgrade (``bastion.core.upgrades``) against its own code."""
    from bastion.core.upgrades import describe_upgrade

    plan = describe_upgrade(state, code_hash)
    if not plan["scheduled"]:
        return f"code {code_hash}; no upgrade scheduled"
    verdict = "this node runs it" if plan["node_ready"] else "this node runs other code and will STOP before it"
    return (f"code {code_hash}; upgrade {plan['name']!r} scheduled at height {plan['height']} "
            f"(code {plan['code_hash']}): {verdict}")


def _demo_host_allowed(host: str) -> bool:
    """False (with the reason printed) when a demo, whose keys are public, is asked for a non-loopback host."""
    from bastion.demo import DemoHostRefused, check_demo_host

    try:
        check_demo_host(host)
    except DemoHostRefused as error:
        errors.print(f"[red]refusing to start:[/red] {error}")
        return False
    return True


def _uses_demo_keys(state) -> bool:
    """True when a demo key (public: ``bastion.demo.keys``) is the chain's bridge or an oracle operator."""
    from bastion.demo.keys import get_demo_keys

    demo_addresses = {key.address for key in get_demo_keys().values()}
    return state.bridge_operator in demo_addresses or bool(demo_addresses & set(state.oracle_operators))


def _log_block(block) -> None:
    if block.tx_count or block.height % 40 == 0:
        console.print(f"block {block.height}  txs {block.tx_count:>5}  state {block.state_hash[:16]}")


@app.command()
def replay(
    data: Path = typer.Argument(..., exists=True, file_okay=False, help="a node's data directory"),
    verify: bool = typer.Option(True, "--verify/--hashes-only",
                                help="compare each block's results and events too, not only its state hash"),
    workers: int = typer.Option(0, min=0, help="processors to replay segments between snapshots on at once "
                                               "(0: all; 1: one pass from genesis, no snapshot trusted)"),
) -> None:
    """Replay DIR's log from genesis, recomputing every state hash; report the first divergence.

    With several workers, segments between DIR's snapshots are replayed at the same time, each
    snapshot trusted only if its recomputed state hash is the log's at its height (see
    bastion.node.replay); the summary lists the snapshots used and those skipped."""
    from bastion.node.blocklog import LogCorrupted
    from bastion.node.replay import ReplayDivergence, verify_log
    from bastion.node.runtime import tune_garbage_collector

    tune_garbage_collector()  # for a replay in this process (one worker, or no snapshots)
    try:
        report = verify_log(data, check_roots=verify, workers=workers or None)
    except (LogCorrupted, ReplayDivergence) as error:
        errors.print(f"[red]verification failed:[/red] {error}")
        raise typer.Exit(3) from None
    print(json.dumps({"verified": True, **report}))


def _demo_genesis() -> dict:
    """The demo scenario's genesis, starting now (a node's blocks follow its clock)."""
    import time

    from bastion.core.timefmt import format_iso_ms

    genesis = _demo_document()["genesis"]
    genesis["time"] = format_iso_ms(time.time_ns() // 1_000_000 // 1_000 * 1_000)
    return genesis


def _demo_document() -> dict:
    return json.loads(resources.files("bastion.examples").joinpath("demo.json").read_text())


@app.command()
def demo(
    data: Path = typer.Option(Path(".bastion-demo"), "--data", help="data directory (created on the first start)"),
    host: str = typer.Option("127.0.0.1", help="address of the API and the web UI: loopback only (the demo's keys "
                                               "are public)"),
    port: int = typer.Option(8000, help="port of the API and the web UI"),
    block_time: int = typer.Option(250, "--block-time", help="milliseconds between blocks"),
    bots: bool = typer.Option(True, "--bots/--no-bots", help="run the oracle feed, market maker and traders"),
    quiet: bool = typer.Option(True, "--quiet/--verbose", help="do not log blocks"),
) -> None:
    """A live demo exchange: node + API + web UI, oracle feed, bots, one proposal (Ctrl-C stops).

    The node holds DEMO KEYS (bastion.demo.keys): never use them in production."""
    from bastion.demo import DemoServer

    if not _demo_host_allowed(host):
        raise typer.Exit(2)
    server = DemoServer(data, host=host, port=port, block_time_ms=block_time, bots=bots,
                        on_block=None if quiet else _log_block)
    recovery = server.node.recovery
    console.print(f"chain {server.node.state.chain_id} at height {server.node.state.height} in {data} "
                  f"(replayed {recovery.replayed_blocks} blocks in {recovery.seconds:.2f} s)")
    console.print(f"[bold]Bastion demo: open {server.url}[/bold]  (API {server.url}/docs; demo keys, never use "
                  f"in production; Ctrl-C stops, a second start resumes)")
    server.serve()


@scenario_app.command("demo")
def scenario_demo() -> None:
    """Run the bundled demo scenario (examples/demo.json) and print a readable summary."""
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
