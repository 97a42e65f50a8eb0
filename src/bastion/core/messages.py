"""Typed messages: the only input of the state machine besides the block time.

A message is a frozen dataclass; ``decode_message`` turns the JSON form of scenario files and of
the API (``{"type": "place_order", ...}``) into one, checking field names and JSON types. Decimal
quantities stay decimal strings here: their grid depends on the market, so the handler converts
them (``bastion.core.units``) as the first step of its validation.
"""
from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, fields
from typing import Any, Final

from bastion.core.errors import ProtocolError
from bastion.core.timefmt import parse_iso_ms
from bastion.core.units import MAX_INTEGER_DIGITS, check_decimal_text

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")  # fullmatch: "$" would also match before a final "\n"


def normalize_address(value: object, *, field: str) -> str:
    """An Ethereum address as lowercase hex (``invalid_address`` otherwise)."""
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise ProtocolError("invalid_address", f"{field} is not a 0x-prefixed 20-byte hex address: {value!r}",
                            field=field)
    return value.lower()


class _Checked:
    """Base of every message and action: building one checks every field (``check_message``), so a
    typed message that exists is within the bounds, however it was made (the decoder, a scenario
    runner, ``dataclasses.replace``); the state transition needs no second pass over the fields."""

    __slots__ = ()

    def __post_init__(self) -> None:
        check_message(self)


@dataclass(frozen=True, slots=True)
class Deposit(_Checked):
    """Bridge operator credits ``amount`` USDC to ``owner``'s subaccount (creating it if new)."""
    owner: str
    subaccount: int
    amount: str


@dataclass(frozen=True, slots=True)
class Withdraw(_Checked):
    """Take ``amount`` USDC out of the sender's ``subaccount`` (to the bridge)."""
    subaccount: int
    amount: str


@dataclass(frozen=True, slots=True)
class Transfer(_Checked):
    """Move USDC from one of the sender's subaccounts to any subaccount of any owner."""
    subaccount: int
    to_owner: str
    to_subaccount: int
    amount: str


@dataclass(frozen=True, slots=True)
class PlaceOrder(_Checked):
    """A limit or market order, or a conditional one (stop / take-profit with ``trigger_price``), of
    ``size`` on ``market`` from the sender's ``subaccount``; ``client_id`` names it among its open orders.
    An agent key sends it for ``owner``'s subaccount (``bastion.core.agents``, permission ``trade``)."""
    subaccount: int
    market: str
    side: str
    size: str
    price: str
    client_id: int
    order_type: str = "limit"
    time_in_force: str = "gtc"
    good_til: str | None = None
    trigger_price: str | None = None
    reduce_only: bool = False
    self_trade: str = "cancel_resting"
    owner: str | None = None               # the subaccount's owner when an agent sends it (bastion.core.agents)


@dataclass(frozen=True, slots=True)
class CancelOrder(_Checked):
    """Cancel one open order of the sender's ``subaccount``, by exactly one of ``client_id`` and ``order_id``
    (an agent key: of ``owner``'s subaccount, permission ``cancel``)."""
    subaccount: int
    client_id: int | None = None
    order_id: int | None = None
    owner: str | None = None               # the subaccount's owner when an agent sends it (bastion.core.agents)


@dataclass(frozen=True, slots=True)
class CancelAll(_Checked):
    """Cancel every open order of the sender's ``subaccount`` (of one ``market``, or all); an agent key:
    of ``owner``'s subaccount (permission ``cancel``)."""
    subaccount: int
    market: str | None = None
    owner: str | None = None               # the subaccount's owner when an agent sends it (bastion.core.agents)


@dataclass(frozen=True, slots=True)
class SetLeverage(_Checked):
    """Choose a higher initial margin fraction (lower leverage) for one market, never below the tier's."""
    subaccount: int
    market: str
    initial_margin: str


@dataclass(frozen=True, slots=True)
class SetMarginMode(_Checked):
    """Make a flat subaccount with no open orders ``cross`` or ``isolated`` to one ``market``."""
    subaccount: int
    mode: str
    market: str | None = None


@dataclass(frozen=True, slots=True)
class OracleUpdate(_Checked):
    """An oracle operator's price submission: ``{ticker: decimal price}``."""
    prices: dict[str, str]


@dataclass(frozen=True, slots=True)
class TransferBgov(_Checked):
    """Move ``amount`` BGOV (6 decimals) from the sender to ``to``; voting power follows the delegates."""
    to: str
    amount: str


@dataclass(frozen=True, slots=True)
class Delegate(_Checked):
    """Delegate the sender's whole BGOV balance to ``delegatee`` (itself to vote; the zero address: nobody)."""
    delegatee: str


# ------------------------------------------------------------------------------- governance actions
# Typed data inside ``submit_proposal.actions`` (``bastion.core.governance`` validates and applies
# them). Omitted fields (None) are left unchanged; decimals are strings on the genesis grids.
@dataclass(frozen=True, slots=True)
class SetMarketParams(_Checked):
    """Change one market's tier, open-interest cap, fees, order sizes, status or oracle settings."""
    market: str
    liquidity_tier: int | None = None
    max_open_interest: str | None = None
    maker_fee: str | None = None
    taker_fee: str | None = None
    min_order_size: str | None = None
    status: str | None = None              # active | reduce_only | paused
    # the market's oracle configuration (DESIGN.md section 6; bastion.core.governance.actions)
    min_sources: int | None = None
    max_staleness_s: int | None = None
    max_source_deviation: str | None = None
    max_move_per_block: str | None = None
    max_order_size: str | None = None      # the largest order (anti-spam, bastion.core.orders)
    cross_margin_cap: str | None = None    # USDC of maintenance cross accounts may carry (core.cross_promotion)


