"""Governance actions that list markets, reconfigure the oracle and liquidations, and move money
(DESIGN.md sections 4, 6, 8 and 9; issue 5).

Each ``compute_*`` function validates an action against the current state and returns its effects
(``bastion.core.governance.changes``), the contract of ``dispatch.compute_action_changes`` (which
calls it from its ``match``). An effect is either

* a **parameter** ``Change`` (``markets.<T>.oracle.*``, ``liquidation.*``, ``listing.*``,
  ``oracle_operators``, ``markets.<T>.isolated_only``, ``guardian.*``): ``changes.change_param``
  sets it, records it in the parameter history and emits ``param_changed``; or
* an **operation**: a ``Listing`` (the new ``Market``), a treasury ``Payment``, an insurance
  ``FundTransfer`` or the ``FundMerge`` of an upgraded market's insurance fund. ``apply_operation``
  applies them with their own event (``market_listed``, ``treasury_spent``, ``insurance_transferred``,
  ``insurance_fund_merged``, each with the proposal) and records no parameter history: they are not
  parameters.

``check_proposal_changes`` checks what no single action can see, over a proposal's changes in
order (``dispatch.compute_proposal_changes`` runs it at submission and execution, so a proposal
may, say, lower a market's ``min_sources`` and remove an operator together, or refill a fund
before paying from it): a parameter changes at most once (``conflicting_actions``);
payments never overdraw the treasury or a fund, counting the earlier moves of the proposal
(``insufficient_treasury``, ``insufficient_insurance_fund``, ``unknown_pool`` for a fund merged
earlier); every market keeps at most as many ``min_sources`` as there are operators
(``too_few_oracle_operators``). All of it runs before anything is applied, so a proposal executes
whole or not at all.

Decisions (docs/protocol.md, "Listing, oracle operators, liquidation parameters, treasury and insurance"):

* **Listing** (default path): the market is ``isolated_only`` with an empty insurance fund of its
  own, ``active`` at once; its liquidity tier defaults to the tier named ``isolated`` and any tier
  must have an initial margin of at least ``listing.min_initial_margin_ppm``; its OI cap is
  required and worth at most ``listing.max_open_interest_usdc`` at the listing price. Like genesis,
  every operator counts as having submitted the listing price at the execution time. Omitted oracle
  fields take the genesis ``oracle`` defaults (``state.listing.oracle``). A ticker that ever
  existed (even settled) cannot be listed again.
* **Operators**: any change of the set (more, fewer or replaced operators) is at least risk
  increasing, and critical when the new operators could set a market's median
  (``bastion.core.governance.classify``): who sets prices is never a low-tier change. The submissions of
  removed operators are dropped at once,
  so they stop counting toward any market's price.
* **Upgrade to cross**: the market leaves its own pool; its insurance fund (and a withdrawal pause
  of its pool) merge into the cross pool's. Subaccounts isolated to it stay isolated (they still
  trade only that market) but their collateral now belongs to the cross pool; its recorded bad
  debt stays recorded under its ticker as history.
* **Money**: the treasury is the protocol fee account (``state.fees_account``). A treasury spend
  credits a subaccount (created if new); an insurance transfer moves between funds, or from the
  treasury into a fund, never out of the insurance funds into the treasury. Both are critical.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from bastion.core import accounts, disputes, incidents, staking
from bastion.core.dispute_state import DisputeResolution, IncidentOpening
from bastion.core import events as ev
from bastion.core.events import Events, emit
from bastion.core.enums import FundFlow, MarketStatus
from bastion.core.errors import InvariantViolation, ProtocolError
from bastion.core.governance.changes import (
    CRITICAL, NEUTRAL, RISK_INCREASING, Change, Effect, FundMerge, FundTransfer, Listing, Operation, ParamGroup,
    ParamPath, Payment, compare_risk,
)
from bastion.core.market_codec import parse_market
from bastion.core.messages import (
    InsuranceTransfer, ListMarket, SetGuardian, SetOracleOperators, SetMarketParams, TreasurySpend,
    UpgradeIsolatedToCross, normalize_address,
)
from bastion.core.params import (
    MAX_LIQUIDATION_GRACE_MS, MAX_SETTLEMENT_TWAP_WINDOW_MS, MIN_SETTLEMENT_TWAP_WINDOW_MS, OracleParams,
)
from bastion.core.state import CROSS_POOL, Market, ParamSource, State
from bastion.core.timefmt import parse_iso_ms
from bastion.core.units import MS_PER_S, PPM, parse_ppm, parse_usdc
from bastion.risk_model import notional


TREASURY: Final = "treasury"
SETTLED: Final = MarketStatus.SETTLED
FINAL_SETTLEMENT: Final = MarketStatus.FINAL_SETTLEMENT
DEFAULT_LISTING_TIER: Final = "isolated"


# --------------------------------------------------------------------------------------- numeric fields
def _parse_ratio(value: Any, field: str) -> int:
    return parse_ppm(value, field=field)


def _parse_usdc(value: Any, field: str) -> int:
    return parse_usdc(value, field=field)


def _parse_count(value: Any, field: str) -> int:
    count: int = value                     # decode_action guarantees an int (never a bool)
    return count


def _parse_seconds(value: Any, field: str) -> int:
    return _parse_count(value, field) * MS_PER_S


@dataclass(frozen=True, slots=True)
class NumericField:
    """One numeric field of an action and the parameter it sets: parser, allowed range (inclusive,
    in the parameter's unit) and which direction is riskier."""

    action_field: str
    param: str
    parse: Callable[[Any, str], int]
    minimum: int
    maximum: int | None
    riskier_when_higher: bool


# a market's oracle (DESIGN.md section 6): fewer sources, older prices, wider deviation, bigger moves are riskier
ORACLE_FIELDS: Final = (
    NumericField("min_sources", "min_sources", _parse_count, 1, None, False),
    NumericField("max_staleness_s", "max_staleness_ms", _parse_seconds, MS_PER_S, None, True),
    NumericField("max_source_deviation", "max_source_deviation_ppm", _parse_ratio, 1, PPM, True),
    NumericField("max_move_per_block", "max_move_per_block_ppm", _parse_ratio, 1, PPM, True),
)
# liquidations (DESIGN.md section 8): less for the insurance fund, more it may lose, or slower liquidation is riskier
LIQUIDATION_FIELDS: Final = (
    # a lower fee cap leaves less of a liquidation's surplus to the insurance fund
    NumericField("max_liquidation_fee", "max_liquidation_fee_ppm", _parse_ratio, 0, PPM, False),
    # a larger adjustment / spread lets liquidations fill further beyond bankruptcy, at the fund's cost
    # (dYdX's bounds: adjustment >= 1, spread > 0)
    NumericField("bankruptcy_adjustment", "bankruptcy_adjustment_ppm", _parse_ratio, PPM, None, True),
    NumericField("spread_to_maintenance", "spread_to_maintenance_ppm", _parse_ratio, 1, None, True),
    # smaller per-block limits close a failing position more slowly, leaving the fund exposed longer
    NumericField("min_position_notional", "min_position_notional_usdc", _parse_usdc, 1, None, False),
    NumericField("max_position_portion", "max_position_portion_ppm", _parse_ratio, 1, PPM, False),
    NumericField("max_notional_per_block", "max_notional_per_block_usdc", _parse_usdc, 1, None, False),
    # a fund may lose more per subaccount and block
    NumericField("max_insurance_loss_per_block", "max_insurance_loss_per_block_usdc", _parse_usdc, 0, None, True),
    # a shorter pause lets collateral leave a pool sooner after an account went negative
    NumericField("withdrawal_pause_blocks", "withdrawal_pause_blocks", _parse_count, 0, None, False),
    # the backstop (loss waterfall rung 2): larger limits let the fund carry more inventory (more of the
    # fund at risk of a further move); a faster unwind dumps more into a thin book; a later takeover
    # leaves a stalled account's loss growing longer
    NumericField("backstop_max_notional", "backstop_max_notional_usdc", _parse_usdc, 0, None, True),
    NumericField("backstop_max_fund_share", "backstop_max_fund_share_ppm", _parse_ratio, 0, PPM, True),
    NumericField("backstop_unwind_portion", "backstop_unwind_portion_ppm", _parse_ratio, 1, PPM, True),
    NumericField("backstop_after_blocks", "backstop_after_blocks", _parse_count, 1, None, True),
    # issue 16: a shorter settlement window lets a shorter pump move a delisting's settlement price;
    # a longer post-pause grace leaves failing accounts (above bankruptcy) unliquidated longer
    NumericField("settlement_twap_window_s", "settlement_twap_window_ms", _parse_seconds,
                 MIN_SETTLEMENT_TWAP_WINDOW_MS, MAX_SETTLEMENT_TWAP_WINDOW_MS, False),
    NumericField("liquidation_grace_s", "liquidation_grace_ms", _parse_seconds, 0, MAX_LIQUIDATION_GRACE_MS, True),
    # the per-block work bounds: a higher bound lets one block do more work (a mass bankruptcy can
    # then stall block production); a lower one only spreads the waterfall over more blocks (>= 1:
    # the worst account always progresses)
    NumericField("max_liquidations_per_block", "max_liquidations_per_block", _parse_count, 1, None, True),
    NumericField("max_deleveragings_per_block", "max_deleveragings_per_block", _parse_count, 1, None, True),
)
# the listing bounds: laxer tiers or larger OI caps for new markets are riskier
LISTING_FIELDS: Final = (
    NumericField("min_initial_margin", "min_initial_margin_ppm", _parse_ratio, 1, PPM, False),
    NumericField("max_open_interest", "max_open_interest_usdc", _parse_usdc, 1, None, True),
)


def check_range(spec: NumericField, value: int, field: str) -> None:
    """``invalid_field`` unless ``value`` is within the field's range."""
    if value < spec.minimum or (spec.maximum is not None and value > spec.maximum):
        upper = "" if spec.maximum is None else f" and at most {spec.maximum}"
        raise ProtocolError("invalid_field", f"{field} must be at least {spec.minimum}{upper} ({spec.param})",
                            field=field)


def compute_numeric_changes(group: ParamGroup, key: str, target: Any, action: Any,
                            specs: tuple[NumericField, ...]) -> list[Change]:
    """The changes of the fields of ``action`` that are set, each validated and classified against
    the current value ``getattr(target, spec.param)``; paths are ``(group, key, spec.param)``.
    Raises ``invalid_field`` and the decimal codes."""
    changes: list[Change] = []
    for spec in specs:
        text = getattr(action, spec.action_field)
        if text is None:
            continue
        value = spec.parse(text, spec.action_field)
        check_range(spec, value, spec.action_field)
        old = getattr(target, spec.param)
        changes.append(Change(ParamPath(group, key, spec.param), old, value,
                              compare_risk(old, value, riskier_when_higher=spec.riskier_when_higher)))
    return changes


# --------------------------------------------------------------------------------------- compute
def get_live_market(state: State, ticker: str) -> Market:
    """The market an action names: ``unknown_market``, or ``market_delisted`` once it is in final
    settlement or settled."""
    market = state.markets.get(ticker)
    if market is None:
        raise ProtocolError("unknown_market", f"unknown market {ticker!r}", field="market")
    if market.status in (FINAL_SETTLEMENT, SETTLED):
        raise ProtocolError("market_delisted", f"{ticker} is delisted ({market.status})", field="market")
    return market


def compute_market_oracle_changes(market: Market, action: SetMarketParams) -> list[Change]:
    """The oracle fields of ``set_market_params`` (``markets.<T>.oracle.*``)."""
    return compute_numeric_changes(ParamGroup.MARKET_ORACLE, market.ticker, market.oracle_params, action,
                                   ORACLE_FIELDS)


def compute_list_market_changes(state: State, action: ListMarket) -> list[Effect]:
    """``list_market`` (module docstring): its ``Listing``. Raises ``market_exists``,
    ``missing_field``, ``invalid_listing``, ``invalid_field``, ``listing_tier_too_lax``,
    ``listing_open_interest_too_high``."""
    if action.ticker in state.markets:
        raise ProtocolError("market_exists", f"market {action.ticker} exists (or existed)", field="ticker")
    tier_id = get_default_listing_tier(state) if action.liquidity_tier is None else action.liquidity_tier
    document: dict[str, Any] = {
        "ticker": action.ticker, "size_decimals": action.size_decimals, "price_decimals": action.price_decimals,
        "liquidity_tier": tier_id, "min_order_size": action.min_order_size,
        "max_open_interest": action.max_open_interest, "oracle_price": action.oracle_price, "isolated_only": True}
    document.update({name: getattr(action, name) for name in ("maker_fee", "taker_fee", "oracle")
                     if getattr(action, name) is not None})
    try:
        market = parse_market(document, "list_market", tiers=state.tiers, markets=state.markets,
                              oracle_defaults=state.listing.oracle, operators=state.oracle_operators,
                              time_ms=state.time_ms)
    except ProtocolError as error:
        raise ProtocolError("invalid_listing", error.message, field=error.fields.get("field")) from None
    for spec in ORACLE_FIELDS:
        check_range(spec, getattr(market.oracle_params, spec.param), f"oracle.{spec.action_field}")
    minimum = state.listing.min_initial_margin_ppm
    if state.tiers[tier_id].initial_margin_ppm < minimum:
        raise ProtocolError("listing_tier_too_lax", f"tier {tier_id}'s initial margin is below the listing minimum "
                            f"({minimum} ppm)", field="liquidity_tier")
    cap_usdc = notional(market.max_open_interest_lots, market.oracle_price, size_decimals=market.size_decimals,
                        price_decimals=market.price_decimals)
    if market.max_open_interest_lots <= 0 or cap_usdc > state.listing.max_open_interest_usdc:
        raise ProtocolError("listing_open_interest_too_high", f"max_open_interest must be positive and worth at most "
                            f"{state.listing.max_open_interest_usdc} micro-USDC at the listing price (is {cap_usdc})",
                            field="max_open_interest")
    market.premium_minute = state.time_ms // state.funding.sample_ms
    market.last_funding_hour = state.time_ms // state.funding.tick_ms
    return [Listing(market)]


def get_default_listing_tier(state: State) -> int:
    """The liquidity tier a listing takes when it names none: the tier named ``isolated``."""
    for tier_id, tier in state.tiers.items():
        if tier.name == DEFAULT_LISTING_TIER:
            return tier_id
    raise ProtocolError("missing_field", f"liquidity_tier is required (no tier is named {DEFAULT_LISTING_TIER!r})",
                        field="liquidity_tier")


def compute_oracle_operators_changes(state: State, action: SetOracleOperators) -> list[Change]:
    """``set_oracle_operators``: the sorted new list. Raises ``no_oracle_operators``,
    ``invalid_address``, ``duplicate_oracle_operator``."""
    if not action.operators:
        raise ProtocolError("no_oracle_operators", "the oracle needs at least one operator", field="operators")
    new = [normalize_address(a, field=f"operators[{i}]") for i, a in enumerate(action.operators)]
    if len(set(new)) != len(new):
        raise ProtocolError("duplicate_oracle_operator", "an operator is listed twice", field="operators")
    old = list(state.oracle_operators)
    # any change of who sets prices is at least risk increasing; one that could hand a market's median
    # to the newcomers is critical (bastion.core.governance.classify, rule oracle_median_capture)
    risk = NEUTRAL if set(new) == set(old) else RISK_INCREASING
    return [Change(ParamPath(ParamGroup.ORACLE_OPERATORS), old, sorted(new), risk)]


def compute_treasury_spend_changes(state: State, action: TreasurySpend) -> list[Effect]:
    """``treasury_spend``: its ``Payment``. Raises ``invalid_address``, the subaccount number and
    amount codes (``bastion.core.accounts``)."""
    owner = normalize_address(action.to_owner, field="to_owner")
    accounts.check_subaccount_number(action.to_subaccount)
    amount = accounts.parse_positive_usdc(action.amount)
    return [Payment(owner, action.to_subaccount, amount, treasury=state.fees_account)]


def compute_insurance_transfer_changes(state: State, action: InsuranceTransfer) -> list[Effect]:
    """``insurance_transfer``: its ``FundTransfer``. Raises ``unknown_pool``, ``same_pool`` and the
    amount codes."""
    if action.from_pool != TREASURY and action.from_pool not in state.insurance_funds:
        raise ProtocolError("unknown_pool", f"no insurance fund {action.from_pool!r} (nor the treasury)",
                            field="from_pool")
    if action.to_pool not in state.insurance_funds:
        raise ProtocolError("unknown_pool", f"no insurance fund {action.to_pool!r}", field="to_pool")
    if action.from_pool == action.to_pool:
        raise ProtocolError("same_pool", "from_pool and to_pool are the same fund", field="to_pool")
    amount = accounts.parse_positive_usdc(action.amount)
    return [FundTransfer(action.from_pool, action.to_pool, amount)]


def compute_upgrade_changes(state: State, action: UpgradeIsolatedToCross) -> list[Effect]:
    """``upgrade_isolated_to_cross``: the market's ``isolated_only`` and the merge of its fund.
    Raises ``unknown_market``, ``market_delisted``, ``market_not_isolated``."""
    market = get_live_market(state, action.market)
    if not market.isolated_only:
        raise ProtocolError("market_not_isolated", f"{market.ticker} already trades in the cross pool", field="market")
    return [Change(ParamPath(ParamGroup.MARKET, market.ticker, "isolated_only"), True, False, RISK_INCREASING),
            FundMerge(market.ticker, fund=state.insurance_funds[market.ticker])]


def compute_set_guardian_changes(state: State, action: SetGuardian) -> list[Change]:
    """Validate ``set_guardian`` against the state: its changes, always ``critical``. Raises
    ``invalid_field``, ``invalid_address``, ``missing_field``, ``invalid_time``, ``invalid_guardian_expiry``."""
    guardian = state.guardian
    if action.address is None:
        if action.expires is not None:
            raise ProtocolError("invalid_field", "expires is only for a guardian address", field="expires")
        address, expires_ms = None, None
    else:
        address = normalize_address(action.address, field="address")
        if action.expires is None:
            raise ProtocolError("missing_field", "set_guardian with an address needs expires", field="expires")
        expires_ms = parse_iso_ms(action.expires, field="expires")
        if expires_ms <= state.time_ms:
            raise ProtocolError("invalid_guardian_expiry", "expires must be after the current block time",
                                field="expires")
    return [Change(ParamPath(ParamGroup.GUARDIAN, "", "address"), guardian.address, address, CRITICAL),
            Change(ParamPath(ParamGroup.GUARDIAN, "", "expires_ms"), guardian.expires_ms, expires_ms, CRITICAL)]


# --------------------------------------------------------------------------------------- whole proposal
def check_proposal_changes(state: State, changes: list[Effect]) -> None:
    """What single actions cannot check, over changes in order (see the module docstring): raises
    ``conflicting_actions``, ``insufficient_treasury``, ``insufficient_insurance_fund``,
    ``unknown_pool``, ``too_few_oracle_operators``."""
    # money moves may repeat within a proposal
    names = [change.name for change in changes if not isinstance(change, (Payment, FundTransfer))]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ProtocolError("conflicting_actions", f"{name} is changed twice by one proposal", field="actions")
    _check_money_moves(state, changes)
    _check_oracle_sources(state, changes)


def _check_money_moves(state: State, changes: list[Effect]) -> None:
    # a fund can give only its protocol-owned part: the staked part is the stakers' (core.staking)
    balances = {TREASURY: state.fees_account,
                **{pool: staking.protocol_part(state, pool) for pool in state.insurance_funds}}
    for move in changes:
        if isinstance(move, Payment):
            _debit(balances, TREASURY, move.amount)
        elif isinstance(move, FundTransfer):
            for pool, field in ((move.from_pool, "from_pool"), (move.to_pool, "to_pool")):
                if pool not in balances:
                    raise ProtocolError("unknown_pool", f"the {pool} fund is merged into the cross fund earlier in "
                                        "this proposal", field=field)
            _debit(balances, move.from_pool, move.amount)
            balances[move.to_pool] += move.amount
        elif isinstance(move, FundMerge):
            balances[CROSS_POOL] += balances.pop(move.pool)


def _debit(balances: dict[str, int], pool: str, amount: int) -> None:
    if balances[pool] < amount:
        code = "insufficient_treasury" if pool == TREASURY else "insufficient_insurance_fund"
        raise ProtocolError(code, f"the {pool} holds {balances[pool]} micro-USDC (after this proposal's earlier "
                            f"moves), {amount} requested", field="amount", available=balances[pool])
    balances[pool] -= amount


def _check_oracle_sources(state: State, changes: list[Effect]) -> None:
    """Every market that still uses its oracle (not settled) can reach ``min_sources`` fresh prices."""
    operators = len(state.oracle_operators)
    min_sources = {t: m.oracle_params.min_sources for t, m in state.markets.items() if m.status != SETTLED}
    for change in changes:
        match change:
            case Change(path=ParamPath(group=ParamGroup.ORACLE_OPERATORS)):
                operators = len(change.new)
            case Change(path=ParamPath(group=ParamGroup.MARKET_ORACLE, attr="min_sources")):
                min_sources[change.path.key] = change.new
            case Listing():
                min_sources[change.market.ticker] = change.market.oracle_params.min_sources
    for ticker, needed in min_sources.items():
        if needed > operators:
            raise ProtocolError("too_few_oracle_operators", f"{ticker} needs {needed} oracle sources, there would be "
                                f"{operators} operators", field="operators", market=ticker)


# --------------------------------------------------------------------------------------- apply
def _oracle_rules(params: OracleParams) -> ev.OracleRules:
    """A listed market's oracle rules as the ``market_listed`` event nests them."""
    return ev.OracleRules(min_sources=params.min_sources, max_staleness_ms=params.max_staleness_ms,
                          max_source_deviation_ppm=params.max_source_deviation_ppm,
                          max_move_per_block_ppm=params.max_move_per_block_ppm)


def apply_operation(state: State, value: Operation, source: ParamSource, events: Events) -> None:
    """Apply a validated operation (a listing or a money move) with its event; no parameter history."""
    by: dict[str, Any] = {"source": source.kind, "proposal_id": source.ref if source.kind == "proposal" else None,
                          "proposal_number": source.number if source.kind == "proposal" else None}
    match value:
        case Listing(market=market):
            list_market(state, market)
            emit(events, ev.MarketListed, market=market.ticker, size_decimals=market.size_decimals,
                 price_decimals=market.price_decimals, oracle_price=market.oracle_price, tier_id=market.tier_id,
                 min_order_lots=market.min_order_lots, max_open_interest_lots=market.max_open_interest_lots,
                 maker_fee_ppm=market.maker_fee_ppm, taker_fee_ppm=market.taker_fee_ppm,
                 isolated_only=market.isolated_only, status=market.status,
                 oracle=_oracle_rules(market.oracle_params), **by)
        case Payment():
            state.fees_account -= value.amount
            sub = accounts.get_or_create_subaccount(state, value.owner, value.number)
            sub.balance += value.amount
            state.touch(sub.key)
            emit(events, ev.TreasurySpent, to_owner=value.owner, to_number=value.number, amount=value.amount,
                 treasury=state.fees_account, **by)
        case FundTransfer():
            if value.from_pool == TREASURY:
                state.fees_account -= value.amount
            else:
                staking.move_fund(state, value.from_pool, -value.amount, FundFlow.PROTOCOL)
            staking.move_fund(state, value.to_pool, value.amount, FundFlow.PROTOCOL)
            emit(events, ev.InsuranceTransferred, from_pool=value.from_pool, to_pool=value.to_pool,
                 amount=value.amount, insurance_fund=state.insurance_funds[value.to_pool], **by)
        case FundMerge():
            staking.merge_stakes(state, value.pool)
            amount = state.insurance_funds.pop(value.pool)
            state.insurance_funds[CROSS_POOL] += amount
            paused_until = state.withdrawals_paused_until.pop(value.pool, None)
            if paused_until is not None:
                state.withdrawals_paused_until[CROSS_POOL] = max(paused_until,
                                                                 state.withdrawals_paused_until.get(CROSS_POOL, -1))
            emit(events, ev.InsuranceFundMerged, pool=value.pool, into=CROSS_POOL, amount=amount,
                 insurance_fund=state.insurance_funds[CROSS_POOL], **by)
        case DisputeResolution():
            disputes.apply_resolution(state, value, events)
        case IncidentOpening():
            incidents.apply_opening(state, value, source, events)
        case _:
            raise InvariantViolation(f"unknown operation {value!r}")
    state.touch(("global",))
    if state.fees_account < 0 or min(state.insurance_funds.values()) < 0:
        raise InvariantViolation(f"{value.name} overdrew the treasury or an insurance fund")


def list_market(state: State, market: Market) -> None:
    """Add a validated new market (and its empty insurance fund), keeping markets and funds sorted
    by name. Every current operator counts as having submitted the listing price now."""
    market.submissions = {operator: (market.oracle_price, state.time_ms) for operator in state.oracle_operators}
    items = sorted([*state.markets.items(), (market.ticker, market)], key=lambda item: item[0])
    state.markets.clear()
    state.markets.update(items)
    funds = sorted([*state.insurance_funds.items(), (market.ticker, 0)])
    state.insurance_funds.clear()
    state.insurance_funds.update(funds)
    state.touch(market.key)
