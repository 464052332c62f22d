"""Videos at scale: a video job is split into segments of RRR_SEGMENT_SECONDS of video, each a
task any worker can take; the worker that finishes the last segment aggregates the verdict.

Samples are a pure function of their index (detection/media.py), so a segment decodes exactly the
frames a single pass would: the per-frame rows, and so the verdict, do not depend on how many
workers took part. Every segment task stays far below the broker's visibility timeout.
"""

from __future__ import annotations

import io
import logging
import math
import time
from contextlib import closing
from typing import Any

from detection.analyzer import Canceled, file_provenance, get_analyzer
from detection.media import (
    VideoInfo,
    planned_samples,
    probe_video,
    sample_frames,
    stream_frames,
)
from shared import jobs, metrics, segments
from shared.config import settings
from shared.db import session_scope
from shared.errors import DetectionError
from shared.models import FrameResult, Job, JobKind, JobStatus, utcnow
from shared.queue import publish_segment
from shared.storage import frame_heatmap_key, frame_key, get_storage
from worker import thumbnails

log = logging.getLogger("rrr.worker")

# how often a running segment writes its frames and progress down (and heartbeats)
PROGRESS_INTERVAL_S = 0.5


def _sampling(params: dict[str, Any]) -> tuple[float, int]:
    return (
        float(params.get("sample_fps", settings.sample_fps)),
        int(params.get("max_frames", settings.max_frames)),
    )


def _mode(params: dict[str, Any]) -> str:
    """``exact`` or ``keyframes``; jobs queued before the field existed were exact."""
    return str(params.get("sampling", "exact"))


def segment_ranges(
    info: VideoInfo, sample_fps: float, max_frames: int, samples: list[int]
) -> list[tuple[int, int]]:
    """[first, end) sample ranges covering the video, each with the rows of RRR_SEGMENT_SECONDS
    of densely sampled video at most, and RRR_MAX_SEGMENTS ranges at most."""
    total = info.expected_samples(sample_fps, max_frames)
    per = max(1, math.ceil(settings.segment_seconds * info.effective_sample_fps(sample_fps)))
    return segments.group_ranges(samples, total, per, settings.max_segments)


def plan(job_id: str, attempt: int, inputs: list[dict[str, Any]], params: dict[str, Any]) -> None:
    """Probe the video and read its provenance (once per job, never per segment), plan its
    segments from the frames it really holds (read from the packets' timestamps, not from its
    declared duration), record them and publish one task for each still to do."""
    sample_fps, max_frames = _sampling(params)
    with get_storage().local_path(inputs[0]["key"]) as path:
        info = probe_video(path)
        stream = stream_frames(path, info)
        provenance = file_provenance(path, inputs[0].get("media_type"))
    samples = planned_samples(info, sample_fps, max_frames, _mode(params), stream)
    ranges = segment_ranges(info, sample_fps, max_frames, samples)
    probe = {
        "fps": info.fps,
        "frame_count": info.frame_count,
        "width": info.width,
        "height": info.height,
    }
    with session_scope() as session:
        todo = segments.plan_segments(session, job_id, attempt, ranges, probe, len(samples))
        if todo is not None and not jobs.write_if_owned(
            session, job_id, attempt, provenance=provenance
        ):
            todo = None
    if todo is None:
        raise Canceled()
    for index in todo:
        publish_segment(job_id, index, attempt)
    log.info(
        "job %s: %d segment(s) of %d sampled frames published", job_id, len(todo), len(samples)
    )


def run_segment(job_id: str, index: int, attempt: int) -> None:
    """Analyse one segment; if it was the last, write the video's verdict."""
    with session_scope() as session:
        segment = segments.claim_segment(session, job_id, index, attempt, settings.stale_after_s)
        if segment is None:
            return  # done already, taken by a live worker, or the job is over
        job = session.get(Job, job_id)
        first, end = segment.first_sample, segment.end_sample
        params, upload, probe = dict(job.params), dict(job.inputs[0]), dict(job.probe)
    info = VideoInfo(**probe)
    sample_fps, max_frames = _sampling(params)
    analyzer = get_analyzer(params.get("threshold"))
    storage = get_storage()
    # each sampled frame is kept as a small JPEG with its boxes before its row is written, so
    # the page can show any frame it lists
    analyzer.on_frame = lambda sample, rgb, faces: thumbnails.keep(
        storage, frame_key(job_id, sample), thumbnails.frame_image(rgb, faces)
    )
    started = time.perf_counter()

    pending: list[dict[str, Any]] = []
    written = [0.0]  # monotonic time of the last write; 0: nothing written yet

    def write() -> bool:
        with session_scope() as session:
            ours = segments.add_segment_frames(session, job_id, index, attempt, pending)
        pending.clear()
        written[0] = time.monotonic()
        return ours

    def store(rows: list[dict[str, Any]]) -> bool:
        # progress moves frame by frame, but is written down at most every
        # PROGRESS_INTERVAL_S (the first frame at once), so a fast video costs few writes
        pending.extend(rows)
        if written[0] and time.monotonic() - written[0] < PROGRESS_INTERVAL_S:
            return True
        return write()

    with storage.local_path(upload["key"]) as path:
        analyzer.analyze_segment(
            path, info, sample_fps, max_frames, first, end, store, _mode(params)
        )
    if pending and not write():
        raise Canceled()
    seconds = time.perf_counter() - started
    with session_scope() as session:
        last = segments.finish_segment(session, job_id, index, attempt, seconds)
        if last is None:
            raise Canceled()
        metrics.observe(session, {"video_segment": seconds})
    log.info(
        "job %s: segment %d (samples %d-%d) done in %.1f s", job_id, index, first, end - 1, seconds
    )
    if last:
        _aggregate(job_id, attempt, info, sample_fps, params)


