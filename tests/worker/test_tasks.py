"""The tasks: dispatch by job kind, and what a video job's worker keeps to itself."""

from __future__ import annotations

import io

from shared.db import session_scope
from shared.models import Job, JobKind
from tests.support import media
from tests.support.jobs import run_job_here
from worker.tasks import RUNNERS


def test_every_job_kind_has_a_runner():
    assert set(RUNNERS) == set(JobKind)


def test_video_probe_is_kept_from_the_client(client, tmp_path, face_crops):
    video = media.write_video(tmp_path / "clip.mp4", frames=20, face_from=face_crops["real"][0])
    response = client.post(
        "/v1/jobs",
        data={"file": (io.BytesIO(video.read_bytes()), "clip.mp4"), "sample_fps": "2"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    run_job_here(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded", job
    assert set(job["params"]) == {"sample_fps", "max_frames", "sampling"}
    assert "probe" not in job and "request_sha256" not in job
    with session_scope() as session:
        row = session.get(Job, job_id)
        assert row.probe["frame_count"] == 20 and len(row.request_sha256) == 64
