"""The `bastion` command: scenario run, defaults, demo (typer's CliRunner, in-process)."""
import json
from pathlib import Path

from typer.testing import CliRunner

from bastion.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


def test_scenario_run_prints_the_json_result_of_the_worked_example():
    result = runner.invoke(app, ["scenario", "run", str(EXAMPLES / "quickstart.json")])
    assert result.exit_code == 0, result.output
    final = json.loads(result.stdout)["final"]
    alice = next(s for s in final["subaccounts"] if s["owner"].endswith("a0"))
    assert (alice["usdc"], alice["equity"], alice["imr"], alice["mmr"]) == ("-40025", "4975", "2250", "1350")
    assert final["protocol_accounts"] == {"fees": "30", "funding": "0"}


def test_malformed_scenario_exits_2_naming_block_tx_and_field(tmp_path):
    doc = json.loads((EXAMPLES / "quickstart.json").read_text())
    doc["blocks"][1]["txs"][0]["sender"] = "not-an-address"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    result = runner.invoke(app, ["scenario", "run", str(path)])
    assert result.exit_code == 2
    assert "block 2, tx 1, field 'sender'" in result.stderr


def test_strict_mode_fails_when_a_transaction_is_rejected():
    result = runner.invoke(app, ["scenario", "run", "--strict", str(EXAMPLES / "demo.json")])
    assert result.exit_code == 1  # the demo contains deliberately rejected orders


def test_defaults_lists_every_genesis_section():
    result = runner.invoke(app, ["scenario", "defaults"])
    assert result.exit_code == 0
    defaults = json.loads(result.stdout)
    assert {"oracle", "liquidity_tiers", "liquidation", "funding", "fees"} <= set(defaults)


def test_demo_prints_blocks_accounts_and_the_final_hash():
    result = runner.invoke(app, ["scenario", "demo"])
    assert result.exit_code == 0, result.output
    assert "final state hash" in result.stdout and "PEPE-USD" in result.stdout
