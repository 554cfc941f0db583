"""Settings every process reads the same way (`TASKFLOW_*`, no service prefix)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from events.secrets import SecretFilesMixin
from runtime.servers import ServerName


class RuntimeSettings(SecretFilesMixin, BaseSettings):
    """`TASKFLOW_SERVER` overrides the service's measured default ASGI server."""

    model_config = SettingsConfigDict(env_prefix="TASKFLOW_", extra="ignore")

    server: ServerName | None = None
