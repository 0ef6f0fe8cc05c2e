"""The marketer console's routes under `/console`: sign-in, the pages, the segment and
experiment-assignment exports and the admin's activate/rollback. Server-rendered (Jinja2 templates beside this module), no scripts.

A before-request hook (`ConsoleGate`) runs on every route but the sign-in: no session sends the
browser to the sign-in page, a POST without the session's CSRF token is refused, and an admin
action without the `admin` scope is refused whatever the page showed. The `/v1` API has none of
this: it keeps its API keys, and the storefront's routes pay nothing for the console.
"""

from __future__ import annotations

import secrets
import urllib.parse
from typing import Annotated, Any, Final

from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.params import Body, FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Stream, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from recsvc import charts
from recsvc.api.auth import key_digest, scopes_of
from recsvc.api.console import pages
from recsvc.api.console.sessions import (
    CONSOLE_PATH,
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SIGN_IN_SECONDS,
    ConsoleSession,
    Sessions,
    cookie,
    ended,
    same_token,
)
from recsvc.api.dependencies import Injected
from recsvc.api.errors import status_of
from recsvc.api.experiments.services import assignment_stream
from recsvc.api.segments.services import member_stream
from recsvc.api.versions.services import activate
from recsvc.domain.offers import OfferCatalog
from recsvc.errors import NotFoundError, RecsvcError
from recsvc.service.exports.browse import PAGE_SIZES, member_page, parse_member_query
from recsvc.service.runtime import ModelHolder
from recsvc.store.base import Store
from recsvc.version.opened import ActiveModel

NAV: Final = (
    ("overview", "Overview", ""),
    ("segments", "Segments", "/segments"),
    ("customers", "Customers", "/customers"),
    ("comments", "Comments", "/comments"),
    ("offers", "Offers", "/offers"),
    ("experiments", "Experiments", "/experiments"),
    ("models", "Models", "/models"),
)


class Viewer:
    """Who is looking: their session and their key's scopes now."""

    def __init__(self, sid: str, session: ConsoleSession, scopes: frozenset[str]) -> None:
        self.sid = sid
        self.session = session
        self.scopes = scopes

    @property
    def csrf(self) -> str:
        return self.session.csrf

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


def _sessions(request: Request[Any, Any, Any]) -> Sessions:
    sessions: Sessions = request.app.state.console_sessions
    return sessions


def _next_target(value: str | None) -> str:
    # Only a path inside the console: never an open redirect.
    if value and value.startswith(CONSOLE_PATH) and not value.startswith("//"):
        return value
    return CONSOLE_PATH


