"""Requests that wait for a job to end: the prototype's synchronous endpoints, and
``Prefer: wait=N`` on the v1 API. Waits are bounded in time, and in number per API process
(RRR_SYNC_MAX_WAITING), so that they never hold every request thread."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from shared import jobs
from shared.config import settings
from shared.db import session_scope
from shared.errors import TooManyRequests
from shared.models import Job, JobStatus

POLL_INTERVAL_S = 0.05
# Prefer: wait=N (RFC 7240); other preferences in the header are left alone
PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d{1,6})\"?(?:$|[,;\s])", re.IGNORECASE)


class Waiting:
    """How many requests of this process are waiting for a job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def _take(self) -> bool:
        with self._lock:
            if self.count >= settings.sync_max_waiting:
                return False
            self.count += 1
            return True

    def _release(self) -> None:
        with self._lock:
            self.count -= 1

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot, or refuse with 429 when all are taken."""
        if not self._take():
            raise TooManyRequests(
                f"{self.count} synchronous requests are already waiting here; retry "
                "shortly, or submit to POST /v1/jobs and poll the job instead",
                code="too_many_waiting",
                retry_after_s=5,
            )
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def optional_slot(self) -> Iterator[bool]:
        """Hold a slot if one is free; yields whether it got one (a preference to wait is
        then simply not applied)."""
        taken = self._take()
        try:
            yield taken
        finally:
            if taken:
                self._release()


waiting = Waiting()


def wait_for(job_id: str, owner: str | None, timeout_s: float) -> Job:
    """The job once it has ended, or as it is after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        with session_scope() as session:
            job = jobs.get_job(session, job_id, owner)
            if JobStatus(job.status).is_terminal() or time.monotonic() >= deadline:
                return job
        time.sleep(POLL_INTERVAL_S)


def preferred_wait(header: str | None) -> int | None:
    """The seconds a ``Prefer: wait=N`` header asks for, at most RRR_MAX_WAIT_S; None if
    the header does not ask to wait."""
    match = PREFER_WAIT.search(header or "")
    if match is None:
        return None
    return min(int(match.group(1)), settings.max_wait_s)
