"""schemathesis against `rrr up`, the embedded service (API and two workers): every check it has,
stateful links included, with a bounded budget. tests/api/schemathesis.toml holds its settings and
says why each is there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.service import Client, Processes, free_port

CONFIG = REPO / "tests" / "api" / "schemathesis.toml"
# cases per operation and phase: the run takes a few minutes on two busy cores
MAX_EXAMPLES = 8


@pytest.mark.integration
def test_schemathesis_finds_nothing(processes: Processes, tmp_path):
    """Every check schemathesis has, against the embedded service (API and two workers)."""
    port = free_port()
    processes.start(
        "up",
        "--port",
        str(port),
        RRR_MAX_WAIT_S="2",  # Prefer: wait=N holds an answer at most this long here
        RRR_SYNC_TIMEOUT_S="100",
    )
    base = f"http://127.0.0.1:{port}"
    Client(base).wait_ready()
    st = Path(sys.executable).with_name("st")
    run = subprocess.run(
        [
            str(st),
            "--config-file",
            str(CONFIG),
            "run",
            f"{base}/v1/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "20261203",
            "--workers",
            "2",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
