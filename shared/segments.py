"""The lifecycle of a video job's segments (the job's own lifecycle is in shared/jobs.py).

A video job is planned into segments (ranges of sample indices). Each segment is claimed,
analysed and finished by whichever worker takes its message; the worker that finishes the
last one aggregates the verdict. Segment writes, like job writes, hold only while the job is
running under the claim (attempt) that planned them.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from shared.jobs import (
    MAX_ATTEMPTS,
    count_frames,
    lost_before,
    mark_failed,
    progress_values,
    touch,
    write_if_owned,
    write_progress,
)
from shared.models import FrameResult, Job, JobStatus, Segment, SegmentStatus, utcnow
from shared.queue import VIDEO_QUEUE


def job_runs_under(session: Session, job_id: str, attempt: int) -> bool:
    """Whether the job is running under claim ``attempt``."""
    found = session.scalar(
        select(Job.id).where(
            Job.id == job_id, Job.status == JobStatus.RUNNING.value, Job.attempts == attempt
        )
    )
    return found is not None


def group_ranges(
    samples: list[int], total: int, per: int, max_segments: int
) -> list[tuple[int, int]]:
    """[first, end) ranges of sample indices covering 0 .. ``total``, each holding at most
    ``per`` of ``samples`` (the indices that yield a row), and at most ``max_segments`` ranges
    (then more rows each). Ranges are cut only at samples, so empty stretches of a video make
    no segment of their own."""
    if total <= 0:
        return []
    if not samples:
        return [(0, total)]
    per = max(1, per, math.ceil(len(samples) / max(1, max_segments)))
    starts = [0, *samples[per::per]]
    return [(a, b) for a, b in zip(starts, [*starts[1:], total], strict=True)]


def plan_segments(
    session: Session,
    job_id: str,
    attempt: int,
    ranges: list[tuple[int, int]],
    probe: dict[str, Any],
    rows: int | None = None,
) -> list[int] | None:
    """Record the video's segments (keeping those already done by an earlier claim) and its
    probe facts (the job's ``probe``); returns the indices still to publish, or None if the job
    is not ours. ``rows``: the frame rows the segments will write (the progress total; by
    default one per sample)."""
    if not job_runs_under(session, job_id, attempt):
        return None
    total = rows if rows is not None else (ranges[-1][1] if ranges else 0)
    # the pace is measured from here: probing and planning the video are not frames
    planned = {"progress_total": total, "probe": probe, "progress_at": utcnow()}
    if not write_if_owned(session, job_id, attempt, **planned):
        return None
    query = select(Segment).where(Segment.job_id == job_id).order_by(Segment.index)
    existing = {s.index: s for s in session.scalars(query)}
    if [(s.first_sample, s.end_sample) for s in existing.values()] != ranges:
        session.execute(delete(Segment).where(Segment.job_id == job_id))
        session.execute(delete(FrameResult).where(FrameResult.job_id == job_id))
        existing = {}
    if not existing:
        session.execute(
            Segment.__table__.insert(),
            [
                {
                    "job_id": job_id,
                    "index": i,
                    "first_sample": a,
                    "end_sample": b,
                    "status": SegmentStatus.QUEUED.value,
                    "attempts": 0,
                    "updated_at": utcnow(),
                }
                for i, (a, b) in enumerate(ranges)
            ],
        )
        return list(range(len(ranges)))
    todo = [i for i, s in existing.items() if s.status != SegmentStatus.DONE.value]
    if todo:
        session.execute(
            update(Segment)
            .where(Segment.job_id == job_id, Segment.index.in_(todo))
            .values(status=SegmentStatus.QUEUED.value, updated_at=utcnow())
        )
    return sorted(todo)


def claim_segment(
    session: Session, job_id: str, index: int, attempt: int, stale_after_s: float
) -> Segment | None:
    """Take a segment: queued, or running without a heartbeat for ``stale_after_s``."""
    if not job_runs_under(session, job_id, attempt):
        return None
    now = utcnow()
    claimable = (Segment.status == SegmentStatus.QUEUED.value) | (
        (Segment.status == SegmentStatus.RUNNING.value)
        & (Segment.updated_at < now - timedelta(seconds=stale_after_s))
    )
    result = session.execute(
        update(Segment)
        .where(Segment.job_id == job_id, Segment.index == index, claimable)
        .values(status=SegmentStatus.RUNNING.value, attempts=Segment.attempts + 1, updated_at=now)
    )
    if result.rowcount != 1:
        return None
    return session.get(Segment, (job_id, index))


def add_segment_frames(
    session: Session, job_id: str, index: int, attempt: int, rows: list[dict[str, Any]]
) -> bool:
    """Store a batch of a segment's frame rows, heartbeat, and count progress over all
    segments; False (write nothing) once the job is no longer running under this claim."""
    if not job_runs_under(session, job_id, attempt):
        return False
    if rows:
        indices = [row["index"] for row in rows]
        # a re-run of the segment replaces its own rows
        session.execute(
            delete(FrameResult).where(FrameResult.job_id == job_id, FrameResult.index.in_(indices))
        )
        session.execute(FrameResult.__table__.insert(), [{"job_id": job_id, **r} for r in rows])
    done = count_frames(session, job_id)
    session.execute(
        update(Segment)
        .where(Segment.job_id == job_id, Segment.index == index)
        .values(updated_at=utcnow())
    )
    return write_progress(session, job_id, attempt, progress_values(session, job_id, done))


def finish_segment(
    session: Session, job_id: str, index: int, attempt: int, seconds: float
) -> bool | None:
    """Mark a segment done; True when it was the last one (the caller aggregates), None when
    the job is no longer ours."""
    if not job_runs_under(session, job_id, attempt):
        return None
    session.execute(
        update(Segment)
        .where(Segment.job_id == job_id, Segment.index == index)
        .values(status=SegmentStatus.DONE.value, seconds=seconds, updated_at=utcnow())
    )
    remaining = session.scalar(
        select(func.count())
        .select_from(Segment)
        .where(Segment.job_id == job_id, Segment.status != SegmentStatus.DONE.value)
    )
    return remaining == 0


def segment_durations(session: Session, job_id: str) -> list[float]:
    query = select(Segment.seconds).where(Segment.job_id == job_id).order_by(Segment.index)
    return [s or 0.0 for s in session.scalars(query)]


def all_frames(session: Session, job_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(FrameResult).where(FrameResult.job_id == job_id).order_by(FrameResult.index)
    )
    return [
        {
            "index": r.index,
            "frame_number": r.frame_number,
            "timestamp_s": r.timestamp_s,
            "probability_fake": r.probability_fake,
            "faces": r.faces,
        }
        for r in rows
    ]


def sweep_segments(
    session: Session,
    *,
    stale_after_s: float,
    requeue_after_s: float,
    queue_depths: dict[str, int] | None = None,
) -> list[tuple[str, int, int]]:
    """Segments of running jobs whose worker died (running, no heartbeat) or whose message was
    lost (queued too long, and lost as ``jobs.sweep`` judges it from ``queue_depths``):
    (job id, index, attempt) to publish again. Poison segments (that used up MAX_ATTEMPTS)
    fail their job."""
    now = utcnow()
    stale = now - timedelta(seconds=stale_after_s)
    requeue = now - timedelta(seconds=requeue_after_s)
    waiting_since = lost_before(session, VIDEO_QUEUE, queue_depths)
    rows = session.execute(
        select(
            Segment.job_id,
            Segment.index,
            Segment.attempts,
            Job.attempts,
            Segment.status,
            Segment.updated_at,
        )
        .join(Job, Job.id == Segment.job_id)
        .where(
            Job.status == JobStatus.RUNNING.value,
            ((Segment.status == SegmentStatus.RUNNING.value) & (Segment.updated_at < stale))
            | ((Segment.status == SegmentStatus.QUEUED.value) & (Segment.updated_at < requeue)),
        )
    ).all()
    # every segment done but the verdict never written (the aggregating worker died): run the
    # first segment again, whose completion aggregates
    orphaned = session.execute(
        select(Job.id, Job.attempts).where(
            Job.status == JobStatus.RUNNING.value,
            Job.updated_at < stale,
            select(Segment.job_id).where(Segment.job_id == Job.id).exists(),
            ~select(Segment.job_id)
            .where(Segment.job_id == Job.id, Segment.status != SegmentStatus.DONE.value)
            .exists(),
        )
    ).all()
    for job_id, _attempt in orphaned:
        session.execute(
            update(Segment)
            .where(Segment.job_id == job_id, Segment.index == 0)
            .values(status=SegmentStatus.QUEUED.value, updated_at=now)
        )
        touch(session, job_id)  # heartbeat
    chosen = [(job_id, 0, job_attempt) for job_id, job_attempt in orphaned]
    for job_id, index, segment_attempts, job_attempt, status, updated_at in rows:
        if (
            status == SegmentStatus.QUEUED.value
            and waiting_since is not None
            and updated_at >= waiting_since
        ):
            continue  # its message is still waiting its turn in the broker
        if segment_attempts >= MAX_ATTEMPTS:
            mark_failed(
                session,
                job_id,
                "too_many_attempts",
                f"part {index} of the video stopped its worker on each of {segment_attempts} "
                "attempts; the job will not be retried",
            )
            continue
        # back to queued (so the new message can claim it) with a fresh timestamp (so other
        # sweepers leave it alone for a while)
        claimed = session.execute(
            update(Segment)
            .where(
                Segment.job_id == job_id,
                Segment.index == index,
                Segment.updated_at < max(stale, requeue),
            )
            .values(status=SegmentStatus.QUEUED.value, updated_at=now)
        )
        if claimed.rowcount == 1:
            chosen.append((job_id, index, job_attempt))
    return chosen
