"""Jobs without a broker: rows made directly through the lifecycle, tasks run in-process."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from shared import jobs
from shared.db import session_scope
from shared.models import Job, JobKind, Segment, utcnow

STALE = 300.0  # the stale_after_s the lifecycle tests use


def new_job(kind: JobKind = JobKind.IMAGE) -> str:
    with session_scope() as session:
        return jobs.create_job(session, kind=kind, inputs=[], params={}).id


def get_job(job_id: str) -> Job:
    with session_scope() as session:
        return jobs.get_job(session, job_id)


def age(job_id: str, **columns_seconds_ago: float) -> None:
    """Pretend time passed: move the given timestamp columns into the past."""
    now = utcnow()
    values = {name: now - timedelta(seconds=s) for name, s in columns_seconds_ago.items()}
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def run_job_here(job_id: str) -> None:
    """Do in this process what the workers would: run the job's task, then (for a video) each
    of its segment tasks. The tasks' own functions, without a broker in between."""
    from worker.tasks import process_job, process_segment

    process_job.run(job_id)
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None:  # there is no such job (or it was deleted): nothing to run
            return
        attempt = job.attempts
        indices = list(session.scalars(select(Segment.index).where(Segment.job_id == job_id)))
    for index in indices:
        process_segment.run(job_id, index, attempt)
