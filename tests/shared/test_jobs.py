"""The lifecycle's guards and the sweeper's rules, on the real schema (SQLite via Alembic)."""

from __future__ import annotations

from shared import jobs
from shared.db import session_scope
from shared.models import JobKind, JobStatus
from tests.support.jobs import STALE, age, get_job, new_job


def test_happy_path_transitions(migrated):
    job_id = new_job()
    with session_scope() as session:
        attempt = jobs.mark_running(session, job_id, STALE)
        assert attempt == 1
        assert jobs.set_progress(session, job_id, attempt, 1, 1)
        assert jobs.mark_succeeded(session, job_id, attempt, {"prediction": "REAL"})
    assert get_job(job_id).status == JobStatus.SUCCEEDED


def test_terminal_jobs_never_move(migrated):
    job_id = new_job()
    with session_scope() as session:
        attempt = jobs.mark_running(session, job_id, STALE)
        assert jobs.mark_failed(session, job_id, "image_corrupt", "bad", attempt)
        # a duplicated or stale task message arrives afterwards
        assert jobs.mark_running(session, job_id, 0) is None
        assert not jobs.mark_succeeded(session, job_id, attempt, {})
        assert not jobs.mark_canceled(session, job_id)
        assert not jobs.set_progress(session, job_id, attempt, 5)
    assert get_job(job_id).status == JobStatus.FAILED


def test_a_live_job_cannot_be_claimed_twice(migrated):
    job_id = new_job()
    with session_scope() as session:
        assert jobs.mark_running(session, job_id, STALE) == 1
        assert jobs.mark_running(session, job_id, STALE) is None  # duplicate message
    assert get_job(job_id).attempts == 1


def test_reclaimed_job_refuses_the_old_workers_writes(migrated):
    job_id = new_job()
    with session_scope() as session:
        first = jobs.mark_running(session, job_id, STALE)
    age(job_id, updated_at=STALE + 10)  # no heartbeat: the worker is presumed dead
    with session_scope() as session:
        second = jobs.mark_running(session, job_id, STALE)
        assert second == first + 1
        assert not jobs.set_progress(session, job_id, first, 3)
        assert not jobs.mark_succeeded(session, job_id, first, {"from": "old"})
        assert jobs.mark_succeeded(session, job_id, second, {"from": "new"})
    assert get_job(job_id).result == {"from": "new"}


def test_cancel_stops_progress_reports(migrated):
    job_id = new_job()
    with session_scope() as session:
        attempt = jobs.mark_running(session, job_id, STALE)
        assert jobs.mark_canceled(session, job_id)
        assert not jobs.set_progress(session, job_id, attempt, 2)
        assert not jobs.mark_succeeded(session, job_id, attempt, {})
    assert get_job(job_id).status == JobStatus.CANCELED


def _sweep() -> list[str]:
    with session_scope() as session:
        chosen = jobs.sweep(session, stale_after_s=STALE, requeue_after_s=600, deadline_s=3600)
    return [job_id for job_id, _ in chosen]


def test_sweep_republishes_a_lost_queued_job_once(migrated):
    fresh = new_job()
    lost = new_job(JobKind.VIDEO)
    age(lost, published_at=700)
    chosen = _sweep()
    assert lost in chosen and fresh not in chosen
    assert lost not in _sweep()  # just re-published: not again until requeue_after_s


def test_sweep_recovers_dead_workers_and_gives_up_on_poison_jobs(migrated):
    dead = new_job()
    poison = new_job()
    with session_scope() as session:
        jobs.mark_running(session, dead, STALE)
    for _ in range(jobs.MAX_ATTEMPTS):  # each worker died in turn
        age(poison, updated_at=STALE + 1)
        with session_scope() as session:
            assert jobs.mark_running(session, poison, STALE) is not None
    age(dead, updated_at=STALE + 1, published_at=STALE + 1)
    age(poison, updated_at=STALE + 1, published_at=STALE + 1)
    chosen = _sweep()
    assert dead in chosen and poison not in chosen
    assert get_job(poison).status == JobStatus.FAILED
    assert get_job(poison).error_code == "too_many_attempts"


def test_sweep_fails_jobs_past_their_deadline(migrated):
    job_id = new_job()
    with session_scope() as session:
        jobs.mark_running(session, job_id, STALE)
    age(job_id, started_at=4000)
    _sweep()
    job = get_job(job_id)
    assert job.status == JobStatus.FAILED and job.error_code == "deadline_exceeded"
