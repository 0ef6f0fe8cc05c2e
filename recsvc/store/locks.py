"""The training lock: one training run per store at a time, held for the whole run.

- File store: an `flock` on `<store root>/.train.lock`. The kernel drops it when the process dies
  (kill -9 included), so it can never be left taken.
- Redis store: redis-py's `Lock` (SET NX PX with a token; release and renewal only by the token's
  owner, in Lua) under `{prefix}:train-lock`, renewed by a thread every third of its ttl while the
  run lives; a run killed outright frees it after the ttl. A run that could not renew it within the
  ttl has lost it, and `check` says so before it publishes.

The lock's value names its holder (pid, host, since when), so a second run's `LockHeld` can say who.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Protocol

import msgspec
import redis
from redis.exceptions import LockError

from recsvc.errors import ConfigError, LockHeld, LockLost, StoreUnavailable
from recsvc.store.redis_client import CLIENT_ERRORS

DEFAULT_LOCK_TTL_SECONDS = 60.0
# A deliverer killed outright hands over to a standby one after this long (Redis).
DELIVERY_LOCK_TTL_SECONDS = 15.0


class TrainingLock(Protocol):
    def check(self) -> None:
        """Raise LockLost if the lock is no longer ours (checked right before publishing)."""
        ...

    def release(self) -> None: ...


class LockOwner(msgspec.Struct, frozen=True):
    token: str
    pid: int
    host: str
    since: str


def _owner() -> bytes:
    since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return msgspec.json.encode(
        LockOwner(uuid.uuid4().hex, os.getpid(), socket.gethostname(), since)
    )


def held_message(raw: bytes | None, holder: str = "training run") -> str:
    try:
        owner = msgspec.json.decode(raw or b"", type=LockOwner)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return f"another {holder} holds the lock (it is just starting)"
    return f"another {holder} holds the lock since {owner.since} (pid {owner.pid} on {owner.host})"


class FileTrainingLock:
    """`flock` on a file beside the store's versions; the kernel releases it with the process."""

    def __init__(self, path: Path, holder: str = "training run") -> None:
        self.path = path
        self.holder = holder
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0)
            os.close(fd)
            raise LockHeld(held_message(holder, self.holder)) from None
        # The file is never deleted (deleting a lock file lets two runs lock two different files);
        # its content only names the holder for the message above.
        os.ftruncate(fd, 0)
        os.pwrite(fd, _owner(), 0)
        self._fd = fd

    def check(self) -> None:
        """An flock cannot be lost while the process lives."""

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class RedisTrainingLock:
    """redis-py's `Lock`, renewed by a thread; lost when it cannot be renewed within its ttl."""

    def __init__(
        self, client: redis.Redis, key: str, ttl_seconds: float, holder: str = "training run"
    ) -> None:
        if ttl_seconds < 1:
            raise ConfigError(f"the lock ttl must be at least 1 second, got {ttl_seconds}")
        self.client = client
        self.key = key
        self.ttl_seconds = ttl_seconds
        self.holder = holder
        self._stop = threading.Event()
        self._lost: str | None = None
        self._renewer: threading.Thread | None = None

    def acquire(self) -> None:
        try:
            # Made here, not in __init__, so that a cluster client that cannot connect yet is a
            # StoreUnavailable. Not thread-local: the renewing thread uses the token the
            # acquiring thread set.
            self._lock = self.client.lock(self.key, timeout=self.ttl_seconds, thread_local=False)
            taken = self._lock.acquire(blocking=False, token=_owner())
            holder = None if taken else self.client.get(self.key)
        except CLIENT_ERRORS as exc:
            raise StoreUnavailable(f"cannot take the training lock {self.key}: {exc}") from exc
        if not taken:
            raise LockHeld(held_message(holder if isinstance(holder, bytes) else None, self.holder))
        self._renewer = threading.Thread(target=self._keep_alive, name="train-lock", daemon=True)
        self._renewer.start()

    def _keep_alive(self) -> None:
        renewed = time.monotonic()
        while not self._stop.wait(self.ttl_seconds / 3):
            try:
                self._lock.reacquire()  # back to the full ttl, only if the token is still ours
                renewed = time.monotonic()
            except LockError:
                self._lost = "the lock expired or another run took it"
                return
            except CLIENT_ERRORS as exc:
                if time.monotonic() - renewed > self.ttl_seconds:
                    self._lost = f"could not renew it within its ttl ({exc})"
                    return

    def check(self) -> None:
        if self._lost:
            raise LockLost(f"lost the training lock {self.key}: {self._lost}; not publishing")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        with contextlib.suppress(*CLIENT_ERRORS, LockError):  # else it expires by itself
            self._lock.release()
