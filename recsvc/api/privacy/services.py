"""The privacy endpoints' logic between HTTP and `recsvc.service.privacy`."""

from __future__ import annotations

from recsvc.api.privacy.schemas import ErasureReceipt
from recsvc.domain import times
from recsvc.domain.privacy import key_fingerprint
from recsvc.service.privacy import erase_customer
from recsvc.service.runtime import ModelHolder
from recsvc.service.webhooks.destinations import Webhooks
from recsvc.store.base import Store


def erase_customer_request(
    store: Store,
    holder: ModelHolder,
    webhooks: Webhooks,
    customer_id: str,
    api_key: str | None,
) -> ErasureReceipt:
    """Erase the customer, recording which key asked (its fingerprint, never the key), and tell
    the webhook destinations."""
    done = erase_customer(
        store,
        customer_id,
        requested_by=key_fingerprint(api_key),
        now=times.now(),
        destinations=webhooks.destinations,
    )
    holder.suppression()  # this worker masks them from its next request on
    return ErasureReceipt(
        erasure_id=done.erasure_id,
        customer_hash=done.customer_hash,
        erased_at=done.erased_at,
        state=done.state,
        removed=done.removed,
    )
