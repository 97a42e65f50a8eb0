"""``bastion stress`` (issue 6, part 2b): the CLI and ``bastion.stress.run``, local processes and Ray,
the HTML report, and the council's attestation through the gate.

The states are small (a few BTC-USD accounts of ``builders``) and so is the scenario set (``SET``:
four kinds, 8 scenarios), so that every test runs in seconds; the Ray test starts a local instance
(``ray.init(num_cpus=2, include_dashboard=False)``, Ray is in the ``test`` extra) and shuts it down.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from builders import (
    ALICE, BOB, BTC, CAROL, ORACLE, Chain, execute, genesis, market, queue, subaccount, submit_proposal, vote,
)
from eth_account import Account
from test_council import HOUR_MS, LOWER_ETH_MARGIN, at, council_genesis, ok_events, queued
from typer.testing import CliRunner

from bastion.api.signing import recover_signer
from bastion.cli.main import app
from bastion.core.genesis import build_state
from bastion.core.messages import CouncilAttest, RegisterStressReport, decode_message
from bastion.node.node import Node
from bastion.stress import StressThresholds, build_report, extract_inputs, parse_scenario_set, run
from bastion.stress.execution import execute_sweep, split_ranges
from bastion.stress.htmlreport import compute_series, plotly_js, representative_indices
from bastion.core.units import format_ppm, format_usdc
from bastion.stress.runner import sign_attestation, sign_registration
from bastion.stress.scenarios import FORMAT

SRC = Path(__file__).resolve().parents[1] / "src"
ENGINE = {"block_ms": 1000, "spread": "0.001", "baseline_depth": "1800000", "max_slippage": "0.5"}
SET = {"format": FORMAT, "name": "cli-test", "version": 1, "seed": 11, "engine": ENGINE, "scenarios": [
    {"kind": "shock", "name": "down-30", "move": "-0.3"},
    {"kind": "shock", "name": "up-30", "move": "0.3"},
    {"kind": "thin_book", "name": "thin-down-10", "move": "-0.1"},
    {"kind": "oracle_outage", "name": "outage", "move": "-0.2"},
    {"kind": "jump_diffusion", "name": "jd", "count": 4, "steps": 240, "volatility_multiplier": "3"},
]}
KEYS = ("0x" + "11" * 32, "0x" + "22" * 32, "0x" + "33" * 32)
MEMBERS = tuple(Account.from_key(key).address.lower() for key in KEYS)
runner = CliRunner()


def btc_genesis(fund: str) -> dict:
    """Three 5x longs of 1 BTC, one short hedger of 3 BTC; the cross fund holds ``fund`` USDC."""
    accounts = [{"address": owner, "subaccounts": [{"number": 0, "usdc": "-40000",
                                                    "positions": [{"market": BTC, "size": "1"}]}]}
                for owner in (ALICE, BOB, CAROL)]
    accounts.append({"address": f"0x{0xE0:040x}", "subaccounts": [
        {"number": 0, "usdc": "400000", "positions": [{"market": BTC, "size": "-3"}]}]})
    return genesis(markets=[market(BTC)], insurance_funds={"cross": fund}, accounts=accounts)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """The scenario set, a passing and a failing scenario file, thresholds."""
    paths = {"set": tmp_path / "set.json", "pass": tmp_path / "pass.json", "fail": tmp_path / "fail.json",
             "thresholds": tmp_path / "thresholds.json"}
    paths["set"].write_text(json.dumps(SET))
    for name, fund in (("pass", "1000000"), ("fail", "100")):
        paths[name].write_text(json.dumps({"genesis": btc_genesis(fund), "blocks": [{"advance": 1, "txs": []}]}))
    # lenient enough for the failing state (depletion 25%, VaR99 and ES99 151.7 times its fund, the losses
    # its fund cannot pay socialised onto the traders)
    paths["thresholds"].write_text(json.dumps({"max_depletion_probability": "0.5", "max_var99_loss_of_fund": "200",
                                               "max_es99_loss_of_fund": "200", "max_loss_to_traders": "1000000"}))
    return paths


def stress(*args: str):
    return runner.invoke(app, ["stress", "--quiet", *args])


# --------------------------------------------------------------------------------------- the CLI
@pytest.mark.parametrize(("state", "exit_code", "verdict"), [
    ("pass", 0, "pass"),    # a 1,000,000 USDC fund pays every loss of the set
    ("fail", 1, "fail"),    # a 100 USDC fund is depleted by the -30% shock: depletion above 1%
])
def test_stress_on_a_scenario_file_writes_the_hashed_report_and_exits_with_the_verdict(files, tmp_path, state,
                                                                                       exit_code, verdict):
    out = tmp_path / "out"
    result = stress("--scenario", str(files[state]), "--scenarios", str(files["set"]), "--out", str(out),
                    "--workers", "1")

    assert result.exit_code == exit_code, result.output
    printed = json.loads(result.stdout)
    report_bytes = (out / "report.json").read_bytes()
    assert printed["verdict"] == verdict
    assert printed["report_hash"] == hashlib.sha256(report_bytes).hexdigest()
    document = json.loads(report_bytes)
    assert document["inputs"]["state_hash"] == printed["state_hash"]
    assert document["inputs"]["height"] == 1
    assert document["inputs"]["scenario_set"]["name"] == "cli-test"
    assert (out / "report.html").is_file()
    assert not (out / "baseline.json").exists()


def test_thresholds_and_seed_flags_change_what_they_should(files, tmp_path):
    base = ["--scenario", str(files["fail"]), "--scenarios", str(files["set"]), "--workers", "1"]
    strict = json.loads(stress(*base).stdout)
    lenient = stress(*base, "--thresholds", str(files["thresholds"]))
    reseeded = json.loads(stress(*base, "--seed", "12").stdout)

    assert strict["verdict"] == "fail"
    assert lenient.exit_code == 0 and json.loads(lenient.stdout)["verdict"] == "pass"
    assert (strict["thresholds_source"], json.loads(lenient.stdout)["thresholds_source"]) == ("governance", "override")
    assert json.loads(lenient.stdout)["report_hash"] != strict["report_hash"]  # the thresholds are in the report
    assert reseeded["report_hash"] != strict["report_hash"]                     # the seed is in the set's hash
    assert reseeded["state_hash"] == strict["state_hash"]


def test_stress_on_a_genesis_file(files):
    result = stress("--genesis", str(files["pass"]), "--scenarios", str(files["set"]), "--workers", "1")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state_hash"] == build_state(btc_genesis("1000000")).state_hash


def test_stress_on_a_node_data_dir_reads_its_latest_committed_state(files, tmp_path):
    # a node: one block with an oracle update, a snapshot, then two more blocks on top of it
    clock = iter(range(1_767_225_601_000, 10**15, 1_000)).__next__
    node = Node(tmp_path / "node", btc_genesis("1000000"), clock_ms=clock, snapshot_every=0)
    node.submit({"sender": ORACLE, "nonce": 1, "msg": {"type": "oracle_update", "prices": {BTC: "49000"}}})
    node.produce_block()
    node.write_snapshot()
    node.submit({"sender": ORACLE, "nonce": 2, "msg": {"type": "oracle_update", "prices": {BTC: "48500"}}})
    node.produce_block()
    node.produce_block()
    expected = (node.state.state_hash, node.state.height)
    node.close()
    listing = sorted(p.name for p in (tmp_path / "node").rglob("*"))

    result = stress("--data", str(tmp_path / "node"), "--scenarios", str(files["set"]), "--workers", "1")

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert (printed["state_hash"], printed["height"]) == expected == (expected[0], 3)
    assert sorted(p.name for p in (tmp_path / "node").rglob("*")) == listing  # read only: nothing written


@pytest.mark.parametrize(("args", "message"), [
    ([], "exactly one of --data"),                                                    # no state
    (["--genesis", "{pass}", "--scenario", "{pass}"], "exactly one of --data"),         # two states
    (["--data", "{tmp}"], "no block log"),                                            # a directory without a node
    (["--genesis", "{pass}", "--thresholds", "{set}"], "thresholds"),                 # not a thresholds document
    (["--genesis", "{pass}", "--scenarios", "{thresholds}"], "scenario set"),         # not a scenario set
    (["--genesis", "{pass}", "--attest", "--key", KEYS[0]], "--proposal"),             # attest names a proposal
    (["--genesis", "{pass}", "--proposal", "ab" * 32, "--attest"], "--key"),           # attest needs a key
    (["--genesis", "{pass}", "--key", KEYS[0]], "go with --attest"),                  # a key without --attest
    (["--genesis", "{pass}", "--proposal", "ab" * 32], "no proposal"),                # not in the state
])
def test_usage_and_input_errors_exit_2_and_write_nothing(files, tmp_path, args, message):
    names = {"pass": files["pass"], "set": files["set"], "thresholds": files["thresholds"], "tmp": tmp_path}
    out = tmp_path / "out"
    result = stress(*[a.format(**names) for a in args], "--out", str(out), "--workers", "1")

    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not out.exists()


REPRODUCE = """
import sys
from bastion.cli.main import app
sys.argv = ["bastion", "stress", "--quiet", *sys.argv[1:]]
app()
"""


def test_report_bytes_are_identical_in_fresh_processes_and_across_worker_counts(files, tmp_path):
    outputs = []
    for hash_seed, workers in (("1", "1"), ("2", "2")):
        out = tmp_path / f"out-{workers}"
        env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", REPRODUCE, "--scenario", str(files["fail"]), "--scenarios",
                               str(files["set"]), "--workers", workers, "--out", str(out)],
                              env=env, capture_output=True, timeout=120)
        assert done.returncode == 1, done.stderr.decode()
        outputs.append((out / "report.json").read_bytes())

    assert outputs[0] == outputs[1]
    in_process = run(build_state(btc_genesis("100")), scenario_set=parse_scenario_set(SET), workers=1)
    assert in_process.report.canonical_bytes != outputs[0]  # the scenario file's state is one block later
    assert json.loads(outputs[0])["summary"]["liquidations"] > 0


# --------------------------------------------------------------------------------------- execution
def sweep_bytes(**where) -> bytes:
    inputs = extract_inputs(build_state(btc_genesis("100")))
    scenario_set = parse_scenario_set(SET)
    seen: list[int] = []
    results = execute_sweep(inputs, scenario_set, on_progress=seen.append, **where)
    assert seen[-1] == len(scenario_set.scenarios()) and seen == sorted(seen)
    return build_report(inputs, scenario_set, results).canonical_bytes


@pytest.mark.parametrize(("count", "parts", "sizes"), [
    (8, 3, [3, 3, 2]),     # near-equal, the larger first
    (2, 16, [1, 1]),       # never an empty range
    (5, 1, [5]),
])
def test_split_ranges_cover_every_scenario_once_in_order(count, parts, sizes):
    ranges = split_ranges(count, parts)
    assert [len(r) for r in ranges] == sizes
    assert [i for r in ranges for i in r] == list(range(count))


def test_report_bytes_are_identical_for_one_and_several_local_processes():
    assert sweep_bytes(workers=1) == sweep_bytes(workers=3)


def child_processes() -> set[int]:
    """The ids of this process's live children (from /proc: Linux, where the suite runs)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited meanwhile
            continue
        state, parent = text[text.rindex(")") + 2:].split()[:2]
        if int(parent) == os.getpid() and state != "Z":
            children.add(int(stat.parent.name))
    return children


