"""The job lifecycle: the only module that writes a job's status.

queued -> running -> succeeded | failed | canceled

Every transition is one conditional UPDATE (``WHERE status IN (...)``), so a stale or duplicated
task message can never move a terminal job back. A worker claims a job by bumping its attempt
counter and then writes only while that counter is still its own: if a job is reclaimed from a
worker presumed dead, the old worker's late writes are refused and it stops.

Running jobs heartbeat through ``updated_at`` (every progress report). ``sweep`` finds jobs whose
message was lost (queued too long) or whose worker died (running without a heartbeat) and hands
them back for publishing, and fails jobs past their deadline or their attempt limit. A video's
segments have their own lifecycle in shared/segments.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared import webhooks
from shared.errors import Conflict, NotFound
from shared.models import (
    TERMINAL_STATUSES,
    Counter,
    FrameResult,
    Job,
    JobKind,
    JobStatus,
    Segment,
    UTCDateTime,
    WebhookDelivery,
    new_job_id,
    utcnow,
)

ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
# what ``new_job_id`` makes: anything else names no job, and never reaches SQL
JOB_ID = re.compile(r"[0-9a-f]{32}")
# A job is re-run from scratch after a worker died mid-task; past this many starts it is a
# poison job (e.g. media that kills the decoder) and fails instead of looping forever.
MAX_ATTEMPTS = 3


_INSERT_JOB = insert(Job.__table__)


def create_job(
    session: Session,
    *,
    kind: JobKind,
    inputs: list[dict[str, Any]],
    params: dict[str, Any],
    progress_total: int = 0,
    idempotency_key: str | None = None,
    request_sha256: str | None = None,
    job_id: str | None = None,
    owner: str | None = None,
    webhook: tuple[str, str] | None = None,
) -> Job:
    """Insert a queued job (``webhook``: its URL and events, shared/webhooks.py). With an
    idempotency key already used, raise Conflict."""
    now = utcnow()
    values = {
        "id": job_id or new_job_id(),
        "kind": kind.value,
        "status": JobStatus.QUEUED.value,
        "params": params,
        "inputs": inputs,
        "idempotency_key": idempotency_key,
        "request_sha256": request_sha256,
        "owner": owner,
        "progress_done": 0,
        "progress_total": progress_total,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "published_at": now,  # publishing follows the commit; the sweeper covers a failure
        "webhook_url": webhook[0] if webhook else None,
        "webhook_events": webhook[1] if webhook else None,
    }
    # a plain INSERT (the ORM's unit of work cost more CPU than the statement); the Job
    # returned holds every column the insert set, the rest being None as in the row
    job = Job(**values)
    try:
        session.connection().execute(_INSERT_JOB, values)
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(
            "this Idempotency-Key was already used; reuse it only to repeat the same request",
            code="idempotency_conflict",
        ) from exc
    return job


SUBMISSIONS_LOCK = "lock:submissions"
_LOCK_SUBMISSIONS: dict[str, Any] = {}  # by dialect name: built once


def lock_submissions(session: Session) -> None:
    """Serialise submissions across every API process until this transaction ends, so that the
    limits counted in it (queue size, a key's unfinished jobs, its rate) and the insert that
    follows are one atomic step. It is a write to one row of ``counters``: PostgreSQL holds a
    row lock on it, SQLite its write lock (a write as the first statement of a transaction
    waits for the lock instead of failing). Call it first in the transaction."""
    dialect = session.get_bind().dialect.name
    if dialect not in _LOCK_SUBMISSIONS:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        table = Counter.__table__
        # one statement: insert the row, or bump it (either way a write that holds the lock)
        _LOCK_SUBMISSIONS[dialect] = (
            insert(table)
            .values(name=SUBMISSIONS_LOCK, value=1.0)
            .on_conflict_do_update(index_elements=[table.c.name], set_={"value": table.c.value + 1})
        )
    session.connection().execute(_LOCK_SUBMISSIONS[dialect])


def find_by_idempotency_key(session: Session, key: str) -> Job | None:
    return session.scalars(select(Job).where(Job.idempotency_key == key)).first()


def is_job_id(value: str) -> bool:
    """Whether ``value`` has the shape of a job id (32 lowercase hex digits)."""
    return JOB_ID.fullmatch(value) is not None


def get_job(session: Session, job_id: str, owner: str | None = None) -> Job:
    """The job; with ``owner``, only if that API key created it (else it does not exist).
    A value that is not shaped like a job id is answered without a query."""
    job = session.get(Job, job_id) if is_job_id(job_id) else None
    if job is None or (owner is not None and job.owner != owner):
        shown = job_id if is_job_id(job_id) else ascii(job_id[:40])
        raise NotFound(f"no job with id {shown}", code="job_not_found")
    return job


def list_jobs(
    session: Session,
    *,
    limit: int,
    before: tuple[datetime, str] | None = None,
    status: str | None = None,
    kind: str | None = None,
    owner: str | None = None,
) -> list[Job]:
    """Newest first; ``before`` is the (created_at, id) of the last row of the previous page."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if owner is not None:
        query = query.where(Job.owner == owner)
    if status:
        query = query.where(Job.status == status)
    if kind:
        query = query.where(Job.kind == kind)
    if before is not None:
        created, job_id = before
        query = query.where(
            (Job.created_at < created) | ((Job.created_at == created) & (Job.id < job_id))
        )
    return list(session.scalars(query))


def _transition(session: Session, job_id: str, allowed: tuple[str, ...], **values: Any) -> bool:
    values.setdefault("updated_at", utcnow())
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.status.in_(allowed)).values(**values)
    )
    return result.rowcount == 1


