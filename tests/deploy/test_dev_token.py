import pytest

from deploy.local import dev_token
from webapi.auth import AuthSettings, Unauthorized

SECRET = "s" * 40


def test_dev_token_carries_the_configured_audience_and_issuer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKFLOW_JWT_SECRET", SECRET)
    monkeypatch.setenv("TASKFLOW_JWT_AUDIENCE", "taskflow-api")
    monkeypatch.setenv("TASKFLOW_JWT_ISSUER", "https://id.example")
    verifier = AuthSettings().verifier()
    principal = verifier.verify(dev_token("alice", ("operator",)))
    assert principal.user_id == "alice"
    assert principal.is_operator


def test_dev_token_without_audience_is_refused_where_one_is_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKFLOW_JWT_SECRET", SECRET)
    token = dev_token("alice")
    monkeypatch.setenv("TASKFLOW_JWT_AUDIENCE", "taskflow-api")
    with pytest.raises(Unauthorized, match="aud"):
        AuthSettings().verifier().verify(token)
