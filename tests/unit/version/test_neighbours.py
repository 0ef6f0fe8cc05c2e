"""Ranking and scoring of similar products, shared by the training job's lists and the service."""

from __future__ import annotations

import numpy as np

from recsvc.version.neighbours import attribute_scores, best_first, bought_alike_scores


def test_ties_are_broken_by_catalogue_order_also_at_the_last_place() -> None:
    items = np.array([2, 5, 7, 9, 11], dtype=np.int32)
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.7], dtype=np.float32)
    assert items[best_first(scores, items, 3)].tolist() == [5, 11, 2]
    assert items[best_first(scores, items, 4)].tolist() == [5, 11, 2, 7]
    assert items[best_first(scores, items, 10)].tolist() == [5, 11, 2, 7, 9]


def test_a_bought_alike_neighbour_outranks_every_closeness_however_old_the_purchase() -> None:
    alike = bought_alike_scores(np.array([1e-12, 0.25, 1.0]))
    assert alike.dtype == np.float32 and (alike > 1).all()
    assert alike[1:].tolist() == [1.25, 2.0]
    close = attribute_scores(np.array([-1.0, 0.0, 1.0], dtype=np.float32))
    assert close.dtype == np.float32 and close.tolist() == [0.0, 0.5, 1.0]
