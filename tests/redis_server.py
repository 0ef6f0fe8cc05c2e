"""A private redis-server for the tests that stop, crash or restart Redis (the shared one on
127.0.0.1:6379 must stay up for everybody): a free port, a temporary directory, started and
waited for until it answers."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.serving import free_port

REDIS_SERVER = shutil.which("redis-server")


class RedisServer:
    """redis-server on 127.0.0.1:<free port>. `persistent`: an AOF fsync'd on every write (what
    survives a kill -9 is exactly what was acknowledged); otherwise nothing on disk. `options`:
    more command-line options (a cluster node's, `tests.redis_cluster`)."""

    def __init__(
        self,
        directory: Path,
        *,
        persistent: bool = False,
        port: int | None = None,
        options: tuple[str, ...] = (),
    ) -> None:
        assert REDIS_SERVER is not None, "redis-server is not installed"
        self.directory = directory
        self.persistent = persistent
        self.port = port if port is not None else free_port()
        self.options = options
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> None:
        """Start (again, on the same port and directory) and wait until it answers."""
        durability = ("--appendonly", "yes", "--appendfsync", "always")
        self.process = subprocess.Popen(
            [
                REDIS_SERVER or "redis-server",
                *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)),
                *(durability if self.persistent else ("--appendonly", "no")),
                *("--save", "", "--logfile", str(self.directory / f"redis-{self.port}.log")),
                *self.options,
            ],
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.RedisError:  # not listening yet, or still loading its AOF
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """A crash, not a shutdown: nothing gets a chance to flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None
