"""Assignment to an experiment's arms: deterministic, at the configured share, independent between
offers; the catalog's experiment table checked with errors naming the offer and field; which offers
a customer is shown or withheld, and a fallback taking a withheld offer's place."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from recsvc.domain.experiments import assign, holdout_draw
from recsvc.domain.offers import load_offers
from recsvc.errors import ConfigError
from recsvc.service.experiments import decide

IDS = [f"C{n:08d}" for n in range(20_000)]
DAY = dt.date(2026, 12, 3)


def test_the_arm_is_a_function_of_the_ids_alone() -> None:
    arms = [assign("apology_credit", "apology_credit", c, 0.1) for c in IDS[:500]]
    assert arms == [assign("apology_credit", "apology_credit", c, 0.1) for c in IDS[:500]]
    # A new experiment id re-draws the arms.
    redrawn = [assign("apology_credit_2027", "apology_credit", c, 0.1) for c in IDS[:500]]
    assert redrawn != arms
    assert holdout_draw("ab", "c", "x") != holdout_draw("a", "bc", "x")


@pytest.mark.parametrize("share", [0.05, 0.1, 0.5])
def test_the_holdout_share_is_the_configured_one(share: float) -> None:
    held = sum(assign("promoter_reward", "promoter_reward", c, share) == "holdout" for c in IDS)
    sd = math.sqrt(len(IDS) * share * (1 - share))
    assert abs(held - len(IDS) * share) < 4 * sd


def test_two_offers_assign_independently() -> None:
    a = [assign("x", "x", c, 0.5) == "holdout" for c in IDS]
    b = [assign("y", "y", c, 0.5) == "holdout" for c in IDS]
    both = sum(p and q for p, q in zip(a, b, strict=True))
    expected = len(IDS) * 0.25
    assert abs(both - expected) < 4 * math.sqrt(expected * 0.75)


def test_the_shipped_catalog_runs_every_offer_as_an_experiment() -> None:
    catalog = load_offers()
    assert catalog.offers
    for offer_id, definition in catalog.offers.items():
        assert definition.experiment is not None, offer_id
        assert definition.experiment.holdout_share == 0.1
        assert definition.experiment_id(offer_id) == offer_id


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ("holdout_share = 1.5", "experiment.holdout_share"),
        ('primary = "happiness"', "experiment.primary"),
        ('fallback = "random"', "experiment.fallback"),
        ("window_days = 0", "experiment.window_days"),
        ("colour = 1", "colour"),
    ],
)
def test_a_bad_experiment_table_names_the_offer_and_field(
    tmp_path: Path, table: str, named: str
) -> None:
    path = tmp_path / "offers.toml"
    path.write_text(
        '[offers.x]\nkind = "reward"\ntitle = "T"\nsegments = ["promoters"]\n\n'
        f"[offers.x.experiment]\n{table}\n"
    )
    with pytest.raises(ConfigError, match=r"offer 'x'.*") as raised:
        load_offers(path)
    assert named in str(raised.value)


@pytest.mark.parametrize(
    ("second", "problem"),
    [
        ('id = "a"', "is already offer 'a'"),
        ('id = "recommendations"', "reserved for the personalisation experiment"),
    ],
)
def test_experiment_ids_are_unique_and_not_the_reserved_one(
    tmp_path: Path, second: str, problem: str
) -> None:
    path = tmp_path / "offers.toml"
    path.write_text(
        '[offers.a]\nkind = "reward"\ntitle = "A"\nsegments = ["promoters"]\n'
        "[offers.a.experiment]\n\n"
        '[offers.b]\nkind = "reward"\ntitle = "B"\nsegments = ["promoters"]\n'
        f"[offers.b.experiment]\n{second}\n"
    )
    with pytest.raises(ConfigError, match=r"offer 'b'") as raised:
        load_offers(path)
    assert problem in str(raised.value) and "experiment.id" in str(raised.value)


def _catalog(tmp_path: Path, fallback: str, ends: str = "") -> Path:
    path = tmp_path / "offers.toml"
    path.write_text(
        f"""
[offers.big]
kind = "reward"
title = "Big"
segments = ["promoters"]
priority = 90
[offers.big.experiment]
holdout_share = 0.5
fallback = "{fallback}"
{ends}

[offers.mid]
kind = "referral"
title = "Mid"
segments = ["promoters"]
priority = 80
[offers.mid.experiment]
holdout_share = 0.01

[offers.plain]
kind = "engagement"
title = "Plain"
segments = ["promoters"]
priority = 10
"""
    )
    return path


def _held_and_kept(share_big: float = 0.5) -> tuple[str, str]:
    held = next(c for c in IDS if assign("big", "big", c, share_big) == "holdout")
    kept = next(c for c in IDS if assign("big", "big", c, share_big) == "treatment")
    return held, kept


def test_a_holdout_customer_loses_the_offer_and_a_fallback_takes_its_place(
    tmp_path: Path,
) -> None:
    held, kept = _held_and_kept()
    for fallback, expected in (("none", ["mid", "plain"]), ("next_best", ["plain", "mid"])):
        catalog = load_offers(_catalog(tmp_path, fallback))
        earned = catalog.for_segments(["promoters"], DAY)
        shown, withheld = decide(earned, held, DAY)
        assert [d.offer.id for d in withheld] == ["big"] and withheld[0].arm == "holdout"
        got = [d.offer.id for d in shown]
        if assign("mid", "mid", held, 0.01) == "treatment":
            assert got == expected, fallback
        shown, withheld = decide(earned, kept, DAY)
        assert next(d.offer.id for d in shown) == "big" and shown[0].arm == "treatment"
        assert shown[-1].experiment is None and shown[-1].arm is None


def test_after_its_end_an_experiment_assigns_no_one(tmp_path: Path) -> None:
    held, _ = _held_and_kept()
    catalog = load_offers(_catalog(tmp_path, "none", "ends = 2026-12-02"))
    shown, withheld = decide(catalog.for_segments(["promoters"], DAY), held, DAY)
    assert "big" in [d.offer.id for d in shown] and not [d for d in withheld if d.offer.id == "big"]
    earlier = DAY - dt.timedelta(days=1)
    shown, withheld = decide(catalog.for_segments(["promoters"], earlier), held, earlier)
    assert [d.offer.id for d in withheld][:1] == ["big"]
