"""A first `make up` on a fresh copy of this checkout: it installs only what serving needs (no
PyTorch) into a new virtual environment, says what it is doing, and answers `/readyz`.

Marked `install` (about a minute: a real pip install from the package cache pip is configured
with); `make test` runs it, `make test-fast` leaves it out."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
import requests

from tests.support import REPO
from tests.support.service import free_port

pytestmark = pytest.mark.install

# the README quotes the time measured; this bound only catches a return to installing PyTorch
FIRST_START_BUDGET_S = 240


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI needs it", pytrace=False)
        pytest.skip(message)
    return path


def _fresh_copy(target) -> None:
    """The files a clone of this checkout would have (tracked, plus new files not ignored), so
    no .venv, var/ or build output of the checkout itself comes along."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def test_first_make_up_serves_without_torch(tmp_path):
    _need("git"), _need("make"), _need("python3.11")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    _fresh_copy(checkout)
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RRR_", "VIRTUAL_ENV", "PYTHON"))
    }
    env |= {"RRR_PORT": str(port), "RRR_LOG_FORMAT": "text", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "make-up.log"
    started = time.monotonic()
    with open(log, "w") as out:
        make = subprocess.Popen(
            ["make", "up"],
            cwd=checkout,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: make, rrr up and both workers
        )
    ready_after = None
    try:
        while time.monotonic() - started < FIRST_START_BUDGET_S and make.poll() is None:
            try:
                ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200 and ready.json().get("status") == "ready":
                    ready_after = time.monotonic() - started
                    break
            except requests.RequestException:  # still installing, or not listening yet
                pass
            time.sleep(0.5)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGTERM)
            try:
                make.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait()
    output = log.read_text()
    print(f"first make up: /readyz ok after {ready_after} s\n{output[-4000:]}")
    assert ready_after is not None, f"no /readyz ok within {FIRST_START_BUDGET_S} s:\n{output}"
    # a line per step, in order
    steps = [
        "==> creating the virtual environment",
        "==> installing the service into",
        "==> starting: rrr up",
        "rrr up: database up to date",
        "rrr up: started 2 workers",
    ]
    positions = [output.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), output
    # serving installed no PyTorch (nor the test or training extras)
    python = checkout / ".venv" / "bin" / "python"
    for absent in ("torch", "torchvision", "matplotlib", "pytest"):
        probe = subprocess.run(
            [str(python), "-c", f"import importlib.util as u; print(u.find_spec({absent!r}))"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert probe.stdout.strip() == "None", f"{absent} was installed for serving"
