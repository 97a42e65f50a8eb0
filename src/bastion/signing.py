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

Low s (EIP-2): for every signature (r, s) the pair (r, n - s) with the other recovery id is also a
valid signature of the same digest by the same key. Only the low one (s <= n/2, what libsecp256k1
and eth-account produce) is accepted; the high-s twin is refused with ``high_s_signature``.

This module has no web dependency: the SDK (``bastion.client``) signs with it and the API verifies
with it.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from coincurve import PrivateKey, PublicKey
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import keccak, to_checksum_address

from bastion.core.errors import ProtocolError
from bastion.core.messages import normalize_address

__all__ = [
    "DOMAIN_NAME", "ENVELOPE_TYPES", "NONCE_FUTURE_MS", "NONCE_PAST_MS", "SECP256K1_HALF_N", "SIGNING_VERSION",
    "SignedEnvelope",
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
    """A signed envelope of ``msg`` from the key's address: libsecp256k1 (RFC 6979 nonces, low s) over
    ``envelope_digest``, the very signature eth-account's ``sign_message`` gives (tests compare them)."""
    secret = _private_key_bytes(private_key)
    sender = _address_of(secret)
    signed = PrivateKey(secret).sign_recoverable(envelope_digest(chain_id, sender, nonce, msg), hasher=None)
    return {"msg": msg, "sender": sender, "nonce": nonce,
            "signature": "0x" + signed[:64].hex() + f"{signed[64] + 27:02x}"}


def _private_key_bytes(private_key: str | bytes) -> bytes:
    if isinstance(private_key, str):
        return bytes.fromhex(private_key.removeprefix("0x"))
    return bytes(private_key)


@functools.lru_cache(maxsize=256)
def _address_of(secret: bytes) -> str:
    return Account.from_key(secret).address.lower()


# ---------------------------------------------------------------------------------- fast verification
# The same digest as ``encode_typed_data(typed_data(...))``, computed directly for the one Envelope
# shape, and the signer recovered with libsecp256k1 (coincurve) instead of eth-account's generic
# EIP-712 encoder and key objects: ~6x less time per envelope, the API's main cost per order
# (docs/benchmarks.md, "API"). Anything unusual falls back to eth-account, so both paths accept and
# refuse the same signatures (tests/test_api.py compares them).
_DOMAIN_TYPEHASH = keccak(text="EIP712Domain(string name,string version,uint256 chainId)")
_ENVELOPE_TYPEHASH = keccak(text="Envelope(address sender,uint64 nonce,string msgType,string msg)")
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
# EIP-2: of the two valid signatures (r, s) and (r, n - s) of one digest, only the one with s <= n/2
# is accepted, so a signature cannot be re-encoded into a second valid one (malleability)
SECP256K1_HALF_N = _SECP256K1_N // 2

try:  # safe-pysha3: a C keccak-256 at ~1 us a call (eth-hash's pycryptodome backend: ~15 us)
    from sha3 import keccak_256 as _keccak_256

    def _keccak(data: bytes) -> bytes:
        return _keccak_256(data).digest()
except ImportError:  # pragma: no cover
    def _keccak(data: bytes) -> bytes:
        return keccak(data)


@functools.lru_cache(maxsize=256)
def _type_hash(msg_type: str) -> bytes:
    return _keccak(msg_type.encode())


@functools.lru_cache(maxsize=65_536)
def _address_of_public_key(public: bytes) -> str:
    return "0x" + _keccak(public[1:])[12:].hex()


@functools.lru_cache(maxsize=64)
def _digest_prefix(chain_id: str) -> bytes:
    separator = keccak(_DOMAIN_TYPEHASH + keccak(text=DOMAIN_NAME) + keccak(text=SIGNING_VERSION)
                       + compute_chain_number(chain_id).to_bytes(32, "big"))
    return b"\x19\x01" + separator


def envelope_digest(chain_id: str, sender: str, nonce: int, msg: dict[str, Any]) -> bytes:
    """The EIP-712 digest a wallet signs for this envelope (``_signable(...)`` hashed), directly."""
    struct = _keccak(_ENVELOPE_TYPEHASH + bytes.fromhex(sender[2:]).rjust(32, b"\0") + nonce.to_bytes(32, "big")
                     + _type_hash(str(msg.get("type", ""))) + _keccak(canonical_message_json(msg).encode()))
    return _keccak(_digest_prefix(chain_id) + struct)


def _recover_fast(chain_id: str, sender: str, nonce: int, msg: dict[str, Any], raw: bytes) -> str | None:
    """The signer by the fast path, or None when the input is anything but the common case."""
    v = raw[64]
    recovery = v - 27 if v in (27, 28) else v if v in (0, 1) else None
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big")
    if recovery is None or not (0 < r < _SECP256K1_N and 0 < s < _SECP256K1_N):
        return None
    try:
        digest = envelope_digest(chain_id, sender, nonce, msg)
        public = PublicKey.from_signature_and_message(raw[:64] + bytes((recovery,)), digest, hasher=None)
    except Exception:  # noqa: BLE001 - let eth-account judge (and word) anything unusual
        return None
    return _address_of_public_key(public.format(compressed=False))


def recover_signer(chain_id: str, sender: str, nonce: int, msg: dict[str, Any], signature: str) -> str:
    """The lowercase address that signed this envelope (``invalid_signature`` if none can be recovered,
    ``high_s_signature`` for the high-s twin of a signature, EIP-2)."""
    if not isinstance(signature, str) or not signature.startswith("0x") or len(signature) != 132:
        raise ProtocolError("invalid_signature", "signature must be 0x followed by 65 bytes in hex",
                            field="signature")
    try:
        raw = bytes.fromhex(signature[2:])
    except ValueError:
        raise ProtocolError("invalid_signature", "signature must be 0x followed by 65 bytes in hex",
                            field="signature") from None
    if len(raw) != 65:
        raise ProtocolError("invalid_signature", "signature must be 0x followed by 65 bytes in hex",
                            field="signature")
    if int.from_bytes(raw[32:64], "big") > SECP256K1_HALF_N:
        raise ProtocolError("high_s_signature", "the signature's s is above secp256k1n/2: only low-s signatures "
                            "are accepted (EIP-2); use s' = n - s with the other recovery id", field="signature")
    try:
        fast = _recover_fast(chain_id, sender, nonce, msg, raw)
        if fast is not None:
            return fast
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
