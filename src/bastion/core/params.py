"""Governed parameters: liquidity tiers, oracle, funding, fees and liquidation settings.

All values are integers in the unit their name carries (``_ppm``, ``_usdc`` in micro-USDC,
``_ms``, ``_lots``). Genesis (``bastion.core.genesis``) parses them from decimal strings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final


@dataclass(slots=True)
class LiquidityTier:
    """dYdX v4 liquidity tier: margins rise linearly with open interest between the caps."""

    tier_id: int
    name: str
    initial_margin_ppm: int
    maintenance_fraction_ppm: int
    oi_lower_cap_usdc: int
    oi_upper_cap_usdc: int
    impact_notional_usdc: int
    # Share of a position's unrealised profit that counts toward initial margin (withdrawals,
    # transfers, new risk); the rest is "unbacked" until realised (docs/protocol.md, Mango rule).
    unrealized_profit_weight_ppm: int = 1_000_000


@dataclass(slots=True)
class OracleParams:
    """Aggregation rules (DESIGN.md section 6); genesis defaults, overridable per market."""

    min_sources: int
    max_staleness_ms: int
    max_source_deviation_ppm: int
    max_move_per_block_ppm: int


@dataclass(slots=True)
class FundingParams:
    """dYdX v4 funding cadence and clamps (DESIGN.md section 7)."""

    clamp_factor_ppm: int = 6_000_000
    premium_vote_clamp_factor_ppm: int = 60_000_000
    default_funding_ppm: int = 0
    sample_ms: int = 60_000
    tick_ms: int = 3_600_000


@dataclass(slots=True)
class FeeParams:
    """Share of net trading fees credited to the market's insurance fund; the rest is protocol revenue."""

    insurance_share_ppm: int = 0


@dataclass(slots=True)
class InsuranceStakingParams:
    """Insurance-fund staking and replenishment (``bastion.core.staking``, docs/protocol.md
    "Insurance staking and replenishment"). A fund's *target* is ``target_floor_usdc`` plus
    ``target_oi_ppm`` of the open-interest notional of its pool's markets; while the fund is below
    it, the fund's share of net trading fees is ``replenish_share_ppm`` (when higher than
    ``FeeParams.insurance_share_ppm``). The defaults (target 0, replenish share 0) leave the fee
    split as it was before staking existed."""

    cooldown_ms: int = 3 * 86_400_000      # from request_unstake to the earliest complete_unstake
    staker_fee_share_ppm: int = 500_000    # of the fees flowing into a fund that has stakers, the stakers' part
    loss_mode: str = "pro_rata"            # StakingLossMode: stakers bear losses pro rata, or first
    min_stake_usdc: int = 1_000_000        # the smallest stake_insurance amount (1 USDC)
    target_oi_ppm: int = 0                 # a fund's target: this share of its pool's open-interest notional...
    target_floor_usdc: int = 0             # ... plus this floor
    replenish_share_ppm: int = 0           # the fund's share of net trading fees while below its target


@dataclass(slots=True)
class LiquidationParams:
    """Governed liquidation limits (DESIGN.md section 8); enforced by the liquidation engine."""

    max_liquidation_fee_ppm: int = 15_000
    bankruptcy_adjustment_ppm: int = 1_000_000
    spread_to_maintenance_ppm: int = 1_500_000
    min_position_notional_usdc: int = 1_000_000_000
    max_position_portion_ppm: int = 100_000
    max_notional_per_block_usdc: int = 100_000_000_000
    max_insurance_loss_per_block_usdc: int = 1_000_000_000_000
    withdrawal_pause_blocks: int = 50      # after a negative-equity account is seen in a pool (dYdX: 50)
    # the insurance fund's backstop (rung 2 of the loss waterfall, bastion.core.liquidation)
    backstop_max_notional_usdc: int = 1_000_000_000_000   # inventory notional per market at most 1M USDC
    backstop_max_fund_share_ppm: int = 500_000            # ... and at most half of its pool's fund
    backstop_unwind_portion_ppm: int = 100_000            # share of the inventory offered per block
    backstop_after_blocks: int = 10                       # a stalled liquidation is taken over after this
    # issue 16: final settlement at the time-weighted oracle price over this window (bastion.core.twap)
    settlement_twap_window_ms: int = 3_600_000
    # issue 16: after a guardian market or trading pause ends, book liquidations of the market wait this
    # long (accounts at or below bankruptcy still go to the backstop); at most MAX_LIQUIDATION_GRACE_MS
    liquidation_grace_ms: int = 1_800_000
    # the work of one block's liquidation step (liveness: no input may stall a block), as dYdX v4 bounds
    # its liquidation and deleveraging attempts per block; what is over a bound waits for the next block
    max_liquidations_per_block: int = 200                 # liquidatable subaccounts worked on per block
    max_deleveragings_per_block: int = 10                 # ADL and socialisation runs (rungs 3 and 4) per block


