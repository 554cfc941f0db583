"""Signed digests over chain ranges, chained like CloudTrail's digest files.

Each digest signs (chain, from_seq, to_seq, head hash, previous digest's signature,
time, key id) with HMAC-SHA256 or Ed25519, so rewriting a whole chain and its hashes
still fails verification without the key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit_store.ports import Clock
from audit_store.settings import AuditSettings

_LOCK_ID = 0x7A0D18


@dataclass(frozen=True, slots=True)
class Digest:
    chain_id: str
    from_seq: int
    to_seq: int
    head_hash: str
    prev_signature: str
    algorithm: str
    key_id: str
    created_at: datetime
    signature: str = ""

    def message(self) -> bytes:
        return orjson.dumps(
            {
                "chain_id": self.chain_id,
                "from_seq": self.from_seq,
                "to_seq": self.to_seq,
                "head_hash": self.head_hash,
                "prev_signature": self.prev_signature,
                "algorithm": self.algorithm,
                "key_id": self.key_id,
                "created_at": self.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
            },
            option=orjson.OPT_SORT_KEYS,
        )


class Signer:
    """Signs and checks digest messages with the configured key; `retired` keys (key id to
    key) only check the digests signed before a rotation."""

    def __init__(
        self, algorithm: str, key: str, key_id: str, retired: Mapping[str, str] | None = None
    ) -> None:
        self.algorithm = algorithm
        self.key_id = key_id
        self._retired = dict(retired or {})
        self._checkers: dict[tuple[str, str], Signer] = {(algorithm, key_id): self}
        if algorithm == "ed25519":
            self._private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key))
            self._public = self._private.public_key()
        else:
            self._secret = key.encode()

    @classmethod
    def from_settings(cls, settings: AuditSettings) -> Signer:
        return cls(
            settings.digest_algorithm,
            settings.digest_key.get_secret_value(),
            settings.digest_key_id,
            {kid: key.get_secret_value() for kid, key in settings.digest_retired_keys.items()},
        )

    def for_digest(self, algorithm: str, key_id: str) -> Signer | None:
        """The signer that checks a digest signed with `key_id` (None: that key is unknown)."""
        found = self._checkers.get((algorithm, key_id))
        if found is None and key_id in self._retired:
            found = Signer(algorithm, self._retired[key_id], key_id)
            self._checkers[(algorithm, key_id)] = found
        return found

    def sign(self, message: bytes) -> str:
        if self.algorithm == "ed25519":
            return self._private.sign(message).hex()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def check(self, message: bytes, signature: str) -> bool:
        if self.algorithm == "ed25519":
            try:
                self._public.verify(bytes.fromhex(signature), message)
            except (InvalidSignature, ValueError):
                return False
            return True
        return hmac.compare_digest(self.sign(message), signature)


async def create_digests(pool: asyncpg.Pool, signer: Signer, clock: Clock) -> int:
    """Sign a digest for every chain that grew since its last digest; returns how many."""
    created = 0
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK_ID):
            return 0  # another instance is signing right now
        rows = await conn.fetch(
            """
            SELECT h.chain_id, h.seq, h.hash, d.to_seq, d.signature
            FROM audit_chain_heads h
            LEFT JOIN LATERAL (
                SELECT to_seq, signature FROM audit_digests
                WHERE chain_id = h.chain_id ORDER BY to_seq DESC LIMIT 1
            ) d ON true
            WHERE h.seq > coalesce(d.to_seq, 0)
            """
        )
        now = clock()
        for row in rows:
            digest = Digest(
                chain_id=row["chain_id"],
                from_seq=(row["to_seq"] or 0) + 1,
                to_seq=row["seq"],
                head_hash=row["hash"],
                prev_signature=row["signature"] or "",
                algorithm=signer.algorithm,
                key_id=signer.key_id,
                created_at=now,
            )
            await conn.execute(
                """
                INSERT INTO audit_digests (chain_id, from_seq, to_seq, head_hash,
                    prev_signature, algorithm, key_id, created_at, signature)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                """,
                digest.chain_id,
                digest.from_seq,
                digest.to_seq,
                digest.head_hash,
                digest.prev_signature,
                digest.algorithm,
                digest.key_id,
                digest.created_at,
                signer.sign(digest.message()),
            )
            created += 1
    return created
