"""The marketer console over real HTTP through the real app, on both stores: sign-in with an API key
(cookie attributes, the sign-in form's token, unknown and under-scoped keys), sessions kept in the
store (a second app on the same store, as a second worker would, accepts the cookie; signing out or
removing the key ends it), CSRF on every state-changing form, admin actions refused to export-only
keys whatever the page shows, and every page's numbers against the API's.

The browser tests (`test_console_browser.py`) take the same paths in headless Chromium."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import re
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import msgspec
import polars as pl
import pytest
from litestar import Litestar
from litestar.stores.file import FileStore as FileSessionBackend
from litestar.testing import TestClient

from recsvc.store.base import Store
from recsvc.store.files import FileStore
from tests.api_support import (
    ALL_SCOPES_KEY,
    API_KEYS,
    KEYS,
    STORE_KINDS,
    Artifact,
    auth,
    client_for,
    measured_experiments,
    published_store,
    record_run,
    store_for,
    with_experiments,
)
from tests.integration.api.test_api_models import OLDER, renamed

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PAGES = (
    "/console",
    "/console/segments",
    "/console/segments/promoters",
    "/console/customers",
    "/console/comments",
    "/console/offers",
    "/console/models",
    "/console/experiments",
    "/console/experiments/apology_credit",
)


@pytest.fixture(scope="module")
def measured(artifact: Artifact, tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """The artifact as if its run had measured three offers' experiments (same version name)."""
    results, assignments = measured_experiments(artifact)
    return with_experiments(artifact, tmp_path_factory.mktemp("measured"), results, assignments)


