"""Governance (DESIGN.md section 9): proposals, actions, rollouts and the council, as a package whose
modules stand on floors. Each imports only modules on the floors below it (checked by
``tests/test_architecture.py``):

1. ``changes``        effects (``Change`` with a typed ``ParamPath``, listings, money moves,
                      planned rollouts), risk comparison, the one parameter setter ``change_param``
2. ``params_codec``   governance parameters and their genesis form;
   ``council_rules``  council parsing, steward bounds, the stress gate as reads of the state;
   ``proposal_guards`` proposer and vote guards
3. ``actions``        listing, oracle, liquidation, guardian and money actions
4. ``rollout``        staged rollouts of any rollable lever (given the validation as an argument)
5. ``dispatch``       the one validation (``compute_action_changes``, a ``match`` over the actions)
6. ``classify``       risk classes with every pending proposal applied
7. ``proposals``      statuses and their transition table, tally, deposits, the proposal handlers
8. ``council``        the council's messages (attestations, stress reports, steward changes)

The public names most callers need are re-exported here (``from bastion.core import governance``).
"""
from bastion.core.governance.changes import (
    CRITICAL, NEUTRAL, RISK_INCREASING, RISK_REDUCING, Change, Effect, FundMerge, FundTransfer, Listing, ParamGroup,
    ParamPath, Payment, PlannedRollout, apply_change, change_param, compare_risk, strictest,
)
from bastion.core.governance.dispatch import apply_effect, compute_action_changes, compute_proposal_changes
from bastion.core.governance.params_codec import (
    STRESS_THRESHOLDS, format_governance_params, parse_governance_params, parse_stress_thresholds,
)
from bastion.core.governance.proposals import (
    TRANSITIONS, VOTE_OPTIONS, ProposalStatus, cancel_proposal, compute_outcome, compute_proposal_id,
    compute_quorum_votes, execute, get_execution_window, get_proposal, get_votes_cast, guardian_veto,
    process_proposals, queue, submit_proposal, vote,
)

__all__ = [
    "CRITICAL", "NEUTRAL", "RISK_INCREASING", "RISK_REDUCING", "STRESS_THRESHOLDS", "TRANSITIONS", "VOTE_OPTIONS",
    "Change", "Effect", "FundMerge", "FundTransfer", "Listing", "ParamGroup", "ParamPath", "Payment",
    "PlannedRollout", "ProposalStatus", "apply_change", "apply_effect", "cancel_proposal", "change_param",
    "compare_risk", "compute_action_changes", "compute_outcome", "compute_proposal_changes", "compute_proposal_id",
    "compute_quorum_votes", "execute", "format_governance_params", "get_execution_window", "get_proposal",
    "get_votes_cast", "guardian_veto", "parse_governance_params", "parse_stress_thresholds", "process_proposals",
    "queue", "strictest", "submit_proposal", "vote",
]
