"""Agent keys: an owner lets another key trade for it (docs/protocol.md, "Agent keys").

A bot should not hold the key that can withdraw its owner's money. So an owner sends
``authorize_agent{agent, subaccounts, permissions, expires_ms, label?}`` and the key ``agent`` may
from then on sign trading messages *for* the owner: a ``place_order``, ``cancel_order`` or
``cancel_all`` whose ``owner`` field names the owner (left out, or the sender itself, the message
acts on the sender's own subaccounts as always). ``AGENT_ACTIONS`` lists those messages and the
permission each needs:

    trade    place_order, modify_order, place_twap
    cancel   cancel_order, cancel_all

(``cancel_twap`` and ``schedule_cancel`` name no subaccount and stay the owner's own.)

Nothing else takes an ``owner`` field, so an agent can never withdraw, transfer, change a margin
mode or leverage, move or vote BGOV, propose or authorise agents for its owner: the decoder refuses
the field (``unknown_field``) and without it the message acts on the agent's own account.

**The check** (``check_agent``, from ``acting_owner`` in ``transition.apply_tx`` before the handler
runs, and from the node's ante check at intake): the owner must have a grant for the sender
(``agent_not_authorized``), in force at the block time (``agent_expired`` from ``expires_ms`` on),
with the message's permission and subaccount (``agent_permission_denied``). Then the handler runs
with the owner as its sender, after an ``agent_acted`` event naming owner, subaccount and agent;
the handler's own events (orders, fills, cancels) name the owner. Nonces stay per signer: the
agent spends its own (``bastion.core.nonces``), so an owner and several bots never compete for one
nonce window, and a nonce an agent used stays spent after its grant is revoked and given again.

**Grants** are bounded by governed limits (``state.bot_limits``, ``bastion.core.bot_limits``): an
owner has at most ``agent_max_per_owner`` grants in force (8 by default), each for at most
``agent_max_lifetime_ms`` of block time (180 days); a tightened limit refuses new grants and leaves
the grants in force as they are; authorising an agent again replaces its grant (new
scope, new expiry, same place in the list). An expired grant stays, refusing with
``agent_expired``, until the owner revokes it, authorises that agent again, or authorises any
agent: every ``authorize_agent`` first drops the owner's expired grants (``agent_revoked`` with
reason ``expired``, in authorisation order). Roles do not chain: an address named as an agent in
any grant still in the state cannot authorise agents (``agent_cannot_authorize``), and an address
that has agents cannot be made an agent (``agent_has_agents``).

State: the leaf ``("agent", owner, agent)`` per grant (``bastion.core.leaves``); ``state.agents``
is owner -> agent -> grant in authorisation order, ``state.agent_owners`` its derived reverse index
(agent -> owners), rebuilt when a snapshot is read. Expiry is a comparison with the block time;
nothing here iterates an unordered set.
"""
from __future__ import annotations

from typing import Any, Final

from bastion.core import events as ev
from bastion.core.enums import AGENT_PERMISSIONS, AgentPermission
from bastion.core.errors import ProtocolError
from bastion.core.events import Events, emit
from bastion.core.messages import (
    MESSAGE_TYPES, AuthorizeAgent, CancelAll, CancelOrder, Message, ModifyOrder, PlaceOrder, PlaceTwap, RevokeAgent,
    normalize_address,
)
from bastion.core.state import SUBACCOUNT_NUMBERS, AgentGrant, State

# the messages an agent may send for an owner, and the permission each needs. A new trading message an
# agent may send goes here and gets an ``owner: str | None = None`` field (tests/test_agents.py checks
# that no other message has one, the bridge's deposit aside)
AGENT_ACTIONS: Final[dict[type, str]] = {
    PlaceOrder: AgentPermission.TRADE,
    CancelOrder: AgentPermission.CANCEL,
    CancelAll: AgentPermission.CANCEL,
    ModifyOrder: AgentPermission.TRADE,
    PlaceTwap: AgentPermission.TRADE,
}
AGENT_ACTION_NAMES: Final[dict[type, str]] = {cls: name for name, cls in MESSAGE_TYPES.items() if cls in AGENT_ACTIONS}


