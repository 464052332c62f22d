"""What the service does with media: decode -> find faces -> score every face -> verdict.

No Celery and no database here: the worker feeds paths in and writes results out, so the same
functions serve the worker, evaluation, benchmarks and the command line.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detection.detector import Detector, get_detector
from detection.explain import overlay, png_bytes
from detection.faces import FaceDetector, crop_face, crop_region
from detection.media import VideoInfo, decode_image, probe_video, sample_frames
from detection.model import fake_probability
from detection.provenance import read_provenance
from detection.purify import purified_scores
from shared.config import settings
from shared.errors import DetectionError

log = logging.getLogger("rrr.detection")

BATCH_IMAGES = 16  # images of a batch job decoded, then scored together

# progress callback: (done, total) -> False when the job should stop (e.g. it was canceled)
ProgressFn = Callable[[int, int], bool]
# per-frame rows callback, called once per sampled frame: rows -> False when the job should stop
FramesFn = Callable[[list[dict[str, Any]]], bool]


class Canceled(Exception):
    """The job stopped being ours (canceled or taken over) while it ran."""


@dataclass
class Analyzer:
    detector: Detector
    faces: FaceDetector
    threshold: float
    face_padding: float
    max_image_pixels: int
    # random purified views averaged per face (detection/purify.py); 0 scores crops as they are
    purify_views: int = 0
    # a score closer than this to the threshold is UNCERTAIN: the model's own band, fitted on
    # validation data (weights/README.md); 0 always decides
    unsure_margin: float = 0.0
    # a face whose box is narrower or shorter than this many pixels is UNCERTAIN and marked
    # too_small, whatever its score: shrunk that far, real faces score as fakes
    # (docs/robustness.md); 0 judges every face
    min_face_px: int = 0
    # seconds spent per stage (decode, detect, infer) since this analyzer was made: for logs
    # and benchmarks
    stage_seconds: Counter = field(default_factory=Counter)
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    # observers the worker sets to keep small pictures for the job's page: every decoded image
    # (by its path) and every scored video frame (sample index, pixels, faces)
    on_image: Callable[[Path | bytes, np.ndarray], None] | None = None
    on_frame: Callable[[int, np.ndarray, list[dict[str, Any]]], None] | None = None

    def verdict(self, probability_fake: float) -> str:
        if abs(probability_fake - self.threshold) < self.unsure_margin:
            return "UNCERTAIN"
        return "FAKE" if probability_fake >= self.threshold else "REAL"

    def verdict_fields(self, probability_fake: float | None) -> dict[str, Any]:
        """The verdict of an image or a video from its P(FAKE); None (no face) is said
        explicitly."""
        p = probability_fake
        if p is None:
            return {
                "prediction": "NO_FACE",
                "probability_fake": None,
                "probability_real": None,
                "confidence": None,
            }
        return {
            "prediction": self.verdict(p),
            "probability_fake": round(p, 6),
            "probability_real": round(1.0 - p, 6),
            "confidence": round(max(p, 1.0 - p), 6),
        }

    def faces_in(
        self, images: list[np.ndarray], photos: bool = False
    ) -> list[list[dict[str, Any]]]:
        """Every face in each RGB image with its score. The faces of all the images go through
        the model as one batch (a batch of images, or several sampled frames of a video).
        ``photos``: still images, searched more thoroughly than video frames when large."""
        t0 = time.perf_counter()
        boxes = [[face.box for face in self.faces.detect(rgb, photos)] for rgb in images]
        crops = [
            crop_face(rgb, box, self.face_padding)
            for rgb, found in zip(images, boxes, strict=True)
            for box in found
        ]
        t1 = time.perf_counter()
        config = self.detector.config
        probs = purified_scores(
            self.detector.class_probabilities, crops, self.purify_views, self.rng, config.input_size
        )
        scored = iter(zip(fake_probability(probs, config).tolist(), probs.tolist(), strict=True))
        self.stage_seconds["detect"] += t1 - t0
        self.stage_seconds["infer"] += time.perf_counter() - t1
        return [[self._face(box, *next(scored)) for box in found] for found in boxes]

    def _face(
        self, box: tuple[int, int, int, int], p: float, class_probs: list[float]
    ) -> dict[str, Any]:
        face: dict[str, Any] = {
            "box": [int(v) for v in box],
            "probability_fake": round(p, 6),
            "prediction": self.verdict(p),
        }
        if min(box[2], box[3]) < self.min_face_px:
            face["prediction"], face["too_small"] = "UNCERTAIN", True
        labels = self.detector.config.labels
        if self.detector.config.signals:
            # each kind of fake the model tells apart, as a share of probability_fake's mass
            face["signals"] = {
                label.lower(): round(q, 6)
                for label, q in zip(labels, class_probs, strict=True)
                if label != "REAL"
            }
        return face

    def decision(self) -> dict[str, Any]:
        """The decision rule every result states: threshold and the unsure band around it."""
        return {"threshold": self.threshold, "unsure_margin": self.unsure_margin}

    def summarize_faces(self, faces: list[dict[str, Any]]) -> dict[str, Any]:
        """The image verdict follows its most suspicious face large enough to judge; faces that
        are all too small make it UNCERTAIN; no face is said explicitly."""
        top = max(judged_or_all(faces), key=lambda face: face["probability_fake"], default=None)
        result = {
            **self.verdict_fields(top["probability_fake"] if top else None),
            **self.decision(),
            "faces": faces,
        }
        if faces and not any(map(judged, faces)):
            result["prediction"], result["too_small"] = "UNCERTAIN", True
        if top and "signals" in top:
            result["signals"] = top["signals"]
        return result

    # ------------------------------------------------------------------------------ images

    def heatmap_png(self, rgb: np.ndarray, boxes: list[list[int]]) -> bytes | None:
        """The image with a Grad-CAM overlay on every face, at the finer 8 px step
        (detection/explain.py); None when it has no face."""
        drawn = self.heatmap_rgb(rgb, boxes)
        return png_bytes(drawn) if drawn is not None else None

    def heatmap_rgb(self, rgb: np.ndarray, boxes: list[list[int]]) -> np.ndarray | None:
        """``rgb`` with a Grad-CAM overlay on every face box; None when there is none."""
        maps = []
        for box in boxes:
            region = crop_region(rgb.shape, tuple(box), self.face_padding)
            maps.append((region, self.detector.fine_gradcam(rgb, region)))
        return overlay(rgb, maps) if maps else None

    def decode(self, path: Path | bytes) -> np.ndarray:
        t0 = time.perf_counter()
        rgb = decode_image(path, self.max_image_pixels)
        self.stage_seconds["decode"] += time.perf_counter() - t0
        if self.on_image is not None:
            self.on_image(path, rgb)
        return rgb

    def image_result(self, rgb: np.ndarray, faces: list[dict[str, Any]]) -> dict[str, Any]:
        result = self.summarize_faces(faces)
        result["width"], result["height"] = int(rgb.shape[1]), int(rgb.shape[0])
        result["model"] = self.detector.info.as_dict()
        return result

    def analyze_image(
        self,
        path: Path | bytes,
        explain: bool = False,
        mime: str | None = None,
        provenance: bool = True,
    ) -> tuple[dict[str, Any], bytes | None]:
        """(result, Grad-CAM overlay PNG when ``explain`` and a face was found). With
        ``provenance``, the result says what the file declares about its origin (``mime``: the
        upload's sniffed type, a hint for the reader)."""
        t0 = time.perf_counter()
        before = Counter(self.stage_seconds)
        rgb = self.decode(path)
        # after decoding: the file is then in the page cache, so this stage never pays its read
        declared = file_provenance(path, mime) if provenance else None
        result = self.image_result(rgb, self.faces_in([rgb], photos=True)[0])
        spent = self.stage_seconds - before
        result["timings_ms"] = {
            **{stage: round(spent[stage] * 1000, 1) for stage in ("decode", "detect", "infer")},
            "total": round((time.perf_counter() - t0) * 1000, 1),
        }
        if declared is not None:
            result["timings_ms"]["provenance"] = round(declared.pop("elapsed_ms"), 1)
            result["provenance"] = declared
        heatmap = None
        if explain:
            t2 = time.perf_counter()
            heatmap = self.heatmap_png(rgb, [face["box"] for face in result["faces"]])
            result["timings_ms"]["explain"] = round((time.perf_counter() - t2) * 1000, 1)
        return result, heatmap

    def analyze_batch(
        self,
        items: list[tuple[str, Path | bytes | None, DetectionError | None]],
        progress: ProgressFn,
        mimes: list[str | None] | None = None,
    ) -> dict[str, Any]:
        """items: (filename, path, error found at upload); one bad file never fails the batch.
        Images are decoded BATCH_IMAGES at a time so their faces are scored together. Every
        item with a stored file says what the file declares about its origin (``provenance``;
        ``mimes``: the uploads' sniffed types, hints for the reader)."""
        results: list[dict[str, Any]] = []
        for start in range(0, len(items), BATCH_IMAGES):
            entries, decoded = [], []
            for index, (filename, path, upload_error) in enumerate(
                items[start : start + BATCH_IMAGES], start
            ):
                entry: dict[str, Any] = {"index": index, "filename": filename}
                try:
                    if upload_error is not None:
                        raise upload_error
                    assert path is not None
                    decoded.append((entry, self.decode(path)))
                except DetectionError as exc:
                    entry["error"] = {"code": exc.code, "message": exc.message}
                if path is not None and upload_error is None:  # read after decoding: cached
                    entry["provenance"] = file_provenance(path, mimes[index] if mimes else None)
                entries.append(entry)
            faces = self.faces_in([rgb for _, rgb in decoded], photos=True)
            for (entry, rgb), found in zip(decoded, faces, strict=True):
                entry.update(self.image_result(rgb, found))
            results.extend(entries)
            if not progress(len(results), len(items)):
                raise Canceled()
        ok = [r for r in results if "error" not in r]
        summary = {
            "total": len(results),
            "processed": len(ok),
            "failed": len(results) - len(ok),
            "fake": sum(r["prediction"] == "FAKE" for r in ok),
            "real": sum(r["prediction"] == "REAL" for r in ok),
            "no_face": sum(r["prediction"] == "NO_FACE" for r in ok),
            "uncertain": sum(r["prediction"] == "UNCERTAIN" for r in ok),
        }
        return {
            "items": results,
            "summary": summary,
            **self.decision(),
            "model": self.detector.info.as_dict(),
        }

    # ------------------------------------------------------------------------------ videos

    def analyze_segment(
        self,
        path: Path,
        info: VideoInfo,
        sample_fps: float,
        max_frames: int,
        first: int,
        end: int | None,
        on_frames: FramesFn,
        sampling: str = "exact",
    ) -> None:
        """Score samples ``first`` .. ``end - 1`` of a video, handing each frame's row to
        ``on_frames`` as soon as it is scored, so progress moves frame by frame (the caller
        decides how often to write it down). Scoring each frame's faces on their own instead of
        8 frames' together added about 0.1 s of inference to 8 s for 92 frames of four DFDC
        clips (one inference thread, shared CPU): decoding and face detection dominate.
        ``sampling``: ``exact`` or ``keyframes`` (detection/media.py, sample_frames)."""
        frames = sample_frames(path, info, sample_fps, max_frames, first, end, sampling)
        while True:
            t0 = time.perf_counter()
            frame = next(frames, None)
            self.stage_seconds["decode"] += time.perf_counter() - t0
            if frame is None:
                break
            (faces,) = self.faces_in([frame.rgb])
            if self.on_frame is not None:
                self.on_frame(frame.index, frame.rgb, faces)
            row = {
                "index": frame.index,
                "frame_number": frame.frame_number,
                "timestamp_s": frame.timestamp_s,
                "probability_fake": frame_score(faces),
                "faces": faces,
            }
            if not on_frames([row]):
                raise Canceled()

    def video_result(
        self,
        info: VideoInfo,
        frames: list[dict[str, Any]],
        sample_fps: float,
        sampling: str = "exact",
    ) -> dict[str, Any]:
        """The verdict and facts of a whole video from all its per-frame rows, in order."""
        rate = info.effective_sample_fps(sample_fps)
        result = self.aggregate_video(frames, rate)
        result.update(
            {
                "frames_total": info.frame_count,
                "frames_analyzed": len(frames),
                "duration_s": round(info.duration_s, 3),
                "fps": round(info.fps, 3),
                "sample_fps": rate,
                "sampling": sampling,
                "width": info.width,
                "height": info.height,
                "model": self.detector.info.as_dict(),
            }
        )
        return result

    def analyze_video(
        self,
        path: Path,
        sample_fps: float,
        max_frames: int,
        progress: ProgressFn,
        sampling: str = "exact",
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A whole video in this process: (result, per-frame rows). The service splits long
        videos into segments instead (worker/videos.py); evaluation and tests use this."""
        t0 = time.perf_counter()
        info = probe_video(path)
        total = info.expected_samples(sample_fps, max_frames)
        if not progress(0, total):
            raise Canceled()
        frames: list[dict[str, Any]] = []

        def collect(rows: list[dict[str, Any]]) -> bool:
            frames.extend(rows)
            # the container's frame count can be short; never report done > total
            return progress(len(frames), max(total, len(frames)))

        self.analyze_segment(path, info, sample_fps, max_frames, 0, None, collect, sampling)
        result = self.video_result(info, frames, sample_fps, sampling)
        result["timings_ms"] = {"total": round((time.perf_counter() - t0) * 1000, 1)}
        return result, frames

    def aggregate_video(self, frames: list[dict[str, Any]], sample_fps: float) -> dict[str, Any]:
        """Video verdict: the mean, over sampled frames with a face large enough to judge, of
        each frame's score (``frame_score``); when every face was too small, the same mean over
        the frames with faces, said UNCERTAIN. Segments: runs of consecutive judged frames at or
        above threshold."""
        with_faces = [f for f in frames if f["probability_fake"] is not None]
        scored = [f for f in with_faces if frame_judged(f)]
        segments = []
        run: list[dict[str, Any]] = []
        for frame in frames + [None]:  # sentinel closes the last run
            p = frame["probability_fake"] if frame is not None else None
            if p is not None and p >= self.threshold and frame_judged(frame):
                run.append(frame)
                continue
            if run:
                mean = sum(f["probability_fake"] for f in run) / len(run)
                segments.append(
                    {
                        "start_s": run[0]["timestamp_s"],
                        "end_s": round(run[-1]["timestamp_s"] + 1.0 / sample_fps, 3),
                        "mean_probability_fake": round(mean, 6),
                    }
                )
                run = []
        base = {
            **self.decision(),
            "aggregation": "mean_of_frame_max",
            "frames_with_faces": len(with_faces),
            "suspicious_segments": segments,
        }
        pool = scored or with_faces
        p = float(np.mean([f["probability_fake"] for f in pool])) if pool else None
        result = {**self.verdict_fields(p), **base}
        if with_faces and not scored:
            result["prediction"], result["too_small"] = "UNCERTAIN", True
        return result


def judged(face: dict[str, Any]) -> bool:
    """Whether a face was large enough to be judged (``Analyzer.min_face_px``)."""
    return not face.get("too_small", False)


def judged_or_all(faces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The faces large enough to judge; all of them when none is."""
    return [face for face in faces if judged(face)] or faces


def frame_score(faces: list[dict[str, Any]]) -> float | None:
    """A sampled frame's P(FAKE): its most suspicious face large enough to judge (its most
    suspicious face when none is); None without a face."""
    return max((face["probability_fake"] for face in judged_or_all(faces)), default=None)


def frame_judged(frame: dict[str, Any]) -> bool:
    """Whether a frame row holds a face large enough to judge (rows without face details,
    as evaluation builds them, count as judged)."""
    faces = frame.get("faces")
    return not faces or any(map(judged, faces))


_face_detector: FaceDetector | None = None
_anchors: tuple[tuple[str, float], str] | None = None  # ((path, mtime), PEM text)


def trust_anchors() -> str | None:
    """The PEM text of RRR_C2PA_TRUST_ANCHORS (re-read when the file changes); None when unset.
    Raises OSError when the file cannot be read."""
    global _anchors
    path = settings.c2pa_trust_anchors
    if path is None:
        return None
    key = (str(path), path.stat().st_mtime)
    if _anchors is None or _anchors[0] != key:
        _anchors = (key, path.read_text(encoding="utf-8", errors="replace"))
    return _anchors[1]


def file_provenance(path: Path | bytes, mime: str | None = None) -> dict[str, Any]:
    """What a stored file (a path, or its bytes) declares about its origin
    (detection/provenance.py), read against the configured trust anchors:
    ``Provenance.as_dict()``. Never raises: a hostile or unreadable file gives ``status:
    "unreadable"``, a trust-anchor file that cannot be read an error (and no signer is
    trusted)."""
    errors = []
    try:
        anchors = trust_anchors()
    except OSError as exc:
        anchors = None
        log.warning("RRR_C2PA_TRUST_ANCHORS cannot be read: %s", exc.__class__.__name__)
        errors.append(f"trust anchors could not be read ({exc.__class__.__name__}): none used")
    result = read_provenance(path, mime, trust_anchors=anchors).as_dict()
    result["errors"].extend(errors)
    return result


def get_analyzer(threshold: float | None = None) -> Analyzer:
    """The analyzer of this process, from settings; the model and face detector are loaded
    once per process and shared. ``threshold`` overrides RRR_THRESHOLD and the model's own."""
    global _face_detector
    detector = get_detector(settings.weights_path, settings.inference_threads, settings.engine)
    if _face_detector is None:
        _face_detector = FaceDetector()
    return analyzer_around(
        detector,
        _face_detector,
        threshold=threshold if threshold is not None else settings.threshold,
        unsure_margin=settings.unsure_margin,
    )


def analyzer_around(
    detector: Detector,
    faces: FaceDetector,
    threshold: float | None = None,
    unsure_margin: float | None = None,
) -> Analyzer:
    """An analyzer of ``detector`` with the service's face, input and defence settings: the one
    way the service, evaluation and robustness runs build one. The decision rule is the model's
    own unless ``threshold`` or ``unsure_margin`` is given."""
    return Analyzer(
        detector=detector,
        faces=faces,
        threshold=float(detector.config.threshold if threshold is None else threshold),
        face_padding=settings.face_padding,
        max_image_pixels=settings.max_image_pixels,
        purify_views=settings.purify_views,
        min_face_px=settings.min_face_px,
        unsure_margin=detector.config.unsure_margin if unsure_margin is None else unsure_margin,
    )
