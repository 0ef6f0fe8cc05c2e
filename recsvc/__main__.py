"""`python -m recsvc` (also the `recsvc` console script): serve the API, deliver webhooks, list
or activate model versions, answer privacy requests (erase a customer, list erasures, prune
versions that still hold erased customers), show webhook destinations, or print the settings
table."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

from recsvc.errors import RecsvcError, StoreUnavailable
from recsvc.service.settings import Settings, load_settings, settings_table

# Read by prometheus_client in every worker: where the workers' metric files are summed from.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# The server's own lines go to stderr next to ours, named, so a worker crash reads as the server's.
SERVER_LOG_CONFIG = {
    "formatters": {"server": {"format": "granian: [%(levelname)s] %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "server",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {"_granian": {"handlers": ["stderr"], "propagate": False}},
}
# At `info` our start line says where we serve; the server's per-worker spawn and stop lines
# would only repeat it, so they show at `debug`. Warnings and errors (a worker died) always show.
SERVER_LOG_LEVEL = {"debug": "debug", "info": "warning", "warning": "warning", "error": "error"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsvc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service (flags override RECSVC_* variables)")
    serve.add_argument("--host", help="interface to bind (RECSVC_HOST)")
    serve.add_argument("--port", type=int, help="TCP port (RECSVC_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (RECSVC_WORKERS)")
    sub.add_parser("settings", help="print every RECSVC_* variable with its default and meaning")
    models = sub.add_parser("models", help="list the stored model versions or activate one")
    models.add_argument("--store", help="store URL (RECSVC_STORE)")
    action = models.add_subparsers(dest="action", required=True)
    action.add_parser("list", help="every stored version: created, NDCG, which is active")
    activate = action.add_parser("activate", help="make a stored version the active one (rollback)")
    activate.add_argument("version")
    privacy = sub.add_parser("privacy", help="erase a customer, list erasures, prune old versions")
    privacy.add_argument("--store", help="store URL (RECSVC_STORE)")
    what = privacy.add_subparsers(dest="action", required=True)
    erase = what.add_parser(
        "erase", help="erase a customer everywhere (as DELETE /v1/customers/ID)"
    )
    erase.add_argument("customer_id")
    what.add_parser("erasures", help="the erasure log, newest first (no personal data)")
    prune = what.add_parser(
        "prune-versions",
        help="remove stored versions that still hold erased customers (never the active one)",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="only list the versions that hold them"
    )
    deliver = sub.add_parser(
        "deliver",
        help="send webhook events (one per store; a second one stands by) until stopped",
    )
    deliver.add_argument("--store", help="store URL (RECSVC_STORE)")
    hooks = sub.add_parser(
        "webhooks", help="webhook destinations: state, re-enable, resync, event schemas"
    )
    hooks.add_argument("--store", help="store URL (RECSVC_STORE)")
    hook_action = hooks.add_subparsers(dest="action", required=True)
    hook_action.add_parser("list", help="each destination's queue and delivery state")
    enable = hook_action.add_parser("enable", help="re-enable a destination a 410 disabled")
    enable.add_argument("name")
    resync = hook_action.add_parser(
        "resync", help="send a destination its segments' current members again"
    )
    resync.add_argument("name")
    hook_action.add_parser("schema", help="print the JSON schema of every event's body")
    return parser


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """With several workers, give them one fresh metrics directory (unless one is configured), so
    /metrics sums the request counters of all of them."""
    if workers < 2 or os.environ.get(METRICS_DIR_VARIABLE):
        yield
        return
    directory = tempfile.mkdtemp(prefix="recsvc-metrics-")
    os.environ[METRICS_DIR_VARIABLE] = directory
    try:
        yield
    finally:
        os.environ.pop(METRICS_DIR_VARIABLE, None)
        shutil.rmtree(directory, ignore_errors=True)


def _serve(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    with _shared_metrics(settings.workers):
        # prometheus_client picks its multiprocess mode when first imported, and the workers
        # are forked from this process: import the app only once the directory is set.
        from recsvc.api.app import preflight

        preflight(settings)
        print(
            f"recsvc: serving on http://{settings.host}:{settings.port} with {settings.workers} "
            f"worker(s) (docs: /docs, metrics: /metrics, store: {settings.store})",
            file=sys.stderr,
            flush=True,
        )
        Granian(
            "recsvc.api.app:create_served_app",
            factory=True,
            interface=Interfaces.ASGI,
            address=settings.host,
            port=settings.port,
            workers=settings.workers,
            # HTTP/1.1 only: granian's cleartext HTTP/2 takes 16 MiB of headers, past these limits.
            http=HTTPModes.http1,
            http1_settings=HTTP1Settings(
                # A larger header block is answered 431 before it is buffered, and a client
                # slower than this with its headers is cut off: neither can hold a worker's memory.
                max_buffer_size=settings.max_header_bytes,
                header_read_timeout=round(settings.header_timeout_seconds * 1000),
            ),
            websockets=False,  # no WebSocket routes: upgrades are plain requests
            # Named rather than "auto", which would switch to the experimental rloop if installed.
            loop=Loops.uvloop,
            log_level=LogLevels(SERVER_LOG_LEVEL[settings.log_level]),
            log_dictconfig=SERVER_LOG_CONFIG,
            respawn_failed_workers=True,
        ).serve()


def _models(args: argparse.Namespace) -> int:
    from recsvc.store import open_store

    store = open_store(load_settings(store=args.store).store)
    try:
        if args.action == "activate":
            previous = store.active_version()
            store.activate(args.version)
            print(
                f"recsvc: version {args.version} is active (was {previous or 'none'}); "
                "workers switch at their next poll"
            )
            return 0
        versions = store.list_versions()
        if not versions:
            print(f"recsvc: no model version in {store.url}")
            return 0
        width = max(len(v.version) for v in versions)
        print(f"  {'version':<{width}}  {'created_at':<25}  ndcg")
        for v in versions:
            ndcg = f"{v.ndcg:.4f}" if v.ndcg is not None else "-"
            print(f"{'*' if v.active else ' '} {v.version:<{width}}  {v.created_at:<25}  {ndcg}")
        return 0
    finally:
        store.close()


def _privacy(args: argparse.Namespace) -> int:
    from recsvc.api.params import check_id
    from recsvc.domain import times
    from recsvc.service.privacy import erase_customer, versions_holding_erased
    from recsvc.service.webhooks.destinations import Webhooks
    from recsvc.store import open_store

    store = open_store(load_settings(store=args.store).store)
    try:
        if args.action == "erase":
            check_id("customer_id", args.customer_id)
            settings = load_settings(store=args.store)
            done = erase_customer(
                store,
                args.customer_id,
                requested_by="cli:recsvc privacy erase",
                now=times.now(),
                destinations=Webhooks.from_file(settings.webhooks_file).destinations,
            )
            removed = ", ".join(f"{name} {count}" for name, count in done.removed.items())
            print(
                f"recsvc: erased customer (hash {done.customer_hash[:16]}…) at "
                f"{times.iso(done.erased_at)}; removed: {removed}; every worker masks them now"
            )
            return 0
        if args.action == "erasures":
            entries = store.erasures.entries()
            if not entries:
                print(f"recsvc: no erasure in {store.url}")
            for entry in reversed(entries):
                removed = ", ".join(f"{n} {c}" for n, c in entry.removed.items()) or "-"
                print(
                    f"{times.iso(entry.erased_at)}  {entry.state:<9}  {entry.customer_hash[:16]}  "
                    f"{entry.requested_by:<20}  {removed}"
                )
            return 0
        held = versions_holding_erased(store, remove=not args.dry_run)
        if not held:
            print("recsvc: no stored version holds an erased customer")
        for version in held:
            if version.removed:
                done_with = "removed"
            elif version.active:
                done_with = "active: masked; the next published run replaces it"
            else:
                done_with = "kept (--dry-run)"
            print(f"{version.version}  {version.erased_customers} erased customer(s)  {done_with}")
        return 0
    finally:
        store.close()


def _deliver(args: argparse.Namespace) -> int:
    import logging
    import signal

    from recsvc.service.webhooks.delivery import Deliverer
    from recsvc.service.webhooks.destinations import Webhooks
    from recsvc.store import open_store

    settings = load_settings(store=args.store)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per request from the HTTP client would drown ours (failures, give-ups, takeovers).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    destinations = Webhooks.from_file(settings.webhooks_file).destinations
    store = open_store(settings.store, cache_dir=settings.cache_dir)
    deliverer = Deliverer(
        store,
        destinations,
        retry_base=dt.timedelta(seconds=settings.webhook_retry_seconds),
        poll_seconds=settings.deliver_poll_seconds,
        lock_seconds=settings.deliver_lock_seconds,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: deliverer.stop())
    print(
        f"recsvc: delivering webhooks to {len(destinations)} destination(s) from {store.url}",
        file=sys.stderr,
        flush=True,
    )
    try:
        deliverer.run()
    finally:
        store.close()
    return 0


def _webhooks(args: argparse.Namespace) -> int:
    from recsvc.service.webhooks.destinations import Webhooks
    from recsvc.service.webhooks.status import (
        destination_status,
        enable_destination,
        resync_destination,
        schemas,
    )
    from recsvc.store import open_store

    if args.action == "schema":
        print(schemas(), end="")
        return 0
    settings = load_settings(store=args.store)
    destinations = Webhooks.from_file(settings.webhooks_file).destinations
    store = open_store(settings.store, cache_dir=settings.cache_dir)
    try:
        if args.action == "enable":
            enable_destination(store, destinations, args.name)
            print(f"recsvc: destination {args.name} is enabled; the deliverer resumes it")
            return 0
        if args.action == "resync":
            resync_destination(store, destinations, args.name)
            print(
                f"recsvc: destination {args.name} gets its segments' current members again, "
                "after the events waiting"
            )
            return 0
        for status in destination_status(store, destinations):
            print(
                f"{status.name:<20} {status.state:<9} pending {status.pending:<7} "
                f"delivered {status.delivered:<7} failed attempts {status.failed_attempts:<5} "
                f"oldest {status.oldest_pending_seconds or 0:.0f} s  {status.disabled or ''}"
            )
        return 0
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "settings":
            print(settings_table())
            return 0
        if args.command == "models":
            return _models(args)
        if args.command == "privacy":
            return _privacy(args)
        if args.command == "deliver":
            return _deliver(args)
        if args.command == "webhooks":
            return _webhooks(args)
        _serve(load_settings(host=args.host, port=args.port, workers=args.workers))
        return 0
    except StoreUnavailable as exc:  # the environment, not the command: worth a retry
        print(f"recsvc: error: {exc}", file=sys.stderr)
        return 1
    except RecsvcError as exc:
        print(f"recsvc: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