@dataclass(frozen=True, slots=True)
class SetOrderLimits(_Checked):
    """The anti-spam order limits (genesis ``order_limits`` names and units, ``bastion.core.orders``):
    ``open_order_tiers`` replaces the whole list of ``{min_equity, max_open_orders}`` tiers."""
    open_order_tiers: list[Any] | None = None
    max_open_orders: int | None = None
    min_order_notional: str | None = None


@dataclass(frozen=True, slots=True)
class SetMakerRewardParams(_Checked):
    """The maker-reward parameters (genesis ``maker_rewards`` names and units,
    ``bastion.core.maker_rewards``): block counts as integers, the rest as decimal strings."""
    epoch_blocks: int | None = None
    sample_interval_blocks: int | None = None
    band: str | None = None
    min_rest_blocks: int | None = None
    pool_share: str | None = None
    max_share_per_maker: str | None = None
    volatility_slope: str | None = None
    max_volatility_weight: str | None = None


@dataclass(frozen=True, slots=True)
class SetLiquidityTier(_Checked):
    """Change a liquidity tier's initial margin, maintenance fraction or open-interest caps."""
    tier: int
    initial_margin: str | None = None
    maintenance_fraction: str | None = None
    oi_lower_cap: str | None = None
    oi_upper_cap: str | None = None


@dataclass(frozen=True, slots=True)
class SetFeeParams(_Checked):
    """Change the share of trading fees that goes to the insurance funds."""
    insurance_share: str


@dataclass(frozen=True, slots=True)
class SetLiquidationParams(_Checked):
    """Any field of ``LiquidationParams`` (genesis ``liquidation`` names and units)."""
    max_liquidation_fee: str | None = None
    max_insurance_loss_per_block: str | None = None
    withdrawal_pause_blocks: int | None = None
    bankruptcy_adjustment: str | None = None
    spread_to_maintenance: str | None = None
    min_position_notional: str | None = None
    max_position_portion: str | None = None
    max_notional_per_block: str | None = None
    backstop_max_notional: str | None = None
    backstop_max_fund_share: str | None = None
    backstop_unwind_portion: str | None = None
    backstop_after_blocks: int | None = None
    settlement_twap_window_s: int | None = None
    liquidation_grace_s: int | None = None
    max_liquidations_per_block: int | None = None
    max_deleveragings_per_block: int | None = None


@dataclass(frozen=True, slots=True)
class SetGovernanceParams(_Checked):
    """A partial genesis ``governance`` section, merged over the current parameters."""
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DelistMarket(_Checked):
    """Put ``market`` in final settlement: the liquidation engine settles it at the end of the block."""
    market: str


@dataclass(frozen=True, slots=True)
class StartRollout(_Checked):
    """Move one risk lever (``max_open_interest``, ``min_order_size`` or a rollable parameter's dotted
    name, e.g. ``liquidity_tiers.0.initial_margin_ppm``) to ``target`` (as its direct action writes it)
    in ``steps`` steps, at most one per ``interval_s`` of block time, each only while ``gates`` (issue 5's
    ``min_insurance_fund``, ``max_bad_debt``, ``max_liquidations`` and the contagion gates
    ``max_cross_share``, ``max_top_account_share``, ``max_oi_skew``, ``max_backstop_inventory``,
    ``max_trader_losses``) hold on ``market`` (``bastion.core.governance.rollout``)."""
    market: str
    param: str
    target: str
    steps: int
    interval_s: int
    gates: dict[str, Any]
    revert_on_breach: bool = False


@dataclass(frozen=True, slots=True)
class SetGuardian(_Checked):
    """Appoint or renew the guardian until ``expires`` (RFC 3339), or remove it (``address`` null)."""
    address: str | None
    expires: str | None = None


@dataclass(frozen=True, slots=True)
class SetCouncil(_Checked):
    """Replace the council: ``members`` (addresses, at least one) of whom ``threshold`` must sign."""
    members: list[str]
    threshold: int


@dataclass(frozen=True, slots=True)
class SetStewardBounds(_Checked):
    """Per parameter (dotted name), ``{max_change | max_change_abs, cooldown_s}`` or null to remove
    its bound; parameters not named keep theirs (``bastion.core.governance.council``)."""
    bounds: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ListMarket(_Checked):
    """List a new market on the default path (DESIGN.md section 9): isolated-only with its own
    (empty) insurance fund, a conservative tier, a small open-interest cap (``bastion.core.governance.actions``).
    Fields as a genesis market; ``oracle`` overrides the listing oracle defaults."""
    ticker: str
    size_decimals: int
    price_decimals: int
    oracle_price: str
    min_order_size: str
    max_open_interest: str
    liquidity_tier: int | None = None      # default: the tier named "isolated"
    maker_fee: str | None = None
    taker_fee: str | None = None
    oracle: dict[str, Any] | None = None   # min_sources, max_staleness_s, max_source_deviation, max_move_per_block


@dataclass(frozen=True, slots=True)
class SetListingParams(_Checked):
    """The bounds of the default listing path: minimum tier initial margin, maximum OI cap (USDC)."""
    min_initial_margin: str | None = None
    max_open_interest: str | None = None


@dataclass(frozen=True, slots=True)
class SetOracleOperators(_Checked):
    """Replace the set of oracle operators (addresses)."""
    operators: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TreasurySpend(_Checked):
    """Pay ``amount`` USDC from the protocol fee account (the treasury) to a subaccount."""
    to_owner: str
    to_subaccount: int
    amount: str


@dataclass(frozen=True, slots=True)
class InsuranceTransfer(_Checked):
    """Move ``amount`` USDC between insurance funds ("cross" or an isolated market's ticker), or
    from the treasury ("treasury") into one."""
    from_pool: str
    to_pool: str
    amount: str


