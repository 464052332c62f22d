"""Benchmarks of Real Recognize Real on this machine, printed as tables (and saved as JSON).

    python -m bench                      # every section (about 10 min here, once the test
                                         # videos are built: the first run adds ~15 min)
    python -m bench engine stages        # only some: engine stages service api scaling capacity
                                         # provenance storage system
    python -m bench --quick              # smaller inputs, for a smoke run

Sections:
  engine    the model engine's raw batch throughput on real face crops
  stages    time per stage (decode, detect, preprocess, infer, DB write) per image and per second
            of a 60 s 1080p video, in the worker's own code
  service   the embedded default (`rrr up`: SQLite + filesystem broker): image job latency, faces
            per second through a worker, a 60 s 1080p video's time to verdict against decoding it
            alone, the keyframes fast mode, the worker's peak memory
  api       submissions per second and latency under concurrency (rrr api, PostgreSQL, Redis)
  scaling   a 10-minute 720p video with 1 and with 2 workers; image latency while it runs
  capacity  PostgreSQL and Redis rates for the service's own writes, against what one worker
            produces
  provenance  the time reading provenance (C2PA, XMP, metadata traces) adds per file, with and
            without Content Credentials
  storage   the latency an S3 object store (RRR_STORAGE_URL) adds to an image job, against a
            local upload directory, and its put/read times alone
  system    single-image and batch jobs end to end (embedded default, and PostgreSQL + Redis)
            against the bare pipeline in the same run, with the CPU each process spends per job
Videos are built once from ../shared/data/videos under var/bench/ (never committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench.data import BENCH_DIR

SECTIONS = (
    "engine",
    "stages",
    "service",
    "api",
    "scaling",
    "capacity",
    "provenance",
    "storage",
    "system",
)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def video(seconds: int, height: int) -> Path:
    from bench.videos import build_video

    width = height * 16 // 9
    return build_video(BENCH_DIR / f"clips-{seconds}s-{height}p.mp4", seconds, width, height)


def run_engine(quick: bool) -> dict[str, Any]:
    from bench.stages import engine_throughput

    return engine_throughput(n_crops=64 if quick else 256)


def run_stages(quick: bool) -> dict[str, Any]:
    from bench.stages import image_stages, video_stages

    return {
        "image": image_stages(16 if quick else 64),
        "video": video_stages(video(10 if quick else 60, 1080)),
    }


def run_service(quick: bool) -> dict[str, Any]:
    from bench.service import (
        batch_faces_per_s,
        image_latency,
        services,
        video_verdict,
        wait_idle,
        worker_peak_rss,
    )
    from bench.videos import pyav_sequential, shipped_sampler
    from tests.support.service import Client, free_port

    clip = video(10 if quick else 60, 1080)
    out: dict[str, Any] = {}
    with services(embedded=True) as procs:
        port = free_port()
        procs.start("up", "--port", str(port))
        client = Client(f"http://127.0.0.1:{port}")
        client.wait_ready()
        out["image_latency"] = image_latency(client, n=10 if quick else 40)
        out["batch"] = batch_faces_per_s(client, n=16 if quick else 64)
        wait_idle(client)
        # decoding alone, with the service idle beside it: every frame (what a player does),
        # and only what the service's exact sampler decodes (GOPs up to each sample)
        t0 = time.perf_counter()
        pyav_sequential(clip)
        decode_all_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        shipped_sampler(clip)
        decode_sampler_s = time.perf_counter() - t0
        exact = video_verdict(client, clip)
        fast = video_verdict(client, clip, sampling="keyframes")
        out["video"] = {
            "video": clip.name,
            "decode_every_frame_s": round(decode_all_s, 2),
            "decode_as_sampled_s": round(decode_sampler_s, 2),
            "exact": exact,
            "exact_over_decode_every_frame": round(exact["wall_s"] / decode_all_s, 2),
            "exact_over_decode_as_sampled": round(exact["wall_s"] / decode_sampler_s, 2),
            "keyframes": fast,
            "keyframes_speedup": round(exact["wall_s"] / fast["wall_s"], 2),
        }
        out["worker_peak_rss_mb"] = worker_peak_rss(procs)
    return out


def run_api(quick: bool) -> dict[str, Any]:
    """Submissions per second on PostgreSQL + Redis through the supported server, ``rrr api``
    (waitress): one process, then two on the same database with the load shared between them
    (as a load balancer in front would). No worker runs meanwhile, so the figures are the
    API's own (the jobs stay queued in a throwaway database). The load client runs on the same
    cores; the CPU of every process is read from /proc."""
    from bench.load import run_load
    from bench.service import services
    from bench.system import cpu_by_role, cpu_spent
    from tests.support.service import Client, free_port

    out: dict[str, Any] = {}
    jobs = 500 if quick else 3000
    # the default request threads, then fewer: past the CPU's limit, extra threads only queue
    # for the interpreter lock and the submissions lock, which lengthens the tail
    for threads, processes in ((16, 1), (16, 2), (4, 1), (4, 2)):
        with services(embedded=False) as procs:
            bases, api_pids = [], []
            for _ in range(processes):
                port = free_port()
                args = ("api", "--port", str(port), "--threads", str(threads))
                api_pids.append(procs.start(*args).pid)
                bases.append(f"http://127.0.0.1:{port}")
            for base in bases:
                Client(base).wait_ready()
            run_load(bases, 200, 32, drain=False)  # warm-up
            by_role = {"api": api_pids, "postgresql": [], "redis": []}

            busy0, own0, cpu0 = busy_cpu_seconds(), time.process_time(), cpu_by_role(by_role)
            report = run_load(bases, jobs, 32, drain=False)
            busy, own = busy_cpu_seconds() - busy0, time.process_time() - own0
            cpu1 = cpu_by_role(by_role)
            spent = cpu_spent(cpu0, cpu1)
            # what this submission path costs, whatever else the machine runs meanwhile
            own_ms = (own + sum(spent.values())) * 1000 / jobs
            name = f"rrr_api_x{processes}" if threads == 16 else f"rrr_api_t{threads}_x{processes}"
            out[name] = {
                "server": f"rrr api (waitress, {threads} threads) x {processes}",
                **report.summary(),
                # cores busy on the whole machine meanwhile (anything else running included)
                "machine_busy_cores": round(busy / report.submit_seconds, 2),
                "machine_cpu_ms_per_submission": round(busy * 1000 / jobs, 2),
                "cpu_ms_per_submission": {
                    **{role: round(seconds * 1000 / jobs, 2) for role, seconds in spent.items()},
                    "load_client": round(own * 1000 / jobs, 2),
                },
                # the API, PostgreSQL, Redis and the load client together: the CPU one
                # submission costs bounds what the cores can take
                "service_and_client_cpu_ms_per_submission": round(own_ms, 2),
                "ceiling_submissions_per_s_on_these_cores": round(
                    (os.cpu_count() or 1) * 1000 / own_ms, 1
                ),
            }
    return out


def busy_cpu_seconds() -> float:
    """CPU time all processes spent on this machine so far (user, nice, system, irq...)."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_scaling(quick: bool) -> dict[str, Any]:
    import requests

    from bench.service import image_latency, services, start_api, timed_job

    long_video = video(120 if quick else 600, 720)
    one_thread = {"RRR_INFERENCE_THREADS": "1", "RRR_DECODE_THREADS": "1"}
    out: dict[str, Any] = {"video": long_video.name}
    with services(embedded=False) as procs:
        client = start_api(procs)
        for workers in (1, 2):
            started = [
                procs.start("worker", "--name", f"w{i}@%h", **one_thread) for i in range(workers)
            ]
            seconds, job = timed_job(client, [long_video], poll_s=0.5)
            out[f"workers_{workers}"] = {
                "wall_s": round(seconds, 1),
                "segments": job["result"]["segments"]["count"],
                "longest_segment_s": job["result"]["segments"]["longest_s"],
            }
            out["frames"] = job["result"]["frames_analyzed"]
            if workers == 2:
                out["one_hour"] = hour_video(client, quick)
            for process in started:
                process.terminate()
                process.wait(60)
        out["speedup_2_over_1"] = round(out["workers_1"]["wall_s"] / out["workers_2"]["wall_s"], 2)

        # fairness: one worker per queue; image latency idle, then with the long video running
        procs.start("worker", "--queues", "images", "--name", "img@%h")
        procs.start("worker", "--queues", "videos", "--name", "vid@%h", **one_thread)
        n = 10 if quick else 40
        idle = image_latency(client, n=n, seed=5)
        job = client.submit([long_video]).json()
        while client.get(f"/v1/jobs/{job['id']}").json()["status"] != "running":
            time.sleep(0.2)
        busy = image_latency(client, n=n, seed=6)
        still_running = client.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"
        requests.delete(f"{client.base}/v1/jobs/{job['id']}", timeout=30)
        out["image_latency"] = {
            "topology": "1 worker --queues images, 1 worker --queues videos",
            "idle": idle,
            "during_video": busy,
            "video_still_running_at_end": still_running,
            "p95_ratio": round(busy["p95_ms"] / idle["p95_ms"], 2),
        }
    return out


