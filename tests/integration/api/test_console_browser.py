"""The marketer console in a real browser: headless Chromium (Debian's), driven by Playwright, against
one started service (`recsvc serve`, two workers, a file store holding two versions), with no
network but loopback.

Each test signs in through the form, and every page visited is saved as a screenshot under
`var/console-screenshots/` for a person to look at. Marked `browser` (`pytest -m browser` runs
them alone); without chromium they skip on a developer machine and fail in CI, where `.ci/run`
installs it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from recsvc.store.files import FileStore
from tests.api_support import (
    ALL_SCOPES_KEY,
    API_KEYS,
    KEYS,
    Artifact,
    measured_experiments,
    record_run,
    with_experiments,
)
from tests.browser import chromium
from tests.integration.api.test_api_models import OLDER, renamed
from tests.serving import Served, serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = Path(__file__).parents[3] / "var" / "console-screenshots"
WIDTHS = {"laptop": 1280, "phone": 390}
PAGES = {
    "overview": "/console",
    "segments": "/console/segments",
    "segment": "/console/segments/promoters",
    "customer": "/console/customers?customer_id={customer}",
    "comments": "/console/comments",
    "offers": "/console/offers",
    "models": "/console/models",
    "experiments": "/console/experiments",
    "experiment": "/console/experiments/apology_credit",
}


@pytest.fixture(scope="module")
def served(artifact: Artifact, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("console-browser")
    store = FileStore(root / "store")
    store.publish(renamed(artifact, root, OLDER, 0.01), activate=False)
    # The artifact as if its run had measured three offers' experiments (same version name).
    results, assignments = measured_experiments(artifact)
    store.publish(with_experiments(artifact, root, results, assignments).directory)
    record_run(store, artifact)
    env = {
        "RECSVC_STORE": store.url,
        "RECSVC_API_KEYS": msgspec.json.encode(API_KEYS).decode(),
        "RECSVC_LOG_LEVEL": "warning",
        "RECSVC_RELOAD_SECONDS": "0.2",
    }
    with serve(root, env, workers=2) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                # No name resolves but loopback: the machine is offline for the page.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ],
        )
        yield launched
        launched.close()


class Console:
    """One signed-in browser tab; records every request that left for another host."""

    def __init__(self, browser: object, served: Served, key: str, width: int = 1280) -> None:
        self.base = served.base_url
        self.context = browser.new_context(  # type: ignore[attr-defined]
            viewport={"width": width, "height": 900}, accept_downloads=True
        )
        self.page = self.context.new_page()
        self.elsewhere: list[str] = []
        self.page.on(
            "request",
            lambda request: (
                None if request.url.startswith(self.base) else self.elsewhere.append(request.url)
            ),
        )
        self.page.goto(f"{self.base}/console/segments")
        assert "/console/sign-in" in self.page.url  # no session yet
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(f"{self.base}/console/segments")

    def visit(self, path: str, shot: str | None = None) -> int:
        reply = self.page.goto(self.base + path)
        assert reply is not None
        if shot is not None:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SCREENSHOTS / f"{shot}.png"), full_page=True)
        return int(reply.status)

    def close(self) -> None:
        assert self.elsewhere == [], f"the console fetched from other hosts: {self.elsewhere}"
        self.context.close()


def api(served: Served, path: str, key: str = KEYS["export"], **params: object) -> httpx.Response:
    reply = httpx.get(
        served.base_url + path,
        params=params,  # type: ignore[arg-type]
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply


def a_customer(served: Served) -> str:
    rows = csv.DictReader(io.StringIO(api(served, "/v1/segments/promoters/members").text))
    return next(rows)["customer_id"]


def test_every_page_at_laptop_and_phone_width(browser: object, served: Served) -> None:
    customer = a_customer(served)
    for device, width in WIDTHS.items():
        console = Console(browser, served, KEYS["export"], width)
        for name, path in PAGES.items():
            status = console.visit(path.format(customer=customer), f"{device}-{name}")
            assert status == 200, (device, name)
            page = console.page
            assert page.locator("h1").count() == 1, name
            # Readable at this width: nothing but the scrolling tables is wider than the screen.
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, (device, name, overflow)
            # Every control has a label, every table has headers.
            unlabelled = page.evaluate(
                """[...document.querySelectorAll('input:not([type=hidden]), select')]
                     .filter(e => !(e.id && document.querySelector(`label[for="${e.id}"]`))
                                  && !e.getAttribute('aria-label')).map(e => e.name)"""
            )
            assert unlabelled == [], (name, unlabelled)
            headless = page.evaluate(
                "[...document.querySelectorAll('table')].filter(t => !t.querySelector('th')).length"
            )
            assert headless == 0, name
        console.close()


def test_the_experiment_download_link_downloads_the_apis_assignments(
    browser: object, served: Served
) -> None:
    console = Console(browser, served, KEYS["export"])
    console.visit("/console/experiments")
    assert console.page.locator("figure.chart svg").count() == 2  # conversion and NPS primaries
    console.page.get_by_role("link", name="apology_credit").click()
    console.page.wait_for_url("**/console/experiments/apology_credit")
    assert console.page.locator("#outcomes tbody tr").count() == 6
    with console.page.expect_download() as download:
        console.page.get_by_role("link", name="CSV", exact=True).click()
    mine = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    path = "/v1/experiments/apology_credit/assignments"
    theirs = list(csv.DictReader(io.StringIO(api(served, path).text)))
    assert mine == theirs and len(mine) == 1200
    console.close()


def test_keyboard_reaches_the_controls(browser: object, served: Served) -> None:
    console = Console(browser, served, KEYS["export"])
    console.visit("/console/segments/promoters")
    reached: set[str] = set()
    for _ in range(60):
        console.page.keyboard.press("Tab")
        reached.add(
            console.page.evaluate(
                "document.activeElement.id || document.activeElement.textContent.trim()"
            )
        )
    assert {"q", "nps_category", "sort", "export-csv", "Sign out"} <= reached, reached
    console.close()


def test_the_pages_show_the_apis_numbers(browser: object, served: Served) -> None:
    console = Console(browser, served, KEYS["export"])
    console.visit("/console")
    summary = api(served, "/v1/nps/summary").json()["overall"]
    shown = console.page.locator('[data-metric="nps"]').inner_text()
    assert shown == f"{summary['nps']:.1f}"
    assert console.page.locator('[data-metric="customers"]').inner_text() == f"{summary['n']:,}"
    console.visit("/console/segments")
    for segment in api(served, "/v1/segments").json()["segments"]:
        row = console.page.locator(f'tr[data-segment="{segment["name"]}"]')
        assert row.locator('[data-field="size"]').inner_text() == f"{segment['size']:,}"
    customer = a_customer(served)
    console.visit(f"/console/customers?customer_id={customer}")
    recommended = api(
        served, f"/v1/customers/{customer}/recommendations", key=ALL_SCOPES_KEY
    ).json()["items"]
    cells = console.page.locator("#recommendations tbody code").all_inner_texts()
    assert cells == [item["product_id"] for item in recommended]
    console.close()


def test_export_button_downloads_the_apis_export(browser: object, served: Served) -> None:
    console = Console(browser, served, KEYS["export"])
    console.visit("/console/segments/promoters")
    with console.page.expect_download() as download:
        console.page.get_by_role("link", name="CSV", exact=True).click()
    saved = Path(download.value.path())
    mine = list(csv.DictReader(io.StringIO(saved.read_text())))
    theirs = list(csv.DictReader(io.StringIO(api(served, "/v1/segments/promoters/members").text)))
    assert mine == theirs and len(mine) > 10
    assert download.value.suggested_filename.endswith(".csv")
    console.close()


def test_an_export_only_key_can_neither_see_nor_post_a_rollback(
    browser: object, served: Served, artifact: Artifact
) -> None:
    console = Console(browser, served, KEYS["export"])
    console.visit("/console/models", "export-key-models")
    assert console.page.get_by_role("button", name=f"Activate {OLDER}").count() == 0
    # Post the form anyway, with this session's own CSRF token: refused by the server.
    token = console.page.locator('input[name="csrf_token"]').first.get_attribute("value")
    with console.page.expect_navigation():
        console.page.evaluate(
            """([url, token]) => { const f = document.createElement('form'); f.method = 'post';
             f.action = url; const i = document.createElement('input'); i.type = 'hidden';
             i.name = 'csrf_token'; i.value = token; f.appendChild(i);
             document.body.appendChild(f); f.submit(); }""",
            [f"/console/models/{OLDER}/activate", token],
        )
    assert "admin scope" in console.page.content()
    assert api(served, "/v1/models", key=KEYS["admin"]).json()["active"] == artifact.version
    console.close()


def test_an_admin_rolls_back_and_sees_the_version_change(
    browser: object, served: Served, artifact: Artifact
) -> None:
    console = Console(browser, served, ALL_SCOPES_KEY)
    console.visit("/console/models")
    console.page.get_by_role("button", name=f"Activate {OLDER}").click()
    console.page.wait_for_url(f"**/console/models?activated={OLDER}")
    console.page.screenshot(path=str(SCREENSHOTS / "admin-after-rollback.png"), full_page=True)
    try:
        assert console.page.locator('[data-field="active"]').inner_text() == OLDER
        assert api(served, "/v1/models", key=KEYS["admin"]).json()["active"] == OLDER
    finally:
        console.visit("/console/models")
        console.page.get_by_role("button", name=f"Activate {artifact.version}").click()
        console.page.wait_for_url(f"**/console/models?activated={artifact.version}")
    assert console.page.locator('[data-field="active"]').inner_text() == artifact.version
    console.page.get_by_role("button", name="Sign out").click()
    console.page.wait_for_url("**/console/sign-in")
    console.visit("/console/models")
    assert "/console/sign-in" in console.page.url
    console.close()