def is_live(state: State, grant: AgentGrant) -> bool:
    """Whether ``grant`` is in force at the current block time (before its ``expires_ms``)."""
    return state.time_ms < grant.expires_ms


def check_agent(state: State, agent: str, owner: str, permission: str, number: int) -> AgentGrant:
    """The grant that lets ``agent`` use ``permission`` on ``owner``'s subaccount ``number`` now.
    Raises ``agent_not_authorized`` (no grant), ``agent_expired``, ``agent_permission_denied``
    (the permission or the subaccount is not granted)."""
    grant = state.agents.get(owner, {}).get(agent)
    if grant is None:
        raise ProtocolError("agent_not_authorized", f"{agent} is not an agent of {owner}", field="owner")
    if not is_live(state, grant):
        raise ProtocolError("agent_expired", f"the grant of {owner} to {agent} expired at block time "
                            f"{grant.expires_ms} ms", field="owner")
    if permission not in grant.permissions:
        raise ProtocolError("agent_permission_denied", f"{agent} may not {permission} for {owner} (granted: "
                            f"{', '.join(grant.permissions)})", field="type")
    if grant.subaccounts is not None and number not in grant.subaccounts:
        raise ProtocolError("agent_permission_denied", f"{agent} may not act on subaccount {number} of {owner}",
                            field="subaccount")
    return grant


def _owner_named(sender: str, msg: Any) -> str | None:
    """The owner an ``AGENT_ACTIONS`` message names when it is not the sender (else None)."""
    owner: str | None = msg.owner
    if owner is None:
        return None
    owner = owner.lower()  # an address already (check_message), possibly in mixed case
    return None if owner == sender else owner


def acting_owner(state: State, sender: str, msg: Any, events: Events) -> str:
    """Whose subaccount an ``AGENT_ACTIONS`` message (``msg``) acts on: the sender's, or the ``owner``
    it names when the sender holds a grant for it (``check_agent``; an ``agent_acted`` event then names
    both). Called by ``transition.apply_tx`` before the handler, which then runs with this owner as sender."""
    owner = _owner_named(sender, msg)
    if owner is None:
        return sender
    number: int = msg.subaccount
    check_agent(state, sender, owner, AGENT_ACTIONS[type(msg)], number)
    emit(events, ev.AgentActed, owner=owner, number=number, agent=sender, action=AGENT_ACTION_NAMES[type(msg)])
    return owner


def payer(state: State, sender: str, msg: Message) -> str:
    """The address whose collateral the ante check counts for ``msg`` (``bastion.core.ante``): the
    owner an agent acts for (its grant checked as ``check_agent`` does), else the sender."""
    permission = AGENT_ACTIONS.get(type(msg))
    if permission is None:
        return sender
    agent_msg: Any = msg
    owner = _owner_named(sender, agent_msg)
    if owner is None:
        return sender
    check_agent(state, sender, owner, permission, agent_msg.subaccount)
    return owner


# --------------------------------------------------------------------------------------- handlers
def _permissions(value: list[Any]) -> tuple[str, ...]:
    if not value:
        raise ProtocolError("invalid_permission", "give at least one permission (trade, cancel)", field="permissions")
    for item in value:
        if item not in AGENT_PERMISSIONS:
            raise ProtocolError("invalid_permission", f"unknown permission {item!r}: one of "
                                f"{', '.join(AGENT_PERMISSIONS)}", field="permissions")
    if len(set(value)) != len(value):
        raise ProtocolError("invalid_permission", "a permission is named twice", field="permissions")
    return tuple(p for p in AGENT_PERMISSIONS if p in value)


