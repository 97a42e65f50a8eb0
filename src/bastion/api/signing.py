"""EIP-712 signed envelopes: the one typed-data shape every Bastion message is signed as.

An envelope is ``{"msg": {...}, "sender": address, "nonce": int, "signature": "0x..."}``. Its
signature is an ``eth_signTypedData_v4`` signature (eth-account ``encode_typed_data`` +
``sign_message``) over::

    domain  EIP712Domain(string name, string version, uint256 chainId)
            name    "Bastion"
            version "1"                     (SIGNING_VERSION: bumped if this shape ever changes)
            chainId compute_chain_number(chain_id): the first 6 bytes of keccak256(chain id string)
                    as a big-endian integer (< 2**48, so exact in JavaScript numbers too)
    primary Envelope(address sender, uint64 nonce, string msgType, string msg)
            sender  the signer's address (checksummed for signing; any case on the wire)
            nonce   the envelope's nonce
            msgType msg["type"], repeated so that a wallet shows what is being signed first
            msg     canonical_message_json(msg): the message object as JSON with sorted keys,
                    no whitespace, non-ASCII kept as UTF-8 (what ``JSON.stringify`` gives for an
                    object whose keys were inserted sorted)

Why one generic shape rather than one EIP-712 struct per message type: a single definition covers
every message (present and future, governance actions included) with nothing to keep in sync
between the core's decoder, the API and wallets; the wallet still displays the message type and
the full message text; and the server verifies exactly the bytes it then decodes. The chain id
string enters through the domain, so a signature for one chain is worthless on another.

Nonces (``check_nonce_window``): the nonce is the client's clock in **microseconds** since the
Unix epoch (the SDK uses ``max(now_us, last + 1)``, so one key may sign a million envelopes a
second without running ahead of time). The API accepts a nonce within ``[now - past_ms, now +
future_ms]`` of its own clock (default 10 minutes back, 1 minute ahead), and the node refuses any
(sender, nonce) already pending or committed (the block log indexes every committed one), so an
envelope is single-use, cannot be replayed after the window, and cannot be pre-signed far ahead.

This module has no web dependency: the SDK (``bastion.client``) signs with it and the API verifies
with it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import keccak, to_checksum_address

from bastion.core.errors import ProtocolError
from bastion.core.messages import normalize_address

__all__ = [
    "DOMAIN_NAME", "ENVELOPE_TYPES", "NONCE_FUTURE_MS", "NONCE_PAST_MS", "SIGNING_VERSION", "SignedEnvelope",
    "canonical_message_json", "check_nonce_window", "compute_chain_number", "recover_signer", "sign_envelope",
    "typed_data", "verify_envelope",
]

DOMAIN_NAME = "Bastion"
SIGNING_VERSION = "1"
ENVELOPE_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                     {"name": "chainId", "type": "uint256"}],
    "Envelope": [{"name": "sender", "type": "address"}, {"name": "nonce", "type": "uint64"},
                 {"name": "msgType", "type": "string"}, {"name": "msg", "type": "string"}],
}
NONCE_PAST_MS = 600_000      # a nonce may be up to 10 minutes older than the node's clock
NONCE_FUTURE_MS = 60_000     # and up to 1 minute ahead of it
US_PER_MS = 1_000
MAX_UINT64 = 2**64 - 1


def compute_chain_number(chain_id: str) -> int:
    """The EIP-712 ``chainId`` of a Bastion chain: ``int(keccak256(chain_id)[:6])`` (big-endian)."""
    return int.from_bytes(keccak(text=chain_id)[:6], "big")


def canonical_message_json(msg: dict[str, Any]) -> str:
    """The signed text of a message: sorted keys, no whitespace, UTF-8 (not ``\\u`` escapes)."""
    return json.dumps(msg, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def typed_data(chain_id: str, sender: str, nonce: int, msg: dict[str, Any]) -> dict[str, Any]:
    """The full ``eth_signTypedData_v4`` document of an envelope (what a wallet is asked to sign)."""
    return {
        "types": ENVELOPE_TYPES,
        "primaryType": "Envelope",
        "domain": {"name": DOMAIN_NAME, "version": SIGNING_VERSION, "chainId": compute_chain_number(chain_id)},
        "message": {"sender": to_checksum_address(sender), "nonce": nonce, "msgType": str(msg.get("type", "")),
                    "msg": canonical_message_json(msg)},
    }


def _signable(chain_id: str, sender: str, nonce: int, msg: dict[str, Any]) -> SignableMessage:
    return encode_typed_data(full_message=typed_data(chain_id, sender, nonce, msg))


def sign_envelope(private_key: str | bytes, chain_id: str, msg: dict[str, Any], nonce: int) -> dict[str, Any]:
    """A signed envelope of ``msg`` from the key's address."""
    account = Account.from_key(private_key)
    signed = Account.sign_message(_signable(chain_id, account.address, nonce, msg), account.key)
    return {"msg": msg, "sender": account.address.lower(), "nonce": nonce,
            "signature": "0x" + bytes(signed.signature).hex()}


