"""`GET /v1/models` and `POST /v1/models/{version}/activate` (rollback)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.customer_service import state_of
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.versions.schemas import Activation, ModelList
from recsvc.api.versions.services import activate, list_models


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
    def list_versions(self, request: Request[Any, Any, Any]) -> ModelList:
        holder, store = state_of(request)
        return list_models(store, holder)

    @post(
        "/{version:str}/activate",
        summary="Make a stored version the active one (rollback); 404 for an unknown version",
        responses=error_responses(*KEYED, 404, 409, 503),
        status_code=HTTP_200_OK,
        # Loads the version (memory-mapped) before answering: keep it off the event loop.
        sync_to_thread=True,
    )
    def activate_version(
        self, request: Request[Any, Any, Any], version: FromPath[str]
    ) -> Activation:
        holder, store = state_of(request)
        return activate(store, holder, version)
