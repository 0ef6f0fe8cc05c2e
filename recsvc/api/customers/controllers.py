"""`GET /v1/customers/{customer_id}`: one customer's profile as of the active model version;
`DELETE` on the same path erases the customer (scope `privacy`, see `recsvc.api.privacy`).

Segments, primary segment, NPS history summary, RFM and churn risk, plus every column of the
customer table, with the live NPS answers taken since the version applied.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get

from recsvc.api.auth import SECURITY, RequireScope, presented_key
from recsvc.api.customers.schemas import CustomerProfile
from recsvc.api.customers.services import profile_of
from recsvc.api.dependencies import Injected
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.params import CustomerId, check_id
from recsvc.api.privacy.schemas import ErasureReceipt
from recsvc.api.privacy.services import erase_customer_request
from recsvc.service.runtime import ModelHolder
from recsvc.service.webhooks.destinations import Webhooks
from recsvc.store.base import Store
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

    @delete(
        "/{customer_id:str}",
        summary="Erase a customer everywhere (GDPR art. 17): 202 once the erasure is durable",
        description="Idempotent: repeat it after any failure. The customer is masked at once on "
        "every worker (unknown to recommendations and offers, absent from exports and "
        "summaries), their live and archived records are removed, and later training runs drop "
        "their rows from the shop's files. Data dated after the erasure is a new relationship.",
        status_code=202,
        responses=error_responses(*KEYED, 503),
        sync_to_thread=True,
        before_request=RequireScope("privacy"),  # not the controller's `export`
        tags=["privacy"],
    )
    def erase(
        self,
        request: Request[Any, Any, Any],
        store: Injected[Store],
        holder: Injected[ModelHolder],
        webhooks: Injected[Webhooks],
        customer_id: CustomerId,
    ) -> ErasureReceipt:
        check_id("customer_id", customer_id)
        return erase_customer_request(store, holder, webhooks, customer_id, presented_key(request))
