"""The webhook dispatcher: a thread in every worker that sends due deliveries.

Why a thread and not a Celery task: workers run the solo pool (one task at a time, the model
loaded once), so a delivery waiting on someone else's server would hold up a job; here it
waits in its own small thread pool instead. Events are rows written with the transition they
report (shared/webhooks.py), so none is lost when the broker is down, and a retry waits in SQL
(``next_attempt_at``), not as a delayed message held by a worker.

Several workers dispatch at once safely: a delivery is claimed by one conditional UPDATE that
counts the attempt and leases the row; a worker that dies mid-send leaves the lease to expire
and another worker makes the next attempt. Redirects are never followed; the address connected
to is the one checked (shared/webhooks.resolve), so a DNS answer cannot change between the
check and the connection.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import urllib3
from sqlalchemy import select, update

from shared import webhooks
from shared.config import settings
from shared.db import session_scope
from shared.models import DeliveryStatus, Job, WebhookDelivery, utcnow

log = logging.getLogger("rrr.webhooks")

POLL_INTERVAL_S = 0.5
SENDERS = 4  # deliveries in flight per worker
USER_AGENT = "rrr-webhooks/1"


def _lease_s() -> float:
    return 2 * settings.webhook_timeout_s + 30.0


def claim_due(limit: int = SENDERS) -> list[tuple[str, int]]:
    """Claim up to ``limit`` due deliveries: (id, this attempt's number)."""
    now = utcnow()
    claimed = []
    with session_scope() as session:
        due = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.attempts)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
                WebhookDelivery.next_attempt_at <= now,
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        ).all()
        for delivery_id, attempts in due:
            if attempts >= settings.webhook_max_attempts:
                # its last attempt never recorded an outcome (the sender died or raised)
                session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery_id,
                        WebhookDelivery.attempts == attempts,
                        WebhookDelivery.status == DeliveryStatus.PENDING.value,
                    )
                    .values(status=DeliveryStatus.FAILED.value)
                )
                continue
            won = session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status == DeliveryStatus.PENDING.value,
                    WebhookDelivery.attempts == attempts,
                )
                .values(
                    attempts=attempts + 1,
                    next_attempt_at=now + timedelta(seconds=_lease_s()),
                )
            )
            if won.rowcount == 1:
                claimed.append((delivery_id, attempts + 1))
    return claimed


def _body(delivery: WebhookDelivery, job: Job) -> str:
    """The event's JSON, built once and resent unchanged by every retry."""
    if delivery.body is not None:
        return delivery.body
    if delivery.snapshot is not None:
        data = delivery.snapshot
    else:
        from api.schemas import job_json  # the finished job, as GET /v1/jobs/<id> shows it

        data = job_json(job)
        data.pop("webhook", None)
    body = json.dumps(
        {
            "type": f"job.{delivery.event}",
            "timestamp": delivery.created_at.isoformat(),
            "data": data,
        },
        separators=(",", ":"),
    )
    delivery.body = body
    return body


def send(target: webhooks.Target, message_id: str, body: bytes) -> int:
    """POST ``body`` to the checked address; the answer's status (redirects not followed)."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhooks.sign(webhooks.signing_key(), message_id, timestamp, body),
    }
    timeout = urllib3.Timeout(connect=settings.webhook_timeout_s, read=settings.webhook_timeout_s)
    if target.scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            target.address, target.port, timeout=timeout, retries=False
        )
    with pool:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers=headers,
            redirect=False,
            preload_content=False,
        )
        response.drain_conn()
        return response.status


def deliver(delivery_id: str, attempt: int) -> None:
    """Make attempt ``attempt`` of a claimed delivery and record how it went."""
    with session_scope() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        job = session.get(Job, delivery.job_id) if delivery is not None else None
        if delivery is None or job is None or job.webhook_url is None:
            return  # erased meanwhile
        body = _body(delivery, job)
        url = job.webhook_url
    outcome: dict[str, Any] = {"attempt": attempt, "at": utcnow().isoformat()}
    try:
        status = send(webhooks.resolve(url), delivery_id, body.encode())
        outcome["status_code"] = status
        ok = 200 <= status < 300
    except webhooks.WebhookRefused as exc:
        outcome["error"] = str(exc)
        ok = False
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        outcome["error"] = f"{exc.__class__.__name__}: {str(exc)[:200]}"
        ok = False
    record(delivery_id, attempt, outcome, ok)


def record(delivery_id: str, attempt: int, outcome: dict[str, Any], ok: bool) -> None:
    """Log the attempt on the delivery; schedule the next one, or settle it."""
    with session_scope() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.attempts != attempt:
            return  # erased, or the lease ran out and another worker took over
        delivery.log = [*delivery.log, outcome]
        if ok:
            delivery.status = DeliveryStatus.DELIVERED.value
        elif attempt >= settings.webhook_max_attempts:
            delivery.status = DeliveryStatus.FAILED.value
        elif delivery.status == DeliveryStatus.PENDING.value:
            delivery.next_attempt_at = utcnow() + timedelta(seconds=webhooks.backoff_s(attempt))
    level = logging.INFO if ok else logging.WARNING
    log.log(level, "webhook %s attempt %d: %s", delivery_id, attempt, outcome)


class Dispatcher(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="rrr-webhooks", daemon=True)
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="rrr-webhook")
        self.busy = threading.Semaphore(SENDERS)

    def run(self) -> None:
        while not self.stopping.wait(POLL_INTERVAL_S):
            try:
                self.dispatch()
            except Exception as exc:  # database down: try again next round
                log.warning("webhook dispatch failed: %s: %s", exc.__class__.__name__, exc)

    def dispatch(self) -> None:
        free = 0
        while self.busy.acquire(blocking=False):
            free += 1
        claimed = claim_due(free) if free else []
        for _ in range(free - len(claimed)):
            self.busy.release()
        for delivery_id, attempt in claimed:
            self.pool.submit(self._send, delivery_id, attempt)

    def _send(self, delivery_id: str, attempt: int) -> None:
        try:
            deliver(delivery_id, attempt)
        except Exception:
            log.exception("webhook %s attempt %d: not recorded", delivery_id, attempt)
        finally:
            self.busy.release()


_dispatcher: Dispatcher | None = None


def start_dispatcher() -> None:
    """Start this worker's dispatcher (when webhooks are enabled)."""
    global _dispatcher
    if _dispatcher is None and settings.webhook_secret:
        _dispatcher = Dispatcher()
        _dispatcher.start()
