"""Webhooks: which events a job reports, how a delivery is signed, and where one may go.

Events are written by the lifecycle (shared/jobs.py) in the transaction of the transition they
report, as rows of ``webhook_deliveries`` (an outbox); the workers' dispatcher
(worker/webhooks.py) sends them. Signing follows Standard Webhooks
(https://www.standardwebhooks.com): ``webhook-signature: v1,<base64 HMAC-SHA256 of
"<webhook-id>.<webhook-timestamp>.<body>">`` with the key that ``RRR_WEBHOOK_SECRET``
(``whsec_<base64>``) holds.

Where a delivery may go (no SSRF): http(s) only, no credentials in the URL; every address the
host resolves to must be public, unless it lies in a network listed in
``RRR_WEBHOOK_ALLOWED_HOSTS``; when that list is set, the host must also be named in it (by
name, ``*.suffix``, address or network). Plain http only to hosts the list names. The check is
made at submission and again at each delivery, which then connects to the address it checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.config import settings
from shared.errors import BadRequest
from shared.models import DeliveryStatus, Job, WebhookDelivery, utcnow

EVENTS = ("start", "progress", "completed")
DEFAULT_EVENTS = ("completed",)
MAX_URL = 2048
SHOWN_ATTEMPTS = 100  # a job shows its latest delivery attempts, not every progress event's


class WebhookRefused(ValueError):
    """The URL may not be used (the message says why)."""


# ---------------------------------------------------------------------------------- signing


def signing_key(secret: str | None = None) -> bytes:
    """The HMAC key a ``whsec_<base64>`` secret holds (Standard Webhooks' format)."""
    secret = settings.webhook_secret if secret is None else secret
    if not secret.startswith("whsec_"):
        raise ValueError("RRR_WEBHOOK_SECRET must be whsec_ followed by base64 bytes")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("RRR_WEBHOOK_SECRET: the part after whsec_ is not base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("RRR_WEBHOOK_SECRET must hold 24 to 64 random bytes")
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value for one attempt."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


# ---------------------------------------------------------------------------------- addresses


def _allowed_entries() -> tuple[list[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names, networks = [], []
    for entry in settings.webhook_allowed_hosts:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.append(entry.lower().rstrip("."))
    return names, networks


def _named(host: str, names: list[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host.endswith(name[1:]) if name.startswith("*.") else host == name for name in names)


def check_addresses(host: str, addresses: list[str]) -> None:
    """Refuse unless the host and every address it resolved to may be reached."""
    names, networks = _allowed_entries()
    ips = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
    if not ips:
        raise WebhookRefused(f"the webhook host {host!r} has no address")
    listed = [any(ip in net for net in networks) for ip in ips]
    if settings.webhook_allowed_hosts and not (_named(host, names) or all(listed)):
        raise WebhookRefused(f"the webhook host {host!r} is not in RRR_WEBHOOK_ALLOWED_HOSTS")
    for ip, in_list in zip(ips, listed, strict=True):
        if not in_list and not ip.is_global:
            raise WebhookRefused(
                f"the webhook host {host!r} resolves to a private, loopback, link-local or "
                f"reserved address ({ip}); list it in RRR_WEBHOOK_ALLOWED_HOSTS to allow it"
            )


@dataclass(frozen=True)
class Target:
    """A checked URL: connect to ``address`` and present ``host`` (Host header, TLS name)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def resolve(url: str) -> Target:
    """Check ``url`` and resolve its host; the address returned is the one to connect to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("webhook must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("webhook URL must not carry a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused("webhook URL has an invalid port") from None
    host = parts.hostname
    if parts.scheme == "http" and not _listed_by_name_or_address(host):
        raise WebhookRefused(
            "webhook must be https:// (plain http only to hosts in RRR_WEBHOOK_ALLOWED_HOSTS)"
        )
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise WebhookRefused(f"the webhook host {host!r} does not resolve") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    check_addresses(host, addresses)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, addresses[0])


def _listed_by_name_or_address(host: str) -> bool:
    names, networks = _allowed_entries()
    if _named(host, names):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip in net for net in networks)


# ---------------------------------------------------------------------------------- submission


def parse(url: str | None, events: list[str]) -> tuple[str, str] | None:
    """Validate the submit form's ``webhook`` and ``webhook_events`` (each value a comma-
    separated list of events, no spaces) into (url, "a,b"), or None when no webhook was asked
    for; a BadRequest says what is wrong."""
    chosen = [e for value in events for e in value.split(",")]
    if url is None:
        if events:
            raise BadRequest("webhook_events needs a webhook URL", code="invalid_field")
        return None
    if not url:
        raise BadRequest(
            "webhook is empty: send an https:// URL or leave it out", "invalid_webhook"
        )
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown:
        raise BadRequest(
            f"webhook_events takes {', '.join(EVENTS)}, comma-separated; "
            f"got {ascii(unknown[0][:40])}",
            code="invalid_field",
        )
    if not settings.webhook_secret:
        raise BadRequest(
            "webhooks are not enabled on this server (RRR_WEBHOOK_SECRET is not set); "
            "poll GET /v1/jobs/<id> instead",
            code="webhooks_disabled",
        )
    try:
        signing_key()
    except ValueError as exc:
        raise BadRequest(
            f"webhooks are misconfigured on this server: {exc}", code="webhooks_disabled"
        ) from None
    if len(url) > MAX_URL:
        raise BadRequest(f"webhook URL is longer than {MAX_URL} characters", "invalid_webhook")
    try:
        resolve(url)
    except WebhookRefused as exc:
        raise BadRequest(str(exc), code="invalid_webhook") from None
    ordered = [e for e in EVENTS if e in chosen] or list(DEFAULT_EVENTS)
    return url, ",".join(ordered)


# ---------------------------------------------------------------------------------- events


def _snapshot(job: Any) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": {"done": job.progress_done, "total": job.progress_total},
    }


# ``emit``'s default: the job's events are not known to the caller, so they are read
_UNKNOWN = "?"


def emit(session: Session, job_id: str, event: str, events: str | None = _UNKNOWN) -> None:
    """Record ``event`` for the job's webhook, if it has one that wants it (in the caller's
    transaction). Progress events are rate-limited across every worker by one conditional
    UPDATE: at most one per RRR_WEBHOOK_PROGRESS_INTERVAL_S. ``events``: the job's
    ``webhook_events`` when the caller has just read them (None: no webhook); an event they do
    not name is then not looked up at all."""
    if events is not _UNKNOWN and (not events or event not in events.split(",")):
        return
    now = utcnow()
    if event == "progress":
        since = now - timedelta(seconds=settings.webhook_progress_interval_s)
        claimed = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.webhook_events.contains("progress"),
                Job.webhook_progress_at.is_(None) | (Job.webhook_progress_at < since),
            )
            .values(webhook_progress_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            return
    row = session.execute(
        select(
            Job.id,
            Job.kind,
            Job.status,
            Job.progress_done,
            Job.progress_total,
            Job.webhook_events,
        ).where(Job.id == job_id)
    ).one_or_none()
    if row is None or not row.webhook_events or event not in row.webhook_events.split(","):
        return
    if event == "completed":
        # a progress report still waiting is stale once the job has ended
        session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.job_id == job_id,
                WebhookDelivery.event == "progress",
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
            )
            .values(status=DeliveryStatus.SUPERSEDED.value)
        )
    session.add(
        WebhookDelivery(
            id=f"msg_{uuid.uuid4().hex}",
            job_id=job_id,
            event=event,
            status=DeliveryStatus.PENDING.value,
            # the completed event carries the whole finished job, built when first sent
            snapshot=None if event == "completed" else _snapshot(row),
            attempts=0,
            log=[],
            created_at=now,
            next_attempt_at=now,
        )
    )
    session.flush()


def backoff_s(attempt: int) -> float:
    """The wait after failed attempt ``attempt`` (1, 2, ...): doubling, at most an hour."""
    return min(settings.webhook_retry_base_s * 2 ** (attempt - 1), 3600.0)


def attempts_of(session: Session, job_id: str) -> list[dict[str, Any]]:
    """The job's latest delivery attempts, oldest first, as the job shows them."""
    rows = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.job_id == job_id)
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
    )
    shown = [
        {"id": row.id, "event": row.event, "status": row.status, **attempt}
        for row in rows
        for attempt in row.log
    ]
    return shown[-SHOWN_ATTEMPTS:]
