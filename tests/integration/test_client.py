"""rrr.client against real `rrr api` and `rrr worker` processes on PostgreSQL and Redis, with API
keys: Prefer: wait, wait() with progress, cancel while running, delete."""

from __future__ import annotations

import time

import pytest

from rrr.client import ApiError, Client
from tests.support.service import Processes, start_service

pytestmark = pytest.mark.integration
KEY = "client-test-key-0123456789abcdef"


def test_client_drives_the_service(
    processes: Processes, postgres_url, redis_url, face_crops, video_paths
):
    processes.env.update(RRR_DATABASE_URL=postgres_url, RRR_BROKER_URL=redis_url, RRR_API_KEYS=KEY)
    api = start_service(processes, workers=1)
    rrr = Client(api.base, api_key=KEY)
    with pytest.raises(ApiError) as refused:
        Client(api.base, api_key="not-a-key").jobs()
    assert refused.value.status == 401

    # the server holds the answer until the image's job has ended
    image = rrr.submit([face_crops["fake"][6]], wait_s=60)
    assert image["status"] == "succeeded" and image["result"]["prediction"]

    video = next(p for p in video_paths if p.name == "abofeumbvv.mp4")
    job = rrr.submit([video], sample_fps=2)
    seen: list[dict] = []
    finished = rrr.wait(job["id"], timeout_s=300, progress=seen.append, poll_s=0.2)
    assert finished["status"] == "succeeded", finished
    assert seen and all(s["status"] in ("queued", "running") for s in seen)
    done = [s["progress"]["done"] for s in seen]
    assert done == sorted(done)  # progress only grows
    frames = list(rrr.iter_frames(job["id"]))
    assert len(frames) == finished["result"]["frames_analyzed"]

    # a running job canceled (twice: cancel is repeatable); the worker moves on
    long = rrr.submit([video], sample_fps=10)
    deadline = time.monotonic() + 120
    while rrr.job(long["id"])["status"] == "queued" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rrr.cancel(long["id"])["status"] == "canceled"
    assert rrr.cancel(long["id"])["status"] == "canceled"
    after = rrr.submit([face_crops["real"][6]])
    assert rrr.wait(after["id"], timeout_s=120)["status"] == "succeeded"  # long-polled
    assert rrr.job(long["id"])["status"] == "canceled"

    rrr.delete(long["id"])
    with pytest.raises(ApiError) as gone:
        rrr.job(long["id"])
    assert gone.value.status == 404
    assert long["id"] not in {j["id"] for j in rrr.iter_jobs()}
