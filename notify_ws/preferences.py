"""A user's notification preferences and the quiet-hours rule (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl

EXTERNAL_CHANNELS = ("email", "push", "webhook")


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    return name


def _check_hhmm(value: str) -> str:
    hours, sep, minutes = value.partition(":")
    if not (sep and len(hours) == 2 and len(minutes) == 2 and hours.isdigit()):
        raise ValueError("expected HH:MM")
    if not minutes.isdigit() or int(hours) > 23 or int(minutes) > 59:
        raise ValueError("expected HH:MM between 00:00 and 23:59")
    return value


Zone = Annotated[str, AfterValidator(_check_zone)]
HHMM = Annotated[str, AfterValidator(_check_hhmm)]


class Channels(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    in_app: bool = True
    email: bool = False
    push: bool = False
    webhook: bool = False


class QuietHours(BaseModel):
    """Local wall-clock window; `start` > `end` wraps past midnight (22:00-07:00)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: HHMM
    end: HHMM

    @property
    def start_time(self) -> time:
        return time.fromisoformat(self.start)

    @property
    def end_time(self) -> time:
        return time.fromisoformat(self.end)


class Preferences(BaseModel):
    """The body of GET/PUT /api/v1/preferences (api.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    channels: Channels = Channels()
    email: Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    webhook_url: HttpUrl | None = None
    timezone: Zone = "UTC"
    quiet_hours: QuietHours | None = None
    digest: bool = False

    def wants(self, channel: str) -> bool:
        """Whether `channel` is enabled and has somewhere to go."""
        if channel == "email":
            return self.channels.email and self.email is not None
        if channel == "webhook":
            return self.channels.webhook and self.webhook_url is not None
        if channel == "push":
            return self.channels.push
        return self.channels.in_app


def quiet_until(prefs: Preferences, now: datetime) -> datetime | None:
    """When the quiet hours containing `now` end (UTC), or None outside quiet hours."""
    quiet = prefs.quiet_hours
    if quiet is None or quiet.start == quiet.end:
        return None
    zone = ZoneInfo(prefs.timezone)
    local = now.astimezone(zone)
    start, end, clock = quiet.start_time, quiet.end_time, local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
    else:
        inside = clock >= start or clock < end
    if not inside:
        return None
    end_day = local.date()
    if clock >= end:
        end_day += timedelta(days=1)
    # Wall-clock end in the user's zone; zoneinfo resolves DST gaps and folds.
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(UTC)
