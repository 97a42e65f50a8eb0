"""Pydantic models of the API's bodies and answers: they make ``/openapi.json`` (with examples).

Amounts are decimal strings (USDC, sizes and prices on their market's grid; ratios such as
"0.05"); heights, times in ms, nonces and ids are integers.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bastion.core.messages import MAX_TEXT_CHARS
from bastion.core.units import MAX_DECIMAL_CHARS

ADDRESS_EXAMPLE = "0x19e7e376e7c213b7e7e7e46cc70a5dd086daff2a"
SIGNATURE_EXAMPLE = "0x" + "ab" * 65


class Open(BaseModel):
    """Answers may carry more fields than documented (new fields are added, never renamed)."""

    model_config = ConfigDict(extra="allow")


class Error(BaseModel):
    code: str = Field(description="stable snake_case protocol code", examples=["insufficient_margin"])
    message: str = Field(
        examples=["after a full fill at the limit price the account would be below its initial margin"])
    field: str | None = Field(default=None, examples=["size"])


class Envelope(BaseModel):
    """A signed transaction. ``signature`` is the EIP-712 signature of ``Envelope(sender, nonce,
    msgType, msg)`` (``GET /v1/signing`` gives the domain and types); ``nonce`` is the client's clock
    in microseconds. Nodes started with ``--unsigned`` (trusted local bots) take the sender as given."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "msg": {"type": "place_order", "subaccount": 0, "market": "BTC-USD", "side": "buy", "size": "0.1",
                "price": "50000", "client_id": 7},
        "sender": ADDRESS_EXAMPLE, "nonce": 1767225601000000, "signature": SIGNATURE_EXAMPLE}]})

    msg: dict[str, Any] = Field(description="a message as in docs/scenarios.md, with its \"type\"")
    sender: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    nonce: int = Field(ge=0, le=2**63 - 1)
    signature: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{130}$")


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    txs: list[Any] = Field(description="envelopes (schema Envelope), judged one by one, in order: each is "
                                       "accepted or refused on its own, a malformed one included (it is refused "
                                       "with its index; the batch is not)")


class TxAccepted(BaseModel):
    status: str = Field(examples=["accepted"])
    sender: str
    nonce: int
    arrival: int = Field(description="arrival number at the node (first come, first served)")


class TxStatus(BaseModel):
    status: str = Field(description="committed | pending | refused | unknown", examples=["committed"])
    height: int | None = None
    index: int | None = None
    result: dict[str, Any] | None = Field(default=None, examples=[{"ok": True, "order_id": 12}])
    code: str | None = Field(default=None, description="refused: why the block producer dropped it",
                             examples=["no_collateral"])
    message: str | None = None


class BatchItem(BaseModel):
    index: int
    status: str = Field(description="accepted | refused")
    sender: str | None = None
    nonce: int | None = None
    arrival: int | None = None
    code: str | None = None
    message: str | None = None
    field: str | None = None


class BatchResult(BaseModel):
    accepted: int
    refused: int
    results: list[BatchItem]


class Status(Open):
    chain_id: str
    height: int
    time: str
    state_hash: str
    mempool: int
    indexed_height: int | None
    signed: bool = Field(description="false when the node takes senders as given (--unsigned)")


class SigningInfo(BaseModel):
    domain: dict[str, Any] = Field(examples=[{"name": "Bastion", "version": "1", "chainId": 112233445566}])
    types: dict[str, list[dict[str, str]]]
    primary_type: str = Field(examples=["Envelope"])
    nonce_unit: str = Field(examples=["microseconds since the Unix epoch"])
    nonce_window_past_ms: int
    nonce_window_future_ms: int


class Tier(Open):
    id: int
    name: str
    initial_margin: str = Field(examples=["0.05"])
    maintenance_fraction: str
    maintenance_margin: str


