"""What sells now: a recent-popularity prior on the item biases, its weight chosen per shop.

A collaborative model learns who buys alike over the whole history; it knows no season. On Online
Retail's last weeks (the run-up to Christmas) the 28 days' best-sellers beat the known-customer
path outright, and on the demo shop, which has no season, they do not. So the prior's weight is a
setting like the others: the search scores `PRIOR_WEIGHTS` on its validation split with the chosen
settings' own scores (`search.search`), 0 included, ties to the lighter, so a shop without a season
keeps the model as it was.

The prior of a product: log(1 + its buyers in the last `PRIOR_DAYS` of the lines the model is fitted
on), standardised over the catalogue, times the weight and the spread of the model's scores
(`ease.score_spread`), so that a weight means the same on any model's scale. It is added to the item
biases when a model is fitted (`fit.fit_arrays`), so whatever ranks through the biases (candidate
lists, live scoring, carts, cold start, the evaluation and the gate) sees one model.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from recsvc.version.neighbours import RECENT_DAYS, recent_buyers
from recsvc.version.scoring import ModelArrays, Purchases, known_customer_vectors

PRIOR_DAYS: Final = RECENT_DAYS
# 0: the model alone. At 1, a product one standard deviation above the catalogue's recent buyers
# gains one spread of the model's scores; at 8 the prior all but ranks alone, the model breaking
# its ties (MovieLens 100K chose 2, the top of a grid that ended there).
PRIOR_WEIGHTS: Final = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
# Customers whose folded vectors measure a fitted model's score spread (as the search measures it
# on its validation customers' vectors).
_SPREAD_CUSTOMERS: Final = 500


def recent_popularity(purchases: Purchases, n_items: int) -> np.ndarray:
    """Each product's prior (float64, mean 0, standard deviation 1; all 0 when no product differs):
    log(1 + its buyers whose last purchase of it falls in the last `PRIOR_DAYS` days of
    `purchases`)."""
    last_day = np.asarray(purchases.last_day)
    if not last_day.size:
        return np.zeros(n_items)
    prior = np.log1p(recent_buyers(purchases, n_items, int(last_day.max())).astype(np.float64))
    spread = float(prior.std())
    if spread == 0.0:
        return np.zeros(n_items)
    centred: np.ndarray = (prior - prior.mean()) / spread
    return centred


def with_prior(
    item_biases: np.ndarray, prior: np.ndarray, weight: float, spread: float
) -> np.ndarray:
    """The item biases (float32) with the prior at `weight` on a model whose scores spread by
    `spread`."""
    if not weight:
        return np.asarray(item_biases, dtype=np.float32)
    shifted: np.ndarray = (item_biases + weight * spread * prior).astype(np.float32)
    return shifted


def customer_vectors(model: ModelArrays, seed: int) -> np.ndarray:
    """The folded vectors (float32) of a seeded sample of the customers the model learned, for
    `ease.score_spread`."""
    learned = np.flatnonzero(model.has_identity)
    rng = np.random.default_rng(seed)
    sample = rng.choice(learned, size=min(_SPREAD_CUSTOMERS, learned.size), replace=False)
    return known_customer_vectors(model, np.sort(sample))
