"""What saturates first as workers are added: PostgreSQL and Redis rates for the service's own
write pattern, measured here, against what one worker produces (from the scaling section).

    python -m bench capacity

Runs its measurements in a child process pointed at a throwaway PostgreSQL database and a
flushed Redis database, so the settings object is read once, as in the service.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.service import services

REPO = Path(__file__).resolve().parents[1]


def _rows(n: int) -> list[dict[str, Any]]:
    face = {"box": [600, 200, 240, 240], "probability_fake": 0.31, "prediction": "REAL"}
    return [
        {
            "index": i,
            "frame_number": i * 30,
            "timestamp_s": float(i),
            "probability_fake": 0.31,
            "faces": [face],
        }
        for i in range(n)
    ]


def child(n: int) -> dict[str, Any]:
    """Inside the child: time the writes (settings come from the environment)."""
    from shared import jobs, segments
    from shared.config import settings
    from shared.db import session_scope
    from shared.models import JobKind
    from shared.queue import celery_app, publish_segment

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    for _ in range(n // 4):
        with session_scope() as session:
            jobs.create_job(session, kind=JobKind.IMAGE, inputs=[{"key": "x"}], params={})
    out["postgres_job_inserts_per_s"] = round(n // 4 / (time.perf_counter() - t0), 1)

    with session_scope() as session:
        job_id = jobs.create_job(session, kind=JobKind.VIDEO, inputs=[], params={}).id
    with session_scope() as session:
        attempt = jobs.mark_running(session, job_id, settings.stale_after_s)
    with session_scope() as session:
        segments.plan_segments(session, job_id, attempt, [(0, n)], {"fps": 30.0})
    with session_scope() as session:
        segments.claim_segment(session, job_id, 0, attempt, settings.stale_after_s)
    rows = _rows(n)
    t0 = time.perf_counter()
    for i in range(0, n, 8):  # a segment stores its rows 8 frames at a time
        with session_scope() as session:
            segments.add_segment_frames(session, job_id, 0, attempt, rows[i : i + 8])
    out["postgres_frame_rows_per_s"] = round(n / (time.perf_counter() - t0), 1)

    t0 = time.perf_counter()
    for i in range(n):
        publish_segment(job_id, i, attempt)
    out["redis_task_messages_per_s"] = round(n / (time.perf_counter() - t0), 1)
    celery_app.control.purge()
    return out


def measure(quick: bool, scaling: dict[str, Any] | None) -> dict[str, Any]:
    n = 400 if quick else 4000
    with services(embedded=False) as procs:
        done = subprocess.run(
            [sys.executable, "-m", "bench.capacity", str(n)],
            env=procs.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if scaling and "workers_1" in scaling:
        # one worker on one core: sampled frames (rows) and segment messages per second
        wall = scaling["workers_1"]["wall_s"]
        frames = scaling.get("frames") or 0
        if frames:
            per_worker = frames / wall
            out["one_worker_frame_rows_per_s"] = round(per_worker, 2)
            out["workers_before_postgres_saturates"] = int(
                out["postgres_frame_rows_per_s"] / per_worker
            )
            messages = scaling["workers_1"]["segments"] / wall
            out["workers_before_redis_saturates"] = int(out["redis_task_messages_per_s"] / messages)
    return out


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]))))
