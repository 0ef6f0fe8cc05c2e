"""Products like a given one, for a product page: first what the product's buyers also bought,
then its nearest neighbours in the model's item space (scoring: `recsvc.version.neighbours`).

Bought alike: the other products of the customers who bought this one, each purchase weighted by
its recency (half-life `HALF_LIFE_DAYS` before the version's last day), so that this season's
companions lead. The score is 1 plus the share of the product's (weighted) buyers who also bought
the neighbour, each buyer weighed down by how much they buy and the share lifted by how well the
neighbour sells now, as the version's `AlikeParams` say: above 1, the reason is `bought_alike`.

Similar attributes: LightFM represents an item as the sum of its feature embeddings (identity,
category, price band), so a product nobody has bought yet still has a place in that space and gets
neighbours. Closeness is cosine similarity, mapped to 0..1 as the score; the reason is
`similar_attributes`. These fill the page after the bought-alike products, and are all of it for a
product without buyers. The unit vectors are computed once per version and worker.

A version written with neighbour lists (`LoadedModel.similar`, each product's best
`similar_list` neighbours, computed by the training job with the same scores) answers a request
from its product's list whenever the list holds enough neighbours that pass the filters; other
requests, and versions without lists, are computed live. Both use the version's last day as the
reference for recency, so they give the same page.

Why both: on the demo shop's 28-day hold-out (`bench/bench_similar.py`), predicting a customer's
next products from their last one, the item space alone ranked at 0.46x the NDCG@10 of popularity,
the recency-weighted co-purchases at 1.31x; on Online Retail 0.52x and 1.12x.
"""

from __future__ import annotations

from typing import Final

import msgspec
import numpy as np

from recsvc.errors import NotFoundError, shown
from recsvc.service.recommend import Query, Recommendation, allowed
from recsvc.version.artifacts import LoadedModel
from recsvc.version.neighbours import (
    BOUGHT_ALIKE_CODE,
    REASONS,
    SIMILAR_ATTRIBUTES_CODE,
    attribute_scores,
    best_first,
    bought_alike_scores,
    recency_weights,
)

BOUGHT_ALIKE: Final = REASONS[BOUGHT_ALIKE_CODE]
SIMILAR_ATTRIBUTES: Final = REASONS[SIMILAR_ATTRIBUTES_CODE]


class SimilarProducts(msgspec.Struct, frozen=True, kw_only=True):
    product_id: str
    model_version: str
    items: list[Recommendation]


def similar_products(model: LoadedModel, product_id: str, query: Query) -> SimilarProducts:
    """The `query.limit` products closest to `product_id` that pass the query's category and stock
    filters, closest first; NotFoundError for a product the version does not know."""
    index = model.item_index(product_id)
    if index is None:
        raise NotFoundError(
            f"no product {shown(product_id)} in model version {model.manifest.version}"
        )
    page = listed_neighbours(model, index, query)
    if page is None:
        page = live_neighbours(model, index, query)
    chosen, scores, bought = page
    ids, categories = model.item_id_list, model.item_category_names
    items = [
        Recommendation(
            product_id=ids[i],
            score=round(score, 6),
            category=categories[i],
            reason=BOUGHT_ALIKE if alike else SIMILAR_ATTRIBUTES,
        )
        for i, score, alike in zip(chosen.tolist(), scores.tolist(), bought.tolist(), strict=True)
    ]
    return SimilarProducts(product_id=product_id, model_version=model.manifest.version, items=items)


# A page: the neighbours' item indices best first, their scores (float32) and whether each was
# bought alike.
Page = tuple[np.ndarray, np.ndarray, np.ndarray]


def listed_neighbours(model: LoadedModel, index: int, query: Query) -> Page | None:
    """The page from the version's neighbour list of the product, or None when the version has no
    lists or the list holds fewer neighbours passing the filters than the page needs (a neighbour
    not in the list ranks below all of it, so the list's first passing ones are the answer)."""
    lists = model.similar
    if lists is None:
        return None
    row = np.asarray(lists.items[index])
    listed = row[row >= 0]
    keep = allowed(model, query, listed)
    passing = np.arange(listed.size) if keep is None else np.flatnonzero(keep)
    wanted = query.offset + query.limit
    complete = listed.size >= model.item_ids.size - 1  # every other product is in the list
    if passing.size < wanted and not complete:
        return None
    page = passing[query.offset : wanted]
    reasons = np.asarray(lists.reasons[index])[page]
    return listed[page], np.asarray(lists.scores[index])[page], reasons == BOUGHT_ALIKE_CODE


def live_neighbours(model: LoadedModel, index: int, query: Query) -> Page:
    """The page computed from the version's purchases and item vectors (what the lists hold,
    computed for one product)."""
    units = model.item_unit_vectors
    share = bought_alike_shares(model, index)
    bought = share > 0
    scores = np.where(
        bought, bought_alike_scores(share), attribute_scores(units @ units[index])
    ).astype(np.float32)
    keep = allowed(model, query)
    eligible = np.ones(scores.shape[0], dtype=bool) if keep is None else keep.copy()
    eligible[index] = False
    candidates = np.flatnonzero(eligible)
    best = best_first(scores[candidates], candidates, query.offset + query.limit)
    chosen = candidates[best[query.offset :]]
    return chosen, scores[chosen], bought[chosen]


def bought_alike_shares(model: LoadedModel, index: int) -> np.ndarray:
    """Per item, the share (0..1) of the product's buyers who also bought it, each buyer counted
    by the recency of that purchase (1 on the version's last day, 1/2 a half-life before) and by
    their `alike_buyer_weights`, then lifted by the item's `alike_lift` (the version's
    `AlikeParams`: `recsvc.version.neighbours`)."""
    n_items = model.item_ids.size
    who = model.buyers_of(index)
    if not who.size:
        return np.zeros(n_items, dtype=np.float64)
    purchases = model.arrays.purchases
    starts = np.asarray(purchases.indptr)[who]
    lengths = np.asarray(purchases.indptr)[who + 1] - starts
    # Every purchase row of those customers, gathered in one go.
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    at = offsets + np.arange(int(lengths.sum()))
    weights = recency_weights(model.manifest.trained_until_day - np.asarray(purchases.last_day)[at])
    buyers = model.alike_buyer_weights[who]
    weights *= np.repeat(buyers, lengths)
    together = np.bincount(np.asarray(purchases.items)[at], weights=weights, minlength=n_items)
    # Each buyer counts up to their weight, less the older the purchase is.
    share: np.ndarray = together / buyers.sum()
    share[index] = 0.0
    lifted: np.ndarray = np.minimum(share, 1.0) * model.alike_lift
    return lifted
