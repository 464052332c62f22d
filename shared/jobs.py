"""The job lifecycle: the only module that writes a job's status.

queued -> running -> succeeded | failed | canceled

Every transition is one conditional UPDATE (``WHERE status IN (...)``), so a stale or duplicated
task message can never move a terminal job back, and two workers can never both start a job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.errors import Conflict, NotFound
from shared.models import FrameResult, Job, JobKind, JobStatus, utcnow

ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
# A job is re-run from scratch after a worker died mid-task; past this many starts it is a
# poison job (e.g. media that kills the decoder) and fails instead of looping forever.
MAX_ATTEMPTS = 3


def create_job(
    session: Session,
    *,
    kind: JobKind,
    inputs: list[dict[str, Any]],
    params: dict[str, Any],
    progress_total: int = 0,
    idempotency_key: str | None = None,
    job_id: str | None = None,
) -> Job:
    """Insert a queued job. With an idempotency key already used, raise Conflict."""
    job = Job(
        kind=kind.value,
        status=JobStatus.QUEUED.value,
        inputs=inputs,
        params=params,
        progress_total=progress_total,
        idempotency_key=idempotency_key,
    )
    if job_id:
        job.id = job_id
    session.add(job)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(
            "this Idempotency-Key was already used; reuse it only to repeat the same request",
            code="idempotency_conflict",
        ) from exc
    return job


def find_by_idempotency_key(session: Session, key: str) -> Job | None:
    return session.scalars(select(Job).where(Job.idempotency_key == key)).first()


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id!r}", code="job_not_found")
    return job


def list_jobs(
    session: Session,
    *,
    limit: int,
    before: tuple[datetime, str] | None = None,
    status: str | None = None,
    kind: str | None = None,
) -> list[Job]:
    """Newest first; ``before`` is the (created_at, id) of the last row of the previous page."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if status:
        query = query.where(Job.status == status)
    if kind:
        query = query.where(Job.kind == kind)
    if before is not None:
        created, job_id = before
        query = query.where(
            (Job.created_at < created) | ((Job.created_at == created) & (Job.id < job_id))
        )
    return list(session.scalars(query))


def _transition(session: Session, job_id: str, allowed: tuple[str, ...], **values: Any) -> bool:
    values.setdefault("updated_at", utcnow())
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.status.in_(allowed)).values(**values)
    )
    return result.rowcount == 1


def mark_running(session: Session, job_id: str) -> bool:
    """Claim a job for this worker: queued -> running, or re-claim a running job whose worker
    died (its message was redelivered). Returns False if the job is terminal or gone."""
    return _transition(
        session,
        job_id,
        ACTIVE,
        status=JobStatus.RUNNING.value,
        started_at=utcnow(),
        attempts=Job.attempts + 1,
        progress_done=0,
    )


def set_progress(session: Session, job_id: str, done: int, total: int | None = None) -> bool:
    """Record progress; returns False when the job is no longer running (e.g. canceled)."""
    values: dict[str, Any] = {"progress_done": done}
    if total is not None:
        values["progress_total"] = total
    return _transition(session, job_id, (JobStatus.RUNNING.value,), **values)


def mark_succeeded(session: Session, job_id: str, result: dict[str, Any]) -> bool:
    return _transition(
        session,
        job_id,
        (JobStatus.RUNNING.value,),
        status=JobStatus.SUCCEEDED.value,
        result=result,
        progress_done=Job.progress_total,
        finished_at=utcnow(),
    )


def mark_failed(session: Session, job_id: str, code: str, message: str) -> bool:
    return _transition(
        session,
        job_id,
        ACTIVE,
        status=JobStatus.FAILED.value,
        error_code=code,
        error_message=message,
        finished_at=utcnow(),
    )


def mark_canceled(session: Session, job_id: str) -> bool:
    return _transition(
        session, job_id, ACTIVE, status=JobStatus.CANCELED.value, finished_at=utcnow()
    )


def replace_frames(session: Session, job_id: str, frames: list[dict[str, Any]]) -> None:
    """Store a video's per-frame rows; re-running a task yields the same rows, not duplicates."""
    session.execute(delete(FrameResult).where(FrameResult.job_id == job_id))
    if frames:
        session.execute(
            FrameResult.__table__.insert(), [{"job_id": job_id, **frame} for frame in frames]
        )


def list_frames(session: Session, job_id: str, *, offset: int, limit: int) -> list[FrameResult]:
    query = (
        select(FrameResult)
        .where(FrameResult.job_id == job_id)
        .order_by(FrameResult.index)
        .offset(offset)
        .limit(limit)
    )
    return list(session.scalars(query))


def count_frames(session: Session, job_id: str) -> int:
    query = select(func.count()).select_from(FrameResult).where(FrameResult.job_id == job_id)
    return int(session.scalar(query) or 0)


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status: int(n) for status, n in rows}
