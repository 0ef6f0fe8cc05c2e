"""Maps every error to a JSON body `{error, detail}` with the right status, in one place."""

from __future__ import annotations

import logging

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from recsvc.errors import (
    ArtifactError,
    InvalidRequest,
    NotFoundError,
    RecsvcError,
    StoreUnavailable,
    UnsupportedMediaType,
)

log = logging.getLogger("recsvc.api")
RETRY_AFTER_SECONDS = 5


class ErrorBody(msgspec.Struct, frozen=True):
    error: str  # a short machine-readable slug: bad_request, unauthorized, not_found, ...
    detail: str  # what was wrong, naming the parameter or field


_DESCRIPTIONS = {
    400: "A parameter or the body is wrong; `detail` names it",
    401: "No API key, or an unknown one",
    403: "The API key lacks this route's scope",
    404: "Not found; `detail` names what",
    409: "The stored version does not open; `detail` names the file",
    413: "The body is larger than RECSVC_MAX_BODY_BYTES",
    415: "The body is not announced as application/json",
    503: "No model version is active yet, or the store cannot take the request; retry later",
}
# Every route behind an API key can answer these.
KEYED = (400, 401, 403)


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """The error replies a route documents in OpenAPI, each an `ErrorBody`."""
    return {
        status: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS[status])
        for status in statuses
    }


# The one mapping of the error hierarchy (recsvc.errors) to HTTP. The most specific class wins;
# a RecsvcError not listed (ConfigError, DataContractError, ...) is not the client's doing: 500.
STATUS: dict[type[RecsvcError], int] = {
    InvalidRequest: HTTP_400_BAD_REQUEST,
    NotFoundError: HTTP_404_NOT_FOUND,
    UnsupportedMediaType: HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    # A stored version that does not open (e.g. asked to activate it): the request is fine, the
    # version is not.
    ArtifactError: HTTP_409_CONFLICT,
    StoreUnavailable: HTTP_503_SERVICE_UNAVAILABLE,
}


def status_of(exc: RecsvcError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return HTTP_500_INTERNAL_SERVER_ERROR


def _slug(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "payload_too_large",
        415: "unsupported_media_type",
        429: "too_many_requests",
        500: "internal_error",
        503: "unavailable",
    }.get(status, "error")


def _describe(extra: object) -> str:
    """Litestar's validation details as "param: problem" pairs, without internal reprs."""
    if isinstance(extra, list):
        parts = []
        for item in extra:
            if isinstance(item, dict) and "message" in item:
                key = item.get("key")
                parts.append(f"{key}: {item['message']}" if key else str(item["message"]))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(extra)


def handle_http(_: Request, exc: HTTPException) -> Response[ErrorBody]:
    extra = getattr(exc, "extra", None)
    if extra and str(exc.detail).startswith("Validation failed"):
        detail = f"invalid request: {_describe(extra)}"
    elif extra:
        detail = f"{exc.detail}: {_describe(extra)}"
    else:
        detail = str(exc.detail)
    return Response(
        ErrorBody(_slug(exc.status_code), detail),
        status_code=exc.status_code,
        headers=exc.headers,  # e.g. Allow on a 405, WWW-Authenticate on a 401
    )


def handle_domain(request: Request, exc: RecsvcError) -> Response[ErrorBody]:
    status = status_of(exc)
    if status == HTTP_503_SERVICE_UNAVAILABLE:
        # Refuse rather than pretend: nothing was stored. The details (server address) go to the
        # log and to readiness/metrics, not to the client.
        holder = request.app.state.get("holder")
        if holder is not None:
            holder.store_unavailable(exc)
        log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
        return Response(
            ErrorBody("unavailable", "the store cannot be reached right now: retry later"),
            status_code=status,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if status == HTTP_500_INTERNAL_SERVER_ERROR:
        # The operator's or the data's problem, not the client's: logged whole, told nothing.
        log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
        return Response(ErrorBody("internal_error", "unexpected server error"), status_code=status)
    return Response(ErrorBody(_slug(status), str(exc)), status_code=status)


def handle_unexpected(request: Request, exc: Exception) -> Response[ErrorBody]:
    # A bug, not a client error: log it with the traceback, tell the client nothing internal.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(
        ErrorBody("internal_error", "unexpected server error"),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


EXCEPTION_HANDLERS = {
    HTTPException: handle_http,
    RecsvcError: handle_domain,
    Exception: handle_unexpected,
}
