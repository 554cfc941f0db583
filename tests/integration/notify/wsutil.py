"""WebSocket client helpers for the notification tests."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson


async def next_frame(ws: Any, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame = orjson.loads(await ws.recv())
            if frame["type"] == kind:
                return frame  # type: ignore[no-any-return]


async def notifications(ws: Any, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The next `count` notification frames (other frame types skipped)."""
    out: list[dict[str, Any]] = []
    while len(out) < count:
        out.append((await next_frame(ws, "notification", timeout))["notification"])
    return out


async def quiet(ws: Any, seconds: float = 0.3) -> list[dict[str, Any]]:
    """Frames other than unread_count arriving within `seconds` (expected: none)."""
    got: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frame = orjson.loads(await ws.recv())
                if frame["type"] != "unread_count":
                    got.append(frame)
    except TimeoutError:
        return got


def send(ws: Any, frame: dict[str, Any]) -> Any:
    return ws.send(orjson.dumps(frame).decode())
