"""The privacy rules: a customer's hash, the suppression rule (dated at or before the erasure:
suppressed; after it: a new relationship), which versions mask an erasure, and the registry of
personal-data holders against the README's table."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from recsvc.domain.privacy import (
    CLOCK_MARGIN,
    PERSONAL_DATA,
    Erasure,
    Suppression,
    customer_hash,
    hash_key,
    key_fingerprint,
    masks,
)

T = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
README = Path(__file__).resolve().parents[3] / "README.md"


def entry(customer: str, at: dt.datetime, state: str = "started") -> Erasure:
    return Erasure(
        erasure_id="x",
        customer_hash=customer_hash(customer),
        erased_at=at,
        requested_by="dev",
        state=state,  # type: ignore[arg-type]
    )


def test_the_hash_is_stable_distinct_and_not_the_id() -> None:
    assert customer_hash("C1") == customer_hash("C1")
    assert customer_hash("C1") != customer_hash("C2")
    assert len(customer_hash("C1")) == 64 and "C1" not in customer_hash("C1")
    assert hash_key(customer_hash("C1")) == int(customer_hash("C1")[:16], 16)
    assert key_fingerprint(None) == "dev"
    assert key_fingerprint("secret-key-0123456789").startswith("key:")
    assert "secret" not in key_fingerprint("secret-key-0123456789")


def test_suppression_keeps_the_latest_erasure_and_cuts_at_it() -> None:
    later = T + dt.timedelta(days=3)
    suppression = Suppression.of([entry("C1", T), entry("C1", later), entry("C2", T)])
    assert suppression.erased_at("C1") == later
    assert suppression.suppresses("C1", later)  # at the erasure: the old relationship
    assert not suppression.suppresses("C1", later + dt.timedelta(microseconds=1))
    assert suppression.suppresses("C1", None)  # undated (attributes)
    assert not suppression.suppresses("C3", T)
    # A naive time is UTC (the contract's rule).
    assert suppression.suppresses("C2", T.replace(tzinfo=None))
    assert set(suppression.after(T + CLOCK_MARGIN).erased) == {customer_hash("C1")}
    assert not Suppression()


def test_a_version_masks_erasures_later_than_its_suppression() -> None:
    assert masks(T, None)  # a version from before erasures existed
    assert masks(T, T - dt.timedelta(seconds=1))
    # Built with this erasure applied, but within the clock margin: still masked, to be safe.
    assert masks(T, T + CLOCK_MARGIN - dt.timedelta(seconds=1))
    assert not masks(T, T + CLOCK_MARGIN)
    assert not masks(None, None)


def test_the_readme_lists_exactly_the_registered_holders() -> None:
    text = README.read_text()
    section = text.split("## Personal data", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    assert listed == [holder.name for holder in PERSONAL_DATA]
    names = [holder.name for holder in PERSONAL_DATA]
    assert len(names) == len(set(names))
