"""Load a running service with many small-image jobs and report what happened.

    python -m bench.load --url http://127.0.0.1:8000 --jobs 2000 --concurrency 32

Submits ``--jobs`` uploads from ``--concurrency`` threads, then polls until every accepted job
is terminal. Prints submissions/s, submit latency p50/p99, the status of every response and of
every job, and the time until the last job finished. Exit status 1 if a job was lost, a 5xx
was answered, or jobs were still unfinished at the deadline.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException
from urllib.parse import urlsplit

import numpy as np
import requests
from PIL import Image

BOUNDARY = "rrr-load-7c1f0e"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def multipart_body(filename: str, data: bytes) -> bytes:
    """A form with one file in the field ``file``, as any HTTP client would encode it."""
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def small_png(seed: int) -> bytes:
    """A 96x72 noise image: decodes and runs face detection, finds no face."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (72, 96, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class LoadReport:
    jobs: int
    concurrency: int
    submit_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    http_status: Counter = field(default_factory=Counter)
    job_status: Counter = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)
    drain_seconds: float = 0.0

    @property
    def lost(self) -> int:
        return self.http_status[202] - sum(self.job_status.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.http_status.items() if status >= 500)

    def summary(self) -> dict:
        lat = sorted(self.latencies_ms)
        out = {
            "jobs": self.jobs,
            "concurrency": self.concurrency,
            "submissions_per_s": round(self.jobs / self.submit_seconds, 1),
            "submit_p50_ms": round(statistics.median(lat), 1),
            "submit_p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
            "http_status": dict(sorted(self.http_status.items())),
        }
        if self.drain_seconds:  # the jobs were also followed to the end
            out.update(
                {
                    "job_status": dict(sorted(self.job_status.items())),
                    "lost": self.lost,
                    "server_errors": self.server_errors,
                    "seconds_until_all_terminal": round(self.drain_seconds, 1),
                    "jobs_per_s_end_to_end": round(self.jobs / self.drain_seconds, 1),
                }
            )
        return out


def run_load(
    base: str | list[str],
    jobs: int,
    concurrency: int,
    deadline_s: float = 900,
    drain: bool = True,
) -> LoadReport:
    """Submit ``jobs`` uploads; with ``drain``, also wait until every accepted job is terminal.
    Several ``base`` URLs (API processes on one database) take the submissions in turn, as a
    load balancer would share them."""
    bases = [base] if isinstance(base, str) else list(base)
    base = bases[0]
    report = LoadReport(jobs=jobs, concurrency=concurrency)
    # the bodies are encoded once: the client shares the machine with the service, so the less
    # CPU it spends per request, the more is left to what is measured
    bodies = [multipart_body(f"{i}.png", small_png(i)) for i in range(16)]
    local = threading.local()  # one kept-alive connection per client thread and API process

    def submit(i: int) -> tuple[int, float, str | None]:
        url = urlsplit(bases[i % len(bases)])
        connections = local.__dict__.setdefault("connections", {})
        start = time.perf_counter()
        try:
            if url.netloc not in connections:
                connections[url.netloc] = HTTPConnection(url.hostname, url.port, timeout=60)
            connection = connections[url.netloc]
            connection.request("POST", "/v1/jobs", bodies[i % 16], {"Content-Type": CONTENT_TYPE})
            response = connection.getresponse()
            data = response.read()
        except (OSError, HTTPException):
            connections.pop(url.netloc, None)
            return 0, (time.perf_counter() - start) * 1000, None
        elapsed = (time.perf_counter() - start) * 1000
        job_id = json.loads(data).get("id") if response.status == 202 else None
        return response.status, elapsed, job_id

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for status, elapsed, job_id in pool.map(submit, range(jobs)):
            report.http_status[status] += 1
            report.latencies_ms.append(elapsed)
            if job_id:
                report.accepted.append(job_id)
    report.submit_seconds = time.perf_counter() - began
    if not drain:
        return report

    session = requests.Session()
    pending = set(report.accepted)
    finished: dict[str, str] = {}
    deadline = time.monotonic() + deadline_s
    while pending and time.monotonic() < deadline:
        cursor = None
        while True:  # one pass over the job list, newest first
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = session.get(f"{base}/v1/jobs", params=params, timeout=30).json()
            for job in page["jobs"]:
                if job["id"] in pending and job["status"] not in ("queued", "running"):
                    finished[job["id"]] = job["status"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        pending -= finished.keys()
        if pending:
            time.sleep(1)
    report.drain_seconds = time.perf_counter() - began
    report.job_status = Counter(finished.values())
    report.job_status["unfinished"] = len(pending)
    if not report.job_status["unfinished"]:
        del report.job_status["unfinished"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    report = run_load(args.url.rstrip("/"), args.jobs, args.concurrency)
    print(json.dumps(report.summary(), indent=2))
    unfinished = report.job_status.get("unfinished", 0)
    sys.exit(1 if report.lost or report.server_errors or unfinished else 0)


if __name__ == "__main__":
    main()