class Market(Open):
    ticker: str = Field(examples=["BTC-USD"])
    status: str
    stale: bool
    size_decimals: int
    price_decimals: int
    isolated_only: bool
    cross_margin_cap: str = Field(examples=["0"], description="while isolated_only: the maintenance requirement "
                                  "(USDC) cross subaccounts may carry in this market (issue 20)")
    tier: Tier
    oracle: dict[str, Any]
    funding: dict[str, Any]
    open_interest: str
    best_bid: str | None
    best_ask: str | None
    ui_requirements: dict[str, Any] = Field(description="what a frontend must show and enforce (governed, "
                                                        "set_ui_requirements): risk_banner, isolation_threshold, "
                                                        "default_leverage, max_leverage, confirm_above_leverage")


class Markets(BaseModel):
    height: int
    markets: list[Market]


class Book(BaseModel):
    height: int
    market: str
    bids: list[list[str]] = Field(description="[price, size] per level, best first", examples=[[["49999", "1.2"]]])
    asks: list[list[str]] = Field(examples=[[["50001", "0.4"]]])


class Position(Open):
    market: str
    size: str = Field(description="signed: negative is short", examples=["0.1"])
    side: str
    entry_price: str
    unrealized_pnl: str
    notional: str
    initial_margin: str
    maintenance_margin: str
    liquidation_price: str | None = Field(description="see bastion.api.risk; null when no price liquidates it")
    move_to_liquidation: str | None = Field(description="(liquidation - oracle) / oracle", examples=["-0.471578"])


class Subaccount(Open):
    height: int
    owner: str
    number: int
    mode: str
    balance: str
    equity: str
    initial_margin: str
    maintenance_margin: str
    free_collateral: str
    positions: list[Position]


class Subaccounts(BaseModel):
    height: int
    subaccounts: list[Subaccount]


class OpenOrders(BaseModel):
    """One page of open orders; ``next_cursor`` (null on the last page) asks for the next one."""

    height: int
    orders: list[dict[str, Any]]
    next_cursor: str | None = None


class Rows(BaseModel):
    """Rows of a read model (history), as of ``indexed_height`` (which may lag the head by a block);
    ``next_cursor`` (null on the last page) asks for the next page (``?cursor=``)."""

    indexed_height: int
    rows: list[dict[str, Any]]
    next_cursor: str | None = None


class InsuranceFunds(Open):
    height: int
    funds: list[dict[str, Any]]


class BlockHeader(Open):
    height: int
    time: str
    prev_hash: str
    state_hash: str
    block_hash: str
    tx_count: int


class Blocks(BaseModel):
    blocks: list[BlockHeader]


class Block(BlockHeader):
    txs: list[dict[str, Any]]
    results: list[dict[str, Any]]
    events: list[dict[str, Any]]


