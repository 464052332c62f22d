"""Image and batch jobs: analyse the stored uploads in this worker, then record the verdict.

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
from shared.config import settings
from shared.db import session_scope
from shared.errors import MediaError
from shared.models import JobKind
from shared.storage import get_storage, heatmap_key, thumbnail_key
from worker import thumbnails

log = logging.getLogger("rrr.worker")


def run_image(
    job_id: str, attempt: int, inputs: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    """One image: its verdict and provenance, and its Grad-CAM overlay stored beside the
    upload."""
    started = time.perf_counter()
    analyzer = get_analyzer(params.get("threshold"))
    storage = get_storage()
    kept: list[bool] = []
    analyzer.on_image = lambda _source, rgb: kept.append(
        thumbnails.keep(storage, thumbnail_key(job_id, 0), thumbnails.image_thumbnail(rgb))
    )
    with storage.source(inputs[0]["key"]) as source:
        if not _progress(job_id, attempt)(0, 1):
            raise Canceled()
        result, heatmap = analyzer.analyze_image(
            source, explain=settings.heatmaps, mime=inputs[0].get("media_type")
        )
    if heatmap is not None:
        storage.put(heatmap_key(job_id), io.BytesIO(heatmap), len(heatmap))
    result["heatmap"] = heatmap is not None
    result["thumbnail"] = any(kept)
    _succeed(job_id, attempt, JobKind.IMAGE, result, started)


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
    job_id: str, attempt: int, kind: JobKind, result: dict[str, Any], started: float
) -> None:
    with session_scope() as session:
        if not jobs.mark_succeeded(session, job_id, attempt, result):
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
