"""The prototype's synchronous API, driven as its own clients drove it.

Everything asserted here is what the prototype's Flask API answered (its notebook's API cell) and
what its Django page reads (``frontendapp/templates/deepfake_form.html``): field names and JSON
types, status codes, the error strings. Jobs run in this process through the workers' own task
functions (no broker), on real media.
"""

from __future__ import annotations

import io

import pytest

from tests.support import media
from tests.support.jobs import run_job_here

VERDICT = {"prediction", "confidence", "probability_fake", "probability_real", "threshold_applied"}
VIDEO = VERDICT | {
    "faces_detected",
    "frames_analyzed",
    "frames_with_faces",
    "processing_time_seconds",
    "total_frames",
    "frame_results",
}
FRAME = VERDICT | {"frame_index", "timestamp"}
NO_FILE = "No file uploaded"
NO_FACE = "No face detected in the image"
NOT_A_VIDEO = "Could not open video file"


@pytest.fixture()
def sync(client, monkeypatch):
    """The test client, with each submitted job run here while the endpoint waits for it."""
    import api.predict

    wait = api.predict._wait
    monkeypatch.setattr(api.predict, "_wait", lambda job_id: run_job_here(job_id) or wait(job_id))
    return client


def _post(client, path: str, files: list[tuple[str, str, bytes]], **headers):
    data: dict = {}
    for field, name, content in files:
        data.setdefault(field, []).append((io.BytesIO(content), name))
    return client.post(path, data=data, content_type="multipart/form-data", headers=headers)


def _error(response, status: int, message: str) -> dict:
    """The prototype's error: ``{"error": "<string>"}`` with its status code."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == message
    return body


def _check_verdict(body: dict) -> None:
    """Types and meaning as the prototype's page reads them."""
    assert set(body) >= VERDICT
    assert body["prediction"] in ("FAKE", "REAL")
    for key in ("confidence", "probability_fake", "probability_real"):
        assert isinstance(body[key], float) and 0.0 <= body[key] <= 1.0, key
    assert isinstance(body["threshold_applied"], bool)
    assert body["probability_fake"] + body["probability_real"] == pytest.approx(1.0)
    chosen = "probability_fake" if body["prediction"] == "FAKE" else "probability_real"
    assert body["confidence"] == body[chosen]
    if "threshold" in body:  # frame rows do not repeat it
        side = "FAKE" if body["probability_fake"] >= body["threshold"] else "REAL"
        assert body["prediction"] == side
    larger = "REAL" if body["probability_real"] > body["probability_fake"] else "FAKE"
    # the prototype's flag: the threshold, not the larger probability, made the verdict
    assert body["threshold_applied"] == (body["prediction"] != larger)


def test_index_is_json_for_json_clients_and_the_page_for_browsers(client):
    index = client.get("/", headers={"Accept": "application/json"})
    assert index.status_code == 200 and index.is_json
    body = index.get_json()
    assert body["status"] == "API running"
    assert {"/predict", "/predict/batch", "/predict/video"} <= set(body["endpoints"])
    page = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "Accept" in page.headers["Vary"] and "Accept" in index.headers["Vary"]


def test_missing_uploads_answer_the_prototypes_errors(client, face_crops):
    _error(client.post("/predict"), 400, "No file uploaded")
    _error(client.post("/predict/video"), 400, "No file uploaded")
    _error(client.post("/predict/batch"), 400, "No files uploaded")
    # the field the other endpoint takes is no upload for this one
    crop = face_crops["real"][0]
    _error(_post(client, "/predict", [("files", crop.name, crop.read_bytes())]), 400, NO_FILE)


def test_single_image(sync, face_crops):
    crop = face_crops["fake"][0]
    response = _post(sync, "/predict", [("file", crop.name, crop.read_bytes())])
    assert response.status_code == 200, response.get_data(as_text=True)
    _check_verdict(response.get_json())


def test_single_image_errors(sync):
    text = _post(sync, "/predict", [("file", "face.jpg", b"plain text, not an image")])
    _error(text, 400, "Could not decode image")
    empty = _post(sync, "/predict", [("file", "face.jpg", b"")])
    _error(empty, 400, "Could not decode image")
    truncated = media.image_bytes(size=(640, 480), fmt="JPEG")[:2000]
    _error(_post(sync, "/predict", [("file", "cut.jpg", truncated)]), 400, "Could not decode image")
    noise = media.image_bytes(size=(320, 240))
    _error(_post(sync, "/predict", [("file", "noise.png", noise)]), 400, NO_FACE)


