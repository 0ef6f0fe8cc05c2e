"""The real service as a user starts it: `python -m recsvc serve` in a subprocess on a free port,
waited for until it answers, stopped (and its log shown on failure) afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def serve(
    root: Path, env: dict[str, str], *, workers: int = 1, ready: bool = True, timeout: float = 60
) -> Iterator[Served]:
    """`recsvc serve` with `env` (RECSVC_* variables; the caller's own are dropped), until it is
    ready (or only live, `ready=False`). Stopped with SIGTERM, its process group killed after."""
    port = free_port()
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("RECSVC_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    log = root / f"serve-{port}.log"
    with log.open("wb") as out:
        # The test's own interpreter rather than `uv run`, which could re-sync the environment.
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recsvc",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=clean | env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(process, port, log)
    try:
        _wait(served, "/health/ready" if ready else "/health/live", timeout)
        yield served
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait(served: Served, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError(f"recsvc serve exited early:\n{served.output()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(served.base_url + path, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"recsvc serve did not answer {path} in {timeout}s:\n{served.output()}")
