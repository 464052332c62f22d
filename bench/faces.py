"""Compare face detectors on real faces: recall on DFDC face crops and on frames of the shared
videos, extra boxes per frame, and single-thread speed.

    python -m bench.faces                 # every installed candidate, 2000 crops
    python -m bench.faces --crops 500 --only yuface@320,rrr
    python -m bench.faces --only yuface@480,rrr --pasted   # small faces in large frames too,
                                                           # and beside a large face in photos

Columns:
- crop recall: share of N DFDC face crops (balanced over real/fake, at most one per ``group``
  first, fixed seed) where a box overlaps the centre region of the image. Every crop is a face
  that fills most of the image.
- frame recall: share of frames sampled at 1 fps from the labelled videos in which at least one
  box was found (every sampled frame shows a face).
- extra/frame: boxes beyond the largest one, per frame with a detection; small extra/frame: those
  of them whose side is under half the largest box's (in these clips such boxes are almost always
  false: background texture, a hand, a second echo of the same face).
- ms 1080p / ms crop: median wall time of one detect call on a 1920x1080 video frame (including
  the downscale) and on a 224 px crop, with one thread (OpenMP, OpenCV and torch limited to 1),
  the detectors taking turns call by call;
  ms no face: the same on a blank 1080p frame (a detector that looks again when it finds
  nothing pays its second pass there).

Candidates whose package is not installed are skipped with a line saying so. The ``rrr`` row is
the product's own detector (detection.faces.FaceDetector), whatever it currently is, as video
frames are searched; ``rrr-photo`` the same as still images are searched (a large photo also in
tiles: detection.faces.PHOTO_SCALE).
"""

from __future__ import annotations

import os

# Before any OpenMP runtime is loaded (yuface and dlib bring their own).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.data import SHARED_DATA  # noqa: E402

DATA = SHARED_DATA

Box = tuple[float, float, float, float, float]  # x, y, w, h (original pixels), score
DetectFn = Callable[[np.ndarray], list[Box]]


# ------------------------------------------------------------------------------ helpers


def downscale(rgb: np.ndarray, max_side: int, max_scale: float = 1.0) -> tuple[np.ndarray, float]:
    height, width = rgb.shape[:2]
    scale = min(max_scale, max_side / max(height, width))
    if scale < 1.0:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return rgb, scale


def add_border(image: np.ndarray, fraction: float) -> tuple[np.ndarray, int]:
    border = int(fraction * max(image.shape[:2])) if fraction > 0 else 0
    if border:
        image = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_REFLECT)
    return image, border


def to_original(boxes: list[Box], border: int, scale: float, shape: tuple[int, ...]) -> list[Box]:
    """Boxes on the bordered, downscaled image -> clipped boxes in original pixels."""
    height, width = shape[:2]
    out = []
    for x, y, w, h, score in boxes:
        x0 = max(0.0, (x - border) / scale)
        y0 = max(0.0, (y - border) / scale)
        x1 = min(float(width), (x - border + w) / scale)
        y1 = min(float(height), (y - border + h) / scale)
        if x1 - x0 >= 4 and y1 - y0 >= 4:
            out.append((x0, y0, x1 - x0, y1 - y0, float(score)))
    return out


# ------------------------------------------------------------------------------ candidates


