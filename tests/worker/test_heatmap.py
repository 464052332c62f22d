"""Heatmaps on demand: an image job's verdict comes without one; the first GET asks a worker
for it (202 until it is stored), a submit with heatmap=true gets it with the verdict."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from shared.config import settings
from tests.support import media
from tests.support.jobs import run_job_here
from worker.images import make_heatmap


def _submit(client, data: bytes, **form) -> str:
    response = client.post(
        "/v1/jobs",
        data={"file": (io.BytesIO(data), "face.jpg"), **form},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def _heatmap_file(job_id: str):
    return settings.storage_dir / job_id / "heatmap.png"


def test_heatmap_is_made_when_first_asked_for(client, face_crops):
    job_id = _submit(client, face_crops["fake"][0].read_bytes())
    run_job_here(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded" and job["result"]["faces"]
    assert job["result"]["heatmap"] is True and "explain" not in job["result"]["timings_ms"]
    assert job["links"]["heatmap"] == f"/v1/jobs/{job_id}/heatmap"
    assert not _heatmap_file(job_id).exists()  # the verdict alone: no heatmap drawn

    pending = client.get(f"/v1/jobs/{job_id}/heatmap")
    assert pending.status_code == 202 and pending.headers["Retry-After"] == "1"
    assert pending.get_json()["status"] == "preparing"

    make_heatmap(job_id)  # what the worker's rrr.make_heatmap task runs
    ready = client.get(f"/v1/jobs/{job_id}/heatmap")
    assert ready.status_code == 200 and ready.mimetype == "image/png"
    picture = np.asarray(Image.open(io.BytesIO(ready.data)))
    assert picture.shape[:2] == (job["result"]["height"], job["result"]["width"])
    # asked again, the stored picture is kept, byte for byte
    make_heatmap(job_id)
    assert client.get(f"/v1/jobs/{job_id}/heatmap").data == ready.data


def test_submit_can_ask_for_the_heatmap_with_the_verdict(client, face_crops):
    job_id = _submit(client, face_crops["real"][1].read_bytes(), heatmap="true")
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["params"]["heatmap"] is True
    run_job_here(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert "explain" in job["result"]["timings_ms"]
    response = client.get(f"/v1/jobs/{job_id}/heatmap")
    assert response.status_code == 200 and response.data.startswith(b"\x89PNG")


def test_no_face_has_no_heatmap_and_bad_values_are_refused(client, face_crops):
    job_id = _submit(client, media.image_bytes(size=(160, 120), fmt="JPEG"))
    run_job_here(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["result"]["prediction"] == "NO_FACE" and "heatmap" not in job["links"]
    response = client.get(f"/v1/jobs/{job_id}/heatmap")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "no_heatmap"
    make_heatmap(job_id)
    assert not _heatmap_file(job_id).exists()

    refused = client.post(
        "/v1/jobs",
        data={"file": (io.BytesIO(face_crops["real"][0].read_bytes()), "f.jpg"), "heatmap": "x"},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "invalid_field"