def mark_running(session: Session, job_id: str, stale_after_s: float) -> int | None:
    """Claim a job: queued -> running, or reclaim a running job whose worker has sent no
    heartbeat for ``stale_after_s`` (it died). Returns this claim's attempt number, or None if
    the job is terminal, gone, or alive in another worker."""
    now = utcnow()
    claimable = (Job.status == JobStatus.QUEUED.value) | (
        (Job.status == JobStatus.RUNNING.value)
        & (Job.updated_at < now - timedelta(seconds=stale_after_s))
    )
    # RETURNING (SQLite 3.35+, PostgreSQL): the claim and its attempt number in one statement
    attempt = session.scalar(
        update(Job)
        .where(Job.id == job_id, claimable)
        .values(
            status=JobStatus.RUNNING.value,
            started_at=now,
            updated_at=now,
            attempts=Job.attempts + 1,
            progress_done=0,
            progress_at=None,
            progress_rate=None,
        )
        .returning(Job.attempts)
    )
    if attempt == 1:  # a job reclaimed from a dead worker has started already
        webhooks.emit(session, job_id, "start")
    return attempt


# The statements every image job runs, built once: building and caching a statement cost more
# CPU than running it on SQLite (the worker's SQL was about a third of an image job's CPU).
_JOBS = Job.__table__
_NOW = bindparam("b_now", type_=UTCDateTime())
_CLAIM = (
    update(_JOBS)
    .where(
        _JOBS.c.id == bindparam("b_id"),
        _JOBS.c.attempts < MAX_ATTEMPTS,
        (_JOBS.c.status == JobStatus.QUEUED.value)
        | (
            (_JOBS.c.status == JobStatus.RUNNING.value)
            & (_JOBS.c.updated_at < bindparam("b_stale", type_=UTCDateTime()))
        ),
    )
    .values(
        status=JobStatus.RUNNING.value,
        started_at=_NOW,
        updated_at=_NOW,
        attempts=_JOBS.c.attempts + 1,
        progress_done=0,
        progress_at=None,
        progress_rate=None,
    )
    .returning(
        _JOBS.c.attempts,
        _JOBS.c.kind,
        _JOBS.c.inputs,
        _JOBS.c.params,
        _JOBS.c.published_at,
        _JOBS.c.webhook_events,
    )
)


@dataclass(frozen=True)
class Claim:
    """A job this worker now holds: the claim's attempt number and what running it needs."""

    attempt: int
    kind: str
    inputs: list[dict[str, Any]]
    params: dict[str, Any]
    published_at: datetime | None
    webhook_events: str | None


def claim(session: Session, job_id: str, stale_after_s: float) -> Claim | None:
    """``mark_running`` in one statement for the common case: the job is queued (or running
    without a heartbeat) and below MAX_ATTEMPTS. Returns what running it needs; None when the
    job is in any other state: then look at it closely (``mark_running`` and its callers)."""
    now = utcnow()
    row = (
        session.connection()
        .execute(
            _CLAIM,
            {"b_id": job_id, "b_now": now, "b_stale": now - timedelta(seconds=stale_after_s)},
        )
        .one_or_none()
    )
    if row is None:
        return None
    if row.attempts == 1:  # a job reclaimed from a dead worker has started already
        webhooks.emit(session, job_id, "start", events=row.webhook_events)
    return Claim(
        row.attempts,
        row.kind,
        list(row.inputs),
        dict(row.params),
        row.published_at,
        row.webhook_events,
    )


