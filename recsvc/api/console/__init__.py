"""The marketer console: server-rendered pages under `/console` on the same services as the API
(see `controllers` for the routes, `sessions` for sign-in, `pages` for what each page shows)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from litestar import Controller, Router
from litestar.datastructures import CacheControlHeader
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from recsvc.api.console.controllers import ConsoleController, SignInController
from recsvc.api.console.sessions import CONSOLE_PATH, Sessions, session_backend
from recsvc.service.settings import Settings
from recsvc.store.base import Store

HERE: Final = Path(__file__).parent

__all__ = ["console_routes", "console_sessions", "console_templates"]


def console_routes() -> list[type[Controller] | Router]:
    """The console's route handlers and its static files (stylesheet, icon: no CDN, no build)."""
    static: Router = create_static_files_router(
        path=f"{CONSOLE_PATH}/static",
        directories=[HERE / "static"],
        name="console-static",
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=3600, public=True),
    )
    return [SignInController, ConsoleController, static]


def console_templates() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)


def console_sessions(store: Store, settings: Settings) -> Sessions:
    return Sessions(session_backend(store), settings)
