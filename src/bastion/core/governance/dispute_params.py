"""``set_dispute_params{params}`` (issue 18): governance moves the dispute parameters
(``params.DisputeParams``, ``bastion.core.disputes``).

``params`` is a partial ``disputes`` section in its genesis form (``disputes.format_dispute_params``:
``window_s``, ``bond_floor``, ``max_award``, ``appeal_tier``, ...), validated by the same parser as
genesis (``disputes.parse_dispute_params``: ``invalid_field``, ``unknown_field``, the decimal codes).
Each changed field is one ``Change`` of ``disputes.<attribute>``, classified by its effect on the
insurance funds: more money out or easier disputes (higher award caps, a longer window or ruling
deadline, a lower bond, a shorter epoch, a laxer appeal tier) is ``risk_increasing``, the opposite
``risk_reducing``; the retention of targets and the incident claim period are ``neutral`` either way.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Final

from bastion.core.disputes import parse_dispute_params
from bastion.core.governance.changes import NEUTRAL, Change, ParamGroup, ParamPath, compare_risk
from bastion.core.messages import SetDisputeParams
from bastion.core.params import RISK_CLASSES
from bastion.core.state import State

# attribute -> riskier when higher (True), when lower (False), or never (None)
RISKIER_WHEN_HIGHER: Final[dict[str, bool | None]] = {
    "window_ms": True, "record_retention_ms": None, "bond_floor_usdc": False, "bond_claim_ppm": False,
    "ruling_deadline_ms": True, "appeal_window_ms": None, "appeal_bond_multiple": False, "appeal_tier": False,
    "max_award_usdc": True, "max_award_fund_ppm": True, "max_epoch_award_usdc": True, "epoch_ms": False,
    "incident_claim_ms": None,
}


def compute_dispute_params_changes(state: State, action: SetDisputeParams) -> list[Change]:
    """The changed dispute parameters, each with its risk class (module docstring). Raises
    ``invalid_field``, ``unknown_field`` and the decimal codes."""
    old = state.disputes.params
    new = parse_dispute_params(action.params, old, "params")
    changes = []
    for f in fields(new):
        before, after = getattr(old, f.name), getattr(new, f.name)
        if before == after:
            continue
        direction = RISKIER_WHEN_HIGHER[f.name]
        if direction is None:
            risk = NEUTRAL
        elif f.name == "appeal_tier":
            risk = compare_risk(RISK_CLASSES.index(before), RISK_CLASSES.index(after), riskier_when_higher=False)
        else:
            risk = compare_risk(before, after, riskier_when_higher=direction)
        changes.append(Change(ParamPath(ParamGroup.DISPUTES, "", f.name), before, after, risk))
    return changes
