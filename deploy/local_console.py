"""What `taskflow up` prints: progress while starting, then a table of what runs where."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

Row = tuple[str, str, str, str]  # component, pid, where, log


class Console:
    """Line-oriented output; on a terminal, one live status line while waiting."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.live = out.isatty()
        self._last_pending: tuple[str, ...] | None = None
        self._status_shown = False

    def _clear_status(self) -> None:
        if self._status_shown:
            self.out.write("\r\033[K")
            self._status_shown = False

    def say(self, message: str) -> None:
        self._clear_status()
        stamp = time.strftime("%H:%M:%S")
        self.out.write(f"[{stamp}] {message}\n")
        self.out.flush()

    def step(self, message: str) -> None:
        self.say(f"• {message}")

    def progress(self, total: int, pending: Sequence[str], elapsed: float) -> None:
        """Called while waiting for readiness: how many are up, who is still starting."""
        done = total - len(pending)
        if self.live:
            bar = "█" * done + "░" * len(pending)
            waiting = ", ".join(pending) or "all ready"
            self.out.write(f"\r\033[K  {bar} {done}/{total} ready ({elapsed:4.1f}s) {waiting}")
            self.out.flush()
            self._status_shown = True
        elif tuple(pending) != self._last_pending:
            self._last_pending = tuple(pending)
            waiting = ", ".join(pending) or "none"
            self.say(f"  {done}/{total} ready after {elapsed:.1f}s; waiting for: {waiting}")

    def table(self, rows: Sequence[Row]) -> None:
        self._clear_status()
        header: Row = ("component", "pid", "where", "log")
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
        for row in (header, *rows):
            self.out.write("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
            self.out.write("\n")
        self.out.flush()
