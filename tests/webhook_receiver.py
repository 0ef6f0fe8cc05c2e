"""A local webhook receiver for the delivery tests: a real HTTP server on a free port that
verifies every request's signature with the `standardwebhooks` package (an implementation that
is not ours) and answers as the test scripts it: slow, 500, 429 with Retry-After, 410, or 200."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    verified: bool
    status: int
    at: float  # when the request arrived (the list is in the order the replies went)


@dataclass
class Reply:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Receiver:
    secret: str
    script: list[Reply] = field(default_factory=list)  # replies for the next requests, in order
    default: Reply = field(default_factory=Reply)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def reply_for(self) -> Reply:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def delivered(self) -> list[Received]:
        """The requests answered 2xx, in the order they arrived."""
        with self.lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def wait_for(self, predicate: Callable[[Receiver], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived = time.monotonic()
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            reply = receiver.reply_for()
            try:
                Webhook(receiver.secret).verify(body, dict(self.headers.items()))
                verified = True
            except Exception:
                verified = False
            if reply.delay:
                time.sleep(reply.delay)
            with receiver.lock:
                receiver.received.append(
                    Received(
                        self.headers.get("webhook-id", ""),
                        json.loads(body),
                        verified,
                        reply.status,
                        arrived,
                    )
                )
            with contextlib.suppress(OSError):  # the sender may have timed out and gone
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def running(receiver: Receiver, port: int = 0) -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
    server.daemon_threads = True
    receiver.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
