"""The one place where errors become HTTP: ``{"error": {"code", "message"}}``, never a stack
trace or an HTML page. The prototype's synchronous endpoints (api/predict.py) answered
``{"error": "<message>"}``, and clients written for them read that string; under those paths
the message is the string and the code moves beside it."""

from __future__ import annotations

import logging

from flask import Flask, has_request_context, jsonify, request
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from shared import errors
from shared.config import settings
from shared.storage import StorageUnavailable

log = logging.getLogger("rrr.api")

STATUS_BY_ERROR: dict[type[errors.DetectionError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.TooManyRequests: 429,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.UploadTooLarge: 413,
    errors.UnsupportedMedia: 415,
    errors.MediaError: 422,
    errors.ServiceUnavailable: 503,
    errors.ModelUnavailable: 503,
}


def status_for(exc: errors.DetectionError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def status_for_failed_job(code: str | None) -> int:
    """The status a synchronous endpoint answers for a failed job: 422 when the media was at
    fault (the decoders' ``image_*`` and ``video_*`` codes), else 500."""
    return 422 if code and code.startswith(("image_", "video_")) else 500


PROTOTYPE_PATHS = ("/predict", "/predict/batch", "/predict/video")


def prototype_request() -> bool:
    """Whether this request is for one of the prototype's endpoints (its error shape)."""
    return has_request_context() and request.path in PROTOTYPE_PATHS


def error_response(status: int, code: str, message: str, **extra):
    if prototype_request():
        body = {"error": message, "code": code, **extra}
    else:
        body = {"error": {"code": code, "message": message, **extra}}
    return jsonify(body), status


# how long a client should wait before retrying after a 503 (an outage is usually brief)
UNAVAILABLE_RETRY_S = 5


def unavailable(code: str, what: str):
    response, status = error_response(503, code, f"{what}; try again shortly")
    response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_S)
    return response, status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(errors.DetectionError)
    def _domain(exc: errors.DetectionError):
        response, status = error_response(status_for(exc), exc.code, exc.message)
        if isinstance(exc, errors.TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        elif status == 503:
            response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_S)
        if isinstance(exc, errors.Unauthorized):
            response.headers["WWW-Authenticate"] = 'ApiKey header="X-API-Key"'
        return response, status

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc):
        return error_response(
            413,
            "upload_too_large",
            f"the upload is larger than the limit of {settings.max_upload_mb:g} MB",
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        if exc.code == 404:
            message = "no such endpoint; see /v1/openapi.json for the API"
        response, status = error_response(exc.code or 500, code, message)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response, status

    @app.errorhandler(DataError)
    def _data(exc):
        # a value the database refused (e.g. a NUL byte in text): the request's fault, not an
        # outage. Requests are validated before SQL; this is the backstop.
        log.warning("database refused a value: %s", exc.__class__.__name__)
        return error_response(400, "invalid_value", "the request holds a value that is not valid")

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _database(exc):
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return unavailable("database_unavailable", "the job database is unreachable")

    @app.errorhandler(BrokerError)
    def _broker(exc):
        log.warning("broker unavailable: %s", exc)
        return unavailable("broker_unavailable", "the job queue is unreachable")

    @app.errorhandler(StorageUnavailable)
    def _storage(exc):
        log.warning("storage unavailable: %s", exc)
        return error_response(
            503, "storage_unavailable", "the upload storage is unreachable; try again shortly"
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an unexpected error occurred; it was logged")
