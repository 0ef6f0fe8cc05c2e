"""Listing and activating stored model versions; an activation is picked up by this worker at once
and by every other worker at its next poll of the store."""

from __future__ import annotations

from recsvc.api.versions.schemas import Activation, ModelList, ModelVersion
from recsvc.errors import NotFoundError, shown
from recsvc.service.runtime import ModelHolder
from recsvc.store.base import Store

MAX_VERSION_LENGTH = 200


def list_models(store: Store, holder: ModelHolder) -> ModelList:
    infos = store.list_versions()
    serving = holder.current.version if holder.current is not None else None
    active = next((info.version for info in infos if info.active), None)
    return ModelList(
        active=active,
        serving=serving,
        versions=[
            ModelVersion(
                version=info.version,
                created_at=info.created_at,
                active=info.active,
                serving=info.version == serving,
                ndcg=info.ndcg,
            )
            for info in infos
        ],
    )


def activate(store: Store, holder: ModelHolder, version: str) -> Activation:
    """Point the store at `version` (NotFoundError when it is not stored), then load it here."""
    if not version or len(version) > MAX_VERSION_LENGTH or not version.isprintable():
        raise NotFoundError(f"no model version {shown(version)}")
    previous = store.active_version()
    store.activate(version)  # opens it as a worker would first: ArtifactError (409) naming the file
    holder.refresh(force=True)
    serving = holder.current.version if holder.current is not None else None
    return Activation(active=version, previous=previous, serving=serving)
