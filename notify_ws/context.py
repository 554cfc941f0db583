"""What request handlers need from the composition root, held on the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quart import current_app

from notify_ws.channels.webhook import target_policy
from notify_ws.channels.webhook_targets import TargetPolicy
from notify_ws.clock import Clock
from notify_ws.hub.hub import Hub
from notify_ws.hub.session import Session
from notify_ws.metrics import Metrics
from notify_ws.settings import Config
from webapi.auth import TokenVerifier


@dataclass
class NotifyContext:
    config: Config
    clock: Clock
    metrics: Metrics
    hub: Hub
    jwt_secret: str
    tokens: TokenVerifier
    # Opened in before_serving; None until then.
    pool: Any = None
    session: Session = field(init=False)
    # Where webhooks may go: checked on PUT /preferences and again at each delivery.
    webhook_targets: TargetPolicy = field(init=False)
    # Users erased while this process runs (filled by the hub's erasure listener).
    erased_recently: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.webhook_targets = target_policy(self.config)


def notify_context() -> NotifyContext:
    ctx: NotifyContext = current_app.extensions["notify_ws"]
    return ctx
