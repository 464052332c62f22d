"""Turn a multipart upload into a stored, queued job (used by /v1/jobs and the /predict shims)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import unicodedata
from dataclasses import dataclass
from typing import Any, BinaryIO

from flask import Request
from werkzeug.datastructures import FileStorage

from api.schemas import parse_job_params
from api.security import check_submission_limits, current_owner
from api.sniff import SNIFF_BYTES, sniff
from shared import jobs, webhooks
from shared.config import settings
from shared.db import session_scope
from shared.errors import BadRequest, Conflict, DetectionError, UploadTooLarge
from shared.logs import current_job
from shared.models import Job, JobKind, new_job_id
from shared.queue import publish_job
from shared.storage import Storage, get_storage

log = logging.getLogger("rrr.api")
MAX_FILENAME = 255
# Below this size the limits are checked only once, in create(): storing a small upload costs
# less than the extra transaction (a quarter of the API's CPU per image submission went to SQL).
EARLY_CHECK_BYTES = 1 << 20


# the form fields POST /v1/jobs takes (api/schemas.py, parse_job_params) and its file fields;
# anything else is refused, so that a misspelt option is never silently ignored
FORM_FIELDS = frozenset(
    {"sample_fps", "sampling", "max_frames", "threshold", "heatmap", "webhook", "webhook_events"}
)
FILE_FIELDS = frozenset({"file", "files"})


class _HashingReader(io.RawIOBase):
    """Re-joins the sniffed head with the rest of the stream and hashes what passes through."""

    def __init__(self, head: bytes, rest: BinaryIO, digest: Any) -> None:
        self._head, self._rest, self._digest = head, rest, digest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            chunk, self._head = self._head, b""
        else:
            chunk = self._rest.read(size)
        self._digest.update(chunk)
        return chunk


def clean_filename(name: str | None) -> str:
    """A display name only (files are stored under generated names): no paths, no controls."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if ch.isprintable())
    return name[:MAX_FILENAME] or "upload"


def _printable_ascii(value: str) -> bool:
    return all(" " <= ch <= "~" for ch in value)


def _files_from(request: Request, expect: str | None) -> tuple[JobKind | None, list[FileStorage]]:
    single = request.files.getlist("file")
    many = request.files.getlist("files")
    if single and many:
        raise BadRequest("send either 'file' (one image or video) or 'files' (images), not both")
    if len(single) > 1:
        raise BadRequest("'file' was sent more than once; use 'files' for several images")
    if expect == "batch" and not many:
        raise BadRequest("missing form field 'files': attach one or more images", "missing_field")
    if expect in ("image", "video") and not single:
        raise BadRequest("missing form field 'file': attach the file to analyse", "missing_field")
    if not single and not many:
        raise BadRequest(
            "missing form field 'file' (one image or video) or 'files' (several images)",
            code="missing_field",
        )
    if len(many) > settings.max_batch_files:
        raise BadRequest(
            f"a batch holds at most {settings.max_batch_files} files; split it into several jobs",
            code="too_many_files",
        )
    return (JobKind.BATCH if many else None), (many or single)


@dataclass
class Submission:
    """A validated request: what to store and how to create its job."""

    expect: str | None  # the kind a /predict shim takes; None for /v1/jobs
    field: str  # the file field used: "file" or "files"
    kind: JobKind | None  # BATCH when sent as 'files'; otherwise known once the file is sniffed
    files: list[FileStorage]
    params: dict[str, Any]
    owner: str | None
    idempotency_key: str | None  # scoped per API key
    webhook: tuple[str, str] | None = None  # (url, events) for the job's events


@dataclass
class Stored:
    """What ``store`` wrote: the job's kind, its inputs and the fingerprint of the request."""

    kind: JobKind
    inputs: list[dict[str, Any]]
    request_sha256: str


def submit(
    request: Request, expect: str | None = None, ignore_unknown: bool = False
) -> tuple[Job, bool]:
    """Validate, store, create and publish one job. Returns (job, created); created is False
    when an Idempotency-Key repeats an earlier identical request. ``ignore_unknown``: fields
    this service does not know are ignored (the prototype's endpoints did), not refused."""
    submission = validate(request, expect, ignore_unknown)
    job_id = new_job_id()
    current_job.set(job_id)
    storage = get_storage()
    try:
        stored = store(submission, job_id, storage)
        job, created = create(submission, stored, job_id)
    except BaseException:
        storage.delete_job(job_id)
        raise
    if not created:
        storage.delete_job(job_id)  # the earlier request's job has its own copy
        return job, False
    publish(job, len(stored.inputs))
    return job, True


def _refuse_unknown_fields(request: Request) -> None:
    unknown = sorted((set(request.form) - FORM_FIELDS) | (set(request.files) - FILE_FIELDS))
    if unknown:
        shown = ", ".join(ascii(name[:40]) for name in unknown[:5])
        raise BadRequest(
            f"unknown form field(s) {shown}; the fields are file or files, "
            f"{', '.join(sorted(FORM_FIELDS))}",
            code="unknown_field",
        )


