"""No input costs more than it analyses: a video is planned from the frames it holds, not
from its declared duration; a job has at most RRR_MAX_SEGMENTS segment tasks; the ETA stays
sane. (Large images: tests/detection/test_image_memory.py.)"""

from __future__ import annotations

import io
from datetime import timedelta

from sqlalchemy import func, select, update

from shared.db import session_scope
from shared.models import Job, Segment, utcnow
from tests.support import media
from tests.support.jobs import run_job_here


def _submit(client, data: bytes, name: str, **form) -> str:
    response = client.post(
        "/v1/jobs",
        data={"file": (io.BytesIO(data), name), **form},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def _segments(job_id: str) -> int:
    with session_scope() as session:
        query = select(func.count()).select_from(Segment).where(Segment.job_id == job_id)
        return int(session.scalar(query))


def test_sparse_video_makes_a_task_per_frame_not_per_declared_second(client, tmp_path):
    """Two frames 200,000 s apart, a few kilobytes on disk: 2,001 segment tasks before."""
    data = media.sparse_mkv(tmp_path / "sparse.mkv").read_bytes()
    assert len(data) < 8_000
    job_id = _submit(client, data, "sparse.mkv", sample_fps="0.01")
    run_job_here(job_id)
    assert 1 + _segments(job_id) <= 3  # the job's own task and its segments
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded", job
    assert job["progress"] == {"done": 2, "total": 2, "eta_s": None}
    frames = client.get(f"/v1/jobs/{job_id}/frames").get_json()["frames"]
    assert [f["timestamp_s"] for f in frames] == [0.0, 200000.0]
    assert job["result"]["frames_analyzed"] == 2


def test_sparse_video_with_default_sampling_is_one_small_task(client, tmp_path):
    """Default sampling stops at RRR_MAX_FRAMES samples: the frame 200,000 s in lies beyond
    them, so one frame is analysed (120 segments of the same frame before)."""
    data = media.sparse_mkv(tmp_path / "sparse.mkv").read_bytes()
    job_id = _submit(client, data, "sparse.mkv")
    run_job_here(job_id)
    assert _segments(job_id) == 1
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded" and job["result"]["frames_analyzed"] == 1, job


def test_segments_are_capped_per_job(client, override_settings, tmp_path):
    data = media.write_video(tmp_path / "v.mp4", frames=40, fps=10.0).read_bytes()
    override_settings(RRR_SEGMENT_SECONDS="0.25", RRR_MAX_SEGMENTS="3")  # 12 samples, 1 each
    job_id = _submit(client, data, "v.mp4", sample_fps="3")
    run_job_here(job_id)
    assert _segments(job_id) == 3
    capped = client.get(f"/v1/jobs/{job_id}/frames?limit=1000").get_json()["frames"]
    override_settings(RRR_SEGMENT_SECONDS="1000", RRR_MAX_SEGMENTS="128")
    whole_id = _submit(client, data, "v.mp4", sample_fps="3")
    run_job_here(whole_id)
    assert _segments(whole_id) == 1
    whole = client.get(f"/v1/jobs/{whole_id}/frames?limit=1000").get_json()["frames"]
    assert capped == whole and [f["index"] for f in whole] == list(range(12))


def test_dense_video_keeps_one_row_per_sample(client, tmp_path):
    """An ordinary video is sampled exactly as before: every sample is a row."""
    data = media.write_video(tmp_path / "v.mp4", frames=40, fps=10.0).read_bytes()
    job_id = _submit(client, data, "v.mp4", sample_fps="3")
    run_job_here(job_id)
    frames = client.get(f"/v1/jobs/{job_id}/frames").get_json()["frames"]
    assert [f["index"] for f in frames] == list(range(12))


def test_eta_never_exceeds_the_deadline(client, override_settings):
    job_id = _submit(client, media.image_bytes(), "a.png")
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status="running",
                started_at=utcnow() - timedelta(seconds=100),
                progress_done=1,
                progress_total=2001,
            )
        )
    override_settings(RRR_JOB_DEADLINE_S="14400")
    eta = client.get(f"/v1/jobs/{job_id}").get_json()["progress"]["eta_s"]
    assert 14_000 <= eta <= 14_300  # 200,000 s at this pace, but the job stops at 4 h
