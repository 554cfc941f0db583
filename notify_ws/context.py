"""What request handlers need from the composition root, held on the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quart import current_app

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


def notify_context() -> NotifyContext:
    ctx: NotifyContext = current_app.extensions["notify_ws"]
    return ctx