REPORT_EXAMPLE = "c261cc4034b309c55ea3e1f6e4d80e496e2c448abceb850bab89a6cf86792dd1"  # of STRESS_REPORT_EXAMPLE
# a complete (two-scenario) report as ``bastion.stress.report.build_report`` writes it (tested valid)
STRESS_REPORT_EXAMPLE: dict[str, Any] = {
    "format": "bastion-stress-report/3",
    "inputs": {"state_hash": "cd" * 32, "height": 1200, "accounts": 4, "markets": ["BTC-USD"],
               "insurance_funds_usdc": [["cross", 1000000000000]],
               "scenario_set": {"name": "gate-default", "version": 1, "hash": "ef" * 32}, "seed": 7,
               "data_hash": "01" * 32, "code": {"bastion": "0.1.0", "engine": "fast-1", "numpy": "2.3.0"},
               "book_depth_usdc": [["BTC-USD", 0, 0, 2000000000000, 2000000000000]],
               "staked_usdc": [["cross", 0]], "fund_targets_usdc": [["cross", 0, 0]]},
    "scenarios": [
        {"index": 0, "name": "down-30", "kind": "shock", "steps": 1, "liquidations": 2,
         "liquidated_notional_usdc": 61500000000, "insurance_fees_usdc": 615000000, "insurance_payouts_usdc": 0,
         "insurance_drawdown_usdc": 0, "adl_notional_usdc": 0, "bad_debt_usdc": 0, "loss_usdc": 0,
         "depleted_pools": [], "trader_loss_usdc": 0, "backstop_peak_usdc": 0,
         "insurance_final_usdc": 1000615000000, "stakers_loss_usdc": 0},
        {"index": 1, "name": "thin-down-10", "kind": "thin_book", "steps": 1, "liquidations": 1,
         "liquidated_notional_usdc": 30100000000, "insurance_fees_usdc": 0, "insurance_payouts_usdc": 1200000000,
         "insurance_drawdown_usdc": 1200000000, "adl_notional_usdc": 0, "bad_debt_usdc": 0, "loss_usdc": 1200000000,
         "depleted_pools": [], "trader_loss_usdc": 0, "backstop_peak_usdc": 0,
         "insurance_final_usdc": 998800000000, "stakers_loss_usdc": 0}],
    "summary": {"scenarios": 2, "depleted": 0, "depletion_probability_ppm": 0, "var99_loss_usdc": 1200000000,
                "es99_loss_usdc": 1200000000, "worst_bad_debt_usdc": 0, "worst_drawdown_usdc": 1200000000,
                "liquidations": 3, "liquidated_notional_usdc": 91600000000, "var99_trader_loss_usdc": 0,
                "worst_trader_loss_usdc": 0, "scenarios_with_trader_loss": 0, "worst_backstop_peak_usdc": 0,
                "lowest_final_funds_usdc": 998800000000, "var99_stakers_loss_usdc": 0,
                "worst_stakers_loss_usdc": 0},
    "thresholds": {"max_depletion_probability": "0.01", "max_var99_loss_of_fund": "0.5", "max_es99_loss_of_fund": "1",
                   "max_loss_to_traders": "0"},
    "thresholds_source": "governance",
    "verdict": {"passed": True, "insurance_funds_total_usdc": 1000000000000, "checks": [
        {"name": "depletion_probability", "value": 0, "limit_ppm": 10000, "passed": True},
        {"name": "var99_loss_of_fund", "value": 1200000000, "limit_ppm": 500000, "passed": True},
        {"name": "es99_loss_of_fund", "value": 1200000000, "limit_ppm": 1000000, "passed": True},
        {"name": "loss_to_traders_var99", "value": 0, "limit_usdc": 0, "passed": True}]},
}
HEADLINE_EXAMPLE: dict[str, Any] = {
    "report_hash": REPORT_EXAMPLE, "held": True, "url": f"/v1/stress/reports/{REPORT_EXAMPLE}",
    "html_url": f"/v1/stress/reports/{REPORT_EXAMPLE}/html", "verdict": "pass", "scenarios": 2, "depleted": 0,
    "depletion_probability": "0", "var99_loss": "1200", "es99_loss": "1200", "worst_bad_debt": "0",
    "worst_drawdown": "1200", "insurance_funds_total": "1000000", "thresholds": STRESS_REPORT_EXAMPLE["thresholds"],
    "thresholds_source": "governance", "state_hash": "cd" * 32, "height": 1200, "scenario_set": "gate-default v1"}


class Attestation(Open):
    member: str = Field(examples=[ADDRESS_EXAMPLE])
    report_hash: str = Field(description="SHA-256 hex of the stress report", examples=[REPORT_EXAMPLE])
    verdict: str = Field(description="pass | fail", examples=["pass"])
    time: str = Field(description="block time of the attestation", examples=["2026-01-01T01:00:00Z"])
    height: int
    current_member: bool
    valid: bool = Field(description="a pass by a current member, made since queueing and not older than "
                                    "governance.attestation_max_age_s (it counts for the gate)")


