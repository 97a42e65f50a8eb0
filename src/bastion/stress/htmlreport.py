"""The HTML report: one self-contained file with the plots of a stress report (DESIGN.md section 10).

``render_html(report, series, baseline=..., baseline_series=...)`` returns a page that loads nothing
from anywhere: plotly.js is embedded inline from the installed ``plotly`` package
(``plotly_js()``; never a CDN), the figures are JSON passed to ``Plotly.newPlot``, and no text of
ours holds a URL (tested). The web UI reuses ``render_html`` and ``plotly_js``.

Plots:

* the verdict and the summary table (before/after side by side when there is a baseline);
* **price paths per scenario kind**: each market's oracle price relative to the snapshot, for the
  kind's representative scenario (``representative_indices``: per kind, the largest loss, then the
  largest liquidated notional, then the lowest index);
* **insurance funds over time** and cumulative liquidated notional and bad debt, for the same
  scenarios (``compute_series``);
* **liquidated notional** per scenario and the **bad debt distribution** across scenarios;
* with a baseline (the state before a proposal): the summary figures, the loss distribution and
  the funds over time, before and after, side by side.

**The per-step series** are exact for the fast path without touching it: an account's breach step
does not depend on the other accounts, liquidations are applied by step, and accounts liquidated
in the same step share only that step's flow. So the funds after every liquidation up to step
``s`` are the engine's own result on the accounts that breach at or before ``s``
(``engine.first_breach``) with the same path. ``compute_series`` evaluates that at every distinct
breach step (at most ``SERIES_POINTS`` of them, evenly chosen) and at the last step: the funds and
totals are step functions between those points.
"""
from __future__ import annotations

import dataclasses
import html
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from bastion.core.units import USDC_DECIMALS, format_ppm, format_usdc
from bastion.reporthash import compute_report_hash
from bastion.stress.engine import first_breach, prepare, run_sweep
from bastion.stress.inputs import StressInputs
from bastion.stress.paths import build_path
from bastion.stress.scenarios import ScenarioSet

