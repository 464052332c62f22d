"""A video split into segments across several workers gives exactly the rows one worker gives."""

from __future__ import annotations

import pytest

from tests.support.service import Processes, start_service

pytestmark = pytest.mark.integration


def _run_with_workers(processes: Processes, workers: int, video) -> tuple[dict, list[dict]]:
    api = start_service(processes, workers)
    job = api.submit([video], sample_fps="2").json()
    done = api.wait_job(job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    frames = api.get(f"/v1/jobs/{job['id']}/frames", params={"limit": 1000}).json()["frames"]
    processes.stop()
    processes.running.clear()
    return done["result"], frames


def test_three_workers_give_the_same_rows_as_one(
    processes: Processes, redis_url, postgres_url, video_paths
):
    processes.env.update(
        RRR_DATABASE_URL=postgres_url,
        RRR_BROKER_URL=redis_url,
        RRR_SEGMENT_SECONDS="2",  # a 10 s clip becomes 5 segments
        RRR_INFERENCE_THREADS="1",
    )
    video = next(p for p in video_paths if p.name == "western_fake.mp4")
    one_result, one = _run_with_workers(processes, 1, video)
    three_result, three = _run_with_workers(processes, 3, video)
    assert one_result["segments"]["count"] == three_result["segments"]["count"] >= 5
    assert len(one) == len(three) == one_result["frames_analyzed"]
    assert [f["index"] for f in three] == list(range(len(three)))
    assert three == one
    for key in ("prediction", "probability_fake", "frames_with_faces", "suspicious_segments"):
        assert three_result[key] == one_result[key]