def page(
    request: Request[Any, Any, Any],
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> Template:
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    holder: ModelHolder = request.app.state.holder
    current = holder.current
    return Template(
        template_name=template,
        context={
            "viewer": viewer,
            "nav": NAV,
            "base": CONSOLE_PATH,
            "csrf_field": CSRF_FIELD,
            "serving": current.version if current is not None else None,
            **context,
        },
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


class ConsoleGate:
    """The console's before-request hook (see the module docstring); `admin` for admin actions."""

    def __init__(self, *, admin: bool = False) -> None:
        self.admin = admin

    async def __call__(self, request: Request[Any, Any, Any]) -> Response[Any] | None:
        sessions = _sessions(request)
        sid = request.cookies.get(SESSION_COOKIE)
        session = await sessions.get(sid)
        scopes = sessions.scopes(session) if session is not None else None
        if sid is None or session is None or scopes is None or "export" not in scopes:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            where = f"{CONSOLE_PATH}/sign-in"
            if request.method == "GET":
                where += "?" + urllib.parse.urlencode({"next": target})
            return ended(Redirect(where, status_code=HTTP_303_SEE_OTHER))
        viewer = Viewer(sid, session, scopes)
        request.state.viewer = viewer
        if request.method == "POST":
            form = await request.form()
            if not same_token(session.csrf, form.get(CSRF_FIELD)):
                return _error_page(
                    request,
                    403,
                    "This form has expired or did not come from the console. "
                    "Reload the page and try again.",
                )
        if self.admin and not viewer.is_admin:
            return _error_page(request, 403, "This action needs an API key with the admin scope.")
        return None


def _error_page(request: Request[Any, Any, Any], status: int, message: str) -> Response[Any]:
    return page(request, "error.html.j2", status_code=status, status=status, message=message)


def console_errors(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors on console pages as a page with the API's message (a JSON body is for programs)."""
    if isinstance(exc, RecsvcError):
        status, message = status_of(exc), str(exc)
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
    else:
        raise exc
    if status >= 500 and status != 503:
        message = "unexpected server error"
    return _error_page(request, status, message)


CONSOLE_ERRORS: dict[int | type[Exception], Any] = {
    RecsvcError: console_errors,
    HTTPException: console_errors,
}


def sign_in_page(
    request: Request[Any, Any, Any], next_path: str, status: int = 200, message: str | None = None
) -> Template:
    """The sign-in form with a fresh double-submit token (in the form and in a cookie)."""
    token = secrets.token_urlsafe(32)
    template = page(
        request,
        "sign_in.html.j2",
        status_code=status,
        token=token,
        next=next_path,
        message=message,
        development=not request.app.state.settings.api_keys,
    )
    template.cookies.append(cookie(request, SIGN_IN_COOKIE, token, SIGN_IN_SECONDS))
    return template


class SignInController(Controller):
    path = f"{CONSOLE_PATH}/sign-in"
    include_in_schema = False
    exception_handlers = CONSOLE_ERRORS

    @get("/", sync_to_thread=False)
    def form(
        self,
        request: Request[Any, Any, Any],
        next_path: Annotated[str | None, QueryParameter(name="next")] = None,
    ) -> Template:
        return sign_in_page(request, _next_target(next_path))

    @post("/")
    async def sign_in(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        expected = request.cookies.get(SIGN_IN_COOKIE, "")
        next_path = _next_target(data.get("next"))
        settings = request.app.state.settings
        if not expected or not same_token(expected, data.get(CSRF_FIELD)):
            return sign_in_page(request, next_path, 403, "The sign-in form expired. Try again.")
        key = (data.get("api_key") or "").strip()
        if settings.api_keys:
            scopes = scopes_of(key, settings.api_keys) if key else None
            if scopes is None:
                return sign_in_page(request, next_path, 401, "Unknown API key.")
            if "export" not in scopes:
                return sign_in_page(
                    request,
                    next_path,
                    403,
                    "This API key lacks the export scope the console needs.",
                )
            digest = key_digest(key)
        else:
            digest = ""  # development mode: every scope is open, as on the API
        sessions = _sessions(request)
        await sessions.delete(request.cookies.get(SESSION_COOKIE))
        sid, _ = await sessions.create(digest)
        response: Response[Any] = Redirect(next_path, status_code=HTTP_303_SEE_OTHER)
        response.set_cookie(cookie(request, SESSION_COOKIE, sid, sessions.lifetime))
        response.delete_cookie(SIGN_IN_COOKIE, path=CONSOLE_PATH)
        return response


def _experiment_helpers() -> dict[str, Any]:
    """How the experiment pages write a lift, a p-value, a mean: as the NPS report does."""
    return {
        "lift_text": charts.lift_text,
        "p_text": charts.p_text,
        "in_lift_unit": charts.in_lift_unit,
        "lift_unit": charts.lift_unit,
        "primary_outcome": charts.primary_outcome,
        "nps_outcome": pages.nps_outcome,
        "mean_text": pages.mean_text,
        "relative_text": pages.relative_text,
        "status_words": pages.STATUS_WORDS,
        "srm_broken": pages.SRM_BROKEN,
    }


class ConsoleController(Controller):
    path = CONSOLE_PATH
    include_in_schema = False
    before_request = ConsoleGate()
    exception_handlers = CONSOLE_ERRORS

    @post("/sign-out")
    async def sign_out(self, request: Request[Any, Any, Any]) -> Response[Any]:
        viewer: Viewer = request.state.viewer
        await _sessions(request).delete(viewer.sid)
        return ended(Redirect(f"{CONSOLE_PATH}/sign-in", status_code=HTTP_303_SEE_OTHER))

    @get("/", sync_to_thread=True)
    def overview(
        self, request: Request[Any, Any, Any], holder: Injected[ModelHolder], store: Injected[Store]
    ) -> Template:
        model = holder.current
        if model is None:
            return page(request, "no_model.html.j2", active="overview")
        return page(
            request,
            "overview.html.j2",
            active="overview",
            view=pages.overview(model, holder, store),
            model=model,
        )

    @get("/segments", sync_to_thread=True)
    def segments(
        self,
        request: Request[Any, Any, Any],
        holder: Injected[ModelHolder],
        model: Injected[ActiveModel],
        store: Injected[Store],
    ) -> Template:
        return page(
            request,
            "segments.html.j2",
            active="segments",
            view=pages.segments_page(model, holder, store),
            model=model,
        )

    @get("/segments/{name:str}", sync_to_thread=True)
    def segment(
        self,
        request: Request[Any, Any, Any],
        holder: Injected[ModelHolder],
        model: Injected[ActiveModel],
        store: Injected[Store],
        name: FromPath[str],
        q: FromQuery[str | None] = None,
        nps_category: FromQuery[str | None] = None,
        sort: FromQuery[str | None] = None,
        order: FromQuery[str | None] = None,
        page_number: Annotated[str | None, QueryParameter(name="page")] = None,
        per_page: FromQuery[str | None] = None,
    ) -> Template:
        query = parse_member_query(
            contains=q,
            nps_category=nps_category,
            sort=sort,
            order=order,
            page=page_number,
            per_page=per_page,
        )
        info = model.profiles.segment(name)
        listing = member_page(model.profiles, name, holder.masked_rows(model), query)
        return page(
            request,
            "segment.html.j2",
            active="segments",
            info=info,
            listing=listing,
            page_sizes=PAGE_SIZES,
            versions=pages.other_versions(store, model),
            model=model,
        )

    @get("/segments/{name:str}/export", sync_to_thread=True)
    def export(
        self,
        store: Injected[Store],
        holder: Injected[ModelHolder],
        model: Injected[ActiveModel],
        name: FromPath[str],
        export_format: Annotated[str | None, QueryParameter(name="format")] = None,
        since_version: FromQuery[str | None] = None,
    ) -> Stream:
        # The API's export (GET /v1/segments/{name}/members): same plan, same bytes.
        return member_stream(
            store,
            holder,
            model,
            name,
            export_format=export_format,
            fields=None,
            since_version=since_version or None,
        )

    @get("/customers", sync_to_thread=True)
    def customers(
        self,
        request: Request[Any, Any, Any],
        holder: Injected[ModelHolder],
        model: Injected[ActiveModel],
        catalog: Injected[OfferCatalog],
        customer_id: FromQuery[str | None] = None,
    ) -> Template:
        wanted = (customer_id or "").strip()
        view, missing = None, None
        if wanted:
            try:
                view = pages.customer_page(model, holder, catalog, wanted)
            except NotFoundError as exc:
                missing = str(exc)
        return page(
            request,
            "customer.html.j2",
            active="customers",
            customer_id=wanted,
            view=view,
            missing=missing,
            model=model,
        )

    @get("/comments", sync_to_thread=True)
    def comments(
        self,
        request: Request[Any, Any, Any],
        holder: Injected[ModelHolder],
        model: Injected[ActiveModel],
        segment: FromQuery[str | None] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
    ) -> Template:
        # The API's themes (GET /v1/nps/themes); an empty field of the form means "any".
        view = pages.comments_page(model, holder, segment or None, since or None, until or None)
        return page(
            request,
            "comments.html.j2",
            active="comments",
            view=view,
            segments=model.rules.names,
            chosen={"segment": segment or "", "since": since or "", "until": until or ""},
        )

    @get("/offers", sync_to_thread=False)
    def offers(self, request: Request[Any, Any, Any], catalog: Injected[OfferCatalog]) -> Template:
        return page(request, "offers.html.j2", active="offers", catalog=catalog)

    @get("/experiments", sync_to_thread=True)
    def experiments(
        self, request: Request[Any, Any, Any], model: Injected[ActiveModel]
    ) -> Template:
        return page(
            request,
            "experiments.html.j2",
            active="experiments",
            view=pages.experiments_page(model),
            model=model,
            **_experiment_helpers(),
        )

    @get("/experiments/{experiment:str}", sync_to_thread=True)
    def experiment(
        self,
        request: Request[Any, Any, Any],
        model: Injected[ActiveModel],
        experiment: FromPath[str],
    ) -> Template:
        return page(
            request,
            "experiment.html.j2",
            active="experiments",
            view=pages.experiment_page(model, experiment),
            model=model,
            **_experiment_helpers(),
        )

    @get("/experiments/{experiment:str}/assignments", sync_to_thread=True)
    def experiment_assignments(
        self,
        holder: Injected[ModelHolder],
        model: Injected[ActiveModel],
        experiment: FromPath[str],
        export_format: Annotated[str | None, QueryParameter(name="format")] = None,
    ) -> Stream:
        # The API's export (GET /v1/experiments/{id}/assignments): same rows, same bytes.
        return assignment_stream(holder, model, experiment, export_format)

    @get("/models", sync_to_thread=True)
    def models(
        self,
        request: Request[Any, Any, Any],
        store: Injected[Store],
        holder: Injected[ModelHolder],
        activated: FromQuery[str | None] = None,
    ) -> Template:
        view = pages.models_page(store, holder)
        return page(
            request,
            "models.html.j2",
            active="models",
            view=view,
            ndcg_rows=pages.ndcg_rows,
            step_bars=pages.step_bars,
            search_bars=pages.search_bars,
            activated=activated,
        )

    @post(
        "/models/{version:str}/activate",
        sync_to_thread=True,
        before_request=ConsoleGate(admin=True),
    )
    def activate_version(
        self, store: Injected[Store], holder: Injected[ModelHolder], version: FromPath[str]
    ) -> Redirect:
        # The API's activation (POST /v1/models/{version}/activate).
        done = activate(store, holder, version)
        query = urllib.parse.urlencode({"activated": done.active})
        return Redirect(f"{CONSOLE_PATH}/models?{query}", status_code=HTTP_303_SEE_OTHER)
