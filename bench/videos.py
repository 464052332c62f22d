"""Long test videos built from the shared clips, and what decoding them costs.

    python -m bench.videos [--seconds 60] [--repeat 3] [--out var/bench] [--verdict]

Builds (once, cached under ``--out``) a 60 s 1080p and a 60 s 720p H.264 video from the shared
labelled clips, then times decoder options on each at 1 sampled frame per second: wall seconds
and CPU seconds (user + system of this process, decoder threads included), median of
``--repeat`` runs. ``--verdict``: whole verdicts of the service (faces and model included)
against decoding alone. Media is never committed: the videos are built on the fly.

``build_video`` and ``time_decode`` are importable: later benchmarks use them too.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from bench.data import BENCH_DIR, SHARED_DATA

SHARED_VIDEOS = SHARED_DATA / "videos"


def shared_clips(labels_csv: Path = SHARED_VIDEOS / "labels.csv") -> list[Path]:
    with open(labels_csv, newline="") as fh:
        return [labels_csv.parent / row["file"] for row in csv.DictReader(fh)]


def _fit(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fit ``width`` x ``height``, keeping the aspect ratio, on a black background."""
    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(2, round(w * scale)), max(2, round(h * scale))
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = small
    return out


def build_video(
    out_path: Path,
    seconds: float,
    width: int,
    height: int,
    fps: int = 30,
    gop: int = 60,
    preset: str = "superfast",
    clips: list[Path] | None = None,
) -> Path:
    """An H.264 MP4 of ``seconds`` at ``fps``: the shared clips one after the other (looped),
    each frame scaled to fit ``width`` x ``height``. A keyframe every ``gop`` frames (60 = 2 s at
    30 fps, the order of phone and streaming encodes). ``superfast`` keeps what makes H.264
    decoding cost what it costs (CABAC, B-frames, the loop filter) and encodes quickly;
    ``ultrafast`` would drop all three. Reuses ``out_path`` when it exists."""
    out_path = Path(out_path)
    if out_path.is_file() and out_path.stat().st_size > 0:
        return out_path
    out_path.parent.mkdir(parents=True, exist_ok=True)
    clips = clips or shared_clips()
    total = round(seconds * fps)
    partial = out_path.with_suffix(".part.mp4")
    with av.open(str(partial), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "preset": preset,
            "g": str(gop),
            "keyint_min": str(gop),
            "sc_threshold": "0",
            "crf": "23",
        }
        stream.codec_context.time_base = Fraction(1, fps)
        written = 0
        while written < total:
            for clip in clips:
                with av.open(str(clip)) as source:
                    source.streams.video[0].thread_type = "AUTO"
                    for frame in source.decode(video=0):
                        rgb = _fit(frame.to_ndarray(format="rgb24"), width, height)
                        new = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                        new.pts = written
                        out.mux(stream.encode(new))
                        written += 1
                        if written >= total:
                            break
                if written >= total:
                    break
        out.mux(stream.encode(None))
    partial.rename(out_path)
    return out_path


# ------------------------------------------------------------------------------ decoders
# Each decoder walks one video at ``sample_fps`` the way a sampler would and returns how many
# RGB frames it produced; only sampled frames are converted to RGB.


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rate(stream: av.video.stream.VideoStream) -> float:
    return float(stream.average_rate or stream.guessed_rate)


