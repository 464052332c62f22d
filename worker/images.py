"""Image and batch jobs: analyse the stored uploads in this worker, then record the verdict;
and an image job's heatmap, made when it is first asked for.

A video job is planned into segments instead (worker/videos.py).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from detection.analyzer import Canceled, get_analyzer
from shared import jobs, metrics
from shared.db import session_scope
from shared.errors import DetectionError, MediaError
from shared.models import Job, JobKind, JobStatus
from shared.storage import get_storage, heatmap_key, thumbnail_key
from worker import thumbnails

log = logging.getLogger("rrr.worker")


def run_image(
    job_id: str, attempt: int, inputs: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    """One image: its verdict and provenance. Its heatmap is made here only when the submit
    asked for it (``heatmap=true``); otherwise when first requested (``make_heatmap``): most
    verdicts are never looked at that closely, and the heatmap cost more than the verdict."""
    started = time.perf_counter()
    analyzer = get_analyzer(params.get("threshold"))
    storage = get_storage()
    kept: list[bool] = []
    analyzer.on_image = lambda _source, rgb: kept.append(
        thumbnails.keep(storage, thumbnail_key(job_id, 0), thumbnails.image_thumbnail(rgb))
    )
    # no progress write before the analysis: the claim was just made, and a job canceled
    # meanwhile is still caught, by mark_succeeded refusing to finish it (one transaction less)
    with storage.source(inputs[0]["key"]) as source:
        result, heatmap = analyzer.analyze_image(
            source, explain=bool(params.get("heatmap")), mime=inputs[0].get("media_type")
        )
    if heatmap is not None:
        storage.put(heatmap_key(job_id), io.BytesIO(heatmap), len(heatmap))
    # whether GET /v1/jobs/<id>/heatmap has something to show (made now or on request)
    result["heatmap"] = bool(result["faces"])
    result["thumbnail"] = any(kept)
    _succeed(job_id, attempt, JobKind.IMAGE, result, started, steps=1)


def make_heatmap(job_id: str) -> None:
    """Store the heatmap of a succeeded image job, over the faces its verdict found (read back
    from its result, so the picture matches the verdict). Safe to repeat: an existing heatmap
    is kept."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.kind != JobKind.IMAGE or job.status != JobStatus.SUCCEEDED:
            return
        boxes = [face["box"] for face in (job.result or {}).get("faces", [])]
        upload = job.inputs[0]["key"]
    storage = get_storage()
    key = heatmap_key(job_id)
    if not boxes or storage.exists(key):
        return
    started = time.perf_counter()
    analyzer = get_analyzer()
    analyzer.on_image = None  # the picture was kept with the verdict
    try:
        with storage.source(upload) as source:
            # the decoder reduces huge images exactly as it did for the verdict: same boxes
            heatmap = analyzer.heatmap_png(analyzer.decode(source), boxes)
    except (FileNotFoundError, DetectionError) as exc:
        log.warning("job %s: no heatmap (%s)", job_id, exc)
        return
    if heatmap is not None:
        storage.put(key, io.BytesIO(heatmap), len(heatmap))
    log.info("job %s: heatmap made in %.0f ms", job_id, (time.perf_counter() - started) * 1000)


def run_batch(
    job_id: str, attempt: int, inputs: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    """Several images; a file refused at upload or undecodable fails only its own item."""
    started = time.perf_counter()
    analyzer = get_analyzer(params.get("threshold"))
    storage = get_storage()
    kept: set[int] = set()
    with _sources(inputs) as sources:
        # by identity: two items with the same bytes are still two items
        index_of = {id(source): i for i, source in enumerate(sources) if source is not None}

        def keep(source: Path | bytes, rgb) -> None:
            index = index_of[id(source)]
            small = thumbnails.image_thumbnail(rgb, thumbnails.ITEM_SIDE)
            if thumbnails.keep(storage, thumbnail_key(job_id, index), small):
                kept.add(index)

        analyzer.on_image = keep
        items = [
            (
                item["filename"],
                path,
                MediaError(item["error"]["message"], code=item["error"]["code"])
                if item.get("error")
                else None,
            )
            for item, path in zip(inputs, sources, strict=True)
        ]
        mimes = [item.get("media_type") for item in inputs]
        result = analyzer.analyze_batch(items, _progress(job_id, attempt), mimes)
    for item in result["items"]:
        item["thumbnail"] = item["index"] in kept
    _succeed(job_id, attempt, JobKind.BATCH, result, started)


def _progress(job_id: str, attempt: int):
    def progress(done: int, total: int) -> bool:
        with session_scope() as session:
            return jobs.set_progress(session, job_id, attempt, done, total)

    return progress


@contextmanager
def _sources(inputs: list[dict[str, Any]]) -> Iterator[list[Path | bytes | None]]:
    """What the decoder reads for every stored input (a path, or the bytes from an object
    store; None for items refused at upload)."""
    storage = get_storage()
    with ExitStack() as stack:
        yield [
            stack.enter_context(storage.source(item["key"])) if item.get("key") else None
            for item in inputs
        ]


def _succeed(
    job_id: str,
    attempt: int,
    kind: JobKind,
    result: dict[str, Any],
    started: float,
    steps: int | None = None,
) -> None:
    with session_scope() as session:
        if not jobs.mark_succeeded(session, job_id, attempt, result, steps):
            raise Canceled()
        metrics.observe(session, _stage_seconds(kind, result, started))
    log.info("job %s: succeeded", job_id)


def _stage_seconds(kind: JobKind, result: dict[str, Any], started: float) -> dict[str, float]:
    """The job's wall time and, for single images, its stage timings."""
    stages = {f"job_{kind}": time.perf_counter() - started}
    for stage, ms in (result.get("timings_ms") or {}).items():
        if stage != "total":
            stages[f"{kind}_{stage}"] = ms / 1000.0
    return stages
