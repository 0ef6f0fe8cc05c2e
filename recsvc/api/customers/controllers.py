"""`GET /v1/customers/{customer_id}`: one customer's profile as of the active model version.

Segments, primary segment, NPS history summary, RFM and churn risk, plus every column of the
customer table, with the live NPS answers taken since the version applied.
"""

from __future__ import annotations

from litestar import Controller, get

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.customers.schemas import CustomerProfile
from recsvc.api.customers.services import profile_of
from recsvc.api.dependencies import Injected
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.params import CustomerId, check_id
from recsvc.service.runtime import ModelHolder
from recsvc.version.opened import ActiveModel


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
    def profile(
        self, holder: Injected[ModelHolder], model: Injected[ActiveModel], customer_id: CustomerId
    ) -> CustomerProfile:
        check_id("customer_id", customer_id)
        return profile_of(model, customer_id, holder.live(customer_id))
