"""The exchange state: plain objects, mutated only by ``bastion.core.transition``.

Iteration that matters is always in a defined order: markets by ticker (the dict is built sorted),
subaccounts and orders in creation order, oracle operators sorted. Every mutation of a hashed object
calls ``state.touch(key)`` so that the block's state hash (``bastion.core.hashing``) is updated
incrementally; the keys, one kind per piece of state (``("sub", owner, number)``,
``("order", ticker, order_id)``, ``("global",)``, ...), are declared in ``bastion.core.leaves``
(``LEAF_KINDS``, with their values and snapshot fields; the table is in docs/protocol.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from bastion.core.book import Book
from bastion.core.dispute_state import DisputeBook
from bastion.core.enums import MARKET_STATUSES as MARKET_STATUSES
from bastion.core.enums import MarginMode, MarketStatus
from bastion.core.params import (
    BotLimitParams,
    FeeParams,
    FundingParams,
    GovernanceParams,
    GovernanceTier,
    InsuranceStakingParams,
    LiquidationParams,
    ListingParams,
    LiquidityTier,
    MakerRewardParams,
    OracleParams,
    OrderLimitParams,
    UiRequirements,
)

# short names for the members most code uses (bastion.core.enums defines the vocabularies), typed
# str as the fields they are compared with and stored in
CROSS: Final[str] = MarginMode.CROSS
ISOLATED: Final[str] = MarginMode.ISOLATED
CROSS_POOL: Final = "cross"                # the cross-margin collateral pool's name (a pool, not a mode)

ACTIVE: Final[str] = MarketStatus.ACTIVE
REDUCE_ONLY: Final[str] = MarketStatus.REDUCE_ONLY
PAUSED: Final[str] = MarketStatus.PAUSED

SUBACCOUNT_NUMBERS: Final = range(128)
MAX_ORDER_LOTS: Final = 2**63 - 1          # a market's max_order_lots when genesis sets none (sizes stay int64)


class Position:
    """A signed size in lots, the market funding index at which it last settled, and its cost.

    ``cost`` is the signed micro-USDC paid to open the lots still held (negative for a short: USDC
    received), so ``notional - cost`` is the unrealised PnL and ``cost / size`` the entry price. A
    reduction removes cost in proportion (truncated toward zero), so a closed position has cost 0.
    ``risk`` memoises the position's valuation (``bastion.core.margin``) and the ``risk_*`` slots
    the inputs it was computed from; they are derived data, not part of the state hash.
    """

    __slots__ = ("size", "funding_index", "cost", "risk", "risk_size", "risk_oracle_price", "risk_open_interest",
                 "risk_imf_override", "risk_params_epoch", "risk_cost")

    def __init__(self, size: int, funding_index: int, cost: int = 0) -> None:
        self.size = size
        self.funding_index = funding_index
        self.cost = cost
        self.risk: tuple[int, int, int] = (0, 0, 0)
        self.risk_size = 0
        self.risk_oracle_price = 0
        self.risk_open_interest = 0
        self.risk_imf_override: int | None = None
        self.risk_params_epoch = -1  # never a real epoch: nothing memoised yet
        self.risk_cost = 0


class Subaccount:
    """One of an owner's 128 subaccounts: a USDC balance, positions, and its open orders."""

    __slots__ = ("owner", "number", "balance", "positions", "mode", "isolated_market",
                 "imf_overrides", "orders", "client_ids", "conditional_orders", "key")

    def __init__(self, owner: str, number: int, balance: int = 0, mode: str = CROSS,
                 isolated_market: str | None = None) -> None:
        self.owner = owner
        self.number = number
        self.balance = balance
        self.positions: dict[str, Position] = {}
        self.mode = mode
        self.isolated_market = isolated_market
        self.imf_overrides: dict[str, int] = {}
        self.orders: dict[int, str] = {}        # order_id -> ticker, in placement order
        self.client_ids: dict[int, int] = {}    # client_id -> order_id of the open (or untriggered) order
        self.conditional_orders: dict[int, str] = {}  # order_id -> ticker of untriggered conditional orders
        self.key = ("sub", owner, number)