def write_if_owned(session: Session, job_id: str, attempt: int, **values: Any) -> bool:
    """A write by the worker holding claim ``attempt`` of a running job."""
    values.setdefault("updated_at", utcnow())
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.RUNNING.value,
            Job.attempts == attempt,
        )
        .values(**values)
    )
    return result.rowcount == 1


# the pace's memory: the time per step of the steps this many steps back weighs half as much
# as the latest; a stall then counts as one slow step, not as the new pace
RATE_HALF_LIFE_STEPS = 20.0


def progress_values(session: Session, job_id: str, done: int) -> dict[str, Any]:
    """The columns to write for ``done`` steps: when progress last grew, and its pace (steps
    per second): the mean time per step, smoothed over steps (an exponential moving average
    weighted by the steps each write reports, so the pace does not depend on how often
    progress is written, nor on how many workers write it)."""
    values: dict[str, Any] = {"progress_done": done}
    row = session.execute(
        select(Job.progress_done, Job.progress_at, Job.progress_rate, Job.started_at).where(
            Job.id == job_id
        )
    ).one_or_none()
    if row is None or done <= row.progress_done:
        return values
    now = utcnow()
    since = row.progress_at or row.started_at
    values["progress_at"] = now
    if since is None:
        return values
    steps = done - row.progress_done
    per_step = max((now - since).total_seconds(), 1e-3) / steps
    if row.progress_rate:
        weight = 1.0 - 0.5 ** (steps / RATE_HALF_LIFE_STEPS)
        per_step = 1.0 / row.progress_rate + weight * (per_step - 1.0 / row.progress_rate)
    values["progress_rate"] = 1.0 / per_step
    return values


def set_progress(
    session: Session, job_id: str, attempt: int, done: int, total: int | None = None
) -> bool:
    """Record progress (and heartbeat); False when the job is no longer this worker's to run
    (canceled, finished, or reclaimed)."""
    values = progress_values(session, job_id, done)
    if total is not None:
        values["progress_total"] = total
    return write_progress(session, job_id, attempt, values)


def write_progress(session: Session, job_id: str, attempt: int, values: dict[str, Any]) -> bool:
    """Write progress ``values`` under claim ``attempt``, and report it to the job's webhook
    (rate-limited there)."""
    if not write_if_owned(session, job_id, attempt, **values):
        return False
    webhooks.emit(session, job_id, "progress")
    return True


_OWNED = (
    (_JOBS.c.id == bindparam("b_id"))
    & (_JOBS.c.status == JobStatus.RUNNING.value)
    & (_JOBS.c.attempts == bindparam("b_attempt"))
)
_SUCCEEDED = {
    "status": JobStatus.SUCCEEDED.value,
    "result": bindparam("b_result", type_=_JOBS.c.result.type),
    "finished_at": _NOW,
    "updated_at": _NOW,
}
# done = total; or both set to the steps it really took
_SUCCEED = (
    update(_JOBS)
    .where(_OWNED)
    .values(**_SUCCEEDED, progress_done=_JOBS.c.progress_total)
    .returning(_JOBS.c.webhook_events)
)
_STEPS = bindparam("b_steps", type_=_JOBS.c.progress_done.type)
_SUCCEED_STEPS = (
    update(_JOBS)
    .where(_OWNED)
    .values(**_SUCCEEDED, progress_done=_STEPS, progress_total=_STEPS)
    .returning(_JOBS.c.webhook_events)
)


def mark_succeeded(
    session: Session,
    job_id: str,
    attempt: int,
    result: dict[str, Any],
    steps: int | None = None,
) -> bool:
    """Finish the job with ``result``; ``steps``: how many steps it really took (e.g. the
    frames a video yielded), which becomes both done and total; by default done = total."""
    statement = _SUCCEED if steps is None else _SUCCEED_STEPS
    row = (
        session.connection()
        .execute(
            statement,
            {
                "b_id": job_id,
                "b_attempt": attempt,
                "b_result": result,
                "b_now": utcnow(),
                **({} if steps is None else {"b_steps": steps}),
            },
        )
        .one_or_none()
    )
    if row is None:
        return False
    webhooks.emit(session, job_id, "completed", events=row.webhook_events)
    return True


def mark_failed(
    session: Session, job_id: str, code: str, message: str, attempt: int | None = None
) -> bool:
    """Fail a job; with ``attempt``, only while that claim still holds it."""
    values = {
        "status": JobStatus.FAILED.value,
        "error_code": code,
        "error_message": message,
        "finished_at": utcnow(),
    }
    if attempt is not None:
        failed = write_if_owned(session, job_id, attempt, **values)
    else:
        failed = _transition(session, job_id, ACTIVE, **values)
    if failed:
        webhooks.emit(session, job_id, "completed")
    return failed


