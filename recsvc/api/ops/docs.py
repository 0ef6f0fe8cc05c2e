"""The API docs page (`/docs`): Swagger UI served from assets installed with the service, so the
page works on a machine without internet (Litestar's default loads them from a public CDN, and a
shop behind a firewall got a blank page).

The assets are swagger-ui-py's copy of Swagger UI 5 (which reads OpenAPI 3.1, the version Litestar
writes), found on disk without importing that package's framework adapters.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Final

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

from recsvc.errors import ConfigError

DOCS_PATH: Final = "/docs"
ASSETS_PATH: Final = f"{DOCS_PATH}/assets"


def assets_dir() -> Path:
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the API docs' assets (package swagger-ui-py) are not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def docs_assets() -> Router:
    """The docs page's scripts, styles and icon, public like the page itself."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[assets_dir()],
        name="docs-assets",
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=86_400, public=True),
    )


def docs_page() -> SwaggerRenderPlugin:
    return SwaggerRenderPlugin(
        path="/",
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )
