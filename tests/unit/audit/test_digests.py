"""Digest signatures: HMAC-SHA256 and Ed25519."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from audit_store.digests import Digest, Signer
from audit_store.settings import AuditSettings
from tests.unit.audit.factories import T0

DIGEST = Digest("taskflow.tasks/0", 1, 10, "a" * 64, "", "x", "k1", T0)
ED_SEED = "1f" * 32


@pytest.mark.parametrize(("algorithm", "key"), [("hmac-sha256", "k" * 40), ("ed25519", ED_SEED)])
def test_sign_and_check(algorithm: str, key: str) -> None:
    signer = Signer(algorithm, key, "k1")
    signature = signer.sign(DIGEST.message())
    assert signer.check(DIGEST.message(), signature)
    forged = Digest("taskflow.tasks/0", 1, 11, "a" * 64, "", "x", "k1", T0)
    assert not signer.check(forged.message(), signature)
    assert not signer.check(DIGEST.message(), "00" + signature[2:])
    assert not signer.check(DIGEST.message(), "not hex")


def test_settings_refuse_the_default_key_outside_local() -> None:
    with pytest.raises(ValidationError, match="DIGEST_KEY"):
        AuditSettings(env="production")
    with pytest.raises(ValidationError, match="TASKFLOW_AUDIT_KEK"):  # the shredding KEK too
        AuditSettings(env="production", digest_key=SecretStr("p" * 40))
    settings = AuditSettings(
        env="production", digest_key=SecretStr("p" * 40), kek=SecretStr("ab" * 32)
    )
    assert settings.env == "production"


def test_an_ed25519_key_must_be_a_hex_seed() -> None:
    with pytest.raises(ValidationError, match="seed"):
        AuditSettings(digest_algorithm="ed25519", digest_key=SecretStr("short"))
    settings = AuditSettings(digest_algorithm="ed25519", digest_key=SecretStr(ED_SEED))
    assert Signer.from_settings(settings).algorithm == "ed25519"


def test_retention_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKFLOW_AUDIT_RETENTION_DAYS", '{"task.": 7}')
    monkeypatch.setenv("TASKFLOW_AUDIT_RETENTION_DEFAULT_DAYS", "30")
    settings = AuditSettings()
    assert settings.retention_days == {"task.": 7}
    assert settings.retention_default_days == 30
