"""`*_FILE` variables (events.secrets) on a small settings class and on every service's settings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from events.secrets import FILE_SUFFIX, SecretFilesMixin
from tests.deploy.settings_inventory import settings_classes

SECRET = "s3cret-value-that-is-long-enough-for-production"


class Example(SecretFilesMixin, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_", extra="ignore")

    password: SecretStr | None = None
    labels: dict[str, str] = {}
    port: int = 1
    env: str = Field("local", validation_alias=AliasChoices("EXAMPLE_ENV", "EXAMPLE_MODE"))
    # A field whose own name ends in _file: its variable is its value, not a file to read.
    log_file: str = "-"
    log: str = "info"


def write(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


def test_a_file_variable_sets_the_field_from_the_stripped_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAMPLE_PASSWORD_FILE", write(tmp_path, "pw", f"  {SECRET}\n"))
    monkeypatch.setenv("EXAMPLE_LABELS_FILE", write(tmp_path, "labels", '{"team": "core"}\n'))
    monkeypatch.setenv("EXAMPLE_PORT_FILE", write(tmp_path, "port", "8080\n"))

    settings = Example()

    assert settings.password is not None
    assert settings.password.get_secret_value() == SECRET
    assert settings.labels == {"team": "core"}  # complex values are JSON, as in the env
    assert settings.port == 8080


def test_lower_case_file_variables_work_like_the_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("example_password_file", write(tmp_path, "pw", SECRET))
    password = Example().password
    assert password is not None
    assert password.get_secret_value() == SECRET


def test_aliases_have_file_variables_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_MODE_FILE", write(tmp_path, "mode", "production"))
    assert Example().env == "production"


def test_a_field_named_like_a_file_variable_keeps_its_own_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXAMPLE_LOG_FILE", "/var/log/x.log")
    settings = Example()
    assert settings.log_file == "/var/log/x.log"
    assert settings.log == "info"


def test_a_variable_and_its_file_together_are_refused_without_showing_either(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAMPLE_PASSWORD", "from-the-env")
    monkeypatch.setenv("EXAMPLE_PASSWORD_FILE", write(tmp_path, "pw", SECRET))
    with pytest.raises(SettingsError, match="both EXAMPLE_PASSWORD and EXAMPLE_PASSWORD_FILE") as e:
        Example()
    assert "from-the-env" not in str(e.value)
    assert SECRET not in str(e.value)


def test_an_unreadable_file_names_the_variable_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("EXAMPLE_PASSWORD_FILE", str(missing))
    with pytest.raises(SettingsError, match=f"EXAMPLE_PASSWORD_FILE={missing}: cannot read"):
        Example()


def test_arguments_still_win_over_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_PORT_FILE", write(tmp_path, "port", "8080"))
    assert Example(port=9).port == 9


def test_a_failed_validation_does_not_print_the_secrets_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAMPLE_PASSWORD_FILE", write(tmp_path, "pw", SECRET))
    monkeypatch.setenv("EXAMPLE_PORT", "not-a-port")
    with pytest.raises(ValueError, match="port") as e:
        Example()
    assert SECRET not in str(e.value)
    assert "not-a-port" not in str(e.value)  # inputs are hidden altogether


# Every settings class of the services: secrets are SecretStr, settable from files, and
# neither value nor file content shows in repr() or a log line.
SERVICE_SETTINGS = settings_classes()


def _env_name(cls: type[BaseSettings], field: str) -> str:
    alias = cls.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{cls.model_config.get('env_prefix', '')}{field}".upper()


def _secret_fields(cls: type[BaseSettings]) -> list[str]:
    return [
        name
        for name, info in cls.model_fields.items()
        if info.annotation in (SecretStr, SecretStr | None)
    ]


def test_the_inventory_covers_the_classes_that_hold_secrets() -> None:
    names = {cls.__name__ for cls in SERVICE_SETTINGS}
    assert {
        "KafkaSettings",
        "AuthSettings",
        "TaskApiSettings",
        "NotifySettings",
        "AuditSettings",
        "ReminderSettings",
    } <= names


@pytest.mark.parametrize("cls", SERVICE_SETTINGS, ids=lambda cls: cls.__name__)
def test_every_service_settings_class_reads_file_variables(cls: type[BaseSettings]) -> None:
    assert issubclass(cls, SecretFilesMixin), f"{cls.__name__} must mix in SecretFilesMixin"
    assert cls.model_config.get("hide_input_in_errors") is True


@pytest.mark.parametrize("cls", SERVICE_SETTINGS, ids=lambda cls: cls.__name__)
def test_secrets_from_files_stay_out_of_repr_and_logs(
    cls: type[BaseSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_fields = _secret_fields(cls)
    url_fields = [name for name in cls.model_fields if name.endswith("database_url")]
    password = "pw-in-a-file-" + "x" * 32
    # A key-encryption key must be 64 hex characters: another secret, checked the same way.
    values = {f: ("ab" * 32 if f == "kek" else password) for f in secret_fields}
    for field in secret_fields:
        path = write(tmp_path, field, values[field] + "\n")
        monkeypatch.setenv(_env_name(cls, field) + FILE_SUFFIX, path)
    for field in url_fields:
        url = f"postgresql://svc:{password}@db:5432/x"
        monkeypatch.setenv(_env_name(cls, field) + FILE_SUFFIX, write(tmp_path, field, url))
    if cls.__name__ == "KafkaSettings":  # its passwords are only valid with SASL over TLS
        monkeypatch.setenv("TASKFLOW_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
        monkeypatch.setenv("TASKFLOW_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
        monkeypatch.setenv("TASKFLOW_KAFKA_SASL_USERNAME", "svc")
        for name in ("CA", "CERTIFICATE", "KEY"):
            path = write(tmp_path, name, "PEM")
            monkeypatch.setenv(f"TASKFLOW_KAFKA_SSL_{name}_LOCATION", path)

    settings = cls()
    with caplog.at_level(logging.INFO):
        logging.getLogger("taskflow.test").info("settings: %r / %s", settings, settings)

    for field in secret_fields:
        value = getattr(settings, field)
        if value is not None:
            assert value.get_secret_value() == values[field]
    for field in url_fields:
        assert password in getattr(settings, field)
    for secret in set(values.values()) | {password}:
        assert secret not in repr(settings)
        assert secret not in str(settings)
        assert secret not in caplog.text
