"""Suggestions for an anonymous shopper's cart (`POST /v1/recommendations`): no customer id, only
the products in the cart.

The cart is scored by the model (folded in through the customers who bought like it, without
retraining) and by what its products' buyers also bought, the two fused by their ranks with the
version's `cart_alike_weight` (chosen per shop by the training run; 0: the model alone); the
pieces are `recsvc.version.carts`. The cart itself is left out. A cart the version knows nothing of
(unknown products, or products nobody bought) gets the popular products.

Why fuse: on Online Retail's 28-day hold-out (`bench/bench_cart.py`), a customer's past products
as a cart ranked their next purchases at 1.37x the NDCG@10 of recent popularity with the model
alone, 1.28x with bought-alike alone and 1.53x fused at weight 1; on the demo shop the model alone
ranked best (1.94x against 1.77x fused). Hence a weight per shop. Why neighbours rather than the
cart's own item vectors: on the demo shop, the mean of the cart's item vectors ranked at 0.57x the
neighbours' fold-in and a least-squares fold-in at 0.45-0.61x, no better than popularity: a LightFM
customer vector carries what the items alone do not (the features of the people who buy them).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from recsvc.service.recommend import Query, Recommendations, recommend_vector
from recsvc.service.similar import bought_alike_shares
from recsvc.version.artifacts import LoadedModel, find_each_sorted
from recsvc.version.carts import cart_vector, fused_scores, listed_alike_sums
from recsvc.version.scoring import score_items

# A version without neighbour lists reads every cart product's buyers per request: bounded.
LIVE_CART_PRODUCTS: Final = 10


def cart_recommendations(
    model: LoadedModel, product_ids: list[str], query: Query
) -> Recommendations:
    """One page of suggestions for a cart (product ids; unknown ones are ignored)."""
    positions = find_each_sorted(model.item_ids, product_ids)
    known = positions[positions >= 0]
    cart, first = np.unique(known, return_index=True)
    cart = cart.astype(np.int32)
    vector = cart_vector(model.arrays, model.item_buyers, cart)
    weight = model.manifest.cart_alike_weight
    if vector is None or not weight:
        return recommend_vector(model, vector, query, cart)
    alike = _alike_sums(model, known[np.sort(first)], cart)
    if not alike.any():
        return recommend_vector(model, vector, query, cart)
    scores = fused_scores(score_items(model.arrays, vector), alike, cart, weight)
    return recommend_vector(model, vector, query, cart, scores=scores)


def _alike_sums(model: LoadedModel, given: np.ndarray, cart: np.ndarray) -> np.ndarray:
    """The cart's summed bought-alike shares: from the version's lists, or live from the first
    `LIVE_CART_PRODUCTS` of its products in the order given (`given`: each once)."""
    if model.similar is not None:
        return listed_alike_sums(model.similar, cart, model.item_ids.size)
    total = np.zeros(model.item_ids.size, dtype=np.float64)
    for index in given[:LIVE_CART_PRODUCTS].tolist():
        total += bought_alike_shares(model, int(index))
    total[cart] = 0.0
    return total