@dataclass(frozen=True, slots=True)
class UpgradeIsolatedToCross(_Checked):
    """An isolated-only market joins the cross pool; its insurance fund merges into the cross fund."""
    market: str


@dataclass(frozen=True, slots=True)
class SetBotLimits(_Checked):
    """The bot tools' governed limits (genesis ``bot_limits`` names and units, ``bastion.core.bot_limits``):
    the dead-man's switch, TWAP orders and agent keys. Omitted fields stay as they are."""
    deadman_min_delay_s: int | None = None
    deadman_max_triggers_per_day: int | None = None
    deadman_max_owners_per_block: int | None = None
    deadman_max_orders_per_block: int | None = None
    twap_interval_s: int | None = None
    twap_min_duration_s: int | None = None
    twap_max_duration_s: int | None = None
    twap_max_per_subaccount: int | None = None
    twap_max_slices_per_block: int | None = None
    twap_default_slippage: str | None = None
    twap_max_slippage: str | None = None
    agent_max_per_owner: int | None = None
    agent_max_lifetime_days: int | None = None


@dataclass(frozen=True, slots=True)
class SetUiRequirements(_Checked):
    """Change what a frontend must show and enforce for one market (``bastion.core.governance.ui_rules``):
    the risk banner text, the maintenance share above which the preview suggests isolation (a ratio),
    the default and maximum leverage offered and the leverage above which an order needs a
    confirmation (decimal multiples of 1x; "0" = no requirement)."""
    market: str
    risk_banner: str | None = None
    isolation_threshold: str | None = None
    default_leverage: str | None = None
    max_leverage: str | None = None
    confirm_above_leverage: str | None = None


@dataclass(frozen=True, slots=True)
class SetInsuranceStakingParams(_Checked):
    """Insurance staking and replenishment (genesis ``insurance_staking`` names and units,
    ``bastion.core.staking``): unstake cooldown (ms), the stakers' share of fees, the loss mode,
    the smallest stake, each fund's target (share of open interest plus a floor) and the fee share
    while a fund is below it."""
    cooldown_ms: int | None = None
    staker_fee_share: str | None = None
    loss_mode: str | None = None
    min_stake: str | None = None
    target_oi_share: str | None = None
    target_floor: str | None = None
    replenish_share: str | None = None


@dataclass(frozen=True, slots=True)
class ResolveDispute(_Checked):
    """Decide a dispute by token vote (an appeal or an escalated dispute, ``bastion.core.disputes``):
    ``upheld`` and the ``award_usdc`` (USDC, at most the claim; "0" when rejected)."""
    dispute_id: int
    upheld: bool
    award_usdc: str


@dataclass(frozen=True, slots=True)
class OpenIncidentProgram(_Checked):
    """Compensate every liquidation, takeover, deleveraging and settlement of ``market`` recorded in
    blocks ``from_height``..``to_height`` against a reference price (``reference``: ``pre_block``,
    each block's previous oracle price; ``fixed`` with ``reference_price``; ``sources_median``, the
    median of the block's recorded submissions without ``exclude_sources``), pro rata within
    ``budget`` USDC from the market's insurance fund (``bastion.core.incidents``)."""
    market: str
    from_height: int
    to_height: int
    reference: str
    budget: str
    reference_price: str | None = None
    exclude_sources: list[Any] | None = None   # sources_median: the oracle operators that glitched


@dataclass(frozen=True, slots=True)
class SetDisputeParams(_Checked):
    """Change dispute parameters: a partial genesis ``disputes`` section (``window_s``, ``bond_floor``,
    ``max_award``, ``appeal_tier``, ...; ``bastion.core.governance.dispute_params``)."""
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ScheduleUpgrade(_Checked):
    """From block ``height`` on, nodes run only the software named ``name`` whose code hash is
    ``code_hash`` (64 lowercase hex); a node running other code stops before that block
    (``bastion.core.upgrades``). Replaces any upgrade scheduled before."""
    name: str
    height: int
    code_hash: str


@dataclass(frozen=True, slots=True)
class CancelUpgrade(_Checked):
    """Cancel the scheduled upgrade before its height (``bastion.core.upgrades``)."""


ACTION_TYPES: dict[str, type[Action]] = {
    "set_market_params": SetMarketParams,
    "set_liquidity_tier": SetLiquidityTier,
    "set_fee_params": SetFeeParams,
    "set_liquidation_params": SetLiquidationParams,
    "set_governance_params": SetGovernanceParams,
    "delist_market": DelistMarket,
    "start_rollout": StartRollout,
    "set_guardian": SetGuardian,
    "set_council": SetCouncil,
    "set_steward_bounds": SetStewardBounds,
    "list_market": ListMarket,
    "set_listing_params": SetListingParams,
    "set_oracle_operators": SetOracleOperators,
    "treasury_spend": TreasurySpend,
    "insurance_transfer": InsuranceTransfer,
    "upgrade_isolated_to_cross": UpgradeIsolatedToCross,
    "set_order_limits": SetOrderLimits,
    "set_bot_limits": SetBotLimits,
    "set_ui_requirements": SetUiRequirements,
    "set_insurance_staking_params": SetInsuranceStakingParams,
    "resolve_dispute": ResolveDispute,
    "open_incident_program": OpenIncidentProgram,
    "set_dispute_params": SetDisputeParams,
    "set_maker_reward_params": SetMakerRewardParams,
    "schedule_upgrade": ScheduleUpgrade,
    "cancel_upgrade": CancelUpgrade,
}
ACTION_NAMES: dict[type, str] = {cls: name for name, cls in ACTION_TYPES.items()}


