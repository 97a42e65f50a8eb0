"""Snapshots: the whole state as a canonical JSON document, and back (DESIGN.md section 1).

A snapshot lets a node start from height H instead of replaying the log from genesis. It is data,
not pickle: ``state_to_document`` gives plain JSON types only (ints, strings, booleans, null,
lists; maps whose order matters are lists of pairs), ``canonical_bytes`` its one byte encoding,
and ``state_from_document`` rebuilds a ``State`` that behaves exactly as the original: the same
state hash (checked on load against the one the document carries), the same book queues, the
same order of subaccounts, orders and conditional orders, and the derived data the liquidation
scan keeps between blocks (``holders``, ``scanned``, ``liquidation_watch``), so a node restored
from a snapshot produces the same blocks as one that never stopped.

Pure: no I/O (the node writes and reads the files).
"""
from __future__ import annotations

import json
from typing import Any

from bastion.core.errors import ProtocolError
from bastion.core.hashing import commit_state_hash
from bastion.core.leaves import iter_leaf_keys, read_sections, write_sections
from bastion.core.state import State

FORMAT = "bastion-snapshot/22"  # 2: BGOV holders, delegations and vote checkpoints; 3: governance params, proposals;
#   4: parameter history; 5: staged rollouts (in creation order), per-market liquidation counts, the
#   guardian (address, expiry, pause keys used) and its pauses, the council, stress attestations,
#   steward bounds, cooldowns and approvals, listing parameters; 6: the stress gate's verdict
#   thresholds among the governance parameters; 7: the order limits (anti-spam) and markets' max_order_lots;
#   8: the backstop's liquidation parameters and the liquidation stall counters
#   9: registered stress reports; 10: proposal fees, swing extensions and live-proposal limits;
#   11: each sender's spent nonces (core.nonces)
#   12: the settlement TWAP accumulators and checkpoints, the settlement price, the post-pause liquidation
#   grace and its parameters; 13: the per-block liquidation work bounds (max_liquidations_per_block,
#   max_deleveragings_per_block); 14: the stress gate's limit on losses to traders; 15: agent keys' grants;
#   16: live TWAP orders and the dead-man's switches (cancel schedules)
#   17: the bot tools' governed limits (bot_limits)
#   18: rollouts of any rollable parameter (contagion gates, their last measures, rounding side, tier path)
#   and per-market trader losses (deleveraging and socialisation); markets' UI requirements, the exposure
#   option among the governance parameters, proposals' cited evidence (issue 20); insurance staking (its
#   parameters, each fund's staked part and shares, stakers' shares, unstake requests)
#   19: the dispute book (dispute parameters, targets, disputes, incident programs); the maker-reward
#   parameters, pool, epoch and scores
#   20: proposals' voter exposure disclosures, frozen when their votes open
#   21: counter-reports, the scheduled upgrade, the counter-report bond and window among the governance
#   parameters
#   22: maker scores committed as one leaf per market (maker_scores), no longer one per maker


def state_to_document(state: State) -> dict[str, Any]:
    """The complete state as JSON-ready data (commit the block first: the hash must be current): the
    fields of every leaf kind (``bastion.core.leaves.LEAF_KINDS``), the derived data that is in no
    leaf but must survive a restart (``params_epoch``, the good-til-time queue, the liquidation
    watch list), and the state hash."""
    if state.dirty:
        raise ValueError("snapshot of a state with uncommitted changes (call end_block first)")
    return {
        "format": FORMAT,
        **write_sections(state),
        "params_epoch": state.params_epoch,
        "gtt_queue": [list(entry) for entry in state.gtt_queue],
        "liquidation_watch": [list(key) for key in state.liquidation_watch],
        "state_hash": state.state_hash,
    }


def canonical_bytes(document: Any) -> bytes:
    """The one encoding of a snapshot document: compact JSON, keys sorted, ASCII."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def state_from_document(document: dict[str, Any], *, check_hash: bool = True) -> State:
    """Rebuild the state; raises ``ProtocolError("invalid_snapshot", ...)`` if the document is not a
    snapshot of this format or (unless not ``check_hash``: tools inspecting a document) does not
    reproduce the state hash it records."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ProtocolError("invalid_snapshot", f"not a {FORMAT} document", field="format")
    try:
        state = _build(document)
    except (KeyError, TypeError, ValueError) as error:
        raise ProtocolError("invalid_snapshot", f"malformed snapshot: {error!r}", field="snapshot") from error
    for key in iter_leaf_keys(state):
        state.touch(key)
    recorded = document["state_hash"]
    if commit_state_hash(state) != recorded and check_hash:
        raise ProtocolError("invalid_snapshot",
                            f"snapshot does not reproduce its state hash {recorded} (got {state.state_hash})",
                            field="state_hash")
    return state


def _build(doc: dict[str, Any]) -> State:
    state = read_sections(doc)
    state.params_epoch = doc["params_epoch"]
    state.gtt_queue = [(good_til, order_id, ticker) for good_til, order_id, ticker in doc["gtt_queue"]]
    state.liquidation_watch = {(owner, number): None for owner, number in doc["liquidation_watch"]}
    return state
