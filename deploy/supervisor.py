"""Child processes for `taskflow up`: start, wait for readiness, restart with backoff, stop.

Each child runs in its own process group (its own session), so a Ctrl-C in the terminal
reaches only the launcher, which then stops the children in order: SIGTERM to the group,
SIGKILL after a timeout. Output goes to one log file per child; a tail is shown on failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

Probe = Callable[[str], bool]
Report = Callable[[str], None]


def http_probe(url: str) -> bool:
    """True when `url` answers 2xx; any error or other status means not ready yet."""
    try:
        return httpx.get(url, timeout=1.0).is_success
    except httpx.HTTPError:
        return False


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """What to run: `ready_url` is polled for readiness; None means ready once running.

    Children sharing a `stage` are stopped together; stages stop in reverse start order.
    Without a stage a child is a stage of its own.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    ready_url: str | None = None
    where: str = ""
    stage: str | None = None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before restart n (1-based): initial * 2**(n-1), capped; reset once stable."""

    initial: float = 0.5
    maximum: float = 30.0
    stable_after: float = 60.0

    def delay(self, attempt: int) -> float:
        return float(min(self.maximum, self.initial * 2 ** max(0, attempt - 1)))


class NotReady(RuntimeError):
    """Raised when children did not become ready before the deadline."""

    def __init__(self, names: Sequence[str], tails: Mapping[str, str]) -> None:
        self.names = list(names)
        self.tails = dict(tails)
        lines = [f"not ready in time: {', '.join(names)}"]
        for name, tail in tails.items():
            lines.append(f"--- last lines of {name}'s log ---\n{tail}")
        super().__init__("\n".join(lines))


@dataclass
class Child:
    """A supervised child's runtime state."""

    spec: ChildSpec
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures_in_a_row: int = 0
    restart_at: float | None = None
    ready: bool = False
    log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file (empty if it does not exist)."""
    try:
        data = path.read_bytes()[-16384:]
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the child's process group, SIGKILL it after `timeout` seconds."""
    stop_processes([process], timeout)


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM each group at once, wait up to `timeout` for all, SIGKILL the stragglers."""
    for process in processes:
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout)
        _reap_group(process.pid)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _reap_group(pgid: int) -> None:
    # A grandchild (a dataflow worker, say) may outlive its parent: it is still ours.
    _signal_group(pgid, signal.SIGKILL)


class Supervisor:
    """Runs children in the given order and stops them in reverse order."""

    def __init__(
        self,
        specs: Iterable[ChildSpec],
        log_dir: Path,
        *,
        report: Report = print,
        probe: Probe = http_probe,
        backoff: Backoff | None = None,
        stop_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.children = [Child(spec, log_dir / f"{spec.name}.log") for spec in specs]
        self.report = report
        self.probe = probe
        self.backoff = backoff or Backoff()
        self.stop_timeout = stop_timeout
        self.clock = clock
        self.base_env = dict(os.environ if base_env is None else base_env)

    def child(self, name: str) -> Child:
        return next(child for child in self.children if child.spec.name == name)

    def start_all(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        if child.log is None:
            child.log = open(child.log_path, "ab")  # noqa: SIM115 - kept open while supervised
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        child.log.write(f"\n=== {stamp} starting: {' '.join(child.spec.argv)}\n".encode())
        child.log.flush()
        child.process = subprocess.Popen(  # noqa: S603 - argv built by us, no shell
            list(child.spec.argv),
            env={**self.base_env, **child.spec.env},
            stdout=child.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        child.started_at = self.clock()
        child.restart_at = None
        child.ready = False

    def poll(self) -> None:
        """One supervision step: notice exits, schedule and perform restarts."""
        now = self.clock()
        for child in self.children:
            process = child.process
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self.report(f"restarting {child.spec.name} (restart #{child.restarts})")
                    self._spawn(child)
                continue
            if process is None or process.poll() is None:
                if process is not None and now - child.started_at >= self.backoff.stable_after:
                    child.failures_in_a_row = 0
                continue
            _reap_group(process.pid)
            child.ready = False
            child.failures_in_a_row += 1
            delay = self.backoff.delay(child.failures_in_a_row)
            child.restart_at = now + delay
            self.report(
                f"{child.spec.name} (pid {process.pid}) exited with code {process.returncode}; "
                f"restarting in {delay:.1f}s; log {child.log_path}\n{tail(child.log_path, 5)}"
            )

    def check_ready(self) -> list[str]:
        """Probe children not yet ready; returns the names still pending."""
        pending = []
        for child in self.children:
            if not child.ready and child.running():
                url = child.spec.ready_url
                child.ready = url is None or self.probe(url)
            if not child.ready:
                pending.append(child.spec.name)
        return pending

    def wait_ready(
        self,
        timeout: float,
        *,
        interval: float = 0.2,
        progress: Callable[[list[str], float], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """Poll until every child is ready; raise `NotReady` naming the laggards."""
        began = self.clock()
        while True:
            self.poll()
            pending = self.check_ready()
            if progress is not None:
                progress(pending, self.clock() - began)
            if not pending or should_stop():
                return
            if self.clock() - began > timeout:
                raise NotReady(pending, {n: tail(self.child(n).log_path) for n in pending})
            time.sleep(interval)

    def pids(self) -> dict[str, int]:
        return {c.spec.name: c.pid for c in self.children if c.pid is not None and c.running()}

    def stages(self) -> list[list[Child]]:
        """Children grouped by stage, in start order."""
        groups: list[list[Child]] = []
        for child in self.children:
            stage = child.spec.stage
            if groups and stage is not None and groups[-1][0].spec.stage == stage:
                groups[-1].append(child)
            else:
                groups.append([child])
        return groups

    def stop(self) -> None:
        """Stop stages in reverse start order; by PID, SIGKILL after the timeout."""
        for child in self.children:
            child.restart_at = None  # nothing restarts while we stop
        for stage in reversed(self.stages()):
            running = [c for c in stage if c.process is not None and c.running()]
            stop_processes([c.process for c in stage if c.process is not None], self.stop_timeout)
            for child in running:
                self.report(f"stopped {child.spec.name} (pid {child.pid})")
            for child in stage:
                if child.log is not None:
                    child.log.close()
                    child.log = None
