"""Privacy requests (scope `privacy`): `GET /v1/customers/{customer_id}/data` returns everything
held about a customer; the erasure log for admins (`GET /v1/privacy/erasures`). The erasure itself,
`DELETE /v1/customers/{customer_id}`, shares its path with the profile, so it is a handler of the
customers' controller, with its own scope (`recsvc.api.privacy.services.erase_customer_request`). See `recsvc.service.privacy`."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.dependencies import Injected
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.params import CustomerId, check_id
from recsvc.api.privacy.schemas import ErasureLogPage
from recsvc.domain import times
from recsvc.service.privacy import CustomerData, customer_data
from recsvc.service.runtime import ModelHolder
from recsvc.store.base import Store


class PrivacyController(Controller):
    path = "/v1/customers"
    tags = ["privacy"]
    before_request = RequireScope("privacy")
    security = SECURITY

    @get(
        "/{customer_id:str}/data",
        summary="Everything held about a customer (GDPR art. 15), as one JSON document",
        responses=error_responses(*KEYED, 503),
        # Reads the archives and every stored version's profiles: off the event loop.
        sync_to_thread=True,
    )
    def data(
        self, store: Injected[Store], holder: Injected[ModelHolder], customer_id: CustomerId
    ) -> CustomerData:
        check_id("customer_id", customer_id)
        return customer_data(
            store, holder.current, customer_id, holder.live(customer_id), times.now()
        )


class ErasureLogController(Controller):
    path = "/v1/privacy"
    tags = ["privacy"]
    before_request = RequireScope("admin")
    security = SECURITY

    @get(
        "/erasures",
        summary="The erasure log, newest first: customer hashes, times, the key that asked, what "
        "was removed (no personal data)",
        responses=error_responses(*KEYED, 503),
        sync_to_thread=True,
    )
    def erasures(
        self,
        store: Injected[Store],
        limit: Annotated[int, Parameter(ge=1, le=10_000, description="entries to return")] = 100,
    ) -> ErasureLogPage:
        entries = store.erasures.entries()
        return ErasureLogPage(entries=entries[::-1][:limit], total=len(entries))