def mark_canceled(session: Session, job_id: str) -> bool:
    canceled = _transition(
        session, job_id, ACTIVE, status=JobStatus.CANCELED.value, finished_at=utcnow()
    )
    if canceled:
        webhooks.emit(session, job_id, "completed")
    return canceled


def erase_job(session: Session, job_id: str) -> None:
    """Delete a job and every row about it, whatever its status (a client's DELETE). A worker
    still holding it finds no row at its next write and stops, as it does for a cancel."""
    session.execute(delete(FrameResult).where(FrameResult.job_id == job_id))
    session.execute(delete(Segment).where(Segment.job_id == job_id))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.job_id == job_id))
    session.execute(delete(Job).where(Job.id == job_id))


def list_frames(session: Session, job_id: str, *, offset: int, limit: int) -> list[FrameResult]:
    query = (
        select(FrameResult)
        .where(FrameResult.job_id == job_id)
        .order_by(FrameResult.index)
        .offset(offset)
        .limit(limit)
    )
    return list(session.scalars(query))


def count_frames(session: Session, job_id: str) -> int:
    query = select(func.count()).select_from(FrameResult).where(FrameResult.job_id == job_id)
    return int(session.scalar(query) or 0)


_COUNT_QUEUED = (
    select(func.count()).select_from(_JOBS).where(_JOBS.c.status == JobStatus.QUEUED.value)
)


def count_active(session: Session, owner: str | None = None, status: str | None = None) -> int:
    """Jobs not finished yet (queued or running; or just ``status``), of one owner or all."""
    if owner is None and status == JobStatus.QUEUED.value:  # every submission asks this
        return int(session.connection().execute(_COUNT_QUEUED).scalar() or 0)
    query = select(func.count()).select_from(Job)
    query = query.where(Job.status == status) if status else query.where(Job.status.in_(ACTIVE))
    if owner is not None:
        query = query.where(Job.owner == owner)
    return int(session.scalar(query) or 0)


def created_since(session: Session, owner: str, since: datetime) -> list[datetime]:
    """Creation times of an owner's jobs since ``since``, oldest first (for rate limiting)."""
    query = (
        select(Job.created_at)
        .where(Job.owner == owner, Job.created_at >= since)
        .order_by(Job.created_at)
    )
    return list(session.scalars(query))


def mark_unpublished(session: Session, job_id: str) -> None:
    """Publishing failed (broker down): leave the job queued for the sweeper to publish."""
    session.execute(update(Job).where(Job.id == job_id).values(published_at=None))


def mark_published(session: Session, job_id: str, not_since: datetime | None = None) -> bool:
    """Record that a message for the job was (about to be) sent. With ``not_since``, only if no
    message was sent after it, so that of several sweepers exactly one re-publishes a job."""
    query = update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE))
    if not_since is not None:
        query = query.where((Job.published_at.is_(None)) | (Job.published_at < not_since))
    return session.execute(query.values(published_at=utcnow())).rowcount == 1


# How far publish times may be out of order between publishers (an API thread stamps a job,
# commits, then publishes; hosts' clocks differ a little). A waiting message is judged lost only
# when a message stamped this much later has already been taken from its queue.
RECEIVED_SLACK_S = 60.0


def _received_key(queue: str) -> str:
    return f"received:{queue}"


def note_received(session: Session, queue: str, published_at: datetime | None) -> None:
    """A worker took from ``queue`` a message first published at ``published_at``: raise the
    queue's watermark (the newest such time) to it. Queues are first in, first out, so a
    message published before the watermark that is still waiting was lost."""
    if published_at is None:
        return
    dialect = session.get_bind().dialect.name
    if dialect not in _RAISE_WATERMARK:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        table = Counter.__table__
        statement = insert(table).values(name=bindparam("b_name"), value=bindparam("b_value"))
        # one statement: insert the watermark, or raise it (never lower it)
        _RAISE_WATERMARK[dialect] = statement.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={"value": statement.excluded.value},
            where=table.c.value < statement.excluded.value,
        )
    session.connection().execute(
        _RAISE_WATERMARK[dialect],
        {"b_name": _received_key(queue), "b_value": published_at.timestamp()},
    )


_RAISE_WATERMARK: dict[str, Any] = {}  # by dialect name: built once


def received_watermark(session: Session, queue: str) -> datetime | None:
    """The newest publish time among messages taken from ``queue`` (None: none yet)."""
    value = session.scalar(select(Counter.value).where(Counter.name == _received_key(queue)))
    return None if value is None else datetime.fromtimestamp(value, UTC)


