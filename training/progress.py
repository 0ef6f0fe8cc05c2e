"""Progress lines for long steps, written to stderr so stdout stays machine-readable.

A line is printed at most every `every_seconds` (and at the end), with the rate and an ETA when the
total is known. Plain lines rather than a redrawn bar, so logs from a scheduler stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self,
        step: str,
        total: int | None = None,
        unit: str = "rows",
        every_seconds: float = 2.0,
        stream: TextIO | None = None,
        enabled: bool = True,
    ) -> None:
        self.step = step
        self.total = total
        self.unit = unit
        self.every_seconds = every_seconds
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.done = 0
        self.started = time.perf_counter()
        self._last_print = 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last_print >= self.every_seconds:
            self._last_print = now
            self._emit(now)

    def finish(self) -> float:
        """Print the closing line and return the elapsed seconds."""
        now = time.perf_counter()
        self._emit(now, final=True)
        return now - self.started

    def _emit(self, now: float, final: bool = False) -> None:
        if not self.enabled:
            return
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        if final:
            text = f"[{self.step}] done: {self.done:,} {self.unit} in {elapsed:.1f}s ({rate:,.0f} {self.unit}/s)"
        elif self.total:
            share = min(self.done / self.total, 1.0)
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
            text = (
                f"[{self.step}] {self.done:,}/{self.total:,} {self.unit} ({share:.0%}), "
                f"{rate:,.0f} {self.unit}/s, eta {eta:.0f}s"
            )
        else:
            text = f"[{self.step}] {self.done:,} {self.unit}, {rate:,.0f} {self.unit}/s"
        print(text, file=self.stream, flush=True)