def cv2_sequential(path: Path, sample_fps: float = 1.0) -> int:
    """OpenCV: grab every frame, retrieve (convert) only the sampled ones."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    fps = capture.get(cv2.CAP_PROP_FPS)
    n = produced = 0
    target = 0
    while capture.grab():
        if n >= target:
            ok, bgr = capture.retrieve()
            produced += int(ok and cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) is not None)
            target = int(np.ceil((produced) * fps / sample_fps - 1e-6))
        n += 1
    capture.release()
    return produced


def pyav_sequential(
    path: Path,
    sample_fps: float = 1.0,
    thread_type: str = "AUTO",
    thread_count: int = 0,
    skip_loop_filter: bool = False,
    skip_nonref: bool = False,
    keyframes_only: bool = False,
) -> int:
    """PyAV: decode every frame (or only keyframes), convert only sampled frames to RGB."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = thread_type
        stream.thread_count = thread_count
        if skip_loop_filter:
            stream.codec_context.options = {"skip_loop_filter": "all"}
        if skip_nonref or keyframes_only:
            stream.codec_context.skip_frame = "NONKEY" if keyframes_only else "NONREF"
        tb, fps = float(stream.time_base), _rate(stream)
        start = stream.start_time or 0
        produced = 0
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            n = round((frame.pts - start) * tb * fps)
            if keyframes_only or n >= np.ceil(produced * fps / sample_fps - 1e-6):
                frame.to_ndarray(format="rgb24")
                produced += 1
    return produced


