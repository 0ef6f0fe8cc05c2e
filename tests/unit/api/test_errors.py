"""The one mapping of the error hierarchy to HTTP: the client's mistakes are 4xx, a damaged version
a conflict, an unreachable store 503, and anything the client did not cause never a 4xx."""

from __future__ import annotations

import pytest

from recsvc.api.errors import STATUS, status_of
from recsvc.errors import (
    ArtifactError,
    ClientError,
    ConfigError,
    DataContractError,
    InvalidRequest,
    LockHeld,
    LockLost,
    NotFoundError,
    RecsvcError,
    StoreUnavailable,
    UnsupportedMediaType,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidRequest("limit: must be 1..100"), 400),
        (NotFoundError("no customer 'x'"), 404),
        (UnsupportedMediaType("Content-Type must be application/json"), 415),
        (ArtifactError("v1/profiles.json: content differs from the manifest"), 409),
        (StoreUnavailable("Redis unreachable"), 503),
        (ConfigError("invalid RECSVC_PORT"), 500),
        (DataContractError("orders.csv: missing column"), 500),
        (LockHeld("another run"), 500),
        (LockLost("lost"), 500),
        (RecsvcError("something of ours"), 500),
    ],
)
def test_each_error_maps_to_its_status(error: RecsvcError, status: int) -> None:
    assert status_of(error) == status


def test_only_client_errors_are_4xx() -> None:
    """Every class mapped to a 4xx but the conflict is the client's own mistake."""
    for cls, status in STATUS.items():
        if 400 <= status < 500 and status != 409:
            assert issubclass(cls, ClientError), cls


def test_a_subclass_takes_its_parents_status() -> None:
    class NoSuchSegment(NotFoundError):
        pass

    assert status_of(NoSuchSegment("no segment 'x'")) == 404
