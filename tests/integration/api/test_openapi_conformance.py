"""The OpenAPI spec is true: schemathesis, a real outside client, runs every operation of the
running service (`recsvc serve`, real HTTP) with every kind of key, in every phase it has, seeded
and time-bounded, and finds nothing: no 5xx, no undocumented status code or content type, no reply
that does not match its documented schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.api_support import ALL_SCOPES_KEY, API_KEYS, KEYS, Artifact, published_store
from tests.serving import Served, serve

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
PHASES = "examples,coverage,fuzzing,stateful"
SEED = 20261202
# One run per key: none (401s), each scope alone (403s elsewhere), and one with every scope, which
# reaches every operation's own logic and so gets most of the examples.
KEYS_TRIED: dict[str, str | None] = {"none": None, **KEYS, "all": ALL_SCOPES_KEY}
EXAMPLES = {"all": 40}
DEFAULT_EXAMPLES = 10
# A run that has not finished in this time fails the test (fuzzing stops at its example count).
SECONDS_PER_RUN = 45


@pytest.fixture(scope="module")
def service(artifact: Artifact, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("openapi")
    with published_store("file", artifact, root) as store:
        env = {
            "RECSVC_STORE": store.url,
            "RECSVC_API_KEYS": json.dumps(API_KEYS),
            "RECSVC_LOG_LEVEL": "warning",
        }
        with serve(root, env) as served:
            yield served


def schemathesis(service: Served, name: str, key: str | None, report: Path) -> tuple[str, int, str]:
    argv = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{service.base_url}/docs/openapi.json",
        "--checks",
        CHECKS,
        "--phases",
        PHASES,
        "--seed",
        str(SEED),
        "--generation-deterministic",
        "--max-examples",
        str(EXAMPLES.get(name, DEFAULT_EXAMPLES)),
        "--request-timeout",
        "10",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
    ]
    if key is not None:
        argv += ["--header", f"X-API-Key: {key}"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=SECONDS_PER_RUN, cwd=report.parent
    )
    return name, done.returncode, done.stdout[-6000:] + done.stderr[-2000:]


def test_schemathesis_finds_no_failure_with_any_key(service: Served, tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:  # two cores: one run each
        runs = list(
            pool.map(
                lambda item: schemathesis(service, item[0], item[1], tmp_path / f"{item[0]}.xml"),
                KEYS_TRIED.items(),
            )
        )
    failed = [f"--- key {name} (exit {code}):\n{out}" for name, code, out in runs if code != 0]
    assert not failed, "\n".join(failed) + f"\n--- service log:\n{service.output()[-3000:]}"
    for name, _, out in runs:
        assert "passed" in out, f"key {name}: schemathesis tested nothing:\n{out}"
