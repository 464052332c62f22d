"""bp: the /v1/jobs resource (submit, read, list, cancel, per-frame results)."""

from __future__ import annotations

import math
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
from api.waiting import preferred_wait, wait_for, waiting
from shared import jobs
from shared.db import session_scope
from shared.errors import Conflict, NotFound
from shared.models import FrameResult, JobKind, JobStatus
from shared.queue import publish_frame_heatmap, publish_heatmap
from shared.storage import (
    frame_heatmap_key,
    frame_key,
    get_storage,
    heatmap_key,
    thumbnail_key,
)

bp = Blueprint("jobs", __name__, url_prefix="/v1")
# the longest a client is told to wait before polling an unfinished job again
MAX_RETRY_AFTER_S = 30


def _retry_after(body: dict) -> None | str:
    """When to poll an unfinished job again: its ETA when known, else a second."""
    if body["status"] not in ("queued", "running"):
        return None
    eta = body["progress"].get("eta_s")
    return str(min(MAX_RETRY_AFTER_S, max(1, math.ceil(eta or 1))))


def _job_response(body: dict, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    if (retry := _retry_after(body)) is not None:
        response.headers["Retry-After"] = retry
    return response


def conditional(response: Response) -> Response:
    """An ETag of the body; 304 when the client already holds it (If-None-Match)."""
    response.add_etag()
    return response.make_conditional(request)


def _waited(job_id: str) -> tuple[dict, str] | None:
    """With ``Prefer: wait=N``: the job once it has ended, or after N s, and the preference
    applied; None when not asked, or when every waiting slot is taken (then not applied)."""
    seconds = preferred_wait(request.headers.get("Prefer"))
    if seconds is None:
        return None
    with waiting.optional_slot() as held:
        if not held:
            return None
        return job_json(wait_for(job_id, current_owner(), seconds)), f"wait={seconds}"


@bp.post("/jobs")
def create():
    job, created = submit(request)
    body, applied = _waited(job.id) or (job_json(job), None)
    unfinished = body["status"] in ("queued", "running")
    # 202 while it runs; 201 when it was made and finished within the wait; 200 for a repeat
    response = _job_response(body, 200 if not created else 202 if unfinished else 201)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if applied:
        response.headers["Preference-Applied"] = applied
    return response


@bp.get("/jobs/<job_id>")
def read(job_id: str):
    with session_scope() as session:
        body = job_json(jobs.get_job(session, job_id, current_owner()))
    applied = None
    if body["status"] in ("queued", "running"):
        body, applied = _waited(job_id) or (body, None)
    response = _job_response(body)
    if applied:
        response.headers["Preference-Applied"] = applied
    response.vary.add("Prefer")
    return conditional(response)


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
        body = {
            "jobs": [job_json(job, full=False) for job in page],
            "next_cursor": encode_cursor(page[-1]) if more else None,
        }
    return conditional(jsonify(body))


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str):
    """Stop a queued or running job; its upload is deleted. Repeatable: a canceled job answers
    as it is. A job that already succeeded or failed cannot be canceled (409)."""
    owner = current_owner()
    with session_scope() as session:
        job = jobs.get_job(session, job_id, owner)
        if job.status != JobStatus.CANCELED and not jobs.mark_canceled(session, job_id):
            session.refresh(job)  # it may have been canceled by a concurrent request
            if job.status != JobStatus.CANCELED:
                raise Conflict(
                    f"the job is already {job.status} and cannot be canceled",
                    code="job_not_cancelable",
                )
    # A running worker notices at its next progress update and stops.
    get_storage().delete_job(job_id)
    with session_scope() as session:
        return jsonify(job_json(jobs.get_job(session, job_id, owner)))


@bp.delete("/jobs/<job_id>")
def delete(job_id: str):
    """Erase the job now, whatever its status: its record, results and files (an unfinished
    job stops as if canceled). Afterwards the job does not exist (404)."""
    with session_scope() as session:
        jobs.get_job(session, job_id, current_owner())
        jobs.erase_job(session, job_id)
    get_storage().delete_job(job_id)
    return Response(status=204)


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
        body = {
            "job_id": job_id,
            "status": job.status,
            "total": total,
            "offset": offset,
            "limit": limit,
            "next_offset": next_offset,
            "frames": [frame_json(row) for row in rows],
        }
    return conditional(jsonify(body))


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
    try:
        return Response(storage.read_bytes(key), mimetype="image/png")
    except FileNotFoundError:
        pass
    if not storage.exists(job.inputs[0]["key"]):
        raise NotFound("this job's upload is no longer stored", code="no_heatmap")
    if _heatmap_requests.due(job_id):
        publish_heatmap(job_id)
    return _preparing(f"/v1/jobs/{job_id}/heatmap", HEATMAP_RETRY_AFTER_S)


