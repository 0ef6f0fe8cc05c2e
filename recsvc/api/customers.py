"""`GET /v1/customers/{customer_id}`: one customer's profile as of the active model version.

Segments, primary segment, NPS history summary, RFM and churn risk, plus every column of the
customer table. When the app holds a `profile_overlay(model, customer_id, record) -> record` in its state
(live NPS answers taken since the nightly run), the stored record passes through it first.
"""

from __future__ import annotations

from typing import Any, Protocol

from litestar import Controller, Request, get
from litestar.exceptions import ServiceUnavailableException
from litestar.params import FromPath

from recsvc.api.auth import SECURITY, requires
from recsvc.errors import NotFoundError
from recsvc.profiles import CustomerProfile, ProfileOverlay, Profiles, customer_profile


class ServingModel(Protocol):
    """What these routes need of the active model: its version name and its profile tables."""

    @property
    def version(self) -> str: ...

    @property
    def profiles(self) -> Profiles: ...


def serving_model(request: Request[Any, Any, Any]) -> ServingModel:
    """The active model (`state.holder.current`, or `state.model`); 503 while there is none."""
    state = request.app.state
    holder = state.get("holder")
    model = holder.current if holder is not None else state.get("model")
    if model is None:
        raise ServiceUnavailableException(
            "no model version is active yet: run the training job first"
        )
    if getattr(model, "profiles", None) is None:
        raise ServiceUnavailableException(
            f"model version {model.version} has no profile tables: retrain to add them"
        )
    return model


class CustomerProfileController(Controller):
    path = "/v1/customers"
    tags = ["customers"]
    guards = [requires("export")]
    security = SECURITY

    @get(
        "/{customer_id:str}",
        summary="One customer's profile: segments, NPS history, RFM, churn risk",
        sync_to_thread=False,
    )
    def profile(
        self, request: Request[Any, Any, Any], customer_id: FromPath[str]
    ) -> CustomerProfile:
        model = serving_model(request)
        index = model.profiles.index_of(customer_id)
        if index is None:
            raise NotFoundError(f"no customer {customer_id!r} in model version {model.version}")
        record = model.profiles.record(index)
        overlay: ProfileOverlay | None = request.app.state.get("profile_overlay")
        if overlay is not None:
            record = overlay(model, customer_id, record)
        return customer_profile(record, model.version)
