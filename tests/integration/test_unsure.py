"""The UNCERTAIN verdict end to end: a deployment that widens the unsure band
(RRR_UNSURE_MARGIN) sees it in job results, batch summaries, video verdicts and, mapped to the
prototype's two verdicts, in the synchronous shims."""

from __future__ import annotations

import pytest
import requests

from tests.support.service import Client, Processes, free_port

pytestmark = pytest.mark.integration


def test_unsure_band_through_the_api_and_the_shims(processes: Processes, face_crops, video_paths):
    # a band as wide as the whole scale: every face is too close to call
    processes.env.update(RRR_UNSURE_MARGIN="1.0")
    port = free_port()
    processes.start("up", "--port", str(port))
    api = Client(f"http://127.0.0.1:{port}")
    api.wait_ready()

    image = api.wait_job(api.submit([face_crops["fake"][0]]).json()["id"])
    result = image["result"]
    assert result["prediction"] == "UNCERTAIN" and result["unsure_margin"] == 1.0
    assert result["faces"] and {f["prediction"] for f in result["faces"]} == {"UNCERTAIN"}
    assert 0.0 <= result["probability_fake"] <= 1.0
    listed = api.get("/v1/jobs", params={"limit": 1}).json()["jobs"][0]
    assert listed["result"]["prediction"] == "UNCERTAIN"

    batch = api.submit(face_crops["real"][:2], field="files").json()
    summary = api.wait_job(batch["id"])["result"]["summary"]
    assert summary["uncertain"] == summary["processed"] - summary["no_face"] > 0
    assert summary["fake"] == summary["real"] == 0

    files = {"file": (face_crops["real"][1].name, face_crops["real"][1].read_bytes())}
    sync = requests.post(f"{api.base}/predict", files=files, timeout=120)
    assert sync.status_code == 200, sync.text
    body = sync.json()
    # the prototype's clients know FAKE and REAL: the side of the threshold, flagged unsure
    assert body["uncertain"] is True
    expected = "FAKE" if body["probability_fake"] >= body["threshold"] else "REAL"
    assert body["prediction"] == expected

    video = next(p for p in video_paths if p.name == "abofeumbvv.mp4")
    files = {"file": (video.name, video.read_bytes())}
    sync = requests.post(f"{api.base}/predict/video", files=files, timeout=180)
    assert sync.status_code == 200, sync.text
    body = sync.json()
    assert body["uncertain"] is True and body["prediction"] in ("FAKE", "REAL")


def test_faces_too_small_to_judge_through_the_api_and_the_shims(
    processes: Processes, face_crops, video_paths
):
    # a minimum size larger than any face: every face is found, none is judged
    processes.env.update(RRR_MIN_FACE_PX="10000")
    port = free_port()
    processes.start("up", "--port", str(port))
    api = Client(f"http://127.0.0.1:{port}")
    api.wait_ready()

    result = api.wait_job(api.submit([face_crops["fake"][0]]).json()["id"])["result"]
    assert result["prediction"] == "UNCERTAIN" and result["too_small"] is True
    assert result["faces"] and all(f["too_small"] for f in result["faces"])
    assert {f["prediction"] for f in result["faces"]} == {"UNCERTAIN"}
    assert result["probability_fake"] == max(f["probability_fake"] for f in result["faces"])

    files = {"file": (face_crops["real"][1].name, face_crops["real"][1].read_bytes())}
    sync = requests.post(f"{api.base}/predict", files=files, timeout=120)
    assert sync.status_code == 200, sync.text
    assert sync.json()["uncertain"] is True

    video = next(p for p in video_paths if p.name == "abofeumbvv.mp4")
    job = api.wait_job(api.submit([video]).json()["id"], timeout=300)
    assert job["result"]["prediction"] == "UNCERTAIN" and job["result"]["too_small"] is True
    assert job["result"]["suspicious_segments"] == []
    frames = api.get(f"/v1/jobs/{job['id']}/frames", params={"limit": 5}).json()["frames"]
    faces = [face for frame in frames for face in frame["faces"]]
    assert faces and all(face["too_small"] for face in faces)