def test_report_bytes_are_identical_on_a_local_ray_instance():
    import ray  # the test extra installs it (as does bastion[ray]): this test never skips

    local = sweep_bytes(workers=1)
    before = child_processes()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert child_processes() > before  # Ray's gcs_server, raylet and workers
        on_ray = sweep_bytes(workers=2, ray_address="auto")
    finally:
        ray.shutdown()
    assert on_ray == local
    assert not ray.is_initialized() and child_processes() == before  # nothing of Ray left running


# --------------------------------------------------------------------------------------- HTML
class Links(HTMLParser):
    """Every src/href attribute and every tag name of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.links.extend(value for name, value in attrs if name in ("src", "href") and value)


def test_the_html_report_is_self_contained_with_plotly_inline(files, tmp_path):
    result = stress("--scenario", str(files["fail"]), "--scenarios", str(files["set"]), "--out", str(tmp_path),
                    "--workers", "1")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")

    assert page.count(plotly_js()) == 1                   # the installed plotly.min.js, verbatim, once
    ours = page.replace(plotly_js(), "")
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}|cdn", ours, re.IGNORECASE), "an external URL"
    links = Links()
    links.feed(page)
    assert links.links == [] and "link" not in links.tags and "iframe" not in links.tags
    assert json.loads(result.stdout)["report_hash"] in page
    for title in ("Price paths: shock", "Insurance funds over time", "Liquidated notional per scenario",
                  "Bad debt distribution"):
        assert title in ours


def test_the_funds_over_time_end_where_the_report_ends(files):
    stress_run = run(build_state(btc_genesis("100")), scenario_set=parse_scenario_set(SET), workers=1)

    indices = representative_indices(stress_run.report.document)
    series = compute_series(stress_run.inputs, stress_run.scenario_set, indices)

    assert [s.kind for s in series] == ["shock", "thin_book", "oracle_outage", "jump_diffusion"]
    start = int(stress_run.inputs.insurance_funds.sum())
    for s in series:
        scenario = stress_run.report.document["scenarios"][s.index]
        assert s.insurance_funds_usdc[0] == start
        assert s.insurance_funds_usdc[-1] == (start + scenario["insurance_fees_usdc"]
                                              - scenario["insurance_payouts_usdc"])
        assert s.liquidated_notional_usdc[-1] == scenario["liquidated_notional_usdc"]
        assert s.bad_debt_usdc[-1] == scenario["bad_debt_usdc"]
        assert s.steps == sorted(s.steps) and s.steps[-1] == scenario["steps"]


# --------------------------------------------------------------------------------------- the gate
def gate_genesis() -> dict:
    """``test_council``'s chain with signing keys for its council (2 of 3) and a few positions."""
    doc = council_genesis(members=list(MEMBERS))
    doc["accounts"][1]["subaccounts"][0]["positions"] = [{"market": BTC, "size": "1"}]
    doc["accounts"][2]["subaccounts"][0]["positions"] = [{"market": BTC, "size": "-1"}]
    return doc