def validate(request: Request, expect: str | None, ignore_unknown: bool = False) -> Submission:
    """Check the request before anything is stored: files, form fields, limits, headers."""
    kind, files = _files_from(request, expect)
    if not ignore_unknown:
        _refuse_unknown_fields(request)
    params = parse_job_params(request.form)
    hook = None
    if expect is None:  # the prototype's endpoints have no webhooks
        hook = webhooks.parse(request.form.get("webhook"), request.form.getlist("webhook_events"))
    owner = current_owner()
    if (request.content_length or 0) > EARLY_CHECK_BYTES:
        with session_scope() as session:
            # an early refusal, before a large upload is stored; the binding check (under the
            # submissions lock) is in create(), and a refused upload is deleted there
            check_submission_limits(session)
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None:
        if not 0 < len(idempotency_key) <= 120 or not _printable_ascii(idempotency_key):
            raise BadRequest(
                "Idempotency-Key must be 1 to 120 printable ASCII characters",
                code="invalid_header",
            )
        # keys are scoped per API key, so two clients cannot collide or probe each other
        idempotency_key = f"{owner or '-'}:{idempotency_key}"
    field = "files" if kind == JobKind.BATCH else "file"
    return Submission(expect, field, kind, files, params, owner, idempotency_key, hook)


def store(submission: Submission, job_id: str, storage: Storage) -> Stored:
    """Sniff and store every file under the job's id, hashing each file as it streams.
    In a batch, a file that is not an image fails only its own item."""
    kind = submission.kind
    digests: list[Any] = []  # one sha256 per file, complete once the file has streamed
    inputs: list[dict[str, Any]] = []
    remaining = settings.max_upload_bytes
    first_error: DetectionError | None = None
    for index, upload in enumerate(submission.files):
        filename = clean_filename(upload.filename)
        head = upload.stream.read(SNIFF_BYTES)
        digest = hashlib.sha256()
        digests.append(digest)
        try:
            media = sniff(head)
            if kind == JobKind.BATCH and media.kind != "image":
                raise BadRequest(
                    "a batch takes images only; submit a video as its own job with 'file'",
                    code="video_in_batch",
                )
        except DetectionError as exc:
            if kind != JobKind.BATCH:
                raise
            first_error = first_error or exc
            _drain(_HashingReader(head, upload.stream, digest))
            inputs.append(
                {"filename": filename, "error": {"code": exc.code, "message": exc.message}}
            )
            continue
        key = f"{job_id}/{index}.{media.extension}"
        try:
            size = storage.put(key, _HashingReader(head, upload.stream, digest), remaining)
        except OverflowError:
            raise UploadTooLarge(
                f"the upload is larger than the limit of {settings.max_upload_mb:g} MB"
            ) from None
        remaining -= size
        inputs.append({"key": key, "filename": filename, "size": size, "media_type": media.mime})
        if kind is None:
            kind = JobKind(media.kind)
    # the prototype's batch endpoint answers even a batch of unusable files, item by item
    if (
        submission.expect != "batch"
        and kind == JobKind.BATCH
        and not any(item.get("key") for item in inputs)
    ):
        assert first_error is not None
        first_error.message = f"no file in the batch is usable: {first_error.message}"
        raise first_error
    assert kind is not None
    expect = submission.expect
    if expect in ("image", "video") and kind.value != expect:
        raise BadRequest(
            f"this endpoint takes a {expect}, but the file is a {kind.value}",
            code=f"not_an_{expect}" if expect == "image" else "not_a_video",
        )
    return Stored(kind, inputs, fingerprint(submission, [d.hexdigest() for d in digests]))


def fingerprint(submission: Submission, file_digests: list[str]) -> str:
    """What makes two requests the same request for Idempotency-Key: the endpoint, the file
    field (one 'file' is an image job, the same bytes as 'files' a batch), the validated
    options and each file's digest, in order."""
    request = {
        "endpoint": submission.expect or "jobs",
        "field": submission.field,
        "params": submission.params,
        "webhook": submission.webhook,
        "files": file_digests,
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def _drain(reader: io.RawIOBase) -> None:
    while reader.read(1 << 20):
        pass


def create(submission: Submission, stored: Stored, job_id: str) -> tuple[Job, bool]:
    """Insert the queued job; (job, True). The submission limits are checked here, under
    ``jobs.lock_submissions``, so they hold under any concurrency. Idempotency lives here
    alone: a key already used for the same request answers with that request's job,
    (job, False); for a different request, with a Conflict. That holds also when two
    requests with one key race."""
    key = submission.idempotency_key
    with session_scope() as session:
        # count and insert in one transaction that no other submission can interleave with
        jobs.lock_submissions(session)
        if key is not None and (earlier := jobs.find_by_idempotency_key(session, key)):
            return _repeated(earlier, stored), False
        check_submission_limits(session)
        try:
            job = jobs.create_job(
                session,
                kind=stored.kind,
                inputs=stored.inputs,
                params=submission.params,
                # an image is one step; a video's total is known once a worker probes it
                progress_total=0 if stored.kind == JobKind.VIDEO else len(stored.inputs),
                idempotency_key=key,
                request_sha256=stored.request_sha256,
                job_id=job_id,
                owner=submission.owner,
                webhook=submission.webhook,
            )
        except Conflict:
            earlier = jobs.find_by_idempotency_key(session, key) if key is not None else None
            if earlier is None:
                raise
            return _repeated(earlier, stored), False
    return job, True


def _repeated(earlier: Job, stored: Stored) -> Job:
    if earlier.request_sha256 != stored.request_sha256:
        raise Conflict(
            "this Idempotency-Key was used for a different request", code="idempotency_conflict"
        )
    return earlier


def publish(job: Job, files: int) -> None:
    """Send the job's task; if the broker is down, leave the job for the sweeper."""
    try:
        publish_job(job.id, job.kind)
    except Exception as exc:
        # The job is safely recorded; a worker's sweeper publishes it once the broker is back.
        log.warning("job %s: broker unreachable (%s); left for the sweeper", job.id, exc)
        with session_scope() as session:
            jobs.mark_unpublished(session, job.id)
    log.info("job %s: queued (%s, %d file(s))", job.id, job.kind, files)
