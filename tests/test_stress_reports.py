"""Stress reports held by a node (``bastion.api.reports``): ``POST /v1/stress/reports``, the JSON and
HTML reads, the stress gate's ``reports`` on the governance reads and page, the SDK methods, and
``bastion stress --attest --submit`` uploading the report before the attestation."""
from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from builders import ALICE, BOB, GENESIS_TIME_MS, free_port, queue, submit_proposal, vote
from fastapi.testclient import TestClient
from test_council import LOWER_ETH_MARGIN
from test_stress_cli import KEYS, MEMBERS, SET, btc_genesis, gate_genesis, stress

from bastion.app import ApiConfig, create_app
from bastion.api.models import REPORT_EXAMPLE, STRESS_REPORT_EXAMPLE
from bastion.client import BastionError, Client
from bastion.core.genesis import build_state
from bastion.node.node import Node
from bastion.stress import extract_inputs, parse_scenario_set, run_stress
from bastion.stress.htmlreport import plotly_js
from bastion.stress.report import StressReport, hash_report


class Clock:
    """The node's and the API's clock (ms), moved by hand."""

    def __init__(self) -> None:
        self.now_ms = GENESIS_TIME_MS + 1_000

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture(scope="module")
def reports() -> dict[str, StressReport]:
    """Two real reports of the CLI tests' small set: a passing state (1,000,000 USDC fund) and a
    failing one (100 USDC)."""
    scenario_set = parse_scenario_set(SET)
    return {name: run_stress(extract_inputs(build_state(btc_genesis(fund))), scenario_set)
            for name, fund in (("pass", "1000000"), ("fail", "100"))}


def open_node(tmp_path: Path, genesis: dict, **config) -> tuple[Node, TestClient, Clock]:
    clock = Clock()
    node = Node(tmp_path / "node", genesis, clock_ms=clock)
    return node, TestClient(create_app(node, ApiConfig(clock_ms=clock, web=True, **config))), clock


@pytest.fixture
def api(tmp_path: Path):
    node, client, _ = open_node(tmp_path, btc_genesis("1000000"))
    yield node, client
    node.close()


def stored_files(node: Node) -> list[str]:
    directory = node.data_dir / "reports"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# --------------------------------------------------------------------------------------- upload and read
def test_an_uploaded_report_is_stored_under_its_hash_and_read_back_byte_for_byte(api, reports):
    node, client = api
    report = reports["pass"]

    answer = client.post("/v1/stress/reports", content=report.canonical_bytes,
                         headers={"content-type": "application/json"})

    assert answer.status_code == 201
    assert answer.json() == {"report_hash": report.report_hash, "stored": True, "created": True, "verdict": "pass",
                             "url": f"/v1/stress/reports/{report.report_hash}",
                             "html_url": f"/v1/stress/reports/{report.report_hash}/html"}
    assert report.report_hash == hashlib.sha256(report.canonical_bytes).hexdigest()
    assert stored_files(node) == [f"{report.report_hash}.json"]
    assert (node.data_dir / "reports" / f"{report.report_hash}.json").read_bytes() == report.canonical_bytes
    read = client.get(f"/v1/stress/reports/{report.report_hash}")
    assert read.status_code == 200
    assert read.headers["content-type"] == "application/json"
    assert read.content == report.canonical_bytes


def test_uploading_again_or_pretty_printed_is_the_same_report_and_writes_nothing(api, reports):
    node, client = api
    report = reports["fail"]
    client.post("/v1/stress/reports", json=report.document)
    before = (node.data_dir / "reports" / f"{report.report_hash}.json").stat().st_mtime_ns

    again = client.post("/v1/stress/reports", content=json.dumps(report.document, indent=2).encode(),
                        headers={"content-type": "application/json"})

    assert again.status_code == 200
    assert (again.json()["report_hash"], again.json()["created"], again.json()["verdict"]) == (
        report.report_hash, False, "fail")
    assert stored_files(node) == [f"{report.report_hash}.json"]
    assert (node.data_dir / "reports" / f"{report.report_hash}.json").stat().st_mtime_ns == before