def haar(max_side: int = 640, border_fraction: float = 0.2) -> DetectFn:
    """OpenCV's frontal Haar cascade as the product used it: grey, equalised, mirrored border."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def detect(rgb: np.ndarray) -> list[Box]:
        small, scale = downscale(rgb, max_side)
        grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        padded, border = add_border(grey, border_fraction)
        min_side = max(20, int(0.06 * min(grey.shape)))
        boxes, _, weights = cascade.detectMultiScale3(
            padded,
            scaleFactor=1.1,
            minNeighbors=5,
            minSize=(min_side, min_side),
            outputRejectLevels=True,
        )
        raw = [(*map(float, b), float(s)) for b, s in zip(boxes, weights, strict=False)]
        return to_original(raw, border, scale, rgb.shape)

    return detect


def yuface(
    max_side: int, border_fraction: float = 0.0, threshold: float = 0.5, max_scale: float = 1.0
) -> DetectFn:
    """libfacedetection's YuNet CNN (weights compiled into the yuface wheel, BSD-3); with
    ``max_scale`` < 1 every image is shrunk by at least that factor (small ones too)."""
    import warnings

    from yuface import detect as yu_detect

    def detect(rgb: np.ndarray) -> list[Box]:
        small, scale = downscale(rgb, max_side, max_scale)
        bgr = np.ascontiguousarray(small[:, :, ::-1])
        padded, border = add_border(bgr, border_fraction)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            confs, boxes, _ = yu_detect(padded, threshold)
        raw = [
            (*(float(v) for v in b.astype(np.int16)), float(c))
            for c, b in zip(confs, boxes, strict=True)
        ]
        return to_original(raw, border, scale, rgb.shape)

    return detect


def mediapipe(max_side: int, model: int, border_fraction: float = 0.0) -> DetectFn:
    """MediaPipe BlazeFace through the legacy solutions API (mediapipe<=0.10.14 bundles the
    .tflite; needs protobuf<5 and pulls opencv-contrib-python, so it is measured here only)."""
    import mediapipe as mp

    finder = mp.solutions.face_detection.FaceDetection(
        model_selection=model, min_detection_confidence=0.5
    )

    def detect(rgb: np.ndarray) -> list[Box]:
        small, scale = downscale(rgb, max_side)
        padded, border = add_border(small, border_fraction)
        h, w = padded.shape[:2]
        result = finder.process(np.ascontiguousarray(padded))
        raw = []
        for d in result.detections or []:
            rb = d.location_data.relative_bounding_box
            raw.append((rb.xmin * w, rb.ymin * h, rb.width * w, rb.height * h, d.score[0]))
        return to_original(raw, border, scale, rgb.shape)

    return detect


def dlib_hog(max_side: int = 640, border_fraction: float = 0.0) -> DetectFn:
    """dlib's HOG + linear SVM frontal detector (model built into dlib-bin)."""
    import dlib

    finder = dlib.get_frontal_face_detector()

    def detect(rgb: np.ndarray) -> list[Box]:
        small, scale = downscale(rgb, max_side)
        padded, border = add_border(np.ascontiguousarray(small), border_fraction)
        rects, scores, _ = finder.run(padded, 0, 0.0)
        raw = [
            (r.left(), r.top(), r.width(), r.height(), s)
            for r, s in zip(rects, scores, strict=True)
        ]
        return to_original(raw, border, scale, rgb.shape)

    return detect


def mtcnn(max_side: int = 640, border_fraction: float = 0.0) -> DetectFn:
    """MTCNN with the weights in the facenet-pytorch wheel (its metadata pins torch<2.3, so it
    only installs with --no-deps here)."""
    import torch
    from facenet_pytorch.models.mtcnn import MTCNN

    torch.set_num_threads(1)
    finder = MTCNN(keep_all=True, device="cpu")

    def detect(rgb: np.ndarray) -> list[Box]:
        small, scale = downscale(rgb, max_side)
        padded, border = add_border(np.ascontiguousarray(small), border_fraction)
        boxes, probs = finder.detect(padded)
        raw = []
        if boxes is not None:
            for (x0, y0, x1, y1), p in zip(boxes, probs, strict=True):
                raw.append((x0, y0, x1 - x0, y1 - y0, p))
        return to_original(raw, border, scale, rgb.shape)

    return detect


def product(photo: bool = False) -> DetectFn:
    """The service's detector: as video frames are searched, or (``photo``) still images."""
    from detection.faces import FaceDetector

    finder = FaceDetector()

    def detect(rgb: np.ndarray) -> list[Box]:
        return [(*map(float, f.box), f.score) for f in finder.detect(rgb, photo)]

    return detect


CANDIDATES: dict[str, Callable[[], DetectFn]] = {
    "haar@640+border": lambda: haar(640, 0.2),
    "yuface@640": lambda: yuface(640),
    "yuface@480": lambda: yuface(480),
    "yuface@320": lambda: yuface(320),
    "yuface@320+border": lambda: yuface(320, 0.2),
    "yuface@256": lambda: yuface(256),
    "yuface@320x0.5": lambda: yuface(320, max_scale=0.5),
    "mediapipe-short@640": lambda: mediapipe(640, 0),
    "mediapipe-full@640": lambda: mediapipe(640, 1),
    "mediapipe-full@640+border": lambda: mediapipe(640, 1, 0.2),
    "dlib-hog@640": lambda: dlib_hog(640),
    "dlib-hog@640+border": lambda: dlib_hog(640, 0.2),
    "mtcnn@640": lambda: mtcnn(640),
    "rrr": product,
    "rrr-photo": lambda: product(photo=True),
}


# ------------------------------------------------------------------------------ data


