"""Celery tasks: thin wrappers that take ids, call one function and record the outcome.

``process_job`` claims a job and runs it by kind: an image or a batch in this worker
(worker/images.py), a video planned into segments (worker/videos.py); ``process_segment``
analyses one segment of a video; ``make_heatmap`` draws a finished image job's heatmap when the
API is first asked for it, ``make_frame_heatmap`` that of a finished video's sampled frame.
Re-running any of them is harmless: finished work is left alone
and per-frame rows are replaced, never appended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from celery.apps import worker as celery_worker
from celery.signals import setup_logging, worker_ready, worker_shutting_down
from sqlalchemy.exc import OperationalError

from detection.analyzer import Canceled, get_analyzer
from shared import jobs, metrics
from shared.config import settings
from shared.db import session_scope
from shared.errors import DetectionError
from shared.logs import configure_logging, current_job
from shared.models import JobKind, JobStatus, Segment, SegmentStatus
from shared.queue import (
    FRAME_HEATMAP_TASK_NAME,
    HEATMAP_TASK_NAME,
    SEGMENT_TASK_NAME,
    TASK_NAME,
    VIDEO_QUEUE,
    celery_app,
    queue_for,
)
from shared.storage import StorageUnavailable
from worker import images, videos
from worker.sweeper import start_sweeper
from worker.webhooks import start_dispatcher

log = logging.getLogger("rrr.worker")


@setup_logging.connect
def _logging(**_: Any) -> None:
    # connecting this signal stops Celery from installing its own handlers
    configure_logging()


@worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    # Celery prints "worker: Warm shutdown (MainProcess)" straight to stdout on SIGTERM and
    # SIGINT; the same handlers without that print, and a log line of our own instead
    # (_on_shutting_down)
    controller = getattr(sender, "controller", None)
    if controller is not None:
        celery_worker.install_worker_term_handler(controller, verbose=False)
        # a second Ctrl-C still stops at once, as with Celery's own handler
        celery_worker.install_worker_int_handler(
            controller, verbose=False, callback=_second_interrupt_is_cold
        )
    analyzer = get_analyzer()
    # one throw-away forward pass: the first one pays for memory allocation and kernel choice
    analyzer.detector.score([np.zeros((64, 64, 3), dtype=np.uint8)])
    log.info("model loaded from %s (engine %s)", settings.model_file, settings.engine)
    start_sweeper()
    start_dispatcher()


def _second_interrupt_is_cold(controller: Any) -> None:
    celery_worker.install_worker_term_hard_handler(controller, sig="SIGINT", verbose=False)


_announced: set[str] = set()  # shutdowns already logged (Ctrl-C and SIGTERM may both come)


@worker_shutting_down.connect
def _on_shutting_down(sender: Any = None, how: str = "Warm", **_: Any) -> None:
    if how in _announced:
        return
    _announced.add(how)
    if how == "Warm":
        log.info("worker %s: stopping: finishing the current task first", sender)
    else:
        log.warning(
            "worker %s: stopping now (%s shutdown): a running task is abandoned", sender, how
        )


RETRY = {
    # the database or the object store was unreachable: try again later
    "autoretry_for": (OperationalError, StorageUnavailable),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 10,
}


@celery_app.task(name=TASK_NAME, **RETRY)
def process_job(job_id: str) -> None:
    token = current_job.set(job_id)
    try:
        run_job(job_id)
    finally:
        current_job.reset(token)


@celery_app.task(name=SEGMENT_TASK_NAME, **RETRY)
def process_segment(job_id: str, index: int, attempt: int) -> None:
    token = current_job.set(job_id)
    try:
        with session_scope() as session:
            segment = session.get(Segment, (job_id, index))
            if segment is not None and segment.status == SegmentStatus.QUEUED.value:
                jobs.note_received(session, VIDEO_QUEUE, segment.updated_at)
        with recorded_outcome(job_id, attempt):
            videos.run_segment(job_id, index, attempt)
    finally:
        current_job.reset(token)


@celery_app.task(name=HEATMAP_TASK_NAME, **RETRY)
def make_heatmap(job_id: str) -> None:
    token = current_job.set(job_id)
    try:
        images.make_heatmap(job_id)
    finally:
        current_job.reset(token)


@celery_app.task(name=FRAME_HEATMAP_TASK_NAME, **RETRY)
def make_frame_heatmap(job_id: str, index: int) -> None:
    token = current_job.set(job_id)
    try:
        videos.make_frame_heatmap(job_id, index)
    finally:
        current_job.reset(token)


@contextmanager
def recorded_outcome(job_id: str, attempt: int) -> Iterator[None]:
    """Turn what the work raised into the job's outcome: media problems fail the job with their
    code, unexpected errors with ``internal_error``; database or storage trouble propagates so that
    Celery retries the task; a job that stopped being ours is left as it is."""
    try:
        yield
    except Canceled:
        log.info("job %s: stopped (canceled or taken over)", job_id)
    except DetectionError as exc:
        _fail(job_id, attempt, exc.code, exc.message)
        log.info("job %s: failed: %s", job_id, exc.code)
    except (OperationalError, StorageUnavailable):
        raise
    except Exception:
        log.exception("job %s: internal error", job_id)
        _fail(
            job_id,
            attempt,
            "internal_error",
            "the worker hit an unexpected error analysing this upload; it has been logged",
        )


def _fail(job_id: str, attempt: int, code: str, message: str) -> None:
    with session_scope() as session:
        if jobs.mark_failed(session, job_id, code, message, attempt):
            metrics.observe(session, {}, failure=code)


# what each kind of job runs once claimed: (job id, attempt, inputs, params)
RUNNERS: dict[JobKind, Callable[[str, int, list[dict[str, Any]], dict[str, Any]], None]] = {
    JobKind.IMAGE: images.run_image,
    JobKind.BATCH: images.run_batch,
    JobKind.VIDEO: videos.plan,
}


def run_job(job_id: str) -> None:
    """Claim the job and run it (a video: plan its segments). Safe to call twice."""
    with session_scope() as session:
        # the common case in one statement: a queued job (or one whose worker died) is claimed
        claimed = jobs.claim(session, job_id, settings.stale_after_s)
        if claimed is not None:
            if claimed.attempt == 1:  # it was queued: this message left the queue
                _note_received(session, queue_for(claimed.kind), claimed.published_at)
            attempt, kind = claimed.attempt, JobKind(claimed.kind)
            inputs, params = claimed.inputs, claimed.params
    if claimed is None:
        found = _claim_slowly(job_id)
        if found is None:
            return
        attempt, kind, inputs, params = found

    log.info("job %s: running (%s, attempt %d)", job_id, kind, attempt)
    with recorded_outcome(job_id, attempt):
        RUNNERS[kind](job_id, attempt, inputs, params)


# The sweeper judges a waiting message lost only when one published RECEIVED_SLACK_S (60 s)
# after it has been taken, so a watermark that lags by a second changes nothing: a worker
# raises it at most once per second of publish times instead of once per job.
WATERMARK_STEP_S = 1.0
_noted: dict[tuple[str, str], float] = {}  # (database, queue) -> the last stamp written here


def _note_received(session: Any, queue: str, published_at: Any) -> None:
    if published_at is None:
        return
    key, stamp = (settings.database_url, queue), published_at.timestamp()
    if stamp < _noted.get(key, float("-inf")) + WATERMARK_STEP_S:
        return
    jobs.note_received(session, queue, published_at)
    _noted[key] = stamp


def _claim_slowly(job_id: str) -> tuple[int, JobKind, list[dict[str, Any]], dict[str, Any]] | None:
    """Every other case, looked at closely: a finished or missing job is left alone, a job that
    used up its attempts fails, one alive in another worker is not taken."""
    with session_scope() as session:
        job = session.get(jobs.Job, job_id)
        if job is None or JobStatus(job.status).is_terminal():
            return None
        if job.status == JobStatus.QUEUED.value:
            # this message left the queue: the sweeper judges lost messages by it
            jobs.note_received(session, queue_for(job.kind), job.published_at)
        if job.attempts >= jobs.MAX_ATTEMPTS:
            jobs.mark_failed(
                session,
                job_id,
                "too_many_attempts",
                f"the job was started {job.attempts} times without finishing "
                "(a worker died on it each time); it will not be retried",
            )
            return None
        attempt = jobs.mark_running(session, job_id, settings.stale_after_s)
        if attempt is None:
            return None  # finished, canceled, or alive in another worker
        return attempt, JobKind(job.kind), list(job.inputs), dict(job.params)
