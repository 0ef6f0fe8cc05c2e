"""`python -m recsvc serve`: granian with two worker processes answers over real HTTP (and
/metrics sums both workers' request counts); the command refuses, with one line, to open every
scope on a public interface, a bad offer catalog, or a bad store URL."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from recsvc.__main__ import main
from recsvc.store.base import Store
from tests.api_support import Artifact, published_store
from tests.serving import serve

ENV_PREFIX = "RECSVC_"


@pytest.fixture
def store(artifact: Artifact, tmp_path: Path) -> Iterator[Store]:
    with published_store("file", artifact, tmp_path) as opened:
        yield opened


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX) or name == "PROMETHEUS_MULTIPROC_DIR":
            monkeypatch.delenv(name)


@pytest.mark.slow
def test_two_workers_serve_over_real_http(store: Store, artifact: Artifact, tmp_path: Path) -> None:
    env = {"RECSVC_STORE": store.url, "RECSVC_LOG_LEVEL": "warning"}
    with (
        serve(tmp_path, env, workers=2) as served,
        httpx.Client(base_url=served.base_url, timeout=5) as http,
    ):
        for _ in range(20):
            assert http.get("/health/live").status_code == 200
        recs = http.get("/v1/customers/C00000001/recommendations?limit=3")
        assert recs.status_code == 200 and recs.json()["model_version"] == artifact.version
        posted = http.post(
            "/v1/nps-responses",
            json={
                "response_id": "serve-1",
                "customer_id": "C00000001",
                "score": 1,
                "responded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "touchpoint": "relationship",
            },
        )
        assert posted.status_code == 202
        # Whichever worker answers, the offer reflects the answer the other may have stored:
        # a worker looks at the live files every few milliseconds.
        time.sleep(0.05)
        for _ in range(4):
            offers = http.get("/v1/customers/C00000001/offers").json()
            assert offers["nps_category"] == "detractor"
        # Each worker folds its request tallies into the shared metrics once a second: the sum
        # over both workers reaches all 20 within a couple of seconds, and never passes it.
        deadline = time.monotonic() + 5
        while True:
            metrics = http.get("/metrics").text
            live = [
                line
                for line in metrics.splitlines()
                if line.startswith("recsvc_requests_total{") and 'path="/health/live"' in line
            ]
            counted = float(live[0].split()[-1]) if live else 0.0
            assert counted <= 20, live
            if counted == 20 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert counted == 20, live
        assert f'recsvc_model_info{{version="{artifact.version}"}} 1.0' in metrics
    assert "Traceback" not in served.output(), served.output()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20"])
def test_serve_refuses_a_public_interface_without_api_keys(
    clean_env: None, host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--host", host]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith(f"recsvc: error: refusing to serve {host} without API keys")
    assert "RECSVC_API_KEYS" in error


def test_serve_refuses_a_bad_offer_catalog_before_starting(
    clean_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    catalog = tmp_path / "offers.toml"
    catalog.write_text('[offers.broken]\nkind = "bribe"\ntitle = "x"\nsegments = ["promoters"]\n')
    monkeypatch.setenv("RECSVC_OFFERS_FILE", str(catalog))
    assert main(["serve"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(catalog) in error and "bribe" in error


def test_serve_refuses_a_bad_store_url_and_bad_keys(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RECSVC_STORE", "ftp://somewhere")
    assert main(["serve"]) == 2
    assert "unsupported store URL" in capsys.readouterr().err
    monkeypatch.setenv("RECSVC_STORE", "file:///tmp/x")
    monkeypatch.setenv("RECSVC_API_KEYS", '{"short": ["admin"]}')
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    error = capsys.readouterr().err
    assert "RECSVC_API_KEYS" in error and "short" not in error.replace("shorter", "")
