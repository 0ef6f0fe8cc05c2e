"""The nightly experiments step on the demo generator's simulated experiments: the apology credit's
simulated effect is measured (its interval above zero, the simulated lift inside it), the null
control's interval holds zero, no sample-ratio mismatch; results and assignments are written into
the version directory. Outcome windows: a customer assigned less than a window before the data's
end is not analysed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.experiments import ExperimentResult, Exposure
from recsvc.domain.offers import load_offers
from recsvc.domain.privacy import Suppression
from recsvc.store import FileStore
from recsvc.version.experiments import read_assignments, read_results
from training.experiments.nightly import run_experiments
from training.experiments.outcomes import assignments, outcome_table, read_exposure_file
from training.sources.experiment_sim import EFFECTS, EXPOSURES_FILE, SERVICE_DIR
from training.sources.generate import generate

END = dt.date(2026, 11, 30)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("shop")
    generate(data, 20_000, seed=42, end_date=END, show_progress=False)
    return data


def _tables(data: Path) -> dict[str, pl.LazyFrame]:
    return {name: pl.scan_parquet(data / f"{name}.parquet") for name in (c.ORDERS, c.NPS_RESPONSES)}


def test_the_simulated_effect_is_measured_and_the_null_is_not(shop: Path, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    out = tmp_path / "version"
    out.mkdir()
    as_of = dt.datetime.combine(END, dt.time(23, 59, 59))
    ran = run_experiments(
        store.exposures,
        shop / SERVICE_DIR / EXPOSURES_FILE,
        _tables(shop),
        as_of,
        load_offers(),
        out,
        Suppression(),
        show=False,
    )
    results = {r.offer_id: r for r in read_results(out)}
    assert set(results) == set(EFFECTS) and ran.results == list(results.values())
    assert len(read_assignments(out)) == ran.assigned > 5_000

    apology = results["apology_credit"]
    conversion = next(o for o in apology.outcomes if o.outcome == "conversion")
    assert conversion.ci_low is not None and conversion.ci_high is not None
    assert conversion.ci_low > 0 and apology.status == "significant", apology.status_detail
    # Simulated: one more order with probability 0.2 for the treated who had bought before, so
    # the lift in conversion is at most 0.2 and at least 0.2 times the holdout's non-converters.
    assert conversion.holdout is not None
    assert conversion.ci_low < 0.2 and conversion.ci_high > 0.2 * (1 - conversion.holdout) * 0.5
    nps = next(o for o in apology.outcomes if o.outcome == "nps")
    assert nps.lift is not None and nps.lift > 0

    null = results["passive_engagement"]
    null_conversion = next(o for o in null.outcomes if o.outcome == "conversion")
    assert null_conversion.ci_low is not None and null_conversion.ci_high is not None
    assert null_conversion.ci_low < 0 < null_conversion.ci_high
    assert null.status != "significant"
    for result in results.values():
        assert result.srm_p_value is not None and result.srm_p_value > 0.001
        assert result.observed_holdout_share is not None
        assert abs(result.observed_holdout_share - 0.1) < 0.03


def test_only_complete_windows_are_analysed(shop: Path) -> None:
    assigned = assignments(read_exposure_file(shop / SERVICE_DIR / EXPOSURES_FILE))
    orders, answers = _tables(shop).values()
    first = assigned["assigned_at"].min()
    assert isinstance(first, dt.datetime)
    # The data's end 40 days after the first assignment: those assigned after day 10 still wait.
    end = first + dt.timedelta(days=40)
    table = outcome_table(assigned, orders, answers, end, 30)
    complete = table.filter(pl.col("complete"))
    assert 0 < complete.height < table.height
    assert (complete["assigned_at"] <= end - dt.timedelta(days=30)).all()
    # The ones still waiting are exactly those assigned within a window of the end.
    assert table.filter(~pl.col("complete"))["assigned_at"].min() > end - dt.timedelta(days=30)


def test_a_compacted_log_gives_the_next_run_the_same_experiments(
    shop: Path, tmp_path: Path
) -> None:
    """Lines folded by one run, then lines since: the next run counts every assignment once."""
    store = FileStore(tmp_path / "store")
    lines = read_exposure_file(shop / SERVICE_DIR / EXPOSURES_FILE)
    first_half = lines.filter(pl.col("at") < lines["at"].median())
    store.exposures.append(
        [
            Exposure(
                row["at"].replace(tzinfo=dt.UTC),
                row["experiment"],
                row["offer_id"],
                row["customer_id"],
                row["arm"],
                row["version"],
                row["segment"],
                row["share"],
            )
            for row in lines.iter_rows(named=True)
        ]
    )
    as_of = dt.datetime.combine(END, dt.time(23, 59, 59))
    middle = first_half["at"].max()
    assert isinstance(middle, dt.datetime)

    def run(out: Path, compact: dt.datetime | None) -> list[ExperimentResult]:
        out.mkdir()
        run_experiments(
            store.exposures,
            None,
            _tables(shop),
            as_of,
            load_offers(),
            out,
            Suppression(),
            show=False,
            compact_before=compact,
            erasures=Suppression,
        )
        return read_results(out)

    whole = run(tmp_path / "v1", middle.replace(tzinfo=dt.UTC) + dt.timedelta(microseconds=1))
    assert store.exposures.compacted().through is not None
    assert len(list(store.exposures.read())) == lines.height - first_half.height
    again = run(tmp_path / "v2", None)
    # The same numbers (up to the last bits of float sums polars adds in parallel).
    assert _close(msgspec.to_builtins(again), msgspec.to_builtins(whole))
    assert read_assignments(tmp_path / "v2") == read_assignments(tmp_path / "v1")
    assert sum(a.exposures for a in read_assignments(tmp_path / "v2")) == int(
        (lines["arm"] == "treatment").sum()
    )


def _close(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b
