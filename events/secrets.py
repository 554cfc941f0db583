"""`*_FILE` variables for every settings class: `TASKFLOW_X_FILE=/run/secrets/x` sets field
`x` from that file (Docker/Kubernetes secret files), so secrets need not sit in the env.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

FILE_SUFFIX = "_FILE"


class SecretFilesSource(EnvSettingsSource):
    """Reads `<VAR>_FILE` for every variable `<VAR>` a field reads (prefix and aliases
    included); the file's content, stripped of surrounding whitespace, is the value.

    Everything after the lookup (JSON for complex fields, validation) is the env source's, so
    a value behaves the same whether it comes from `<VAR>` or from `<VAR>_FILE`.
    """

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = super()._load_env_vars()
        suffix = self._apply_case_sensitive(FILE_SUFFIX)
        names = self._field_env_names()
        values: dict[str, str | None] = {}
        for name in sorted(names):
            file_var = name + suffix
            # A field of its own may be called `..._file`: then that variable is its value.
            if file_var in names or environ.get(file_var) is None:
                continue
            if environ.get(name) is not None:
                raise SettingsError(
                    f"both {self._shown(name)} and {self._shown(file_var)} are set: "
                    "set only one of them"
                )
            values[name] = _read_secret_file(self._shown(file_var), str(environ[file_var]))
        return values

    def _field_env_names(self) -> set[str]:
        return {
            env_name
            for field_name, field in self.settings_cls.model_fields.items()
            for _key, env_name, _complex in self._extract_field_info(field, field_name)
        }

    def _shown(self, name: str) -> str:
        """The variable as the user spells it (names are lower-cased when case-insensitive)."""
        return name if self.case_sensitive else name.upper()


def _read_secret_file(variable: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        # Name the variable and path, never the content.
        raise SettingsError(f"{variable}={path}: cannot read the file ({exc})") from None


class SecretFilesMixin:
    """Put first among the bases of a `BaseSettings` subclass to accept `<VAR>_FILE`.

    Sources, strongest first: init arguments, environment, `<VAR>_FILE` files, .env, secrets
    dir. A variable and its `_FILE` twin together are refused, so which one wins never matters.
    """

    # A failed validation must not print the input: it holds every secret read so far. The
    # subclass's own model_config is merged over this one.
    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(hide_input_in_errors=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = (
            SecretFilesSource(
                settings_cls,
                case_sensitive=env_settings.case_sensitive,
                env_prefix=env_settings.env_prefix,
                env_prefix_target=env_settings.env_prefix_target,
                env_nested_delimiter=env_settings.env_nested_delimiter,
                env_nested_max_split=env_settings.env_nested_max_split,
                env_ignore_empty=env_settings.env_ignore_empty,
                env_parse_none_str=env_settings.env_parse_none_str,
                env_parse_enums=env_settings.env_parse_enums,
            )
            if isinstance(env_settings, EnvSettingsSource)
            else SecretFilesSource(settings_cls)
        )
        return init_settings, env_settings, files, dotenv_settings, file_secret_settings
