"""Real processes against real services: `rrr api`/`rrr worker`/`rrr up` as subprocesses, the
local Redis and PostgreSQL. With CI=true a missing service fails the run instead of skipping."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.support.service import Processes

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# the Redis database these tests flush: give each checkout running the suite at once its own
REDIS_DB = int(os.environ.get("RRR_TEST_REDIS_DB", "11"))
PG_ADMIN_URL = os.environ.get(
    "RRR_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _require(service: str, check) -> None:
    try:
        check()
    except Exception as exc:
        message = f"{service} is not reachable ({exc.__class__.__name__}: {exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI needs it running", pytrace=False)
        pytest.skip(message)


def _redis_ping() -> None:
    import redis

    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=2).ping()


@pytest.fixture()
def redis_url() -> Iterator[str]:
    import redis

    _require("Redis", _redis_ping)
    db = REDIS_DB
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    client.flushdb()
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    client.flushdb()


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    _require("PostgreSQL", lambda: admin.connect().close())
    name = f"rrr_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture()
def processes(tmp_path, request) -> Iterator[Processes]:
    procs = Processes({"RRR_VAR_DIR": str(tmp_path / "var")}, tmp_path)
    yield procs
    procs.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(procs.logs())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
