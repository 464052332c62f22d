"""The whole path with real processes: upload -> SQL job -> broker -> Celery worker -> poll."""

from __future__ import annotations

import pytest
import requests

from tests.support.service import Client, Processes, free_port

pytestmark = pytest.mark.integration

IMAGE_RESULT_KEYS = {
    "prediction",
    "probability_fake",
    "probability_real",
    "confidence",
    "threshold",
    "faces",
    "model",
    "timings_ms",
}
VIDEO_RESULT_KEYS = {
    "prediction",
    "probability_fake",
    "frames_total",
    "frames_analyzed",
    "frames_with_faces",
    "duration_s",
    "fps",
    "sample_fps",
    "suspicious_segments",
}


def _check_image_batch_video(api: Client, face_crops, video) -> None:
    image = api.submit([face_crops["fake"][0]])
    assert image.status_code == 202 and image.headers["Location"].startswith("/v1/jobs/")
    batch = api.submit(face_crops["real"][:3] + face_crops["fake"][:2], field="files")
    assert batch.status_code == 202
    clip = api.submit([video], sample_fps="1")
    assert clip.status_code == 202

    job = api.wait_job(image.json()["id"])
    assert job["status"] == "succeeded", job
    assert set(job["result"]) >= IMAGE_RESULT_KEYS
    assert job["progress"] == {"done": 1, "total": 1, "eta_s": None}
    assert job["started_at"] and job["finished_at"]
    assert job["result"]["heatmap"] is True and "explain" not in job["result"]["timings_ms"]
    # made by a worker when first asked for: 202 until then
    first = api.get(job["links"]["heatmap"])
    assert first.status_code in (200, 202)
    heatmap = api.wait_heatmap(job["id"])
    assert heatmap.status_code == 200 and heatmap.headers["Content-Type"] == "image/png"
    assert heatmap.content.startswith(b"\x89PNG")
    _check_kept_jpeg(api, job["links"]["thumbnail"])
    asked = api.wait_job(api.submit([face_crops["real"][0]], heatmap="true").json()["id"])
    assert "explain" in asked["result"]["timings_ms"]
    assert api.get(asked["links"]["heatmap"]).status_code == 200  # made with the verdict

    job = api.wait_job(batch.json()["id"])
    assert job["status"] == "succeeded", job
    summary = job["result"]["summary"]
    assert summary["total"] == 5 and summary["processed"] + summary["failed"] == 5
    assert [item["index"] for item in job["result"]["items"]] == list(range(5))
    for item in job["result"]["items"]:  # the page's thumbnails, kept by the worker
        assert item["thumbnail"] is ("error" not in item)
        if item["thumbnail"]:
            _check_kept_jpeg(api, f"/v1/jobs/{job['id']}/thumbnails/{item['index']}")

    job = api.wait_job(clip.json()["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert set(result) >= VIDEO_RESULT_KEYS
    assert result["frames_analyzed"] == 10 and result["frames_with_faces"] >= 8
    page = api.get(f"/v1/jobs/{job['id']}/frames", params={"limit": 4}).json()
    assert page["total"] == 10 and len(page["frames"]) == 4 and page["next_offset"] == 4
    assert page["frames"][1]["timestamp_s"] == pytest.approx(1.0, abs=0.05)
    assert result["frame_images"] is True
    everything = api.get(f"/v1/jobs/{job['id']}/frames", params={"limit": 1000}).json()
    for frame in everything["frames"]:  # every sampled frame, with its boxes drawn in
        _check_kept_jpeg(api, f"/v1/jobs/{job['id']}/frames/{frame['index']}/image")


def _check_kept_jpeg(api: Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.content.startswith(b"\xff\xd8") and len(response.content) <= 160_000


def test_production_configuration_redis_postgres(
    processes: Processes, redis_url, postgres_url, face_crops, video_paths
):
    processes.env.update(RRR_DATABASE_URL=postgres_url, RRR_BROKER_URL=redis_url)
    upgrade = processes.run("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    port = free_port()
    processes.start("api", "--port", str(port))
    processes.start("worker")
    api = Client(f"http://127.0.0.1:{port}")
    api.wait_ready()
    video = next(p for p in video_paths if p.name == "abofeumbvv.mp4")
    _check_image_batch_video(api, face_crops, video)

    # a running video can be canceled; the worker then goes on to the next job
    long_job = api.submit([video], sample_fps="10").json()
    while api.get(f"/v1/jobs/{long_job['id']}").json()["status"] == "queued":
        pass
    cancel = f"{api.base}/v1/jobs/{long_job['id']}/cancel"
    assert requests.post(cancel, timeout=10).status_code == 200
    after = api.submit([face_crops["real"][4]]).json()
    assert api.wait_job(after["id"])["status"] == "succeeded"
    assert api.get(f"/v1/jobs/{long_job['id']}").json()["status"] == "canceled"

    # the prototype's synchronous endpoints answer in its shapes
    files = {"file": (face_crops["real"][5].name, face_crops["real"][5].read_bytes())}
    sync = requests.post(f"{api.base}/predict", files=files, timeout=120)
    assert sync.status_code == 200, sync.text
    verdict = {"prediction", "confidence", "probability_fake", "probability_real"}
    assert set(sync.json()) >= verdict | {"threshold_applied"}
    many = [("files", (p.name, p.read_bytes())) for p in face_crops["fake"][3:5]]
    many.append(("files", ("notes.jpg", b"plain text, not an image")))
    sync = requests.post(f"{api.base}/predict/batch", files=many, timeout=120).json()
    assert len(sync["results"]) == 2 and len(sync["errors"]) == 1
    assert sync["summary"]["total"] == 3


def test_embedded_configuration_one_command(processes: Processes, face_crops, video_paths):
    port = free_port()
    processes.start("up", "--port", str(port))
    api = Client(f"http://127.0.0.1:{port}")
    api.wait_ready()
    video = next(p for p in video_paths if p.name == "brtujopkby.mp4")  # portrait
    _check_image_batch_video(api, face_crops, video)

    bad = api.submit([face_crops["real"][0]], field="wrong")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "missing_field"
    files = {"file": (video.name, video.read_bytes())}
    sync = requests.post(f"{api.base}/predict/video", files=files, timeout=180)
    assert sync.status_code == 200, sync.text
    body = sync.json()
    assert body["frames_analyzed"] == 10 and body["total_frames"] > 10
    assert len(body["frame_results"]) == body["faces_detected"] > 0  # frames with a face
    assert body["prediction"] in ("FAKE", "REAL")