def test_a_tampered_report_is_stored_under_its_own_hash_never_under_the_attested_one(api, reports):
    node, client = api
    attested = reports["pass"]
    tampered = copy.deepcopy(attested.document)
    tampered["inputs"]["height"] = 999  # a consistent document, computed on another state (it says)

    answer = client.post("/v1/stress/reports", json=tampered)

    assert answer.status_code == 201
    assert answer.json()["report_hash"] == hash_report(tampered).report_hash != attested.report_hash
    assert stored_files(node) == [f"{hash_report(tampered).report_hash}.json"]
    missing = client.get(f"/v1/stress/reports/{attested.report_hash}")
    assert missing.status_code == 404
    assert missing.json()["code"] == "report_not_found"


def test_a_file_damaged_on_disk_is_not_served(api, reports):
    node, client = api
    report = reports["pass"]
    client.post("/v1/stress/reports", json=report.document)
    path = node.data_dir / "reports" / f"{report.report_hash}.json"
    path.write_bytes(path.read_bytes().replace(b'"height":0', b'"height":7'))

    assert client.get(f"/v1/stress/reports/{report.report_hash}").status_code == 404


def tamper(document: dict, edit) -> dict:
    out = copy.deepcopy(document)
    edit(out)
    return out


INVALID = [
    # (what is wrong, the edit, the field named)
    ("not an object", lambda d: d.clear() or d.update({"x": 1}), "format"),
    ("another format", lambda d: d.update(format="bastion-stress-report/1"), "format"),
    ("a section missing", lambda d: d.pop("verdict"), "verdict"),
    ("a field of no report", lambda d: d.update(comment="hi"), "comment"),
    ("a float", lambda d: d["inputs"].update(seed=11.0), "inputs.seed"),
    ("an unknown scenario kind", lambda d: d["scenarios"][0].update(kind="<script>"), "scenarios.0.kind"),
    ("results out of index order", lambda d: d["scenarios"].reverse(), "scenarios.0.index"),
    ("a loss that is not payouts plus bad debt", lambda d: d["scenarios"][0].update(loss_usdc=1), "scenarios.0"),
    ("a scenario's figure changed under its summary",
     lambda d: d["scenarios"][0].update(liquidations=d["scenarios"][0]["liquidations"] + 1), "summary"),
    ("a failing verdict turned into a pass", lambda d: d["verdict"].update(passed=True), "verdict"),
    ("thresholds not in normal form", lambda d: d["thresholds"].update(max_depletion_probability="0.010"),
     "thresholds"),
    ("an unknown thresholds source", lambda d: d.update(thresholds_source="mine"), "thresholds_source"),
    ("a negative count", lambda d: d["scenarios"][0].update(liquidations=-1), "scenarios.0.liquidations"),
]


@pytest.mark.parametrize(("what", "edit", "field"), INVALID, ids=[row[0] for row in INVALID])
def test_an_invalid_report_is_refused_and_nothing_is_stored(api, reports, what, edit, field):
    node, client = api

    answer = client.post("/v1/stress/reports", json=tamper(reports["fail"].document, edit))

    assert answer.status_code == 400, what
    assert (answer.json()["code"], answer.json()["field"]) == ("invalid_report", field)
    assert stored_files(node) == []


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"[1, 2", 400, "invalid_json"),                           # not JSON
    (b"[" * 50_000 + b"]" * 50_000, 400, "invalid_report"),    # nested far deeper than a report
    (b"[]", 400, "invalid_report"),                            # JSON, not a report
], ids=["not JSON", "deep", "a list"])
def test_a_body_that_is_no_report_is_refused(api, body, status, code):
    node, client = api
    answer = client.post("/v1/stress/reports", content=body, headers={"content-type": "application/json"})
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert stored_files(node) == []


def test_uploads_are_size_limited_and_rate_limited_per_client(tmp_path, reports):
    node, client, clock = open_node(tmp_path, btc_genesis("1000000"), max_report_bytes=100_000,
                                    report_rate_per_s=1, report_burst=2)
    try:
        big = client.post("/v1/stress/reports", content=b" " * 100_001, headers={"content-type": "application/json"})
        assert (big.status_code, big.json()["code"]) == (413, "too_large")
        assert client.post("/v1/stress/reports", json=reports["pass"].document).status_code == 201
        limited = client.post("/v1/stress/reports", json=reports["fail"].document)  # the burst of 2 is spent
        assert (limited.status_code, limited.json()["code"], limited.headers["retry-after"]) == (
            429, "rate_limited", "1")
        clock.now_ms += 1_000
        assert client.post("/v1/stress/reports", json=reports["fail"].document).status_code == 201
        assert stored_files(node) == sorted(f"{r.report_hash}.json" for r in reports.values())
    finally:
        node.close()


