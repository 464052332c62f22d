"""A Python client for the RRR HTTP API (synchronous, on requests).

    from rrr.client import Client

    rrr = Client("http://127.0.0.1:8000", api_key="...")
    job = rrr.submit(["face.jpg"])
    job = rrr.wait(job["id"], progress=lambda j: print(j["progress"]))
    print(job["result"]["prediction"])

Every endpoint has a method. Refusals that say to come back later (429, 503) are retried after
the server's ``Retry-After`` (at most ``retries`` times); every other error raises ``ApiError``
with the server's code and message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

RETRY_STATUSES = (429, 503)
DEFAULT_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 120.0
# how long one GET may be held open by "Prefer: wait" while the client waits for a job
LONG_POLL_S = 30

Job = dict[str, Any]
ProgressCallback = Callable[[Job], None]


class ApiError(Exception):
    """The API answered with an error: ``status``, machine ``code``, human ``message``."""

    def __init__(
        self, status: int, code: str, message: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.retry_after_s = retry_after_s


class WaitTimeout(Exception):
    """``Client.wait`` gave up; ``job`` is the job as last seen."""

    def __init__(self, job: Job, timeout_s: float) -> None:
        super().__init__(f"job {job['id']} still {job['status']} after {timeout_s:g} s")
        self.job = job


def _retry_after(response: requests.Response) -> float:
    """Seconds from a Retry-After header (delay-seconds form); a default when absent."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return DEFAULT_RETRY_AFTER_S
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _error(response: requests.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # the v1 shape
        code, message = error.get("code", "error"), error.get("message", "")
    elif isinstance(error, str):  # the prototype's endpoints
        code, message = body.get("code", "error"), error
    else:
        code, message = "http_error", response.reason or ""
    retry = _retry_after(response) if "Retry-After" in response.headers else None
    return ApiError(response.status_code, code, message, retry)


class Client:
    """One API endpoint, one key. ``retries``: how many times a 429 or 503 is retried."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout_s: float = 300.0,
        retries: int = 5,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.http = session or requests.Session()
        self._sleep = sleep
        if api_key:
            self.http.headers["X-API-Key"] = api_key

    # ------------------------------------------------------------------ plumbing

    def request(
        self,
        method: str,
        path: str,
        *,
        files: Callable[[ExitStack], list[tuple[str, tuple[str, Any]]]] | None = None,
        timeout_s: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request, retrying 429 and 503 after their Retry-After. ``files`` makes
        the multipart files afresh for each attempt (open files are consumed by a send)."""
        for attempt in range(self.retries + 1):
            with ExitStack() as stack:
                if files is not None:
                    kwargs["files"] = files(stack)
                response = self.http.request(
                    method,
                    f"{self.base_url}{path}",
                    timeout=timeout_s or self.timeout_s,
                    **kwargs,
                )
            if response.status_code not in RETRY_STATUSES or attempt == self.retries:
                break
            self._sleep(_retry_after(response))
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # ------------------------------------------------------------------ jobs

    def submit(
        self,
        paths: Sequence[str | Path],
        *,
        sample_fps: float | None = None,
        sampling: str | None = None,
        max_frames: int | None = None,
        threshold: float | None = None,
        idempotency_key: str | None = None,
        wait_s: int | None = None,
        webhook: str | None = None,
        webhook_events: Sequence[str] | None = None,
        heatmap: bool | None = None,
    ) -> Job:
        """Upload files as one job: one path (an image or a video) or several (an image
        batch). ``wait_s``: let the server hold the answer until the job ends (at most that).
        ``webhook``: a URL the job's ``webhook_events`` are posted to (start, progress,
        completed; default completed), signed as Standard Webhooks specifies. ``heatmap``: an
        image job draws its heatmap with the verdict instead of when first asked for."""
        if not paths:
            raise ValueError("submit needs at least one file")
        field = "file" if len(paths) == 1 else "files"
        options = {
            "sample_fps": sample_fps,
            "sampling": sampling,
            "max_frames": max_frames,
            "threshold": threshold,
            "webhook": webhook,
            "webhook_events": ",".join(webhook_events) if webhook_events else None,
            "heatmap": "true" if heatmap else None,
        }
        data = {name: str(value) for name, value in options.items() if value is not None}
        headers = {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if wait_s:
            headers["Prefer"] = f"wait={int(wait_s)}"

        def files(stack: ExitStack) -> list[tuple[str, tuple[str, Any]]]:
            return [(field, (Path(p).name, stack.enter_context(open(p, "rb")))) for p in paths]

        return self._json("POST", "/v1/jobs", files=files, data=data, headers=headers)

    def job(self, job_id: str, *, wait_s: int | None = None) -> Job:
        """The job; with ``wait_s``, once it has ended or after that many seconds."""
        headers = {"Prefer": f"wait={int(wait_s)}"} if wait_s else {}
        timeout = self.timeout_s + (wait_s or 0)
        return self._json("GET", f"/v1/jobs/{job_id}", headers=headers, timeout_s=timeout)

    def jobs(
        self,
        *,
        limit: int = 20,
        status: str | None = None,
        kind: str | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of jobs, newest first: ``{"jobs": [...], "next_cursor": ...}``."""
        params = {"limit": limit, "status": status, "kind": kind, "cursor": cursor}
        return self._json("GET", "/v1/jobs", params={k: v for k, v in params.items() if v})

    def iter_jobs(self, *, status: str | None = None, kind: str | None = None) -> Iterator[Job]:
        """Every job, newest first, page after page."""
        cursor = None
        while True:
            page = self.jobs(limit=100, status=status, kind=kind, cursor=cursor)
            yield from page["jobs"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (repeatable)."""
        return self._json("POST", f"/v1/jobs/{job_id}/cancel")

    def delete(self, job_id: str) -> None:
        """Erase the job, its results and its files now."""
        self.request("DELETE", f"/v1/jobs/{job_id}")

    def frames(self, job_id: str, *, offset: int = 0, limit: int = 1000) -> dict[str, Any]:
        """One page of a video job's per-frame results."""
        params = {"offset": offset, "limit": limit}
        return self._json("GET", f"/v1/jobs/{job_id}/frames", params=params)

    def iter_frames(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Every per-frame result of a video job, in order."""
        offset: int | None = 0
        while offset is not None:
            page = self.frames(job_id, offset=offset)
            yield from page["frames"]
            offset = page["next_offset"]

    def heatmap(self, job_id: str, *, timeout_s: float = 120.0) -> bytes:
        """An image job's heatmap overlay (PNG bytes). A worker draws it when first asked for:
        while the service answers 202, ask again after its Retry-After, for up to
        ``timeout_s`` (then ``TimeoutError``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            response = self.request("GET", f"/v1/jobs/{job_id}/heatmap")
            if response.status_code != 202:
                return response.content
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"the heatmap of job {job_id} was not ready after {timeout_s:g} s"
                )
            self._sleep(_retry_after(response))

    def wait(
        self,
        job_id: str,
        *,
        timeout_s: float = 3600.0,
        progress: ProgressCallback | None = None,
        poll_s: float = 1.0,
    ) -> Job:
        """The job once it has ended. ``progress`` is called with the job each time it is
        read while unfinished. Without one, each read is held by the server until the job
        ends (``Prefer: wait``); with one, reads come every ``poll_s`` (or the server's
        Retry-After, whichever is longer). Raises ``WaitTimeout`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            hold = None if progress else max(1, min(LONG_POLL_S, int(left)))
            response = self.request(
                "GET",
                f"/v1/jobs/{job_id}",
                headers={"Prefer": f"wait={hold}"} if hold else {},
                timeout_s=self.timeout_s + (hold or 0),
            )
            job = response.json()
            if job["status"] not in ("queued", "running"):
                return job
            if progress is not None:
                progress(job)
            if time.monotonic() >= deadline:
                raise WaitTimeout(job, timeout_s)
            if progress is not None:
                pause = poll_s
            elif "Preference-Applied" not in response.headers:  # the server did not hold it
                pause = max(poll_s, _retry_after(response))
            else:
                continue
            self._sleep(min(pause, max(0.0, deadline - time.monotonic())))

    # ------------------------------------------------------------------ the rest

    def predict(self, path: str | Path) -> dict[str, Any]:
        """The prototype's synchronous single-image endpoint."""
        return self._predict("/predict", "file", [path])

    def predict_batch(self, paths: Sequence[str | Path]) -> dict[str, Any]:
        """The prototype's synchronous batch endpoint."""
        return self._predict("/predict/batch", "files", paths)

    def predict_video(self, path: str | Path) -> dict[str, Any]:
        """The prototype's synchronous video endpoint."""
        return self._predict("/predict/video", "file", [path])

    def _predict(self, route: str, field: str, paths: Sequence[str | Path]) -> dict[str, Any]:
        def files(stack: ExitStack) -> list[tuple[str, tuple[str, Any]]]:
            return [(field, (Path(p).name, stack.enter_context(open(p, "rb")))) for p in paths]

        return self._json("POST", route, files=files)

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")

    def ready(self) -> dict[str, Any]:
        """Readiness (database, broker, weights); a 503 is retried, then raised."""
        return self._json("GET", "/readyz")

    def metrics(self) -> str:
        """Prometheus text."""
        return self.request("GET", "/metrics").text

    def openapi(self) -> dict[str, Any]:
        return self._json("GET", "/v1/openapi.json")

    def index(self) -> dict[str, Any]:
        """The JSON index at ``/``."""
        return self._json("GET", "/", headers={"Accept": "application/json"})
