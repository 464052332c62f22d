"""Access control and response hardening: API keys, per-key limits, security headers, CORS.

With ``RRR_API_KEYS`` unset the service is open (a laptop on localhost). With keys set, every
/v1 and /predict route needs one (``X-API-Key`` or ``Authorization: Bearer``), and a job is
visible only to the key that created it. Limits live in SQL, so they hold across API processes.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from flask import Flask, Response, g, request

from shared import jobs
from shared.config import settings
from shared.errors import TooManyRequests, Unauthorized
from shared.models import JobStatus, utcnow

PROTECTED_PREFIXES = ("/v1/jobs", "/predict")
RATE_WINDOW_S = 60
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # the page uses only its own scripts and styles; uploaded images show as blob: URLs
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


# what a page on another origin may send, and may read back (RRR_CORS_ORIGINS)
CORS_HEADERS = "X-API-Key, Authorization, Idempotency-Key, Content-Type, Prefer, If-None-Match"
CORS_EXPOSED = "Location, Retry-After, ETag, Preference-Applied, Allow"


def owner_of(key: str) -> str:
    """What the database stores about a key: a digest, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def current_owner() -> str | None:
    return g.get("owner")


def _presented_key() -> str | None:
    key = request.headers.get("X-API-Key")
    auth = request.headers.get("Authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key or None


def _authenticate() -> None:
    g.owner = None
    if not settings.api_keys or request.method == "OPTIONS":
        return
    if not request.path.startswith(PROTECTED_PREFIXES):
        return
    key = _presented_key()
    if key is None:
        raise Unauthorized("an API key is required: send it in the X-API-Key header")
    if not any(hmac.compare_digest(key.encode(), k.encode()) for k in settings.api_keys):
        raise Unauthorized("the API key is not valid")
    g.owner = owner_of(key)


def check_submission_limits(session) -> None:
    """429 when the queue is full, the key has too many unfinished jobs, or submits too fast."""
    if jobs.count_active(session, status=JobStatus.QUEUED.value) >= settings.max_queued_jobs:
        raise TooManyRequests(
            "the queue is full; try again in a minute", code="queue_full", retry_after_s=30
        )
    owner = current_owner()
    if owner is None:
        return
    if jobs.count_active(session, owner=owner) >= settings.max_active_jobs_per_key:
        raise TooManyRequests(
            f"this key already has {settings.max_active_jobs_per_key} unfinished jobs; "
            "wait for some to finish",
            code="quota_exceeded",
            retry_after_s=10,
        )
    now = utcnow()
    recent = jobs.created_since(session, owner, now - timedelta(seconds=RATE_WINDOW_S))
    if len(recent) >= settings.rate_limit_per_minute:
        oldest = recent[-settings.rate_limit_per_minute]
        wait = RATE_WINDOW_S - (now - oldest).total_seconds()
        raise TooManyRequests(
            f"at most {settings.rate_limit_per_minute} submissions a minute per key",
            code="rate_limited",
            retry_after_s=int(wait) + 1,
        )


def _harden(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    origin = request.headers.get("Origin")
    if origin and (origin in settings.cors_origins or "*" in settings.cors_origins):
        # the origin itself, never "*": answers differ by key, and caches must keep them apart
        response.headers["Access-Control-Allow-Origin"] = origin
        response.vary.add("Origin")
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
        response.headers["Access-Control-Max-Age"] = "600"
    return response


def init_app(app: Flask) -> None:
    app.before_request(_authenticate)
    app.after_request(_harden)