def hour_video(client: Any, quick: bool) -> dict[str, Any]:
    """A video an hour long (small frames, 10 fps, so it builds in minutes): accepted, split
    into segments, every one far below the visibility timeout."""
    from bench.service import timed_job
    from bench.videos import build_video

    seconds = 600 if quick else 3600
    path = build_video(
        BENCH_DIR / f"clips-{seconds}s-270p-10fps.mp4", seconds, 480, 270, fps=10, gop=20
    )
    wall, job = timed_job(client, [path], poll_s=1.0)
    result = job["result"]
    return {
        "video": path.name,
        "duration_s": result["duration_s"],
        "upload_mb": round(path.stat().st_size / 1e6, 1),
        "wall_s": round(wall, 1),
        "frames": result["frames_analyzed"],
        "segments": result["segments"]["count"],
        "longest_segment_s": result["segments"]["longest_s"],
        "visibility_timeout_s": 6 * 3600,
    }


def run_capacity(quick: bool, scaling: dict[str, Any] | None) -> dict[str, Any]:
    from bench.capacity import measure

    return measure(quick, scaling)


def run_provenance(quick: bool) -> dict[str, Any]:
    from bench.provenance import measure

    return measure(quick)


def run_storage(quick: bool) -> dict[str, Any]:
    from bench.storage import measure

    return measure(quick)


def run_system(quick: bool) -> dict[str, Any]:
    from bench.system import measure

    return measure(quick)


def print_tables(results: dict[str, Any]) -> None:
    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else key, sub)
        else:
            print(f"  {prefix:<58} {value}")

    for section, value in results.items():
        print(f"\n== {section}")
        walk("", value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help=f"any of {', '.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="small inputs (a smoke run)")
    parser.add_argument(
        "--json",
        type=Path,
        default=BENCH_DIR / "results.json",
        help="where to save the figures [default: var/bench/results.json]",
    )
    args = parser.parse_args(argv)
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {SECTIONS}")
    chosen = args.sections or list(SECTIONS)
    results: dict[str, Any] = {"machine": machine()}
    for section in chosen:
        print(f"running {section}...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        if section == "capacity":
            results[section] = run_capacity(args.quick, results.get("scaling"))
        else:
            results[section] = globals()[f"run_{section}"](args.quick)
        results[section]["bench_seconds"] = round(time.perf_counter() - t0, 1)
    print_tables(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"\nsaved to {args.json}")


if __name__ == "__main__":
    main()
