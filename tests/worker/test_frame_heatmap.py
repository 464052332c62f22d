"""Heatmaps of sampled video frames, on demand: the first GET asks a worker (202 until it is
stored); the worker decodes that one frame again by the analysis's sampling rule and draws the
overlay over the faces of its row, at most 640 px, kept with the job."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from detection.analyzer import get_analyzer
from detection.faces import crop_region
from detection.media import probe_video, sample_frames
from shared.config import settings
from tests.support import media
from tests.support.jobs import run_job_here
from worker import thumbnails
from worker.videos import make_frame_heatmap

VIDEO = "knqhpwoigk.mp4"


def _video_job(client, video_paths, **form) -> tuple[str, dict, list[dict]]:
    clip = next(p for p in video_paths if p.name == VIDEO)
    response = client.post(
        "/v1/jobs",
        data={"file": (io.BytesIO(clip.read_bytes()), "clip.mp4"), **form},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id = response.get_json()["id"]
    run_job_here(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded", job
    frames = client.get(f"/v1/jobs/{job_id}/frames?limit=1000").get_json()["frames"]
    return job_id, job, frames


def _error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code


@pytest.mark.parametrize("sampling", ["exact", "keyframes"])
def test_frame_heatmap_is_that_frame_with_its_faces_overlaid(client, video_paths, sampling):
    # exact at 2 samples/s: most samples are not on a keyframe, so the frame must be found by
    # its timestamp; keyframes: the keyframe at or before it, as the analysis took
    job_id, job, frames = _video_job(client, video_paths, sample_fps="2", sampling=sampling)
    frame = [f for f in frames if f["faces"]][-1]  # a late one: not the video's first frame
    assert frame["index"] > 0 or sampling == "keyframes"
    make_frame_heatmap(job_id, frame["index"])  # what the rrr.make_frame_heatmap task runs
    response = client.get(f"/v1/jobs/{job_id}/frames/{frame['index']}/heatmap")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert len(response.data) <= thumbnails.MAX_BYTES
    drawn = np.asarray(Image.open(io.BytesIO(response.data)).convert("RGB")).astype(np.float32)
    width, height = job["result"]["width"], job["result"]["height"]
    scale = thumbnails.IMAGE_SIDE / max(width, height)
    assert drawn.shape[:2] == (round(height * scale), round(width * scale))

    # the same sample decoded in a pass over the whole video, as the analysis did
    clip = next(p for p in video_paths if p.name == VIDEO)
    samples = sample_frames(clip, probe_video(clip), 2.0, 7200, sampling=sampling)
    sample = next(s for s in samples if s.index == frame["index"])
    assert sample.frame_number == frame["frame_number"]
    plain = thumbnails.shrink(sample.rgb, thumbnails.IMAGE_SIDE)[0].astype(np.float32)
    inside = np.zeros(drawn.shape[:2], dtype=bool)
    for face in frame["faces"]:
        x0, y0, x1, y1 = crop_region(
            sample.rgb.shape, tuple(face["box"]), get_analyzer().face_padding
        )
        inside[round(y0 * scale) : round(y1 * scale), round(x0 * scale) : round(x1 * scale)] = True
    difference = np.abs(drawn - plain).mean(axis=2)
    # outside the faces' regions: that very frame (JPEG noise only); inside: the colour overlay
    assert difference[~inside].mean() < 4.0, difference[~inside].mean()
    assert difference[inside].mean() > 20.0, difference[inside].mean()

    # asked again, the stored picture is kept
    make_frame_heatmap(job_id, frame["index"])
    assert client.get(f"/v1/jobs/{job_id}/frames/{frame['index']}/heatmap").data == response.data


def test_frame_heatmap_is_made_on_request_and_refused_where_there_is_none(
    client, video_paths, face_crops, tmp_path
):
    job_id, _job, frames = _video_job(client, video_paths)
    with_face = next(f for f in frames if f["faces"])
    url = f"/v1/jobs/{job_id}/frames/{with_face['index']}/heatmap"
    pending = client.get(url)
    assert pending.status_code == 202 and int(pending.headers["Retry-After"]) >= 1
    assert pending.get_json()["status"] == "preparing" and pending.headers["Location"] == url
    make_frame_heatmap(job_id, with_face["index"])
    ready = client.get(url)
    assert ready.status_code == 200 and ready.data.startswith(b"\xff\xd8")
    kept = settings.storage_dir / job_id / f"frame_{with_face['index']}_heatmap.jpg"
    assert kept.read_bytes() == ready.data  # kept under the job's prefix: purged with it

    _error(client.get(f"/v1/jobs/{job_id}/frames/99999/heatmap"), 404, "no_such_frame")
    _error(client.get("/v1/jobs/nosuchjob000/frames/0/heatmap"), 404, "job_not_found")
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert not kept.exists()

    image = client.post(
        "/v1/jobs",
        data={"file": (io.BytesIO(face_crops["real"][0].read_bytes()), "face.jpg")},
        content_type="multipart/form-data",
    ).get_json()["id"]
    _error(client.get(f"/v1/jobs/{image}/frames/0/heatmap"), 404, "not_a_video_job")

    noise = media.write_video(tmp_path / "noise.mp4", frames=20, fps=10.0).read_bytes()
    faceless = client.post(
        "/v1/jobs",
        data={"file": (io.BytesIO(noise), "noise.mp4")},
        content_type="multipart/form-data",
    ).get_json()["id"]
    _error(client.get(f"/v1/jobs/{faceless}/frames/0/heatmap"), 409, "job_not_finished")
    run_job_here(faceless)
    rows = client.get(f"/v1/jobs/{faceless}/frames").get_json()["frames"]
    assert rows and not any(row["faces"] for row in rows)
    _error(client.get(f"/v1/jobs/{faceless}/frames/0/heatmap"), 404, "no_heatmap")
