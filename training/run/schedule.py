"""The schedule (`python -m training schedule`): a 5-field cron expression (parsed by `croniter`, a
small, widely used library; cron edge cases such as day-of-month/day-of-week unions, names and DST
gaps are not worth re-implementing). At start the loop runs once if the latest scheduled time since
the last successful run was missed (never more than once, however many were missed), then sleeps
until each next time. Each run is a `python -m training run` subprocess, so its memory is returned
and a crash cannot take the scheduler down.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recsvc.errors import ConfigError, StoreUnavailable
from recsvc.store import Store
from recsvc.store.locks import DEFAULT_LOCK_TTL_SECONDS
from recsvc.store.runs import RunLog
from training.run.records import last_success

EXIT_LOCK_HELD = 3  # the exit code of `python -m training run` when another run holds the lock


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


def check_cron(expression: str) -> str:
    from croniter import croniter

    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ConfigError(
            f"--cron {expression!r} is not a 5-field cron expression "
            "(minute hour day-of-month month day-of-week, e.g. '0 2 * * *')"
        )
    return expression


def timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--timezone {name!r} is not a known time zone (e.g. UTC)") from None


def previous_time(expression: str, now: dt.datetime) -> dt.datetime:
    """The latest scheduled time at or before `now` (aware, in `now`'s zone)."""
    from croniter import croniter

    ahead = now + dt.timedelta(microseconds=1)  # a time exactly on the schedule counts as due
    return croniter(expression, ahead).get_prev(dt.datetime)


def next_time(expression: str, now: dt.datetime) -> dt.datetime:
    """The first scheduled time strictly after `now`."""
    from croniter import croniter

    return croniter(expression, now).get_next(dt.datetime)


def catch_up_due(expression: str, last_started: dt.datetime | None, now: dt.datetime) -> bool:
    """True when the latest scheduled time has no successful run started at or after it."""
    if last_started is None:
        return True
    return last_started < previous_time(expression, now)


def _say(message: str) -> None:
    print(f"[schedule] {_iso(now_utc())} {message}", file=sys.stderr, flush=True)


class Scheduler:
    """Runs `command` (a `python -m training run ...` argv) on a cron schedule until stopped."""

    def __init__(
        self,
        expression: str,
        command: list[str],
        log: RunLog,
        *,
        zone: dt.tzinfo,
        clock: Callable[[], dt.datetime] = now_utc,
        lock_wait_seconds: float = 2 * DEFAULT_LOCK_TTL_SECONDS,
        lock_retry_seconds: float = 15.0,
    ) -> None:
        self.expression = check_cron(expression)
        self.command = command
        self.log = log
        self.zone = zone
        self.clock = clock
        self.lock_wait_seconds = lock_wait_seconds
        self.lock_retry_seconds = lock_retry_seconds
        self.stop = threading.Event()
        self.runs = 0

    def now(self) -> dt.datetime:
        return self.clock().astimezone(self.zone)

    def run_once(self) -> int:
        """One run; while the lock is held, retried every `lock_retry_seconds` for at most
        `lock_wait_seconds` (a Redis lock left by a run killed outright lasts its ttl)."""
        self.runs += 1
        deadline = time.monotonic() + self.lock_wait_seconds
        while True:
            code = self._run_child()
            if code != EXIT_LOCK_HELD or self.stop.is_set() or time.monotonic() >= deadline:
                break
            _say(f"another run holds the lock; trying again in {self.lock_retry_seconds:.0f}s")
            self.stop.wait(self.lock_retry_seconds)
        verdict = {0: "finished", EXIT_LOCK_HELD: "skipped: another run holds the lock"}
        _say(f"run {verdict.get(code, f'FAILED (exit {code})')}")
        return code

    def _run_child(self) -> int:
        _say(f"starting: {' '.join(self.command)}")
        child = subprocess.Popen(self.command)
        while True:
            try:
                return child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if self.stop.is_set():
                    child.terminate()  # the run is atomic: stopping it leaves the active version
                    try:
                        return child.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        child.kill()
                        return child.wait()

    def serve(self, *, max_runs: int | None = None) -> None:
        """Catch up once if a scheduled time was missed, then follow the schedule until stopped."""
        try:
            previous = last_success(self.log)
        except StoreUnavailable as exc:
            _say(f"cannot read the run log ({exc}); assuming no run was missed")
            previous = None
            missed = False
        else:
            last = dt.datetime.fromisoformat(previous.started_at) if previous else None
            missed = catch_up_due(self.expression, last, self.now())
        if missed:
            _say(
                "the last scheduled run was missed (last successful run: "
                f"{previous.started_at if previous else 'none'}); running once now"
            )
            self.run_once()
        while not self.stop.is_set() and (max_runs is None or self.runs < max_runs):
            due = next_time(self.expression, self.now())
            _say(f"next run at {_iso(due)}")
            # Sleep in short steps against the wall clock, so a suspended machine or a changed
            # clock does not shift the schedule; a time passed while busy is not replayed.
            while not self.stop.is_set() and self.now() < due:
                self.stop.wait(min(30.0, max((due - self.now()).total_seconds(), 0.01)))
            if not self.stop.is_set():
                self.run_once()


def run_schedule(
    expression: str,
    command: list[str],
    store: Store,
    *,
    zone_name: str = "UTC",
    max_runs: int | None = None,
    lock_ttl_seconds: float = DEFAULT_LOCK_TTL_SECONDS,
) -> int:
    """The foreground loop of `python -m training schedule`; SIGTERM or SIGINT stop it cleanly."""
    log = store.run_log()
    scheduler = Scheduler(
        expression,
        command,
        log,
        zone=timezone(zone_name),
        lock_wait_seconds=2 * lock_ttl_seconds,
    )

    def stop(signum: int, _frame: object) -> None:
        _say(f"stopping ({signal.Signals(signum).name})")
        scheduler.stop.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _say(f"schedule {expression!r} ({zone_name}) for {store.url}")
        scheduler.serve(max_runs=max_runs)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