def action_requires_proposal(kind: str) -> ProtocolError:
    """The refusal of a governance action sent as a transaction: actions only run inside an executed
    proposal, whoever sends them (the guardian included)."""
    return ProtocolError("action_requires_proposal",
                         f"{kind} is a governance action: only an executed proposal applies it", field="type")


# Fields added to an action after proposals using it could exist: they enter the proposal id only when
# set, so that the id of a proposal that does not use them stays what it was (``canonical_action``).
LATER_FIELDS: dict[type, tuple[str, ...]] = {
    SetMarketParams: ("min_sources", "max_staleness_s", "max_source_deviation", "max_move_per_block",
                      "max_order_size", "cross_margin_cap"),
    SetLiquidationParams: ("bankruptcy_adjustment", "spread_to_maintenance", "min_position_notional",
                           "max_position_portion", "max_notional_per_block", "backstop_max_notional",
                           "backstop_max_fund_share", "backstop_unwind_portion", "backstop_after_blocks",
                           "settlement_twap_window_s", "liquidation_grace_s",
                           "max_liquidations_per_block", "max_deleveragings_per_block"),
}

Action = (SetMarketParams | SetLiquidityTier | SetFeeParams | SetLiquidationParams | SetGovernanceParams | DelistMarket
          | StartRollout | SetGuardian | SetCouncil | SetStewardBounds | ListMarket | SetListingParams
          | SetOracleOperators | TreasurySpend | InsuranceTransfer | UpgradeIsolatedToCross | SetOrderLimits
          | SetBotLimits | SetUiRequirements | SetInsuranceStakingParams
          | ResolveDispute | OpenIncidentProgram | SetDisputeParams | SetMakerRewardParams
          | ScheduleUpgrade | CancelUpgrade)


# ------------------------------------------------------------------------------- governance messages
@dataclass(frozen=True, slots=True)
class SubmitProposal(_Checked):
    """Propose ``actions`` (typed, see above), escrowing ``deposit`` BGOV from the sender."""
    title: str
    description: str
    actions: tuple[Action, ...]
    deposit: str
    # telemetry snapshot hashes cited as evidence (issue 20, bastion.telemetry): at most MAX_EVIDENCE
    # distinct 64-hex SHA-256 digests; in the proposal id when given
    evidence: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Vote(_Checked):
    """Cast the sender's votes (as of the proposal's snapshot) on an active proposal."""
    proposal_id: str
    option: str                            # yes | no | abstain | veto
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Queue(_Checked):
    """Queue a succeeded proposal: its timelock starts."""
    proposal_id: str


@dataclass(frozen=True, slots=True)
class Execute(_Checked):
    """Execute a queued proposal whose timelock has passed: its actions apply atomically."""
    proposal_id: str


@dataclass(frozen=True, slots=True)
class CancelProposal(_Checked):
    """Cancel a proposal while its status allows it (who may: ``proposal_guards.check_cancel``)."""
    proposal_id: str


# ------------------------------------------------------------------------------- guardian messages
@dataclass(frozen=True, slots=True)
class GuardianPause(_Checked):
    """Pause ``scope`` (market | reduce_only | trading | withdrawals; ``market`` for the first two)
    for ``duration_s`` seconds of block time (``bastion.core.guardian``)."""
    scope: str
    duration_s: int
    market: str | None = None


@dataclass(frozen=True, slots=True)
class GuardianUnpause(_Checked):
    """Lift the guardian's own pause, only within the unpause grace after its start."""
    scope: str
    market: str | None = None


@dataclass(frozen=True, slots=True)
class GuardianVeto(_Checked):
    """Veto a succeeded or queued proposal; the reason is required."""
    proposal_id: str
    reason: str
@dataclass(frozen=True, slots=True)
class CouncilAttest(_Checked):
    """A council member's stress verdict on a queued proposal: ``pass`` or ``fail`` for the report
    whose SHA-256 is ``report_hash`` (64 lowercase hex)."""
    proposal_id: str
    report_hash: str
    verdict: str


@dataclass(frozen=True, slots=True)
class RegisterStressReport(_Checked):
    """A council member puts a stress report on chain before anyone attests it: its SHA-256, its
    verdict (``pass`` | ``fail``) and headline figures (decimal strings: the depletion probability
    as a ratio, the losses and the insurance funds' total in USDC)."""
    report_hash: str
    verdict: str
    depletion_probability: str
    var99_loss: str
    es99_loss: str
    insurance_funds_total: str


@dataclass(frozen=True, slots=True)
class StewardChange(_Checked):
    """A council member's approval to set ``param`` (dotted name) to ``value`` (decimal string as in
    the governance action that sets it) without a vote; applies at the k-th approval."""
    param: str
    value: str


@dataclass(frozen=True, slots=True)
class AuthorizeAgent(_Checked):
    """Let the key ``agent`` sign trading messages for the sender (``bastion.core.agents``): on the
    ``subaccounts`` listed (null: all of them), with ``permissions`` (``trade``, ``cancel``), until the
    block time ``expires_ms``; ``label`` names it for people. Authorising an agent again replaces its grant."""
    agent: str
    subaccounts: list[int] | None
    permissions: list[str]
    expires_ms: int
    label: str | None = None


@dataclass(frozen=True, slots=True)
class RevokeAgent(_Checked):
    """Withdraw the sender's grant to ``agent`` at once."""
    agent: str


@dataclass(frozen=True, slots=True)
class ModifyOrder(_Checked):
    """Change the ``size`` (the new open size) and/or ``price`` of one resting order of the sender's
    ``subaccount`` on ``market``, named by exactly one of ``order_id`` and ``client_id`` (cancel-replace:
    only a smaller size at the same price keeps the order's place in the queue). An agent key sends it
    for ``owner``'s subaccount (``bastion.core.agents``, permission ``trade``)."""
    subaccount: int
    market: str
    order_id: int | None = None
    client_id: int | None = None
    size: str | None = None
    price: str | None = None
    owner: str | None = None               # the subaccount's owner when an agent sends it (bastion.core.agents)


