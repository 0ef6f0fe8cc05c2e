"""The storefront's logic between HTTP and the domain: check the request, rank with
`recsvc.service.recommend`, choose offers with `recsvc.service.offers`, shape the reply."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from msgspec import UNSET, UnsetType

from recsvc.api.params import id_list, split_list
from recsvc.api.storefront.schemas import (
    CartRequest,
    HoldoutItem,
    OfferItem,
    OffersResponse,
    RecommendationResponse,
    RecommendedItem,
)
from recsvc.domain import times
from recsvc.domain.experiments import RECOMMENDATIONS_EXPERIMENT, Exposure
from recsvc.domain.live import LiveActivity
from recsvc.domain.offers import OfferCatalog
from recsvc.errors import InvalidRequest
from recsvc.service.cart import cart_recommendations
from recsvc.service.customer_state import current_state
from recsvc.service.experiments import (
    ExposureRecorder,
    decide,
    exposure_lines,
    recommendations_arm,
)
from recsvc.service.offers import products_for_theme
from recsvc.service.recommend import Query, popular_in_segment, recommend
from recsvc.version.opened import ActiveModel

MAX_FEATURE_LENGTH = 64


def _query(
    model: ActiveModel,
    limit: int,
    offset: int,
    exclude_purchased: bool,
    exclude: list[str] | None,
    category: list[str] | None,
    in_stock: bool | None,
) -> Query:
    """The page and filters of a request, each checked (400 naming the parameter)."""
    categories = split_list("category", category)
    unknown = sorted(set(categories) - set(model.loaded.categories)) if categories else []
    if unknown:
        raise InvalidRequest(
            f"category: unknown value(s) {', '.join(unknown)}; "
            f"known: {', '.join(model.loaded.categories)}"
        )
    return Query(
        limit=limit,
        offset=offset,
        exclude_purchased=exclude_purchased,
        exclude=id_list("exclude", exclude),
        categories=categories,
        in_stock=in_stock,
    )


def cart_recommendations_for(model: ActiveModel, cart: CartRequest) -> RecommendationResponse:
    """One page of suggestions for an anonymous cart (`recsvc.service.cart`): no customer, so a
    cold start, the cart's products never among them."""
    products = id_list("product_ids", cart.product_ids)
    query = _query(model, cart.limit, cart.offset, True, cart.exclude, cart.category, cart.in_stock)
    result = cart_recommendations(model.loaded, products, query)
    return RecommendationResponse(
        customer_id=None, model_version=model.version, cold_start=True, items=result.items
    )


def recommendations_for(
    model: ActiveModel,
    customer_id: str,
    activity: LiveActivity,
    *,
    limit: int,
    offset: int,
    exclude_purchased: bool,
    exclude: list[str] | None,
    category: list[str] | None,
    in_stock: bool | None,
    given_features: Mapping[str, str | None],
    sees_answers: bool,
    holdout_share: float = 0.0,
    exposures: ExposureRecorder | None = None,
) -> RecommendationResponse:
    """One page of suggestions. The customer's live answers and orders (`activity`) change the
    features they are ranked by (their NPS category and segment) and what they bought (left out,
    or counted by buy-again); `given_features` (country, age band) are used only
    for a customer the model does not know, together with any live ones: their cold start.
    `sees_answers`: the key may read survey answers and segments (the `export` scope).
    `holdout_share` > 0 runs the personalisation experiment: a customer in its holdout gets the
    popular products of their segment; either arm's page is logged to `exposures`."""
    for name, value in given_features.items():
        if value is not None and len(value) > MAX_FEATURE_LENGTH:
            raise InvalidRequest(f"{name}: at most {MAX_FEATURE_LENGTH} characters")
    query = _query(model, limit, offset, exclude_purchased, exclude, category, in_stock)
    # Without live records the customer is as stored: no state to work out on the hot path.
    state = (
        current_state(model, customer_id, activity, times.now(), all_segments=False)
        if activity
        else None
    )
    arm = recommendations_arm(customer_id, holdout_share)
    if arm == "holdout":
        result = popular_in_segment(
            model.loaded,
            customer_id,
            query,
            state.model_attributes() if state else {},
            bought=state.bought if state else None,
            unknown=model.masks(activity.erased_at),
        )
    else:
        result = recommend(
            model.loaded,
            customer_id,
            query,
            state.model_attributes() if state else {},
            if_unknown=given_features,
            bought=state.bought if state else None,
            unknown=model.masks(activity.erased_at),
        )
    if arm is not None and exposures is not None:
        exposures.record(
            [
                Exposure(
                    times.now(),
                    RECOMMENDATIONS_EXPERIMENT,
                    RECOMMENDATIONS_EXPERIMENT,
                    customer_id,
                    arm,
                    model.version,
                    result.segment,
                    holdout_share,
                )
            ]
        )
    experiment: str | UnsetType = UNSET if arm is None else RECOMMENDATIONS_EXPERIMENT
    if not sees_answers:
        return RecommendationResponse(
            customer_id=customer_id,
            model_version=model.version,
            cold_start=result.cold_start,
            items=result.items,
            experiment=experiment,
            arm=UNSET if arm is None else arm,
        )
    return RecommendationResponse(
        customer_id=customer_id,
        model_version=model.version,
        cold_start=result.cold_start,
        items=result.items,
        segment=result.segment,
        known_customer=result.known_customer,
        experiment=experiment,
        arm=UNSET if arm is None else arm,
    )


def offers_for(
    model: ActiveModel,
    customer_id: str,
    activity: LiveActivity,
    catalog: OfferCatalog,
    *,
    sees_answers: bool,
    exposures: ExposureRecorder | None = None,
) -> OffersResponse:
    """The offers the customer's current segments (live answers and orders included) earn, each
    with its products attached; `sees_answers` adds the customer's survey answers and segments (the
    `export` scope) and the offers withheld from them by an experiment's holdout. Every offer in
    an experiment, shown or withheld, is logged to `exposures`."""
    now = times.now()
    day = now.date()
    state = current_state(model, customer_id, activity, now)
    shown, withheld = decide(catalog.for_segments(state.segments, day), state.customer_id, day)
    if exposures is not None:
        lines = exposure_lines(shown, withheld, state.customer_id, model.version, now)
        if lines:
            exposures.record(lines)
    items = []
    for decision in shown:
        offer, definition = decision.offer, decision.definition
        products: list[RecommendedItem] = []
        if definition.products:
            # A recovery offer answers the complaint (e.g. in-stock items after a late delivery).
            theme = state.complaint_theme if definition.kind == "recovery" else None
            query = msgspec.structs.replace(products_for_theme(theme), limit=definition.products)
            products = recommend(
                model.loaded,
                state.customer_id,
                query,
                state.model_attributes(),
                bought=state.bought,
                unknown=not state.known,
            ).items
        fields = msgspec.structs.asdict(offer)
        if not sees_answers:
            del fields["segment"]
        items.append(
            OfferItem(**fields, products=products, experiment=decision.experiment, arm=decision.arm)
        )
    if not sees_answers:
        return OffersResponse(
            customer_id=state.customer_id, model_version=model.version, offers=items
        )
    return OffersResponse(
        customer_id=state.customer_id,
        model_version=model.version,
        offers=items,
        segment=state.primary_segment,
        nps_category=state.nps_category,
        complaint_theme=state.complaint_theme,
        holdouts=[
            HoldoutItem(experiment=d.experiment, offer_id=d.offer.id)
            for d in withheld
            if d.experiment is not None
        ],
    )
