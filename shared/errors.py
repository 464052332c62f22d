"""Domain errors with machine-readable codes; api/errors.py alone maps them to HTTP statuses."""

from __future__ import annotations


class DetectionError(Exception):
    """Base class: ``code`` is stable and machine-readable, ``message`` says what to do."""

    code = "error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(DetectionError):
    code = "bad_request"


class NotFound(DetectionError):
    code = "not_found"


class Conflict(DetectionError):
    code = "conflict"


class UploadTooLarge(DetectionError):
    code = "upload_too_large"


class UnsupportedMedia(DetectionError):
    code = "unsupported_media_type"


class MediaError(DetectionError):
    """The bytes claim a supported type but cannot be decoded (corrupt, truncated, bomb, ...)."""

    code = "undecodable_media"


class ServiceUnavailable(DetectionError):
    code = "service_unavailable"


class ModelUnavailable(DetectionError):
    code = "model_unavailable"


class Unauthorized(DetectionError):
    code = "unauthorized"


class TooManyRequests(DetectionError):
    code = "rate_limited"

    def __init__(self, message: str, code: str | None = None, retry_after_s: int = 1) -> None:
        super().__init__(message, code)
        self.retry_after_s = max(1, int(retry_after_s))