@dataclass(frozen=True, slots=True)
class ScheduleCancel(_Checked):
    """The sender's dead-man's switch: at the first block at or after ``time_ms`` (block time, ms)
    every open order of every subaccount of the sender is cancelled; None clears the schedule."""
    time_ms: int | None = None


@dataclass(frozen=True, slots=True)
class PlaceTwap(_Checked):
    """Buy or sell ``size`` on ``market`` from the sender's ``subaccount`` in slices over ``duration_ms``,
    each slice an IOC order no worse than the oracle price moved by ``max_slippage`` (a fraction). An
    agent key sends it for ``owner``'s subaccount (``bastion.core.agents``, permission ``trade``)."""
    subaccount: int
    market: str
    side: str
    size: str
    duration_ms: int
    reduce_only: bool = False
    max_slippage: str | None = None
    owner: str | None = None               # the subaccount's owner when an agent sends it (bastion.core.agents)


@dataclass(frozen=True, slots=True)
class CancelTwap(_Checked):
    """Stop one of the sender's live TWAP orders (what it traded stays traded)."""
    twap_id: int


@dataclass(frozen=True, slots=True)
class StakeInsurance(_Checked):
    """Stake ``amount`` USDC from the sender's ``subaccount`` into the insurance fund ``fund`` ("cross"
    or an isolated market's ticker) for shares (``bastion.core.staking``)."""
    fund: str
    amount: str
    subaccount: int = 0


@dataclass(frozen=True, slots=True)
class RequestUnstake(_Checked):
    """Start the cooldown of ``shares`` (6 decimals) of the sender's stake in ``fund``; the payout
    goes to the sender's ``subaccount``."""
    fund: str
    shares: str
    subaccount: int = 0


@dataclass(frozen=True, slots=True)
class CompleteUnstake(_Checked):
    """Pay the sender's cooled-down unstake ``request`` at the current share price."""
    request: int


# ------------------------------------------------------------------------------- disputes (issue 18)
@dataclass(frozen=True, slots=True)
class OpenDispute(_Checked):
    """The affected owner contests ``target`` (a recorded liquidation, backstop takeover, deleveraging
    or settlement, ``bastion.core.disputes``): ``claim_kind`` (oracle_glitch | engine_deviation |
    other), ``claim_usdc`` (USDC, at most the target's loss), a ``statement``, and ``bond`` (USDC, at
    least the governed bond) taken from the target's subaccount."""
    target: int
    claim_kind: str
    claim_usdc: str
    bond: str
    statement: str = ""


@dataclass(frozen=True, slots=True)
class RuleDispute(_Checked):
    """A council member's ruling on an open dispute; k members agreeing on (upheld, award) decide it."""
    dispute_id: int
    upheld: bool
    award_usdc: str


@dataclass(frozen=True, slots=True)
class AppealDispute(_Checked):
    """Appeal a council ruling to a token vote for the outcome (upheld, award), posting ``bond`` USDC
    (at least the governed multiple of the dispute's bond) from the sender's subaccount 0."""
    dispute_id: int
    upheld: bool
    award_usdc: str
    bond: str


@dataclass(frozen=True, slots=True)
class ClaimIncident(_Checked):
    """Claim the sender's compensation from an incident program (every subaccount of the sender)."""
    program_id: int


@dataclass(frozen=True, slots=True)
class PostCounterReport(_Checked):
    """Anyone contests a queued proposal's stress gate during its timelock with a failing report
    (``bastion.core.governance.counter_reports``): its SHA-256, verdict (``fail``), headline figures
    (as in ``register_stress_report``) and the SHA-256 of the scenario set it ran; the governed bond
    is taken from the sender's ``subaccount``."""
    proposal_id: str
    subaccount: int
    report_hash: str
    scenario_set_hash: str
    verdict: str
    depletion_probability: str
    var99_loss: str
    es99_loss: str
    insurance_funds_total: str


@dataclass(frozen=True, slots=True)
class JudgeCounterReport(_Checked):
    """A council member's judgement of counter-report ``counter_id``: did it reproduce byte for byte
    (``bastion stress --verify``)? The k-th matching judgement decides."""
    counter_id: int
    reproduced: bool


@dataclass(frozen=True, slots=True)
class AnswerCounterReport(_Checked):
    """A council member declares that the registered report ``report_hash``, newer than
    counter-report ``counter_id``, covered the counter's scenario set."""
    counter_id: int
    report_hash: str


MESSAGE_TYPES: dict[str, type[Message]] = {
    "deposit": Deposit,
    "withdraw": Withdraw,
    "transfer": Transfer,
    "place_order": PlaceOrder,
    "cancel_order": CancelOrder,
    "cancel_all": CancelAll,
    "set_leverage": SetLeverage,
    "set_margin_mode": SetMarginMode,
    "oracle_update": OracleUpdate,
    "transfer_bgov": TransferBgov,
    "delegate": Delegate,
    "submit_proposal": SubmitProposal,
    "vote": Vote,
    "queue": Queue,
    "execute": Execute,
    "cancel_proposal": CancelProposal,
    "guardian_pause": GuardianPause,
    "guardian_unpause": GuardianUnpause,
    "guardian_veto": GuardianVeto,
    "council_attest": CouncilAttest,
    "register_stress_report": RegisterStressReport,
    "steward_change": StewardChange,
    "authorize_agent": AuthorizeAgent,
    "revoke_agent": RevokeAgent,
    "modify_order": ModifyOrder,
    "schedule_cancel": ScheduleCancel,
    "place_twap": PlaceTwap,
    "cancel_twap": CancelTwap,
    "stake_insurance": StakeInsurance,
    "request_unstake": RequestUnstake,
    "complete_unstake": CompleteUnstake,
    "open_dispute": OpenDispute,
    "rule_dispute": RuleDispute,
    "appeal_dispute": AppealDispute,
    "claim_incident": ClaimIncident,
    "post_counter_report": PostCounterReport,
    "judge_counter_report": JudgeCounterReport,
    "answer_counter_report": AnswerCounterReport,
}