SERIES_POINTS = 60       # evaluations of the funds per plotted scenario
PRICE_POINTS = 400       # points per plotted price line
USDC = 10**USDC_DECIMALS
PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #1d2733; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #d5dbe3; }
table { border-collapse: collapse; margin: 0.5rem 0; } td, th { padding: 0.25rem 0.75rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } tr:nth-child(even) { background: #f3f5f8; }
.pass { color: #17803d; font-weight: bold; } .fail { color: #b42318; font-weight: bold; }
.mono { font-family: ui-monospace, monospace; font-size: 0.85rem; word-break: break-all; }
.figure { height: 420px; }
"""


@dataclass(frozen=True)
class ScenarioSeries:
    """One scenario's path and its funds through time (amounts in micro-USDC)."""

    index: int
    name: str
    kind: str
    tickers: tuple[str, ...]
    price_steps: list[int]                 # steps of the price lines (down-sampled)
    price_ratios: list[list[float]]        # per market: oracle price / snapshot price at those steps
    steps: list[int]                       # evaluation steps of the funds (0, breach steps, last)
    insurance_funds_usdc: list[int]        # total of the funds after the liquidations up to the step
    liquidated_notional_usdc: list[int]    # cumulative
    bad_debt_usdc: list[int]               # cumulative


# --------------------------------------------------------------------------------------- series
def representative_indices(report: dict[str, Any]) -> list[int]:
    """Per scenario kind (in order of first appearance), the scenario with the largest loss (ties:
    largest liquidated notional, then lowest index)."""
    best: dict[str, dict[str, Any]] = {}
    for scenario in report["scenarios"]:
        key = (scenario["loss_usdc"], scenario["liquidated_notional_usdc"], -scenario["index"])
        current = best.get(scenario["kind"])
        if current is None or key > (current["loss_usdc"], current["liquidated_notional_usdc"], -current["index"]):
            best[scenario["kind"]] = scenario
    return [scenario["index"] for scenario in best.values()]


def compute_series(inputs: StressInputs, scenario_set: ScenarioSet, indices: list[int]) -> list[ScenarioSeries]:
    """The plotted series of the scenarios ``indices`` (module docstring)."""
    scenarios = scenario_set.scenarios()
    prepared = prepare(inputs)
    return [_series(inputs, scenario_set, prepared, scenarios[i]) for i in indices]


def _series(inputs: StressInputs, scenario_set: ScenarioSet, prepared: Any, scenario: Any) -> ScenarioSeries:
    path = build_path(scenario, inputs, scenario_set)
    lot_value = path.ticks * inputs.lot_tick_value
    breach = first_breach(prepared, lot_value, path.stale)
    breach_steps = np.unique(breach[breach >= 0])
    if breach_steps.size > SERIES_POINTS:
        breach_steps = breach_steps[np.linspace(0, breach_steps.size - 1, SERIES_POINTS).round().astype(int)]
    start = int(inputs.insurance_funds.sum())
    steps, funds, notional, bad_debt = [0], [start], [0], [0]
    for step in (int(s) for s in breach_steps):
        result = _result_up_to(inputs, scenario_set, scenario.index, breach, step)
        steps.append(step)
        funds.append(start + result.insurance_fees_usdc - result.insurance_payouts_usdc)
        notional.append(result.liquidated_notional_usdc)
        bad_debt.append(result.bad_debt_usdc)
    if steps[-1] != path.steps:
        steps.append(path.steps)
        funds.append(funds[-1])
        notional.append(notional[-1])
        bad_debt.append(bad_debt[-1])
    chosen = np.unique(np.linspace(0, path.steps, min(PRICE_POINTS, path.steps + 1)).round().astype(int))
    ratios = path.ticks[chosen] / inputs.oracle_ticks
    return ScenarioSeries(scenario.index, scenario.name, scenario.kind, inputs.tickers, chosen.tolist(),
                          [ratios[:, m].round(6).tolist() for m in range(inputs.market_count)],
                          steps, funds, notional, bad_debt)


def _result_up_to(inputs: StressInputs, scenario_set: ScenarioSet, index: int, breach: np.ndarray, step: int) -> Any:
    """The fast path's result on the accounts that breach at or before ``step``."""
    keep = np.flatnonzero((breach >= 0) & (breach <= step))
    subset = dataclasses.replace(
        inputs, accounts=tuple(inputs.accounts[i] for i in keep), collateral=inputs.collateral[keep],
        sizes=inputs.sizes[keep], account_pool=inputs.account_pool[keep], net_collateral=inputs.net_collateral[keep],
        initial_requirement=inputs.initial_requirement[keep],
        maintenance_requirement=inputs.maintenance_requirement[keep])
    [result] = run_sweep(subset, scenario_set, indices=range(index, index + 1))
    return result


# --------------------------------------------------------------------------------------- figures
@cache
def plotly_js() -> str:
    """plotly.min.js of the installed (pinned) ``plotly`` package, to embed inline."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _usdc(amount: int) -> float:
    return amount / USDC


def _figure(title: str, traces: list[dict[str, Any]], *, x: str, y: str, **layout: Any) -> dict[str, Any]:
    return {"data": traces, "layout": {"title": {"text": title}, "xaxis": {"title": {"text": x}},
                                       "yaxis": {"title": {"text": y}}, "margin": {"t": 50, "r": 20},
                                       "legend": {"orientation": "h"}, **layout}}


def price_figures(series: list[ScenarioSeries]) -> list[dict[str, Any]]:
    return [_figure(f"Price paths: {s.kind} (scenario {s.index}, {s.name})",
                    [{"type": "scatter", "mode": "lines", "name": ticker, "x": s.price_steps, "y": ratios}
                     for ticker, ratios in zip(s.tickers, s.price_ratios)],
                    x="step", y="oracle price / snapshot price") for s in series]


def fund_figure(series: list[ScenarioSeries], title: str) -> dict[str, Any]:
    return _figure(title, [{"type": "scatter", "mode": "lines", "line": {"shape": "hv"},
                            "name": f"{s.kind} #{s.index}", "x": s.steps,
                            "y": [_usdc(v) for v in s.insurance_funds_usdc]} for s in series],
                   x="step", y="insurance funds (USDC)")


def cumulative_figure(series: list[ScenarioSeries]) -> dict[str, Any]:
    traces = []
    for s in series:
        traces.append({"type": "scatter", "mode": "lines", "line": {"shape": "hv"}, "name": f"liquidated {s.kind}",
                       "x": s.steps, "y": [_usdc(v) for v in s.liquidated_notional_usdc]})
        traces.append({"type": "scatter", "mode": "lines", "line": {"shape": "hv", "dash": "dot"},
                       "name": f"bad debt {s.kind}", "x": s.steps, "y": [_usdc(v) for v in s.bad_debt_usdc]})
    return _figure("Liquidated notional and bad debt over time (cumulative)", traces, x="step", y="USDC")


def liquidated_figure(report: dict[str, Any]) -> dict[str, Any]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for scenario in report["scenarios"]:
        kinds.setdefault(scenario["kind"], []).append(scenario)
    return _figure("Liquidated notional per scenario",
                   [{"type": "bar", "name": kind, "x": [s["index"] for s in scenarios],
                     "y": [_usdc(s["liquidated_notional_usdc"]) for s in scenarios]}
                    for kind, scenarios in kinds.items()], x="scenario", y="USDC")


def distribution_figure(title: str, metric: str, documents: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return _figure(title, [{"type": "histogram", "name": name, "opacity": 0.65, "nbinsx": 40,
                            "x": [_usdc(s[metric]) for s in document["scenarios"]]}
                           for name, document in documents], x="USDC", y="scenarios", barmode="overlay")


def comparison_figure(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    names = ["var99_loss_usdc", "es99_loss_usdc", "worst_bad_debt_usdc", "worst_drawdown_usdc"]
    return _figure("Before and after the proposal", [
        {"type": "bar", "name": name, "x": names, "y": [_usdc(document["summary"][n]) for n in names]}
        for name, document in (("before", before), ("after", after))], x="", y="USDC", barmode="group")


# --------------------------------------------------------------------------------------- the page
def _summary_rows(documents: list[tuple[str, dict[str, Any]]]) -> str:
    header = "".join(f"<th>{html.escape(name)}</th>" for name, _ in documents)
    rows = [f"<tr><th>figure</th>{header}</tr>"]
    verdicts = "".join(f'<td class="{"pass" if d["verdict"]["passed"] else "fail"}">'
                       f'{"PASS" if d["verdict"]["passed"] else "FAIL"}</td>' for _, d in documents)
    rows.append(f"<tr><td>verdict</td>{verdicts}</tr>")
    for key in documents[0][1]["summary"]:
        cells = []
        for _, document in documents:
            value = document["summary"][key]
            cells.append(format_ppm(value) if key.endswith("_ppm") else
                         format_usdc(value) if key.endswith("_usdc") else str(value))
        rows.append(f"<tr><td>{html.escape(key)}</td>{''.join(f'<td>{c}</td>' for c in cells)}</tr>")
    for check in documents[-1][1]["verdict"]["checks"]:
        limit = format_ppm(check["limit_ppm"]) if "limit_ppm" in check else f"{format_usdc(check['limit_usdc'])} USDC"
        rows.append(f"<tr><td>check {html.escape(check['name'])} (limit {limit})</td>"
                    + "".join(f'<td>{"ok" if c["passed"] else "breached"}</td>'
                              for _, d in documents for c in d["verdict"]["checks"] if c["name"] == check["name"])
                    + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def render_html(report: dict[str, Any], series: list[ScenarioSeries] | None, *,
                baseline: dict[str, Any] | None = None, baseline_series: list[ScenarioSeries] | None = None,
                proposal_id: str | None = None) -> str:
    """The self-contained page of ``report`` (a report document) and its plotted ``series``.

    ``series=None`` (a node serving a stored report, ``bastion.api.reports``, which holds the
    report but not the state it was computed on): the page leaves out the plots drawn from the
    state (price paths, funds over time, cumulative liquidations) and says how to draw them; the
    summary, the verdict and the per-scenario plots come from the document alone."""
    inputs = report["inputs"]
    documents = [("report", report)] if baseline is None else [("before", baseline), ("after the proposal", report)]
    figures: list[tuple[str, dict[str, Any]]] = []
    if baseline is not None:
        figures.append(("Before and after the proposal", comparison_figure(baseline, report)))
        figures.append(("", distribution_figure("Loss per scenario, before and after", "loss_usdc",
                                                [("before", baseline), ("after", report)])))
        if baseline_series is not None and series is not None:
            figures.append(("", fund_figure(baseline_series, "Insurance funds over time: before")))
            figures.append(("", fund_figure(series, "Insurance funds over time: after")))
    if series is not None:
        figures.extend(("Price paths per scenario kind" if i == 0 else "", figure)
                       for i, figure in enumerate(price_figures(series)))
        if baseline is None:
            figures.append(("Insurance funds over time", fund_figure(series, "Insurance funds over time")))
        figures.append(("Liquidations and bad debt", cumulative_figure(series)))
    figures.append(("" if series is not None else "Liquidations and bad debt", liquidated_figure(report)))
    figures.append(("", distribution_figure("Bad debt distribution across scenarios", "bad_debt_usdc",
                                            documents)))
    figures.append(("Losses moved onto traders", distribution_figure(
        "Losses to traders who were not liquidated (ADL and socialisation), per scenario", "trader_loss_usdc",
        documents)))
    figures.append(("", distribution_figure("Backstop inventory peak per scenario", "backstop_peak_usdc", documents)))
    sections = []
    for number, (heading, _figure) in enumerate(figures):
        if heading:
            sections.append(f"<h2>{html.escape(heading)}</h2>")
        sections.append(f'<div class="figure" id="figure-{number}"></div>')
    calls = "\n".join(f"Plotly.newPlot('figure-{n}', {script_json(f['data'])}, {script_json(f['layout'])}, "
                      f"{{displaylogo: false, responsive: true}});" for n, (_, f) in enumerate(figures))
    scenario_set = inputs["scenario_set"]
    title = "Bastion stress report" + (f" for proposal {proposal_id}" if proposal_id else "")
    facts = [("report hash", compute_report_hash(report)), ("state hash", inputs["state_hash"]),
             ("height", inputs["height"]),
             ("accounts with positions", inputs["accounts"]), ("markets", ", ".join(inputs["markets"])),
             ("scenario set", f"{scenario_set['name']} v{scenario_set['version']} ({scenario_set['hash']})"),
             ("seed", inputs["seed"]), ("data hash", inputs["data_hash"]),
             ("code", ", ".join(f"{k} {v}" for k, v in sorted(inputs["code"].items())))]
    if baseline is not None:
        facts.insert(1, ("baseline report hash", compute_report_hash(baseline)))
        facts.insert(2, ("baseline state hash", baseline["inputs"]["state_hash"]))
    fact_rows = "".join(f'<tr><td>{html.escape(k)}</td><td class="mono">{html.escape(str(v))}</td></tr>'
                        for k, v in facts)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{PAGE_STYLE}</style>\n<script>{plotly_js()}</script>\n</head><body>"
            f"<h1>{html.escape(title)}</h1><table>{fact_rows}</table>"
            f"<h2>Summary</h2>{_summary_rows(documents)}{testnet_rows(report.get('testnet'))}"
            f"{''.join(sections)}{STATELESS_NOTE if series is None else ''}"
            f"<script>\n{calls}\n</script></body></html>\n")


TESTNET_ROWS = (("transactions refused", "txs_refused"), ("fills", "fills"), ("liquidations", "liquidations"),
                ("deleveragings", "deleveragings"), ("bad debt (USDC)", "bad_debt_usdc"),
                ("lowest insurance funds total (USDC)", "lowest_insurance_funds_total_usdc"))


def testnet_rows(section: dict[str, Any] | None) -> str:
    """The testnet result (``stress.testnet``): the proposal replayed over the recent block log,
    without and with the change, beside the synthetic sweep ("" when the report has none)."""
    if section is None:
        return ""
    def cell(key: str, run: str) -> str:
        value = section[run][key]
        return format_usdc(value) if key.endswith("_usdc") else str(value)
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td class=\"mono\">{cell(key, 'without_change')}</td>"
                   f"<td class=\"mono\">{cell(key, 'with_change')}</td></tr>" for label, key in TESTNET_ROWS)
    window = (f"blocks {section['from_height']} to {section['to_height']} ({section['blocks']} blocks, "
              f"{section['txs']} transactions, the last {section['days']} days"
              f"{', cut to the latest ' + str(section['max_blocks']) + ' blocks' if section['truncated'] else ''})")
    check = ("the replay without the change ends at the logged state hash" if section["baseline_reproduced"]
             else "WARNING: the replay without the change does not end at the logged state hash")
    return (f"<h2>Testnet result: the proposal over the real block log</h2><p>{html.escape(window)}; "
            f"{html.escape(check)}; {section['outcomes_flipped']} transaction outcomes flipped by the change.</p>"
            f"<table><tr><th></th><th>without the change</th><th>with the change</th></tr>{rows}</table>")


STATELESS_NOTE = ("<p>This page was drawn from the report document alone. The plots of price paths, insurance "
                  "funds over time and cumulative liquidations need the stressed state: <code>bastion stress "
                  "--data DIR --out OUT</code> on a node's data directory at the report's height draws them "
                  "(and reproduces the report hash).</p>")


def script_json(value: Any) -> str:
    """``value`` as JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` as ``\\u`` escapes,
    so no string of a report (a scenario name, say) can close the element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
