"""The webhooks area's replies."""

from __future__ import annotations

import msgspec

from recsvc.service.webhooks.status import DestinationStatus


class WebhookList(msgspec.Struct, frozen=True):
    destinations: list[DestinationStatus]
