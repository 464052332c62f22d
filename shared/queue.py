"""The Celery application both sides share, and the one way to publish a job.

Only job ids travel through the broker (JSON, never pickles, never media). The API publishes by
task name, so it never imports the worker package (nor torch).
"""

from __future__ import annotations

from celery import Celery

from shared import fsbroker, redisbroker
from shared.config import settings

fsbroker.register()  # filesystem:// writes each message atomically (shared/fsbroker.py)
redisbroker.register()  # redis:// keeps one client per channel (shared/redisbroker.py)

TASK_NAME = "rrr.process_job"
SEGMENT_TASK_NAME = "rrr.process_segment"
HEATMAP_TASK_NAME = "rrr.make_heatmap"  # an image job's heatmap, made when first asked for
# a video frame's heatmap: decoding the video belongs with the video work
FRAME_HEATMAP_TASK_NAME = "rrr.make_frame_heatmap"
IMAGE_QUEUE = "images"  # single images and batches: short tasks
VIDEO_QUEUE = "videos"  # long tasks, kept apart so they cannot starve image jobs
# Redis redelivers an unacknowledged message after this long; it must exceed the longest task.
VISIBILITY_TIMEOUT_S = 6 * 3600


def _transport_options() -> dict:
    if settings.embedded_broker:
        folder = settings.var_dir / "broker"
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.05,  # the default 1 s would dominate an image job's latency
        }
    return {"visibility_timeout": VISIBILITY_TIMEOUT_S}


def make_celery() -> Celery:
    app = Celery("rrr")
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=_transport_options(),
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # the SQL database is the record of every job
        result_backend=None,
        # Durability: a message is acknowledged only after its task finished, and a worker
        # killed mid-task leaves it for another worker.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=IMAGE_QUEUE,
        task_routes={
            TASK_NAME: {"queue": IMAGE_QUEUE},
            SEGMENT_TASK_NAME: {"queue": VIDEO_QUEUE},
            HEATMAP_TASK_NAME: {"queue": IMAGE_QUEUE},
            FRAME_HEATMAP_TASK_NAME: {"queue": VIDEO_QUEUE},
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


celery_app = make_celery()


def queue_for(kind: str) -> str:
    """The queue a job of this kind is published to (its segments go to VIDEO_QUEUE)."""
    return VIDEO_QUEUE if kind == "video" else IMAGE_QUEUE


def publish_job(job_id: str, kind: str) -> None:
    """Enqueue a job by id; call only after the job row is committed."""
    celery_app.send_task(TASK_NAME, args=[job_id], queue=queue_for(kind))


def queue_depth(queue: str) -> int:
    """Messages waiting in ``queue`` (not counting those a worker holds); raises when the broker
    cannot be reached."""
    from kombu.exceptions import ChannelError

    with celery_app.connection_for_read() as conn:
        try:
            return int(conn.default_channel.queue_declare(queue, passive=True).message_count)
        except ChannelError:  # NOT_FOUND: the broker holds no such queue, so nothing waits
            return 0


def publish_segment(job_id: str, index: int, attempt: int) -> None:
    """Enqueue one segment of a video job (any worker on the video queue may take it)."""
    celery_app.send_task(SEGMENT_TASK_NAME, args=[job_id, index, attempt], queue=VIDEO_QUEUE)


def publish_heatmap(job_id: str) -> None:
    """Ask a worker for a finished image job's heatmap (on the image queue: a short task)."""
    celery_app.send_task(HEATMAP_TASK_NAME, args=[job_id], queue=IMAGE_QUEUE)


def publish_frame_heatmap(job_id: str, index: int) -> None:
    """Ask a worker for the heatmap of a finished video job's sampled frame ``index`` (on the
    video queue: it decodes the video)."""
    celery_app.send_task(FRAME_HEATMAP_TASK_NAME, args=[job_id, index], queue=VIDEO_QUEUE)


def broker_reachable(timeout_s: float = 2.0) -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
        return True
    except Exception:
        return False
