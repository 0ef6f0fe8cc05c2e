"""`GET /metrics`: Prometheus text with request counts and latency histograms per route template
(never a customer id), the served model version, store health and reloads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from recsvc.store.base import Store
from tests.api_support import (
    API_KEYS,
    KEYS,
    Artifact,
    auth,
    client_for,
    published_store,
)

RECS = "/v1/customers/{customer_id}/recommendations"


@pytest.fixture(scope="module")
def store(artifact: Artifact, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with published_store("file", artifact, tmp_path_factory.mktemp("metrics")) as opened:
        yield opened


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[TestClient[Litestar]]:
    with client_for(store, api_keys=API_KEYS) as test_client:
        yield test_client


def scrape(client: TestClient[Litestar]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _requests(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], path: str, status: str
) -> float:
    return value(
        samples,
        "recsvc_requests_total",
        app_name="recsvc",
        method="GET",
        path=path,
        status_code=status,
    )


def test_requests_are_counted_and_timed_per_route_template(client: TestClient[Litestar]) -> None:
    before = scrape(client)
    for customer in ("C00000001", "C00000002", "SOMEONE-NEW"):
        assert (
            client.get(
                f"/v1/customers/{customer}/recommendations", headers=auth("recommend")
            ).status_code
            == 200
        )
    assert client.get("/v1/customers/C00000001/recommendations").status_code == 401
    after = scrape(client)
    assert _requests(after, RECS, "200") - _requests(before, RECS, "200") == 3
    assert _requests(after, RECS, "401") - _requests(before, RECS, "401") == 1
    count = value(
        after,
        "recsvc_request_duration_seconds_count",
        app_name="recsvc",
        method="GET",
        path=RECS,
        status_code="200",
    )
    assert count >= 3
    buckets = [key for key in after if key[0] == "recsvc_request_duration_seconds_bucket"]
    assert any(dict(labels).get("path") == RECS for _, labels in buckets)
    paths = {dict(labels).get("path") for _, labels in after}
    assert not any(p and ("C00000001" in p or "SOMEONE-NEW" in p) for p in paths)
    assert "/metrics" not in paths  # the scrape itself is not a request metric


def test_the_served_version_store_health_and_reloads_are_reported(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    samples = scrape(client)
    assert value(samples, "recsvc_model_info", version=artifact.version) == 1
    assert value(samples, "recsvc_model_created_timestamp_seconds") > 1.6e9
    assert value(samples, "recsvc_store_degraded") == 0
    assert value(samples, "recsvc_store_errors_total") == 0
    assert value(samples, "recsvc_model_reloads_total") == 1
    assert value(samples, "recsvc_model_load_failures_total") == 0


def test_metrics_need_no_key_and_show_no_key(client: TestClient[Litestar]) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert all(key not in response.text for key in KEYS.values())
