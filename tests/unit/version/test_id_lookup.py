"""Looking an id up in a version's sorted id array costs the same whatever the id: no copy of the
array, however long the id a client sends (numpy would widen the whole array to the key's width)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from recsvc.version.artifacts import find_all_sorted, find_each_sorted, find_sorted

IDS = np.array([f"C{i:08d}" for i in range(200_000)])  # 200k ids of 9 characters: 7.2 MB


def peak_bytes(call: object) -> int:
    tracemalloc.start()
    try:
        call()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("key", ["C00123456", "C0012", "C99999999x", "x" * 128, "x" * 60_000])
def test_a_lookup_copies_nothing_whatever_the_key(key: str) -> None:
    assert peak_bytes(lambda: find_sorted(IDS, key)) < 64 * 1024


def test_a_lookup_finds_exactly_the_stored_ids() -> None:
    assert find_sorted(IDS, "C00123456") == 123456
    assert find_sorted(IDS, "C0012345") is None  # a prefix of a stored id
    assert find_sorted(IDS, "C001234567") is None
    assert find_sorted(IDS, "") is None


def test_many_lookups_at_once_skip_unknown_and_overlong_keys_without_copying() -> None:
    keys = ["C00000007", "nope", "x" * 5_000, "C00199999", "C00000007"]
    assert find_all_sorted(IDS, keys).tolist() == [7, 199_999, 7]
    assert peak_bytes(lambda: find_all_sorted(IDS, ["x" * 128] * 200)) < 64 * 1024


@pytest.mark.parametrize("repeat", [1, 4])  # 5 keys searched one by one, 20 at once
def test_each_key_gets_its_position_or_minus_one_in_its_own_place(repeat: int) -> None:
    keys = ["C00000007", "nope", "x" * 5_000, "C00199999", "C00000007"] * repeat
    assert find_each_sorted(IDS, keys).tolist() == [7, -1, -1, 199_999, 7] * repeat
    assert find_each_sorted(IDS, []).tolist() == []
    assert peak_bytes(lambda: find_each_sorted(IDS, ["x" * 128] * 200)) < 64 * 1024
