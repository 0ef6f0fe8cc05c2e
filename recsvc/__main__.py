"""`python -m recsvc` (also the `recsvc` console script): serve the API, list or activate model
versions, or print the settings table."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

from recsvc.errors import RecsvcError
from recsvc.settings import Settings, load_settings, settings_table
from recsvc.store.base import StoreUnavailable

# Read by prometheus_client in every worker: where the workers' metric files are summed from.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


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
    import uvicorn

    from recsvc.api.app import preflight

    preflight(settings)
    print(
        f"recsvc: serving on http://{settings.host}:{settings.port} with {settings.workers} "
        f"worker(s) (docs: /docs, metrics: /metrics, store: {settings.store})",
        file=sys.stderr,
        flush=True,
    )
    with _shared_metrics(settings.workers):
        uvicorn.run(
            "recsvc.api.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            # The C HTTP parser and event loop: about twice the requests per second of the
            # pure-Python defaults (bench/bench_service.py).
            loop="uvloop",
            http="httptools",
        )


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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "settings":
            print(settings_table())
            return 0
        if args.command == "models":
            return _models(args)
        _serve(load_settings(host=args.host, port=args.port, workers=args.workers))
        return 0
    except RecsvcError as exc:
        print(f"recsvc: error: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"recsvc: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