@pytest.fixture(params=STORE_KINDS, scope="module")
def store(
    request: pytest.FixtureRequest,
    artifact: Artifact,
    measured: Artifact,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("console")
    with store_for(request, measured, root) as opened:
        opened.publish(renamed(artifact, root, OLDER, 0.01), activate=False)
        record_run(opened, artifact)
        yield opened


@pytest.fixture
def app(store: Store) -> Iterator[TestClient[Litestar]]:
    with client_for(store, api_keys=API_KEYS) as client:
        yield client


def sign_in(client: TestClient[Litestar], key: str, next_path: str = "/console") -> object:
    client.cookies.clear()
    form = client.get("/console/sign-in", params={"next": next_path})
    assert form.status_code == 200
    token = TOKEN.search(form.text)
    assert token is not None
    return client.post(
        "/console/sign-in",
        data={"csrf_token": token.group(1), "api_key": key, "next": next_path},
        follow_redirects=False,
    )


def csrf_of(client: TestClient[Litestar], path: str = "/console/models") -> str:
    found = TOKEN.search(client.get(path).text)
    assert found is not None
    return found.group(1)


def test_without_a_session_every_page_sends_the_browser_to_sign_in(
    app: TestClient[Litestar],
) -> None:
    for path in PAGES:
        reply = app.get(path, follow_redirects=False)
        assert reply.status_code == 303, path
        assert reply.headers["location"].startswith("/console/sign-in?next=%2Fconsole"), path
    # A POST without a session changes nothing and is sent to sign in too.
    reply = app.post(f"/console/models/{OLDER}/activate", follow_redirects=False)
    assert reply.status_code == 303
    # The API is untouched: API keys, no cookies, no CSRF.
    assert app.get("/v1/segments", headers=auth("export")).status_code == 200
    assert app.get("/v1/segments").status_code == 401


def test_sign_in_sets_a_strict_http_only_cookie_and_goes_where_the_user_was_going(
    app: TestClient[Litestar],
) -> None:
    reply = sign_in(app, KEYS["export"], "/console/segments")
    assert reply.status_code == 303  # type: ignore[attr-defined]
    assert reply.headers["location"] == "/console/segments"  # type: ignore[attr-defined]
    cookie = next(
        c
        for c in reply.headers.get_list("set-cookie")  # type: ignore[attr-defined]
        if c.startswith("recsvc_console=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "max-age=28800" in cookie.lower()  # RECSVC_CONSOLE_SESSION_MINUTES, 8 hours
    assert "path=/console" in cookie.lower()
    assert "secure" not in attributes  # plain HTTP: a Secure cookie would never come back
    assert KEYS["export"] not in cookie
    assert app.get("/console/segments").status_code == 200
    # Never an open redirect: a `next` outside the console goes to the overview.
    reply = sign_in(app, KEYS["export"], "https://evil.example/")
    assert reply.headers["location"] == "/console"  # type: ignore[attr-defined]


def test_over_tls_the_cookie_is_secure(store: Store) -> None:
    with client_for(store, api_keys=API_KEYS) as client:
        client.base_url = client.base_url.copy_with(scheme="https")
        reply = sign_in(client, KEYS["export"])
        cookie = next(
            c
            for c in reply.headers.get_list("set-cookie")  # type: ignore[attr-defined]
            if c.startswith("recsvc_console=")
        )
        assert "secure" in {part.strip().lower() for part in cookie.split(";")}


def test_wrong_keys_and_forged_sign_ins_are_refused(app: TestClient[Litestar]) -> None:
    reply = sign_in(app, "no-such-key-0123456789")
    assert reply.status_code == 401  # type: ignore[attr-defined]
    assert "Unknown API key" in reply.text  # type: ignore[attr-defined]
    reply = sign_in(app, KEYS["recommend"])
    assert reply.status_code == 403  # type: ignore[attr-defined]
    assert "export scope" in reply.text  # type: ignore[attr-defined]
    # A sign-in posted from elsewhere carries no token matching the form's cookie.
    app.cookies.clear()
    forged = app.post(
        "/console/sign-in",
        data={"csrf_token": "guess", "api_key": KEYS["export"]},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert "recsvc_console=" not in forged.headers.get("set-cookie", "")


def test_sessions_live_in_the_store_and_end_with_sign_out_or_the_key(
    app: TestClient[Litestar], store: Store
) -> None:
    sign_in(app, KEYS["export"])
    cookie = app.cookies["recsvc_console"]
    # Another worker (another app on the same store) knows the session.
    with client_for(store, api_keys=API_KEYS) as other:
        other.cookies.set("recsvc_console", cookie, path="/console")
        assert other.get("/console/segments", follow_redirects=False).status_code == 200
    # A key taken out of the configuration ends its sessions at once.
    fewer = {key: scopes for key, scopes in API_KEYS.items() if key != KEYS["export"]}
    with client_for(store, api_keys=fewer) as other:
        other.cookies.set("recsvc_console", cookie, path="/console")
        assert other.get("/console/segments", follow_redirects=False).status_code == 303
    # Signing out deletes the session everywhere, not just the cookie.
    token = csrf_of(app, "/console/segments")
    assert app.post("/console/sign-out", data={"csrf_token": token}).status_code == 200
    with client_for(store, api_keys=API_KEYS) as other:
        other.cookies.set("recsvc_console", cookie, path="/console")
        assert other.get("/console/segments", follow_redirects=False).status_code == 303


def test_admin_actions_need_the_admin_scope_and_the_csrf_token(
    app: TestClient[Litestar], store: Store, artifact: Artifact
) -> None:
    sign_in(app, KEYS["export"])
    page = app.get("/console/models").text
    assert "/activate" not in page  # not shown ...
    token = csrf_of(app)
    refused = app.post(f"/console/models/{OLDER}/activate", data={"csrf_token": token})
    assert refused.status_code == 403  # ... and not accepted
    assert "admin scope" in refused.text
    assert store.active_version() == artifact.version

    sign_in(app, ALL_SCOPES_KEY)
    assert f"/console/models/{OLDER}/activate" in app.get("/console/models").text
    # Without the session's token (a cross-site form) nothing happens.
    forged = app.post(f"/console/models/{OLDER}/activate", data={"csrf_token": "x" * 43})
    assert forged.status_code == 403
    assert store.active_version() == artifact.version
    done = app.post(f"/console/models/{OLDER}/activate", data={"csrf_token": csrf_of(app)})
    try:
        assert done.status_code == 200
        assert store.active_version() == OLDER
        assert f"Version <code>{OLDER}</code> is now active" in done.text
    finally:
        back = app.post(
            f"/console/models/{artifact.version}/activate", data={"csrf_token": csrf_of(app)}
        )
        assert back.status_code == 200
    assert store.active_version() == artifact.version


def _cell(html: str, segment: str, field: str) -> str:
    row = re.search(rf'<tr data-segment="{re.escape(segment)}">(.*?)</tr>', html, re.S)
    assert row is not None, segment
    found = re.search(rf'data-field="{field}">(.*?)</td>', row.group(1), re.S)
    assert found is not None, (segment, field)
    return re.sub(r"<[^>]+>", " ", found.group(1)).split()[0]


def _metric(html: str, name: str) -> str:
    found = re.search(rf'data-metric="{name}">([^<]*)<', html)
    assert found is not None, name
    return found.group(1).strip()


def test_every_page_shows_the_apis_numbers(app: TestClient[Litestar], artifact: Artifact) -> None:
    sign_in(app, KEYS["export"])
    for path in PAGES:
        assert app.get(path).status_code == 200, path

    summary = app.get("/v1/nps/summary", headers=auth("export")).json()["overall"]
    overview = app.get("/console").text
    assert _metric(overview, "nps") == f"{summary['nps']:.1f}"
    assert _metric(overview, "customers") == f"{summary['n']:,}"
    assert _metric(overview, "detractors") == f"{summary['detractors']:,}"
    assert _metric(overview, "version") == artifact.version

    segments = app.get("/v1/segments", headers=auth("export")).json()["segments"]
    page = app.get("/console/segments").text
    for segment in segments:
        assert _cell(page, segment["name"], "size") == f"{segment['size']:,}"
        if segment["nps"]["nps"] is not None:
            assert _cell(page, segment["name"], "nps") == f"{segment['nps']['nps']:.1f}"

    # A segment's member list is the export's member list.
    api_rows = list(
        csv.DictReader(
            io.StringIO(app.get("/v1/segments/promoters/members", headers=auth("export")).text)
        )
    )
    listed = app.get("/console/segments/promoters", params={"per_page": 200}).text
    shown = re.findall(r'customer_id=([^"&]+)">', listed)
    assert shown == [row["customer_id"] for row in api_rows][:200]
    assert f'data-field="members">{len(api_rows):,}<' in listed

    # The console's export button downloads the API's export, byte for byte.
    for fmt in ("csv", "ndjson", "parquet"):
        mine = app.get("/console/segments/promoters/export", params={"format": fmt})
        theirs = app.get(
            "/v1/segments/promoters/members", params={"format": fmt}, headers=auth("export")
        )
        assert mine.status_code == 200, fmt
        if fmt == "parquet":
            assert pl.read_parquet(io.BytesIO(mine.content)).equals(
                pl.read_parquet(io.BytesIO(theirs.content))
            )
        else:
            assert mine.content == theirs.content, fmt
        assert mine.headers["content-disposition"] == theirs.headers["content-disposition"]
    # "Only changes since version ...": the API's change export.
    mine = app.get(
        "/console/segments/promoters/export", params={"format": "csv", "since_version": OLDER}
    )
    theirs = app.get(
        "/v1/segments/promoters/members",
        params={"format": "csv", "since_version": OLDER},
        headers=auth("export"),
    )
    assert mine.status_code == 200 and mine.content == theirs.content
    assert mine.text.splitlines()[0].endswith(",change")

    customer = api_rows[0]["customer_id"]
    inspector = app.get("/console/customers", params={"customer_id": customer}).text
    recommended = app.get(
        f"/v1/customers/{customer}/recommendations",
        headers={"Authorization": f"Bearer {ALL_SCOPES_KEY}"},
    ).json()["items"]
    table = re.search(r'id="recommendations">(.*?)</table>', inspector, re.S)
    assert table is not None
    assert re.findall(r"<code>([^<]+)</code>", table.group(1)) == [
        item["product_id"] for item in recommended
    ]
    offers = app.get(
        f"/v1/customers/{customer}/offers", headers={"Authorization": f"Bearer {ALL_SCOPES_KEY}"}
    ).json()["offers"]
    for offer in offers:
        assert f"<code>{offer['id']}</code>" in inspector
    profile = app.get(f"/v1/customers/{customer}", headers=auth("export")).json()
    assert f'data-field="primary_segment">{profile["primary_segment"]}<' in inspector
    history = re.search(r'id="history">(.*?)</table>', inspector, re.S)
    assert history is not None
    assert history.group(1).count("<tr") - 1 == profile["nps"]["responses"]  # minus the head

    models = app.get("/v1/models", headers=auth("admin")).json()
    listed_versions = app.get("/console/models").text
    for version in models["versions"]:
        row = re.search(
            rf'<tr data-version="{re.escape(version["version"])}">(.*?)</tr>', listed_versions, re.S
        )
        assert row is not None, version["version"]
        assert f"{version['ndcg']:.3f}" in row.group(1)
    assert f'data-field="active">{models["active"]}<' in listed_versions
    # The run that wrote the active version: its gate, its hold-out NDCG against the baselines.
    run = msgspec.json.decode((artifact.directory / "run.json").read_bytes())
    assert run["run_id"] in listed_versions and run["gate"]["reason"] in listed_versions
    # The carts' bought-alike weight its evaluation chose, with what it rested on.
    cart = run["metrics"]["cart"]
    assert f'data-field="cart-weight">{cart["weight"]:g}<' in listed_versions
    assert f"{cart['customers']:,} hold-out carts" in listed_versions
    # The product pages' bought-alike settings it chose.
    alike = run["metrics"]["alike"]
    assert f'data-field="alike-power">{alike["buyer_power"]:g}<' in listed_versions
    assert f'data-field="alike-trend">{alike["trend_weight"]:g}<' in listed_versions
    # Its settings search: the choice, a bar per trial, a table row per trial.
    search = run["search"]
    assert f'data-field="search-chosen">{search["chosen"]}<' in listed_versions
    # The recent-popularity prior's weight it chose on the same validation customers.
    assert f'data-field="prior-weight">{search["prior"]["weight"]:g}<' in listed_versions
    table = re.search(r'<table class="data search">(.*?)</table>', listed_versions, re.S)
    assert table is not None
    for trial in search["trials"]:
        row = re.search(rf'<th scope="row">{trial["name"]}</th>(.*?)</tr>', table.group(1), re.S)
        assert row is not None and f"{trial['ndcg']:.3f}" in row.group(1), trial["name"]
        assert f"NDCG {trial['ndcg']:.4f}" in listed_versions  # its bar's note
    for task in ("new_items", "buy_again"):
        for ranker, values in run["metrics"][task].items():
            row = re.search(
                rf"<td>{task.replace('_', ' ')}</td><th scope=\"row\">{ranker.replace('_', ' ')}</th>"
                r'<td class="num">([^<]+)</td>',
                listed_versions,
            )
            assert row is not None, (task, ranker)
            assert row.group(1) == f"{values['ndcg']:.3f}"

    themes = app.get("/v1/nps/themes", headers=auth("export")).json()
    comments = app.get("/console/comments").text
    for group in themes["categories"]:
        assert (
            f'data-category="{group["category"]}"' in comments
            and f'data-field="commented">{group["commented"]:,}<' in comments
        )


def test_filtering_sorting_and_paging_members(app: TestClient[Litestar]) -> None:
    sign_in(app, KEYS["export"])
    everyone = list(
        csv.DictReader(
            io.StringIO(
                app.get("/v1/segments/churn_risk_high/members", headers=auth("export")).text
            )
        )
    )
    wanted = [r for r in everyone if r["nps_category"] == "detractor"]
    page = app.get(
        "/console/segments/churn_risk_high",
        params={"nps_category": "detractor", "sort": "last_order_at", "order": "desc"},
    ).text
    assert f'data-field="matching">{len(wanted):,}<' in page
    newest = sorted(wanted, key=lambda r: r["last_order_at"] or "", reverse=True)
    shown = re.findall(r'customer_id=([^"&]+)">', page)
    dates = {r["customer_id"]: r["last_order_at"] for r in wanted}
    assert [dates[c] for c in shown] == [r["last_order_at"] for r in newest][: len(shown)]
    last = app.get(
        "/console/segments/churn_risk_high", params={"page": 10_000, "per_page": 25}
    ).text
    assert "Next ›" not in last and "‹ Previous" in last
    bad = app.get("/console/segments/churn_risk_high", params={"sort": "password"})
    assert bad.status_code == 400 and "sort:" in bad.text and "<html" in bad.text
    assert app.get("/console/segments/no_such_segment").status_code == 404
    unknown = app.get("/console/customers", params={"customer_id": "NOBODY"})
    assert unknown.status_code == 200 and "no customer" in unknown.text


def test_pages_escape_what_they_show(app: TestClient[Litestar]) -> None:
    sign_in(app, KEYS["export"])
    hostile = "<script>alert(1)</script>"
    page = app.get("/console/customers", params={"customer_id": hostile}).text
    assert hostile not in page and "&lt;script&gt;" in page


@pytest.mark.parametrize("path", ["/console/static/console.css", "/console/static/icon.svg"])
def test_assets_ship_with_the_service(app: TestClient[Litestar], path: str) -> None:
    reply = app.get(path)
    assert reply.status_code == 200 and len(reply.content) > 100
    # Nothing loaded from elsewhere (a random token may well contain the letters "cdn").
    page = app.get("/console/sign-in").text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), page


def test_a_file_stores_abandoned_sessions_are_removed_at_the_next_sign_in(
    artifact: Artifact, tmp_path: Path
) -> None:
    # Redis expires session keys itself; a file store removes the files at sign-in.
    with (
        published_store("file", artifact, tmp_path) as store,
        client_for(store, api_keys=API_KEYS) as app,
    ):
        assert isinstance(store, FileStore)
        sign_in(app, KEYS["export"])  # the folder exists from here on
        folder = Path(store.root) / "console-sessions"
        backend = FileSessionBackend(folder)
        asyncio.run(backend.set("abandoned", b"{}", expires_in=1))
        # Litestar's file store names a key's file by its BLAKE2s digest.
        abandoned = folder / hashlib.blake2s(b"abandoned").hexdigest()
        assert abandoned.is_file()
        time.sleep(1.1)
        sign_in(app, KEYS["export"])
        assert not abandoned.exists()  # removed by the sign-in, not by a read


def _section(page_text: str, experiment: str) -> str:
    found = re.search(
        rf'<section [^>]*data-experiment="{re.escape(experiment)}">(.*?)</section>', page_text, re.S
    )
    assert found is not None, experiment
    return found.group(1)


def _field(page_text: str, field: str) -> str:
    found = re.search(rf'data-field="{field}">(.*?)</(?:td|span|p)>', page_text, re.S)
    assert found is not None, field
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip())


def _lift(outcome: dict[str, float | None], scale: float) -> str:
    """The lift with its interval as a marketer reads it, written here from the API's numbers."""
    assert outcome["lift"] is not None and outcome["ci_low"] is not None
    assert outcome["ci_high"] is not None
    return (
        f"{outcome['lift'] * scale:+.2f} "
        f"({outcome['ci_low'] * scale:+.2f} to {outcome['ci_high'] * scale:+.2f})"
    )


def _p(value: float | None) -> str:
    return "–" if value is None else "< 0.001" if value < 0.001 else f"{value:.3f}"


def test_the_experiments_page_plots_and_tabulates_every_experiment_as_the_api_reports_it(
    app: TestClient[Litestar],
) -> None:
    sign_in(app, KEYS["export"])
    listed = app.get("/v1/experiments", headers=auth("export")).json()["experiments"]
    assert [e["offer_id"] for e in listed] == [
        "apology_credit",
        "passive_engagement",
        "ambassador_referral",
    ]
    page = app.get("/console/experiments")
    assert page.status_code == 200
    page_text = page.text
    assert 'aria-current="page">Experiments<' in page_text
    # One forest plot per primary outcome, one row (a dot) per experiment.
    plots = re.findall(r"<svg.*?</svg>", page_text, re.S)
    assert len(plots) == 2
    conversion, nps = plots
    assert "lift, percentage points of conversion" in conversion and "lift, NPS points" in nps
    assert conversion.count("<circle ") == 2 and nps.count("<circle ") == 1
    assert "apology_credit · conversion" in conversion
    assert "ambassador_referral · conversion" in conversion
    assert "passive_engagement · nps" in nps
    for summary in listed:
        detail = app.get(f"/v1/experiments/{summary['experiment']}", headers=auth("export"))
        result = detail.json()["result"]
        section = _section(page_text, result["experiment"])
        assert _field(section, "status") == result["status"]
        assert result["status_detail"][1:] in _field(section, "status_detail")
        for arm in result["arms"]:
            row = re.search(rf'<tr data-arm="{arm["arm"]}">(.*?)</tr>', section, re.S)
            assert row is not None, arm
            for count in ("assigned", "exposed", "analysed"):
                assert _field(row.group(1), count) == f"{arm[count]:,}"
        assert _field(section, "holdout_share") == (
            f"{result['holdout_share'] * 100:.1f}% configured, "
            f"{result['observed_holdout_share'] * 100:.1f}% observed"
        )
        primary = next(o for o in result["outcomes"] if o["primary"])
        scale = 1.0 if result["primary"] == "nps" else 100.0
        assert _field(section, "primary_lift") == _lift(primary, scale)
        assert _field(section, "p_value") == _p(primary["p_value"])
        assert _field(section, "srm_p_value").startswith(_p(result["srm_p_value"]))
        assert _field(section, "mde") == f"±{result['mde'] * scale:.2f}"
        nps_outcome = next(o for o in result["outcomes"] if o["outcome"] == "nps")
        assert _field(section, "nps_lift") == _lift(nps_outcome, 1.0)
        # Only a broken split is flagged, in words.
        broken = result["srm_p_value"] < 0.001
        assert broken == (result["experiment"] == "ambassador_referral")
        assert ("the split itself looks broken" in section) == broken
    assert _section(page_text, "apology_credit").count("significant") >= 1
    assert _field(_section(page_text, "apology_credit"), "status") == "significant"


def test_an_experiments_page_shows_every_outcome_and_segment(
    app: TestClient[Litestar],
) -> None:
    sign_in(app, KEYS["export"])
    result = app.get("/v1/experiments/apology_credit", headers=auth("export")).json()["result"]
    page_text = app.get("/console/experiments/apology_credit").text
    table = re.search(r'id="outcomes">(.*?)</table>', page_text, re.S)
    assert table is not None
    rows = re.findall(r'<tr data-outcome="([a-z_]+)"', table.group(1))
    assert rows == [o["outcome"] for o in result["outcomes"]]
    assert len(rows) == 6
    for outcome in result["outcomes"]:
        row = re.search(
            rf'<tr data-outcome="{outcome["outcome"]}"[^>]*>(.*?)</tr>', page_text, re.S
        )
        assert row is not None
        cells = row.group(1)
        scale = 1.0 if outcome["outcome"] in ("nps", "orders", "revenue") else 100.0
        if outcome["lift"] is not None:
            assert _field(cells, "lift") == _lift(outcome, scale)
        relative = outcome["relative_lift"]
        assert _field(cells, "relative_lift") == (
            "–" if relative is None else f"{relative * 100:+.1f}%"
        )
        assert _field(cells, "p_value") == _p(outcome["p_value"])
        assert _field(cells, "p_adjusted") == _p(outcome["p_adjusted"])
        assert _field(cells, "cuped") == ("yes" if outcome["cuped"] else "no")
    assert any(o["cuped"] for o in result["outcomes"])
    assert result["segments"], "the simulated table has two segments of 600"
    shown = re.findall(r'<tr data-segment="([^"]+)">', page_text)
    assert shown == [s["segment"] for s in result["segments"]]
    segment_plot = re.search(r"<svg.*?</svg>", page_text, re.S)
    assert segment_plot is not None
    assert segment_plot.group(0).count("<circle ") == len(result["segments"])
    # By the offer's id too (the API's rule); an unknown one is the console's 404 page.
    assert app.get("/console/experiments/apology_credit").status_code == 200
    missing = app.get("/console/experiments/no_such_offer")
    assert missing.status_code == 404 and "<html" in missing.text
    assert "no_such_offer" in missing.text and "apology_credit" in missing.text


def test_the_assignment_download_is_the_apis_export(
    app: TestClient[Litestar], measured: Artifact
) -> None:
    sign_in(app, KEYS["export"])
    page_text = app.get("/console/experiments/passive_engagement").text
    for fmt in ("csv", "ndjson", "parquet"):
        link = f"/console/experiments/passive_engagement/assignments?format={fmt}"
        assert f'href="{link}" download' in page_text, fmt
        mine = app.get(link)
        theirs = app.get(
            "/v1/experiments/passive_engagement/assignments",
            params={"format": fmt},
            headers=auth("export"),
        )
        assert mine.status_code == theirs.status_code == 200, fmt
        if fmt == "parquet":
            assert pl.read_parquet(io.BytesIO(mine.content)).equals(
                pl.read_parquet(io.BytesIO(theirs.content))
            )
        else:
            assert mine.content == theirs.content, fmt
        assert mine.headers["content-disposition"] == theirs.headers["content-disposition"]
    # The rows are the version's assignments of that experiment, and only those.
    rows = list(
        csv.DictReader(
            io.StringIO(app.get("/console/experiments/passive_engagement/assignments").text)
        )
    )
    stored = [
        a
        for a in msgspec.json.decode(
            (measured.directory / "experiment_assignments.json").read_bytes()
        )
        if a[0] == "passive_engagement"
    ]
    assert len(rows) == len(stored) == 1200
    assert {(r["customer_id"], r["arm"]) for r in rows} == {(a[2], a[3]) for a in stored}
    assert {r["experiment"] for r in rows} == {"passive_engagement"}
    assert app.get("/console/experiments/no_such_offer/assignments").status_code == 404
    assert (
        app.get(
            "/console/experiments/passive_engagement/assignments", params={"format": "xlsx"}
        ).status_code
        == 400
    )


def test_without_experiments_the_page_says_how_they_come(
    artifact: Artifact, tmp_path: Path
) -> None:
    with (
        published_store("file", artifact, tmp_path) as store,
        client_for(store, api_keys=API_KEYS) as app,
    ):
        sign_in(app, KEYS["export"])
        assert app.get("/v1/experiments", headers=auth("export")).json()["experiments"] == []
        page = app.get("/console/experiments")
        assert page.status_code == 200
        assert 'id="no-experiments"' in page.text and "<svg" not in page.text
        assert "logs an exposure" in page.text and "next training run" in page.text
