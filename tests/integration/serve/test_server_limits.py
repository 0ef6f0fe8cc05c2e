"""A hostile client cannot exhaust a `recsvc serve` worker with request headers: a header block over
RECSVC_MAX_HEADER_BYTES is refused without being buffered, a client that takes longer than
RECSVC_HEADER_TIMEOUT_SECONDS to send its headers is cut off, and ordinary requests keep working.

Everything goes through the real command in a subprocess over real sockets, so the limits are
checked whichever HTTP server `recsvc serve` runs.
"""

from __future__ import annotations

import http.client
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from recsvc.__main__ import main
from tests.serving import serve

MAX_HEADER_BYTES = 16 * 1024
HEADER_TIMEOUT_SECONDS = 2.0
MAX_BODY_BYTES = 64 * 1024
# The attack seen in production: unterminated 25 MB header blocks on a few connections.
HOSTILE_HEADER_BYTES = 25 * 1024 * 1024
HOSTILE_CONNECTIONS = 4
# How much the service's resident memory may grow while it refuses them (allocator noise).
RSS_GROWTH_ALLOWED_KB = 10 * 1024
TRICKLING_CONNECTIONS = 50
IDLE_CONNECTIONS = 10
REQUEST_START = b"GET /health/live HTTP/1.1\r\nHost: recsvc\r\n"


