"""`taskflow user export`: one user's `GET /api/v1/me/export` from all four services,
gathered into one JSON document (portability, issue 16).

A service that does not answer, or answers with an error, is reported in the document
(`status` and `error`) rather than skipped, and makes the export incomplete.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from deploy.local_env import SERVICES

EXPORT_PATH = "/api/v1/me/export"
FORMAT = "taskflow.user.export/v1"
# Each service's name in the document, by its `taskflow serve` name.
SECTIONS = {
    "task-api": "tasks",
    "notify": "notifications",
    "audit": "audit",
    "reminders": "reminders",
}


@dataclass(frozen=True, slots=True)
class Peer:
    """One service to export from: its section name and base URL."""

    name: str
    base_url: str


def peers(env: Mapping[str, str] | None = None) -> list[Peer]:
    """`TASKFLOW_<SERVICE>_BASE_URL` (e.g. TASKFLOW_TASK_API_BASE_URL), else the local
    service on 127.0.0.1 and its port (`TASKFLOW_<SERVICE>_PORT`, default 8001-8004)."""
    env = os.environ if env is None else env
    return [
        Peer(
            SECTIONS[service.name],
            env.get(f"{service.prefix}BASE_URL") or f"http://127.0.0.1:{service.port(env)}",
        )
        for service in SERVICES
    ]


async def _one(client: httpx.AsyncClient, peer: Peer, user_id: str) -> dict[str, Any]:
    url = peer.base_url.rstrip("/") + EXPORT_PATH
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        return {"status": "unavailable", "url": url, "error": f"{type(exc).__name__}: {exc}"}
    if response.status_code != 200:
        detail = response.text[:500]
        return {"status": "error", "url": url, "http_status": response.status_code, "error": detail}
    try:
        data = response.json()
    except ValueError:
        return {"status": "error", "url": url, "http_status": 200, "error": "not JSON"}
    if not isinstance(data, dict) or data.get("user_id") not in (None, user_id):
        return {"status": "error", "url": url, "http_status": 200, "error": "another user's data"}
    return {"status": "ok", "url": url, "data": data}


async def gather(
    user_id: str, token: str, services: Sequence[Peer], now: datetime, timeout: float = 10.0
) -> dict[str, Any]:
    """The combined export; `complete` is false when any service's part is missing."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    async with httpx.AsyncClient(headers=headers, timeout=timeout) as client:
        parts = await asyncio.gather(*(_one(client, peer, user_id) for peer in services))
    sections = {peer.name: part for peer, part in zip(services, parts, strict=True)}
    return {
        "format": FORMAT,
        "user_id": user_id,
        "exported_at": now.isoformat(),
        "complete": all(part["status"] == "ok" for part in parts),
        "services": sections,
    }


def write(document: dict[str, Any], out: Path | None) -> None:
    """To `out` (created owner-only: it holds personal data), or to stdout."""
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        print(text, end="")
        return
    partial = out.with_name(out.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    partial.replace(out)


def summary(document: dict[str, Any]) -> list[str]:
    """One line per service, for the terminal."""
    lines = []
    for name, part in document["services"].items():
        reason = "" if part["status"] == "ok" else f": {part.get('error', '')}"[:200]
        lines.append(f"{name:<14}{part['status']}{reason}")
    return lines
