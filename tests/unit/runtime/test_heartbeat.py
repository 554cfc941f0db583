"""Heartbeats of background loops: silence, death and shutdown as liveness sees them, on a
hand-driven clock (no sleeps)."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest

from runtime.heartbeat import Heartbeats, beat


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_heartbeat_is_judged_only_once_armed(clock: FakeClock) -> None:
    beats = Heartbeats(clock)
    relay = beats.add("relay", timedelta(seconds=10))
    clock.advance(3600)
    assert beats.stale() == {}  # never started: this process does not run that loop
    relay.beat()
    assert beats.stale() == {}


def test_silence_beyond_the_allowed_names_the_loop(clock: FakeClock) -> None:
    beats = Heartbeats(clock)
    relay = beats.add("relay", timedelta(seconds=10))
    sweep = beats.add("sweep", timedelta(seconds=60))
    relay.beat()
    sweep.beat()
    clock.advance(10)
    assert beats.stale() == {}  # exactly the allowed silence is still live
    clock.advance(0.5)
    assert beats.stale() == {"relay": "silent for 10.5 s (allowed 10 s)"}
    relay.beat()
    assert beats.stale() == {}


def test_beats_from_another_thread_count(clock: FakeClock) -> None:
    beats = Heartbeats(clock)
    partition = beats.add("source/0", timedelta(seconds=5))
    clock.advance(1)
    worker = threading.Thread(target=partition.beat)
    worker.start()
    worker.join()
    clock.advance(4)
    assert beats.stale() == {}


def test_an_event_driven_loop_is_judged_only_by_its_task(clock: FakeClock) -> None:
    beats = Heartbeats(clock)
    listener = beats.add("listener", None)
    listener.beat()
    clock.advance(10**6)
    assert beats.stale() == {}


async def test_a_spawned_loop_beats_its_own_heartbeat(clock: FakeClock) -> None:
    beats = Heartbeats(clock)
    rounds: list[asyncio.Event] = [asyncio.Event(), asyncio.Event()]
    done = asyncio.Event()

    async def loop() -> None:
        for finished in rounds:
            beat()
            finished.set()
            await done.wait()

    task = beats.spawn("loop", timedelta(seconds=5), loop())
    await rounds[0].wait()
    clock.advance(6)
    assert beats.stale() == {"loop": "silent for 6.0 s (allowed 5 s)"}
    beat()  # outside the loop's task: nobody's heartbeat
    assert "loop" in beats.stale()
    done.set()
    await rounds[1].wait()
    assert beats.stale() == {}
    beats.stop()
    await task


async def test_a_loop_that_dies_is_named_with_its_error(clock: FakeClock) -> None:
    beats = Heartbeats(clock)

    async def relay() -> None:
        beat()
        raise ConnectionResetError("wedged client")

    task = beats.spawn("relay", timedelta(seconds=90), relay())
    with pytest.raises(ConnectionResetError):
        await task
    assert beats.stale() == {"relay": "died (ConnectionResetError: wedged client)"}


async def test_a_loop_that_returns_or_is_cancelled_is_not_live(clock: FakeClock) -> None:
    beats = Heartbeats(clock)

    async def quits() -> None:
        return None

    async def hangs() -> None:
        await asyncio.Event().wait()

    returned = beats.spawn("quits", timedelta(seconds=5), quits())
    cancelled = beats.spawn("hangs", timedelta(seconds=5), hangs())
    await returned
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert beats.stale() == {"quits": "returned", "hangs": "cancelled"}


async def test_loops_ending_at_shutdown_are_not_dead(clock: FakeClock) -> None:
    beats = Heartbeats(clock)
    stop = asyncio.Event()

    async def loop() -> None:
        beat()
        await stop.wait()

    task = beats.spawn("dispatcher", timedelta(seconds=5), loop())
    beats.stop()
    stop.set()
    await task
    clock.advance(60)
    assert beats.stale() == {}


async def test_a_respawned_loop_gets_a_fresh_heartbeat(clock: FakeClock) -> None:
    beats = Heartbeats(clock)

    async def crash() -> None:
        raise RuntimeError("boom")

    async def fine() -> None:
        beat()

    with pytest.raises(RuntimeError):
        await beats.spawn("job", timedelta(seconds=5), crash())
    assert "job" in beats.stale()
    beats.stop()
    await beats.spawn("job", timedelta(seconds=5), fine())
    assert beats["job"].problem() == "returned"


def test_names_are_unique_and_silence_positive(clock: FakeClock) -> None:
    beats = Heartbeats(clock)
    beats.add("relay", timedelta(seconds=1))
    with pytest.raises(ValueError, match="already registered"):
        beats.add("relay", timedelta(seconds=1))
    with pytest.raises(ValueError, match="positive"):
        beats.add("other", timedelta(0))
    assert "relay" in beats and "other" not in beats
