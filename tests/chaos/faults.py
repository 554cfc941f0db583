"""The faults, one at a time. Each returns details for its JSON line, with "end": the
monotonic time the fault ended (the kill, the SIGCONT, the restart), from which recovery
is measured."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.chaos.feed import never_read
from tests.chaos.harness import PROCESSES
from tests.chaos.oracle import Verdict
from tests.chaos.poison import Poison, inject, judge_dlq, read_dlq
from tests.chaos.runner import Chaos, FaultAction

SLOW_BURST = 300  # notifications for the slow client's user during that fault
SLOW_STEP = 20  # created concurrently


def kill(name: str) -> FaultAction:
    def action(chaos: Chaos) -> dict[str, Any]:
        pid = chaos.system.kill(name)
        end = time.monotonic()
        new_pid = chaos.system.wait_restarted(name, pid)
        restarted = round(time.monotonic() - end, 2)
        return {"end": end, "killed_pid": pid, "new_pid": new_pid, "restarted_after_s": restarted}

    return action


def freeze_broker(chaos: Chaos) -> dict[str, Any]:
    chaos.system.freeze_broker()
    try:
        time.sleep(chaos.settings.freeze)  # the fault itself lasts this long
    finally:
        chaos.system.thaw_broker()
    return {"end": time.monotonic(), "frozen_s": chaos.settings.freeze}


def restart_postgres(chaos: Chaos) -> dict[str, Any]:
    began = time.monotonic()
    chaos.system.restart_postgres()
    end = time.monotonic()
    return {"end": end, "restart_s": round(end - began, 2)}


def terminate_backends(chaos: Chaos) -> dict[str, Any]:
    killed = chaos.thread.run(chaos.system.terminate_backends(), timeout=30)
    return {"end": time.monotonic(), "backends_terminated": killed}


def slow_consumer(chaos: Chaos) -> dict[str, Any]:
    """A second WebSocket of a load user that never reads, while that user gets a burst of
    notifications: the user's other socket and every other client must not notice."""
    before = chaos.thread.run(_slow_drops(chaos), timeout=10)
    drops = chaos.thread.run(_slow_burst(chaos), timeout=300)
    return {"end": time.monotonic(), "burst": SLOW_BURST, "slow_clients_dropped": drops - before}


async def _slow_burst(chaos: Chaos) -> int:
    user = chaos.load.users[0]
    opened, done = asyncio.Event(), asyncio.Event()
    slow = asyncio.create_task(never_read(chaos.system.url("notify"), user.token, opened, done))
    await asyncio.wait_for(opened.wait(), 10)
    try:
        for _ in range(SLOW_BURST // SLOW_STEP):
            await asyncio.gather(
                *(chaos.load.create(user, chaos.stop, timed=False) for _ in range(SLOW_STEP))
            )
        return await _slow_drops(chaos)
    finally:
        done.set()
        await slow


SLOW = re.compile(
    r"^taskflow_websocket_dropped_connections_total\{[^}]*slow_client[^}]*\} (\S+)", re.M
)


async def _slow_drops(chaos: Chaos) -> int:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{chaos.system.url('notify')}/metrics", timeout=5)).text
    return sum(int(float(v)) for v in SLOW.findall(text))


class PoisonFault:
    """A burst of poison on every consumed topic; the oracle then reads the whole DLQ."""

    def __init__(self) -> None:
        self.sent: list[Poison] = []

    def __call__(self, chaos: Chaos) -> dict[str, Any]:
        self.sent = inject(f"127.0.0.1:{chaos.system.broker_port}")
        return {"end": time.monotonic()}

    def judge(self, chaos: Chaos) -> Callable[[Verdict], None]:
        def check(verdict: Verdict) -> None:
            bootstrap = f"127.0.0.1:{chaos.system.broker_port}"
            deadline = time.monotonic() + chaos.settings.oracle_timeout
            while True:
                trial = Verdict()
                judge_dlq(read_dlq(bootstrap), self.sent, trial)
                if not trial.lost or time.monotonic() > deadline:
                    break
            verdict.lost |= trial.lost
            verdict.duplicated |= trial.duplicated
            verdict.unexpected |= trial.unexpected
            verdict.stats |= trial.stats

        return check


def dlq_holds_no_real_event(chaos: Chaos) -> Callable[[Verdict], None]:
    """After any fault: nothing but poison in the DLQ (no real event dead-lettered)."""

    def check(verdict: Verdict) -> None:
        judge_dlq(read_dlq(f"127.0.0.1:{chaos.system.broker_port}", idle=1.0), [], verdict)

    return check


KILLS = {f"kill-{name}": kill(name) for name in PROCESSES}