def attested(chain: Chain, envelope: dict) -> tuple[str, dict]:
    """The signer of an envelope (recovered) and its message, checked to be a council_attest or a
    register_stress_report."""
    typed = decode_message(envelope["msg"])
    assert isinstance(typed, (CouncilAttest, RegisterStressReport))
    signer = recover_signer(chain.state.chain_id, envelope["sender"], envelope["nonce"], envelope["msg"],
                            envelope["signature"])
    return signer, envelope["msg"]


def test_an_attestation_of_the_report_decodes_verifies_and_opens_the_gate():
    chain = Chain(gate_genesis())
    pid = queued(chain, LOWER_ETH_MARGIN)
    stress_run = run(chain.state, scenario_set=parse_scenario_set(SET), workers=1)
    stress_run = dataclasses.replace(stress_run, proposal_id=pid)  # (applying it is part 2a's: see the test below)

    envelopes = [sign_attestation(stress_run, key, nonce=7) for key in KEYS[:2]]

    signers = []
    for envelope in envelopes:
        signer, msg = attested(chain, envelope)
        assert msg == {"type": "council_attest", "proposal_id": pid, "report_hash": stress_run.report.report_hash,
                       "verdict": "pass"}
        signers.append(signer)
    assert signers == list(MEMBERS[:2]) == [e["sender"] for e in envelopes]
    # the chain refuses an attestation of an unregistered report: the first member registers it
    registrar, registration = attested(chain, sign_registration(stress_run, KEYS[0], nonce=6))
    summary = stress_run.report.document["summary"]
    assert registration == {
        "type": "register_stress_report", "report_hash": stress_run.report.report_hash, "verdict": "pass",
        "depletion_probability": format_ppm(summary["depletion_probability_ppm"]),
        "var99_loss": format_usdc(summary["var99_loss_usdc"]), "es99_loss": format_usdc(summary["es99_loss_usdc"]),
        "insurance_funds_total": format_usdc(stress_run.report.document["verdict"]["insurance_funds_total_usdc"])}
    eta = chain.state.proposals[pid].queued_ms + HOUR_MS
    at(chain, eta, (registrar, registration),
       *[(signer, envelope["msg"]) for signer, envelope in zip(signers, envelopes)])
    events = ok_events(chain, (ALICE, execute(pid)))
    assert events[0]["type"] == "stress_gate_passed"
    assert events[0]["report_hash"] == stress_run.report.report_hash
    assert chain.state.proposals[pid].status == "executed"