class ReportHeadline(BaseModel):
    """A report hash an attestation names, as this node holds it (``bastion.api.reports``): the
    figures are null when it does not hold the report (anyone may upload it: POST /v1/stress/reports)."""

    model_config = ConfigDict(json_schema_extra={"examples": [HEADLINE_EXAMPLE]})

    report_hash: str
    held: bool = Field(description="this node holds the report (off-chain; not part of the state)")
    url: str | None = Field(description="the report JSON (GET)")
    html_url: str | None = Field(description="the report's HTML page (GET)")
    verdict: str | None = Field(description="pass | fail, as the report's own figures give it")
    scenarios: int | None
    depleted: int | None = Field(description="scenarios in which some insurance fund could not pay a loss")
    depletion_probability: str | None = Field(description="depleted / scenarios, rounded up (6 decimals)")
    var99_loss: str | None = Field(description="USDC: the 99% quantile of losses")
    es99_loss: str | None = Field(description="USDC: the mean of the worst 1% of losses")
    worst_bad_debt: str | None = Field(description="USDC")
    worst_drawdown: str | None = Field(description="USDC: the largest insurance fund drawdown of any scenario")
    insurance_funds_total: str | None = Field(description="USDC: the funds the loss limits are shares of")
    thresholds: dict[str, str] | None = Field(description="the limits of the verdict")
    thresholds_source: str | None = Field(description="governance (the state's own) | override (a file)")
    state_hash: str | None = Field(description="the state the report was computed on")
    height: int | None
    scenario_set: str | None
    registered: dict[str, Any] | None = Field(
        default=None, description="the on-chain registration (register_stress_report): verdict, figures, "
                                  "registered_by, registered_ms; null when the hash is not registered")
    matches_registration: bool | None = Field(
        default=None, description="the held report has the registered verdict and figures (null when not "
                                  "held or not registered)")


