"""bp: the prototype's synchronous endpoints, answering exactly as the prototype's API did.

Each one submits an ordinary job and waits (bounded by RRR_SYNC_TIMEOUT_S) for it to finish,
then answers in the prototype's shapes: its field names and types, its status codes and its
error strings (``{"error": "<string>"}``; api/errors.py adds the machine ``code`` beside it).
A job still running at the deadline is not lost: the 504 answer carries its id and Location.

Where this service knows more than the prototype did, the answer maps it onto the prototype's
fields: an UNCERTAIN verdict answers with the side of the threshold its score is on and
``uncertain: true``; ``threshold_applied`` says the decision threshold, not the larger class
probability, decided the verdict (the prototype's meaning); ``confidence`` is the probability of
the class answered. docs/api.md lists the mapping.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, jsonify, request

from api.errors import error_response
from api.security import current_owner
from api.uploads import submit
from api.waiting import wait_for, waiting
from shared import jobs
from shared.config import settings
from shared.db import session_scope
from shared.errors import BadRequest, MediaError, UnsupportedMedia
from shared.models import Job, JobStatus

bp = Blueprint("predict", __name__)

# the prototype's own error strings, which its page and its clients show or match
NO_FILE = "No file uploaded"
NO_FILES = "No files uploaded"
NOT_AN_IMAGE = "Could not decode image"
NO_FACE = "No face detected in the image"
NOT_A_VIDEO = "Could not open video file"
NO_FRAME_COUNT = "Invalid video: couldn't determine frame count"
NO_FACE_IN_VIDEO = "No faces detected in any analyzed frames"
# failures the prototype could not have had (the video's frame rate or count is unusable)
FRAME_COUNT_CODES = ("video_bad_fps", "video_no_frames")


def _wait(job_id: str) -> Job:
    return wait_for(job_id, current_owner(), settings.sync_timeout_s)


class _Refused(Exception):
    """An answer in the prototype's error shape, raised from deep inside a shim."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.response = error_response(status, code, message, **extra)
        self.response[0].headers.update(headers or {})


def _run(expect: str, unusable: str) -> Job:
    """Submit the request as a job and wait for it. Files the prototype could not have read
    (empty, not media, not this kind) are refused with its string ``unusable``."""
    with waiting.slot():  # refused before anything is stored
        try:
            job, _ = submit(request, expect=expect, ignore_unknown=True)
        except (UnsupportedMedia, MediaError) as exc:
            raise _Refused(400, unusable, exc.code) from None
        except BadRequest as exc:
            if exc.code in ("empty_file", "not_an_image", "not_a_video", "video_in_batch"):
                raise _Refused(400, unusable, exc.code) from None
            raise
        job = _wait(job.id)
    if job.status == JobStatus.CANCELED:
        raise _Refused(409, "the job was canceled", "job_canceled", job_id=job.id)
    if not JobStatus(job.status).is_terminal():
        raise _Refused(
            504,
            f"the job did not finish within {settings.sync_timeout_s:g} s; poll its Location",
            "timeout",
            job_id=job.id,
            headers={"Location": f"/v1/jobs/{job.id}", "Retry-After": "5"},
        )
    return job


def _media_fault(code: str | None) -> bool:
    """Whether a failed job's error is the upload's fault (the decoders' codes)."""
    return bool(code) and code.startswith(("image_", "video_", "empty_", "unsupported_"))


def _verdict(p_fake: float, threshold: float, prediction: str | None = None) -> dict[str, Any]:
    """The prototype's verdict fields from P(FAKE) and the threshold that decided it."""
    if prediction not in ("FAKE", "REAL"):  # UNCERTAIN, or a frame row (no verdict stored)
        prediction = "FAKE" if p_fake >= threshold else "REAL"
    p_real = 1.0 - p_fake
    larger = "REAL" if p_real > p_fake else "FAKE"  # the prototype's tie goes to FAKE
    return {
        "prediction": prediction,
        "confidence": p_fake if prediction == "FAKE" else p_real,
        "probability_fake": p_fake,
        "probability_real": p_real,
        "threshold_applied": prediction != larger,
    }


def _image_verdict(result: dict[str, Any]) -> dict[str, Any] | None:
    """None when no face was found (the prototype answered that as an error)."""
    p = result.get("probability_fake")
    if p is None:
        return None
    body = _verdict(p, result["threshold"], result.get("prediction"))
    body["uncertain"] = result.get("prediction") == "UNCERTAIN"
    body["threshold"] = result["threshold"]  # what threshold_applied refers to
    return body


