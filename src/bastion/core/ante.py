"""The ante check: who may get a transaction into a block at all (docs/protocol.md, "Anti-spam").

As dYdX's ante handlers, it runs before any message handler and costs the sender nothing but the
refusal: **an account with no collateral cannot get transactions into blocks.** An address *has
collateral* when at least one of these holds in the state:

* one of its subaccounts has a positive USDC balance, or a positive equity (net collateral: the
  balance plus the value of its positions, with pending funding, as margin counts it);
* it holds BGOV, or has voting power (BGOV delegated to it);
* it has a protocol role, which must always be able to act: the bridge operator, an oracle
  operator, the guardian (before its expiry), a council member.

An agent key (``bastion.core.agents``) sending a trading message for an owner that granted it is
judged by the owner's collateral: the key itself holds nothing.

Everyone else (a fresh key, an account that withdrew everything, an account wiped out to zero or
negative equity with no BGOV) is refused with ``no_collateral``. It never needs a transaction to
become funded: deposits come from the bridge operator, transfers and treasury payments from funded
accounts and proposals.

Where it runs, and why not in the state machine: the node runs ``check_ante`` at intake
(``Application.check_tx``, so a refused transaction is never queued, logged or indexed) and again
when the block producer takes transactions from the mempool for a block (under the state lock, on
the committed state the block starts from): a transaction whose sender lost its collateral in the
meantime is dropped from the block and reported ``refused`` to its submitter. ``apply_block`` does
not run it: a block is applied exactly as ordered, so every logged block replays the same whatever
these rules become, and a refusal costs no block space. (A replicated chain would run it in
CheckTx and again in PrepareProposal/ProcessProposal, as dYdX's ante handlers run.)

``exact=False`` is the intake's lock-free variant: the API's threads read the state while the
producer may be applying a block, so it reads only single values (a balance, whether a subaccount
holds positions, a BGOV balance, the last voting-power checkpoint) and counts a subaccount with
positions as funded without valuing them; the block producer's exact check then decides.
"""
from __future__ import annotations

from bastion.core.agents import payer
from bastion.core.errors import ProtocolError
from bastion.core.margin import get_net_collateral
from bastion.core.messages import Message
from bastion.core.state import SUBACCOUNT_NUMBERS, State


def has_role(state: State, address: str) -> bool:
    """A protocol role that must always be able to act, funded or not."""
    guardian = state.guardian
    return (address == state.bridge_operator or address in state.oracle_operators
            or (address == guardian.address and guardian.expires_ms is not None and state.time_ms < guardian.expires_ms)
            or address in state.council.members)


def has_collateral(state: State, address: str, *, exact: bool = True) -> bool:
    """Whether ``address`` may get a transaction into a block (the module docstring's definition)."""
    if state.bgov.get(address, 0) > 0 or has_role(state, address):
        return True
    checkpoints = state.vote_checkpoints.get(address)
    if checkpoints and checkpoints[-1][1] > 0:
        return True
    subaccounts = state.subaccounts
    for number in SUBACCOUNT_NUMBERS:
        sub = subaccounts.get((address, number))
        if sub is None:
            continue
        if sub.balance > 0:
            return True
        if sub.positions and (not exact or get_net_collateral(state, sub) > 0):
            return True
    return False


def check_ante(state: State, sender: str, *, exact: bool = True, msg: Message | None = None) -> None:
    """Refuse (``no_collateral``) a transaction whose sender has no collateral. An agent key's
    trading message for an owner (``bastion.core.agents``) counts the owner's collateral instead, once
    its grant is checked (``agent_not_authorized``, ``agent_expired``, ``agent_permission_denied``)."""
    if msg is not None:
        sender = payer(state, sender, msg)
    if not has_collateral(state, sender, exact=exact):
        raise ProtocolError("no_collateral", f"{sender} has no collateral (no subaccount with a positive balance "
                            "or equity, no BGOV or voting power, no protocol role): deposit first", field="sender")
