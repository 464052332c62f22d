"""ORM models: a job per submission (``jobs``), a row per analysed video frame
(``frame_results``), a video job's segments (``segments``) and counters shared by every process
(``counters``)."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them without an offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})


class JobKind(enum.StrEnum):
    IMAGE = "image"
    BATCH = "batch"
    VIDEO = "video"


class Sampling(enum.StrEnum):
    """How a video job picks its frames (detection/media.py, ``sample_frames``)."""

    EXACT = "exact"  # the first frame at or after each sample's time
    KEYFRAMES = "keyframes"  # the keyframe before it: faster, frames further apart


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value, index=True)
    # what the client asked for: sample_fps, sampling, max_frames, threshold (shown back to it)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # digest of the request (files and params): a repeated Idempotency-Key must match it
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    # a video's facts as the worker that planned it probed them (fps, frame_count, width,
    # height): every segment samples the same frames. Worker state, never shown to clients.
    probe: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # what a video file declares about its origin (detection/provenance.py), read once when
    # the job is planned and copied into its result when the last segment is aggregated
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # stored uploads: [{key, filename, size, media_type}]; keys point into Storage
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # who submitted it: a digest of the API key (None when API keys are not configured)
    owner: Mapped[str | None] = mapped_column(String(64))
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    # when progress_done last grew, and its pace (steps per second, smoothed over time:
    # shared/jobs.py, progress_values): the ETA counts down from them between writes
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    progress_rate: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # when a task message for the job was last sent (the sweeper re-sends lost ones)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # where the job's events are posted (shared/webhooks.py), which events ("start,completed"),
    # and when a progress event was last emitted (they are rate-limited across workers)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_events: Mapped[str | None] = mapped_column(String(64))
    webhook_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_jobs_created_id", "created_at", "id"),
        Index("ix_jobs_owner_created", "owner", "created_at"),
    )


class FrameResult(Base):
    """One sampled video frame: when it was, and the verdict on every face in it."""

    __tablename__ = "frame_results"

    job_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)  # order among sampled frames
    frame_number: Mapped[int] = mapped_column(Integer)  # position in the decoded stream
    timestamp_s: Mapped[float] = mapped_column(Float)
    probability_fake: Mapped[float | None] = mapped_column(Float)  # None: no face in the frame
    faces: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Counter(Base):
    """A monotonic number shared by every process (e.g. latency histogram buckets for
    /metrics): workers add to it, the API reads it."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)


class SegmentStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class Segment(Base):
    """A stretch of a video job's samples that one task analyses; any worker may take it."""

    __tablename__ = "segments"

    job_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_sample: Mapped[int] = mapped_column(Integer)
    end_sample: Mapped[int] = mapped_column(Integer)  # exclusive
    status: Mapped[str] = mapped_column(String(16), default=SegmentStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float | None] = mapped_column(Float)  # how long the task took, once done
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt failed
    SUPERSEDED = "superseded"  # a progress event not yet delivered when the job ended


class WebhookDelivery(Base):
    """One event of a job for its webhook, written in the transaction of the transition it
    reports (an outbox: no event is lost if the broker or a worker goes down), then delivered
    and retried by the workers' dispatcher (worker/webhooks.py)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the webhook-id header
    job_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    # the event's data as it was when it happened (start, progress); None: built at first send
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    body: Mapped[str | None] = mapped_column(Text)  # frozen at the first attempt
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # every attempt: [{attempt, at, status_code | error}]
    log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)
