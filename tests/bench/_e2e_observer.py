"""The e2e bench's observer process: one WebSocket per user and the audit heads poller."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import multiprocessing as mp
import time
from collections import Counter, defaultdict
from typing import Any

import asyncpg
import orjson

Key = tuple[str, str]  # (task id, notification kind / audit type)


def observer_main(
    ws_base: str, tokens: list[str], audit_url: str, poll_s: float, pipe: Any
) -> None:
    import uvloop

    uvloop.run(_observe(ws_base, tokens, audit_url, poll_s, pipe))


async def _observe(
    ws_base: str, tokens: list[str], audit_url: str, poll_s: float, pipe: Any
) -> None:
    """WebSocket readers and the audit heads poller; hands over what is new on "report"."""
    from websockets.asyncio.client import connect

    frames: dict[Key, float] = {}  # first receipt of each (task id, kind)
    heads: list[tuple[str, float, int]] = []  # (chain, time first seen, seq)
    stats = Counter[str]()
    stop = asyncio.Event()
    polling = asyncio.Event()  # the heads poller queries PostgreSQL: off while idle is measured
    polling.set()

    async def read(token: str) -> None:
        async with connect(f"{ws_base}/ws?token={token}", ping_interval=None, max_queue=None) as ws:
            await ws.recv()  # unread_count: connected
            stats["connected"] += 1
            async for raw in ws:
                now = time.time()
                stats["frames"] += 1
                data = orjson.loads(raw)
                if data["type"] == "notification":
                    note = data["notification"]
                    frames.setdefault((str(note["task_id"]), note["kind"]), now)
        if not stop.is_set():
            stats["closed_early"] += 1

    async def poll_heads() -> None:
        conn = await asyncpg.connect(audit_url)
        seen: dict[str, int] = {}
        try:
            while not stop.is_set():
                await polling.wait()
                for row in await conn.fetch("SELECT chain_id, seq FROM audit_chain_heads"):
                    if row["seq"] != seen.get(row["chain_id"]):
                        seen[row["chain_id"]] = row["seq"]
                        heads.append((row["chain_id"], time.time(), row["seq"]))
                stats["polls"] += 1
                await asyncio.sleep(poll_s)
        finally:
            await conn.close()

    readers = [asyncio.create_task(read(t)) for t in tokens]
    poller = asyncio.create_task(poll_heads())
    loop = asyncio.get_running_loop()
    while stats["connected"] < len(tokens):
        if any(r.done() for r in readers):
            raise RuntimeError("a WebSocket failed to connect")
        await asyncio.sleep(0.05)
    pipe.send("ready")
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command == "report":
            pipe.send((frames, heads, dict(stats)))
            frames, heads = {}, []
            continue
        if command in ("pause", "resume"):
            if command == "pause":
                polling.clear()
            else:
                polling.set()
            pipe.send(command)
            continue
        stop.set()
        for task in (*readers, poller):
            task.cancel()
        await asyncio.gather(*readers, poller, return_exceptions=True)
        pipe.send("bye")
        return


class Observer:
    """The observer process and what it has reported so far (accumulated here)."""

    def __init__(self, ws_base: str, tokens: list[str], audit_url: str, poll_ms: float) -> None:
        ctx = mp.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        args = (ws_base, tokens, audit_url, poll_ms / 1000, child)
        self.process = ctx.Process(target=observer_main, args=args, daemon=True)
        self.process.start()
        self.frames: dict[Key, float] = {}
        self.heads: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        self.stats: dict[str, int] = {}

    def wait_ready(self, timeout: float = 60) -> None:
        if not self.pipe.poll(timeout) or self.pipe.recv() != "ready":
            raise RuntimeError("observer did not connect its WebSockets")

    def poll_heads(self, on: bool) -> None:
        """Pause (False) or resume the audit heads poller, so idle CPU is the system's own."""
        command = "resume" if on else "pause"
        self.pipe.send(command)
        if not self.pipe.poll(10) or self.pipe.recv() != command:
            raise RuntimeError(f"observer did not {command}")

    async def pull(self) -> None:
        self.pipe.send("report")
        frames, heads, self.stats = await asyncio.get_running_loop().run_in_executor(
            None, self.pipe.recv
        )
        self.frames.update(frames)
        for chain, at, seq in heads:
            seqs, times = self.heads[chain]
            seqs.append(seq)
            times.append(at)

    def visible_at(self, chain: str, seq: int) -> float | None:
        """When the chain's head was first seen at or past `seq` (heads only move forward)."""
        seqs, times = self.heads.get(chain, ([], []))
        i = bisect.bisect_left(seqs, seq)
        return times[i] if i < len(seqs) else None

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self.pipe.send("stop")
            self.pipe.poll(10)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
