"""Limits that hold under concurrency, against real API processes: 40+ simultaneous
submissions spread over two `rrr api` processes, on PostgreSQL and on SQLite. And the hostile
values of tests/api/test_hostile_values.py, answered by a real API on PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support import hostile, media
from tests.support.service import Processes, start_apis

pytestmark = pytest.mark.integration

CONCURRENT = 48


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request, processes: Processes, tmp_path) -> str:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        broker = request.getfixturevalue("redis_url")
        processes.env.update(RRR_DATABASE_URL=url, RRR_BROKER_URL=broker)
    return request.param


def _two_apis(processes: Processes, **env: str) -> list[str]:
    processes.env.update(env)
    return start_apis(processes)


def _burst(bases: list[str], headers: dict[str, str]) -> Counter:
    """CONCURRENT submissions released at the same instant; the count of each status."""
    image = media.image_bytes(size=(32, 32))
    start = threading.Barrier(CONCURRENT)

    def one(i: int) -> int:
        with requests.Session() as http:
            start.wait()
            response = http.post(
                f"{bases[i % len(bases)]}/v1/jobs",
                files={"file": (f"{i}.png", image)},
                headers=headers,
                timeout=60,
            )
            assert response.headers["Content-Type"].startswith("application/json")
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 1
            return response.status_code

    with ThreadPoolExecutor(CONCURRENT) as pool:
        return Counter(pool.map(one, range(CONCURRENT)))


def test_rate_limit_holds_under_concurrency(processes: Processes, backend):
    bases = _two_apis(processes, RRR_API_KEYS="k", RRR_RATE_LIMIT_PER_MINUTE="10")
    statuses = _burst(bases, {"X-API-Key": "k"})
    assert statuses == {202: 10, 429: CONCURRENT - 10}, statuses


def test_quota_holds_under_concurrency(processes: Processes, backend):
    bases = _two_apis(
        processes,
        RRR_API_KEYS="k",
        RRR_RATE_LIMIT_PER_MINUTE="1000",
        RRR_MAX_ACTIVE_JOBS_PER_KEY="5",
    )
    statuses = _burst(bases, {"X-API-Key": "k"})
    assert statuses == {202: 5, 429: CONCURRENT - 5}, statuses


def test_queue_limit_holds_under_concurrency(processes: Processes, backend):
    bases = _two_apis(processes, RRR_MAX_QUEUED_JOBS="7")
    statuses = _burst(bases, {})
    assert statuses == {202: 7, 429: CONCURRENT - 7}, statuses


def test_hostile_values_on_postgresql(processes: Processes, postgres_url, redis_url):
    """A NUL byte or a crafted cursor is the request's fault: a 4xx, never 503 or 500."""
    processes.env.update(RRR_DATABASE_URL=postgres_url, RRR_BROKER_URL=redis_url)
    base = _two_apis(processes)[0]
    with requests.Session() as http:
        sent = [(case, method, base + url) for case, method, url in hostile.requests_to_send()]
        sent += [
            ("fuzz-cursor", "get", f"{base}/v1/jobs?cursor={c}")
            for c in hostile.fuzzed_cursors(200)
        ]
        sent += [("fuzz-id", "get", f"{base}/v1/jobs/{i}") for i in hostile.fuzzed_ids(200)]
        sent += [("fuzz-id", "delete", f"{base}/v1/jobs/{i}") for i in hostile.fuzzed_ids(50)]
        bad = []
        for case, method, url in sent:
            response = http.request(method, url, timeout=30)
            ok = response.status_code in (200, 400, 404, 405) and response.headers.get(
                "Content-Type", ""
            ).startswith("application/json")
            if case.startswith(("id-", "cursor-", "query-", "frames-", "double")):
                ok = ok and response.status_code in (400, 404)
            if not ok:
                bad.append((case, url[len(base) :][:80], response.status_code))
        assert bad == [], bad[:20]
