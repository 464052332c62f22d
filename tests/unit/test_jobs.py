"""The lifecycle's guards, on the real schema (SQLite, migrated by Alembic)."""

from __future__ import annotations

from shared import jobs
from shared.db import session_scope
from shared.models import JobKind, JobStatus


def _new_job() -> str:
    with session_scope() as session:
        return jobs.create_job(session, kind=JobKind.IMAGE, inputs=[], params={}).id


def _status(job_id: str) -> str:
    with session_scope() as session:
        return jobs.get_job(session, job_id).status


def test_happy_path_transitions(migrated):
    job_id = _new_job()
    with session_scope() as session:
        assert jobs.mark_running(session, job_id)
        assert jobs.set_progress(session, job_id, 1, 1)
        assert jobs.mark_succeeded(session, job_id, {"prediction": "REAL"})
    assert _status(job_id) == JobStatus.SUCCEEDED


def test_terminal_jobs_never_move(migrated):
    job_id = _new_job()
    with session_scope() as session:
        assert jobs.mark_running(session, job_id)
        assert jobs.mark_failed(session, job_id, "image_corrupt", "bad")
        # a duplicated or stale task message arrives afterwards
        assert not jobs.mark_running(session, job_id)
        assert not jobs.mark_succeeded(session, job_id, {})
        assert not jobs.mark_canceled(session, job_id)
        assert not jobs.set_progress(session, job_id, 5)
    assert _status(job_id) == JobStatus.FAILED


def test_cancel_stops_progress_reports(migrated):
    job_id = _new_job()
    with session_scope() as session:
        jobs.mark_running(session, job_id)
        assert jobs.mark_canceled(session, job_id)
        assert not jobs.set_progress(session, job_id, 2)
        assert not jobs.mark_succeeded(session, job_id, {})
    assert _status(job_id) == JobStatus.CANCELED


def test_restart_counts_attempts(migrated):
    job_id = _new_job()
    with session_scope() as session:
        jobs.mark_running(session, job_id)
        jobs.mark_running(session, job_id)  # redelivered after a worker died
        assert jobs.get_job(session, job_id).attempts == 2


def test_replacing_frames_is_idempotent(migrated):
    job_id = _new_job()
    frames = [
        {"index": i, "frame_number": i * 30, "timestamp_s": float(i), "probability_fake": 0.1,
         "faces": []}
        for i in range(5)
    ]
    with session_scope() as session:
        jobs.replace_frames(session, job_id, frames)
    with session_scope() as session:
        jobs.replace_frames(session, job_id, frames)
    with session_scope() as session:
        assert jobs.count_frames(session, job_id) == 5
        page = jobs.list_frames(session, job_id, offset=3, limit=10)
        assert [row.index for row in page] == [3, 4]