def _subaccounts(value: list[Any] | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not value:
        raise ProtocolError("invalid_subaccount", "name at least one subaccount (or null for all)",
                            field="subaccounts")
    for item in value:
        if type(item) is not int or item not in SUBACCOUNT_NUMBERS:
            raise ProtocolError("invalid_subaccount", f"subaccount numbers are 0..127, got {item!r}",
                                field="subaccounts")
    if len(set(value)) != len(value):
        raise ProtocolError("invalid_subaccount", "a subaccount is named twice", field="subaccounts")
    return tuple(sorted(value))


def authorize_agent(state: State, sender: str, msg: AuthorizeAgent, events: Events) -> dict[str, Any]:
    """Grant (or replace the grant of) ``msg.agent`` for the sender. Refusals, before any change:
    ``invalid_address``, ``agent_is_self``, ``agent_cannot_authorize`` (the sender is an agent),
    ``agent_has_agents`` (the agent is an owner of agents), ``invalid_permission``,
    ``invalid_subaccount``, ``invalid_agent_expiry`` (not after the block time, or more than
    ``bot_limits.agent_max_lifetime_ms`` after it) and ``too_many_agents`` (``bot_limits.agent_max_per_owner``
    others in force). Then the sender's expired grants
    are dropped (``agent_revoked``, reason ``expired``) and the grant is stored (``agent_authorized``)."""
    agent = normalize_address(msg.agent, field="agent")
    if agent == sender:
        raise ProtocolError("agent_is_self", "an account cannot be its own agent", field="agent")
    if sender in state.agent_owners:
        raise ProtocolError("agent_cannot_authorize", f"{sender} is an agent key: an agent cannot authorise agents",
                            field="sender")
    if agent in state.agents:
        raise ProtocolError("agent_has_agents", f"{agent} has agents of its own: it cannot be an agent",
                            field="agent")
    permissions = _permissions(msg.permissions)
    subaccounts = _subaccounts(msg.subaccounts)
    now, limits = state.time_ms, state.bot_limits
    if not now < msg.expires_ms <= now + limits.agent_max_lifetime_ms:
        raise ProtocolError("invalid_agent_expiry", f"expires_ms must be after the block time {now} and at most "
                            f"{limits.agent_max_lifetime_ms} ms ({limits.agent_max_lifetime_ms // 86_400_000} days) "
                            "after it", field="expires_ms")
    grants = state.agents.get(sender, {})
    replaced = agent in grants
    live = sum(1 for other, grant in grants.items() if other != agent and is_live(state, grant))
    if live >= limits.agent_max_per_owner:
        raise ProtocolError("too_many_agents", f"{sender} has {live} other agents in force, at most "
                            f"{limits.agent_max_per_owner}: revoke one first", field="agent")
    # --- APPLY
    for other in [other for other, grant in grants.items() if other != agent and not is_live(state, grant)]:
        _drop(state, sender, other, "expired", events)
    grant = AgentGrant(subaccounts, permissions, msg.expires_ms, msg.label, now)
    state.agents.setdefault(sender, {})[agent] = grant
    state.agent_owners.setdefault(agent, {})[sender] = None
    state.touch(("agent", sender, agent))
    emit(events, ev.AgentAuthorized, owner=sender, agent=agent, subaccounts=subaccounts, permissions=permissions,
         expires_ms=msg.expires_ms, label=msg.label, replaced=replaced)
    return {"agent": agent, "expires_ms": msg.expires_ms}


def revoke_agent(state: State, sender: str, msg: RevokeAgent, events: Events) -> dict[str, Any]:
    """Remove the sender's grant to ``msg.agent`` (in force or expired) at once. Refusals:
    ``invalid_address``, ``agent_not_found``."""
    agent = normalize_address(msg.agent, field="agent")
    if agent not in state.agents.get(sender, {}):
        raise ProtocolError("agent_not_found", f"{sender} has no grant to {agent}", field="agent")
    _drop(state, sender, agent, "revoked", events)
    return {"agent": agent}


def _drop(state: State, owner: str, agent: str, reason: str, events: Events) -> None:
    grants = state.agents[owner]
    del grants[agent]
    if not grants:
        del state.agents[owner]
    owners = state.agent_owners[agent]
    del owners[owner]
    if not owners:
        del state.agent_owners[agent]
    state.touch(("agent", owner, agent))
    emit(events, ev.AgentRevoked, owner=owner, agent=agent, reason=reason)


def rebuild_agent_owners(state: State) -> None:
    """The reverse index ``state.agent_owners`` rebuilt from the grants (a snapshot being read)."""
    state.agent_owners = {}
    for owner, grants in state.agents.items():
        for agent in grants:
            state.agent_owners.setdefault(agent, {})[owner] = None