@dataclass(frozen=True, slots=True)
class OrderTerms:
    """What a ``place_order`` asks for, validated and on its market's grid: the order that a fresh
    placement submits at once and that a conditional order submits when it triggers."""

    owner: str
    number: int
    market: str
    side: int                              # book.BUY | book.SELL
    order_type: str                        # OrderType.LIMIT | OrderType.MARKET (the underlying type)
    lots: int
    ticks: int                             # limit price, or a market order's worst price
    time_in_force: str                     # a TimeInForce
    good_til_ms: int | None
    reduce_only: bool
    self_trade: str                        # a SelfTrade mode
    client_id: int


@dataclass(frozen=True, slots=True)
class ConditionalOrder:
    """An untriggered stop/take-profit order: it holds its order id and client id from placement and
    enters the book as ``terms`` when the oracle price crosses ``trigger_ticks`` (``core.conditional``)."""

    order_id: int
    order_type: str                        # one of CONDITIONAL_ORDER_TYPES (stop_market, stop_limit, take_profit_...)
    trigger_ticks: int
    placed_ms: int
    terms: OrderTerms


@dataclass(slots=True)
class Market:
    """A perpetual market: governed parameters plus its live oracle, funding and book state."""

    ticker: str
    size_decimals: int
    price_decimals: int
    tier_id: int
    min_order_lots: int
    max_open_interest_lots: int
    maker_fee_ppm: int
    taker_fee_ppm: int
    isolated_only: bool
    status: str                            # a MarketStatus
    oracle_params: OracleParams
    oracle_price: int                      # ticks
    max_order_lots: int = MAX_ORDER_LOTS   # the largest order size (governed, ``set_market_params.max_order_size``)
    # while isolated_only: the maintenance requirement cross subaccounts may carry here (core.cross_promotion)
    cross_margin_cap_usdc: int = 0
    stale: bool = False
    submissions: dict[str, tuple[int, int]] = field(default_factory=dict)  # operator -> (ticks, ms)
    open_interest: int = 0                 # lots, sum of long sizes
    funding_index: int = 0                 # ppm micro-USDC per lot
    premium_minute: int = -1               # index of the minute whose block premiums are collected
    block_premiums: list[int] = field(default_factory=list)
    minute_samples: list[int] = field(default_factory=list)
    last_funding_hour: int = 0             # index of the hour of the last funding tick
    # the time-weighted price for final settlement (bastion.core.twap): sum of price x ms up to twap_ms,
    # (minute, cumulative) checkpoints covering the governed window, and the price fixed at delisting
    twap_cumulative: int = 0
    twap_ms: int = 0
    twap_checkpoints: list[tuple[int, int]] = field(default_factory=list)
    settlement_price: int | None = None
    book: Book = field(default_factory=Book)
    # derived indexes for the liquidation scan (rebuilt from the positions, not hashed)
    holders: dict[tuple[str, int], None] = field(default_factory=dict)  # subaccounts with a position here
    scanned: tuple[int, int, int] | None = None  # (oracle price, funding index, params epoch) at the last scan

    @property
    def key(self) -> tuple[str, str]:
        """The market's state leaf key (``bastion.core.hashing``)."""
        return ("market", self.ticker)

    @property
    def pool(self) -> str:
        """The collateral pool (and insurance fund) this market belongs to."""
        return self.ticker if self.isolated_only else CROSS_POOL


