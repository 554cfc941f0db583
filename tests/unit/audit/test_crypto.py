"""Envelope encryption of personal fields and their split from an event's data (no I/O)."""

from __future__ import annotations

import orjson
import pytest
from pydantic import SecretStr, ValidationError

from audit_store.crypto import Keyring, seal, unseal
from audit_store.exceptions import KeyUnavailable
from audit_store.personal import ERASED, mask, merge, split
from audit_store.settings import AuditSettings

KEK_A, KEK_B = bytes(range(32)), bytes(range(1, 33))


def test_a_sealed_entry_opens_with_its_users_key_only() -> None:
    keyring = Keyring("a", {"a": KEK_A})
    wrapped, kek_id, aead = keyring.new_data_key("alice")
    sealed = seal(aead, "e1", "alice", '{"title":"buy milk"}')
    assert "milk" not in sealed
    # Another process (no cache) unwraps the stored key with the same KEK.
    fresh = Keyring("a", {"a": KEK_A})
    assert unseal(fresh.unwrap("alice", wrapped, kek_id), "e1", "alice", sealed) == (
        '{"title":"buy milk"}'
    )
    # Bound to its entry and user: moved to another entry or user, it does not open.
    with pytest.raises(KeyUnavailable):
        unseal(aead, "e2", "alice", sealed)
    with pytest.raises(KeyUnavailable):
        fresh.unwrap("bob", wrapped, kek_id)
    _, _, other = keyring.new_data_key("alice")
    with pytest.raises(KeyUnavailable):
        unseal(other, "e1", "alice", sealed)


def test_a_wrong_or_unknown_kek_is_refused() -> None:
    wrapped, kek_id, _ = Keyring("a", {"a": KEK_A}).new_data_key("alice")
    with pytest.raises(KeyUnavailable, match="does not unwrap"):
        Keyring("a", {"a": KEK_B}).unwrap("alice", wrapped, kek_id)
    with pytest.raises(KeyUnavailable, match="unknown key-encryption key"):
        Keyring("b", {"b": KEK_A}).unwrap("alice", wrapped, kek_id)


def test_a_shredded_key_leaves_the_entry_undecryptable() -> None:
    keyring = Keyring("a", {"a": KEK_A})
    _, _, aead = keyring.new_data_key("alice")
    sealed = seal(aead, "e1", "alice", '{"title":"buy milk"}')
    del aead  # shredding: the wrapped key row is gone; no other key opens the entry
    for _ in range(3):
        _, _, guess = keyring.new_data_key("alice")
        with pytest.raises(KeyUnavailable):
            unseal(guess, "e1", "alice", sealed)


def test_kek_rotation_rewraps_under_the_new_id() -> None:
    old = Keyring("k1", {"k1": KEK_A})
    wrapped, _, aead = old.new_data_key("alice")
    sealed = seal(aead, "e1", "alice", "x")
    rotated = Keyring("k2", {"k1": KEK_A, "k2": KEK_B})
    rewrapped = rotated.rewrap("alice", wrapped, "k1")
    assert (
        unseal(Keyring("k2", {"k2": KEK_B}).unwrap("alice", rewrapped, "k2"), "e1", "alice", sealed)
        == "x"
    )


def test_settings_take_the_kek_as_64_hex_and_refuse_the_default_outside_local() -> None:
    with pytest.raises(ValidationError, match="64 hex"):
        AuditSettings(kek=SecretStr("too short"))
    with pytest.raises(ValidationError, match="retired KEK id"):
        AuditSettings(kek_id="k1", kek_retired={"k1": SecretStr("ab" * 32)})
    settings = AuditSettings(
        kek=SecretStr("cd" * 32), kek_id="k2", kek_retired={"k1": SecretStr("ab" * 32)}
    )
    assert settings.keyring().current_id == "k2"
    assert "cdcd" not in repr(settings)


def test_kek_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "kek"
    path.write_text("ef" * 32 + "\n")
    monkeypatch.setenv("TASKFLOW_AUDIT_KEK_FILE", str(path))
    assert AuditSettings().kek.get_secret_value() == "ef" * 32


TASK = {
    "id": "t1", "user_id": "alice", "title": "see Dr. Who", "description": None,
    "tags": ["health"], "version": 3, "status": "open",
}  # fmt: skip
DIGEST = {
    "digest_id": "d1",
    "items": [{"task_id": "t1", "title": "a"}, {"task_id": "t2", "title": "b"}],
}
NOTE = {
    "user_id": "bob",
    "notification": {"id": "n1", "title": "New task", "body": "buy milk", "kind": "task.created"},
}


@pytest.mark.parametrize(
    ("event_type", "data", "gone"),
    [
        ("task.updated", TASK, ("see Dr. Who", "health")),
        ("reminder.digest", DIGEST, ('"a"', '"b"')),
        ("notification.created", NOTE, ("New task", "buy milk")),
        (
            "notification.failed",
            {"error": "550 alice@example.com unknown", "channel": "email"},
            ("alice@",),
        ),
    ],
)
def test_personal_fields_split_off_and_come_back(
    event_type: str, data: dict[str, object], gone: tuple[str, ...]
) -> None:
    clear, personal = split(event_type, data)
    text = orjson.dumps(clear).decode()
    assert not any(word in text for word in gone), text
    assert personal is not None and merge(clear, personal) == data
    masked = orjson.dumps(mask(event_type, clear)).decode()
    assert ERASED in masked and not any(word in masked for word in gone)


def test_events_without_personal_fields_are_untouched() -> None:
    data = {"user_id": "alice", "erasure_id": "x", "requested_by": "self"}
    assert split("user.erased", data) == (data, None)
    assert mask("user.erased", data) == data
    # A null description is not personal data: it stays, and is not masked.
    clear, _ = split("task.created", TASK)
    assert clear["description"] is None and mask("task.created", clear)["description"] is None
