"""Identical requests with one Idempotency-Key, sent at the same instant to two real API
processes sharing a database: every one of them gets the same job, and exactly one job exists."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.service import Processes, start_apis

pytestmark = pytest.mark.integration

CONCURRENT = 12


@pytest.fixture(params=["postgresql", "sqlite"])
def apis(request, processes: Processes) -> list[str]:
    """Two API processes on one database (no worker: jobs stay queued)."""
    if request.param == "postgresql":
        processes.env.update(
            RRR_DATABASE_URL=request.getfixturevalue("postgres_url"),
            RRR_BROKER_URL=request.getfixturevalue("redis_url"),
        )
    return start_apis(processes)


def _race(bases: list[str], files, key: str) -> list[requests.Response]:
    start = threading.Barrier(CONCURRENT)

    def one(i: int) -> requests.Response:
        with requests.Session() as http:
            start.wait()
            return http.post(
                f"{bases[i % len(bases)]}/v1/jobs",
                files=files,
                headers={"Idempotency-Key": key},
                timeout=60,
            )

    with ThreadPoolExecutor(CONCURRENT) as pool:
        return list(pool.map(one, range(CONCURRENT)))


def test_concurrent_identical_requests_get_one_job(apis, face_crops):
    crops = [p.read_bytes() for p in face_crops["real"][:2]]
    responses = _race(apis, [("files", (f"{i}.jpg", c)) for i, c in enumerate(crops)], "race-1")
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * (CONCURRENT - 1) + [202], [r.text for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    (job_id,) = ids
    listed = requests.get(f"{apis[0]}/v1/jobs?limit=100", timeout=10).json()["jobs"]
    assert [job["id"] for job in listed] == [job_id]
    # the same key for another request, racing too: every one is a conflict
    other = _race(apis, [("file", ("0.jpg", crops[0]))], "race-1")
    assert {r.status_code for r in other} == {409}
    assert {r.json()["error"]["code"] for r in other} == {"idempotency_conflict"}
