"""The bottom floor of governance: what a governance action does to the state, as typed data.

A validated action yields *effects* (``Effect``), each with the risk class it carries:

* ``Change``: one governed parameter, named by a typed ``ParamPath`` (its dotted form, e.g.
  ``markets.BTC-USD.max_open_interest_lots``, is what the parameter history, the ``param_changed``
  event, the API and ``steward_change`` carry). ``change_param`` is THE setter: it sets the value
  (``apply_change``), appends it to ``state.param_history`` and emits ``param_changed``.
* ``Listing``, ``Payment``, ``FundTransfer``, ``FundMerge``: operations, not parameters (a new
  market, a treasury spend, an insurance transfer, the merge of an upgraded market's fund). They are
  applied with their own events by ``bastion.core.governance.actions.apply_operation`` and leave no
  parameter history.
* ``PlannedRollout``: a ``start_rollout``'s parameter move, started as a rollout at execution
  (``bastion.core.governance.rollout``) rather than applied.

Every effect shows itself as ``name``, ``old_record``, ``new_record`` (the dotted or operation name
and the values as recorded: council members comma-joined, a steward bound as its text) and
``risk``: the form the web page and the conflict checks read. The risk comparisons
(``compare_risk``, ``strictest``, ``compare_tier_risk``) live here too. This module imports nothing
else of governance.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from bastion.core.errors import InvariantViolation
from bastion.core import events as ev
from bastion.core.events import Events, emit
from bastion.core.params import RISK_CLASSES, UiRequirements
from bastion.core.dispute_state import DisputeResolution, IncidentOpening
from bastion.core.state import Council, Market, ParamHistoryEntry, ParamSource, State, StewardBound


RISK_REDUCING, NEUTRAL, RISK_INCREASING, CRITICAL = RISK_CLASSES
NO_CAP: Final = 1 << 256
TREASURY_SPEND: Final = "treasury_spend"
INSURANCE_TRANSFER: Final = "insurance_transfer"
LIST_MARKET: Final = "list_market"
MERGE_INSURANCE_FUND: Final = "merge_insurance_fund"
PLANNED_PREFIX: Final = "rollout:"


# --------------------------------------------------------------------------------------- risk comparison
def compare_risk(old: int, new: int, *, riskier_when_higher: bool) -> str:
    """``neutral`` when equal, else ``risk_increasing`` or ``risk_reducing`` by the riskier direction."""
    if new == old:
        return NEUTRAL
    return RISK_INCREASING if (new > old) == riskier_when_higher else RISK_REDUCING


def strictest(classes: list[str]) -> str:
    """The strictest class of some changes. ``neutral`` means "no change", so it counts only when
    nothing changes: raising one margin and leaving another as it is reduces risk."""
    changed = [c for c in classes if c != NEUTRAL]
    return max(changed, key=RISK_CLASSES.index) if changed else NEUTRAL


def _caps(tier: Any) -> tuple[int, int]:
    """Open-interest caps as compared: an upper cap of 0 means margins never scale up, as if both
    caps were infinite."""
    if tier.oi_upper_cap_usdc == 0:
        return NO_CAP, NO_CAP
    return tier.oi_lower_cap_usdc, tier.oi_upper_cap_usdc


def compare_tier_risk(old: Any, new: Any) -> str:
    """Moving to a tier (or changing one) with a lower margin or a higher open-interest cap (margins
    start rising later) is riskier. The maintenance margin compared is the product IMF x fraction
    (section 4), not the fraction alone: 5% x 0.6 = 3% -> 10% x 0.5 = 5% raises both margins."""
    (old_lower, old_upper), (new_lower, new_upper) = _caps(old), _caps(new)
    return strictest([
        compare_risk(old.initial_margin_ppm, new.initial_margin_ppm, riskier_when_higher=False),
        compare_risk(old.initial_margin_ppm * old.maintenance_fraction_ppm,
                     new.initial_margin_ppm * new.maintenance_fraction_ppm, riskier_when_higher=False),
        compare_risk(old_lower, new_lower, riskier_when_higher=True),
        compare_risk(old_upper, new_upper, riskier_when_higher=True),
    ])


# --------------------------------------------------------------------------------------- parameter paths
class ParamGroup(StrEnum):
    """Where a governed parameter lives. The value is the dotted prefix of its name."""

    MARKET = "markets"                      # markets.<ticker>.<attr>
    MARKET_ORACLE = "markets.oracle"        # markets.<ticker>.oracle.<attr>
    TIER = "liquidity_tiers"                # liquidity_tiers.<tier id>.<attr>
    FEES = "fees"
    LIQUIDATION = "liquidation"
    LISTING = "listing"
    ORDER_LIMITS = "order_limits"
    ORACLE_OPERATORS = "oracle_operators"   # the whole operator list, no attribute
    GOVERNANCE = "governance"
    GOVERNANCE_TIER = "governance.tiers"    # governance.tiers.<risk class>.<attr>
    GUARDIAN = "guardian"
    COUNCIL = "council"                     # council.members | council.threshold
    STEWARD_BOUND = "council.steward_bounds"  # council.steward_bounds.<parameter name>, no attribute
    BOT_LIMITS = "bot_limits"               # bot_limits.<attr> (bastion.core.bot_limits)
    UI_REQUIREMENTS = "ui_requirements"     # ui_requirements.<ticker>.<attr> (issue 20, governance.ui_rules)
    INSURANCE_STAKING = "insurance_staking"  # bastion.core.staking
    DISPUTES = "disputes"                   # disputes.<attr> (params.DisputeParams, issue 18)
    MAKER_REWARDS = "maker_rewards"         # maker_rewards.<attr> (bastion.core.maker_rewards)
    UPGRADE = "upgrade"                     # upgrade.name | upgrade.height | upgrade.code_hash (core.upgrades)


_KEYED: Final = frozenset({ParamGroup.MARKET, ParamGroup.MARKET_ORACLE, ParamGroup.TIER, ParamGroup.GOVERNANCE_TIER,
                           ParamGroup.UI_REQUIREMENTS})


@dataclass(frozen=True, slots=True)
class ParamPath:
    """A governed parameter: its ``group``, the ``key`` inside the group (a ticker, a tier id, a
    risk class, a steward parameter's name; "" for the global groups) and the attribute."""

    group: ParamGroup
    key: str = ""
    attr: str = ""

    def __str__(self) -> str:
        match self.group:
            case ParamGroup.MARKET | ParamGroup.TIER | ParamGroup.UI_REQUIREMENTS:
                return f"{self.group}.{self.key}.{self.attr}"
            case ParamGroup.MARKET_ORACLE:
                return f"markets.{self.key}.oracle.{self.attr}"
            case ParamGroup.GOVERNANCE_TIER:
                return f"governance.tiers.{self.key}.{self.attr}"
            case ParamGroup.STEWARD_BOUND:
                return f"{self.group}.{self.key}"
            case ParamGroup.ORACLE_OPERATORS:
                return str(self.group)
        return f"{self.group}.{self.attr}"

    @classmethod
    def parse(cls, name: str) -> ParamPath:
        """The path of a dotted name (``InvariantViolation`` for a name no group has: callers that
        take names from outside check them first, e.g. ``council_rules.get_steward_parameter``)."""
        group, _, rest = name.partition(".")
        if group == "markets" and rest.count(".") >= 2 and rest.rsplit(".", 2)[-2] == "oracle":
            ticker, _, attr = rest.rsplit(".", 2)
            return cls(ParamGroup.MARKET_ORACLE, ticker, attr)
        if group in ("markets", "liquidity_tiers", "ui_requirements") and "." in rest:
            key, attr = rest.rsplit(".", 1)
            return cls(ParamGroup(group), key, attr)
        if name.startswith("governance.tiers.") and rest.count(".") == 2:
            _, tier_name, attr = rest.split(".")
            return cls(ParamGroup.GOVERNANCE_TIER, tier_name, attr)
        if name.startswith("council.steward_bounds."):
            return cls(ParamGroup.STEWARD_BOUND, name[len("council.steward_bounds."):])
        if name == "oracle_operators":
            return cls(ParamGroup.ORACLE_OPERATORS)
        if rest and group in ("fees", "liquidation", "listing", "order_limits", "governance", "guardian", "council",
                              "bot_limits", "insurance_staking", "disputes", "maker_rewards", "upgrade"):
            return cls(ParamGroup(group), "", rest)
        raise InvariantViolation(f"unknown parameter {name!r}")


# --------------------------------------------------------------------------------------- effects
def format_bound_text(bound: StewardBound | None) -> str:
    """A bound as recorded in the parameter history of ``council.steward_bounds.<name>`` ("" = no bound)."""
    if bound is None:
        return ""
    return f"kind={bound.kind} max_change={bound.max_change} cooldown_ms={bound.cooldown_ms}"


def record_value(path: ParamPath, value: Any) -> Any:
    """A parameter value as the parameter history and ``param_changed`` record it: council members
    comma-joined, a steward bound as its text, anything else as it is."""
    if path.group == ParamGroup.COUNCIL and path.attr == "members":
        return ",".join(value)
    if path.group == ParamGroup.STEWARD_BOUND:
        return format_bound_text(value)
    return value


@dataclass(frozen=True, slots=True)
class Change:
    """One governed parameter moving from ``old`` to ``new`` (typed values: council members a tuple,
    a steward bound a ``StewardBound`` or None), with its risk class."""

    path: ParamPath
    old: Any
    new: Any
    risk: str

    @property
    def name(self) -> str:
        """The dotted or operation name (parameter history, conflict checks, the web diff)."""
        return str(self.path)

    @property
    def old_record(self) -> Any:
        """The old value as recorded and shown."""
        return record_value(self.path, self.old)

    @property
    def new_record(self) -> Any:
        """The new value as recorded and shown."""
        return record_value(self.path, self.new)


@dataclass(frozen=True, slots=True)
class Listing:
    """A validated new market (``list_market``)."""

    market: Market

    @property
    def risk(self) -> str:
        """The risk class of the operation."""
        return RISK_INCREASING

    @property
    def name(self) -> str:
        """The dotted or operation name (parameter history, conflict checks, the web diff)."""
        return f"{LIST_MARKET}.{self.market.ticker}"

    @property
    def old_record(self) -> None:
        """The old value as recorded and shown."""
        return None

    @property
    def new_record(self) -> Market:
        """The new value as recorded and shown."""
        return self.market


@dataclass(frozen=True, slots=True)
class Payment:
    """A treasury spend, validated: ``amount`` micro-USDC to subaccount ``(owner, number)``;
    ``treasury`` is the treasury when validated (shown as the old value)."""

    owner: str
    number: int
    amount: int
    treasury: int = field(default=0, repr=False, compare=False)

    @property
    def risk(self) -> str:
        """The risk class of the operation."""
        return CRITICAL

    @property
    def name(self) -> str:
        """The dotted or operation name (parameter history, conflict checks, the web diff)."""
        return TREASURY_SPEND

    @property
    def old_record(self) -> int:
        """The old value as recorded and shown."""
        return self.treasury

    @property
    def new_record(self) -> Payment:
        """The new value as recorded and shown."""
        return self


@dataclass(frozen=True, slots=True)
class FundTransfer:
    """An insurance transfer, validated: ``from_pool`` is a fund or the treasury, ``to_pool`` a fund."""

    from_pool: str
    to_pool: str
    amount: int

    @property
    def risk(self) -> str:
        """The risk class of the operation."""
        return CRITICAL

    @property
    def name(self) -> str:
        """The dotted or operation name (parameter history, conflict checks, the web diff)."""
        return INSURANCE_TRANSFER

    @property
    def old_record(self) -> None:
        """The old value as recorded and shown."""
        return None

    @property
    def new_record(self) -> FundTransfer:
        """The new value as recorded and shown."""
        return self


@dataclass(frozen=True, slots=True)
class FundMerge:
    """The insurance fund (whatever it holds when applied) of ``pool`` joins the cross fund;
    ``fund`` is what it held when validated (shown as the old value)."""

    pool: str
    fund: int = field(default=0, repr=False, compare=False)

    @property
    def risk(self) -> str:
        """The risk class of the operation."""
        return RISK_INCREASING

    @property
    def name(self) -> str:
        """The dotted or operation name (parameter history, conflict checks, the web diff)."""
        return f"{MERGE_INSURANCE_FUND}.{self.pool}"

    @property
    def old_record(self) -> int:
        """The old value as recorded and shown."""
        return self.fund

    @property
    def new_record(self) -> FundMerge:
        """The new value as recorded and shown."""
        return self


@dataclass(frozen=True, slots=True)
class PlannedRollout:
    """A ``start_rollout``'s move of ``path`` from ``start`` to ``target``: execution starts a
    rollout instead of applying it."""

    path: ParamPath
    start: int
    target: int
    risk: str

    @property
    def name(self) -> str:
        """The dotted or operation name (parameter history, conflict checks, the web diff)."""
        return f"{PLANNED_PREFIX}{self.path}"

    @property
    def old_record(self) -> int:
        """The old value as recorded and shown."""
        return self.start

    @property
    def new_record(self) -> int:
        """The new value as recorded and shown."""
        return self.target


Operation = Listing | Payment | FundTransfer | FundMerge | DisputeResolution | IncidentOpening
Effect = Change | Operation | PlannedRollout


# --------------------------------------------------------------------------------------- the setter
def set_oracle_operators(state: State, operators: list[str]) -> None:
    """Replace the operator set; submissions of removed operators no longer count toward any price."""
    state.oracle_operators = tuple(operators)
    for market in state.markets.values():
        removed = [operator for operator in market.submissions if operator not in state.oracle_operators]
        for operator in removed:
            del market.submissions[operator]
        if removed:
            state.touch(market.key)
    state.touch(("global",))


def apply_change(state: State, path: ParamPath, value: Any) -> None:
    """Set one governed parameter and touch its leaf."""
    target: Any
    key: tuple[str | int, ...]
    match path.group:
        case ParamGroup.MARKET_ORACLE:
            target, key = state.markets[path.key].oracle_params, state.markets[path.key].key
        case ParamGroup.MARKET:
            target, key = state.markets[path.key], state.markets[path.key].key
        case ParamGroup.TIER:
            target, key = state.tiers[int(path.key)], ("global",)
        case ParamGroup.FEES | ParamGroup.LIQUIDATION:
            target, key = getattr(state, path.group), ("global",)
        case ParamGroup.LISTING:
            target, key = state.listing, ("listing",)
        case ParamGroup.ORDER_LIMITS:
            target, key = state.order_limits, ("order_limits",)
        case ParamGroup.BOT_LIMITS:
            target, key = state.bot_limits, ("bot_limits",)
        case ParamGroup.INSURANCE_STAKING:
            target, key = state.insurance_staking, ("insurance_staking",)
        case ParamGroup.MAKER_REWARDS:
            target, key = state.maker_reward_params, ("maker_reward_params",)
        case ParamGroup.ORACLE_OPERATORS:
            set_oracle_operators(state, value)
            return
        case ParamGroup.GOVERNANCE_TIER:
            target, key = state.governance.tiers[path.key], ("governance",)
        case ParamGroup.GOVERNANCE:
            target, key = state.governance, ("governance",)
        case ParamGroup.GUARDIAN:
            target, key = state.guardian, ("guardian",)
        case ParamGroup.UPGRADE:
            target, key = state.upgrade, ("upgrade",)
        case ParamGroup.COUNCIL if path.attr == "members":
            state.council = Council(tuple(value), state.council.threshold)
            state.touch(("council",))
            return
        case ParamGroup.COUNCIL if path.attr == "threshold":
            state.council = Council(state.council.members, value)
            state.touch(("council",))
            return
        case ParamGroup.UI_REQUIREMENTS:
            target, key = state.ui_requirements.setdefault(path.key, UiRequirements()), ("ui_requirements", path.key)
        case ParamGroup.DISPUTES:
            target, key = state.disputes.params, ("disputes",)
        case ParamGroup.STEWARD_BOUND:
            if value is not None:
                state.steward_bounds[path.key] = value
            else:
                state.steward_bounds.pop(path.key, None)
            state.touch(("steward_bound", path.key))
            return
        case _:
            raise InvariantViolation(f"unknown parameter {path}")
    setattr(target, path.attr, value)
    state.touch(key)


def change_param(state: State, path: ParamPath, old: Any, new: Any, source: ParamSource, events: Events) -> None:
    """THE way a governed parameter changes (proposal execution, council steward change, rollout
    step, ...): set it, append it to ``state.param_history`` and emit ``param_changed``. A change
    to the same value is applied (harmless) but neither recorded nor announced. The caller bumps
    ``state.params_epoch`` once per batch of changes, and halts a superseded rollout of the same
    parameter first (``rollout.halt_superseded_rollouts``; proposal execution and steward changes do)."""
    apply_change(state, path, new)
    if old == new:
        return
    name, old, new = str(path), record_value(path, old), record_value(path, new)
    entry = ParamHistoryEntry(name=name, old=old, new=new, height=state.height, source=source)
    state.param_history.append(entry)
    state.touch(("param_history", len(state.param_history) - 1))
    # the indexer's shape: ``proposal_id`` (None for changes without a proposal), and the source
    by_proposal = source.kind == "proposal"
    emit(events, ev.ParamChanged, name=name, value=new, old=old, height=state.height, source=source.kind,
         proposal_id=source.ref if by_proposal else None, proposal_number=source.number if by_proposal else None,
         ref=None if by_proposal else source.ref)
