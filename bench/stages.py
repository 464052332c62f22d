"""In-process figures: the engine's raw batch throughput and the time each stage of the worker's
own code path takes (decode, detect, preprocess, infer, DB write), per image and per second of
video. Nothing here starts a server; ``bench.service`` measures the running service."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.data import dfdc_crops
from detection.analyzer import get_analyzer
from detection.media import decode_image, probe_video
from detection.model import preprocess
from shared.config import settings


def engine_throughput(n_crops: int = 256, batch: int = 32, repeat: int = 3) -> dict[str, Any]:
    """Crops per second through the engine alone (inputs already preprocessed), and the
    preprocessing cost per crop, on real DFDC face crops; the PyTorch engine beside it when
    PyTorch is installed."""
    detector = get_analyzer().detector
    crops = [decode_image(p, 10**8) for p in dfdc_crops(n_crops)]
    t0 = time.perf_counter()
    batches = [preprocess(crops[i : i + batch], detector.config) for i in range(0, n_crops, batch)]
    preprocess_ms = (time.perf_counter() - t0) * 1000 / n_crops
    out: dict[str, Any] = {
        "engine": detector.info.engine,
        "threads": settings.inference_threads or "all cores",
        "batch": batch,
        "crops_per_s": _crops_per_s(detector.engine, batches, n_crops, repeat),
        "preprocess_ms_per_crop": round(preprocess_ms, 2),
    }
    try:
        import torch

        from detection.detector import TorchEngine
        from detection.network import load_checkpoint
    except ImportError:
        return out
    torch.set_num_threads(settings.inference_threads or (os.cpu_count() or 1))
    torch_engine = TorchEngine(load_checkpoint(settings.weights_path)[0])
    out["torch_crops_per_s"] = _crops_per_s(torch_engine, batches, n_crops, repeat)
    return out


def _crops_per_s(engine: Any, batches: list, n_crops: int, repeat: int) -> float:
    engine.run(batches[0])  # warm-up: the first run allocates
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for b in batches:
            engine.run(b)
        runs.append(n_crops / (time.perf_counter() - t0))
    return round(statistics.median(runs), 1)


def image_stages(n_images: int = 64) -> dict[str, Any]:
    """Median ms per stage for single-image analysis of real 224 px DFDC crops."""
    analyzer = get_analyzer()
    paths = dfdc_crops(n_images, seed=1)
    analyzer.analyze_image(paths[0])  # warm-up
    per_stage: dict[str, list[float]] = {
        "provenance": [],
        "decode": [],
        "detect": [],
        "infer": [],
        "total": [],
    }
    faces = 0
    for path in paths:
        result, _ = analyzer.analyze_image(path)
        faces += len(result["faces"])
        for stage in per_stage:
            per_stage[stage].append(result["timings_ms"][stage])
    out: dict[str, Any] = {f"{k}_ms": round(statistics.median(v), 1) for k, v in per_stage.items()}
    out["face_found_share"] = round(faces / n_images, 3)
    out["db_write_ms"] = round(_db_write_ms_per_image_job(), 2)
    return out


def video_stages(video: Path, sample_fps: float = 1.0) -> dict[str, Any]:
    """Seconds per stage per second of video (the worker's analyze_segment, in-process), plus
    the SQL cost of storing the per-frame rows."""
    analyzer = get_analyzer()
    info = probe_video(video)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    analyzer.analyze_segment(
        video, info, sample_fps, 10**6, 0, None, lambda batch: rows.extend(batch) or True
    )
    wall = time.perf_counter() - t0
    seconds = info.duration_s
    out = {f"{k}_s_per_video_s": round(v / seconds, 4) for k, v in analyzer.stage_seconds.items()}
    out.update(
        {
            "video": f"{info.width}x{info.height} {seconds:.0f} s",
            "wall_s": round(wall, 2),
            "frames": len(rows),
            "faces": sum(len(r["faces"]) for r in rows),
            "db_write_s_per_video_s": round(_db_write_s_for_rows(rows) / seconds, 5),
        }
    )
    return out


# ------------------------------------------------------------------------------ SQL writes


def _fresh_database() -> None:
    """Point the settings at a new SQLite file (the embedded default) with the schema."""
    import os

    from shared.config import reload_settings
    from shared.db import get_engine
    from shared.migrate import upgrade_database

    folder = tempfile.mkdtemp(prefix="rrr-bench-db-")
    before = os.environ.get("RRR_DATABASE_URL")
    os.environ["RRR_DATABASE_URL"] = f"sqlite:///{folder}/bench.db"
    try:
        reload_settings()
    finally:  # processes started later must not inherit this
        if before is None:
            del os.environ["RRR_DATABASE_URL"]
        else:
            os.environ["RRR_DATABASE_URL"] = before
    get_engine()
    upgrade_database()


def _running_job(kind: str) -> tuple[str, int]:
    from shared import jobs
    from shared.db import session_scope
    from shared.models import JobKind

    with session_scope() as session:
        job_id = jobs.create_job(session, kind=JobKind(kind), inputs=[], params={}).id
    with session_scope() as session:
        attempt = jobs.mark_running(session, job_id, settings.stale_after_s)
    assert attempt is not None
    return job_id, attempt


def _db_write_ms_per_image_job(n: int = 50) -> float:
    """What a worker writes for one image job, as worker/tasks.py and worker/images.py write
    it: claim it (one transaction), record the result and its stage latencies (another)."""
    from shared import jobs, metrics
    from shared.db import session_scope
    from shared.models import JobKind

    _fresh_database()
    stages = {"job_image": 0.02, "image_decode": 0.001, "image_detect": 0.002, "image_infer": 0.004}
    times = []
    for _ in range(n):
        with session_scope() as session:  # the API's part, not timed
            job_id = jobs.create_job(session, kind=JobKind.IMAGE, inputs=[], params={}).id
        t0 = time.perf_counter()
        with session_scope() as session:
            claimed = jobs.claim(session, job_id, settings.stale_after_s)
        assert claimed is not None
        with session_scope() as session:
            jobs.mark_succeeded(
                session, job_id, claimed.attempt, {"prediction": "REAL", "faces": []}, steps=1
            )
            metrics.observe(session, stages)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _db_write_s_for_rows(rows: list[dict[str, Any]], batch: int = 8) -> float:
    """Store the rows in batches of frames, as a video segment writes them down."""
    from shared import segments
    from shared.db import session_scope

    _fresh_database()
    job_id, attempt = _running_job("video")
    with session_scope() as session:
        segments.plan_segments(session, job_id, attempt, [(0, len(rows))], {"fps": 30.0})
    with session_scope() as session:
        segments.claim_segment(session, job_id, 0, attempt, settings.stale_after_s)
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        with session_scope() as session:
            segments.add_segment_frames(session, job_id, 0, attempt, rows[i : i + batch])
    return time.perf_counter() - t0
