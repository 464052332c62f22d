"""Recovery re-publishes only what was lost: a queued job whose message still waits in the
broker is left alone, however long the backlog; a job whose queue is empty in the broker, or
whose message was overtaken by a later one already taken, is re-published."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, update

from shared import jobs, segments
from shared.db import session_scope
from shared.models import Counter, JobKind, Segment, utcnow
from shared.queue import IMAGE_QUEUE, VIDEO_QUEUE
from tests.support.jobs import STALE, age, new_job


@pytest.fixture(autouse=True)
def _no_message_taken_yet(migrated):
    """Other tests ran jobs in this database: forget what their workers took."""
    with session_scope() as session:
        session.execute(delete(Counter).where(Counter.name.like("received:%")))


def _sweep(depths):
    with session_scope() as session:
        chosen = jobs.sweep(
            session,
            stale_after_s=STALE,
            requeue_after_s=600,
            deadline_s=3600,
            queue_depths=depths,
        )
    return {job_id for job_id, _ in chosen}


def _backlog(n: int, seconds_ago: float) -> list[str]:
    ids = [new_job() for _ in range(n)]
    for job_id in ids:
        age(job_id, published_at=seconds_ago, created_at=seconds_ago)
    return ids


def test_a_long_backlog_still_in_the_broker_is_not_republished():
    backlog = _backlog(30, 3600)  # an hour in the queue, far past RRR_REQUEUE_AFTER_S
    assert not set(backlog) & _sweep({IMAGE_QUEUE: 30, VIDEO_QUEUE: 0})
    assert not set(backlog) & _sweep({IMAGE_QUEUE: 30, VIDEO_QUEUE: 0})


def test_an_empty_queue_means_the_messages_were_lost():
    backlog = _backlog(5, 3600)
    assert set(backlog) <= _sweep({IMAGE_QUEUE: 0, VIDEO_QUEUE: 0})
    assert not set(backlog) & _sweep({IMAGE_QUEUE: 0, VIDEO_QUEUE: 0})  # once per interval


def test_a_message_overtaken_by_a_later_one_was_lost():
    lost = _backlog(1, 3600)[0]
    waiting = _backlog(1, 700)[0]
    with session_scope() as session:  # a worker took a message published 20 minutes ago
        jobs.note_received(session, IMAGE_QUEUE, utcnow() - timedelta(seconds=1200))
    chosen = _sweep({IMAGE_QUEUE: 50, VIDEO_QUEUE: 0})
    assert lost in chosen and waiting not in chosen


def test_watermark_only_rises():
    with session_scope() as session:
        now = utcnow()
        jobs.note_received(session, "test-queue", now)
        jobs.note_received(session, "test-queue", now - timedelta(hours=1))
        mark = jobs.received_watermark(session, "test-queue")
    assert abs((mark - now).total_seconds()) < 1e-3


def test_queued_segments_waiting_in_the_broker_are_not_republished():
    job_id = new_job(JobKind.VIDEO)
    with session_scope() as session:
        attempt = jobs.mark_running(session, job_id, STALE)
        segments.plan_segments(session, job_id, attempt, [(0, 3), (3, 6)], {})
        session.execute(
            update(Segment)
            .where(Segment.job_id == job_id)
            .values(updated_at=utcnow() - timedelta(seconds=3600))
        )
    with session_scope() as session:
        waiting = segments.sweep_segments(
            session, stale_after_s=STALE, requeue_after_s=600, queue_depths={VIDEO_QUEUE: 2}
        )
        assert [c for c in waiting if c[0] == job_id] == []
        lost = segments.sweep_segments(
            session, stale_after_s=STALE, requeue_after_s=600, queue_depths={VIDEO_QUEUE: 0}
        )
        assert sorted(i for j, i, _ in lost if j == job_id) == [0, 1]
