"""The service starts without any model: live answers, ready says why it is not ready, docs are served,
and it becomes ready by itself once a version is published."""

from pathlib import Path

from litestar.testing import TestClient

from recsvc.api.app import create_app
from recsvc.service.settings import Settings


def _settings(tmp_path: Path) -> Settings:
    return Settings(store=f"file://{tmp_path / 'store'}")


def test_a_service_without_a_model_is_live_but_not_ready(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path))) as client:
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "not_ready"
        assert "no model version" in ready.json()["detail"]
        recs = client.get("/v1/customers/C1/recommendations")
        assert recs.status_code == 503
        assert recs.json()["error"] == "unavailable"


def test_openapi_docs_are_served_at_docs(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path))) as client:
        assert client.get("/docs").status_code == 200
        schema = client.get("/docs/openapi.json").json()
        assert "/health/ready" in schema["paths"]
        assert "/v1/customers/{customer_id}/recommendations" in schema["paths"]


def test_an_unknown_route_is_a_json_404(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path))) as client:
        response = client.get("/v1/nothing-here")
        assert response.status_code == 404
        assert response.json() == {"error": "not_found", "detail": "Not Found"}
