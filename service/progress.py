"""Progress of a long run on stderr: rows done of the total, rate and time left.

On a terminal one line is redrawn in place; otherwise (a log file, a pipe) a
plain line is written every ``interval`` seconds, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts rows done; call :meth:`advance` as work finishes and :meth:`close` at the end."""

    def __init__(
        self, total: int, stream: TextIO | None = None, interval: float = 5.0, unit: str = "rows"
    ) -> None:
        self.total = total
        self.done = 0
        self.stream = sys.stderr if stream is None else stream
        self.unit = unit
        try:
            self.terminal = self.stream.isatty()
        except (AttributeError, ValueError):
            self.terminal = False
        self.interval = 0.2 if self.terminal else interval
        self.started = self.last = time.monotonic()

    def advance(self, rows: int) -> None:
        """Add ``rows`` to the count; report if the interval has passed."""
        self.done += rows
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._write(self.line(now))

    def line(self, now: float | None = None) -> str:
        """``"1200/5000 rows (24%), 812 rows/s, 5 s left"``."""
        elapsed = (time.monotonic() if now is None else now) - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        left = f", {_duration((self.total - self.done) / rate)} left" if rate > 0 and self.total else ""
        return f"{self.done}/{self.total} {self.unit}{share}, {rate:.0f} {self.unit}/s{left}"

    def close(self) -> None:
        """Write the final line."""
        self._write(self.line(), final=True)

    def _write(self, line: str, final: bool = False) -> None:
        try:
            if self.terminal:
                self.stream.write("\r" + line + ("\n" if final else "\x1b[K"))
            else:
                self.stream.write(line + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # nobody reads stderr any more: the work goes on


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