def pyav_seek_each(
    path: Path, sample_fps: float = 1.0, keyframe_only: bool = True, thread_type: str = "AUTO"
) -> int:
    """PyAV: for every sample time, seek to the keyframe at or before it; then either take that
    keyframe (``keyframe_only``: the nearest-keyframe fast mode) or decode forward to the exact
    frame (repeated seeking)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = thread_type
        tb = float(stream.time_base)
        start = stream.start_time or 0
        duration = (
            float((stream.duration or 0) * stream.time_base) or float(container.duration or 0) / 1e6
        )
        produced = 0
        last_key = None
        k = 0
        while k / sample_fps < duration:
            target = start + round(k / sample_fps / tb)
            container.seek(target, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if keyframe_only:
                    if frame.pts != last_key:
                        frame.to_ndarray(format="rgb24")
                        produced += 1
                        last_key = frame.pts
                    break
                if frame.pts is not None and frame.pts >= target:
                    frame.to_ndarray(format="rgb24")
                    produced += 1
                    break
            k += 1
        return produced


def shipped_sampler(path: Path, sample_fps: float = 1.0, sampling: str = "exact") -> int:
    """What the service uses now (detection/media.py), for comparison with the options above."""
    from detection.media import probe_video, sample_frames

    info = probe_video(path)
    return sum(1 for _ in sample_frames(path, info, sample_fps, 1 << 30, sampling=sampling))


def service_verdict(path: Path, sample_fps: float = 1.0, sampling: str = "exact") -> int:
    """The whole verdict as a worker gives it (decode, faces, model, aggregation) with the
    configured engine and weights."""
    from detection.analyzer import get_analyzer

    result, _ = get_analyzer().analyze_video(path, sample_fps, 1 << 30, lambda d, t: True, sampling)
    return int(result["frames_analyzed"])


@dataclass
class Timing:
    seconds: float
    cpu_seconds: float
    frames: int


def time_decode(fn: Callable[..., int], path: Path, repeat: int = 3, **kwargs: object) -> Timing:
    """Median wall and CPU seconds of ``fn(path, **kwargs)`` over ``repeat`` runs."""
    walls, cpus, frames = [], [], 0
    for _ in range(repeat):
        c0, t0 = _cpu(), time.perf_counter()
        frames = fn(path, **kwargs)
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    return Timing(statistics.median(walls), statistics.median(cpus), frames)


OPTIONS: list[tuple[str, Callable[..., int], dict[str, object]]] = [
    ("cv2 grab all, retrieve sampled", cv2_sequential, {}),
    ("PyAV threads NONE (1 thread)", pyav_sequential, {"thread_type": "NONE"}),
    ("PyAV SLICE, auto count", pyav_sequential, {"thread_type": "SLICE"}),
    ("PyAV FRAME, auto count", pyav_sequential, {"thread_type": "FRAME"}),
    ("PyAV AUTO, 1 thread", pyav_sequential, {"thread_type": "AUTO", "thread_count": 1}),
    ("PyAV AUTO, 2 threads", pyav_sequential, {"thread_type": "AUTO", "thread_count": 2}),
    ("PyAV AUTO, 4 threads", pyav_sequential, {"thread_type": "AUTO", "thread_count": 4}),
    ("PyAV AUTO, auto count", pyav_sequential, {"thread_type": "AUTO"}),
    ("PyAV AUTO + skip_loop_filter", pyav_sequential, {"skip_loop_filter": True}),
    ("PyAV AUTO + skip non-ref frames", pyav_sequential, {"skip_nonref": True}),
    ("PyAV seek + decode forward, each sample", pyav_seek_each, {"keyframe_only": False}),
    ("PyAV keyframes only (skip_frame NONKEY)", pyav_sequential, {"keyframes_only": True}),
    ("PyAV seek nearest keyframe, each sample", pyav_seek_each, {"keyframe_only": True}),
    ("service: sample_frames exact", shipped_sampler, {"sampling": "exact"}),
    ("service: sample_frames keyframes", shipped_sampler, {"sampling": "keyframes"}),
]
VERDICTS: list[tuple[str, Callable[..., int], dict[str, object]]] = [
    ("decode only: sample_frames exact", shipped_sampler, {"sampling": "exact"}),
    ("verdict exact", service_verdict, {}),
    ("decode only: sample_frames keyframes", shipped_sampler, {"sampling": "keyframes"}),
    ("verdict keyframes", service_verdict, {"sampling": "keyframes"}),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gop", type=int, default=60, help="frames between keyframes")
    parser.add_argument("--out", type=Path, default=BENCH_DIR)
    parser.add_argument("--only", default="", help="run options whose name contains this")
    parser.add_argument(
        "--verdict",
        action="store_true",
        help="time whole verdicts (faces + model) against decoding alone instead",
    )
    parser.add_argument("--heights", default="1080,720", help="built videos, 16:9")
    args = parser.parse_args(argv)
    sizes = [(int(h) * 16 // 9, int(h)) for h in args.heights.split(",")]
    videos = []
    for width, height in sizes:
        path = args.out / f"built-{int(args.seconds)}s-{height}p-gop{args.gop}.mp4"
        t0 = time.perf_counter()
        build_video(path, args.seconds, width, height, gop=args.gop)
        print(f"# {path} ready in {time.perf_counter() - t0:.1f} s", flush=True)
        videos.append((f"{height}p", path))
    print(
        f"# {args.seconds:g} s H.264 30 fps, keyframe every {args.gop} frames, 1 sampled fps; "
        f"median of {args.repeat}; {len(os.sched_getaffinity(0))} CPUs visible"
    )
    header = (
        "| option | "
        + " | ".join(f"{name} s | {name} CPU s | {name} frames" for name, _ in videos)
        + " |"
    )
    print(header)
    print("|" + "---|" * (1 + 3 * len(videos)))
    if args.verdict:
        service_verdict(videos[-1][1], sampling="keyframes")  # load the model first
    rows = [
        row
        for row in (VERDICTS if args.verdict else OPTIONS)
        if not args.only or args.only in row[0]
    ]
    # round robin: every option runs once per round, so a burst of load from elsewhere on the
    # machine hits all of them alike; medians over the rounds
    runs: dict[tuple[int, int], list[Timing]] = {}
    for _ in range(args.repeat):
        for i, (_, fn, kwargs) in enumerate(rows):
            for j, (_, path) in enumerate(videos):
                runs.setdefault((i, j), []).append(time_decode(fn, path, 1, **kwargs))
    for i, (label, _, _) in enumerate(rows):
        cells = []
        for j in range(len(videos)):
            seconds = statistics.median(t.seconds for t in runs[i, j])
            cpu = statistics.median(t.cpu_seconds for t in runs[i, j])
            cells.append(f"{seconds:.2f} | {cpu:.2f} | {runs[i, j][-1].frames}")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
