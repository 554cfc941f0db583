"""Rotating the digest key: digests signed before stay verifiable under their key id."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from audit_store.digests import Digest, Signer
from audit_store.settings import AuditSettings
from audit_store.verify import check_digests
from tests.unit.audit.factories import T0
from tests.unit.audit.test_verify import rows

OLD = Signer("hmac-sha256", "o" * 40, "k1")
NEW_ED25519_SEED = "2e" * 32


def signed(signer: Signer, chain: list[dict[str, Any]], frm: int, to: int, prev: str) -> dict:  # type: ignore[type-arg]
    digest = Digest(
        "taskflow.tasks/0", frm, to, chain[to - 1]["hash"], prev, signer.algorithm,
        signer.key_id, T0,
    )  # fmt: skip
    return {
        "chain_id": digest.chain_id, "from_seq": frm, "to_seq": to,
        "head_hash": digest.head_hash, "prev_signature": prev, "algorithm": digest.algorithm,
        "key_id": digest.key_id, "created_at": T0, "signature": signer.sign(digest.message()),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("algorithm", "key"), [("hmac-sha256", "n" * 40), ("ed25519", NEW_ED25519_SEED)]
)
def test_a_rotated_chain_verifies_with_the_retired_key_kept(algorithm: str, key: str) -> None:
    chain = rows(6)
    seen = {3: chain[2]["hash"], 6: chain[5]["hash"]}
    before = signed(OLD, chain, 1, 3, "")
    new = Signer(algorithm, key, "k2", retired={"k1": "o" * 40})
    after = signed(new, chain, 4, 6, before["signature"])

    assert check_digests("c", [before, after], seen, new) is None

    forgotten = Signer(algorithm, key, "k2")  # the old key was dropped, not retired
    bad = check_digests("c", [before, after], seen, forgotten)
    assert bad is not None and bad.reason == "digest signed with unknown key id 'k1' (hmac-sha256)"
    wrong = Signer(algorithm, key, "k2", retired={"k1": "x" * 40})
    bad = check_digests("c", [before, after], seen, wrong)
    assert bad is not None and bad.reason == "digest signature is invalid"


def test_settings_carry_retired_keys_and_refuse_reusing_an_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKFLOW_AUDIT_DIGEST_KEY", "n" * 40)
    monkeypatch.setenv("TASKFLOW_AUDIT_DIGEST_KEY_ID", "k2")
    monkeypatch.setenv("TASKFLOW_AUDIT_DIGEST_RETIRED_KEYS", '{"k1": "' + "o" * 40 + '"}')
    settings = AuditSettings()
    assert "oooo" not in repr(settings)
    signer = Signer.from_settings(settings)
    assert signer.for_digest("hmac-sha256", "k1") is not None
    assert signer.for_digest("hmac-sha256", "k0") is None
    with pytest.raises(ValidationError, match="retired key id"):
        AuditSettings(digest_key_id="k1", digest_key=SecretStr("n" * 40))
