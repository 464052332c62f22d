"""Media: decide what an upload is from its bytes, decode images, sample video frames.

Every failure raises a ``DetectionError`` subclass with a stable code, so a worker never dies on
bad media: the job fails with that code and message.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import filetype
import numpy as np
from PIL import Image, ImageOps

from shared.errors import BadRequest, MediaError, UnsupportedMedia

IMAGE_TYPES = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/gif": "gif",
    "image/tiff": "tif",
}
VIDEO_TYPES = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/x-matroska": "mkv",
    "video/webm": "webm",
    "video/x-msvideo": "avi",
    "video/x-m4v": "m4v",
    "video/mpeg": "mpg",
}
SNIFF_BYTES = 8192


@dataclass(frozen=True)
class MediaType:
    kind: str  # "image" or "video"
    mime: str
    extension: str


def sniff(head: bytes) -> MediaType:
    """Classify an upload by its leading bytes (never by its file name)."""
    if not head:
        raise BadRequest("the uploaded file is empty", code="empty_file")
    guess = filetype.guess(head)
    if guess is not None and guess.mime in IMAGE_TYPES:
        return MediaType("image", guess.mime, IMAGE_TYPES[guess.mime])
    if guess is not None and guess.mime in VIDEO_TYPES:
        return MediaType("video", guess.mime, VIDEO_TYPES[guess.mime])
    what = f"{guess.mime} " if guess is not None else ""
    raise UnsupportedMedia(
        f"unsupported {what}content: send a JPEG, PNG, WebP, BMP, GIF or TIFF image, "
        "or an MP4, MOV, MKV, WebM or AVI video",
        code="unsupported_media_type",
    )


# ---------------------------------------------------------------------------------- images


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping everything to white.
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() if array.size else 0.0
        scale = 255.0 / peak if peak > 255 else 1.0
        image = Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels carry arbitrary colour: show them on white, as a viewer would.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def decode_image(path: Path, max_pixels: int) -> np.ndarray:
    """Decode an image file into an RGB uint8 array (H, W, 3), EXIF orientation applied."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width < 1 or height < 1:
                    raise MediaError("the image has no pixels", code="image_empty")
                if width * height > max_pixels:
                    raise MediaError(
                        f"the image is {width}x{height} pixels, above the limit of "
                        f"{max_pixels:,} pixels; downscale it and try again",
                        code="image_too_large",
                    )
                image.load()
                image = ImageOps.exif_transpose(image)
                rgb = _to_rgb(image)
                return np.asarray(rgb, dtype=np.uint8).copy()
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(
            "the image declares dimensions too large to decode safely", code="image_too_large"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        # the decoder's own text names our storage path: keep it out of what clients see
        raise MediaError(
            "the image could not be decoded: the file is corrupt, truncated or not really an "
            "image",
            code="image_corrupt",
        ) from exc


# ---------------------------------------------------------------------------------- videos


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frame_count: int  # as reported by the container; may be approximate
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0

    def effective_sample_fps(self, sample_fps: float) -> float:
        """Never sample faster than the video has frames."""
        return min(sample_fps, self.fps)

    def expected_samples(self, sample_fps: float, max_frames: int) -> int:
        """Sampled frames at t = 0, 1/sample_fps, ... up to the last frame's timestamp."""
        last_timestamp = (self.frame_count - 1) / self.fps
        rate = self.effective_sample_fps(sample_fps)
        return min(max_frames, math.floor(last_timestamp * rate + 1e-6) + 1)

    def frame_for_sample(self, k: int, sample_fps: float) -> int:
        """Sample k is the first frame whose timestamp is at or after k / sample_fps. A pure
        function of k, so any range of samples can be decoded on its own (a video segment) and
        give exactly the frames a decode of the whole video would."""
        rate = self.effective_sample_fps(sample_fps)
        return max(0, math.ceil(k * self.fps / rate - 1e-6))


@dataclass(frozen=True)
class SampledFrame:
    index: int  # 0, 1, 2, ... among sampled frames
    frame_number: int  # position in the decoded stream
    timestamp_s: float
    rgb: np.ndarray  # (H, W, 3) uint8, rotation metadata already applied


def _open_capture(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise MediaError(
            "the video could not be opened (corrupt, truncated or an unsupported codec)",
            code="video_corrupt",
        )
    # Honour rotation metadata (phones record portrait video as rotated landscape).
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return capture


def probe_video(path: Path) -> VideoInfo:
    capture = _open_capture(path)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    finally:
        capture.release()
    if not math.isfinite(fps) or fps <= 0 or fps > 1000:
        raise MediaError("the video reports no usable frame rate", code="video_bad_fps")
    if count <= 0 or width <= 0 or height <= 0:
        raise MediaError("the video contains no frames", code="video_no_frames")
    return VideoInfo(fps=fps, frame_count=count, width=width, height=height)


def _seek(capture: cv2.VideoCapture, frame_number: int) -> bool:
    """Position the decoder on ``frame_number`` (FFmpeg seeks to the keyframe before it and
    decodes forward); False when the container does not allow an exact seek."""
    if frame_number == 0:
        return True
    capture.set(cv2.CAP_PROP_POS_FRAMES, frame_number)
    return int(capture.get(cv2.CAP_PROP_POS_FRAMES)) == frame_number


def sample_frames(
    path: Path,
    info: VideoInfo,
    sample_fps: float,
    max_frames: int,
    first: int = 0,
    end: int | None = None,
) -> Iterator[SampledFrame]:
    """Yield samples ``first`` .. ``end - 1`` (at most ``max_frames`` in all) at
    ``sample_fps``: one seek to the first, then sequential decoding (grab every frame, retrieve
    only sampled ones), since seeking before each sample is several times slower with H.264."""
    end = min(info.expected_samples(sample_fps, max_frames), end if end is not None else 1 << 62)
    if first >= end:
        return
    capture = _open_capture(path)
    k = first
    target = info.frame_for_sample(k, sample_fps)
    yielded = 0
    try:
        frame_number = info.frame_for_sample(first, sample_fps)
        if not _seek(capture, frame_number):
            capture.release()  # inexact seek: decode from the start instead
            capture = _open_capture(path)
            frame_number = 0
        while k < end and capture.grab():
            if frame_number == target:
                ok, bgr = capture.retrieve()
                if ok and bgr is not None:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    yield SampledFrame(k, frame_number, round(frame_number / info.fps, 3), rgb)
                    yielded += 1
                k += 1
                target = info.frame_for_sample(k, sample_fps)
            frame_number += 1
    finally:
        capture.release()
    if yielded == 0 and first == 0:
        raise MediaError("no frame of the video could be decoded", code="video_no_frames")
