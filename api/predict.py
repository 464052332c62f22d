"""bp: the prototype's synchronous endpoints, kept for existing clients.

Each one submits an ordinary job and waits (bounded by RRR_SYNC_TIMEOUT_S) for it to finish,
then answers in the prototype's response shape. A job still running at the deadline is not lost:
the 504 answer carries its id and Location for polling.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, jsonify, request

from api.errors import error_response, status_for_failed_job
from api.security import current_owner
from api.uploads import submit
from shared import jobs
from shared.config import settings
from shared.db import session_scope
from shared.errors import TooManyRequests
from shared.models import Job, JobStatus

bp = Blueprint("predict", __name__)
POLL_INTERVAL_S = 0.05
VERDICT = ("prediction", "confidence", "probability_fake", "probability_real")


def _wait(job_id: str) -> Job:
    deadline = time.monotonic() + settings.sync_timeout_s
    while True:
        with session_scope() as session:
            job = jobs.get_job(session, job_id, current_owner())
            if JobStatus(job.status).is_terminal() or time.monotonic() > deadline:
                return job
        time.sleep(POLL_INTERVAL_S)


class _Waiting:
    """How many requests of this process are waiting for a job; at most RRR_SYNC_MAX_WAITING,
    so that waits never hold every request thread (health checks and polls still answer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._lock:
            if self.count >= settings.sync_max_waiting:
                raise TooManyRequests(
                    f"{self.count} synchronous requests are already waiting here; retry "
                    "shortly, or submit to POST /v1/jobs and poll the job instead",
                    code="too_many_waiting",
                    retry_after_s=5,
                )
            self.count += 1
        try:
            yield
        finally:
            with self._lock:
                self.count -= 1


waiting = _Waiting()


def _finished(expect: str) -> tuple[Job | None, Any]:
    with waiting.slot():  # refused before anything is stored
        job, _ = submit(request, expect=expect)
        job = _wait(job.id)
    if job.status == JobStatus.SUCCEEDED:
        return job, None
    if job.status == JobStatus.FAILED:
        code, message = job.error_code or "error", job.error_message or "the job failed"
        status = status_for_failed_job(job.error_code)
        return None, error_response(status, code, message, job_id=job.id)
    if job.status == JobStatus.CANCELED:
        return None, error_response(409, "job_canceled", "the job was canceled", job_id=job.id)
    response, _ = error_response(
        504,
        "timeout",
        f"the job did not finish within {settings.sync_timeout_s:g} s; poll its Location",
        job_id=job.id,
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return None, (response, 504)


def _seed_prediction(prediction: str | None, p: float | None, threshold: float) -> str | None:
    """The prototype knew only FAKE and REAL: an UNCERTAIN verdict answers with the side of the
    threshold its score is on (``uncertain`` says the rest)."""
    if prediction != "UNCERTAIN" or p is None:
        return prediction
    return "FAKE" if p >= threshold else "REAL"


def _verdict(result: dict[str, Any]) -> dict[str, Any]:
    body = {key: result.get(key) for key in VERDICT}
    body["prediction"] = _seed_prediction(
        result.get("prediction"), result.get("probability_fake"), result["threshold"]
    )
    body["uncertain"] = result.get("prediction") == "UNCERTAIN"
    return body


def _image_shape(result: dict[str, Any]) -> dict[str, Any]:
    return {
        **_verdict(result),
        "faces_detected": len(result.get("faces", [])),
        "faces": result.get("faces", []),
        "threshold": result.get("threshold"),
    }


@bp.post("/predict")
def predict_image():
    job, failure = _finished("image")
    if failure is not None:
        return failure
    body = _image_shape(job.result)
    body.update(filename=job.inputs[0]["filename"], job_id=job.id)
    return jsonify(body)


@bp.post("/predict/batch")
def predict_batch():
    job, failure = _finished("batch")
    if failure is not None:
        return failure
    results, errors = [], []
    for item in job.result["items"]:
        if "error" in item:
            errors.append(
                {
                    "filename": item["filename"],
                    "error": item["error"]["message"],
                    "code": item["error"]["code"],
                }
            )
        else:
            results.append({"filename": item["filename"], **_image_shape(item)})
    return jsonify(
        {"results": results, "errors": errors, "summary": job.result["summary"], "job_id": job.id}
    )


@bp.post("/predict/video")
def predict_video():
    job, failure = _finished("video")
    if failure is not None:
        return failure
    result = job.result
    with session_scope() as session:
        frames = jobs.list_frames(session, job.id, offset=0, limit=settings.max_frames)
        frame_results = [
            {
                "frame": row.frame_number,
                "timestamp": row.timestamp_s,
                "probability_fake": row.probability_fake,
                "prediction": (
                    None
                    if row.probability_fake is None
                    else "FAKE"
                    if row.probability_fake >= result["threshold"]
                    else "REAL"
                ),
                "faces_detected": len(row.faces),
            }
            for row in frames
        ]
    body = _verdict(result)
    body.update(
        {
            key: result.get(key)
            for key in (
                "frames_analyzed",
                "frames_with_faces",
                "duration_s",
                "fps",
                "sample_fps",
                "threshold",
                "suspicious_segments",
            )
        }
    )
    body.update(frame_results=frame_results, job_id=job.id)
    return jsonify(body)
