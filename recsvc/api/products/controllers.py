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
        description="First what the product's buyers also bought, recency-weighted (`reason`: "
        "`bought_alike`, `score` 1 plus the share of its buyers who also bought it), then the "
        "nearest neighbours by cosine similarity of the model's item vectors (`similar_attributes`, "
        "`score` 0..1; each vector is the sum of the product's feature embeddings, so a product "
        "nobody has bought yet gets neighbours through its category and price band). The product "
        "itself is left out.",
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