@dataclass(slots=True)
class ListingParams:
    """The default listing path (DESIGN.md section 9, ``bastion.core.governance.actions.list_market``): the
    oracle configuration a new market starts from (genesis ``oracle`` defaults, which its proposal
    may override) and the bounds of every listing: a liquidity tier whose initial margin is at
    least ``min_initial_margin_ppm``, an open-interest cap worth at most ``max_open_interest_usdc``
    at the listing price."""

    oracle: OracleParams = field(default_factory=lambda: OracleParams(1, 60_000, 50_000, 500_000))
    min_initial_margin_ppm: int = 50_000           # the default "isolated" tier's 5%
    max_open_interest_usdc: int = 1_000_000_000_000  # 1M USDC, the "isolated" tier's upper OI cap


def default_open_order_tiers() -> list[list[int]]:
    """``[min equity (micro-USDC), max open orders]``, ascending: a subaccount whose equity (net
    collateral) is below the first step may keep no order open; the demo's and the benchmarks'
    accounts (thousands of USDC and more) sit in the top step."""
    return [[20_000_000, 5], [100_000_000, 20], [1_000_000_000, 100], [10_000_000_000, 1_000]]


@dataclass(slots=True)
class OrderLimitParams:
    """Anti-spam limits on orders (``bastion.core.orders.check_order_limits``, docs/protocol.md
    "Anti-spam"), as dYdX's equity tier limits: how many orders (resting plus untriggered
    conditional) a subaccount may keep open, by its equity, never more than ``max_open_orders``;
    and the smallest notional (at the oracle price) of an order that does not reduce a position."""

    open_order_tiers: list[list[int]] = field(default_factory=default_open_order_tiers)
    max_open_orders: int = 1_000                    # per subaccount, whatever its equity
    min_order_notional_usdc: int = 1_000_000        # 1 USDC at the oracle price


def open_order_limit(limits: OrderLimitParams, equity: int) -> tuple[int, int | None]:
    """How many orders a subaccount with ``equity`` micro-USDC may keep open, and the minimum
    equity of its tier (None below the first tier, where the limit is 0)."""
    allowed, step = 0, None
    for min_equity, count in limits.open_order_tiers:
        if equity < min_equity:
            break
        allowed, step = count, min_equity
    return min(allowed, limits.max_open_orders), step


@dataclass(slots=True)
class UiRequirements:
    """What any frontend reading the API must show and enforce for one market (issue 20, governed with
    ``set_ui_requirements``; ``bastion.core.governance.ui_rules``). Leverage is in ppm of 1x
    (``5_000_000`` = 5x); 0 means "no requirement": the tier's own maximum for ``default_leverage_ppm``
    and ``max_leverage_ppm``, no confirmation for ``confirm_above_leverage_ppm``.

    * ``risk_banner``: a text shown above the market's order form ("" = none);
    * ``isolation_threshold_ppm``: the order preview suggests trading isolated when the market would
      carry more than this share of the account's maintenance requirement;
    * ``default_leverage_ppm`` / ``max_leverage_ppm``: the leverage a frontend offers first and at most
      (the preview flags, and the SDK refuses, an order whose account leverage after the fill is above it);
    * ``confirm_above_leverage_ppm``: above this account leverage after the fill, the trader confirms."""

    risk_banner: str = ""
    isolation_threshold_ppm: int = 500_000
    default_leverage_ppm: int = 0
    max_leverage_ppm: int = 0
    confirm_above_leverage_ppm: int = 0


MAX_LIQUIDATION_GRACE_MS: Final = 4 * 3_600_000   # Aave's sentinel allows a grace of up to 4 h
MIN_SETTLEMENT_TWAP_WINDOW_MS: Final = 60_000
MAX_SETTLEMENT_TWAP_WINDOW_MS: Final = 86_400_000

