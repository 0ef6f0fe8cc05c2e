"""Each server worker scores with one BLAS thread (`recsvc.api.app.create_served_app`): the workers
already use every core, and a BLAS's own threads made one product over a blend's vectors 100x slower
on a busy machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROBE = """
from threadpoolctl import threadpool_info
from recsvc.api.app import create_app, create_served_app

def blas():
    return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})

create_app()
print(blas())
create_served_app()
print(blas())
"""


def test_a_served_worker_limits_blas_to_one_thread_and_a_plain_app_does_not(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={
            "RECSVC_STORE": f"file://{tmp_path / 'store'}",
            "OPENBLAS_NUM_THREADS": "2",
            "PATH": "",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    plain, served = done.stdout.split()
    assert plain == "[2]" and served == "[1]"
