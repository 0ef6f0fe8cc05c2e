"""The gate's rule on hand-made numbers: a model is refused only when it is worse than the active
one by more than the tolerance and the 95% interval of the difference stays below zero."""

from __future__ import annotations

import pytest

from training.publish.gate import worse_beyond_noise


@pytest.mark.parametrize(
    ("difference", "high", "refused"),
    [
        (-0.05, -0.02, True),  # clearly worse, and the interval agrees
        (-0.05, 0.01, False),  # worse on this sample, but the interval reaches 0: noise
        (-0.005, -0.001, False),  # surely worse, but within the tolerance
        (0.02, 0.04, False),  # better
        (-0.05, None, True),  # no interval (too few customers): the point difference decides
        (-0.01, -0.005, False),  # exactly the tolerance is not beyond it
    ],
)
def test_worse_beyond_noise(difference: float, high: float | None, refused: bool) -> None:
    assert worse_beyond_noise(difference, high, tolerance=0.01) is refused
