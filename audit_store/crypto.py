"""Envelope encryption of personal fields: per-user data keys wrapped by a key-encryption key.

A data key (AES-256-GCM) is made per user and stored only wrapped by the KEK (settings),
in `audit_user_keys`. Each entry's personal fields are sealed with its user's data key,
bound to the entry (event id and user id as associated data). Erasure destroys the wrapped
data key: the ciphertext stays, hashed in the chain, and nobody can read it again.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audit_store.exceptions import KeyUnavailable

NONCE = 12
_WRAP_AAD = b"taskflow-audit-data-key\n"


def kek_bytes(value: str) -> bytes:
    """A KEK as given in settings: 32 bytes written as 64 hex characters."""
    try:
        key = bytes.fromhex(value)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ValueError("a key-encryption key is 32 bytes written as 64 hex characters")
    return key


@dataclass
class Keyring:
    """The KEKs by id (the current one wraps new data keys; retired ones only unwrap)."""

    current_id: str
    keks: Mapping[str, bytes]
    # Unwrapped data keys by (user, kek id, wrapped bytes): a shredded key is never read
    # from the database again, so a cache keyed by the wrapped bytes cannot outlive it.
    _cache: dict[tuple[str, str, bytes], AESGCM] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.current_id not in self.keks:
            raise ValueError(f"no key-encryption key with id {self.current_id!r}")
        self._aeads = {kid: AESGCM(key) for kid, key in self.keks.items()}

    def new_data_key(self, user_id: str) -> tuple[bytes, str, AESGCM]:
        """A fresh data key for `user_id`: (wrapped bytes, KEK id, the key ready to use)."""
        key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE)
        wrapped = nonce + self._aeads[self.current_id].encrypt(nonce, key, _wrap_aad(user_id))
        aead = AESGCM(key)
        self._remember((user_id, self.current_id, wrapped), aead)
        return wrapped, self.current_id, aead

    def unwrap(self, user_id: str, wrapped: bytes, kek_id: str) -> AESGCM:
        """The data key of `user_id`; `KeyUnavailable` if its KEK is unknown or wrong."""
        cached = self._cache.get((user_id, kek_id, wrapped))
        if cached is not None:
            return cached
        aead = AESGCM(self._data_key(user_id, wrapped, kek_id))
        self._remember((user_id, kek_id, wrapped), aead)
        return aead

    def _data_key(self, user_id: str, wrapped: bytes, kek_id: str) -> bytes:
        """The raw data key of `user_id`, unwrapped by the KEK named `kek_id`."""
        kek = self._aeads.get(kek_id)
        if kek is None:
            raise KeyUnavailable(f"data key wrapped by unknown key-encryption key {kek_id!r}")
        try:
            return kek.decrypt(wrapped[:NONCE], wrapped[NONCE:], _wrap_aad(user_id))
        except InvalidTag:
            raise KeyUnavailable(
                f"the key-encryption key {kek_id!r} does not unwrap this data key"
            ) from None

    def rewrap(self, user_id: str, wrapped: bytes, kek_id: str) -> bytes:
        """The same data key wrapped by the current KEK (KEK rotation)."""
        key = self._data_key(user_id, wrapped, kek_id)
        nonce = os.urandom(NONCE)
        return nonce + self._aeads[self.current_id].encrypt(nonce, key, _wrap_aad(user_id))

    def _remember(self, key: tuple[str, str, bytes], aead: AESGCM) -> None:
        if len(self._cache) >= 100_000:
            self._cache.clear()
        self._cache[key] = aead


def _wrap_aad(user_id: str) -> bytes:
    return _WRAP_AAD + user_id.encode()


def _entry_aad(event_id: str, user_id: str) -> bytes:
    return f"{event_id}\n{user_id}".encode()


def seal(aead: AESGCM, event_id: str, user_id: str, plaintext: str) -> str:
    """Encrypt one entry's personal fields: base64(nonce + ciphertext + tag)."""
    nonce = os.urandom(NONCE)
    sealed = aead.encrypt(nonce, plaintext.encode(), _entry_aad(event_id, user_id))
    return base64.b64encode(nonce + sealed).decode()


def unseal(aead: AESGCM, event_id: str, user_id: str, sealed: str) -> str:
    """The plaintext of `seal`; `KeyUnavailable` if the key or the binding is wrong."""
    raw = base64.b64decode(sealed)
    try:
        return aead.decrypt(raw[:NONCE], raw[NONCE:], _entry_aad(event_id, user_id)).decode()
    except InvalidTag:
        raise KeyUnavailable("this entry was not sealed with this data key") from None