class StressGate(Open):
    """The council's stress gate on a proposal (``bastion.core.governance.council``)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "applies": True, "threshold": 2, "report_hash": REPORT_EXAMPLE, "passes": 2, "open": True,
        "passes_by_report": {REPORT_EXAMPLE: 2},
        "attestations": [{"member": ADDRESS_EXAMPLE, "report_hash": REPORT_EXAMPLE, "verdict": "pass",
                          "time": "2026-01-01T01:00:00Z", "height": 12, "current_member": True, "valid": True}],
        "reports": {REPORT_EXAMPLE: HEADLINE_EXAMPLE}}]})

    applies: bool = Field(description="the proposal's risk class is risk_increasing or critical")
    threshold: int = Field(description="k: valid passes needed on one report hash")
    report_hash: str | None = Field(description="the hash with the most valid passes (the smaller on a tie)")
    passes: int = Field(description="valid passes on report_hash")
    open: bool = Field(description="an execute now would pass the gate (always true where it does not apply)")
    passes_by_report: dict[str, int]
    attestations: list[Attestation] = Field(description="each member's latest attestation")
    reports: dict[str, ReportHeadline] | None = Field(
        default=None, description="per attested report hash: whether this node holds the report, links, verdict "
                                  "and headline figures (GET /v1/governance/proposals[/{id}])")


class Participation(Open):
    """Turnout and delegate participation at the proposal's snapshot (``bastion.core.transparency``);
    BGOV amounts and ratios (6 decimals, rounded down) as decimal strings."""

    snapshot_height: int
    votes_cast: str = Field(examples=["2000"])
    total_supply: str
    delegated_supply: str
    turnout_of_supply: str = Field(examples=["0.571428"])
    turnout_of_delegated: str
    delegates: int
    delegates_voted: int
    voted_power: str
    voted_power_share: str
    quorum_votes: str
    largest_delegate_votes: str
    quorum_alone: bool = Field(description="alert: one delegate alone held the quorum at the snapshot")


class Proposal(Open):
    proposal_id: str
    number: int
    proposer: str
    title: str
    risk_class: str = Field(examples=["risk_increasing"])
    status: str = Field(examples=["queued"])
    snapshot_height: int
    deadline_height: int
    queued_ms: int | None
    closed_height: int | None
    tally: dict[str, str] = Field(examples=[{"yes": "2000", "no": "0", "abstain": "0", "veto": "0"}])
    actions: list[dict[str, Any]]
    stress_gate: StressGate
    participation: Participation | None = Field(description="null until the snapshot block is committed")


class ProposalAt(Proposal):
    height: int


class Proposals(BaseModel):
    height: int
    proposals: list[Proposal]


class Pause(Open):
    scope: str = Field(examples=["market"])
    market: str | None = Field(examples=["BTC-USD"])
    start: str
    end: str


class Guardian(Open):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "height": 12, "address": ADDRESS_EXAMPLE, "expires": "2026-07-01T00:00:00Z", "expired": False,
        "pauses": [{"scope": "market", "market": "BTC-USD", "start": "2026-01-01T00:00:10Z",
                    "end": "2026-01-01T01:00:10Z"}],
        "pauses_used": [{"scope": "market", "market": "BTC-USD"}], "max_pause_s": 259200, "unpause_grace_s": 600}]})

    height: int
    address: str | None = Field(description="null when there is no guardian")
    expires: str | None
    expired: bool = Field(description="the guardian's power has lapsed (block time >= expires)")
    pauses: list[Pause] = Field(description="pauses in force")
    pauses_used: list[dict[str, str | None]] = Field(description="pause keys spent in the current term")
    max_pause_s: int
    unpause_grace_s: int


class Rollout(Open):
    rollout_id: int
    market: str = Field(examples=["BTC-USD"])
    param: str = Field(examples=["max_open_interest"])
    status: str = Field(description="active | completed | halted")
    step: int
    steps: int
    start: str
    target: str
    value: str = Field(description="the parameter's current value")
    path: str = Field(examples=["liquidity_tiers.0.initial_margin_ppm"], description="the governed parameter moved")
    planned: list[str] = Field(description="the value after each step, first to last")
    interval_s: int
    gates: dict[str, Any] = Field(examples=[{"min_insurance_fund": "1000", "max_liquidations": 3,
                                             "max_top_account_share": "0.5"}])
    measured: dict[str, Any] = Field(description="each gate's measure when the last step was due",
                                     examples=[{"top_account_share": "0.583334", "liquidations": 0}])
    gate_checks: list[dict[str, Any]] = Field(description="per gate: its measure's name, limit and last measured "
                                              "value (null before the first due step)")
    revert_on_breach: bool
    next_step_time: str
    halt_reason: str | None
    reverted: bool
    proposal_id: str
    ended_height: int | None


class Rollouts(BaseModel):
    height: int
    rollouts: list[Rollout]


class CouncilState(Open):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "height": 12, "members": [ADDRESS_EXAMPLE], "threshold": 1,
        "steward_bounds": {"markets.BTC-USD.taker_fee_ppm": {"max_change_abs": "0.0001", "cooldown_s": 3600}},
        "attestations": [], "steward_last_change_ms": {}, "steward_approvals": []}]})

    height: int
    members: list[str]
    threshold: int
    steward_bounds: dict[str, dict[str, Any]] = Field(description="per parameter: max_change (a ratio of the "
                                                                  "current value) or max_change_abs, cooldown_s")
    attestations: list[dict[str, Any]]
    steward_last_change_ms: dict[str, int]
    steward_approvals: list[dict[str, Any]]


class ParameterHistory(BaseModel):
    height: int
    changes: list[dict[str, Any]]


class Concentration(Open):
    height: int
    holders: int
    nakamoto_one_third: int
    gini: str


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "owner": ADDRESS_EXAMPLE, "subaccount": 0, "market": "BTC-USD", "side": "buy", "size": "1",
        "price": "50000"}]})

    # bounds at the edge (the core checks them again: bastion.core.messages, bastion.core.units)
    owner: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    subaccount: int = Field(default=0, ge=0, le=127)
    market: str = Field(max_length=MAX_TEXT_CHARS)
    side: str = Field(examples=["buy"], max_length=MAX_TEXT_CHARS)
    size: str = Field(max_length=MAX_DECIMAL_CHARS)
    price: str = Field(description="limit price (a market order's worst price)", max_length=MAX_DECIMAL_CHARS)
    reduce_only: bool = False
    isolated_amount: str | None = Field(default=None, max_length=MAX_DECIMAL_CHARS,
                                        description="USDC for the isolated comparison (default: the proposed amount)")


class Isolation(Open):
    """Whether to trade the order from an isolated subaccount, the comparison, and how to do it
    (``bastion.api.preview``): send ``setup`` in order, each after the previous one committed ``ok``,
    then the order from ``target_subaccount``."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "suggested": True, "reasons": ["volatile_tier"], "proposed_amount": "602", "target_subaccount": 1,
        "transfer_amount": "602", "setup": [
            {"type": "transfer", "subaccount": 0, "to_owner": ADDRESS_EXAMPLE, "to_subaccount": 1, "amount": "602"},
            {"type": "set_margin_mode", "subaccount": 1, "mode": "isolated", "market": "ETH-USD"}]}]})

    suggested: bool
    reasons: list[str] = Field(description="dominates_maintenance | volatile_tier", examples=[["volatile_tier"]])
    proposed_amount: str = Field(description="USDC: twice the order's initial requirement plus the fee, "
                                             "rounded up to a whole USDC", examples=["602"])
    target_subaccount: int | None = Field(description="where to place it isolated: an idle subaccount already "
                                                      "isolated to the market, else the lowest free number; null "
                                                      "when all 128 are in use", examples=[1])
    transfer_amount: str = Field(description="USDC moved from the order's subaccount: the isolated amount less "
                                             "what the target already holds", examples=["602"])
    setup: list[dict[str, Any]] = Field(description="messages to sign and send before the order, in order "
                                                    "(transfer, then set_margin_mode; each left out when not needed)")


