"""The ABCI-shaped application: the one seam between the pure state machine and a consensus engine.

CometBFT drives an application through ``CheckTx`` (may this transaction enter the mempool?),
``FinalizeBlock`` (apply an ordered block, return per-transaction results, events and the app
hash) and ``Commit`` (persist). ``Application`` offers exactly those three, over
``bastion.core``: the single-node sequencer (``bastion.node.node``) calls them today, and an ABCI
adapter could call them unchanged to run the same state machine replicated, since everything that
decides a result is inside ``finalize_block`` and depends only on the state, the block time and the
ordered transactions.

A transaction is an envelope ``{"sender": address, "nonce": int, "msg": {...}}``. ``check_tx``
checks the envelope's shape, the sender's address, the nonce's range, the message's decoding
(unknown types, fields or JSON types are refused), the authorisation that needs no account state
(bridge and oracle messages from their operators) and the ante check (``bastion.core.ante``: a
sender without collateral is refused, in its lock-free variant). Signatures are verified before
the envelope gets here, by the API (EIP-712, ``bastion.signing``); here the sender is taken as
authenticated. Whether the (sender, nonce) pair is still unused is the node's check (pending or
logged, ``bastion.node.node.Node.submit``) and the state's (``finalize_block`` spends each nonce and
refuses one already spent, ``nonce_used``). ``check_ante`` runs the exact ante check, which the
block producer applies again to every transaction it takes for a block (a transaction it refuses
is dropped, never logged). Every other rule is checked, with state, when the block is applied.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.core.ante import check_ante
from bastion.core.errors import ProtocolError
from bastion.core.messages import Deposit, Message, OracleUpdate, decode_message, normalize_address
from bastion.core.state import State
from bastion.core.transition import BlockResult, apply_block

MAX_NONCE = 2**63 - 1


@dataclass(frozen=True, slots=True)
class CheckedTx:
    """An envelope that passed ``check_tx``: the normalised sender, its nonce and the decoded message."""

    sender: str
    nonce: int
    msg: dict[str, Any]
    typed: Message


class Application:
    """check_tx / finalize_block / commit over one ``State`` (which only ``finalize_block`` mutates)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._last: BlockResult | None = None

    def info(self) -> tuple[int, str]:
        """(last committed height, app hash): what a consensus engine asks on start-up."""
        return self.state.height, self.state.state_hash

    def check_tx(self, envelope: Any) -> CheckedTx:
        """Validate an envelope for the mempool; raises ``ProtocolError`` with a stable code."""
        if not isinstance(envelope, dict):
            raise ProtocolError("invalid_envelope", "a transaction is a JSON object {sender, nonce, msg}",
                                field="envelope")
        extra = sorted(set(envelope) - {"sender", "nonce", "msg"})
        if extra:
            raise ProtocolError("invalid_envelope", f"unknown envelope field {extra[0]!r}", field=extra[0])
        sender = envelope.get("sender")
        if not isinstance(sender, str):
            raise ProtocolError("invalid_envelope", "sender must be an address string", field="sender")
        sender = normalize_address(sender, field="sender")
        nonce = envelope.get("nonce")
        if not isinstance(nonce, int) or isinstance(nonce, bool) or not 0 <= nonce <= MAX_NONCE:
            raise ProtocolError("invalid_nonce", "nonce must be an integer in 0..2^63-1", field="nonce")
        typed = decode_message(envelope.get("msg"))
        msg: dict[str, Any] = envelope["msg"]  # a JSON object: decode_message accepted it
        if isinstance(typed, Deposit) and sender != self.state.bridge_operator:
            raise ProtocolError("not_bridge_operator", "only the bridge operator may credit deposits", field="sender")
        if isinstance(typed, OracleUpdate) and sender not in self.state.oracle_operators:
            raise ProtocolError("not_oracle_operator", "only oracle operators may submit prices", field="sender")
        check_ante(self.state, sender, exact=False, msg=typed)  # lock-free: the producer may be applying a block
        return CheckedTx(sender, nonce, msg, typed)

    def check_ante(self, sender: str, typed: Message | None = None) -> None:
        """The exact ante check (``bastion.core.ante``) on the committed state, for the block
        producer (which holds the state lock); raises ``ProtocolError("no_collateral")``."""
        check_ante(self.state, sender, exact=True, msg=typed)

    def finalize_block(self, time_ms: int, txs: list[tuple[str, Message]], nonces: list[int]) -> BlockResult:
        """Apply one ordered block at ``time_ms`` (``nonces``: each transaction's, spent in the
        state, which refuses one already spent: ``nonce_used``): results, events and the new app
        (state) hash."""
        self._last = apply_block(self.state, time_ms, txs, nonces)
        return self._last

    def commit(self) -> str:
        """The app hash of the block just finalized. Persisting is the caller's (the block log),
        and it must happen before any transaction of the block is reported committed."""
        if self._last is None:
            raise RuntimeError("commit without finalize_block")
        self._last = None
        return self.state.state_hash