Message = (Deposit | Withdraw | Transfer | PlaceOrder | CancelOrder | CancelAll | SetLeverage | SetMarginMode
           | OracleUpdate | TransferBgov | Delegate | SubmitProposal | Vote | Queue | Execute | CancelProposal
           | GuardianPause | GuardianUnpause | GuardianVeto | CouncilAttest | StewardChange
           | RegisterStressReport | AuthorizeAgent | RevokeAgent | ModifyOrder | ScheduleCancel | PlaceTwap
           | CancelTwap | StakeInsurance | RequestUnstake | CompleteUnstake
           | OpenDispute | RuleDispute | AppealDispute | ClaimIncident
           | PostCounterReport | JudgeCounterReport | AnswerCounterReport)

_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "str": (str,), "bool": (bool,), "int | None": (int, type(None)),
    "str | None": (str, type(None)), "dict[str, str]": (dict,), "dict[str, Any]": (dict,),
    "tuple[str, ...]": (list, tuple), "tuple[Action, ...]": (list, tuple), "list[str]": (list, tuple),
    "dict[str, Any] | None": (dict, type(None)),
    "list[Any] | None": (list, type(None)),
    "list[int] | None": (list, type(None)),
    "list[str] | None": (list, type(None)),
}
MAX_ACTIONS = 16

# ------------------------------------------------------------------------------- bounds of every field
# Every field of every message and action is bounded here, by ``check_message``, which runs when a
# message is built (``_Checked``): at intake (``decode_message``, which the node's ``check_tx``, the
# log replay and scenario files use) and for a message built any other way, so no handler ever sees
# an unbounded field. The handlers then parse with the same functions (``units.parse_decimal``
# calls ``check_decimal_text`` again, addresses go through ``normalize_address``) and apply the
# finer, state-dependent rules (a subaccount number is 0..127, a price is on the market's grid, ...).
MAX_INT: Final = 2**53 - 1          # every integer field: |value| <= 2^53 - 1 (exact in JavaScript, and
                                    # still inside int64 after a conversion from seconds to milliseconds)
MAX_TEXT_CHARS: Final = 128         # identifiers, tickers, enums, proposal ids, hashes, parameter names
MAX_TITLE_CHARS: Final = 200
MAX_DESCRIPTION_CHARS: Final = 20_000
MAX_REASON_CHARS: Final = 1_000
MAX_LABEL_CHARS: Final = 64         # an agent's label (authorize_agent)
MAX_LIST_ITEMS: Final = 64          # members, operators, oracle prices per update
MAX_NESTED_ITEMS: Final = 256       # values inside an object field (params, gates, bounds, oracle)
MAX_NESTED_DEPTH: Final = 4
MAX_EVIDENCE: Final = 8             # telemetry snapshots one proposal may cite
MAX_RISK_BANNER_CHARS: Final = 280  # a market's risk banner (set_ui_requirements)
_HASH = re.compile(r"[0-9a-f]{64}")
# per text field with its own limit: (maximum characters, code); the handlers use the same constants
TEXT_LIMITS: Final[dict[str, tuple[int, str]]] = {
    "title": (MAX_TITLE_CHARS, "invalid_title"),
    "description": (MAX_DESCRIPTION_CHARS, "description_too_long"),
    "reason": (MAX_REASON_CHARS, "reason_too_long"),
    "label": (MAX_LABEL_CHARS, "label_too_long"),
    "risk_banner": (MAX_RISK_BANNER_CHARS, "risk_banner_too_long"),
    "statement": (MAX_REASON_CHARS, "statement_too_long"),
}
# fields whose text is a decimal string (``bastion.core.units.check_decimal_text``), an address, a time
DECIMAL_FIELDS: Final = frozenset({
    "amount", "size", "price", "trigger_price", "initial_margin", "deposit", "max_open_interest", "maker_fee",
    "taker_fee", "min_order_size", "max_source_deviation", "max_move_per_block", "maintenance_fraction",
    "oi_lower_cap", "oi_upper_cap", "insurance_share", "max_liquidation_fee", "max_insurance_loss_per_block",
    "bankruptcy_adjustment", "spread_to_maintenance", "min_position_notional", "max_position_portion",
    "max_notional_per_block", "target", "oracle_price", "min_initial_margin", "value", "max_order_size",
    "min_order_notional", "max_slippage", "isolation_threshold", "default_leverage", "max_leverage",
    "confirm_above_leverage", "shares", "staker_fee_share", "min_stake", "target_oi_share",
    "target_floor", "replenish_share", "claim_usdc", "award_usdc", "bond", "budget", "reference_price",
})
ADDRESS_FIELDS: Final = frozenset({"owner", "to_owner", "to", "delegatee", "address", "agent"})
TIME_FIELDS: Final = frozenset({"good_til", "expires"})


