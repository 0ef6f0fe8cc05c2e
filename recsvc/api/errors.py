"""Maps every error to a JSON body `{error, detail}` with the right status, in one place."""

from __future__ import annotations

import logging

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_500_INTERNAL_SERVER_ERROR,
)

from recsvc.errors import ConfigError, NotFoundError, RecsvcError

log = logging.getLogger("recsvc.api")


class ErrorBody(msgspec.Struct, frozen=True):
    error: str
    detail: str


_STATUS: dict[type[RecsvcError], int] = {
    NotFoundError: HTTP_404_NOT_FOUND,
    ConfigError: HTTP_400_BAD_REQUEST,
}


def _slug(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        503: "unavailable",
    }.get(status, "error")


def handle_http(_: Request, exc: HTTPException) -> Response[ErrorBody]:
    detail = exc.detail
    extra = getattr(exc, "extra", None)
    if extra:
        detail = f"{detail}: {extra}"
    return Response(ErrorBody(_slug(exc.status_code), str(detail)), status_code=exc.status_code)


def handle_domain(_: Request, exc: RecsvcError) -> Response[ErrorBody]:
    status = next(
        (code for cls, code in _STATUS.items() if isinstance(exc, cls)), HTTP_400_BAD_REQUEST
    )
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
