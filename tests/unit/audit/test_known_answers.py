"""Known answers for the audit trail's hash chain and digest signatures.

Fixed entries and digests give fixed bytes, hashes and signatures, written down here once.
Any change to the canonical form (a field, its order, a timestamp's spelling, the JSON
encoder) fails these tests: stored chains and signed digests would no longer verify, so
such a change needs a new chain version and a migration, not a new expected value.

Crypto-shredding (issue 16) added format 2 that way: FIRST and SECOND (format 1, what every
entry stored before it is) keep their bytes and hashes unchanged; THIRD is the new format,
whose canonical form adds `format` and `sealed` (the personal fields' ciphertext, hashed
as stored) and whose `data` is the event data without its personal fields.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

from audit_store.chain import GENESIS, Entry, canonical, canonical_data, entry_hash
from audit_store.digests import Digest, Signer

T = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

FIRST = Entry(
    chain_id="taskflow.tasks/0",
    chain_seq=1,
    event_id="01900000-0000-7000-8000-000000000001",
    type="task.created",
    source="/taskflow/task-service",
    subject="t1",
    user_id="alice",
    task_id="t1",
    occurred_at=T,
    recorded_at=T + timedelta(microseconds=250),
    data_json=canonical_data(
        {
            "title": "Café ☕",
            "version": 1,
            "due_at": None,
            "tags": ["b", "a"],
            "meta": {"z": 1.5, "a": True},
        }
    ),
    trace_id="0af7651916cd43dd8448eb211c80319c",
    snapshot=False,
    source_offset=0,
)
# Nulls, an empty payload, and an instant given at +01:30 (hashed as its UTC spelling).
SECOND = Entry(
    chain_id="taskflow.tasks/0",
    chain_seq=2,
    event_id="01900000-0000-7000-8000-000000000002",
    type="task.snapshot",
    source="/taskflow/task-service",
    subject="t1",
    user_id="alice",
    task_id=None,
    occurred_at=datetime(2026, 1, 15, 13, 30, 0, 5, tzinfo=timezone(timedelta(hours=1.5))),
    recorded_at=T + timedelta(hours=1),
    data_json=canonical_data({}),
    trace_id=None,
    snapshot=True,
    source_offset=None,
)

FIRST_CANONICAL = (
    b'{"chain_id":"taskflow.tasks/0","chain_seq":1,'
    b'"event_id":"01900000-0000-7000-8000-000000000001",'
    b'"occurred_at":"2026-01-15T12:00:00.000000+00:00",'
    b'"recorded_at":"2026-01-15T12:00:00.000250+00:00","snapshot":false,'
    b'"source":"/taskflow/task-service","source_offset":0,"subject":"t1","task_id":"t1",'
    b'"trace_id":"0af7651916cd43dd8448eb211c80319c","type":"task.created","user_id":"alice",'
    b'"data":{"due_at":null,"meta":{"a":true,"z":1.5},"tags":["b","a"],'
    b'"title":"Caf\xc3\xa9 \xe2\x98\x95","version":1}}'
)
SECOND_CANONICAL = (
    b'{"chain_id":"taskflow.tasks/0","chain_seq":2,'
    b'"event_id":"01900000-0000-7000-8000-000000000002",'
    b'"occurred_at":"2026-01-15T12:00:00.000005+00:00",'
    b'"recorded_at":"2026-01-15T13:00:00.000000+00:00","snapshot":true,'
    b'"source":"/taskflow/task-service","source_offset":null,"subject":"t1","task_id":null,'
    b'"trace_id":null,"type":"task.snapshot","user_id":"alice","data":{}}'
)
# Format 2: the clear part of FIRST's data, its personal fields sealed (any bytes will do).
THIRD = dataclasses.replace(
    FIRST,
    chain_seq=3,
    event_id="01900000-0000-7000-8000-000000000003",
    data_json=canonical_data({"version": 1, "due_at": None, "meta": {"z": 1.5, "a": True}}),
    source_offset=2,
    format=2,
    sealed="AAECAwQFBgcICQoLsealed+ciphertext/0==",
)
THIRD_CANONICAL = (
    b'{"chain_id":"taskflow.tasks/0","chain_seq":3,'
    b'"event_id":"01900000-0000-7000-8000-000000000003","format":2,'
    b'"occurred_at":"2026-01-15T12:00:00.000000+00:00",'
    b'"recorded_at":"2026-01-15T12:00:00.000250+00:00",'
    b'"sealed":"AAECAwQFBgcICQoLsealed+ciphertext/0==","snapshot":false,'
    b'"source":"/taskflow/task-service","source_offset":2,"subject":"t1","task_id":"t1",'
    b'"trace_id":"0af7651916cd43dd8448eb211c80319c","type":"task.created","user_id":"alice",'
    b'"data":{"due_at":null,"meta":{"a":true,"z":1.5},"version":1}}'
)
FIRST_HASH = "f60bcab29e36d8bf7ea02b5993790702eff13a1b5896da10e04c92ae38df3e6c"
SECOND_HASH = "390864a6fa86eb97675956f78ffa58b852c09550cbed7f3b5cbe8783022d4146"
THIRD_HASH = "f4e06fa4d07821388af08f01287c117adf2ea9380283c2f63d6b28a3371703b1"

HMAC_KEY = "k" * 40
HMAC_SIGNATURE = "2403efbf8edbc18d94dfc42b25ea783769bcea963b8ba73f255ca54b503f2f19"
ED25519_SEED = "1f" * 32
# Ed25519 signatures are deterministic (RFC 8032), so they have known answers too.
ED25519_SIGNATURE = (
    "7733a22769a419b73ff9775fa8d01ed9347efa4d2d8a875bbaaf2d6b4868dc87"
    "99bb85c515e6630179696bca4a1f3545e74bd7ed87e54464e0637fc95070ab06"
)


def digest(algorithm: str, key_id: str) -> Digest:
    return Digest(
        "taskflow.tasks/0", 1, 2, SECOND_HASH, "", algorithm, key_id, T + timedelta(hours=2)
    )


def test_canonical_form_of_an_entry() -> None:
    assert canonical(FIRST) == FIRST_CANONICAL
    assert canonical(SECOND) == SECOND_CANONICAL
    assert canonical(THIRD) == THIRD_CANONICAL


def test_chain_hashes() -> None:
    assert GENESIS == "0" * 64
    assert entry_hash(GENESIS, FIRST) == FIRST_HASH
    assert entry_hash(FIRST_HASH, SECOND) == SECOND_HASH
    assert entry_hash(SECOND_HASH, THIRD) == THIRD_HASH


def test_digest_message() -> None:
    assert digest("hmac-sha256", "k1").message() == (
        b'{"algorithm":"hmac-sha256","chain_id":"taskflow.tasks/0",'
        b'"created_at":"2026-01-15T14:00:00.000000+00:00","from_seq":1,'
        b'"head_hash":"' + SECOND_HASH.encode() + b'","key_id":"k1","prev_signature":"",'
        b'"to_seq":2}'
    )


def test_hmac_sha256_signature() -> None:
    signer = Signer("hmac-sha256", HMAC_KEY, "k1")
    assert signer.sign(digest("hmac-sha256", "k1").message()) == HMAC_SIGNATURE


def test_ed25519_signature() -> None:
    signer = Signer("ed25519", ED25519_SEED, "k2")
    message = digest("ed25519", "k2").message()
    assert signer.sign(message) == ED25519_SIGNATURE
    assert signer.check(message, ED25519_SIGNATURE)
