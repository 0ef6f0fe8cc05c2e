"""`GET /v1/customers/{customer_id}`: one customer's profile as of the active model version.

Segments, primary segment, NPS history summary, RFM and churn risk, plus every column of the
customer table. When the app holds a `profile_overlay(model, customer_id, record) -> record` in its state
(live NPS answers taken since the nightly run), the stored record passes through it first.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.customer_service import active_model
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.params import CustomerId, check_id
from recsvc.errors import NotFoundError, shown
from recsvc.version.profiles import CustomerProfile, ProfileOverlay, customer_profile


class CustomerProfileController(Controller):
    path = "/v1/customers"
    tags = ["customers"]
    before_request = RequireScope("export")
    security = SECURITY

    @get(
        "/{customer_id:str}",
        summary="One customer's profile: segments, NPS history, RFM, churn risk",
        responses=error_responses(*KEYED, 404, 503),
        sync_to_thread=False,
    )
    def profile(self, request: Request[Any, Any, Any], customer_id: CustomerId) -> CustomerProfile:
        check_id("customer_id", customer_id)
        model = active_model(request.app.state.holder)
        index = model.profiles.index_of(customer_id)
        if index is None:
            raise NotFoundError(
                f"no customer {shown(customer_id)} in model version {model.version}"
            )
        record = model.profiles.record(index)
        overlay: ProfileOverlay | None = request.app.state.get("profile_overlay")
        if overlay is not None:
            record = overlay(model, customer_id, record)
        return customer_profile(record, model.version)
