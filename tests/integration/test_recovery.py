"""Recovery re-publishes only what was lost, with real processes on Redis and PostgreSQL: a
backlog that waits past RRR_REQUEUE_AFTER_S keeps one message per job, while messages the
broker lost are re-published once, and every job then runs."""

from __future__ import annotations

import time

import pytest
import redis

from tests.support import media
from tests.support.service import Client, Processes, free_port

pytestmark = pytest.mark.integration

FAST = {"RRR_REQUEUE_AFTER_S": "2", "RRR_SWEEP_INTERVAL_S": "1", "RRR_STALE_AFTER_S": "30"}
JOBS = 20


def _queued_messages(redis_url: str) -> int:
    return int(redis.Redis.from_url(redis_url).llen("images"))


def test_backlog_is_not_duplicated_and_lost_messages_come_back(
    processes: Processes, redis_url, postgres_url
):
    processes.env.update(RRR_DATABASE_URL=postgres_url, RRR_BROKER_URL=redis_url, **FAST)
    assert processes.run("db", "upgrade").returncode == 0
    port = free_port()
    processes.start("api", "--port", str(port))
    # a worker that takes only videos: its sweeper runs, nobody takes the image backlog
    processes.start("worker", "--queues", "videos")
    api = Client(f"http://127.0.0.1:{port}")
    api.wait_ready()
    ids = [_submit(api, i) for i in range(JOBS)]
    time.sleep(8)  # four times RRR_REQUEUE_AFTER_S, a sweep every second
    assert _queued_messages(redis_url) == JOBS  # duplicated by every sweep before

    redis.Redis.from_url(redis_url).delete("images")  # the broker loses the backlog
    deadline = time.monotonic() + 20
    while _queued_messages(redis_url) < JOBS:
        assert time.monotonic() < deadline, "lost messages were not re-published"
        time.sleep(0.5)
    time.sleep(4)
    assert _queued_messages(redis_url) == JOBS  # re-published once each

    processes.start("worker", "--queues", "images")
    for job_id in ids:
        assert api.wait_job(job_id, timeout=120)["status"] == "succeeded"


def _submit(api: Client, i: int) -> str:
    import requests

    response = requests.post(
        f"{api.base}/v1/jobs",
        files={"file": (f"{i}.png", media.image_bytes(size=(48, 48)))},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]