@dataclass(slots=True)
class Proposal:
    """A governance proposal (``bastion.core.governance``): typed actions, tally and lifecycle."""

    proposal_id: str                       # SHA-256 hex over chain id and content
    number: int                            # 1, 2, ... in submission order (the indexer's integer proposal id)
    proposer: str
    title: str
    description: str
    actions: tuple[Any, ...]               # of bastion.core.messages action dataclasses
    deposit_bgov: int                      # escrowed until returned or burned
    risk_class: str                        # computed at submission, never declared
    submitted_height: int
    snapshot_height: int                   # submission height + voting delay
    deadline_height: int                   # last block that accepts votes (a late quorum moves it once)
    rules: GovernanceTier                  # the risk class's rules, copied at submission
    status: str = "pending"
    yes: int = 0
    no: int = 0
    abstain: int = 0
    veto: int = 0
    quorum_height: int | None = None       # block in which the quorum was first reached
    extended: bool = False                 # the late-quorum extension was used (once)
    swing_extensions: int = 0              # outcome-flip extensions used (at most max_swing_extensions)
    fee_bgov: int = 0                      # the non-refundable fee burned at submission
    queued_ms: int | None = None
    closed_height: int | None = None       # block that ended it (tally, cancel, execution, expiry)
    deposit_state: str = "escrowed"        # escrowed | returned | burned
    ballots: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # voter -> (option, weight, reason)
    evidence: tuple[str, ...] = ()         # telemetry snapshot hashes cited (issue 20, bastion.telemetry)


@dataclass(frozen=True, slots=True)
class ParamSource:
    """What changed a governed parameter: ``kind`` is ``proposal`` (``ref`` the proposal id, ``number``
    its number), ``council`` (a steward change), ``rollout`` (``ref`` the rollout id) or ``guardian``."""

    kind: str
    ref: str
    number: int | None = None


@dataclass(frozen=True, slots=True)
class ParamHistoryEntry:
    """One change of a governed parameter (``bastion.core.governance.change_param``)."""

    name: str                              # dotted path, e.g. markets.BTC-USD.tier_id
    old: int | str | list[Any] | None      # a list for oracle_operators (addresses, sorted) and open_order_tiers
    new: int | str | list[Any] | None
    height: int
    source: ParamSource


PauseKey = tuple[str, str | None]          # (scope, market ticker or None for trading and withdrawals)


@dataclass(slots=True)
class Guardian:
    """The guardian (``bastion.core.guardian``): an address set by governance with an expiry (ms of
    block time), or none. A term is identified by its expiry: ``pauses_used`` maps each pause key to
    the expiry of the term that last started it, so a key is spent for the rest of that term."""

    address: str | None = None
    expires_ms: int | None = None
    pauses_used: dict[PauseKey, int] = field(default_factory=dict)  # in first-use order


@dataclass(slots=True)
class Pause:
    """A guardian pause: in force while ``start_ms <= block time < end_ms``."""

    scope: str                             # market | reduce_only | trading | withdrawals
    market: str | None                     # the ticker for market and reduce_only, else None
    start_ms: int
    end_ms: int


@dataclass(slots=True)
class Rollout:
    """A staged rollout (``bastion.core.governance.rollout``): one market parameter moved from ``start`` to
    ``target`` in ``steps`` steps while its health gates hold. Values are in the parameter's unit
    (lots for ``max_open_interest`` and ``min_order_size``); a gate of None is not checked."""

    rollout_id: int                        # 1, 2, ... in creation order
    market: str
    param: str                             # the start_rollout name: max_open_interest | min_order_size
    start: int                             # the value when the rollout was created
    target: int
    steps: int
    interval_ms: int
    min_insurance_fund_usdc: int | None    # the pool's insurance fund at a step must be at least this
    max_bad_debt_usdc: int | None          # new bad debt in the pool since the previous step, at most
    max_liquidations: int | None           # liquidation events in the market since the previous step, at most
    revert_on_breach: bool
    proposal_id: str                       # the proposal that started it
    created_height: int
    next_step_ms: int                      # block time from which the next step may happen
    liquidations_mark: int                 # the market's liquidation count at the previous step (or start)
    bad_debt_mark: int                     # the pool's cumulative bad debt at the previous step (or start)
    step: int = 0                          # steps done
    status: str = "active"                 # active | completed | halted
    halt_reason: str | None = None         # a gate name, superseded or market_not_active
    reverted: bool = False
    ended_height: int | None = None
    # issue 20: any rollable parameter (``param`` is then its dotted name), contagion gates and measures
    contagion_gates: dict[str, int] = field(default_factory=dict)  # gate name -> limit (ppm, lots or micro-USDC)
    trader_losses_mark: int = 0            # the market's cumulative trader losses at the previous step (or start)
    measured: dict[str, int] = field(default_factory=dict)  # every gate's measure at the last evaluation
    start_is_safer: bool = True            # steps round toward the start (else toward the target): the safer side
    tiers: list[int] = field(default_factory=list)  # a tier move: the tier ids stepped through, start to target