def test_stress_proposal_attest_on_a_queued_proposal_round_trips_through_the_gate(tmp_path):
    chain = Chain(gate_genesis())
    pid = queued(chain, LOWER_ETH_MARGIN)
    # the same chain as a scenario file (``queued``'s five blocks, one second apart)
    blocks = [[(ALICE, submit_proposal(LOWER_ETH_MARGIN))], [], [(ALICE, vote(pid, "yes"))], [], [(BOB, queue(pid))]]
    scenario = tmp_path / "chain.json"
    scenario.write_text(json.dumps({"genesis": gate_genesis(), "blocks": [
        {"advance": 1, "txs": [{"sender": sender, "msg": msg} for sender, msg in txs]} for txs in blocks]}))
    set_file = tmp_path / "set.json"
    set_file.write_text(json.dumps(SET))
    envelopes, registrations = [], []
    for number, key in enumerate(KEYS[:2]):
        key_file = tmp_path / f"key-{number}"
        key_file.write_text(key + "\n")
        result = stress("--scenario", str(scenario), "--scenarios", str(set_file), "--proposal", pid, "--attest",
                        "--key-file", str(key_file), "--workers", "1", "--out", str(tmp_path / f"out-{number}"))
        assert result.exit_code == 0, result.output  # the small set passes with ETH at 5%
        printed = json.loads(result.stdout)
        assert printed["state_hash"] != json.loads((tmp_path / f"out-{number}" / "baseline.json").read_bytes())[
            "inputs"]["state_hash"]  # the report is the state after the proposal; the baseline before it
        envelopes.append(printed["attestation"])
        registrations.append(printed["registration"])
        assert printed["registration"]["nonce"] + 1 == printed["attestation"]["nonce"]

    signers = [attested(chain, envelope)[0] for envelope in envelopes]
    assert signers == list(MEMBERS[:2])
    assert envelopes[0]["msg"] == envelopes[1]["msg"]  # both members reproduced the same report hash
    assert registrations[0]["msg"] == registrations[1]["msg"]
    assert registrations[0]["msg"]["report_hash"] == envelopes[0]["msg"]["report_hash"]
    # the first member's registration goes on chain; the second one's is then a duplicate
    txs = [attested(chain, registrations[0]), *[(s, e["msg"]) for s, e in zip(signers, envelopes)]]
    at(chain, chain.state.proposals[pid].queued_ms + HOUR_MS, *txs)
    assert chain.submit(MEMBERS[1], registrations[1]["msg"])["code"] == "stress_report_exists"
    events = ok_events(chain, (ALICE, execute(pid)))
    assert events[0] == {"type": "stress_gate_passed", "proposal_id": pid, "report_hash": envelopes[0]["msg"][
        "report_hash"], "passes": 2, "threshold": 2}