def check_text(value: str, *, field: str, limit: int = MAX_TEXT_CHARS, code: str = "text_too_long") -> None:
    """A string of at most ``limit`` characters that UTF-8 can encode (no lone surrogates, which JSON
    can carry as ``\\ud800`` but no hash or signature can take)."""
    if len(value) > limit:
        raise ProtocolError(code, f"{field} has {len(value)} characters, at most {limit} are allowed", field=field)
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ProtocolError("invalid_text", f"{field} is not valid Unicode text (lone surrogate)",
                                field=field) from None


def check_int(value: int, *, field: str) -> None:
    """Refuse (``int_out_of_range``) an integer beyond +-(2^53 - 1), the range exact in JavaScript."""
    if not -MAX_INT <= value <= MAX_INT:
        raise ProtocolError("int_out_of_range", f"{field} must be an integer of magnitude at most 2^53 - 1",
                            field=field)


def check_nested(value: Any, *, field: str) -> None:
    """A JSON value inside an object or list field: at most ``MAX_NESTED_ITEMS`` values in all,
    ``MAX_NESTED_DEPTH`` levels, strings (and keys) as ``check_text``, integers as ``check_int``, no
    floats (messages carry decimals as strings); the handler then reads the keys it knows."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    count = 0
    while pending:
        item, depth = pending.pop()
        count += 1
        if count > MAX_NESTED_ITEMS or depth > MAX_NESTED_DEPTH:
            raise ProtocolError("value_too_large", f"{field} has more than {MAX_NESTED_ITEMS} values or "
                                f"{MAX_NESTED_DEPTH} levels", field=field)
        if isinstance(item, str):
            check_text(item, field=field)
        elif isinstance(item, bool) or item is None:
            pass
        elif isinstance(item, int):
            check_int(item, field=field)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ProtocolError("invalid_field", f"{field} has a key that is not a string", field=field)
                check_text(key, field=field)
                pending.append((child, depth + 1))
        elif isinstance(item, (list, tuple)):
            pending.extend((child, depth + 1) for child in item)
        else:
            raise ProtocolError("invalid_field", f"{field} holds a {type(item).__name__}: only strings, integers, "
                                "booleans, null, lists and objects", field=field)


def check_field(name: str, value: Any, *, field: str) -> None:
    """The bounds of one field's value (its JSON type already checked), by the field's name."""
    if isinstance(value, str):
        if name in DECIMAL_FIELDS:
            check_decimal_text(value, field=field)
        elif name in ADDRESS_FIELDS:
            normalize_address(value, field=field)
        elif name in TIME_FIELDS:
            parse_iso_ms(value, field=field)
        else:
            limit, code = TEXT_LIMITS.get(name, (MAX_TEXT_CHARS, "text_too_long"))
            check_text(value, field=field, limit=limit, code=code)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        check_int(value, field=field)
    elif name == "prices":            # oracle_update: ticker -> decimal string
        if not value or len(value) > MAX_LIST_ITEMS:
            raise ProtocolError("invalid_field", f"{field} must map 1 to {MAX_LIST_ITEMS} tickers to decimal "
                                "strings", field=field)
        for ticker, price in value.items():
            if not isinstance(ticker, str) or not isinstance(price, str):
                raise ProtocolError("invalid_field", "oracle_update.prices must map tickers to decimal strings",
                                    field=field)
            check_text(ticker, field=field)
            check_decimal_text(price, field=f"{field}.{ticker[:MAX_TEXT_CHARS]}")
    elif name in ("members", "operators"):
        if len(value) > MAX_LIST_ITEMS:
            raise ProtocolError("too_many_items", f"{field} has more than {MAX_LIST_ITEMS} addresses", field=field)
        for index, address in enumerate(value):
            normalize_address(address, field=f"{field}[{index}]")
    elif name == "evidence":          # submit_proposal: distinct SHA-256 digests of telemetry snapshots
        if len(value) > MAX_EVIDENCE:
            raise ProtocolError("too_many_items", f"{field} cites at most {MAX_EVIDENCE} snapshots", field=field)
        for index, digest in enumerate(value):
            if not isinstance(digest, str) or not _HASH.fullmatch(digest):
                raise ProtocolError("invalid_evidence", f"{field}[{index}] is not a 64-character lowercase hex "
                                    "SHA-256 digest", field=f"{field}[{index}]")
        if len(set(value)) != len(value):
            raise ProtocolError("invalid_evidence", f"{field} cites a snapshot twice", field=field)
    elif name == "actions":           # each action is checked by check_message
        if len(value) > MAX_ACTIONS:
            raise ProtocolError("too_many_actions", f"a proposal has at most {MAX_ACTIONS} actions", field=field)
    else:
        check_nested(value, field=field)


def check_message(msg: Any, prefix: str = "") -> None:
    """Every field of a typed message or action of its JSON type and within its bounds (see above);
    a proposal's actions too. Raises ``ProtocolError``; the same function runs at intake and in the
    state transition, so a handler only ever sees fields of the types its dataclass declares.

    The common cases (a short ASCII text, an integer, a whole number as a decimal string) are
    checked inline; everything else goes through ``check_field``, which decides the same way."""
    for name, allowed, kind, limit in _check_specs(type(msg)):
        value = getattr(msg, name)
        if type(value) not in allowed:  # exact JSON types: a bool is not an int here
            raise ProtocolError("invalid_field", f"{prefix}{name} has the wrong type: {type(value).__name__}",
                                field=prefix + name)
        if value is None or kind == _BOOL:
            continue
        if kind == _INT:
            if -MAX_INT <= value <= MAX_INT:
                continue
        elif kind == _TEXT:
            if len(value) <= limit and value.isascii():
                continue
        elif kind == _DECIMAL:  # a short unsigned decimal: what check_decimal_text accepts, without the regex
            if (len(value) <= MAX_INTEGER_DIGITS and value.isascii() and value.replace(".", "", 1).isdigit()
                    and value[0] != "." and value[-1] != "."):
                continue
        check_field(name, value, field=prefix + name)
    if type(msg) is SubmitProposal:  # each action checked itself when it was built
        for index, action in enumerate(msg.actions):
            if type(action) not in ACTION_NAMES:
                raise ProtocolError("invalid_action", "an action must be a typed governance action",
                                    field=f"actions[{index}]")


_BOOL, _INT, _TEXT, _DECIMAL, _OTHER = "bool", "int", "text", "decimal", "other"
# per class: (name, allowed JSON types, kind for the inline checks, text limit)
_CheckSpec = tuple[str, tuple[type, ...], str, int]
_CHECK_SPECS: dict[type, tuple[_CheckSpec, ...]] = {}


def _check_specs(cls: type) -> tuple[_CheckSpec, ...]:
    specs = _CHECK_SPECS.get(cls)
    if specs is None:
        table: list[_CheckSpec] = []
        for name, allowed, _, _ in _field_specs(cls)[1]:
            limit = TEXT_LIMITS.get(name, (MAX_TEXT_CHARS, ""))[0]
            if allowed == (bool,):
                kind = _BOOL
            elif int in allowed:
                kind = _INT
            elif str in allowed and name in DECIMAL_FIELDS:
                kind = _DECIMAL
            elif str in allowed and name not in ADDRESS_FIELDS and name not in TIME_FIELDS:
                kind = _TEXT
            else:
                kind = _OTHER
            table.append((name, allowed, kind, limit))
        specs = _CHECK_SPECS[cls] = tuple(table)
    return specs


def decode_message(data: Any) -> Message:
    """Build a typed message from its JSON object, rejecting unknown types, fields and JSON types."""
    if not isinstance(data, dict):
        raise ProtocolError("invalid_message", "a message must be a JSON object", field="msg")
    kind = data.get("type")
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        if isinstance(kind, str) and kind in ACTION_TYPES:
            raise action_requires_proposal(kind)
        raise ProtocolError("unknown_message_type", f"unknown message type {kind!r}", field="type")
    values = _decode_fields(str(kind), cls, data, prefix="")
    if cls is SubmitProposal:
        actions = values["actions"]
        if not actions:
            raise ProtocolError("no_actions", "a proposal needs at least one action", field="actions")
        if len(actions) > MAX_ACTIONS:
            raise ProtocolError("too_many_actions", f"a proposal has at most {MAX_ACTIONS} actions", field="actions")
        values["actions"] = tuple(decode_action(action, index) for index, action in enumerate(actions))
    return cls(**values)  # checks every field (_Checked)


def decode_action(data: Any, index: int) -> Action:
    """One governance action from its JSON object (``{"type": "set_market_params", ...}``)."""
    prefix = f"actions[{index}]."
    if not isinstance(data, dict):
        raise ProtocolError("invalid_action", "an action must be a JSON object", field=prefix[:-1])
    kind = data.get("type")
    cls = ACTION_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError("unknown_action_type", f"unknown action type {kind!r}", field=prefix + "type")
    values = _decode_fields(str(kind), cls, data, prefix=prefix)
    if cls is SetOracleOperators:
        values["operators"] = tuple(values["operators"])   # immutable, like a proposal's actions
    try:
        return cls(**values)  # checks every field (_Checked)
    except ProtocolError as error:  # name the field inside the proposal
        raise ProtocolError(error.code, error.message, field=prefix + str(error.fields.get("field"))) from None


def canonical_action(action: Action) -> dict[str, Any]:
    """An action as the proposal id hashes it: its ``type`` and every field (None when omitted),
    except the ``LATER_FIELDS`` that are not set."""
    later = LATER_FIELDS.get(type(action), ())
    values = {f.name: getattr(action, f.name) for f in fields(action)}
    return {"type": ACTION_NAMES[type(action)],
            **{name: value for name, value in values.items() if value is not None or name not in later}}


# per message or action class: its field names (with "type") and, per field, the JSON types allowed,
# whether a bool is refused (bool is an int subclass in Python) and whether the field is required
_FieldSpec = tuple[str, tuple[type, ...], bool, bool]
_FIELD_SPECS: dict[type, tuple[frozenset[str], tuple[_FieldSpec, ...]]] = {}


def _field_specs(cls: type) -> tuple[frozenset[str], tuple[_FieldSpec, ...]]:
    """``cls``'s decoding table, built once from its dataclass fields (their annotations' text:
    postponed annotations)."""
    specs = _FIELD_SPECS.get(cls)
    if specs is None:
        table: list[_FieldSpec] = []
        for f in fields(cls):
            allowed = _FIELD_TYPES[str(f.type)]
            table.append((f.name, allowed, bool not in allowed, f.default is MISSING))
        specs = _FIELD_SPECS[cls] = (frozenset(name for name, *_ in table) | {"type"}, tuple(table))
    return specs


def _decode_fields(kind: str, cls: type, data: dict[str, Any], *, prefix: str) -> dict[str, Any]:
    names, table = _field_specs(cls)
    if not names.issuperset(data):
        extra = sorted(set(data) - names)
        raise ProtocolError("unknown_field", f"{kind} has no field {extra[0]!r}", field=prefix + extra[0])
    values: dict[str, Any] = {}
    for name, allowed, _, required in table:
        if name not in data:
            if required:
                raise ProtocolError("missing_field", f"{kind} needs field {name!r}", field=prefix + name)
            continue
        value = data[name]
        # the JSON types of the other fields are checked when the message is built (check_message);
        # these two are converted before that
        if name in ("actions", "operators") and not isinstance(value, allowed):
            raise ProtocolError("invalid_field", f"{kind}.{name} must be a list", field=prefix + name)
        values[name] = value
    return values