class NonceRecord:
    """A sender's spent nonces (``bastion.core.nonces``): everything at or below ``floor``, and
    ``used`` (ascending, bounded) above it; ``last_ms`` the block time of its latest transaction."""

    __slots__ = ("floor", "last_ms", "used")

    def __init__(self, floor: int, last_ms: int, used: list[int] | None = None) -> None:
        self.floor = floor
        self.last_ms = last_ms
        self.used: list[int] = [] if used is None else used


@dataclass(slots=True)
class TwapOrder:
    """A live TWAP order (``bastion.core.twap_orders``): ``lots`` bought or sold by the protocol in
    ``slices`` IOC slices, the first at ``start_ms``, then one every ``bot_limits.twap_interval_ms`` (as
    governed when the slice runs), each limited to the oracle price moved by ``slippage_ppm`` against
    the trader."""

    twap_id: int                           # an order id, taken at placement
    owner: str
    number: int
    market: str
    side: int                              # book.BUY | book.SELL
    lots: int                              # the whole size
    reduce_only: bool
    slippage_ppm: int
    start_ms: int                          # block time of the placement (the first slice is due then)
    slices: int
    slices_done: int = 0
    filled: int = 0                        # lots traded so far
    next_slice_ms: int = 0                 # block time from which the next slice is due


@dataclass(slots=True)
class CancelSchedule:
    """An owner's dead-man's switch (``bastion.core.deadman``): ``time_ms`` the block time at which
    every open order of the owner is cancelled (None: no schedule), and how many times it fired on
    ``day`` (block time // one day), for the daily bound."""

    time_ms: int | None
    day: int
    triggers: int


@dataclass(frozen=True, slots=True)
class Council:
    """The council (``bastion.core.governance.council``): ``threshold`` (k) of its ``members`` (n, sorted
    addresses) must sign. Without members (a genesis without a council) k is 0 and nothing the
    council signs can exist."""

    members: tuple[str, ...] = ()
    threshold: int = 0


@dataclass(frozen=True, slots=True)
class Attestation:
    """A council member's latest stress attestation on a queued proposal (``council_attest``)."""

    report_hash: str                       # SHA-256 hex of the stress report
    verdict: str                           # pass | fail
    attested_ms: int                       # block time
    height: int


@dataclass(frozen=True, slots=True)
class StressReportRecord:
    """A stress report registered on chain (``register_stress_report``): its verdict and headline
    figures, before any council member may attest it."""

    verdict: str                           # pass | fail
    depletion_probability_ppm: int
    var99_loss_usdc: int
    es99_loss_usdc: int
    insurance_funds_total_usdc: int
    registered_by: str                     # the council member that registered it
    registered_ms: int                     # block time
    height: int