# --------------------------------------------------------------------------------------- governed thresholds
TIGHTEN_ES99 = {"type": "set_governance_params", "params": {"stress": {"max_es99_loss_of_fund": "0.001"}}}


def levered_gate_genesis() -> dict:
    """``gate_genesis`` with BOB's long at 5x (-40,000 USDC, 1 BTC at 50,000): the -30% shock leaves
    it below zero, a loss the cross fund (100,000 USDC; PEPE's 10,000) pays without being depleted."""
    doc = gate_genesis()
    doc["accounts"][1]["subaccounts"][0] = {**subaccount(0, "-40000"), "positions": [{"market": BTC, "size": "1"}]}
    return doc


def test_thresholds_changed_by_an_attested_critical_proposal_change_the_verdict_of_the_same_positions():
    chain = Chain(levered_gate_genesis())
    scenario_set = parse_scenario_set(SET)
    before = run(chain.state, scenario_set=scenario_set, workers=1).report.document
    assert (before["verdict"]["passed"], before["thresholds_source"]) == (True, "governance")
    assert before["thresholds"]["max_es99_loss_of_fund"] == "1"
    # ES99 of 8 scenarios = the largest loss, the -30% shock's: BOB's equity of -5,000 USDC at 35,000 and
    # the slippage of his liquidation fill; 4.58% of the 110,000 USDC of funds, above the proposed 0.1%
    assert before["summary"]["es99_loss_usdc"] == 5_041_825_000
    assert before["verdict"]["insurance_funds_total_usdc"] == 110_000_000_000

    pid = queued(chain, TIGHTEN_ES99)
    assert chain.state.proposals[pid].risk_class == "critical"
    gated = run(chain.state, scenario_set=scenario_set, proposal_id=pid, workers=1)
    # judged by the thresholds in force, not by the ones it proposes: it passes and may be attested
    assert gated.verdict == "pass" and gated.report.document["thresholds"] == before["thresholds"]
    envelopes = [sign_attestation(gated, key, nonce=7) for key in KEYS[:2]]
    registration = sign_registration(gated, KEYS[0], nonce=6)
    at(chain, chain.state.proposals[pid].queued_ms + HOUR_MS, (registration["sender"], registration["msg"]),
       *[(e["sender"], e["msg"]) for e in envelopes])
    events = ok_events(chain, (ALICE, execute(pid)))
    assert events[0]["type"] == "stress_gate_passed"
    assert chain.state.governance.stress_max_es99_loss_ppm_of_fund == 1_000
    assert chain.state.param_history[-1].name == "governance.stress_max_es99_loss_ppm_of_fund"

    after = run(chain.state, scenario_set=scenario_set, workers=1).report.document
    old_limits = run(chain.state, scenario_set=scenario_set, workers=1, thresholds=StressThresholds()).report.document
    assert after["summary"] == old_limits["summary"]               # the same positions, the same figures
    assert (after["thresholds_source"], old_limits["thresholds_source"]) == ("governance", "override")
    assert after["thresholds"]["max_es99_loss_of_fund"] == "0.001"
    assert [check["passed"] for check in after["verdict"]["checks"]] == [True, True, False, True]  # ES99 fails
    assert (after["verdict"]["passed"], old_limits["verdict"]["passed"]) == (False, True)