@pytest.mark.parametrize(("path", "status", "code"), [
    (f"/v1/stress/reports/{'ab' * 32}", 404, "report_not_found"),          # well formed, not held
    (f"/v1/stress/reports/{'ab' * 32}/html", 404, "report_not_found"),
    ("/v1/stress/reports/ABCD", 400, "invalid_request"),                     # not a hash
])
def test_reading_a_report_the_node_does_not_hold(api, path, status, code):
    _, client = api
    answer = client.get(path)
    assert (answer.status_code, answer.json()["code"]) == (status, code)


def test_the_documented_example_is_a_valid_report_with_the_documented_hash(api):
    _, client = api
    answer = client.post("/v1/stress/reports", json=STRESS_REPORT_EXAMPLE)
    assert (answer.status_code, answer.json()["report_hash"]) == (201, REPORT_EXAMPLE)


# --------------------------------------------------------------------------------------- the HTML page
def test_the_html_page_is_drawn_from_the_stored_document_and_reaches_nothing(api, reports):
    _, client = api
    report = reports["fail"]
    client.post("/v1/stress/reports", json=report.document)

    page = client.get(f"/v1/stress/reports/{report.report_hash}/html")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "connect-src 'none'" in page.headers["content-security-policy"]
    text = page.text
    assert f'<td class="mono">{report.report_hash}</td>' in text
    assert '<td class="fail">FAIL</td>' in text
    assert "Liquidated notional per scenario" in text and "Bad debt distribution across scenarios" in text
    assert "Price paths" not in text and "Insurance funds over time" not in text   # need the state
    assert "drawn from the report document alone" in text
    ours = text.replace(plotly_js(), "")
    assert "http://" not in ours and "https://" not in ours and "src=" not in ours


def test_the_html_page_of_a_proposal_report_draws_the_held_baseline_beside_it(api, reports):
    _, client = api
    after = copy.deepcopy(reports["fail"].document)
    after["baseline"] = {"report_hash": reports["pass"].report_hash, "state_hash": "00" * 32,
                         "summary": reports["pass"].document["summary"], "verdict": reports["pass"].document["verdict"]}
    after_hash = client.post("/v1/stress/reports", json=after).json()["report_hash"]

    alone = client.get(f"/v1/stress/reports/{after_hash}/html").text
    client.post("/v1/stress/reports", json=reports["pass"].document)
    beside = client.get(f"/v1/stress/reports/{after_hash}/html").text

    assert "baseline report hash" not in alone
    assert f'<tr><td>baseline report hash</td><td class="mono">{reports["pass"].report_hash}</td></tr>' in beside
    assert "<th>before</th><th>after the proposal</th>" in beside


def test_report_strings_cannot_close_the_script_element(reports):
    from bastion.stress.htmlreport import render_html

    document = copy.deepcopy(reports["pass"].document)
    document["scenarios"][0]["name"] = "</script><script>alert(1)</script>"
    for scenario in document["scenarios"]:
        scenario["kind"] = "</script><b>"   # render_html is also called on unchecked documents by the CLI

    page = render_html(document, None)

    assert "</script><b>" not in page and "\\u003c/script\\u003e\\u003cb\\u003e" in page


# --------------------------------------------------------------------------------------- the gate
def queued_node(tmp_path: Path, **config) -> tuple[Node, TestClient, Clock, str]:
    """``test_stress_cli``'s gate chain on a node: a risk-increasing proposal queued at block 5."""
    node, client, clock = open_node(tmp_path, gate_genesis(), **config)
    pid = None
    for number, txs in enumerate([[(ALICE, "submit")], [], [(ALICE, "vote")], [], [(BOB, "queue")]]):
        for sender, what in txs:
            msg = {"submit": lambda: submit_proposal(LOWER_ETH_MARGIN), "vote": lambda: vote(pid, "yes"),  # noqa: B023 - called at once
                   "queue": lambda: queue(pid)}[what]()  # noqa: B023
            node.submit({"sender": sender, "nonce": number + 1, "msg": msg})
        node.produce_block()
        clock.now_ms += 1_000
        if pid is None:
            pid = next(iter(node.state.proposals))
    assert node.state.proposals[pid].status == "queued"
    return node, client, clock, pid


