"""`python -m training`: the offline batch job's commands (generate, import, validate, run).

Every expected failure is a `RecsvcError`, printed as one line naming what was wrong, with exit code 2;
a traceback means a bug.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from recsvc.errors import ConfigError, RecsvcError

DEFAULT_STORE = "file://./var/store"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
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
    run.add_argument("--data", type=Path, required=True, help="directory holding the tables")
    run.add_argument(
        "--store",
        default=DEFAULT_STORE,
        help=f"where versions are published (default {DEFAULT_STORE})",
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
        "--max-rejected-share",
        type=_share,
        default=0.05,
        help="fail when a table rejects more than this share of its rows (default 0.05)",
    )
    return parser


def _generate(args: argparse.Namespace) -> int:
    from training.generate import generate

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
    from training.online_retail import format_summary, import_online_retail

    summary = import_online_retail(args.src, args.out, seed=args.seed, show_progress=not args.quiet)
    print(format_summary(summary))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from training.validate import format_summary, validate_dataset

    out = args.out or Path("var/validation") / args.data.resolve().name
    result = validate_dataset(
        args.data, out, max_rejected_share=args.max_rejected_share, show_progress=not args.quiet
    )
    print(format_summary(result.report))
    print(f"report, quarantine and clean tables: {out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.pipeline import format_record, run_pipeline

    if not args.store.startswith(("file://", "redis://", "rediss://")):
        raise ConfigError(
            f"--store must be file://PATH or redis://HOST:PORT/DB, got {args.store!r}"
        )
    config = load_config(args.config, epochs=args.epochs, deterministic=args.deterministic or None)
    record = run_pipeline(
        args.data,
        store=args.store,
        config=config,
        segments_files=tuple(args.segments),
        max_rejected_share=args.max_rejected_share,
        publish=not args.no_publish,
        force=args.force,
        show_progress=not args.quiet,
    )
    print(format_record(record))
    return 0


COMMANDS = {
    "generate": _generate,
    "import-online-retail": _import_online_retail,
    "validate": _validate,
    "run": _run,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except RecsvcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