@dataclass(slots=True)
class CounterReport:
    """A bonded counter-report posted against a queued proposal's stress gate
    (``bastion.core.governance.counter_reports``): a failing report's hash, headline figures and
    declared scenario set, the poster's USDC bond, the council's judgement and its answer."""

    counter_id: int                        # 1, 2, ... in posting order
    proposal_id: str
    poster: str
    number: int                            # the poster's subaccount the bond came from (and returns to)
    report_hash: str                       # SHA-256 hex of the counter-report
    scenario_set_hash: str                 # SHA-256 hex of the scenario set it declares it ran
    depletion_probability_ppm: int
    var99_loss_usdc: int
    es99_loss_usdc: int
    insurance_funds_total_usdc: int
    bond_usdc: int
    posted_ms: int                         # block time
    height: int
    status: str = "open"                   # open | reproduced | rejected (the council's judgement)
    answer_hash: str = ""                  # a newer registered report a member declared covers it ("" none)
    judge_votes: dict[str, bool] = field(default_factory=dict)  # member -> reproduced?, latest vote
    decided_height: int | None = None


@dataclass(slots=True)
class ScheduledUpgrade:
    """The software upgrade governance scheduled (``bastion.core.upgrades``): from block ``height``
    on, a node runs only the code whose hash is ``code_hash``. ``height`` 0: none scheduled."""

    name: str = ""
    height: int = 0
    code_hash: str = ""


@dataclass(frozen=True, slots=True)
class StewardBound:
    """How far and how often the council may move one governed parameter without a vote."""

    kind: str                              # relative (max_change in ppm of the current value) | absolute
    max_change: int                        # ppm (relative) or the parameter's own integer unit (absolute)
    cooldown_ms: int


@dataclass(frozen=True, slots=True)
class StewardApproval:
    """A council member's latest ``steward_change`` approval of one parameter (value in its unit)."""

    value: int
    approved_ms: int
    height: int


@dataclass(frozen=True, slots=True)
class AgentGrant:
    """An owner's grant to an agent key (``bastion.core.agents``): what it may do, where, until when."""

    subaccounts: tuple[int, ...] | None    # ascending subaccount numbers; None: every subaccount
    permissions: tuple[str, ...]           # AgentPermission values, in AGENT_PERMISSIONS order
    expires_ms: int                        # block time from which the grant no longer works
    label: str | None
    authorized_ms: int                     # block time of the authorisation


@dataclass(slots=True)
class StakePool:
    """The staked part of one insurance fund (``bastion.core.staking``): of ``state.insurance_funds[pool]``,
    ``staked`` micro-USDC belong to the holders of ``shares`` (the rest is protocol-owned);
    ``replenishing`` while the fund is below its governed target; cumulative fees earned and losses
    borne by the stakers (for the staking page's APR and the stress report)."""

    staked: int = 0
    shares: int = 0                        # every share outstanding: free ones and those in unstake requests
    replenishing: bool = False
    fees_earned: int = 0
    losses_borne: int = 0


@dataclass(frozen=True, slots=True)
class UnstakeRequest:
    """A pending ``request_unstake``: ``shares`` of ``pool`` locked until ``available_ms``, then paid
    to the owner's ``subaccount`` at the share price of the ``complete_unstake`` block."""

    owner: str
    pool: str
    shares: int
    subaccount: int
    requested_ms: int
    available_ms: int


