"""`python -m recsvc` (also the `recsvc` console script): serve the API, or print the settings table."""

from __future__ import annotations

import argparse
import sys

from recsvc.errors import RecsvcError
from recsvc.settings import Settings, load_settings, settings_table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsvc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service (flags override RECSVC_* variables)")
    serve.add_argument("--host", help="interface to bind (RECSVC_HOST)")
    serve.add_argument("--port", type=int, help="TCP port (RECSVC_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (RECSVC_WORKERS)")
    sub.add_parser("settings", help="print every RECSVC_* variable with its default and meaning")
    return parser


def _serve(settings: Settings) -> None:
    import uvicorn

    print(
        f"recsvc: serving on http://{settings.host}:{settings.port} "
        f"(docs: http://{settings.host}:{settings.port}/docs, store: {settings.store})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        "recsvc.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "settings":
            print(settings_table())
            return 0
        _serve(load_settings(host=args.host, port=args.port, workers=args.workers))
        return 0
    except RecsvcError as exc:
        print(f"recsvc: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