# Governance risk classes (DESIGN.md section 9), from the least to the most strict
RISK_CLASSES: Final = ("risk_reducing", "neutral", "risk_increasing", "critical")
DAY_MS: Final = 86_400_000


@dataclass(slots=True)
class GovernanceTier:
    """Voting rules of one risk class: a higher class is never laxer than a lower one."""

    quorum_ppm: int                        # of the BGOV total supply at the snapshot; all votes count, or only
                                           # yes votes for risk_increasing and critical (governance.get_quorum_count)
    approval_threshold_ppm: int            # yes / (yes + no + veto) must exceed it
    voting_period_blocks: int
    timelock_ms: int                       # block time from queueing to the earliest execution
    min_holding_age_blocks: int            # votes acquired within this many blocks of the snapshot count for nothing


def default_governance_tiers() -> dict[str, GovernanceTier]:
    """The genesis default rules per risk class (quorum, approval, voting period, timelock, holding age)."""
    return {
        "risk_reducing": GovernanceTier(20_000, 500_000, 86_400, DAY_MS, 0),
        "neutral": GovernanceTier(40_000, 500_000, 172_800, 2 * DAY_MS, 0),
        "risk_increasing": GovernanceTier(100_000, 600_000, 259_200, 7 * DAY_MS, 86_400),
        "critical": GovernanceTier(200_000, 667_000, 432_000, 14 * DAY_MS, 604_800),
    }


@dataclass(slots=True)
class GovernanceParams:
    """Proposal rules (``bastion.core.governance``); BGOV amounts in units (6 decimals)."""

    voting_delay_blocks: int = 1
    proposal_threshold_bgov: int = 1_000_000_000          # 1,000 BGOV of current votes
    min_deposit_bgov: int = 100_000_000                    # 100 BGOV
    execution_window_ms: int = 3 * DAY_MS
    veto_threshold_numerator: int = 1                      # veto share above 1/3 vetoes
    veto_threshold_denominator: int = 3
    late_quorum_extension_blocks: int = 14_400
    max_swing_extensions: int = 2                          # outcome flips in the final window extend at most this often
    max_live_proposals: int = 1                            # pending/active/succeeded/queued proposals per proposer
    proposal_fee_bgov: int = 10_000_000                    # 10 BGOV burned at every submission, never refunded
    max_rollout_steps: int = 20                            # steps of one start_rollout (core.governance.rollout)
    guardian_max_pause_ms: int = 3 * DAY_MS                # a guardian pause lasts at most 72 h from its start
    guardian_unpause_grace_ms: int = 600_000               # the guardian may lift its pause for 10 min
    attestation_max_age_ms: int = 2 * DAY_MS               # council sign-offs older than this count for nothing
    # The stress gate's verdict thresholds (bastion.stress.report, DESIGN.md section 10): the share of
    # scenarios that may deplete a fund, and VaR99 / ES99 of the losses as shares of the total funds
    stress_max_depletion_probability_ppm: int = 10_000     # 1% of scenarios
    stress_max_var99_loss_ppm_of_fund: int = 500_000       # VaR99 of losses at most half the funds
    stress_max_es99_loss_ppm_of_fund: int = 1_000_000      # ES99 of losses at most the funds
    # VaR99 of the losses put on traders who were not liquidated (ADL and socialisation), micro-USDC:
    # 0, so at most 1% of scenarios may move a loss onto them (the loss waterfall's last two rungs)
    stress_max_loss_to_traders_usdc: int = 0
    # issue 20, voter exposure (bastion.core.exposure): in the critical tier a vote whose voter holds,
    # in its own subaccounts, positions of at least exposure_threshold_usdc notional in a market the
    # proposal changes counts exposed_vote_weight_ppm of its weight (1_000_000: full weight, the option off)
    exposed_vote_weight_ppm: int = 1_000_000
    exposure_threshold_usdc: int = 10_000_000_000         # 10,000 USDC
    # Counter-reports (core.governance.counter_reports): the USDC bond a poster escrows, and how long
    # after queueing (never past the timelock) a gated proposal accepts them
    counter_report_bond_usdc: int = 1_000_000_000          # 1,000 USDC
    counter_report_window_ms: int = 5 * DAY_MS
    tiers: dict[str, GovernanceTier] = field(default_factory=default_governance_tiers)