@dataclass(slots=True)
class MakerRewards:
    """The maker-reward pool and the running epoch (``bastion.core.maker_rewards``).

    ``scores`` maps ``(owner, number, ticker)`` to ``[weighted depth, two-sided samples]`` of the
    epoch: the sum over its samples of the maker's two-sided depth in micro-USDC times the sample's
    volatility weight (ppm, floored), and how many samples found it quoting both sides."""

    pool: int = 0                          # micro-USDC waiting for the next epoch end
    epoch: int = 0                         # the running epoch's number (the first is 0)
    epoch_start_height: int = 0            # the height the running epoch started after
    paid_total: int = 0                    # micro-USDC paid to makers since genesis
    rest_cutoff_height: int = -1           # the sample height ``rest_cutoff_ms`` is for (-1: none)
    rest_cutoff_ms: int = 0                # orders placed at or after this time have not rested long enough
    last_prices: dict[str, int] = field(default_factory=dict)  # ticker -> oracle ticks at its last sample
    samples: dict[str, int] = field(default_factory=dict)      # ticker -> samples in the running epoch
    scores: dict[tuple[str, int, str], list[int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MarketExposure:
    """One delegate's exposure in one touched market (micro-USDC notionals, signed lots)."""

    market: str
    effect: str                             # gains | loses | affected | mixed
    own_size: int                           # the delegate's own positions, summed over its subaccounts
    own_notional: int                       # |own position value| at the oracle price, summed per subaccount
    delegated_notional: int                 # the same for the accounts delegating to it
    delegators: int                         # how many of them hold a position here


@dataclass(frozen=True, slots=True)
class DelegateExposure:
    """A delegate's votes at the snapshot and its exposures, markets by ticker."""

    delegate: str
    votes: int
    directly_exposed: bool                  # own notional over all touched markets >= the threshold
    markets: tuple[MarketExposure, ...]


@dataclass(slots=True)
class State:
    """Everything the exchange knows; the state hash commits to all of it."""

    chain_id: str
    genesis_time_ms: int
    time_ms: int
    height: int
    bridge_operator: str
    oracle_operators: tuple[str, ...]
    tiers: dict[int, LiquidityTier]
    markets: dict[str, Market]
    funding: FundingParams
    fees: FeeParams
    liquidation: LiquidationParams
    insurance_funds: dict[str, int]
    subaccounts: dict[tuple[str, int], Subaccount] = field(default_factory=dict)
    bgov: dict[str, int] = field(default_factory=dict)    # address -> BGOV units (non-zero only; core.votes)
    bgov_delegates: dict[str, str] = field(default_factory=dict)  # delegator -> delegatee
    vote_checkpoints: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # delegatee -> (height, votes)
    delegated_supply_checkpoints: list[tuple[int, int]] = field(default_factory=list)  # (height, delegated BGOV)
    total_supply_checkpoints: list[tuple[int, int]] = field(default_factory=list)  # (height, total BGOV)
    fees_account: int = 0
    funding_account: int = 0
    total_deposits: int = 0
    total_withdrawals: int = 0
    seed_insurance: int = 0                # insurance funds given at genesis (not deposits)
    next_order_id: int = 1
    gtt_queue: list[tuple[int, int, str]] = field(default_factory=list)  # heap (good_til_ms, id, ticker)
    withdrawals_paused_until: dict[str, int] = field(default_factory=dict)  # pool -> last paused height
    bad_debt: dict[str, int] = field(default_factory=dict)  # pool -> micro-USDC socialised, cumulative
    liquidation_counts: dict[str, int] = field(default_factory=dict)  # ticker -> liquidation events, cumulative
    # ticker -> micro-USDC taken from traders by deleveraging and socialisation, cumulative (core.governance.rollout)
    trader_losses: dict[str, int] = field(default_factory=dict)
    conditional_orders: dict[int, ConditionalOrder] = field(default_factory=dict)  # untriggered, by order id
    governance: GovernanceParams = field(default_factory=GovernanceParams)
    listing: ListingParams = field(default_factory=ListingParams)  # the default listing path (core.actions)
    order_limits: OrderLimitParams = field(default_factory=OrderLimitParams)  # anti-spam (core.orders)
    proposals: dict[str, Proposal] = field(default_factory=dict)  # by id, in submission order
    param_history: list[ParamHistoryEntry] = field(default_factory=list)  # every change, oldest first
    rollouts: dict[int, Rollout] = field(default_factory=dict)  # by id, in creation order
    council: Council = field(default_factory=Council)
    attestations: dict[str, dict[str, Attestation]] = field(default_factory=dict)  # proposal id -> member -> latest
    stress_reports: dict[str, StressReportRecord] = field(default_factory=dict)  # report hash -> record, in order
    steward_bounds: dict[str, StewardBound] = field(default_factory=dict)  # parameter name -> bound
    steward_last_change_ms: dict[str, int] = field(default_factory=dict)  # parameter name -> last steward change
    steward_approvals: dict[str, dict[str, StewardApproval]] = field(default_factory=dict)  # name -> member -> latest
    params_epoch: int = 0    # bumped by every change of a governed parameter (invalidates derived caches)
    guardian: Guardian = field(default_factory=Guardian)
    pauses: dict[PauseKey, Pause] = field(default_factory=dict)  # guardian pauses, in start order
    liquidation_watch: dict[tuple[str, int], None] = field(default_factory=dict)  # derived: rescan next block
    # consecutive blocks in which a liquidatable subaccount's liquidation reduced nothing (core.liquidation)
    liquidation_stalls: dict[tuple[str, int], int] = field(default_factory=dict)
    nonces: dict[str, NonceRecord] = field(default_factory=dict)  # sender -> spent nonces (core.nonces)
    nonce_expiry: list[tuple[int, str]] = field(default_factory=list)  # derived heap (ms, sender) (core.nonces)
    # ticker -> block time until which book liquidations wait after a guardian pause (core.guardian)
    liquidation_grace_until: dict[str, int] = field(default_factory=dict)
    agents: dict[str, dict[str, AgentGrant]] = field(default_factory=dict)  # owner -> agent -> grant (core.agents)
    agent_owners: dict[str, dict[str, None]] = field(default_factory=dict)  # derived: agent -> owners naming it
    twap_orders: dict[int, TwapOrder] = field(default_factory=dict)  # live TWAPs by id (core.twap_orders)
    cancel_schedules: dict[str, CancelSchedule] = field(default_factory=dict)  # owner -> dead-man's switch
    cancel_queue: list[tuple[int, str]] = field(default_factory=list)  # derived heap (time_ms, owner) (core.deadman)
    bot_limits: BotLimitParams = field(default_factory=BotLimitParams)  # governed bot-tool bounds (core.bot_limits)
    # ticker -> the market's governed UI requirements (issue 20); a market without an entry has the defaults
    ui_requirements: dict[str, UiRequirements] = field(default_factory=dict)
    # insurance staking (core.staking): parameters, pools, free shares by (pool, owner), unstake requests
    insurance_staking: InsuranceStakingParams = field(default_factory=InsuranceStakingParams)
    stake_pools: dict[str, StakePool] = field(default_factory=dict)
    stakes: dict[tuple[str, str], int] = field(default_factory=dict)
    unstake_requests: dict[int, UnstakeRequest] = field(default_factory=dict)
    next_unstake_id: int = 1
    disputes: DisputeBook = field(default_factory=DisputeBook)  # disputes and incident programs (core.disputes)
    maker_reward_params: MakerRewardParams = field(default_factory=MakerRewardParams)  # governed (core.maker_rewards)
    maker_rewards: MakerRewards = field(default_factory=MakerRewards)  # the reward pool and epoch (core.maker_rewards)
    # proposal id -> its voter exposure disclosure, frozen when its vote opened (core.exposure)
    proposal_exposures: dict[str, tuple[DelegateExposure, ...]] = field(default_factory=dict)
    counter_reports: dict[int, CounterReport] = field(default_factory=dict)  # by id (governance.counter_reports)
    upgrade: ScheduledUpgrade = field(default_factory=ScheduledUpgrade)  # the scheduled upgrade (core.upgrades)
    # incremental state hash (bastion.core.hashing)
    dirty: dict[tuple[Any, ...], None] = field(default_factory=dict)
    leaf_hashes: dict[tuple[Any, ...], bytes] = field(default_factory=dict)  # leaf -> SHA-256 of its encoding
    hash_accumulator: int = 0  # the lane-sum vector (2048 bytes, little-endian) as an integer
    leaf_vectors: dict[bytes, tuple[int, int]] = field(default_factory=dict)  # derived cache (core.hashing)
    state_hash: str = ""

    def touch(self, key: tuple[Any, ...]) -> None:
        """Mark leaf ``key`` changed: the next state hash re-encodes it (``hashing.commit_state_hash``)."""
        self.dirty[key] = None
