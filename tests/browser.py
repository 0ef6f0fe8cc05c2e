"""What the browser tests share: Debian's chromium, or a skip on a developer machine without it
(CI, where `.ci/run` installs it, fails instead)."""

from __future__ import annotations

import os
import shutil

import pytest


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "no chromium on this machine (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run the browser tests", pytrace=False)
    pytest.skip(message)
