"""Every environment variable the code reads through pydantic-settings, found by importing
each package's settings module and listing the fields of its `BaseSettings` classes."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

from pydantic import AliasChoices, SecretStr
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from events.secrets import FILE_SUFFIX, SecretFilesMixin

SETTINGS_MODULES = (
    "events.kafka",
    "webapi.auth",
    "webapi.hardening",
    "task_api.settings",
    "notify_ws.settings",
    "audit_store.settings",
    "reminders.settings",
)


@dataclass(frozen=True)
class EnvVar:
    names: tuple[str, ...]  # any of these sets the field (`..._FILE`: from that file)
    owner: str  # Class.field
    prefix: str
    required: bool  # no default at all
    must_set: bool  # required, or its default cannot work in a deployment

    @property
    def name(self) -> str:
        return self.names[0]


def _loopback(value: object) -> bool:
    return isinstance(value, str) and ("127.0.0.1" in value or "localhost" in value)


def settings_classes() -> list[type[BaseSettings]]:
    found: list[type[BaseSettings]] = []
    for module_name in SETTINGS_MODULES:
        module = importlib.import_module(module_name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseSettings) and obj.__module__ == module_name:
                found.append(obj)
    return found


def env_vars() -> list[EnvVar]:
    out = []
    for cls in settings_classes():
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                names = tuple(str(choice) for choice in alias.choices)
            elif isinstance(alias, str):
                names = (alias,)
            else:
                names = (f"{prefix}{field_name}".upper(),)
            if issubclass(cls, SecretFilesMixin):
                names += tuple(name + FILE_SUFFIX for name in names)
            required = info.default is PydanticUndefined and info.default_factory is None
            default = info.default
            # A default secret is refused outside local mode; a loopback address is wrong
            # in a container; so a deployment must set both.
            dev_secret = isinstance(default, SecretStr)
            must_set = required or dev_secret or _loopback(default)
            out.append(EnvVar(names, f"{cls.__name__}.{field_name}", prefix, required, must_set))
    return out
