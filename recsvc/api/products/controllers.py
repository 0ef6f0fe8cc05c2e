"""`GET /v1/products/{product_id}/similar`: products close to one product in the model's item space,
for a product page (`recsvc.service.similar`). No customer is involved: an anonymous shopper's
product page gets them too."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, Parameter

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.dependencies import Injected
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.params import CategoryFilter, StockFilter, check_id, lists
from recsvc.service.recommend import Query
from recsvc.service.similar import SimilarProducts, similar_products
from recsvc.version.opened import ActiveModel


class ProductController(Controller):
    path = "/v1/products"
    tags = ["recommendations"]
    before_request = RequireScope("recommend")
    security = SECURITY

    @get(
        "/{product_id:str}/similar",
        summary="Products similar to one product (a product page); 404 for an unknown product",
        description="Nearest neighbours by cosine similarity of the model's item vectors (each "
        "the sum of the product's feature embeddings, so a product nobody has bought yet gets "
        "neighbours through its category and price band). `reason`: `bought_alike` when both "
        "products have buyers, `similar_attributes` otherwise. The product itself is left out.",
        responses=error_responses(*KEYED, 404, 503),
        sync_to_thread=False,
        opt=lists("category"),
    )
    def similar(
        self,
        model: Injected[ActiveModel],
        product_id: FromPath[str],
        limit: Annotated[int, Parameter(ge=1, le=100, description="items, 1..100")] = 10,
        category: CategoryFilter = None,
        in_stock: StockFilter = None,
    ) -> SimilarProducts:
        check_id("product_id", product_id)
        query = Query(limit=limit, categories=tuple(category or ()), in_stock=in_stock)
        return similar_products(model.loaded, product_id, query)
