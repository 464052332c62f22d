"""Request parsing and the JSON shapes of responses (the workers never see these)."""

from __future__ import annotations

import base64
import binascii
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import object_session

from shared import webhooks
from shared.config import settings
from shared.db import session_scope
from shared.errors import BadRequest
from shared.jobs import is_job_id
from shared.models import FrameResult, Job, JobKind, Sampling, utcnow

VERDICT_KEYS = (
    "prediction",
    "probability_fake",
    "probability_real",
    "confidence",
    "threshold",
    "unsure_margin",
    "signals",
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _eta_seconds(job: Job) -> float | None:
    """Remaining time at the job's smoothed pace (shared/jobs.py, progress_values), counted
    down from when progress last moved: between progress writes it only falls. None until
    there is a pace to judge, and once the job falls behind its own pace (no promise it cannot
    keep); a new estimate comes with the next progress."""
    if job.status != "running" or job.started_at is None or job.progress_total <= 0:
        return None
    if job.progress_done <= 0 or job.progress_done >= job.progress_total:
        return None
    now = utcnow()
    elapsed = (now - job.started_at).total_seconds()
    remaining = job.progress_total - job.progress_done
    if job.progress_rate and job.progress_at is not None:
        eta = remaining / job.progress_rate - (now - job.progress_at).total_seconds()
        if eta <= 0:
            return None
    else:  # written before the pace was recorded: the average pace since the start
        eta = elapsed / job.progress_done * remaining
    # never past the deadline at which the job would be stopped anyway
    left = max(0.0, settings.job_deadline_s - elapsed)
    return round(min(eta, left), 1)


def job_json(job: Job, *, full: bool = True) -> dict[str, Any]:
    """A job as clients see it; ``full=False`` (listings) keeps only the verdict of the result."""
    result = job.result
    if result is not None and not full:
        result = {k: result[k] for k in (*VERDICT_KEYS, "summary") if k in result}
    links = {"self": f"/v1/jobs/{job.id}", "cancel": f"/v1/jobs/{job.id}/cancel"}
    if job.kind == JobKind.VIDEO:
        links["frames"] = f"/v1/jobs/{job.id}/frames"
    if job.kind == JobKind.IMAGE and (job.result or {}).get("faces"):
        links["heatmap"] = f"/v1/jobs/{job.id}/heatmap"
    if job.kind == JobKind.IMAGE and (job.result or {}).get("thumbnail"):
        links["thumbnail"] = f"/v1/jobs/{job.id}/thumbnails/0"
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": {
            "done": job.progress_done,
            "total": job.progress_total,
            "eta_s": _eta_seconds(job),
        },
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        # when the retention sweep erases it (set once it has finished); DELETE erases it sooner
        "expires_at": _iso(
            job.finished_at + timedelta(hours=settings.retention_hours)
            if job.finished_at is not None
            else None
        ),
        "error": (
            {"code": job.error_code, "message": job.error_message} if job.error_code else None
        ),
        "params": job.params,
        "inputs": [
            {k: item.get(k) for k in ("filename", "size", "media_type", "error") if item.get(k)}
            for item in job.inputs
        ],
        "result": result,
        "links": links,
        "webhook": _webhook_json(job, full),
    }


def _webhook_json(job: Job, full: bool) -> dict[str, Any] | None:
    """The job's webhook and, in a full read, its latest delivery attempts."""
    if not job.webhook_url:
        return None
    hook: dict[str, Any] = {
        "url": job.webhook_url,
        "events": (job.webhook_events or "").split(","),
    }
    if full:
        session = object_session(job)
        if session is not None:
            hook["deliveries"] = webhooks.attempts_of(session, job.id)
        else:  # a job just created and committed: its session is closed
            with session_scope() as fresh:
                hook["deliveries"] = webhooks.attempts_of(fresh, job.id)
    return hook


def frame_json(frame: FrameResult) -> dict[str, Any]:
    return {
        "index": frame.index,
        "frame_number": frame.frame_number,
        "timestamp_s": frame.timestamp_s,
        "probability_fake": frame.probability_fake,
        "faces": frame.faces,
    }


def _number(form, name: str, cast, low: float, high: float, default):
    raw = form.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number, got {raw!r}", code="invalid_field") from None
    if isinstance(value, float) and not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"{name} must be between {low:g} and {high:g}", code="invalid_field")
    return value


def parse_job_params(form) -> dict[str, Any]:
    """Validate the optional form fields of POST /v1/jobs into the job's params."""
    params: dict[str, Any] = {
        "sample_fps": _number(form, "sample_fps", float, 0.01, 60.0, settings.sample_fps),
        "max_frames": _number(form, "max_frames", int, 1, settings.max_frames, settings.max_frames),
    }
    threshold = _number(form, "threshold", float, 0.0, 1.0, None)
    if threshold is not None:
        params["threshold"] = threshold
    sampling = form.get("sampling") or Sampling.EXACT.value
    if sampling not in tuple(Sampling):
        raise BadRequest(
            f"sampling must be one of {', '.join(Sampling)}, got {sampling[:40]!r}",
            code="invalid_field",
        )
    params["sampling"] = sampling
    heatmap = form.get("heatmap")
    # exactly the document's boolean (multipart writes it true or false): a "0" or "yes"
    # accepted here would be a request the OpenAPI document calls invalid
    if heatmap == "true":
        # image jobs: make the heatmap with the verdict rather than when first asked for;
        # absent when not asked, so earlier requests keep their Idempotency-Key digest
        params["heatmap"] = True
    elif heatmap not in (None, "false"):
        raise BadRequest(f"heatmap must be true or false, got {heatmap[:40]!r}", "invalid_field")
    return params


def parse_limit(args, default: int, maximum: int) -> int:
    return _number(args, "limit", int, 1, maximum, default)


def parse_offset(args) -> int:
    return _number(args, "offset", int, 0, 10**9, 0)


def parse_enum(args, name: str, enum_cls) -> str | None:
    value = args.get(name)
    if value is None:  # absent; present but empty (status=) is no status: a 400 below
        return None
    allowed = [member.value for member in enum_cls]
    if value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}", code="invalid_field")
    return value


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MAX_CURSOR = 120  # what encode_cursor makes is about 80 characters
# the creation time in a cursor, exactly as encode_cursor writes it (isoformat with an offset)
CURSOR_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?[+-]\d{2}:\d{2}")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor from ``encode_cursor`` holds; anything else, however it
    was crafted (bad base64, NUL bytes, an out-of-range date or offset, a malformed id), is a
    400 before it reaches SQL."""
    invalid = BadRequest(
        "cursor is not valid; pass the next_cursor of a previous page", code="invalid_cursor"
    )
    if len(cursor) > MAX_CURSOR or not cursor.isascii():
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        created_text, job_id = raw.split("|", 1)
        if not CURSOR_TIME.fullmatch(created_text) or not is_job_id(job_id):
            raise ValueError("not a cursor this service made")
        # an offset can push a date out of range: 0001-01-01T00:00:00+14:00 has no UTC time
        created = datetime.fromisoformat(created_text).astimezone(UTC)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise invalid from None
    return created, job_id