class Preview(Open):
    height: int
    accepted: bool
    fill_size: str = Field(description="what a full fill at the limit price fills: the size, or less when "
                                        "matching's reduce-only rule caps it at the open position", examples=["0.17"])
    capped: bool = Field(description="fill_size is less than size (reduce-only)")
    rejection: dict[str, Any] | None
    before: dict[str, Any]
    after: dict[str, Any]
    isolation: Isolation
    ui_requirements: dict[str, Any] = Field(description="the market's governed UI requirements and this order "
                                                        "against them: leverage_after, over_max_leverage (the "
                                                        "order is then refused: rejection ui_max_leverage), "
                                                        "confirmation_required")


class StressReportDocument(Open):
    """A stress report as ``bastion stress`` writes it (``report.json``, format
    ``bastion-stress-report/3``; ``docs/stress.md``): every figure an integer (micro-USDC, ppm,
    counts). ``report_hash`` = SHA-256 of its canonical bytes (sorted keys, compact separators, ASCII)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [STRESS_REPORT_EXAMPLE]})

    format: str = Field(examples=["bastion-stress-report/3"])
    inputs: dict[str, Any] = Field(description="what it was computed from: state_hash, height, accounts, markets, "
                                               "insurance_funds_usdc, scenario_set, seed, data_hash, code")
    scenarios: list[dict[str, Any]] = Field(description="one result per scenario, in index order")
    summary: dict[str, Any] = Field(description="the cross-scenario figures (stress.report.summarise)")
    thresholds: dict[str, Any]
    thresholds_source: str = Field(examples=["governance"])
    verdict: dict[str, Any] = Field(description="{passed, insurance_funds_total_usdc, checks}")


class ReportStored(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "report_hash": REPORT_EXAMPLE, "stored": True, "created": True, "verdict": "pass",
        "url": f"/v1/stress/reports/{REPORT_EXAMPLE}", "html_url": f"/v1/stress/reports/{REPORT_EXAMPLE}/html"}]})

    report_hash: str = Field(description="SHA-256 hex of the canonical bytes, recomputed by the node")
    stored: bool = Field(description="the node holds the report (always true in a 200/201 answer)")
    created: bool = Field(description="this request wrote it (false: it was already held)")
    verdict: str = Field(description="pass | fail")
    url: str
    html_url: str


class AgentGrant(Open):
    """An owner's grant to an agent key (docs/protocol.md, "Agent keys")."""

    owner: str = Field(examples=[ADDRESS_EXAMPLE])
    agent: str = Field(examples=["0x5c0d0f5e4b7d2a8f9e3c1b6a7d8e9f0a1b2c3d4e"])
    label: str | None = Field(examples=["mm-bot"])
    subaccounts: list[int] | None = Field(description="the subaccounts it may act on; null: all", examples=[[0]])
    permissions: list[str] = Field(description="trade (place orders) and/or cancel (cancel_order, cancel_all)",
                                   examples=[["trade", "cancel"]])
    expires: str = Field(description="RFC 3339 block time from which it no longer works",
                         examples=["2026-01-02T00:00:00Z"])
    expires_ms: int
    authorized: str
    live: bool = Field(description="in force at the answer's block time")