def sample_crops(n: int, seed: int) -> list[Path]:
    """n DFDC crops, half real and half fake, spread over as many groups as possible."""
    by_label: dict[str, dict[str, list[str]]] = {"real": {}, "fake": {}}
    with open(DATA / "dfdc_faces" / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            by_label[row["label"]].setdefault(row["group"], []).append(row["file"])
    rng = random.Random(seed)
    chosen = []
    for label, groups in by_label.items():
        want = n // 2 if label == "real" else n - n // 2
        names = sorted(groups)
        rng.shuffle(names)
        pools = {g: rng.sample(groups[g], len(groups[g])) for g in names}
        picked: list[str] = []
        while len(picked) < want and any(pools.values()):
            for g in names:  # round robin: one per group, then a second, ...
                if pools[g] and len(picked) < want:
                    picked.append(pools[g].pop())
        chosen.extend(DATA / "dfdc_faces" / f for f in picked)
    return chosen


def video_frames(sample_fps: float = 1.0):
    from detection.media import probe_video, sample_frames

    with open(DATA / "videos" / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        path = DATA / "videos" / row["file"]
        for frame in sample_frames(path, probe_video(path), sample_fps, 10_000):
            yield row["file"], frame.rgb


def load_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def covers_centre(box: Box, shape: tuple[int, ...], region: float = 0.2) -> bool:
    """The box overlaps the central ``region`` x ``region`` square of the image."""
    height, width = shape[:2]
    x, y, w, h, _ = box
    cx0, cx1 = width * (0.5 - region / 2), width * (0.5 + region / 2)
    cy0, cy1 = height * (0.5 - region / 2), height * (0.5 + region / 2)
    return x < cx1 and x + w > cx0 and y < cy1 and y + h > cy0


def median_ms(detectors: dict[str, DetectFn], image: np.ndarray, repeats: int) -> dict[str, float]:
    """Median ms per call of each detector on ``image``. The detectors take turns call by call,
    so that load from other work on a shared machine falls on all of them alike."""
    for detect in detectors.values():
        detect(image)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in detectors}
    for _ in range(repeats):
        for name, detect in detectors.items():
            t0 = time.perf_counter()
            detect(image)
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


# ------------------------------------------------------------------------------ main


@dataclass
class Tally:
    crops: int = 0
    crop_hits: int = 0
    frames: int = 0
    frame_hits: int = 0
    extra: int = 0
    small_extra: int = 0
    per_video: dict[str, list[int]] = field(default_factory=dict)
    missed: set[str] = field(default_factory=set)  # crops without a centred box
    ms_1080p: float = float("nan")
    ms_crop: float = float("nan")
    ms_empty: float = float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crops", type=int, default=2000, help="DFDC crops for crop recall")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=31, help="timed calls per image")
    parser.add_argument("--only", default=None, help="comma-separated candidate names")
    parser.add_argument("--per-video", action="store_true", help="also print frame hits per video")
    parser.add_argument(
        "--pasted", action="store_true", help="also small faces pasted into large frames"
    )
    args = parser.parse_args(argv)

    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    names = args.only.split(",") if args.only else list(CANDIDATES)
    detectors: dict[str, DetectFn] = {}
    for name in names:
        try:
            detectors[name] = CANDIDATES[name]()
        except ImportError as exc:
            print(f"skipped {name}: not installed ({exc})")
        except AttributeError as exc:  # e.g. a mediapipe without the legacy solutions API
            print(f"skipped {name}: {exc}")
    tallies = {name: Tally() for name in detectors}

    crops = sample_crops(args.crops, args.seed)
    for path in crops:
        rgb = load_rgb(path)
        for name, detect in detectors.items():
            t = tallies[name]
            t.crops += 1
            hit = any(covers_centre(b, rgb.shape) for b in detect(rgb))
            t.crop_hits += hit
            if not hit:
                t.missed.add(path.name)

    frame_1080p = None
    for video, rgb in video_frames():
        if frame_1080p is None and rgb.shape[:2] == (1080, 1920):
            frame_1080p = rgb
        for name, detect in detectors.items():
            t = tallies[name]
            boxes = detect(rgb)
            t.frames += 1
            hits = t.per_video.setdefault(video, [0, 0])
            hits[1] += 1
            if boxes:
                t.frame_hits += 1
                hits[0] += 1
                main_side = max(max(b[2], b[3]) for b in boxes)
                t.extra += len(boxes) - 1
                t.small_extra += sum(max(b[2], b[3]) < 0.5 * main_side for b in boxes)

    crop_image = load_rgb(crops[0])
    empty_1080p = np.full((1080, 1920, 3), 128, np.uint8)  # no face: what a miss costs
    if frame_1080p is not None:
        for name, ms in median_ms(detectors, frame_1080p, args.repeats).items():
            tallies[name].ms_1080p = ms
    for name, ms in median_ms(detectors, crop_image, args.repeats).items():
        tallies[name].ms_crop = ms
    for name, ms in median_ms(detectors, empty_1080p, args.repeats).items():
        tallies[name].ms_empty = ms

    print()
    print(
        f"{len(crops)} DFDC crops (seed {args.seed}); "
        f"{next(iter(tallies.values())).frames if tallies else 0} video frames at 1 fps; "
        f"median of {args.repeats} timed calls, 1 thread"
    )
    header = (
        f"{'detector':<26} {'crop recall':>11} {'frame recall':>12} {'extra/frame':>11} "
        f"{'small extra/frame':>17} {'ms 1080p':>9} {'ms crop':>8} {'ms no face':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, t in tallies.items():
        with_face = max(1, t.frame_hits)
        print(
            f"{name:<26} {t.crop_hits / max(1, t.crops):>11.3f} "
            f"{t.frame_hits / max(1, t.frames):>12.3f} {t.extra / with_face:>11.2f} "
            f"{t.small_extra / with_face:>17.2f} {t.ms_1080p:>9.1f} {t.ms_crop:>8.1f} "
            f"{t.ms_empty:>10.1f}"
        )
    if tallies:
        first, reference = next(iter(tallies.items()))
        print(f"crops missed, and how many of them {first} found:")
        for name, t in tallies.items():
            print(f"  {name:<24} {len(t.missed):>4}  {len(t.missed - reference.missed):>4}")
    if args.per_video:
        for name, t in tallies.items():
            print(name, {v: f"{a}/{b}" for v, (a, b) in t.per_video.items()})
    if args.pasted:
        pasted_faces(detectors, crops[:20])
    return 0


def pasted_faces(detectors: dict[str, DetectFn], crops: list[Path]) -> None:
    """Small faces in large frames: each crop shrunk to a tight face of ``side`` px and pasted
    at one of 20 places into a grey canvas; found = a box overlaps it. Beside each count, the
    median time of one detect call on those canvases."""
    images = [load_rgb(p) for p in crops]
    print(f"pasted faces found, of {len(images)}:")
    sizes = [
        ((1080, 1920), (96, 144, 192)),
        ((3000, 4000), (96, 150, 200)),
        ((4000, 6000), (150, 300, 448)),
    ]
    for (height, width), sides in sizes:
        for side in sides:
            canvases = []
            for i, face in enumerate(images):
                canvas = np.full((height, width, 3), 90, np.uint8)
                x0, y0 = (width - side) * (i % 5) // 5, (height - side) * (i % 4) // 4
                canvases.append((canvas, _paste(canvas, face, x0, y0, side)))
            print(f"  {side} px face in {width}x{height}: {_found(detectors, canvases)}")
    group_photos(detectors, images)


def group_photos(detectors: dict[str, DetectFn], images: list[np.ndarray]) -> None:
    """Small faces beside a large one, in photos of the sizes phones and web pages show: a face
    of 40% of the photo's height at its top right, and a small face pasted at one of 20 places
    to its left; found = a box overlaps the small face (the large one is found every time)."""
    print(f"small faces beside a large one, found of {len(images)}:")
    sizes = [
        ((600, 800), (40, 64)),
        ((960, 1280), (48, 64, 96)),
        ((1350, 1080), (64, 96, 128)),
        ((1200, 1600), (64, 96, 128)),
    ]
    for (height, width), sides in sizes:
        large = int(0.4 * height)
        for side in sides:
            canvases = []
            for i, face in enumerate(images):
                canvas = np.full((height, width, 3), 90, np.uint8)
                _paste(canvas, images[(i + 1) % len(images)], width - large - 8, 8, large)
                free = width - large - 16 - side
                x0, y0 = free * (i % 5) // 5, (height - side) * (i % 4) // 4
                canvases.append((canvas, _paste(canvas, face, x0, y0, side)))
            where = f"{side} px face beside a {large} px one in {width}x{height}"
            print(f"  {where}: {_found(detectors, canvases)}")


def _paste(
    canvas: np.ndarray, face: np.ndarray, x0: int, y0: int, side: int
) -> tuple[int, int, int, int]:
    canvas[y0 : y0 + side, x0 : x0 + side] = cv2.resize(
        face, (side, side), interpolation=cv2.INTER_AREA
    )
    return (x0, y0, side, side)


def _found(
    detectors: dict[str, DetectFn], canvases: list[tuple[np.ndarray, tuple[int, int, int, int]]]
) -> str:
    """For each detector: how many of the pasted faces a box overlaps, and its median time."""
    row = []
    for name, detect in detectors.items():
        hits, seconds = 0, []
        for canvas, (x0, y0, side, _) in canvases:
            t0 = time.perf_counter()
            boxes = detect(canvas)
            seconds.append(time.perf_counter() - t0)
            hits += any(
                x < x0 + side and x + w > x0 and y < y0 + side and y + h > y0
                for x, y, w, h, _ in boxes
            )
        row.append(f"{name} {hits} ({1000 * float(np.median(seconds)):.0f} ms)")
    return ", ".join(row)


if __name__ == "__main__":
    sys.exit(main())
