"""`python -m training`: the offline batch job's commands (generate, import, validate, run, runs,
schedule).

Every expected failure is a `RecsvcError` (or an unreachable store), printed as one line naming
what was wrong, with exit code 2; a run that finds another run holding the store's training lock
exits with 3; a traceback (exit 1) means a bug. A failed run is recorded in the store's run log
either way, so a scheduler and `python -m training runs` both notice.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from recsvc.errors import ConfigError, RecsvcError, StoreUnavailable

DEFAULT_STORE = "file://./var/store"
# The store the service reads (RECSVC_STORE) is the training job's default too.
STORE_HELP = f"the store (default: $RECSVC_STORE, else {DEFAULT_STORE})"


def _default_store() -> str:
    return os.environ.get("RECSVC_STORE") or DEFAULT_STORE


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number between 0 and 1, got {text!r}"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write realistic demo data in the data contract")
    gen.add_argument("--out", type=Path, required=True, help="directory to write the tables into")
    gen.add_argument("--customers", type=_positive_int, required=True, help="number of customers")
    gen.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    gen.add_argument(
        "--products",
        type=_positive_int,
        help="number of products (default customers/20, 100..50,000)",
    )
    gen.add_argument(
        "--format", choices=("parquet", "csv", "ndjson"), default="parquet", help="file format"
    )
    gen.add_argument(
        "--end-date", type=dt.date.fromisoformat, help="last day of simulated history (YYYY-MM-DD)"
    )

    imp = sub.add_parser(
        "import-online-retail", help="turn a UCI Online Retail file into the data contract"
    )
    imp.add_argument("src", type=Path, help="Online Retail (or II) file: .parquet, .csv or .xlsx")
    imp.add_argument("out", type=Path, help="directory to write the tables into")
    imp.add_argument("--seed", type=int, default=0, help="seed of the simulated NPS responses")

    val = sub.add_parser("validate", help="check a data directory against the contract")
    val.add_argument("--data", type=Path, required=True, help="directory holding the tables")
    val.add_argument(
        "--out",
        type=Path,
        help="where to write the report, quarantine and clean tables "
        "(default: var/validation/<data dir name>)",
    )
    val.add_argument(
        "--max-rejected-share",
        type=_share,
        default=0.05,
        help="fail when a table rejects more than this share of its rows (default 0.05)",
    )

    run = sub.add_parser(
        "run", help="the training pipeline: validate, segment, report, fit, evaluate, gate, publish"
    )
    _add_run_arguments(run)

    runs = sub.add_parser("runs", help="list the training runs recorded in a store, newest first")
    runs.add_argument("--store", default=_default_store(), help=STORE_HELP)
    runs.add_argument("--limit", type=_positive_int, default=20, help="newest N runs (default 20)")
    runs.add_argument("--json", action="store_true", help="one JSON record per line")

    schedule = sub.add_parser(
        "schedule",
        help="run the training pipeline on a cron schedule, in the foreground",
        description="Runs `python -m training run` with the given options at each time of the "
        "schedule. At start it runs once if the latest scheduled time since the last successful "
        "run was missed (once, however many were missed). SIGTERM or Ctrl-C stop it.",
    )
    schedule.add_argument(
        "--cron", required=True, help="5-field cron expression, e.g. '0 2 * * *' (02:00 daily)"
    )
    schedule.add_argument(
        "--timezone", default="UTC", help="time zone of the cron expression (default UTC)"
    )
    schedule.add_argument("--max-runs", type=_positive_int, help=argparse.SUPPRESS)
    _add_run_arguments(schedule)
    return parser


def _add_run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("--data", type=Path, required=True, help="directory holding the tables")
    run.add_argument(
        "--store",
        default=_default_store(),
        help="where versions are published; " + STORE_HELP,
    )
    run.add_argument("--config", type=Path, help="training config (TOML; see docs/recommender.md)")
    run.add_argument(
        "--segments",
        type=Path,
        action="append",
        default=[],
        help="segments file (TOML), repeatable",
    )
    run.add_argument(
        "--offers",
        type=Path,
        default=Path(os.environ["RECSVC_OFFERS_FILE"])
        if os.environ.get("RECSVC_OFFERS_FILE")
        else None,
        help="offer catalog whose experiments are analysed (default: $RECSVC_OFFERS_FILE, as the "
        "service reads it, else the shipped recsvc/defaults/offers.toml)",
    )
    run.add_argument(
        "--exposures",
        type=Path,
        help="exposure lines kept outside the store (NDJSON, as the store's log), analysed with "
        "the store's: earlier lines, or the demo's simulated ones",
    )
    run.add_argument(
        "--no-publish", action="store_true", help="evaluate and write the artifact only"
    )
    run.add_argument(
        "--force", action="store_true", help="publish even if the quality gate refuses"
    )
    run.add_argument(
        "--deterministic",
        action="store_true",
        help="one thread, fixed seed: identical models run after run",
    )
    run.add_argument(
        "--epochs", type=_positive_int, help="override the configured number of epochs"
    )
    run.add_argument(
        "--search-trials",
        type=_non_negative_int,
        help="override the configured number of search trials (0: fit the configured settings)",
    )
    run.add_argument(
        "--max-rejected-share",
        type=_share,
        default=0.05,
        help="fail when a table rejects more than this share of its rows (default 0.05)",
    )
    run.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("var/runs"),
        help="where runs keep their work (validation, artifact, run.json); default var/runs",
    )
    run.add_argument(
        "--lock-ttl",
        type=_positive_int,
        default=60,
        help="Redis store: seconds the training lock outlives a run killed outright (default 60)",
    )


def _run_arguments(args: argparse.Namespace) -> list[str]:
    """The `run` options of a `schedule` command, as `python -m training run` arguments."""
    argv = ["--data", str(args.data), "--store", args.store, "--runs-dir", str(args.runs_dir)]
    argv += ["--max-rejected-share", str(args.max_rejected_share)]
    argv += ["--lock-ttl", str(args.lock_ttl)]
    if args.config:
        argv += ["--config", str(args.config)]
    for path in args.segments:
        argv += ["--segments", str(path)]
    if args.offers:
        argv += ["--offers", str(args.offers)]
    if args.exposures:
        argv += ["--exposures", str(args.exposures)]
    if args.epochs:
        argv += ["--epochs", str(args.epochs)]
    if args.search_trials is not None:
        argv += ["--search-trials", str(args.search_trials)]
    argv += [
        flag
        for flag, on in (
            ("--no-publish", args.no_publish),
            ("--force", args.force),
            ("--deterministic", args.deterministic),
        )
        if on
    ]
    return argv


def _check_store_url(url: str) -> None:
    from recsvc.store import REDIS_URL_STARTS

    if not url.startswith(("file://", *REDIS_URL_STARTS)):
        raise ConfigError(
            "--store must be file://PATH, redis://HOST:PORT/DB or "
            f"redis+cluster://HOST:PORT[,HOST:PORT...], got {url!r}"
        )


def _generate(args: argparse.Namespace) -> int:
    from training.sources.generate import generate

    kwargs = {"end_date": args.end_date} if args.end_date else {}
    summary = generate(
        args.out,
        args.customers,
        args.seed,
        products=args.products,
        fmt=args.format,
        show_progress=not args.quiet,
        **kwargs,
    )
    print(f"wrote demo data to {args.out}: {summary}")
    return 0


def _import_online_retail(args: argparse.Namespace) -> int:
    from training.sources.online_retail import import_online_retail
    from training.sources.retail_report import format_summary

    summary = import_online_retail(args.src, args.out, seed=args.seed, show_progress=not args.quiet)
    print(format_summary(summary))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from training.validate.dataset import validate_dataset
    from training.validate.report import format_summary

    out = args.out or Path("var/validation") / args.data.resolve().name
    result = validate_dataset(
        args.data, out, max_rejected_share=args.max_rejected_share, show_progress=not args.quiet
    )
    print(format_summary(result.report))
    print(f"report, quarantine and clean tables: {out}")
    return 0


def _terminated(signum: int, _frame: object) -> NoReturn:
    # Unwinds the run, so it records itself as failed (kill -9 cannot: the next run marks that
    # one interrupted).
    raise KeyboardInterrupt("stopped by SIGTERM")


def _run(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.run.pipeline import format_record, run_pipeline

    _check_store_url(args.store)
    config = load_config(
        args.config,
        epochs=args.epochs,
        search_trials=args.search_trials,
        deterministic=args.deterministic or None,
    )
    signal.signal(signal.SIGTERM, _terminated)
    record = run_pipeline(
        args.data,
        store=args.store,
        config=config,
        segments_files=tuple(args.segments),
        offers_file=args.offers,
        exposures_file=args.exposures,
        max_rejected_share=args.max_rejected_share,
        publish=not args.no_publish,
        force=args.force,
        runs_dir=args.runs_dir,
        show_progress=not args.quiet,
        lock_ttl_seconds=args.lock_ttl,
    )
    print(format_record(record))
    return 0


def _runs(args: argparse.Namespace) -> int:
    import msgspec

    from recsvc.store import open_store
    from training.run.records import format_runs, read_records

    _check_store_url(args.store)
    store = open_store(args.store)
    try:
        records = read_records(store.run_log())[: args.limit]
    finally:
        store.close()
    if args.json:
        for record in records:
            print(msgspec.json.encode(record).decode())
    else:
        print(format_runs(records))
    return 0


def _schedule(args: argparse.Namespace) -> int:
    from recsvc.store import open_store
    from training.run.schedule import check_cron, run_schedule, timezone

    _check_store_url(args.store)
    check_cron(args.cron)
    timezone(args.timezone)
    command = [sys.executable, "-m", "training"]
    command += ["-q"] if args.quiet else []
    command += ["run", *_run_arguments(args)]
    store = open_store(args.store)
    try:
        return run_schedule(
            args.cron,
            command,
            store,
            zone_name=args.timezone,
            max_runs=args.max_runs,
            lock_ttl_seconds=args.lock_ttl,
        )
    finally:
        store.close()


COMMANDS = {
    "generate": _generate,
    "import-online-retail": _import_online_retail,
    "validate": _validate,
    "run": _run,
    "runs": _runs,
    "schedule": _schedule,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from recsvc.errors import LockHeld
    from training.run.schedule import EXIT_LOCK_HELD

    try:
        return COMMANDS[args.command](args)
    except LockHeld as exc:
        print(f"error: {exc}; not starting", file=sys.stderr)
        return EXIT_LOCK_HELD
    except (RecsvcError, StoreUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
