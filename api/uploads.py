"""Turn a multipart upload into a stored, queued job (used by /v1/jobs and the /predict shims)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import unicodedata
from typing import Any, BinaryIO

from flask import Request
from werkzeug.datastructures import FileStorage

from api.schemas import parse_job_params
from api.security import check_submission_limits, current_owner
from api.sniff import SNIFF_BYTES, sniff
from shared import jobs
from shared.config import settings
from shared.db import session_scope
from shared.errors import BadRequest, Conflict, DetectionError, UploadTooLarge
from shared.logs import current_job
from shared.models import Job, JobKind, new_job_id
from shared.queue import publish_job
from shared.storage import get_storage

log = logging.getLogger("rrr.api")
MAX_FILENAME = 255


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


def submit(request: Request, expect: str | None = None) -> tuple[Job, bool]:
    """Validate, store and enqueue one job. Returns (job, created); created is False when an
    Idempotency-Key repeats an earlier identical request."""
    kind, files = _files_from(request, expect)
    params = parse_job_params(request.form)
    owner = current_owner()
    with session_scope() as session:
        check_submission_limits(session)
    idempotency_key = request.headers.get("Idempotency-Key") or None
    if idempotency_key is not None and len(idempotency_key) > 120:
        raise BadRequest("Idempotency-Key must be at most 120 characters", code="invalid_header")

    job_id = new_job_id()
    current_job.set(job_id)
    storage = get_storage()
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    inputs: list[dict[str, Any]] = []
    remaining = settings.max_upload_bytes
    first_error: DetectionError | None = None
    try:
        for index, upload in enumerate(files):
            filename = clean_filename(upload.filename)
            head = upload.stream.read(SNIFF_BYTES)
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
                # one bad file in a batch fails only its own item
                first_error = first_error or exc
                error = {"code": exc.code, "message": exc.message}
                inputs.append({"filename": filename, "error": error})
                continue
            key = f"{job_id}/{index}.{media.extension}"
            try:
                size = storage.put(key, _HashingReader(head, upload.stream, digest), remaining)
            except OverflowError:
                raise UploadTooLarge(
                    f"the upload is larger than the limit of {settings.max_upload_mb:g} MB"
                ) from None
            remaining -= size
            inputs.append(
                {"key": key, "filename": filename, "size": size, "media_type": media.mime}
            )
            if kind is None:
                kind = JobKind(media.kind)
        if kind == JobKind.BATCH and not any(item.get("key") for item in inputs):
            assert first_error is not None
            first_error.message = f"no file in the batch is usable: {first_error.message}"
            raise first_error
        assert kind is not None
        if expect in ("image", "video") and kind.value != expect:
            raise BadRequest(
                f"this endpoint takes a {expect}, but the file is a {kind.value}",
                code=f"not_an_{expect}" if expect == "image" else "not_a_video",
            )
        params["request_sha256"] = digest.hexdigest()

        with session_scope() as session:
            if idempotency_key is not None:
                # keys are scoped per API key, so two clients cannot collide or probe each other
                idempotency_key = f"{owner or '-'}:{idempotency_key}"
                existing = jobs.find_by_idempotency_key(session, idempotency_key)
                if existing is not None:
                    if existing.params.get("request_sha256") != params["request_sha256"]:
                        raise Conflict(
                            "this Idempotency-Key was used for a different request",
                            code="idempotency_conflict",
                        )
                    storage.delete_job(job_id)
                    return existing, False
            job = jobs.create_job(
                session,
                kind=kind,
                inputs=inputs,
                params=params,
                progress_total=len(inputs) if kind == JobKind.BATCH else 0,
                idempotency_key=idempotency_key,
                job_id=job_id,
                owner=owner,
            )
    except BaseException:
        storage.delete_job(job_id)
        raise

    try:
        publish_job(job.id, job.kind)
    except Exception as exc:
        # The job is safely recorded; a worker's sweeper publishes it once the broker is back.
        log.warning("job %s: broker unreachable (%s); left for the sweeper", job.id, exc)
        with session_scope() as session:
            jobs.mark_unpublished(session, job.id)
    log.info("job %s: queued (%s, %d file(s))", job.id, job.kind, len(inputs))
    return job, True
