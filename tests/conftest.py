"""Test settings: every test session gets its own var/ directory (SQLite file, broker folder,
uploads), configured through the same environment variables a deployment uses."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support import FACES, SHIPPED_WEIGHTS, VIDEOS

_VAR = Path(tempfile.mkdtemp(prefix="rrr-test-"))
os.environ["RRR_VAR_DIR"] = str(_VAR)
for name in (
    "RRR_DATABASE_URL",
    "RRR_BROKER_URL",
    "RRR_STORAGE_DIR",
    "RRR_STORAGE_URL",
    "RRR_STORAGE_CACHE_DIR",
    "RRR_THRESHOLD",
    "RRR_UNSURE_MARGIN",
):
    os.environ.pop(name, None)


os.environ.setdefault("RRR_WEIGHTS_PATH", str(SHIPPED_WEIGHTS))


def pytest_sessionfinish(session, exitstatus) -> None:
    shutil.rmtree(_VAR, ignore_errors=True)


@pytest.fixture(scope="session")
def var_dir() -> Path:
    return _VAR


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server as its own process on 127.0.0.1, for the whole session."""
    from tests.support.s3 import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def migrated(var_dir):
    from shared.migrate import upgrade_database

    upgrade_database()
    return var_dir


@pytest.fixture()
def app(migrated):
    from api import create_app

    return create_app({"TESTING": True})


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def face_crops() -> dict[str, list[Path]]:
    """A few real DFDC face crops of each label (from ../shared/data)."""
    import csv

    out: dict[str, list[Path]] = {"real": [], "fake": []}
    with open(FACES / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if len(out[row["label"]]) < 8:
                out[row["label"]].append(FACES / row["file"])
    return out


@pytest.fixture(scope="session")
def video_paths() -> list[Path]:
    import csv

    with open(VIDEOS / "labels.csv", newline="") as fh:
        return [VIDEOS / row["file"] for row in csv.DictReader(fh)]


@pytest.fixture()
def override_settings(monkeypatch):
    """Change settings the way a deployment does (environment variables), restored afterwards."""
    from shared.config import reload_settings

    def apply(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reload_settings()

    yield apply
    monkeypatch.undo()
    reload_settings()


@pytest.fixture(autouse=True)
def _no_job_in_context():
    """Requests made through the test client run in the test's own context: forget the job id
    they leave behind, as a new request or task would."""
    from shared.logs import current_job

    token = current_job.set(None)
    yield
    current_job.reset(token)
