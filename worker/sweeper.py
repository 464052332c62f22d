"""A thread in every worker that recovers lost jobs (see ``shared.jobs.sweep``).

Only lost messages are re-published: a queued job whose message still waits in the broker
(its queue is not empty and no message published after it was taken yet) is left alone, so
a long backlog is never duplicated; workers record what they take (``jobs.note_received``).

Running it in the workers rather than in a separate beat process means there is nothing extra
to deploy; several workers sweeping at once is safe because a job is re-published only by the
sweeper whose conditional UPDATE of ``published_at`` succeeded.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from shared import jobs, segments
from shared.config import settings
from shared.db import session_scope
from shared.models import utcnow
from shared.queue import IMAGE_QUEUE, VIDEO_QUEUE, publish_job, publish_segment, queue_depth
from shared.storage import get_storage

log = logging.getLogger("rrr.sweeper")


ORPHAN_GRACE_S = 3600  # files of a job row never committed (API died mid-upload) wait this long
# listing every stored job costs an object store one request per 1000 objects: orphans, rare and
# harmless for a while, are looked for this often per worker, not at every sweep
ORPHAN_SCAN_INTERVAL_S = 600
_last_orphan_scan = [float("-inf")]


def sweep_once() -> list[str]:
    """One pass: fail overdue jobs, re-publish lost ones, purge expired ones. Returns the
    re-published ids."""
    depths = _queue_depths()
    with session_scope() as session:
        chosen = jobs.sweep(
            session,
            stale_after_s=settings.stale_after_s,
            requeue_after_s=settings.requeue_after_s,
            deadline_s=settings.job_deadline_s,
            queue_depths=depths,
        )
        lost_segments = segments.sweep_segments(
            session,
            stale_after_s=settings.stale_after_s,
            requeue_after_s=settings.requeue_after_s,
            queue_depths=depths,
        )
    for job_id, kind in chosen:
        publish_job(job_id, kind)
        log.warning("job %s: re-published (message or worker lost)", job_id)
    for job_id, index, attempt in lost_segments:
        publish_segment(job_id, index, attempt)
        log.warning("job %s: segment %d re-published (message or worker lost)", job_id, index)
    purge_expired()
    return [job_id for job_id, _ in chosen]


def _queue_depths() -> dict[str, int] | None:
    """Messages waiting in each queue, so that only lost messages are re-published (None when
    the broker cannot be asked: then queued jobs are judged by age alone)."""
    try:
        return {queue: queue_depth(queue) for queue in (IMAGE_QUEUE, VIDEO_QUEUE)}
    except Exception as exc:
        log.warning("queue depths unknown (%s); judging queued jobs by age", exc)
        return None


def purge_expired() -> list[str]:
    """Delete jobs finished more than RRR_RETENTION_HOURS ago, with their uploads, heatmaps and
    frame rows; and stored files that belong to no job. Returns the purged job ids."""
    storage = get_storage()
    cutoff = utcnow() - timedelta(hours=settings.retention_hours)
    with session_scope() as session:
        purged = jobs.purge_finished(session, cutoff)
    orphans: set[str] = set()
    if time.monotonic() - _last_orphan_scan[0] >= ORPHAN_SCAN_INTERVAL_S:
        _last_orphan_scan[0] = time.monotonic()
        stored = storage.job_ids(older_than_s=ORPHAN_GRACE_S)
        with session_scope() as session:
            orphans = set(stored) - jobs.existing_ids(session, stored)
    for job_id in [*purged, *orphans]:
        storage.delete_job(job_id)
    if purged or orphans:
        log.info("purged %d expired job(s) and %d orphaned upload(s)", len(purged), len(orphans))
    return purged


class Sweeper(threading.Thread):
    def __init__(self, interval_s: float) -> None:
        super().__init__(name="rrr-sweeper", daemon=True)
        self.interval_s = interval_s
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            try:
                sweep_once()
            except Exception as exc:  # database or broker down: try again next round
                log.warning("sweep failed: %s: %s", exc.__class__.__name__, exc)


_sweeper: Sweeper | None = None


def start_sweeper() -> None:
    global _sweeper
    if _sweeper is None and settings.sweep_interval_s > 0:
        _sweeper = Sweeper(settings.sweep_interval_s)
        _sweeper.start()
