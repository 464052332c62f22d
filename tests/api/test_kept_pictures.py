"""Pictures kept for job pages: a small JPEG of every image and batch item, and of every sampled
video frame with its face boxes, served by the API, bounded in size, and purged with the job."""

from __future__ import annotations

import io

from PIL import Image

from shared.config import settings
from tests.support import media
from tests.support.jobs import run_job_here
from worker import thumbnails
from worker.sweeper import purge_expired

VIDEO = "knqhpwoigk.mp4"


def _submit(client, data) -> str:
    response = client.post("/v1/jobs", data=data, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def _jpeg(response, longest: int) -> Image.Image:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "image/jpeg"
    assert len(response.data) <= thumbnails.MAX_BYTES
    picture = Image.open(io.BytesIO(response.data))
    picture.load()
    assert picture.format == "JPEG" and max(picture.size) <= longest
    return picture


def _error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code


def test_image_job_keeps_a_thumbnail_with_the_analysed_shape(client, face_crops):
    crop = face_crops["fake"][0]
    job_id = _submit(client, {"file": (io.BytesIO(crop.read_bytes()), "face.jpg")})
    run_job_here(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    result = job["result"]
    assert job["status"] == "succeeded" and result["thumbnail"] is True
    assert job["links"]["thumbnail"] == f"/v1/jobs/{job_id}/thumbnails/0"
    picture = _jpeg(client.get(job["links"]["thumbnail"]), thumbnails.IMAGE_SIDE)
    # the same aspect as the analysed image, so the face boxes (percent of it) line up
    assert abs(picture.width / picture.height - result["width"] / result["height"]) < 0.02
    _error(client.get(f"/v1/jobs/{job_id}/thumbnails/1"), 404, "no_image")
    _error(client.get(f"/v1/jobs/{job_id}/frames/0/image"), 404, "not_a_video_job")


def test_a_large_image_is_kept_small(client):
    big = media.image_bytes(size=(3000, 2000), fmt="JPEG")
    job_id = _submit(client, {"file": (io.BytesIO(big), "big.jpg")})
    run_job_here(job_id)
    assert client.get(f"/v1/jobs/{job_id}").get_json()["result"]["thumbnail"] is True
    picture = _jpeg(client.get(f"/v1/jobs/{job_id}/thumbnails/0"), thumbnails.IMAGE_SIDE)
    assert picture.size == (640, 427)


def test_batch_keeps_a_thumbnail_per_decodable_item(client, face_crops):
    files = [
        (io.BytesIO(face_crops["real"][0].read_bytes()), "a.jpg"),
        (io.BytesIO(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4), "broken.jpg"),
        (io.BytesIO(face_crops["fake"][1].read_bytes()), "b.jpg"),
    ]
    job_id = _submit(client, {"files": files})
    run_job_here(job_id)
    items = client.get(f"/v1/jobs/{job_id}").get_json()["result"]["items"]
    assert [item["thumbnail"] for item in items] == [True, False, True]
    for item in items:
        response = client.get(f"/v1/jobs/{job_id}/thumbnails/{item['index']}")
        if item["thumbnail"]:
            _jpeg(response, thumbnails.ITEM_SIDE)
        else:
            _error(response, 404, "no_image")


def test_video_keeps_every_sampled_frame_with_its_boxes(client, video_paths):
    clip = next(p for p in video_paths if p.name == VIDEO)
    job_id = _submit(client, {"file": (io.BytesIO(clip.read_bytes()), "clip.mp4")})
    run_job_here(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded" and job["result"]["frame_images"] is True
    frames = client.get(f"/v1/jobs/{job_id}/frames?limit=1000").get_json()["frames"]
    assert len(frames) == job["result"]["frames_analyzed"] > 0
    for frame in frames:
        picture = _jpeg(
            client.get(f"/v1/jobs/{job_id}/frames/{frame['index']}/image"), thumbnails.FRAME_SIDE
        )
        ratio = job["result"]["width"] / job["result"]["height"]
        assert abs(picture.width / picture.height - ratio) < 0.02
    _error(client.get(f"/v1/jobs/{job_id}/frames/99999/image"), 404, "no_image")
    _error(client.get(f"/v1/jobs/{job_id}/thumbnails/0"), 404, "not_an_image_job")


def test_frame_boxes_are_drawn_in_their_verdicts_colour():
    import numpy as np

    grey = np.full((720, 1280, 3), 128, dtype=np.uint8)
    face = {"box": [400, 200, 200, 240], "prediction": "FAKE"}
    drawn = np.asarray(Image.open(io.BytesIO(thumbnails.frame_image(grey, [face]))).convert("RGB"))
    assert drawn.shape == (270, 480, 3)
    # the box's left edge, scaled by 480/1280: red on grey (JPEG shifts colours a little)
    r, g, b = (int(v) for v in drawn[110, 150])
    assert r > 170 and g < 100 and b < 100
    assert abs(int(drawn[20, 20, 0]) - 128) < 10  # away from the box: untouched


def test_kept_pictures_are_purged_with_the_job(client, face_crops, override_settings):
    job_id = _submit(client, {"file": (io.BytesIO(face_crops["real"][0].read_bytes()), "f.jpg")})
    run_job_here(job_id)
    assert (settings.storage_dir / job_id / "thumb_0.jpg").is_file()
    override_settings(RRR_RETENTION_HOURS="0")
    assert job_id in purge_expired()
    assert not (settings.storage_dir / job_id).exists()
    _error(client.get(f"/v1/jobs/{job_id}/thumbnails/0"), 404, "job_not_found")


def test_a_canceled_job_keeps_no_pictures(client, face_crops):
    job_id = _submit(client, {"file": (io.BytesIO(face_crops["real"][0].read_bytes()), "f.jpg")})
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    run_job_here(job_id)  # a late task message finds the job canceled and keeps nothing
    assert not (settings.storage_dir / job_id).exists()
    _error(client.get(f"/v1/jobs/{job_id}/thumbnails/0"), 404, "no_image")


def test_kept_pictures_are_visible_only_to_the_jobs_key(client, face_crops, override_settings):
    override_settings(RRR_API_KEYS="key-alpha-0123456789,key-bravo-9876543210")
    alpha, bravo = {"X-API-Key": "key-alpha-0123456789"}, {"X-API-Key": "key-bravo-9876543210"}
    response = client.post(
        "/v1/jobs",
        headers=alpha,
        data={"file": (io.BytesIO(face_crops["real"][0].read_bytes()), "f.jpg")},
        content_type="multipart/form-data",
    )
    job_id = response.get_json()["id"]
    run_job_here(job_id)
    path = f"/v1/jobs/{job_id}/thumbnails/0"
    _jpeg(client.get(path, headers=alpha), thumbnails.IMAGE_SIDE)
    _error(client.get(path, headers=bravo), 404, "job_not_found")
    assert client.get(path).status_code == 401