@dataclass(slots=True)
class BotLimitParams:
    """Governed bounds of the bot tools (``bastion.core.bot_limits``, docs/protocol.md "Bot limits"):
    the dead-man's switch (``bastion.core.deadman``), TWAP orders (``bastion.core.twap_orders``) and
    agent keys (``bastion.core.agents``). The defaults are the values these modules had as constants."""

    deadman_min_delay_ms: int = 5_000             # a switch is set at least this far after the block time
    deadman_max_triggers_per_day: int = 10        # firings per owner per UTC day of block time
    deadman_max_owners_per_block: int = 100       # switches fired in one block
    deadman_max_orders_per_block: int = 10_000    # orders, conditional orders and TWAPs they cancel in one block
    twap_interval_ms: int = 30_000                # one slice every 30 s of block time
    twap_min_duration_ms: int = 60_000            # at least two slices
    twap_max_duration_ms: int = 86_400_000        # one day: 2,880 slices
    twap_max_per_subaccount: int = 5              # live TWAP orders of one subaccount
    twap_max_slices_per_block: int = 64           # slices executed in one block, all TWAPs together
    twap_default_slippage_ppm: int = 30_000       # 3%: the guard of a TWAP that names none
    twap_max_slippage_ppm: int = 500_000          # 50%: the widest guard a TWAP may name
    agent_max_per_owner: int = 8                  # grants in force per owner
    agent_max_lifetime_ms: int = 180 * DAY_MS     # 180 days of block time, as Hyperliquid's API wallets


@dataclass(slots=True)
class DisputeParams:
    """Disputes and incident programs (issue 18, ``bastion.core.disputes``, ``bastion.core.incidents``):
    when an affected owner may dispute, what it posts, how long the council has, how an appeal is
    bonded and voted, and the caps that keep compensation from draining the insurance funds."""

    window_ms: int = 7 * DAY_MS                    # a dispute opens at most this long after its target's block
    record_retention_ms: int = 30 * DAY_MS         # targets are kept this long (incident programs read them)
    bond_floor_usdc: int = 100_000_000             # the bond: 100 USDC ...
    bond_claim_ppm: int = 50_000                   # ... plus 5% of the claim
    ruling_deadline_ms: int = 3 * DAY_MS           # the council rules within this, else the dispute escalates
    appeal_window_ms: int = 2 * DAY_MS             # after a ruling, either side may appeal for this long
    appeal_bond_multiple: int = 2                  # an appeal's bond is at least this many times the dispute's
    appeal_tier: str = "neutral"                   # the risk class (voting rules) of an appeal or escalation vote
    max_award_usdc: int = 100_000_000_000          # per dispute at most 100k USDC ...
    max_award_fund_ppm: int = 50_000               # ... and at most 5% of the pool's insurance fund
    max_epoch_award_usdc: int = 250_000_000_000    # every award paid in one epoch together at most 250k USDC
    epoch_ms: int = 30 * DAY_MS
    incident_claim_ms: int = 30 * DAY_MS           # an incident program's compensation is claimable this long


@dataclass(slots=True)
class MakerRewardParams:
    """Volatility-weighted maker rewards (``bastion.core.maker_rewards``, docs/protocol.md "Maker
    rewards"). ``epoch_blocks`` 0 turns sampling and payouts off (the pool still fills from its fee
    share). Every ``sample_interval_blocks`` blocks (heights that are multiples of it) each maker's
    depth within ``band_ppm`` of the oracle price is sampled, counting only orders that have rested
    ``min_rest_blocks`` blocks (at most the sampling interval); ``pool_share_ppm`` of the trading fees
    left after the insurance share fill the reward pool, paid pro rata by score at each epoch end, at
    most ``max_share_per_maker_ppm`` of the pool to one maker. A sample's weight is
    ``1 + volatility_slope x |oracle move over the interval|``, at most ``max_volatility_weight_ppm``
    (``bastion.risk_model.maker_volatility_weight_ppm``)."""

    epoch_blocks: int = 0
    sample_interval_blocks: int = 10
    band_ppm: int = 10_000                      # 1% either side of the oracle price
    min_rest_blocks: int = 2
    pool_share_ppm: int = 0
    max_share_per_maker_ppm: int = 500_000
    volatility_slope_ppm: int = 100_000_000     # x100: a 1% move over the interval doubles the weight
    max_volatility_weight_ppm: int = 5_000_000  # x5
