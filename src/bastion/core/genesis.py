"""Genesis: the JSON document that defines chain id, start time, parameters, markets and accounts.

``build_state(genesis)`` validates a genesis object (decimal strings, as in scenario files, see
docs/scenarios.md) and returns the initial ``State`` with its state hash committed at height 0.
Omitted fields take the values of ``GENESIS_DEFAULTS`` (``bastion scenario defaults`` prints them).
Errors are ``ProtocolError("invalid_genesis", ...)`` naming the field path, e.g.
``genesis.markets[0].size_decimals``.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from bastion.core.bot_limits import format_bot_limits, parse_bot_limits
from bastion.core.errors import ProtocolError
from bastion.core.governance.council import parse_genesis_council
from bastion.core.governance.params_codec import format_governance_params, parse_governance_params
from bastion.core.governance.ui_rules import set_genesis_ui_requirements
from bastion.core.hashing import commit_state_hash, iter_leaf_keys
from bastion.core.market_codec import MARKET_DEFAULTS, ORACLE_DEFAULTS, parse_market
from bastion.core.market_codec import check_keys as _check_keys
from bastion.core.market_codec import genesis_error as _error
from bastion.core.market_codec import get_field as _get
from bastion.core.market_codec import parse_int as _int
from bastion.core.market_codec import parse_oracle_params as _oracle_params
from bastion.core.market_codec import wrap_error as _wrap
from bastion.core.messages import normalize_address
from bastion.core.orders import format_order_limits, parse_order_limits
from bastion.core.staking import format_staking_params, parse_staking_params
from bastion.core.disputes import format_dispute_params, parse_dispute_params
from bastion.core.maker_rewards import format_maker_reward_params, parse_maker_reward_params
from bastion.core.params import DisputeParams
from bastion.core.params import (
    MAX_LIQUIDATION_GRACE_MS, MAX_SETTLEMENT_TWAP_WINDOW_MS, MIN_SETTLEMENT_TWAP_WINDOW_MS, FeeParams, FundingParams,
    BotLimitParams, GovernanceParams, InsuranceStakingParams, LiquidationParams, ListingParams, LiquidityTier,
    MakerRewardParams,
    OrderLimitParams,
)
from bastion.core.state import (
    CROSS, CROSS_POOL, ISOLATED, SUBACCOUNT_NUMBERS, Guardian, Market,
    Position, State, Subaccount,
)
from bastion.core.timefmt import parse_iso_ms
from bastion.core.units import MS_PER_S, PPM, parse_decimal, parse_ppm, parse_usdc
from bastion.core.votes import BGOV_DECIMALS, init_genesis_votes
from bastion.risk_model import notional

# dYdX v4 default liquidity tiers (DESIGN.md section 4)
# (margins, caps, impact notional); the unrealised-profit weights are Bastion's (docs/protocol.md).
DEFAULT_TIERS = [
    {"id": 0, "name": "large-cap", "initial_margin": "0.02", "maintenance_fraction": "0.6",
     "oi_lower_cap": "0", "oi_upper_cap": "0", "impact_notional": "10000", "unrealized_profit_weight": "1"},
    {"id": 1, "name": "mid-cap", "initial_margin": "0.05", "maintenance_fraction": "0.6",
     "oi_lower_cap": "40000000", "oi_upper_cap": "100000000", "impact_notional": "5000",
     "unrealized_profit_weight": "1"},
    {"id": 2, "name": "small-cap", "initial_margin": "0.1", "maintenance_fraction": "0.5",
     "oi_lower_cap": "20000000", "oi_upper_cap": "50000000", "impact_notional": "2500",
     "unrealized_profit_weight": "0.5"},
    {"id": 3, "name": "long-tail", "initial_margin": "0.2", "maintenance_fraction": "0.5",
     "oi_lower_cap": "5000000", "oi_upper_cap": "10000000", "impact_notional": "2500",
     "unrealized_profit_weight": "0"},
    {"id": 4, "name": "isolated", "initial_margin": "0.05", "maintenance_fraction": "0.6",
     "oi_lower_cap": "500000", "oi_upper_cap": "1000000", "impact_notional": "2500",
     "unrealized_profit_weight": "0"},
    {"id": 5, "name": "safety", "initial_margin": "1", "maintenance_fraction": "0.2",
     "oi_lower_cap": "0", "oi_upper_cap": "0", "impact_notional": "2500", "unrealized_profit_weight": "0"},
]

GENESIS_DEFAULTS: dict[str, Any] = {
    "chain_id": "bastion-local",
    "time": "2026-01-01T00:00:00Z",
    "bridge_operator": "0x00000000000000000000000000000000000000b1",
    "oracle": ORACLE_DEFAULTS,
    "liquidity_tiers": DEFAULT_TIERS,
    "market": MARKET_DEFAULTS,
    "liquidation": {"max_liquidation_fee": "0.015", "bankruptcy_adjustment": "1", "spread_to_maintenance": "1.5",
                    "min_position_notional": "1000", "max_position_portion": "0.1",
                    "max_notional_per_block": "100000", "max_insurance_loss_per_block": "1000000",
                    "withdrawal_pause_blocks": 50, "backstop_max_notional": "1000000",
                    "backstop_max_fund_share": "0.5", "backstop_unwind_portion": "0.1", "backstop_after_blocks": 10,
                    "settlement_twap_window_s": 3600, "liquidation_grace_s": 1800,
                    "max_liquidations_per_block": 200, "max_deleveragings_per_block": 10},
    "funding": {"clamp_factor": "6", "premium_vote_clamp_factor": "60", "default_funding": "0",
                "sample_s": 60, "tick_s": 3600},
    "fees": {"insurance_share": "0"},
    # the default listing path (bastion.core.governance.actions): a listed market's tier and OI cap stay within these
    "listing": {"min_initial_margin": "0.05", "max_open_interest": "1000000"},
    "insurance_funds": {"cross": "0"},
    "governance": format_governance_params(GovernanceParams()),
    # anti-spam (bastion.core.orders.check_order_limits): open orders per subaccount by equity, minimum notional
    "order_limits": format_order_limits(OrderLimitParams()),
    # the bot tools' bounds (bastion.core.bot_limits): dead-man's switch, TWAP orders, agent keys
    "bot_limits": format_bot_limits(BotLimitParams()),
    # insurance-fund staking and replenishment (bastion.core.staking)
    "insurance_staking": format_staking_params(InsuranceStakingParams()),
    "guardian": None,    # or {"address": "0x...", "expires": "<RFC 3339 time>"} (bastion.core.guardian)
    "council": {"members": [], "threshold": 0, "steward_bounds": {}, "stress_reports": []},
    # disputes and incident programs (bastion.core.disputes): windows, bonds, deadlines, award caps
    "disputes": format_dispute_params(DisputeParams()),
    "accounts": [],
    # issue 20: per market, what frontends must show and enforce (bastion.core.governance.ui_rules), e.g.
    # {"BTC-USD": {"risk_banner": "...", "max_leverage": "5", "confirm_above_leverage": "3"}}
    "ui_requirements": {},
    # volatility-weighted maker rewards (bastion.core.maker_rewards); epoch_blocks 0: off
    "maker_rewards": format_maker_reward_params(MakerRewardParams()),
}
def build_state(genesis: Any) -> State:
    """Validate a genesis object and build the initial state (height 0, hash committed)."""
    g = genesis
    _check_keys(g, set(GENESIS_DEFAULTS) - {"market"} | {"markets"}, "genesis")
    chain_id = _get(g, "chain_id", "genesis", str, GENESIS_DEFAULTS["chain_id"])
    if not (1 <= len(chain_id) <= 64 and chain_id.isascii() and chain_id.isprintable()):
        raise _error("genesis.chain_id", "must be 1 to 64 printable ASCII characters")
    time_ms = _wrap("genesis.time", parse_iso_ms, _get(g, "time", "genesis", str, GENESIS_DEFAULTS["time"]),
                    field="genesis.time")
    bridge = _wrap("genesis.bridge_operator", normalize_address,
                   _get(g, "bridge_operator", "genesis", str, GENESIS_DEFAULTS["bridge_operator"]),
                   field="bridge_operator")
    oracle_obj = _get(g, "oracle", "genesis", dict, GENESIS_DEFAULTS["oracle"])
    oracle_defaults = _oracle_params(oracle_obj, None, "genesis.oracle")
    operators = oracle_obj.get("operators", GENESIS_DEFAULTS["oracle"]["operators"])
    if not isinstance(operators, list) or not operators:
        raise _error("genesis.oracle.operators", "must be a non-empty list of addresses")
    operator_set = sorted({_wrap(f"genesis.oracle.operators[{i}]", normalize_address, a, field="operator")
                           for i, a in enumerate(operators)})

    tiers: dict[int, LiquidityTier] = {}
    for i, t in enumerate(_get(g, "liquidity_tiers", "genesis", list, DEFAULT_TIERS)):
        path = f"genesis.liquidity_tiers[{i}]"
        _check_keys(t, {"id", "name", "initial_margin", "maintenance_fraction", "oi_lower_cap", "oi_upper_cap",
                        "impact_notional", "unrealized_profit_weight"}, path)
        tier_id = _int(_get(t, "id", path, int), f"{path}.id", minimum=0)
        imf = _wrap(f"{path}.initial_margin", parse_ppm, _get(t, "initial_margin", path, str), field="initial_margin")
        fraction = _wrap(f"{path}.maintenance_fraction", parse_ppm, _get(t, "maintenance_fraction", path, str),
                         field="maintenance_fraction")
        lower = _wrap(f"{path}.oi_lower_cap", parse_usdc, _get(t, "oi_lower_cap", path, str, "0"), field="oi_lower_cap")
        upper = _wrap(f"{path}.oi_upper_cap", parse_usdc, _get(t, "oi_upper_cap", path, str, "0"), field="oi_upper_cap")
        impact = _wrap(f"{path}.impact_notional", parse_usdc, _get(t, "impact_notional", path, str, "10000"),
                       field="impact_notional")
        profit_weight = _wrap(f"{path}.unrealized_profit_weight", parse_ppm,
                              _get(t, "unrealized_profit_weight", path, str, "1"), field="unrealized_profit_weight")
        if profit_weight > PPM:
            raise _error(f"{path}.unrealized_profit_weight", "must be in [0, 1]")
        if not 0 < imf <= PPM or not 0 <= fraction <= PPM:
            raise _error(path, "initial_margin must be in (0, 1] and maintenance_fraction in [0, 1]")
        if upper and upper <= lower:
            raise _error(f"{path}.oi_upper_cap", "must exceed oi_lower_cap (or be 0 for no cap)")
        if tier_id in tiers:
            raise _error(f"{path}.id", f"duplicate tier id {tier_id}")
        tiers[tier_id] = LiquidityTier(tier_id, _get(t, "name", path, str, f"tier-{tier_id}"), imf, fraction, lower,
                                       upper, impact, profit_weight)

    markets: dict[str, Market] = {}
    for i, m in enumerate(_get(g, "markets", "genesis", list)):
        market = parse_market(m, f"genesis.markets[{i}]", tiers=tiers, markets=markets, oracle_defaults=oracle_defaults,
                              operators=operator_set, time_ms=time_ms)
        markets[market.ticker] = market
    markets = dict(sorted(markets.items()))

    liq_obj = {**GENESIS_DEFAULTS["liquidation"], **_get(g, "liquidation", "genesis", dict, {})}
    _check_keys(liq_obj, set(GENESIS_DEFAULTS["liquidation"]), "genesis.liquidation")

    def liq(key: str, parser: Callable[..., int]) -> Any:
        return _wrap(f"genesis.liquidation.{key}", parser, liq_obj[key], field=key)

    liquidation = LiquidationParams(
        liq("max_liquidation_fee", parse_ppm), liq("bankruptcy_adjustment", parse_ppm),
        liq("spread_to_maintenance", parse_ppm), liq("min_position_notional", parse_usdc),
        liq("max_position_portion", parse_ppm), liq("max_notional_per_block", parse_usdc),
        liq("max_insurance_loss_per_block", parse_usdc),
        _int(liq_obj["withdrawal_pause_blocks"], "genesis.liquidation.withdrawal_pause_blocks", minimum=0),
        liq("backstop_max_notional", parse_usdc), liq("backstop_max_fund_share", parse_ppm),
        liq("backstop_unwind_portion", parse_ppm),
        _int(liq_obj["backstop_after_blocks"], "genesis.liquidation.backstop_after_blocks", minimum=1),
        _int(liq_obj["settlement_twap_window_s"], "genesis.liquidation.settlement_twap_window_s",
             minimum=MIN_SETTLEMENT_TWAP_WINDOW_MS // MS_PER_S, maximum=MAX_SETTLEMENT_TWAP_WINDOW_MS // MS_PER_S)
        * MS_PER_S,
        _int(liq_obj["liquidation_grace_s"], "genesis.liquidation.liquidation_grace_s", minimum=0,
             maximum=MAX_LIQUIDATION_GRACE_MS // MS_PER_S) * MS_PER_S,
        _int(liq_obj["max_liquidations_per_block"], "genesis.liquidation.max_liquidations_per_block", minimum=1),
        _int(liq_obj["max_deleveragings_per_block"], "genesis.liquidation.max_deleveragings_per_block", minimum=1))

    fund_obj = {**GENESIS_DEFAULTS["funding"], **_get(g, "funding", "genesis", dict, {})}
    _check_keys(fund_obj, set(GENESIS_DEFAULTS["funding"]), "genesis.funding")
    sample_s = _int(fund_obj["sample_s"], "genesis.funding.sample_s", minimum=1)
    tick_s = _int(fund_obj["tick_s"], "genesis.funding.tick_s", minimum=1)
    if tick_s % sample_s:
        raise _error("genesis.funding.tick_s", "must be a multiple of sample_s")
    funding = FundingParams(
        _wrap("genesis.funding.clamp_factor", parse_ppm, fund_obj["clamp_factor"], field="clamp_factor"),
        _wrap("genesis.funding.premium_vote_clamp_factor", parse_ppm, fund_obj["premium_vote_clamp_factor"],
              field="premium_vote_clamp_factor"),
        _wrap("genesis.funding.default_funding", parse_ppm, fund_obj["default_funding"], field="default_funding",
              signed=True),
        sample_s * MS_PER_S, tick_s * MS_PER_S)
    for market in markets.values():
        market.premium_minute = time_ms // funding.sample_ms
        market.last_funding_hour = time_ms // funding.tick_ms

    fees_obj = {**GENESIS_DEFAULTS["fees"], **_get(g, "fees", "genesis", dict, {})}
    _check_keys(fees_obj, set(GENESIS_DEFAULTS["fees"]), "genesis.fees")
    fees = FeeParams(_wrap("genesis.fees.insurance_share", parse_ppm, fees_obj["insurance_share"],
                           field="insurance_share"))
    if fees.insurance_share_ppm > PPM:
        raise _error("genesis.fees.insurance_share", "must be at most 1")

    listing_obj = {**GENESIS_DEFAULTS["listing"], **_get(g, "listing", "genesis", dict, {})}
    _check_keys(listing_obj, set(GENESIS_DEFAULTS["listing"]), "genesis.listing")
    listing = ListingParams(
        copy.copy(oracle_defaults),
        _wrap("genesis.listing.min_initial_margin", parse_ppm, listing_obj["min_initial_margin"],
              field="min_initial_margin"),
        _wrap("genesis.listing.max_open_interest", parse_usdc, listing_obj["max_open_interest"],
              field="max_open_interest"))
    if not 0 < listing.min_initial_margin_ppm <= PPM or listing.max_open_interest_usdc <= 0:
        raise _error("genesis.listing", "min_initial_margin must be in (0, 1] and max_open_interest positive")

    funds = {CROSS_POOL: 0, **{t: 0 for t, m in markets.items() if m.isolated_only}}
    for pool, amount in _get(g, "insurance_funds", "genesis", dict, {}).items():
        if pool not in funds:
            raise _error(f"genesis.insurance_funds.{pool}", "is not 'cross' or an isolated-only market")
        funds[pool] = _wrap(f"genesis.insurance_funds.{pool}", parse_usdc, amount, field=pool)

    state = State(chain_id=chain_id, genesis_time_ms=time_ms, time_ms=time_ms, height=0, bridge_operator=bridge,
                  oracle_operators=tuple(operator_set), tiers=dict(sorted(tiers.items())), markets=markets,
                  funding=funding, fees=fees, liquidation=liquidation, insurance_funds=dict(sorted(funds.items())))
    state.seed_insurance = sum(funds.values())
    state.listing = listing
    state.governance = _wrap("genesis.governance", parse_governance_params,
                             _get(g, "governance", "genesis", dict, {}), GovernanceParams(), "genesis.governance")
    state.order_limits = _wrap("genesis.order_limits", parse_order_limits,
                               _get(g, "order_limits", "genesis", dict, {}), OrderLimitParams(), "genesis.order_limits")
    state.bot_limits = _wrap("genesis.bot_limits", parse_bot_limits,
                             _get(g, "bot_limits", "genesis", dict, {}), BotLimitParams(), "genesis.bot_limits")
    state.insurance_staking = _wrap("genesis.insurance_staking", parse_staking_params,
                                    _get(g, "insurance_staking", "genesis", dict, {}), InsuranceStakingParams(),
                                    "genesis.insurance_staking")
    state.maker_reward_params = _wrap("genesis.maker_rewards", parse_maker_reward_params,
                                      _get(g, "maker_rewards", "genesis", dict, {}), MakerRewardParams(),
                                      "genesis.maker_rewards")
    state.guardian = _guardian(_get(g, "guardian", "genesis", (dict, type(None)), None), time_ms)
    _wrap("genesis.council", parse_genesis_council, state, _get(g, "council", "genesis", dict, {}))
    state.disputes.params = _wrap("genesis.disputes", parse_dispute_params, _get(g, "disputes", "genesis", dict, {}),
                                  DisputeParams(), "genesis.disputes")
    _add_accounts(state, _get(g, "accounts", "genesis", list, []))
    _wrap("genesis.ui_requirements", set_genesis_ui_requirements, state,
          _get(g, "ui_requirements", "genesis", dict, {}))
    for key in iter_leaf_keys(state):
        state.touch(key)
    commit_state_hash(state)
    return state


def _guardian(obj: dict[str, Any] | None, time_ms: int) -> Guardian:
    """The genesis guardian: none, or an address with an expiry after the genesis time."""
    if obj is None:
        return Guardian()
    path = "genesis.guardian"
    _check_keys(obj, {"address", "expires"}, path)
    address = _wrap(f"{path}.address", normalize_address, _get(obj, "address", path, str), field="address")
    expires_ms = _wrap(f"{path}.expires", parse_iso_ms, _get(obj, "expires", path, str), field="expires")
    if expires_ms <= time_ms:
        raise _error(f"{path}.expires", "must be after the genesis time")
    return Guardian(address, expires_ms)


def _add_accounts(state: State, accounts: list[Any]) -> None:
    net_size = {ticker: 0 for ticker in state.markets}
    delegations: dict[str, str] = {}  # applied once every balance is known (core.votes)
    for i, a in enumerate(accounts):
        path = f"genesis.accounts[{i}]"
        _check_keys(a, {"address", "bgov", "delegate", "subaccounts"}, path)
        owner = _wrap(f"{path}.address", normalize_address, _get(a, "address", path, str), field="address")
        bgov = _wrap(f"{path}.bgov", parse_decimal, _get(a, "bgov", path, str, "0"), BGOV_DECIMALS, field="bgov")
        if bgov:
            state.bgov[owner] = state.bgov.get(owner, 0) + bgov
        if "delegate" in a:
            if owner in delegations:
                raise _error(f"{path}.delegate", f"{owner} is already delegated")
            delegations[owner] = _wrap(f"{path}.delegate", normalize_address, _get(a, "delegate", path, str),
                                       field="delegate")
        for j, s in enumerate(_get(a, "subaccounts", path, list, [])):
            spath = f"{path}.subaccounts[{j}]"
            _check_keys(s, {"number", "usdc", "mode", "market", "positions"}, spath)
            number = _int(_get(s, "number", spath, int, 0), f"{spath}.number")
            if number not in SUBACCOUNT_NUMBERS:
                raise _error(f"{spath}.number", "must be 0..127")
            if (owner, number) in state.subaccounts:
                raise _error(f"{spath}.number", "duplicate subaccount")
            usdc = _wrap(f"{spath}.usdc", parse_usdc, _get(s, "usdc", spath, str, "0"), field="usdc", signed=True)
            mode = _get(s, "mode", spath, str, CROSS)
            if mode not in (CROSS, ISOLATED):
                raise _error(f"{spath}.mode", "must be 'cross' or 'isolated'")
            isolated_market = s.get("market")
            if (mode == ISOLATED) != (isolated_market is not None) or (
                    isolated_market is not None and isolated_market not in state.markets):
                raise _error(f"{spath}.market", "an isolated subaccount names exactly one known market")
            sub = Subaccount(owner, number, usdc, mode, isolated_market)
            for k, p in enumerate(_get(s, "positions", spath, list, [])):
                ppath = f"{spath}.positions[{k}]"
                _check_keys(p, {"market", "size", "entry_price"}, ppath)
                ticker = _get(p, "market", ppath, str)
                market = state.markets.get(ticker)
                if market is None:
                    raise _error(f"{ppath}.market", f"unknown market {ticker!r}")
                if mode == ISOLATED and ticker != isolated_market or market.isolated_only and mode == CROSS:
                    raise _error(f"{ppath}.market", "position not allowed by the subaccount's margin mode")
                size = _wrap(f"{ppath}.size", parse_decimal, _get(p, "size", ppath, str), market.size_decimals,
                             field="size", signed=True)
                if size == 0 or ticker in sub.positions:
                    raise _error(f"{ppath}.size", "positions must be non-zero and one per market")
                entry = _get(p, "entry_price", ppath, str, None)
                entry_ticks = market.oracle_price if entry is None else _wrap(
                    f"{ppath}.entry_price", parse_decimal, entry, market.price_decimals, field="entry_price")
                if entry_ticks <= 0:
                    raise _error(f"{ppath}.entry_price", "entry_price must be positive")
                cost = notional(size, entry_ticks, size_decimals=market.size_decimals,
                                price_decimals=market.price_decimals)
                sub.positions[ticker] = Position(size, market.funding_index, cost)
                market.holders[(owner, number)] = None
                net_size[ticker] += size
                market.open_interest += max(size, 0)
            state.subaccounts[(owner, number)] = sub
            state.total_deposits += usdc
    init_genesis_votes(state, delegations.items())
    for ticker, net in net_size.items():
        if net:
            raise ProtocolError("invalid_genesis",
                                f"genesis.accounts: positions in {ticker} do not balance (long minus short = {net})",
                                field="genesis.accounts")
        if state.markets[ticker].open_interest > state.markets[ticker].max_open_interest_lots:
            raise _error("genesis.accounts", f"positions in {ticker} exceed its max_open_interest")