class Agents(BaseModel):
    height: int
    owner: str
    agents: list[AgentGrant] = Field(description="the owner's grants, in authorisation order (expired ones "
                                                 "stay until revoked or replaced)")
    acting_for: list[AgentGrant] = Field(description="the grants naming this address as the agent, one page "
                                                     "(by owner address, ``limit`` a page)")
    next_cursor: str | None = Field(default=None, description="the ``cursor`` of the next page of ``acting_for`` "
                                                              "(null on the last page)")


class TwapOrderView(Open):
    """A live TWAP order and its progress (docs/protocol.md, "TWAP orders")."""

    twap_id: int = Field(examples=[42])
    owner: str = Field(examples=[ADDRESS_EXAMPLE])
    number: int = Field(examples=[0])
    market: str = Field(examples=["BTC-USD"])
    side: str = Field(examples=["buy"])
    size: str = Field(description="the whole size, on the market's grid", examples=["1.5"])
    filled: str = Field(description="traded so far", examples=["0.5"])
    remaining: str = Field(description="size - filled", examples=["1"])
    slices: int = Field(description="slices in all", examples=[120])
    slices_done: int = Field(examples=[40])
    max_slippage: str = Field(description="each slice's guard from the oracle price", examples=["0.03"])
    reduce_only: bool
    next_slice: str = Field(description="RFC 3339 block time from which the next slice is due (it trades at the "
                                        "end of the first block at or after it)", examples=["2026-01-01T00:20:00Z"])
    next_slice_ms: int
    started: str = Field(description="RFC 3339 block time of the placement")


class TwapOrders(BaseModel):
    """One page of an owner's live TWAP orders, by ``twap_id``."""

    height: int
    twap_orders: list[TwapOrderView]
    next_cursor: str | None = Field(default=None, description="the ``cursor`` of the next page (null on the last)")


class DeadmanSwitch(Open):
    """An owner's dead-man's switch (docs/protocol.md, "Dead-man's switch")."""

    height: int
    owner: str = Field(examples=[ADDRESS_EXAMPLE])
    armed: bool
    fires_at: str | None = Field(description="RFC 3339 block time: the switch fires at the end of the first block "
                                             "at or after it (null: not armed)", examples=["2026-01-01T00:01:00Z"])
    fires_at_ms: int | None
    triggers_today: int = Field(description="firings in the current UTC day of block time")
    max_triggers_per_day: int = Field(description="the governed daily limit (bot_limits)")
    min_delay_ms: int = Field(description="the governed minimum delay of a new time (bot_limits)")


class BotLimits(BaseModel):
    """The governed limits of the bot tools, in the genesis / ``set_bot_limits`` form (docs/protocol.md,
    "Bot limits")."""

    height: int
    limits: dict[str, Any] = Field(examples=[{"twap_interval_s": 30, "twap_max_per_subaccount": 5,
                                              "twap_default_slippage": "0.03", "agent_max_per_owner": 8}])


class TelemetrySnapshot(BaseModel):
    """A misuse telemetry snapshot (``bastion.telemetry``, format ``bastion-telemetry/1``) and its hash,
    the SHA-256 of its canonical bytes, which a proposal cites in ``submit_proposal.evidence``."""

    snapshot_hash: str = Field(examples=[REPORT_EXAMPLE])
    snapshot: dict[str, Any] = Field(description="format, chain_id, epoch, markets (per market: orders, fills, "
                                                 "ratios in ppm, self-trade prevention hits, two-sided owners, "
                                                 "liquidation clusters, oracle events, isolation suggestions "
                                                 "and how many were ignored before a liquidation), governance "
                                                 "(concentration, turnout)")


