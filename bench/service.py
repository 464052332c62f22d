"""Figures from the running service: real `rrr` processes, measured from the outside as a user's
script would see them (submit, poll), plus the workers' peak memory read from /proc."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from bench.data import dfdc_crops
from tests.support.service import Client, Processes, free_port

PG_ADMIN_URL = os.environ.get(
    "RRR_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("RRR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> list[int]:
    """Child processes of ``pid``, whichever of its threads started them."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


@contextlib.contextmanager
def services(embedded: bool) -> Iterator[Processes]:
    """A Processes with a fresh var dir: the embedded default (SQLite + filesystem broker), or
    a throwaway PostgreSQL database and a flushed Redis database."""
    folder = Path(tempfile.mkdtemp(prefix="rrr-bench-"))
    env = {"RRR_VAR_DIR": str(folder / "var"), "RRR_DATABASE_URL": "", "RRR_BROKER_URL": ""}
    if embedded:
        procs = Processes(env, folder)
        try:
            yield procs
        finally:
            procs.stop()
        return
    import redis
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"rrr_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    env.update(
        RRR_DATABASE_URL=PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", RRR_BROKER_URL=REDIS_URL
    )
    procs = Processes(env, folder)
    try:
        upgrade = procs.run("db", "upgrade")
        assert upgrade.returncode == 0, upgrade.stderr
        yield procs
    finally:
        procs.stop()
        broker.flushdb()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def start_api(procs: Processes) -> Client:
    port = free_port()
    procs.start("api", "--port", str(port))
    client = Client(f"http://127.0.0.1:{port}")
    client.wait_ready()
    return client


def wait_idle(client: Client, timeout: float = 120) -> None:
    """Until /readyz says a worker is there and no job is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = client.get("/v1/jobs", params={"limit": 50}).json()["jobs"]
        if all(j["status"] not in ("queued", "running") for j in jobs):
            return
        time.sleep(0.2)
    raise RuntimeError("the service did not become idle")


def timed_job(
    client: Client, paths: list[Path], poll_s: float = 0.005, **form: str
) -> tuple[float, dict]:
    """(seconds from the start of the upload until the client sees the job succeeded, job)."""
    t0 = time.perf_counter()
    response = client.submit(paths, **form)
    assert response.status_code == 202, response.text
    url = f"{client.base}/v1/jobs/{response.json()['id']}"
    with requests.Session() as session:
        while True:
            job = session.get(url, timeout=30).json()
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(poll_s)
    assert job["status"] == "succeeded", job
    return time.perf_counter() - t0, job


def image_latency(client: Client, n: int = 40, seed: int = 3) -> dict[str, Any]:
    """Single-image jobs one after the other on an idle service: submit -> succeeded."""
    paths = dfdc_crops(n + 2, seed=seed)
    for path in paths[:2]:  # warm-up: the worker loads the model on its first job
        timed_job(client, [path])
    seconds = [timed_job(client, [p])[0] for p in paths[2:]]
    return {
        "n": n,
        "p50_ms": round(percentile(seconds, 0.5) * 1000, 1),
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 1),
    }


def batch_faces_per_s(client: Client, n: int = 64) -> dict[str, Any]:
    """One batch job of ``n`` DFDC crops: faces scored per second of the job's run time."""
    _, job = timed_job(client, dfdc_crops(n, seed=4), poll_s=0.05, field="files")
    run = _job_seconds(job)
    faces = sum(len(item.get("faces", [])) for item in job["result"]["items"])
    return {
        "images": n,
        "faces": faces,
        "run_s": round(run, 2),
        "faces_per_s": round(faces / run, 1),
    }


def _job_seconds(job: dict) -> float:
    from datetime import datetime

    started = datetime.fromisoformat(job["started_at"])
    finished = datetime.fromisoformat(job["finished_at"])
    return (finished - started).total_seconds()


def video_verdict(client: Client, video: Path, **form: str) -> dict[str, Any]:
    seconds, job = timed_job(client, [video], poll_s=0.1, **form)
    result = job["result"]
    return {
        "wall_s": round(seconds, 2),
        "prediction": result["prediction"],
        "frames": result["frames_analyzed"],
        "longest_segment_s": result.get("segments", {}).get("longest_s"),
    }


def worker_peak_rss(procs: Processes) -> float:
    """The largest VmHWM among worker processes (children of `rrr up`, or `rrr worker`)."""
    pids = []
    for process, log in procs.running:
        if process.poll() is None:
            pids += children(process.pid) if log.name.startswith("up") else []
            pids += [process.pid] if log.name.startswith("worker") else []
    return round(max(peak_rss_mb(pid) for pid in pids), 1) if pids else float("nan")