@bp.get("/jobs/<job_id>/frames/<int:index>/heatmap")
def frame_heatmap(job_id: str, index: int):
    """A sampled video frame (by its ``index`` in /frames) with a Grad-CAM overlay on its faces,
    as a JPEG of at most 640 px. Made by a worker when first asked for: 202 with Retry-After
    until it is stored."""
    with session_scope() as session:
        job = jobs.get_job(session, job_id, current_owner())
        if job.kind != JobKind.VIDEO:
            raise NotFound("frames exist only for video jobs", code="not_a_video_job")
        if job.status != JobStatus.SUCCEEDED:
            raise Conflict(
                f"the job is {job.status}; its frames' heatmaps exist once it has succeeded",
                code="job_not_finished",
            )
        row = session.get(FrameResult, (job_id, index))
        if row is None:
            raise NotFound("the job has no sampled frame with this index", code="no_such_frame")
        if not row.faces:
            raise NotFound("this frame has no heatmap: no face was found in it", code="no_heatmap")
        upload = job.inputs[0]["key"]
    storage = get_storage()
    try:
        response = Response(storage.read_bytes(frame_heatmap_key(job_id, index)))
    except FileNotFoundError:
        pass
    else:
        response.mimetype = "image/jpeg"
        response.headers["Cache-Control"] = "private, max-age=3600"
        return response
    if not storage.exists(upload):
        raise NotFound("this job's upload is no longer stored", code="no_heatmap")
    if _heatmap_requests.due(f"{job_id}/{index}"):
        publish_frame_heatmap(job_id, index)
    # a video frame is decoded again first: longer to make than an image's heatmap
    return _preparing(f"/v1/jobs/{job_id}/frames/{index}/heatmap", FRAME_HEATMAP_RETRY_AFTER_S)


def _preparing(location: str, retry_after_s: int) -> Response:
    response = jsonify(
        {
            "status": "preparing",
            "message": "the heatmap is being made; ask again after Retry-After seconds",
        }
    )
    response.status_code = 202
    response.headers["Retry-After"] = str(retry_after_s)
    response.headers["Location"] = location
    return response


@bp.get("/jobs/<job_id>/thumbnails/<int:index>")
def thumbnail(job_id: str, index: int):
    """A small JPEG of an image job's picture (index 0) or of a batch item, kept by the worker
    so that the job's page shows its images when reopened or shared."""
    with session_scope() as session:
        job = jobs.get_job(session, job_id, current_owner())
    if job.kind == JobKind.VIDEO:
        raise NotFound(
            "thumbnails exist for image and batch jobs; a video's frames are at "
            "/frames/<index>/image",
            code="not_an_image_job",
        )
    return _kept_jpeg(
        thumbnail_key(job_id, index),
        "no thumbnail for this item: it could not be decoded, the job has not reached it yet, "
        "or the job was purged",
    )


@bp.get("/jobs/<job_id>/frames/<int:index>/image")
def frame_image(job_id: str, index: int):
    """A small JPEG of a sampled video frame (by its ``index`` in /frames) with its face boxes
    drawn in the colour of their verdict."""
    with session_scope() as session:
        job = jobs.get_job(session, job_id, current_owner())
    if job.kind != JobKind.VIDEO:
        raise NotFound("frames exist only for video jobs", code="not_a_video_job")
    return _kept_jpeg(
        frame_key(job_id, index),
        "no image for this frame: it was not sampled, the job has not reached it yet, or the "
        "job was purged",
    )


def _kept_jpeg(key: str, missing: str) -> Response:
    try:
        data = get_storage().read_bytes(key)
    except FileNotFoundError:
        raise NotFound(missing, code="no_image") from None
    response = Response(data, mimetype="image/jpeg")
    # a kept picture never changes; it only disappears with its job
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


HEATMAP_RETRY_AFTER_S = 1
FRAME_HEATMAP_RETRY_AFTER_S = 2


class _Requests:
    """When this process last asked a worker for each heatmap (a job's, or a video frame's): a
    client polling every second then sends one task message, not one per poll; a message lost
    with a restarted broker is sent again after ``resend_s``. Per process, in memory: no
    database write."""

    def __init__(self, resend_s: float = 30.0, keep: int = 10_000) -> None:
        self.resend_s, self.keep = resend_s, keep
        self._sent: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, what: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._sent.get(what, -self.resend_s) < self.resend_s:
                return False
            if len(self._sent) >= self.keep:
                self._sent = {k: t for k, t in self._sent.items() if now - t < self.resend_s}
            self._sent[what] = now
            return True


_heatmap_requests = _Requests()
