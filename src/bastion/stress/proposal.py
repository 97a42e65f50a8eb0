"""A governance proposal as stress input: its actions applied to a copy of the state, plus the worst
case of the risk it allows (DESIGN.md section 10, issue 6).

``apply_proposal(state, proposal_or_actions) -> State`` (``plan_proposal`` also returns what was
done) takes a committed state and a proposal (a ``Proposal`` of the state, its id, or a sequence of
typed actions / action documents) and returns a new committed state:

1. **The actions.** ``classify.classify_proposal`` validates them against the state (the
   same function as submission and execution; a ``ProtocolError`` propagates), then every change is
   applied with ``governance.apply_effect`` (operations such as ``insurance_transfer`` move the
   money), on a snapshot copy: the input state is never modified. A ``start_rollout`` is evaluated
   at its **first step**: the parameter is set to ``rollout.compute_path_value(state, path, start,
   target, risk, 1, steps)`` (the rollouts' one interpolation rule, any lever), the value the
   market will have until the next step's health gates hold. (The next steps
   need a new stress look only in the sense that each one happens only while the gates hold; the
   gate attests the step that the execution makes possible.)
2. **The worst-case fill.** For each market whose changes raise risk on its size limits (its
   ``max_open_interest`` up, its tier changed to a lower initial margin, or its tier's margins
   lowered or open-interest caps raised), the new **headroom** is filled with leveraged positions at
   the new limits:

   * headroom = ``new cap - open interest`` lots when the market's hard cap is finite; when it is
     unlimited and the initial margin fell, ``ceil(OI x old IMF / new IMF) - OI`` (the open interest
     the same collateral carries at the new leverage); else nothing;
   * filled by synthetic pairs of accounts (``SYNTHETIC_PREFIX`` + a counter; cross subaccount 0, or
     isolated to the market when it is isolated-only): one long and one short of the same size,
     opened at the oracle price, each with collateral equal to its initial requirement at the new
     margins with the final open interest (TNC = IMR exactly: maximal leverage). Pairs are
     ``PAIR_NOTIONAL_USDC`` each side (more per pair when there would be more than ``MAX_PAIRS``);
     the last pair takes the remainder. Collateral is added as deposits, so the state stays
     conserved; open interest rises by the headroom.

   Whatever way prices go, one side of every pair is at maximal leverage against the move: the
   stress report sees the losses the change makes possible, not only the ones today's accounts
   would take.

Then ``extract_inputs(apply_proposal(state, actions))`` is the "with the proposal" input, and
``report.build_report(..., baseline=report_without, proposal=plan.document())`` puts both side by side.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bastion.core import governance
from bastion.core.governance import classify, rollout
from bastion.core.hashing import commit_state_hash
from bastion.core.margin import get_subaccount_risk
from bastion.core.messages import StartRollout, canonical_action, decode_action
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.state import CROSS, ISOLATED, ParamSource, Position, Proposal, State, Subaccount
from bastion.risk_model import notional

SYNTHETIC_PREFIX: Final = "0x5"                  # synthetic owners: 0x5 followed by 39 hex digits
PAIR_NOTIONAL_USDC: Final = 1_000_000 * 10**6      # one side of a synthetic pair: 1,000,000 USDC
MAX_PAIRS: Final = 1_000                         # per market
UNLIMITED_LOTS: Final = 10**30                   # genesis's "no max_open_interest"


@dataclass(frozen=True)
class Fill:
    """The worst-case fill of one market: ``pairs`` long/short pairs of ``lots_per_side`` lots in
    total (``headroom_lots``) at ``oracle_price``, opened with ``collateral_usdc`` in all."""

    market: str
    rule: str                    # "cap" or "leverage"
    headroom_lots: int
    pairs: int
    oracle_price: int
    notional_usdc: int           # one side
    collateral_usdc: int         # both sides


@dataclass(frozen=True)
class ProposalApplication:
    state: State
    changes: tuple[tuple[str, Any, Any, str], ...]   # (name, old, applied value, risk class)
    risk_class: str
    fills: tuple[Fill, ...] = field(default=())
    actions: tuple[Any, ...] = ()

    def document(self) -> dict[str, Any]:
        """JSON-ready (ints, strings, lists) summary for the report."""
        return {"actions": [canonical_action(a) for a in self.actions], "risk_class": self.risk_class,
                "changes": [[name, _plain(old), _plain(new), risk] for name, old, new, risk in self.changes],
                "worst_case_fills": [
                    {"market": f.market, "rule": f.rule, "headroom_lots": f.headroom_lots, "pairs": f.pairs,
                     "oracle_price": f.oracle_price, "notional_usdc": f.notional_usdc,
                     "collateral_usdc": f.collateral_usdc} for f in self.fills]}


def apply_proposal(state: State, proposal_or_actions: Proposal | str | Sequence[Any]) -> State:
    """The state after the proposal and its worst-case fill (module docstring)."""
    return plan_proposal(state, proposal_or_actions).state


def plan_proposal(state: State, proposal_or_actions: Proposal | str | Sequence[Any], *,
                  worst_case_fill: bool = True) -> ProposalApplication:
    """``apply_proposal`` with the record of what was applied and filled (``worst_case_fill=False``:
    the changes alone, as the testnet replay of ``stress.testnet`` applies them)."""
    actions, source = _actions(state, proposal_or_actions)
    after = state_from_document(state_to_document(state))
    before_tiers = {ticker: after.tiers[m.tier_id].initial_margin_ppm for ticker, m in after.markets.items()}
    before_caps = {ticker: m.max_open_interest_lots for ticker, m in after.markets.items()}
    # the class the chain gives it (at execution: with every other pending proposal applied, issue 16)
    changes, risk_class = classify.classify_proposal(after, actions, exclude=source.ref)
    first_steps = {str(rollout.resolve_param(after, a)[0]): a.steps for a in actions if isinstance(a, StartRollout)}
    events: list[dict] = []
    applied = []
    for change in changes:
        if isinstance(change, governance.PlannedRollout):   # its first step
            name = str(change.path)
            change = governance.Change(change.path, change.start, rollout.compute_path_value(
                after, change.path, change.start, change.target, change.risk, 1, first_steps[name]), change.risk)
        governance.apply_effect(after, change, source, events)
        applied.append((change.name, change.old_record, change.new_record, change.risk))
    after.params_epoch += 1
    after.touch(("global",))
    riskier = {name for name, _, _, risk in applied if risk in (governance.RISK_INCREASING, governance.CRITICAL)}
    fills = []
    counter = sum(1 for owner, _ in after.subaccounts if owner.startswith(SYNTHETIC_PREFIX))
    for ticker, market in (after.markets.items() if worst_case_fill else ()):
        tier_touched = any(n.startswith(f"liquidity_tiers.{market.tier_id}.") for n in riskier)
        if not (tier_touched or f"markets.{ticker}.tier_id" in riskier
                or f"markets.{ticker}.max_open_interest_lots" in riskier):
            continue
        fill = _fill_headroom(after, ticker, before_tiers[ticker], before_caps[ticker], counter)
        if fill is not None:
            fills.append(fill)
            counter += 2 * fill.pairs
    commit_state_hash(after)
    return ProposalApplication(after, tuple(applied), risk_class, tuple(fills), tuple(actions))


def _actions(state: State, proposal_or_actions: Proposal | str | Sequence[Any]) -> tuple[tuple, ParamSource]:
    if isinstance(proposal_or_actions, str):
        proposal_or_actions = governance.get_proposal(state, proposal_or_actions)
    if isinstance(proposal_or_actions, Proposal):
        p = proposal_or_actions
        return tuple(p.actions), ParamSource("proposal", p.proposal_id, p.number)
    actions = tuple(decode_action(a, i) if isinstance(a, dict) else a for i, a in enumerate(proposal_or_actions))
    return actions, ParamSource("proposal", "stress-test")


def _fill_headroom(state: State, ticker: str, old_imf_ppm: int, old_cap: int, counter: int) -> Fill | None:
    market = state.markets[ticker]
    new_imf = state.tiers[market.tier_id].initial_margin_ppm
    cap, oi = market.max_open_interest_lots, market.open_interest
    if cap < UNLIMITED_LOTS:
        rule, headroom = "cap", max(0, cap - oi)
    elif new_imf < old_imf_ppm:
        rule, headroom = "leverage", -(-oi * old_imf_ppm // new_imf) - oi
    else:
        return None
    if headroom <= 0:
        return None
    price = market.oracle_price
    lot_value = max(1, notional(1, price, size_decimals=market.size_decimals, price_decimals=market.price_decimals))
    per_side = max(1, -(-PAIR_NOTIONAL_USDC // lot_value), -(-headroom // MAX_PAIRS))
    sizes = [per_side] * (headroom // per_side) + ([headroom % per_side] if headroom % per_side else [])
    mode, isolated = (ISOLATED, ticker) if market.isolated_only else (CROSS, None)
    subs = []
    for lots in sizes:
        for sign in (1, -1):
            owner = SYNTHETIC_PREFIX + f"{counter:039x}"
            counter += 1
            cost = notional(sign * lots, price, size_decimals=market.size_decimals,
                            price_decimals=market.price_decimals)
            sub = Subaccount(owner, 0, -cost, mode, isolated)
            sub.positions[ticker] = Position(sign * lots, market.funding_index, cost)
            state.subaccounts[(owner, 0)] = sub
            market.holders[(owner, 0)] = None
            subs.append(sub)
    market.open_interest += headroom
    state.touch(market.key)
    collateral = 0
    for sub in subs:  # TNC = IMR at the new margins and the final open interest
        net_collateral, initial, _ = get_subaccount_risk(state, sub)
        sub.balance += initial - net_collateral
        collateral += initial
        state.total_deposits += sub.balance
        state.touch(sub.key)
    value = notional(headroom, price, size_decimals=market.size_decimals, price_decimals=market.price_decimals)
    return Fill(ticker, rule, headroom, len(sizes), price, value, collateral)


def _plain(value: Any) -> Any:
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)