def lost_before(session: Session, queue: str, depths: dict[str, int] | None) -> datetime | None:
    """Messages of ``queue`` published before this time and still waiting were lost; None
    when every one of them was: the broker holds nothing for that queue (e.g. it restarted
    empty). ``depths`` None (unknown) judges by age alone, as ``sweep``'s callers without a
    broker do."""
    if depths is None or depths.get(queue, 0) == 0:
        return None
    mark = received_watermark(session, queue)
    if mark is None:
        return datetime.min.replace(tzinfo=UTC)  # nothing taken yet: nothing known lost
    return mark - timedelta(seconds=RECEIVED_SLACK_S)


def sweep(
    session: Session,
    *,
    stale_after_s: float,
    requeue_after_s: float,
    deadline_s: float,
    queue_depths: dict[str, int] | None = None,
) -> list[tuple[str, str]]:
    """Recover jobs whose message or worker was lost; returns (id, kind) of jobs to publish.

    - queued, never published, or not re-published for ``requeue_after_s`` and lost: its
      queue is empty in the broker (``queue_depths``: it restarted empty), or a message
      published after it (RECEIVED_SLACK_S later) was already taken from that queue. A long
      backlog still waiting in the broker is left alone, so its messages are not duplicated;
      without ``queue_depths``, age alone decides;
    - running without a heartbeat for ``stale_after_s``: its worker died; publish again, or
      fail it once it has used up ``MAX_ATTEMPTS``;
    - running for longer than ``deadline_s``: fail it.
    """
    now = utcnow()
    overdue = list(
        session.scalars(
            select(Job.id).where(
                Job.status == JobStatus.RUNNING.value,
                Job.started_at < now - timedelta(seconds=deadline_s),
            )
        )
    )
    for job_id in overdue:
        mark_failed(
            session,
            job_id,
            "deadline_exceeded",
            f"the job ran for more than {deadline_s:g} s and was stopped",
        )
    stale = now - timedelta(seconds=stale_after_s)
    # a video split into segments is watched segment by segment (sweep_segments)
    unsegmented = ~select(Segment.job_id).where(Segment.job_id == Job.id).exists()
    dead = session.execute(
        select(Job.id, Job.attempts).where(
            Job.status == JobStatus.RUNNING.value, Job.updated_at < stale, unsegmented
        )
    ).all()
    for job_id, attempts in dead:
        if attempts >= MAX_ATTEMPTS:
            mark_failed(
                session,
                job_id,
                "too_many_attempts",
                f"the worker stopped responding on each of {attempts} attempts; "
                "the job will not be retried",
            )
    requeue_before = now - timedelta(seconds=requeue_after_s)
    candidates = session.execute(
        select(Job.id, Job.kind, Job.status, Job.published_at).where(
            (
                (Job.status == JobStatus.QUEUED.value)
                & (Job.published_at.is_(None) | (Job.published_at < requeue_before))
            )
            | (
                (Job.status == JobStatus.RUNNING.value)
                & (Job.updated_at < stale)
                & unsegmented
                & (Job.published_at.is_(None) | (Job.published_at < stale))
            )
        )
    ).all()
    from shared.queue import queue_for

    chosen = []
    marks: dict[str, datetime | None] = {}
    for job_id, kind, status, published_at in candidates:
        if status == JobStatus.QUEUED.value and published_at is not None:
            queue = queue_for(kind)
            if queue not in marks:
                marks[queue] = lost_before(session, queue, queue_depths)
            if marks[queue] is not None and published_at >= marks[queue]:
                continue  # still waiting its turn in the broker
        not_since = requeue_before if status == JobStatus.QUEUED.value else stale
        if mark_published(session, job_id, not_since=not_since):
            chosen.append((job_id, kind))
    return chosen


def purge_finished(session: Session, older_than: datetime) -> list[str]:
    """Delete finished jobs (and their frame rows) that ended before ``older_than``; returns
    their ids so the caller can delete their stored files."""
    ids = list(
        session.scalars(
            select(Job.id).where(
                Job.status.in_([s.value for s in TERMINAL_STATUSES]),
                Job.finished_at < older_than,
            )
        )
    )
    if ids:
        session.execute(delete(FrameResult).where(FrameResult.job_id.in_(ids)))
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.job_id.in_(ids)))
        session.execute(delete(Job).where(Job.id.in_(ids)))
    return ids


def existing_ids(session: Session, ids: list[str]) -> set[str]:
    return set(session.scalars(select(Job.id).where(Job.id.in_(ids)))) if ids else set()


def touch(session: Session, job_id: str) -> None:
    """Heartbeat a running job without changing anything else."""
    _transition(session, job_id, (JobStatus.RUNNING.value,))