@dataclass(frozen=True)
class Server:
    pid: int
    port: int
    base_url: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`recsvc serve` with one worker and low header limits. The store is empty: the limits sit
    in front of the application, so no model version is needed (the service is live, not ready)."""
    root = tmp_path_factory.mktemp("server-limits")
    env = {
        "RECSVC_STORE": f"file://{root / 'store'}",
        "RECSVC_LOG_LEVEL": "warning",
        "RECSVC_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
        "RECSVC_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_SECONDS),
        "RECSVC_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    with serve(root, env, ready=False) as served:
        yield Server(served.process.pid, served.port, served.base_url)
    assert "Traceback" not in served.output(), served.output()


def service_rss_kb(pid: int) -> int:
    """Resident memory of the serve process and every process under it (its workers), in kB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name in parentheses may hold spaces; the parent pid follows it.
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        pending.extend(children.get(current, []))
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def send_unterminated_header(sock: socket.socket, size: int) -> None:
    """Send a request line and one header value of `size` bytes that never ends, as far as the
    server lets us: it stops when the server closes the connection or stops reading."""
    chunk = b"a" * (1024 * 1024)
    try:
        sock.sendall(REQUEST_START + b"X-Filler: ")
        for _ in range(size // len(chunk)):
            sock.sendall(chunk)
    except OSError:  # closed or reset by the server, or it stopped reading (timeout)
        return


def answer_or_close(sock: socket.socket, deadline: float) -> str:
    """What the server did with a connection by `deadline`: the status line of its answer (e.g.
    "HTTP/1.1 431 ..."), "closed", or "open" (it is still waiting for more)."""
    received = b""
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            data = sock.recv(65536)
            if not data:
                break
            received += data
            if b"\r\n" in received:
                break
    except TimeoutError:
        if not received:
            return "open"
    except OSError:
        pass  # reset: the server closed with our bytes unread
    return received.partition(b"\r\n")[0].decode(errors="replace") if received else "closed"


def test_ordinary_requests_with_a_few_kilobytes_of_headers_are_served(server: Server) -> None:
    headers = {
        "Cookie": "; ".join(f"session{i}={'x' * 60}" for i in range(60)),  # ~4 KiB, like a shop's
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
        "Accept": "application/json",
    }
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        live = client.get("/health/live", headers=headers)
        assert live.status_code == 200 and live.json()["status"] == "live"
        schema = client.get("/docs/openapi.json", headers=headers)
        assert schema.status_code == 200 and "/v1/nps-responses" in schema.json()["paths"]


def test_a_header_block_over_the_limit_gets_431(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(REQUEST_START + b"X-Filler: " + b"a" * 2 * MAX_HEADER_BYTES + b"\r\n\r\n")
        outcome = answer_or_close(sock, time.monotonic() + 3)
    assert outcome.startswith("HTTP/1.1 431") or outcome == "closed", outcome


def test_cleartext_http2_is_not_spoken(server: Server) -> None:
    """HTTP/2 has header limits of its own (16 MiB in granian): only HTTP/1.1 is served."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    with connect(server) as sock:
        sock.sendall(preface)  # the connection preface and an empty SETTINGS frame
        outcome = answer_or_close(sock, time.monotonic() + 3)
    assert outcome.startswith("HTTP/1.1 4") or outcome == "closed", repr(outcome)


def test_unterminated_25_mb_headers_are_cut_off_without_growing_the_worker(
    server: Server,
) -> None:
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        for _ in range(20):  # warm up, so allocations of first requests do not count
            assert client.get("/docs/openapi.json").status_code == 200
    before = service_rss_kb(server.pid)
    started = time.monotonic()
    sockets = [connect(server) for _ in range(HOSTILE_CONNECTIONS)]
    try:
        for sock in sockets:
            send_unterminated_header(sock, HOSTILE_HEADER_BYTES)
        # Measured with the hostile connections still held open by the client.
        grown = service_rss_kb(server.pid) - before
        outcomes = [answer_or_close(sock, time.monotonic() + 2) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    elapsed = time.monotonic() - started
    assert grown < RSS_GROWTH_ALLOWED_KB, f"the service grew by {grown} kB"
    for outcome in outcomes:
        assert outcome.startswith("HTTP/1.1 4") or outcome == "closed", outcomes
    assert elapsed < HEADER_TIMEOUT_SECONDS + 5, elapsed
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        assert client.get("/health/live").status_code == 200


def test_connections_trickling_headers_or_idling_are_closed_after_the_read_timeout(
    server: Server,
) -> None:
    """Fifty clients each send a header line every quarter second and never finish, ten more sit
    idle on a kept-alive connection after one request: every one is cut off within the header
    read timeout (plus a margin), and meanwhile a normal request is served at once."""
    idle: list[http.client.HTTPConnection] = []
    for _ in range(IDLE_CONNECTIONS):
        kept_alive = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        kept_alive.request("GET", "/health/live")
        assert kept_alive.getresponse().read()
        idle.append(kept_alive)
    started = time.monotonic()
    trickling = {connect(server) for _ in range(TRICKLING_CONNECTIONS)}
    for sock in trickling:
        sock.sendall(REQUEST_START)
    waiting = trickling | {kept_alive.sock for kept_alive in idle}
    served_meanwhile: int | None = None
    deadline = started + HEADER_TIMEOUT_SECONDS + 3
    line = 0
    try:
        while waiting and time.monotonic() < deadline:
            readable, _, _ = select.select(list(waiting), [], [], 0.25)
            cut_off = set(readable)  # an answer (408) or the end of the connection
            line += 1
            for sock in (trickling & waiting) - cut_off:
                try:
                    sock.sendall(f"X-Trickle-{line}: x\r\n".encode())
                except OSError:
                    cut_off.add(sock)
            waiting -= cut_off
            if served_meanwhile is None and time.monotonic() - started > 1:
                assert len(waiting) == TRICKLING_CONNECTIONS + IDLE_CONNECTIONS, "cut off too soon"
                with httpx.Client(base_url=server.base_url, timeout=2) as client:
                    served_meanwhile = client.get("/health/live").status_code
    finally:
        for sock in trickling:
            sock.close()
        for kept_alive in idle:
            kept_alive.close()
    still_open = len(waiting)
    assert served_meanwhile == 200
    assert still_open == 0, f"{still_open} connections still open after {deadline - started} s"


def test_bodies_are_limited_by_the_body_limit_not_the_header_limit(server: Server) -> None:
    """A body larger than the header block limit is read whole (and judged on its content: 400);
    one over RECSVC_MAX_BODY_BYTES still gets 413."""
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        within = b'{"comment": "' + b"x" * (MAX_BODY_BYTES - 1024) + b'"}'
        read = client.post("/v1/nps-responses", content=within, headers=headers)
        over = b'{"comment": "' + b"x" * MAX_BODY_BYTES + b'"}'
        refused = client.post("/v1/nps-responses", content=over, headers=headers)
    assert read.status_code == 400, read.text
    assert refused.status_code == 413
    assert refused.json()["error"] == "payload_too_large"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RECSVC_MAX_HEADER_BYTES", "4096"),  # below the server's one 8 KiB read buffer
        ("RECSVC_HEADER_TIMEOUT_SECONDS", "0"),
        ("RECSVC_HEADER_TIMEOUT_SECONDS", "61"),  # the server takes at most 60 s
    ],
)
def test_serve_refuses_limits_the_server_cannot_apply(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["serve"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(
        f"recsvc: error: invalid value for {variable}"
    )
