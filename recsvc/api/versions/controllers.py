"""`GET /v1/models` and `POST /v1/models/{version}/activate` (rollback)."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.dependencies import Injected
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.versions.schemas import Activation, ModelList
from recsvc.api.versions.services import activate, list_models
from recsvc.service.runtime import ModelHolder
from recsvc.store.base import Store


class ModelVersionController(Controller):
    path = "/v1/models"
    tags = ["models"]
    before_request = RequireScope("admin")
    security = SECURITY

    @get(
        "/",
        summary="Stored model versions: created_at, NDCG, which one is active and served",
        responses=error_responses(*KEYED, 503),
        sync_to_thread=True,
    )
    def list_versions(self, store: Injected[Store], holder: Injected[ModelHolder]) -> ModelList:
        return list_models(store, holder)

    @post(
        "/{version:str}/activate",
        summary="Make a stored version the active one (rollback); 404 for an unknown version",
        responses=error_responses(*KEYED, 404, 409, 503),
        status_code=HTTP_200_OK,
        # Checks every file's SHA-256 and opens the version before answering: off the event loop.
        sync_to_thread=True,
    )
    def activate_version(
        self, store: Injected[Store], holder: Injected[ModelHolder], version: FromPath[str]
    ) -> Activation:
        return activate(store, holder, version)
