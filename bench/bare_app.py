"""The baseline for bench_service.py: a bare Litestar app, no middleware, no hooks, no
dependencies, one route returning a constant 10-item msgspec body shaped like a recommendations
response. What the fastest ASGI server can do with Litestar on this machine, before any of our code.

    granian --interface asgi --factory bench.bare_app:create_bare_app
"""

from __future__ import annotations

import msgspec
from litestar import Litestar, get


class BareItem(msgspec.Struct):
    product_id: str
    score: float
    category: str
    reason: str


class BareResponse(msgspec.Struct):
    customer_id: str
    model_version: str
    segment: str | None
    cold_start: bool
    items: list[BareItem]


ITEMS = [
    BareItem(product_id=f"P{n:06d}", score=1.0 - n / 100, category="home_garden", reason="popular")
    for n in range(1, 11)
]


@get("/v1/customers/{customer_id:str}/recommendations", sync_to_thread=False)
def bare(customer_id: str) -> BareResponse:
    return BareResponse(
        customer_id=customer_id,
        model_version="bench",
        segment=None,
        cold_start=False,
        items=ITEMS,
    )


@get("/health/ready", sync_to_thread=False)
def ready() -> dict[str, str]:
    return {"status": "ready"}


def create_bare_app() -> Litestar:
    return Litestar(route_handlers=[bare, ready], openapi_config=None)
