"""The service on an object store, with real processes: `rrr api` and `rrr worker` keep every
upload and heatmap in S3 (moto's server on 127.0.0.1), and nothing on a local upload directory."""

from __future__ import annotations

import time

import pytest
import requests

from tests.support.service import Processes, start_service

pytestmark = pytest.mark.integration


def test_jobs_run_on_object_storage_alone(
    processes: Processes, redis_url, postgres_url, s3_server, tmp_path, face_crops, video_paths
):
    bucket = s3_server.new_bucket()
    upload_dir = tmp_path / "no-uploads-here"
    processes.env.update(
        RRR_DATABASE_URL=postgres_url,
        RRR_BROKER_URL=redis_url,
        RRR_STORAGE_DIR=str(upload_dir),
        RRR_SEGMENT_SECONDS="4",
        RRR_INFERENCE_THREADS="1",
        **s3_server.env(bucket, prefix="rrr"),
    )
    api = start_service(processes, workers=1)

    image = api.submit([face_crops["fake"][0]]).json()
    batch = api.submit(face_crops["real"][:2], field="files").json()
    video = next(p for p in video_paths if p.name == "western_fake.mp4")
    clip = api.submit([video], sample_fps="1").json()
    for job in (image, batch, clip):
        done = api.wait_job(job["id"], timeout=300)
        assert done["status"] == "succeeded", done
    assert api.wait_job(clip["id"])["result"]["segments"]["count"] >= 2

    # drawn by a worker when first asked for (202 until then), then kept in the store
    deadline = time.monotonic() + 120
    while (heatmap := api.get(f"/v1/jobs/{image['id']}/heatmap")).status_code == 202:
        assert time.monotonic() < deadline, "the heatmap was never drawn"
        time.sleep(0.5)
    assert heatmap.status_code == 200 and heatmap.content.startswith(b"\x89PNG")
    keys = s3_server.keys(bucket)
    assert f"rrr/{image['id']}/0.jpg" in keys
    assert f"rrr/{image['id']}/heatmap.png" in keys
    assert f"rrr/{clip['id']}/0.mp4" in keys
    assert {f"rrr/{batch['id']}/0.jpg", f"rrr/{batch['id']}/1.jpg"} <= set(keys)
    with open(video, "rb") as fh:
        stored = s3_server.client().get_object(Bucket=bucket, Key=f"rrr/{clip['id']}/0.mp4")
        assert stored["Body"].read() == fh.read()

    # a canceled job's objects are deleted with it
    queued = api.submit([video], sample_fps="1").json()
    canceled = requests.post(f"{api.base}/v1/jobs/{queued['id']}/cancel", timeout=30)
    assert canceled.status_code == 200, canceled.text
    assert not [k for k in s3_server.keys(bucket) if k.startswith(f"rrr/{queued['id']}/")]
    # and a finished job erased early takes its objects with it
    erased = requests.delete(f"{api.base}/v1/jobs/{image['id']}", timeout=30)
    assert erased.status_code == 204, erased.text
    assert not [k for k in s3_server.keys(bucket) if k.startswith(f"rrr/{image['id']}/")]
    assert not upload_dir.exists()