@bp.post("/predict")
def predict_image():
    if not request.files.getlist("file"):
        return error_response(400, "missing_field", NO_FILE)
    try:
        job = _run("image", NOT_AN_IMAGE)
    except _Refused as refused:
        return refused.response
    if job.status == JobStatus.FAILED:
        if _media_fault(job.error_code):
            return error_response(400, job.error_code, NOT_AN_IMAGE, job_id=job.id)
        message = f"Image processing error: {job.error_message}"
        return error_response(500, job.error_code or "error", message, job_id=job.id)
    body = _image_verdict(job.result)
    if body is None:
        return error_response(400, "no_face", NO_FACE, job_id=job.id)
    return jsonify({**body, "job_id": job.id})


def _batch_error(item: dict[str, Any]) -> str:
    code = item["error"]["code"]
    if _media_fault(code) or code in ("video_in_batch", "undecodable_media"):
        return NOT_AN_IMAGE
    return f"Image processing error: {item['error']['message']}"


@bp.post("/predict/batch")
def predict_batch():
    if not request.files.getlist("files"):
        return error_response(400, "missing_field", NO_FILES)
    try:
        job = _run("batch", NOT_AN_IMAGE)
    except _Refused as refused:
        return refused.response
    if job.status == JobStatus.FAILED:  # the whole job, not one of its files
        message = f"Image processing error: {job.error_message}"
        return error_response(500, job.error_code or "error", message, job_id=job.id)
    results, errors = [], []
    for item in job.result["items"]:
        verdict = None if "error" in item else _image_verdict(item)
        if "error" in item:
            errors.append({"filename": item["filename"], "error": _batch_error(item)})
        elif verdict is None:
            errors.append({"filename": item["filename"], "error": NO_FACE})
        else:
            results.append({"filename": item["filename"], **verdict})
    summary = {"total": len(results) + len(errors), "processed": len(results)}
    summary["failed"] = len(errors)
    return jsonify({"results": results, "errors": errors, "summary": summary, "job_id": job.id})


def _frame_results(job: Job, threshold: float) -> list[dict[str, Any]]:
    """The frames in which a face was found, as the prototype listed them."""
    with session_scope() as session:
        rows = jobs.list_frames(session, job.id, offset=0, limit=settings.max_frames)
    return [
        {
            "frame_index": row.frame_number,
            "timestamp": row.timestamp_s,
            **_verdict(row.probability_fake, threshold),
        }
        for row in rows
        if row.probability_fake is not None
    ]


@bp.post("/predict/video")
def predict_video():
    started = time.monotonic()
    if not request.files.getlist("file"):
        return error_response(400, "missing_field", NO_FILE)
    try:
        job = _run("video", NOT_A_VIDEO)
    except _Refused as refused:
        return refused.response
    if job.status == JobStatus.FAILED:
        if job.error_code in FRAME_COUNT_CODES:
            return error_response(400, job.error_code, NO_FRAME_COUNT, job_id=job.id)
        if _media_fault(job.error_code):
            return error_response(400, job.error_code, NOT_A_VIDEO, job_id=job.id)
        message = f"Video processing error: {job.error_message}"
        return error_response(500, job.error_code or "error", message, job_id=job.id)
    result = job.result
    total_frames = int(result.get("frames_total") or 0)
    if result.get("probability_fake") is None:
        return error_response(
            400,
            "no_face",
            NO_FACE_IN_VIDEO,
            frames_analyzed=result["frames_analyzed"],
            total_frames=total_frames,
            job_id=job.id,
        )
    body = _image_verdict(result)
    assert body is not None
    frames_with_faces = int(result["frames_with_faces"])
    return jsonify(
        {
            "prediction": body["prediction"],
            "confidence": body["confidence"],
            "probability_real": body["probability_real"],
            "probability_fake": body["probability_fake"],
            "threshold_applied": body["threshold_applied"],
            "faces_detected": frames_with_faces,
            "frames_analyzed": result["frames_analyzed"],
            "frames_with_faces": frames_with_faces,
            "processing_time_seconds": round(time.monotonic() - started, 2),
            "total_frames": total_frames,
            "frame_results": _frame_results(job, result["threshold"]),
            "uncertain": body["uncertain"],
            "threshold": body["threshold"],
            "job_id": job.id,
        }
    )


def prototype_index() -> Response:
    """What the prototype's API answered at ``GET /``, plus this service's own entry points."""
    return jsonify(
        {
            "status": "API running",
            "endpoints": {
                "/predict": "Single image analysis",
                "/predict/batch": "Multiple images analysis",
                "/predict/video": f"Video analysis ({settings.sample_fps:g} frame/sec)",
                "/v1/jobs": "Asynchronous jobs: submit, poll, list, cancel",
                "/v1/openapi.json": "OpenAPI description of the API",
            },
        }
    )
