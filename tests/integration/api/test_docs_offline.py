"""The API docs page works without internet: `/docs` loads Swagger UI's scripts, styles and icon
from the service itself, and a real browser (Debian's chromium, headless) that can resolve no host
but loopback renders every operation. Without the assets served locally the page would be blank:
Litestar's default loads them from a public CDN.

The browser test is marked `browser` (`pytest -m browser` runs it alone); without chromium it
skips on a developer machine and fails in CI, where `.ci/run` installs it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.api_support import Artifact, client_for, published_store
from tests.browser import chromium
from tests.serving import serve

ASSET = re.compile(r"""(?:src|href)=['"]([^'"]+)['"]""")


@pytest.fixture(scope="module")
def docs(
    artifact: Artifact, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient[Litestar]]:
    with (
        published_store("file", artifact, tmp_path_factory.mktemp("docs")) as store,
        client_for(store) as client,
    ):
        yield client


def test_the_docs_page_names_only_assets_the_service_serves_itself(
    docs: TestClient[Litestar],
) -> None:
    page = docs.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = ASSET.findall(page.text)
    assert len(assets) >= 4, page.text  # bundle, preset, stylesheet, icon
    for url in assets:
        assert url.startswith("/docs/assets/"), f"{url} is not served by the service"
        got = docs.get(url)
        assert got.status_code == 200, url
        assert len(got.content) > 500, url
    kinds = {docs.get(url).headers["content-type"].split(";")[0] for url in assets}
    assert {"text/javascript", "text/css", "image/png"} <= kinds or {
        "application/javascript",
        "text/css",
        "image/png",
    } <= kinds, kinds
    assert docs.get("/docs/assets/../../pyproject.toml").status_code == 404
    # The spec itself stays where generated clients look for it, and is not in its own list.
    spec = docs.get("/docs/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert not any(path.startswith("/docs") for path in spec["paths"])


@pytest.mark.browser
@pytest.mark.slow
def test_a_browser_without_internet_renders_every_operation(
    artifact: Artifact, tmp_path: Path
) -> None:
    browser = chromium()
    with (
        published_store("file", artifact, tmp_path) as store,
        serve(tmp_path, {"RECSVC_STORE": store.url, "RECSVC_LOG_LEVEL": "warning"}) as served,
    ):
        spec_paths = set(served_spec_paths(served.base_url))
        dom = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'profile'}",
                # No name resolves but loopback: the machine is offline for the page.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--virtual-time-budget=20000",
                "--dump-dom",
                f"{served.base_url}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        ).stdout
    shown = set(re.findall(r'data-path="([^"]+)"', dom))
    assert shown, f"Swagger UI rendered no operation:\n{dom[:2000]}"
    assert shown == spec_paths
    assert "/v1/orders" in shown


def served_spec_paths(base_url: str) -> list[str]:
    import httpx

    return list(httpx.get(f"{base_url}/docs/openapi.json", timeout=10).json()["paths"])