def recover_signer(chain_id: str, sender: str, nonce: int, msg: dict[str, Any], signature: str) -> str:
    """The lowercase address that signed this envelope (``invalid_signature`` if none can be recovered)."""
    if not isinstance(signature, str) or not signature.startswith("0x") or len(signature) != 132:
        raise ProtocolError("invalid_signature", "signature must be 0x followed by 65 bytes in hex",
                            field="signature")
    try:
        raw = bytes.fromhex(signature[2:])
        return str(Account.recover_message(_signable(chain_id, sender, nonce, msg), signature=raw)).lower()
    except Exception as error:  # noqa: BLE001 - eth-keys raises several types for malformed signatures
        raise ProtocolError("invalid_signature", f"the signature cannot be verified: {error}",
                            field="signature") from None


def check_nonce_window(nonce: int, now_ms: int, *, past_ms: int = NONCE_PAST_MS,
                       future_ms: int = NONCE_FUTURE_MS) -> None:
    """Refuse (``nonce_outside_window``) a microsecond nonce outside ``[now - past, now + future]``."""
    low, high = (now_ms - past_ms) * US_PER_MS, (now_ms + future_ms) * US_PER_MS
    if not low <= nonce <= high:
        raise ProtocolError("nonce_outside_window",
                            f"nonce {nonce} is not a time in microseconds within {past_ms} ms before and "
                            f"{future_ms} ms after the node's clock ({now_ms * US_PER_MS} us)", field="nonce")


@dataclass(frozen=True, slots=True)
class SignedEnvelope:
    """An envelope whose signature was verified: the node's unsigned form plus the signature."""

    sender: str
    nonce: int
    msg: dict[str, Any]
    signature: str

    def unsigned(self) -> dict[str, Any]:
        return {"sender": self.sender, "nonce": self.nonce, "msg": self.msg}


def verify_envelope(envelope: dict[str, Any], chain_id: str, now_ms: int, *, past_ms: int = NONCE_PAST_MS,
                    future_ms: int = NONCE_FUTURE_MS) -> SignedEnvelope:
    """Check shape, nonce window and signature; the signer must be the sender (``signer_mismatch``)."""
    sender = normalize_address(envelope.get("sender"), field="sender")
    nonce = envelope.get("nonce")
    if not isinstance(nonce, int) or isinstance(nonce, bool) or not 0 <= nonce <= MAX_UINT64:
        raise ProtocolError("invalid_nonce", "nonce must be an integer in 0..2^64-1", field="nonce")
    msg = envelope.get("msg")
    if not isinstance(msg, dict):
        raise ProtocolError("invalid_message", "a message must be a JSON object", field="msg")
    signature = envelope.get("signature")
    if signature is None:
        raise ProtocolError("missing_signature", "this node accepts only signed envelopes (EIP-712)",
                            field="signature")
    check_nonce_window(nonce, now_ms, past_ms=past_ms, future_ms=future_ms)
    signer = recover_signer(chain_id, sender, nonce, msg, signature)
    if signer != sender:
        raise ProtocolError("signer_mismatch", f"the envelope is signed by {signer}, not by its sender {sender}",
                            field="signature")
    return SignedEnvelope(sender, nonce, msg, signature)