def test_batch_lists_results_and_errors(sync, face_crops):
    crops = [face_crops["real"][1], face_crops["fake"][1]]
    files = [("files", p.name, p.read_bytes()) for p in crops]
    files += [
        ("files", "notes.jpg", b"plain text, not an image"),
        ("files", "noise.png", media.image_bytes(size=(320, 240))),
    ]
    response = _post(sync, "/predict/batch", files)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert [r["filename"] for r in body["results"]] == [p.name for p in crops]
    for result in body["results"]:
        _check_verdict(result)
    assert body["errors"] == [
        {"filename": "notes.jpg", "error": "Could not decode image"},
        {"filename": "noise.png", "error": NO_FACE},
    ]
    assert body["summary"] == {"total": 4, "processed": 2, "failed": 2}


def test_batch_of_unusable_files_still_answers_200(sync):
    files = [("files", "a.jpg", b"not an image"), ("files", "b.png", b"")]
    response = _post(sync, "/predict/batch", files)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["results"] == []
    assert [e["error"] for e in body["errors"]] == ["Could not decode image"] * 2
    assert body["summary"] == {"total": 2, "processed": 0, "failed": 2}


def test_video(sync, video_paths):
    video = next(p for p in video_paths if p.name == "abofeumbvv.mp4")
    response = _post(sync, "/predict/video", [("file", video.name, video.read_bytes())])
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) >= VIDEO
    _check_verdict(body)
    for key in ("faces_detected", "frames_analyzed", "frames_with_faces", "total_frames"):
        assert isinstance(body[key], int), key
    assert isinstance(body["processing_time_seconds"], float | int)
    assert body["processing_time_seconds"] >= 0
    assert body["total_frames"] >= body["frames_analyzed"] >= body["faces_detected"] > 0
    frames = body["frame_results"]
    # only frames in which a face was found, as the prototype listed them
    assert len(frames) == body["faces_detected"] == body["frames_with_faces"]
    for frame in frames:
        assert set(frame) >= FRAME
        assert isinstance(frame["frame_index"], int) and frame["frame_index"] >= 0
        assert isinstance(frame["timestamp"], float | int)
        _check_verdict(frame)
    indices = [f["frame_index"] for f in frames]
    assert indices == sorted(indices)


def test_video_errors(sync, tmp_path):
    noise = media.write_video(tmp_path / "noise.mp4", frames=20, fps=10.0)
    response = _post(sync, "/predict/video", [("file", "noise.mp4", noise.read_bytes())])
    body = _error(response, 400, "No faces detected in any analyzed frames")
    assert body["frames_analyzed"] >= 1 and body["total_frames"] == 20
    text = _post(sync, "/predict/video", [("file", "clip.mp4", b"plain text, not a video")])
    _error(text, 400, "Could not open video file")
    picture = media.image_bytes(fmt="JPEG")
    _error(_post(sync, "/predict/video", [("file", "x.mp4", picture)]), 400, NOT_A_VIDEO)


def test_other_failures_keep_the_string_shape(client, override_settings):
    wrong_method = client.get("/predict")
    assert wrong_method.status_code == 405 and isinstance(wrong_method.get_json()["error"], str)
    assert wrong_method.headers["Allow"] == "OPTIONS, POST"
    override_settings(RRR_API_KEYS="k" * 32)
    refused = client.post("/predict")
    assert refused.status_code == 401 and isinstance(refused.get_json()["error"], str)


def test_cors_lets_the_prototype_page_on_another_origin_read_answers(
    sync, face_crops, override_settings
):
    page = "http://localhost:8001"  # where the prototype's Django page runs
    crop = face_crops["real"][2]
    closed = _post(sync, "/predict", [("file", crop.name, crop.read_bytes())], Origin=page)
    assert "Access-Control-Allow-Origin" not in closed.headers  # off unless configured
    override_settings(RRR_CORS_ORIGINS=page)
    preflight = sync.options(
        "/predict/batch",
        headers={"Origin": page, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == page
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    answer = _post(sync, "/predict", [("file", crop.name, crop.read_bytes())], Origin=page)
    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == page
    assert "Origin" in answer.headers["Vary"]
    other = _post(sync, "/predict", [("file", "x.jpg", b"")], Origin="http://elsewhere.test")
    assert "Access-Control-Allow-Origin" not in other.headers
    override_settings(RRR_CORS_ORIGINS="*")
    anywhere = sync.get("/", headers={"Origin": "http://elsewhere.test"})
    assert anywhere.headers["Access-Control-Allow-Origin"] == "http://elsewhere.test"
