"""Suggestions for an anonymous shopper's cart (`POST /v1/recommendations`): no customer id, only
the products in the cart.

The cart is folded into the model without retraining through the customers who bought like it:
the `NEIGHBOURS` known customers whose purchase histories share the most products with the cart,
their model vectors averaged (weighted by how many cart products each bought), score the catalogue
like any customer's vector would; the cart itself is left out. A cart the version knows nothing of
(unknown products, or products nobody bought) gets the popular products.

Why neighbours rather than the cart's own item vectors: on the demo shop's 28-day hold-out
(`bench/bench_cart.py`), a customer's past purchases used as a cart ranked their next purchases
at 1.02x the NDCG@10 of the known-customer path with this fold-in, against 0.57x for the mean of
the cart's item vectors and 0.45-0.61x for a least-squares fold-in, which were no better than
popularity: a LightFM customer vector carries what the items alone do not (the features of the
people who buy them).
"""

from __future__ import annotations

import numpy as np

from recsvc.service.recommend import Query, Recommendations, recommend_vector
from recsvc.version.artifacts import LoadedModel, find_each_sorted
from recsvc.version.scoring import known_customer_vectors

# Customers whose purchases stand in for the shopper. 20 and 100 ranked alike on the demo shop
# (1.02x and 0.98x the known-customer path): a guess about other shops, not a tuned value.
NEIGHBOURS = 20


def cart_recommendations(
    model: LoadedModel, product_ids: list[str], query: Query
) -> Recommendations:
    """One page of suggestions for a cart (product ids; unknown ones are ignored)."""
    positions = find_each_sorted(model.item_ids, product_ids)
    cart = np.unique(positions[positions >= 0]).astype(np.int32)
    vector = _neighbour_vector(model, cart)
    inputs = model.arrays.item_input_vectors
    if inputs is not None and cart.size:
        # A blend: its EASE columns answer the cart itself, exactly as EASE would (the sum of the
        # cart's input rows); the neighbours still stand in for the LightFM half.
        ease_part = inputs[cart].sum(axis=0)
        if vector is None:
            vector = np.zeros(model.arrays.item_vectors.shape[1], dtype=np.float32)
        vector = vector.copy()
        vector[model.arrays.lightfm_dims :] = ease_part
        if not vector.any():
            vector = None
    return recommend_vector(model, vector, query, cart)


def _neighbour_vector(model: LoadedModel, cart: np.ndarray) -> np.ndarray | None:
    """The overlap-weighted mean vector of the customers who bought most of the cart, or None."""
    if not cart.size:
        return None
    together = np.concatenate([model.buyers_of(int(i)) for i in cart])
    if not together.size:
        return None
    customers, overlap = np.unique(together, return_counts=True)
    if customers.size > NEIGHBOURS:
        best = np.argpartition(-overlap, NEIGHBOURS)[:NEIGHBOURS]
        customers, overlap = customers[best], overlap[best]
    vectors = known_customer_vectors(model.arrays, customers.astype(np.int64))
    weights = overlap.astype(np.float32) / np.float32(overlap.sum())
    vector: np.ndarray = (weights @ vectors).astype(np.float32)
    return vector
