"""The dispute book's records (issue 18): plain objects kept in ``State.disputes``.

``bastion.core.disputes`` writes them (targets, disputes, rulings, payouts) and
``bastion.core.incidents`` writes the incident programs; ``bastion.core.leaves`` hashes and
snapshots them (leaves ``("disputes",)``, ``("dispute_target", id)``, ``("dispute", id)``,
``("incident", id)``). Every amount is an integer: micro-USDC, lots, ticks, ms of block time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from bastion.core.params import DisputeParams

# what a target is: the event that closed (part of) an owner's position without the owner asking
TARGET_KINDS: Final = ("liquidation", "backstop_takeover", "deleveraging", "final_settlement")
CLAIM_KINDS: Final = ("oracle_glitch", "engine_deviation", "other")
# a dispute's life: open (the council may rule) -> ruled (appeal window) -> upheld | rejected, or
# open -> escalated (deadline missed: a token vote) and ruled -> appealed (a token vote) -> upheld | rejected
OPEN, RULED, APPEALED, ESCALATED, UPHELD, REJECTED = "open", "ruled", "appealed", "escalated", "upheld", "rejected"
FINAL_STATUSES: Final = (UPHELD, REJECTED)
RESOLVE_DISPUTE: Final = "resolve_dispute"
OPEN_INCIDENT_PROGRAM: Final = "open_incident_program"
CRITICAL: Final = "critical"               # params.RISK_CLASSES' strictest class
# the proposer of the token votes the protocol submits for disputes (appeals, escalations): an address
# no key signs for, so nobody cancels them as their proposer, and no proposer threshold applies
DISPUTE_PROPOSER: Final = "0x" + "0" * 40


@dataclass(slots=True)
class DisputeTarget:
    """One owner's subaccount closed in one market by one kind of event in one block: what a dispute
    names. ``size`` is the closed size signed as the position was; ``received_usdc`` what the
    account got for it (net of the liquidation fee, negative when it paid); ``reference_price`` the
    market's oracle price before the block; ``loss_usdc`` = max(0, value of ``size`` at the
    reference price - ``received_usdc``), the most a dispute may claim."""

    target_id: int
    kind: str
    owner: str
    number: int
    market: str
    pool: str
    height: int
    time_ms: int
    size: int
    received_usdc: int
    oracle_price: int
    reference_price: int
    loss_usdc: int
    claimed_by: str | None = None          # "dispute:<id>" or "incident:<id>": a target is compensated once
    # the fresh oracle submissions of the market at the end of the block, [operator, ticks] by operator:
    # the evidence an incident program's sources_median reference reads (the median without the glitching ones)
    sources: list[list[str | int]] = field(default_factory=list)


@dataclass(slots=True)
class Dispute:
    """An ``open_dispute`` and everything that happened to it since (statuses above)."""

    dispute_id: int
    target_id: int
    target_kind: str
    target_height: int
    owner: str
    number: int
    market: str
    pool: str
    claim_kind: str
    claim_usdc: int
    loss_usdc: int
    bond_usdc: int
    statement: str
    opened_height: int
    opened_ms: int
    deadline_ms: int                       # the council rules before this block time
    status: str = OPEN
    votes: dict[str, tuple[bool, int]] = field(default_factory=dict)  # member -> (upheld, award), latest
    ruling_upheld: bool | None = None      # the council's ruling (k members agreeing)
    ruling_award_usdc: int = 0
    appeal_until_ms: int | None = None
    appellant: str | None = None           # who appealed (None for an escalation)
    appeal_bond_usdc: int = 0
    proposal_id: str | None = None         # the appeal's or escalation's token vote
    upheld: bool | None = None             # the final outcome
    award_usdc: int = 0                    # the final award before the caps
    paid_usdc: int = 0                     # what was paid after the caps
    capped_by: str | None = None           # dispute | fund_share | epoch | fund: the cap that bound, if any
    closed_height: int | None = None


@dataclass(slots=True)
class IncidentProgram:
    """A governance compensation program for an oracle incident (``bastion.core.incidents``):
    ``payouts`` are what each subaccount may still claim (removed when claimed), ``escrow_usdc``
    their sum, held out of the insurance fund until claimed or returned at ``claim_until_ms``."""

    program_id: int
    market: str
    pool: str
    from_height: int
    to_height: int
    rule: str                              # pre_block | fixed | sources_median
    reference_price: int                   # ticks (0 for pre_block: each target's own reference)
    budget_usdc: int
    entitled_usdc: int                     # the compensation the protocol computed, before the budget
    escrow_usdc: int
    targets: int                           # how many targets the program covers
    opened_height: int
    claim_until_ms: int
    proposal_id: str
    status: str = "open"                   # open | closed
    payouts: dict[tuple[str, int], int] = field(default_factory=dict)
    exclude_sources: list[str] = field(default_factory=list)   # sources_median: the operators left out


@dataclass(slots=True)
class DisputeBook:
    """``State.disputes``: parameters, records and counters. ``escrow_usdc`` (bonds held plus incident
    escrows) counts in collateral conservation. ``live`` (derived, rebuilt from ``disputes`` on a
    snapshot read) lists the disputes not yet final, for the end-of-block step."""

    params: DisputeParams = field(default_factory=DisputeParams)
    targets: dict[int, DisputeTarget] = field(default_factory=dict)     # by id, in creation order
    disputes: dict[int, Dispute] = field(default_factory=dict)          # by id, in opening order
    programs: dict[int, IncidentProgram] = field(default_factory=dict)  # by id, in opening order
    next_target_id: int = 1
    next_dispute_id: int = 1
    next_program_id: int = 1
    escrow_usdc: int = 0
    epoch: int = 0                         # block time // epoch_ms of the last payment
    epoch_paid_usdc: int = 0               # awards paid in that epoch
    live: dict[int, None] = field(default_factory=dict)  # derived: ids of disputes not final, in order


# --------------------------------------------------------------------------------------- governance effects
# The effects of the governance actions resolve_dispute and open_incident_program
# (bastion.core.governance.changes lists them among its operations; applied by
# bastion.core.governance.actions.apply_operation).
@dataclass(frozen=True, slots=True)
class DisputeResolution:
    """A ``resolve_dispute``, validated: the token vote's outcome of a dispute (``bastion.core.disputes``),
    in the governed ``disputes.appeal_tier`` class."""

    dispute_id: int
    upheld: bool
    award: int
    risk: str

    @property
    def name(self) -> str:
        """The dotted or operation name (parameter history, conflict checks, the web diff)."""
        return f"{RESOLVE_DISPUTE}.{self.dispute_id}"

    @property
    def old_record(self) -> None:
        """The old value as recorded and shown."""
        return None

    @property
    def new_record(self) -> DisputeResolution:
        """The new value as recorded and shown."""
        return self


@dataclass(frozen=True, slots=True)
class IncidentOpening:
    """An ``open_incident_program``, validated (``bastion.core.incidents``): money leaves an insurance
    fund, so it is critical (as an ``insurance_transfer``)."""

    market: str
    from_height: int
    to_height: int
    rule: str
    reference_price: int
    budget: int
    exclude_sources: tuple[str, ...] = ()

    @property
    def risk(self) -> str:
        """The risk class of the operation."""
        return CRITICAL

    @property
    def name(self) -> str:
        """The dotted or operation name (parameter history, conflict checks, the web diff)."""
        return f"{OPEN_INCIDENT_PROGRAM}.{self.market}.{self.from_height}-{self.to_height}"

    @property
    def old_record(self) -> None:
        """The old value as recorded and shown."""
        return None

    @property
    def new_record(self) -> IncidentOpening:
        """The new value as recorded and shown."""
        return self
