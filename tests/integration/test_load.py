"""2,000 small-image jobs at concurrency 32 against the production API (`rrr api`) + 2 workers
on the real Redis and PostgreSQL: nothing lost, no 5xx, every job terminal. Prints the figures
(run with -s)."""

from __future__ import annotations

import json

import pytest

from bench.load import run_load
from tests.support.service import Client, Processes, free_port

pytestmark = pytest.mark.integration


def test_two_thousand_jobs_nothing_lost(processes: Processes, redis_url, postgres_url):
    processes.env.update(
        RRR_DATABASE_URL=postgres_url,
        RRR_BROKER_URL=redis_url,
        RRR_INFERENCE_THREADS="1",
        RRR_MAX_QUEUED_JOBS="100000",
        RRR_LOG_LEVEL="WARNING",
    )
    assert processes.run("db", "upgrade").returncode == 0
    port = free_port()
    processes.start("api", "--port", str(port))
    processes.start("worker")
    processes.start("worker")
    client = Client(f"http://127.0.0.1:{port}")
    client.wait_ready()

    report = run_load(client.base, jobs=2000, concurrency=32, deadline_s=900)
    summary = report.summary()
    print("\nload:", json.dumps(summary))
    assert report.http_status == {202: 2000}, summary
    assert report.server_errors == 0 and report.lost == 0, summary
    assert report.job_status == {"succeeded": 2000}, summary
