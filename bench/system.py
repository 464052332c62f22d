"""The whole service against the bare pipeline, in one run: jobs per second end to end and where
the CPU goes per job (``python -m bench system``).

- bare pipeline: decode, find faces, score, in this process with one inference thread, one image
  at a time (single images) or 16 at a time (batches): images per second on one core. The bound
  for the machine is that rate times its cores (every worker is its own process).
- service: N single-image jobs submitted by 8 client threads, then B batch jobs of 16 images by
  2 threads (each keeps its connection, as ``rrr.client`` does), on the embedded default
  (``rrr up``: SQLite, filesystem broker, two workers) and on the production layout
  (``rrr api``, two ``rrr worker --queues images``, PostgreSQL, Redis).
  Rate: jobs (images) from the first submission to the last ``finished_at``.
- CPU per job: user + system time of each process over the run (read from /proc), per job:
  the API, the workers, PostgreSQL's and Redis's server processes (all of them: other users of
  the same servers count too), and the load client; the worker's stages come from the jobs' own
  ``timings_ms``. The rest of a worker's CPU is the job's plumbing (Celery, SQL, storage).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from bench.data import dfdc_crops
from bench.service import children, services
from tests.support.service import Client, Processes, free_port

CLIENT_THREADS = 8
BATCH_SIZE = 16
TICK = os.sysconf("SC_CLK_TCK")


def _one_thread_analyzer():
    from detection.analyzer import get_analyzer
    from detection.detector import Detector
    from shared.config import settings

    analyzer = get_analyzer()
    analyzer.detector = Detector.from_checkpoint(settings.weights_path, 1, settings.engine)
    return analyzer


def _bare_share(paths: list[Path]) -> float:
    """In a separate process: (seconds for its share of the images)."""
    analyzer = _one_thread_analyzer()
    analyzer.detector.score([analyzer.decode(paths[0])])  # warm-up
    t0 = time.perf_counter()
    for path in paths:
        analyzer.faces_in([analyzer.decode(path)])
    return time.perf_counter() - t0


def bare_on_all_cores(paths: list[Path]) -> float:
    """Images per second with one bare-pipeline process per core, all at once: the machine's
    bound measured, under whatever else shares the CPU at the time."""
    import multiprocessing

    cores = os.cpu_count() or 1
    shares = [paths[i::cores] for i in range(cores)]
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        # each share is timed from after its model is loaded; they load alike, so run together
        seconds = pool.map(_bare_share, shares)
    return len(paths) / max(seconds)


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (user, nice, system, irq...)."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def _timed(work, n: int) -> tuple[float, float]:
    """(images per second, CPU seconds per image) of ``work``, the faster of two passes."""
    best = (0.0, 0.0)
    for _ in range(2):
        t0, c0 = time.perf_counter(), time.process_time()
        work()
        rate, cpu = n / (time.perf_counter() - t0), (time.process_time() - c0) / n
        if rate > best[0]:
            best = (rate, cpu)
    return best


def bare_pipeline(paths: list[Path]) -> dict[str, Any]:
    """Images per second through decode -> faces -> model in this process, one thread."""
    analyzer = _one_thread_analyzer()
    batches = [paths[i : i + BATCH_SIZE] for i in range(0, len(paths), BATCH_SIZE)]
    # warm both input shapes: the first batch of 16 pays ONNX Runtime's larger buffers
    analyzer.detector.score([analyzer.decode(paths[0])])
    analyzer.faces_in([analyzer.decode(p) for p in batches[0]])
    single, single_cpu = _timed(
        lambda: [analyzer.faces_in([analyzer.decode(p)]) for p in paths], len(paths)
    )
    batched, batched_cpu = _timed(
        lambda: [analyzer.faces_in([analyzer.decode(p) for p in b]) for b in batches], len(paths)
    )
    cores = os.cpu_count() or 1
    return {
        "images": len(paths),
        "single_images_per_s_one_core": round(single, 1),
        "batched_images_per_s_one_core": round(batched, 1),
        "single_cpu_ms_per_image": round(single_cpu * 1000, 1),
        "batched_cpu_ms_per_image": round(batched_cpu * 1000, 1),
        "cores": cores,
        "single_bound_per_s": round(single * cores, 1),
        "batched_bound_per_s": round(batched * cores, 1),
        "all_cores_at_once_images_per_s": round(bare_on_all_cores(paths), 1),
    }


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def roles(procs: Processes, embedded: bool) -> dict[str, list[int]]:
    """Process ids by role: api, workers, database, broker."""
    api, workers = [], []
    for process, log in procs.running:
        if process.poll() is not None:
            continue
        if log.name.startswith("up"):
            api.append(process.pid)
            workers += children(process.pid)
        elif log.name.startswith("worker"):
            workers.append(process.pid)
        elif log.name.startswith("api"):
            api.append(process.pid)
    out = {"api": api, "workers": workers}
    if not embedded:
        out["postgresql"] = pids_named("postgres")
        out["redis"] = pids_named("redis-server")
    return out


SERVERS = {"postgresql": "postgres", "redis": "redis-server"}


def cpu_by_role(pids: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    """CPU seconds so far of every process, by role. The database and broker servers are
    listed afresh each time: a backend started meanwhile (a connection pool growing under
    load) counts with all it spent."""
    pids = {role: pids_named(SERVERS[role]) if role in SERVERS else found
            for role, found in pids.items()}  # fmt: skip
    return {role: {pid: cpu_seconds(pid) for pid in found} for role, found in pids.items()}


def cpu_spent(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]):
    """CPU seconds by role between two ``cpu_by_role`` readings."""
    return {
        role: sum(seconds - before[role].get(pid, 0.0) for pid, seconds in found.items())
        for role, found in after.items()
    }


_http = threading.local()


def _submit(client: Client, paths: list[Path], field: str) -> str:
    # one kept-alive session per client thread, as the service's own client (rrr/client.py)
    # keeps one
    session = _http.__dict__.setdefault("session", requests.Session())
    files = [(field, (p.name, p.read_bytes())) for p in paths]
    response = session.post(f"{client.base}/v1/jobs", files=files, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _wait_all(base: str, ids: list[str], timeout: float = 900) -> list[dict]:
    deadline = time.monotonic() + timeout
    done: dict[str, dict] = {}
    with requests.Session() as session:
        while len(done) < len(ids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(ids) - len(done)} jobs unfinished after {timeout} s")
            for job_id in ids:
                if job_id in done:
                    continue
                job = session.get(f"{base}/v1/jobs/{job_id}", timeout=30).json()
                if job["status"] in ("queued", "running"):
                    break  # the oldest unfinished: the rest are queued behind it
                done[job_id] = job
            else:
                continue
            time.sleep(0.2)
    return [done[job_id] for job_id in ids]


def run_jobs(
    client: Client,
    pids: dict[str, list[int]],
    items: list[list[Path]],
    field: str,
    threads: int,
    bare_cpu_ms: float = 0.0,
) -> dict[str, Any]:
    """Submit every item as one job (``threads`` at a time), wait for all; rate and CPU."""
    cpu0, own0, busy0 = cpu_by_role(pids), time.process_time(), machine_busy_s()
    started, t_start = datetime.now().astimezone(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        ids = list(pool.map(lambda paths: _submit(client, paths, field), items))
    submitted_s = (datetime.now().astimezone() - started).total_seconds()
    jobs = _wait_all(client.base, ids)
    cpu1, own1, busy1 = cpu_by_role(pids), time.process_time(), machine_busy_s()
    until = time.perf_counter()
    assert all(job["status"] == "succeeded" for job in jobs), [j["error"] for j in jobs]
    last = max(datetime.fromisoformat(job["finished_at"]) for job in jobs)
    wall = (last - started).total_seconds()
    images = sum(len(paths) for paths in items)
    n = len(jobs)
    cpu_ms = {role: round(spent * 1000 / n, 1) for role, spent in cpu_spent(cpu0, cpu1).items()}
    cpu_ms["load_client"] = round((own1 - own0) * 1000 / n, 1)
    stages: dict[str, list[float]] = {}
    for job in jobs:
        results = job["result"].get("items") or [job["result"]]
        for result in results:
            for stage, ms in (result.get("timings_ms") or {}).items():
                stages.setdefault(stage, []).append(ms)
    per_job = {s: round(sum(v) / n, 1) for s, v in stages.items() if s != "total"}
    return {
        "jobs": n,
        "images": images,
        "wall_s": round(wall, 2),
        "submit_s": round(submitted_s, 2),
        "jobs_per_s": round(n / wall, 1),
        # cores busy on the whole machine meanwhile (this service and anything else running)
        "machine_busy_cores": round((busy1 - busy0) / max(until - t_start, 1e-9), 2),
        "images_per_s": round(images / wall, 1),
        "cpu_ms_per_job": cpu_ms,
        # wall time of the analysis stages inside the worker (waits for a busy CPU included)
        "worker_stage_wall_ms_per_job": per_job,
        # the workers' CPU beyond what the bare pipeline spends on the same images: the job's
        # plumbing (Celery, SQL, storage, provenance, result JSON)
        "worker_cpu_beyond_bare_ms_per_job": round(cpu_ms["workers"] - bare_cpu_ms * images / n, 1),
        "median_queue_to_finish_ms": round(
            statistics.median(
                (
                    datetime.fromisoformat(j["finished_at"])
                    - datetime.fromisoformat(j["created_at"])
                ).total_seconds()
                * 1000
                for j in jobs
            ),
            1,
        ),
    }


def layout(
    embedded: bool, singles: list[Path], batches: list[list[Path]], bare: dict[str, Any]
) -> dict[str, Any]:
    with services(embedded=embedded) as procs:
        port = free_port()
        if embedded:
            procs.start("up", "--port", str(port))
        else:
            procs.start("api", "--port", str(port))
            one_core = {"RRR_INFERENCE_THREADS": "1", "RRR_DECODE_THREADS": "1"}
            for i in range(os.cpu_count() or 1):
                procs.start("worker", "--queues", "images", "--name", f"w{i}@%h", **one_core)
        client = Client(f"http://127.0.0.1:{port}")
        client.wait_ready()
        # warm both paths in every worker: a worker's first batch pays ONNX Runtime's buffers for
        # the larger input (it took the batch ratio from 0.84 down to 0.42 with 8 batches)
        run_jobs(client, roles(procs, embedded), [[p] for p in singles[:8]], "file", 4)
        run_jobs(client, roles(procs, embedded), batches[:4], "files", 2)
        time.sleep(1.0)  # every worker has announced itself and loaded the model by now
        pids = roles(procs, embedded)
        return {
            "single": run_jobs(
                client,
                pids,
                [[p] for p in singles],
                "file",
                CLIENT_THREADS,
                bare["single_cpu_ms_per_image"],
            ),
            "batch": run_jobs(client, pids, batches, "files", 2, bare["batched_cpu_ms_per_image"]),
            "processes": {role: len(found) for role, found in pids.items()},
        }


def measure(quick: bool) -> dict[str, Any]:
    n_single, n_batch = (40, 2) if quick else (200, 32)
    singles = dfdc_crops(n_single, seed=11)
    batch_paths = dfdc_crops(n_batch * BATCH_SIZE, seed=12)
    batches = [batch_paths[i : i + BATCH_SIZE] for i in range(0, len(batch_paths), BATCH_SIZE)]
    out: dict[str, Any] = {"bare": bare_pipeline(singles)}
    threading.current_thread().name = "bench-system"
    for name, embedded in (("embedded", True), ("production", False)):
        out[name] = found = layout(embedded, singles, batches, out["bare"])
        bare = out["bare"]
        found["single_over_bound"] = round(
            found["single"]["images_per_s"] / bare["single_bound_per_s"], 2
        )
        found["single_over_all_cores_at_once"] = round(
            found["single"]["images_per_s"] / bare["all_cores_at_once_images_per_s"], 2
        )
        found["batch_over_bound"] = round(
            found["batch"]["images_per_s"] / bare["batched_bound_per_s"], 2
        )
    return out
