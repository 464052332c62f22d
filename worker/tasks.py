"""Celery tasks: thin wrappers that claim a job, run the pipeline and record the outcome.

Re-running a task is harmless: a terminal job is left alone, and per-frame rows are replaced,
not appended.
"""

from __future__ import annotations

import io
import logging
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from celery.signals import setup_logging, worker_ready
from sqlalchemy.exc import OperationalError

from shared import jobs, metrics
from shared.config import settings
from shared.db import session_scope
from shared.detector import get_detector
from shared.errors import DetectionError, MediaError
from shared.faces import FaceDetector
from shared.logs import configure_logging, current_job
from shared.models import JobStatus
from shared.queue import TASK_NAME, celery_app
from shared.storage import get_storage, heatmap_key
from worker.pipeline import Analyzer, Canceled
from worker.sweeper import start_sweeper

log = logging.getLogger("rrr.worker")
_face_detector: FaceDetector | None = None


def get_analyzer(threshold: float | None = None) -> Analyzer:
    """Built from process-wide singletons: the model and face detector load once per process."""
    global _face_detector
    detector = get_detector(settings.weights_path, settings.inference_threads, settings.engine)
    if _face_detector is None:
        _face_detector = FaceDetector()
    if threshold is None:
        threshold = settings.threshold
    if threshold is None:
        threshold = detector.config.threshold
    return Analyzer(
        detector=detector,
        faces=_face_detector,
        threshold=float(threshold),
        face_padding=settings.face_padding,
        max_image_pixels=settings.max_image_pixels,
    )


@setup_logging.connect
def _logging(**_: Any) -> None:
    # connecting this signal stops Celery from installing its own handlers
    configure_logging()


@worker_ready.connect
def _on_worker_ready(**_: Any) -> None:
    analyzer = get_analyzer()
    # one throw-away forward pass: the first one pays for memory allocation and kernel choice
    analyzer.detector.score([np.zeros((64, 64, 3), dtype=np.uint8)])
    log.info("model loaded from %s", settings.weights_path)
    start_sweeper()


@celery_app.task(
    name=TASK_NAME,
    autoretry_for=(OperationalError,),  # the database was unreachable: try again later
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=10,
)
def process_job(job_id: str) -> None:
    token = current_job.set(job_id)
    try:
        run_job(job_id)
    finally:
        current_job.reset(token)


def _progress(job_id: str, attempt: int):
    def report(done: int, total: int) -> bool:
        with session_scope() as session:
            return jobs.set_progress(session, job_id, attempt, done, total)

    return report


def run_job(job_id: str) -> None:
    """Claim the job, analyse its media, write the outcome. Safe to call twice."""
    with session_scope() as session:
        job = session.get(jobs.Job, job_id)
        if job is None or JobStatus(job.status).is_terminal():
            return
        if job.attempts >= jobs.MAX_ATTEMPTS:
            jobs.mark_failed(
                session,
                job_id,
                "too_many_attempts",
                f"the job was started {job.attempts} times without finishing "
                "(a worker died on it each time); it will not be retried",
            )
            return
        attempt = jobs.mark_running(session, job_id, settings.stale_after_s)
        if attempt is None:
            return  # finished, canceled, or alive in another worker
        kind, inputs, params = job.kind, list(job.inputs), dict(job.params)

    log.info("job %s: running (%s, attempt %d)", job_id, kind, attempt)
    started = time.perf_counter()
    try:
        result, frames = _analyze(kind, inputs, params, job_id, attempt)
        with session_scope() as session:
            if frames is not None:
                jobs.replace_frames(session, job_id, frames)
            if not jobs.mark_succeeded(session, job_id, attempt, result):
                raise Canceled()  # rolls back the frames written above
            metrics.observe(session, _stage_seconds(kind, result, started))
        log.info("job %s: succeeded", job_id)
    except Canceled:
        log.info("job %s: stopped (canceled or taken over)", job_id)
    except DetectionError as exc:
        with session_scope() as session:
            if jobs.mark_failed(session, job_id, exc.code, exc.message, attempt):
                metrics.observe(session, {}, failure=exc.code)
        log.info("job %s: failed: %s", job_id, exc.code)
    except OperationalError:
        raise  # database trouble: let Celery retry the task
    except Exception:
        log.exception("job %s: internal error", job_id)
        with session_scope() as session:
            if jobs.mark_failed(
                session,
                job_id,
                "internal_error",
                "the worker hit an unexpected error analysing this upload; it has been logged",
                attempt,
            ):
                metrics.observe(session, {}, failure="internal_error")


def _stage_seconds(kind: str, result: dict[str, Any], started: float) -> dict[str, float]:
    """The job's wall time and, for single images and videos, its stage timings."""
    stages = {f"job_{kind}": time.perf_counter() - started}
    for stage, ms in (result.get("timings_ms") or {}).items():
        if stage != "total":
            stages[f"{kind}_{stage}"] = ms / 1000.0
    return stages


def _analyze(
    kind: str, inputs: list[dict[str, Any]], params: dict[str, Any], job_id: str, attempt: int
) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    analyzer = get_analyzer(params.get("threshold"))
    storage = get_storage()
    progress = _progress(job_id, attempt)
    with ExitStack() as stack:
        paths: list[Path | None] = [
            stack.enter_context(storage.local_path(item["key"])) if item.get("key") else None
            for item in inputs
        ]
        if kind == "image":
            if not progress(0, 1):
                raise Canceled()
            result, heatmap = analyzer.analyze_image(paths[0], explain=settings.heatmaps)
            if heatmap is not None:
                storage.put(heatmap_key(job_id), io.BytesIO(heatmap), len(heatmap))
            result["heatmap"] = heatmap is not None
            return result, None
        if kind == "batch":
            items = [
                (
                    item["filename"],
                    path,
                    MediaError(item["error"]["message"], code=item["error"]["code"])
                    if item.get("error")
                    else None,
                )
                for item, path in zip(inputs, paths, strict=True)
            ]
            return analyzer.analyze_batch(items, progress), None
        if kind == "video":
            return analyzer.analyze_video(
                paths[0],
                sample_fps=float(params.get("sample_fps", settings.sample_fps)),
                max_frames=int(params.get("max_frames", settings.max_frames)),
                progress=progress,
            )
    raise ValueError(f"unknown job kind {kind!r}")
