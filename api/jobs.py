"""bp: the /v1/jobs resource (submit, read, list, cancel, per-frame results)."""

from __future__ import annotations

import threading
import time

from flask import Blueprint, Response, jsonify, request

from api.schemas import (
    decode_cursor,
    encode_cursor,
    frame_json,
    job_json,
    parse_enum,
    parse_limit,
    parse_offset,
)
from api.security import current_owner
from api.uploads import submit
from shared import jobs
from shared.db import session_scope
from shared.errors import Conflict, NotFound
from shared.models import JobKind, JobStatus
from shared.queue import publish_heatmap
from shared.storage import get_storage, heatmap_key

bp = Blueprint("jobs", __name__, url_prefix="/v1")


@bp.post("/jobs")
def create():
    job, created = submit(request)
    response = jsonify(job_json(job))
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return response


@bp.get("/jobs/<job_id>")
def read(job_id: str):
    with session_scope() as session:
        return jsonify(job_json(jobs.get_job(session, job_id, current_owner())))


@bp.get("/jobs")
def index():
    limit = parse_limit(request.args, default=20, maximum=100)
    status = parse_enum(request.args, "status", JobStatus)
    kind = parse_enum(request.args, "kind", JobKind)
    cursor = request.args.get("cursor")
    before = decode_cursor(cursor) if cursor else None
    with session_scope() as session:
        page = jobs.list_jobs(
            session,
            limit=limit + 1,
            before=before,
            status=status,
            kind=kind,
            owner=current_owner(),
        )
        more = len(page) > limit
        page = page[:limit]
        return jsonify(
            {
                "jobs": [job_json(job, full=False) for job in page],
                "next_cursor": encode_cursor(page[-1]) if more else None,
            }
        )


@bp.delete("/jobs/<job_id>")
def cancel(job_id: str):
    with session_scope() as session:
        job = jobs.get_job(session, job_id, current_owner())
        if not jobs.mark_canceled(session, job_id):
            raise Conflict(
                f"the job is already {job.status} and cannot be canceled", code="job_not_cancelable"
            )
    # A running worker notices at its next progress update and stops.
    get_storage().delete_job(job_id)
    with session_scope() as session:
        return jsonify(job_json(jobs.get_job(session, job_id, current_owner())))


@bp.get("/jobs/<job_id>/frames")
def frames(job_id: str):
    limit = parse_limit(request.args, default=100, maximum=1000)
    offset = parse_offset(request.args)
    with session_scope() as session:
        job = jobs.get_job(session, job_id, current_owner())
        if job.kind != JobKind.VIDEO:
            raise NotFound("per-frame results exist only for video jobs", code="not_a_video_job")
        total = jobs.count_frames(session, job_id)
        rows = jobs.list_frames(session, job_id, offset=offset, limit=limit)
        next_offset = offset + len(rows) if offset + len(rows) < total else None
        return jsonify(
            {
                "job_id": job_id,
                "status": job.status,
                "total": total,
                "offset": offset,
                "limit": limit,
                "next_offset": next_offset,
                "frames": [frame_json(row) for row in rows],
            }
        )


@bp.get("/jobs/<job_id>/heatmap")
def heatmap(job_id: str):
    """The image with a Grad-CAM overlay on each face. Made by a worker when first asked for
    (the API never loads the model): until it is stored, 202 with Retry-After; then the PNG."""
    with session_scope() as session:
        job = jobs.get_job(session, job_id, current_owner())
    if job.kind != JobKind.IMAGE:
        raise NotFound("heatmaps exist only for single-image jobs", code="not_an_image_job")
    if job.status != JobStatus.SUCCEEDED:
        raise Conflict(
            f"the job is {job.status}; its heatmap exists once it has succeeded",
            code="job_not_finished",
        )
    if not (job.result or {}).get("faces"):
        raise NotFound("this job has no heatmap: no face was found", code="no_heatmap")
    storage = get_storage()
    key = heatmap_key(job_id)
    if storage.exists(key):
        with storage.local_path(key) as path:
            return Response(path.read_bytes(), mimetype="image/png")
    if not storage.exists(job.inputs[0]["key"]):
        raise NotFound("this job's upload is no longer stored", code="no_heatmap")
    if _heatmap_requests.due(job_id):
        publish_heatmap(job_id)
    response = jsonify(
        {
            "status": "preparing",
            "message": "the heatmap is being made; ask again after Retry-After seconds",
        }
    )
    response.status_code = 202
    response.headers["Retry-After"] = str(HEATMAP_RETRY_AFTER_S)
    response.headers["Location"] = f"/v1/jobs/{job_id}/heatmap"
    return response


HEATMAP_RETRY_AFTER_S = 1


class _Requests:
    """When this process last asked a worker for each job's heatmap: a client polling every
    second then sends one task message, not one per poll; a message lost with a restarted
    broker is sent again after ``resend_s``. Per process, in memory: no database write."""

    def __init__(self, resend_s: float = 30.0, keep: int = 10_000) -> None:
        self.resend_s, self.keep = resend_s, keep
        self._sent: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, job_id: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._sent.get(job_id, -self.resend_s) < self.resend_s:
                return False
            if len(self._sent) >= self.keep:
                self._sent = {k: t for k, t in self._sent.items() if now - t < self.resend_s}
            self._sent[job_id] = now
            return True


_heatmap_requests = _Requests()
