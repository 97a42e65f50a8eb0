"""Stress testing (DESIGN.md section 10): what a crash would do to today's positions.

The pipeline, one module per step::

    state --extract_inputs--> StressInputs             (inputs.py: numpy arrays of a committed State)
    scenario set JSON --parse_scenario_set--> ScenarioSet   (scenarios.py: versioned, hashed specs)
    (scenario, inputs) --build_path--> ScenarioPath     (paths.py: oracle ticks per step; candles.py for
                                                         the candle files of ``path`` scenarios, --path)
    run_sweep(inputs, scenario_set) -> [ScenarioResult] (engine.py: the vectorised fast path)
    build_report(...) -> StressReport                   (report.py: summary, verdict, canonical JSON + hash)
    run_exact(state, scenario_set, indices)             (replay.py: a sample through the real state machine)
    apply_proposal(state, actions) -> State             (proposal.py: the actions plus the worst-case fill)

``run_stress(extract_inputs(state), default_scenario_set())`` does all of it in this process;
``run(state, proposal_id=..., workers=..., ray_address=...)`` (runner.py, what ``bastion stress``
wraps) also applies a queued proposal, spreads the sweep over processes or Ray (execution.py) and
gives the HTML report (htmlreport.py) and the council's attestation. Scenario data (crash
windows, jump-diffusion calibration, the default gate set) ship in ``data/``; see ``docs/stress.md``.
"""
from bastion.stress.engine import ENGINE_VERSION, ScenarioResult, run_fast_path, run_sweep
from bastion.stress.inputs import StressInputs, extract_inputs
from bastion.stress.paths import ScenarioPath, build_path
from bastion.stress.runner import StressRun, run
from bastion.stress.proposal import ProposalApplication, apply_proposal, plan_proposal
from bastion.stress.replay import ExactResult, compare_results, run_exact
from bastion.stress.report import (
    StressReport,
    StressThresholds,
    SweepSummary,
    build_report,
    parse_thresholds,
    run_stress,
    summarise,
)
from bastion.stress.scenarios import (
    Scenario,
    ScenarioSet,
    default_scenario_set,
    load_scenario_set,
    map_market,
    parse_scenario_set,
    scenario_set_hash,
)

__all__ = [
    "ENGINE_VERSION",
    "ExactResult",
    "ProposalApplication",
    "Scenario",
    "ScenarioPath",
    "ScenarioResult",
    "ScenarioSet",
    "StressInputs",
    "StressReport",
    "StressRun",
    "StressThresholds",
    "SweepSummary",
    "apply_proposal",
    "build_path",
    "build_report",
    "compare_results",
    "default_scenario_set",
    "extract_inputs",
    "load_scenario_set",
    "map_market",
    "parse_scenario_set",
    "parse_thresholds",
    "plan_proposal",
    "run",
    "run_exact",
    "run_fast_path",
    "run_stress",
    "run_sweep",
    "scenario_set_hash",
    "summarise",
]