def attest(node: Node, clock: Clock, pid: str, *hashes: str) -> None:
    """Each member registers its hash on chain (figures that pass the governed thresholds: what the
    chain records, not what the node holds) and then attests it as a pass."""
    for nonce, (member, report_hash) in enumerate(zip(MEMBERS, hashes), start=90):
        node.submit({"sender": member, "nonce": nonce, "msg": {
            "type": "register_stress_report", "report_hash": report_hash, "verdict": "pass",
            "depletion_probability": "0", "var99_loss": "0", "es99_loss": "0", "insurance_funds_total": "0"}})
    for nonce, (member, report_hash) in enumerate(zip(MEMBERS, hashes), start=100):
        node.submit({"sender": member, "nonce": nonce, "msg": {"type": "council_attest", "proposal_id": pid,
                                                                "report_hash": report_hash, "verdict": "pass"}})
    node.produce_block()
    clock.now_ms += 1_000


@pytest.fixture
def two_attested(tmp_path, reports):
    """The queued proposal attested by two members on two reports, of which the node holds the first."""
    node, client, clock, pid = queued_node(tmp_path)
    held, missing = reports["pass"], reports["fail"]
    attest(node, clock, pid, held.report_hash, missing.report_hash)
    client.post("/v1/stress/reports", json=held.document)
    yield client, pid, held, missing
    node.close()


ZERO_FIGURES = {"verdict": "pass", "depletion_probability": "0", "var99_loss": "0", "es99_loss": "0",
                "insurance_funds_total": "0"}


def test_the_gate_says_which_attested_reports_the_node_holds_with_their_figures(two_attested):
    client, pid, held, missing = two_attested

    gate = client.get(f"/v1/governance/proposals/{pid}").json()["stress_gate"]

    registered_ms = gate["registered"][held.report_hash]["registered_ms"]    # both registered in one block
    assert gate["registered"][missing.report_hash]["registered_ms"] == registered_ms
    assert gate["reports"] == {
        held.report_hash: {
            "report_hash": held.report_hash, "held": True, "url": f"/v1/stress/reports/{held.report_hash}",
            "html_url": f"/v1/stress/reports/{held.report_hash}/html", "verdict": "pass", "scenarios": 8,
            "depleted": 0, "depletion_probability": "0", "var99_loss": "15166.32", "es99_loss": "15166.32",
            "worst_bad_debt": "0", "worst_drawdown": "15166.32", "insurance_funds_total": "1000000",
            "thresholds": {"max_depletion_probability": "0.01", "max_var99_loss_of_fund": "0.5",
                           "max_es99_loss_of_fund": "1", "max_loss_to_traders": "0"},
            "thresholds_source": "governance", "state_hash": held.document["inputs"]["state_hash"],
            "height": 0, "scenario_set": "cli-test v1",
            # ``attest`` registered it with figures 0: not what the held report says (VaR99 15,166.32)
            "registered": {**ZERO_FIGURES, "registered_by": MEMBERS[0], "registered_ms": registered_ms},
            "matches_registration": False},
        missing.report_hash: {"report_hash": missing.report_hash, "held": False, "url": None, "html_url": None,
                              "verdict": None, "scenarios": None, "depleted": None, "depletion_probability": None,
                              "var99_loss": None, "es99_loss": None, "worst_bad_debt": None,
                              "worst_drawdown": None, "insurance_funds_total": None, "thresholds": None,
                              "thresholds_source": None, "state_hash": None, "height": None,
                              "scenario_set": None,
                              "registered": {**ZERO_FIGURES, "registered_by": MEMBERS[1],
                                             "registered_ms": registered_ms},
                              "matches_registration": None}}
    listed = client.get("/v1/governance/proposals").json()["proposals"][0]["stress_gate"]["reports"]
    assert listed == gate["reports"]


def test_the_governance_page_links_a_held_report_and_not_a_missing_one(two_attested):
    client, _, held, missing = two_attested

    page = client.get("/governance").text

    blocks = {h: page.split(f'data-report-hash="{h}"')[1].split("</div>")[0]
              for h in (held.report_hash, missing.report_hash)}
    assert f'<a class="report-link" href="/v1/stress/reports/{held.report_hash}/html">' in blocks[held.report_hash]
    assert 'report verdict <b class="ok">pass</b> over 8 scenarios (cli-test v1, state at block 0)' in blocks[
        held.report_hash]
    assert "VaR99 loss $15,166.32, ES99 $15,166.32 of $1,000,000.00 of funds" in blocks[held.report_hash]
    assert "thresholds: governance" in blocks[held.report_hash]
    assert "report-link" not in blocks[missing.report_hash]
    assert "this node does not hold the report" in blocks[missing.report_hash]
    assert "/v1/stress/reports/" not in blocks[missing.report_hash]