class Exposure(Open):
    """A proposal's voter exposure disclosure (``bastion.core.exposure``)."""

    height: int
    proposal_id: str
    number: int
    risk_class: str
    snapshot_height: int
    markets: dict[str, str] = Field(description="ticker -> effect on its position holders: gains | loses | "
                                                "affected | mixed", examples=[{"BTC-USD": "gains"}])
    delegates: list[dict[str, Any]] = Field(description="exposed delegates, largest exposure first: delegate, "
                                                        "votes (BGOV at the snapshot), directly_exposed, markets "
                                                        "(own_size, own_notional, delegated_notional, delegators)")
    discount: dict[str, Any] = Field(description="the governed discount of directly exposed votes in the "
                                                 "critical tier: exposed_vote_weight, threshold (USDC), applies")


class MakerRewardMarket(BaseModel):
    market: str
    weighted_depth: str = Field(description="USDC: the sum over samples of two-sided depth x volatility weight")
    two_sided_samples: int = Field(description="samples in which the maker quoted both sides in the band")
    samples: int = Field(description="the market's samples in the running epoch")
    time_in_market: str = Field(description="two_sided_samples / samples")
    score: str = Field(description="weighted_depth x time_in_market (USDC-weighted units)")


class MakerRewardRow(BaseModel):
    rank: int
    owner: str
    number: int
    score: str
    share_of_score: str = Field(description="the maker's score over the total")
    estimated_reward: str = Field(description="USDC it would be paid if the epoch closed now (capped)")
    markets: list[MakerRewardMarket]


class MakerRewards(BaseModel):
    height: int
    enabled: bool = Field(description="false while epoch_blocks is 0")
    params: dict[str, Any] = Field(description="the governed parameters, as genesis names them")
    pool: str = Field(description="USDC waiting for the next epoch end")
    epoch: int
    epoch_start_height: int
    epoch_end_height: int | None
    next_sample_height: int | None
    paid_total: str = Field(description="USDC paid to makers since genesis")
    total_score: str
    last_prices: dict[str, str] = Field(description="the oracle price at each market's last sample")
    leaderboard: list[MakerRewardRow]


class ReportVerification(Open):
    """``bastion.stress.verify.verify_report``: the report recomputed from this node's chain."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "report_hash": REPORT_EXAMPLE, "reproduced": True, "recomputed_hash": REPORT_EXAMPLE, "height": 12,
        "state_hash": "ab" * 32, "proposal_id": None,
        "scenario_set": {"name": "gate", "version": 1, "hash": "cd" * 32, "seed": 7}, "difference": None}]})

    report_hash: str
    reproduced: bool = Field(description="the recomputed report has the same bytes")
    recomputed_hash: str
    height: int = Field(description="the height of the stressed state")
    state_hash: str
    proposal_id: str | None = Field(description="the proposal applied to the state, when the report stressed one")
    scenario_set: dict[str, Any]
    difference: str | None = Field(description="the first key path where the documents differ")


class CounterReports(BaseModel):
    height: int
    counter_reports: list[dict[str, Any]] = Field(description="bastion.core.governance.counter_reports records: "
                                                              "figures (integers), bond (micro-USDC), status, "
                                                              "answer, judgements")


class ScheduledUpgrade(Open):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "height": 16, "scheduled": True, "name": "v2.0", "upgrade_height": 40, "code_hash": "11" * 32,
        "reached": False, "node_code_hash": "22" * 32, "node_ready": False, "halt_reason": None}]})

    height: int = Field(description="the node's current height")
    scheduled: bool
    name: str | None
    upgrade_height: int | None = Field(description="from this block on only the named code may apply blocks")
    code_hash: str | None
    reached: bool
    node_code_hash: str = Field(description="the state machine code this node runs (bastion node --code-hash)")
    node_ready: bool = Field(description="this node runs the named code, or nothing is scheduled")
    halt_reason: str | None = Field(description="why this node will not apply the next block, if so")
