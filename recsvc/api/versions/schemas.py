"""What the model-version endpoints answer."""

from __future__ import annotations

import msgspec


class ModelVersion(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    created_at: str
    active: bool  # the store's active version: what every worker serves after its next poll
    serving: bool  # the version this worker answers from right now
    ndcg: float | None  # NDCG@k on the training run's hold-out


class ModelList(msgspec.Struct, frozen=True, kw_only=True):
    active: str | None
    serving: str | None
    versions: list[ModelVersion]  # oldest first


class Activation(msgspec.Struct, frozen=True, kw_only=True):
    active: str
    previous: str | None
    serving: str | None  # this worker; the others follow within RECSVC_RELOAD_SECONDS