# --------------------------------------------------------------------------------------- the SDK and the CLI
@contextmanager
def serve(node: Node, config: ApiConfig) -> Iterator[str]:
    """The node's API served by uvicorn on a loopback port; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(node, config), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def live(tmp_path: Path):
    """The queued gate chain served over HTTP (signed mode, the test's clock)."""
    node, _, clock, pid = queued_node(tmp_path)
    try:
        with serve(node, ApiConfig(clock_ms=clock, web=False)) as url:
            yield url, node, clock, pid
    finally:
        node.close()


def test_the_sdk_uploads_and_fetches_a_report_checked_against_its_hash(live, reports):
    url, node, _, _ = live
    report = reports["pass"]
    with Client(url) as client:
        uploaded = client.upload_stress_report(report.canonical_bytes)
        fetched = client.stress_report(report.report_hash)
        with pytest.raises(BastionError) as refused:
            client.upload_stress_report({"format": "bastion-stress-report/1"})
        with pytest.raises(BastionError) as unknown:
            client.stress_report("ab" * 32)
    assert (uploaded["report_hash"], uploaded["created"]) == (report.report_hash, True)
    assert fetched == report.document
    assert (refused.value.status, refused.value.code) == (400, "invalid_report")
    assert (unknown.value.status, unknown.value.code) == (404, "report_not_found")


def test_stress_attest_submit_uploads_the_reports_before_the_attestation(live, tmp_path):
    url, node, clock, pid = live
    set_file, key_file, out = tmp_path / "set.json", tmp_path / "key", tmp_path / "out"
    set_file.write_text(json.dumps(SET))
    key_file.write_text(KEYS[0])

    result = stress("--data", str(node.data_dir), "--scenarios", str(set_file), "--proposal", pid, "--attest",
                    "--key-file", str(key_file), "--nonce", str(clock.now_ms * 1_000), "--submit", url,
                    "--workers", "1", "--out", str(out))

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    report_bytes, baseline_bytes = (out / "report.json").read_bytes(), (out / "baseline.json").read_bytes()
    report_hash = hashlib.sha256(report_bytes).hexdigest()
    baseline_hash = hashlib.sha256(baseline_bytes).hexdigest()
    assert {name: (answer["report_hash"], answer["created"]) for name, answer in printed["uploaded"].items()} == {
        "report": (report_hash, True), "baseline": (baseline_hash, True)}
    assert (printed["registered"]["status"], printed["submitted"]["status"]) == ("accepted", "accepted")
    assert stored_files(node) == sorted([f"{report_hash}.json", f"{baseline_hash}.json"])
    assert (node.data_dir / "reports" / f"{report_hash}.json").read_bytes() == report_bytes
    node.produce_block()
    with Client(url) as client:
        gate = client.proposal(pid)["stress_gate"]
    assert [(a["member"], a["report_hash"]) for a in gate["attestations"]] == [(MEMBERS[0], report_hash)]
    assert (gate["reports"][report_hash]["held"], gate["reports"][report_hash]["verdict"]) == (True, "pass")
    assert node.state.stress_reports[report_hash].registered_by == MEMBERS[0]   # registered, then attested


def test_stress_submit_whose_upload_is_refused_submits_no_attestation(tmp_path, reports):
    node, client, clock, pid = queued_node(tmp_path)
    set_file, key_file = tmp_path / "set.json", tmp_path / "key"
    set_file.write_text(json.dumps(SET))
    key_file.write_text(KEYS[0])
    try:
        with serve(node, ApiConfig(clock_ms=clock, web=False, report_rate_per_s=1, report_burst=1)) as url:
            with Client(url) as sdk:
                sdk.upload_stress_report(reports["pass"].document)   # spends this address's only token

            result = stress("--data", str(node.data_dir), "--scenarios", str(set_file), "--proposal", pid,
                            "--attest", "--key-file", str(key_file), "--nonce", str(clock.now_ms * 1_000),
                            "--submit", url, "--workers", "1")

        assert result.exit_code == 2
        assert "rate_limited" in result.stderr
        assert len(node.mempool) == 0                                  # the attestation was not submitted
        assert stored_files(node) == [f"{reports['pass'].report_hash}.json"]
    finally:
        node.close()
