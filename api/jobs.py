"""bp: the /v1/jobs resource (submit, read, list, cancel, per-frame results)."""

from __future__ import annotations

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
from shared.storage import frame_key, get_storage, heatmap_key, thumbnail_key

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
    """The image with a Grad-CAM overlay on each face (computed by the worker with the verdict)."""
    with session_scope() as session:
        job = jobs.get_job(session, job_id, current_owner())
    if job.kind != JobKind.IMAGE:
        raise NotFound("heatmaps exist only for single-image jobs", code="not_an_image_job")
    if job.status != JobStatus.SUCCEEDED:
        raise Conflict(
            f"the job is {job.status}; its heatmap exists once it has succeeded",
            code="job_not_finished",
        )
    try:
        if not (job.result or {}).get("heatmap"):
            raise FileNotFoundError
        png = get_storage().read_bytes(heatmap_key(job_id))
    except FileNotFoundError:
        raise NotFound(
            "this job has no heatmap: no face was found, or heatmaps were disabled "
            "(RRR_HEATMAPS=0) when it ran",
            code="no_heatmap",
        ) from None
    return Response(png, mimetype="image/png")


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