def _aggregate(
    job_id: str, attempt: int, info: VideoInfo, sample_fps: float, params: dict[str, Any]
) -> None:
    analyzer = get_analyzer(params.get("threshold"))
    with session_scope() as session:
        frames = segments.all_frames(session, job_id)
        durations = segments.segment_durations(session, job_id)
        job = session.get(Job, job_id)
        wall = (utcnow() - job.started_at).total_seconds()
        result = analyzer.video_result(info, frames, sample_fps, _mode(params))
        result["segments"] = {"count": len(durations), "longest_s": round(max(durations), 3)}
        result["frame_images"] = True  # /frames/<index>/image for every per-frame row
        result["timings_ms"] = {"total": round(wall * 1000, 1)}
        if job.provenance is not None:
            provenance = dict(job.provenance)
            result["timings_ms"]["provenance"] = round(provenance.pop("elapsed_ms", 0.0), 1)
            result["provenance"] = provenance
        # the total becomes the frames the video really yielded (a planned sample can find no
        # frame, e.g. a damaged tail), so a finished job never claims frames it did not analyse
        if not jobs.mark_succeeded(session, job_id, attempt, result, steps=len(frames)):
            raise Canceled()
        metrics.observe(session, {"job_video": wall})
    log.info("job %s: succeeded (%d frames, %d segments)", job_id, len(frames), len(durations))


def make_frame_heatmap(job_id: str, index: int) -> None:
    """Store the heatmap of sampled frame ``index`` of a succeeded video job: that one frame
    decoded again by the sampling rule of the analysis (so it is the frame the row describes and
    its boxes fit), with a Grad-CAM overlay on the faces of its row, kept as a JPEG of at most
    ``thumbnails.IMAGE_SIDE`` px. Safe to repeat: an existing heatmap is kept."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.kind != JobKind.VIDEO or job.status != JobStatus.SUCCEEDED:
            return
        row = session.get(FrameResult, (job_id, int(index)))
        if row is None or not row.faces:
            return
        boxes = [face["box"] for face in row.faces]
        frame_number = row.frame_number
        params, upload, probe = dict(job.params), job.inputs[0]["key"], dict(job.probe or {})
    storage = get_storage()
    key = frame_heatmap_key(job_id, index)
    if storage.exists(key) or not probe:
        return
    started = time.perf_counter()
    info = VideoInfo(**probe)
    sample_fps, max_frames = _sampling(params)
    try:
        with storage.local_path(upload) as path:
            # samples index .. index: the one frame, by the rule the analysis used
            one = sample_frames(path, info, sample_fps, max_frames, index, index + 1, _mode(params))
            with closing(one):
                frame = next((f for f in one if f.index == index), None)
    except (FileNotFoundError, DetectionError) as exc:
        log.warning("job %s: no heatmap for frame %d (%s)", job_id, index, exc)
        return
    if frame is None or frame.frame_number != frame_number:
        # the stored video no longer yields the analysed frame: no overlay on a different one
        log.warning("job %s: frame %d could not be decoded again", job_id, index)
        return
    drawn = get_analyzer().heatmap_rgb(frame.rgb, boxes)
    if drawn is None:
        return
    data = thumbnails.jpeg(thumbnails.shrink(drawn, thumbnails.IMAGE_SIDE)[0])
    storage.put(key, io.BytesIO(data), len(data))
    log.info(
        "job %s: heatmap of frame %d made in %.0f ms",
        job_id,
        index,
        (time.perf_counter() - started) * 1000,
    )
