"""Request and response shapes of the notification REST API (also the OpenAPI document)."""

from __future__ import annotations

import base64
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from webapi.paging import DEFAULT_LIMIT, MAX_LIMIT


class InboxQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unread_only: bool = False
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: str | None = None


class NotificationOut(BaseModel):
    id: str
    seq: int
    kind: str
    title: str
    body: str
    task_id: str | None
    event_id: str
    created_at: str
    read: bool


class InboxPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None
    unread_count: int


class ReadResult(BaseModel):
    id: str
    read: bool
    unread_count: int


class ReadAllResult(BaseModel):
    marked: int
    unread_count: int


class PushKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p256dh: Annotated[str, Field(min_length=16, max_length=200, pattern=r"^[A-Za-z0-9_\-=]+$")]
    auth: Annotated[str, Field(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9_\-=]+$")]

    @field_validator("p256dh")
    @classmethod
    def _p256_point(cls, value: str) -> str:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        if len(raw) != 65 or raw[0] != 4:
            raise ValueError("p256dh must be an uncompressed P-256 public key (65 bytes)")
        return value


class PushSubscriptionIn(BaseModel):
    """The browser's PushSubscription JSON (`subscription.toJSON()`)."""

    model_config = ConfigDict(extra="forbid")
    endpoint: HttpUrl
    expirationTime: int | None = None  # noqa: N815 - the browser's own field name
    keys: PushKeys


class PushSubscriptionOut(BaseModel):
    id: str
    endpoint: str
    keys: dict[str, str]
    created_at: str
