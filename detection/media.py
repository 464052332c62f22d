"""Media: decode images, sample video frames (what an upload is: api/sniff.py).

Videos are decoded with PyAV (FFmpeg's libavcodec); see ``sample_frames`` for how.

Every failure raises a ``DetectionError`` subclass with a stable code, so a worker never dies on
bad media: the job fails with that code and message.
"""

from __future__ import annotations

import bisect
import io
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pillow_heif
from PIL import Image, ImageOps

from shared.errors import MediaError

log = logging.getLogger("rrr.media")

# HEIC/HEIF through Pillow like every other format (AVIF is Pillow's own). libheif applies the
# file's rotation and mirroring while decoding and resets the EXIF orientation to 1, so the
# exif_transpose below leaves such a picture alone.
pillow_heif.register_heif_opener()

# ---------------------------------------------------------------------------------- images


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
ROWS_PER_CHUNK = 256  # 16/32-bit images are scaled to 8 bits this many rows at a time


def _to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit greyscale scaled to 8 bits (not clipped to white), a few rows at a time so
    that no full-size floating-point copy is ever made."""
    array = np.asarray(image)
    peak = float(array.max()) if array.size else 0.0
    scale = np.float32(255.0 / peak if peak > 255 else 1.0)
    out = np.empty(array.shape, dtype=np.uint8)
    for top in range(0, array.shape[0], ROWS_PER_CHUNK):
        rows = array[top : top + ROWS_PER_CHUNK].astype(np.float32) * scale
        out[top : top + ROWS_PER_CHUNK] = np.clip(rows, 0, 255)
    return Image.fromarray(out)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in WIDE_MODES:
        image = _to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels carry arbitrary colour: show them on white, as a viewer would.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def _image_limits() -> tuple[int, int]:
    """(pixels an image is analysed at, at most; bytes its full-size raster may take)."""
    from shared.config import settings

    return settings.max_analysis_pixels, int(settings.image_memory_mb * 1024 * 1024)


def _raster_bytes(image: Image.Image) -> int:
    width, height = image.size
    per_band = 2 if image.mode.startswith("I;16") else 4 if image.mode in ("I", "F") else 1
    return width * height * len(image.getbands()) * per_band


def _reduced(image: Image.Image, pixels: int) -> Image.Image:
    """The image shrunk by a whole factor (box average) to at most ``pixels`` pixels."""
    width, height = image.size
    if width * height <= pixels:
        return image
    factor = math.ceil(math.sqrt(width * height / pixels))
    while math.ceil(width / factor) * math.ceil(height / factor) > pixels:
        factor += 1
    try:
        return image.reduce(factor)
    except ValueError:  # modes reduce() does not take (palette, 1-bit, 16-bit): convert first
        return _to_rgb(image).reduce(factor)


def decode_image(path: Path | bytes, max_pixels: int) -> np.ndarray:
    """Decode an image file (a path, or its bytes as read from an object store) into an RGB
    uint8 array (H, W, 3), EXIF orientation applied.

    An image above RRR_MAX_ANALYSIS_PIXELS is analysed at a reduced size: a JPEG is decoded
    at 1/2, 1/4 or 1/8 scale by the decoder itself (draft mode), anything else is reduced
    right after decoding. A full-size raster above RRR_IMAGE_MEMORY_MB is refused
    (``image_too_large``) before any pixel is decoded: the worker's memory stays bounded."""
    analysis_pixels, memory_bytes = _image_limits()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as image:
                width, height = image.size
                if width < 1 or height < 1:
                    raise MediaError("the image has no pixels", code="image_empty")
                if width * height > max_pixels:
                    raise MediaError(
                        f"the image is {width}x{height} pixels, above the limit of "
                        f"{max_pixels:,} pixels; downscale it and try again",
                        code="image_too_large",
                    )
                if image.format == "JPEG" and width * height > analysis_pixels:
                    scale = math.sqrt(analysis_pixels / (width * height))
                    wanted = (max(1, int(width * scale)), max(1, int(height * scale)))
                    image.draft("RGB" if image.mode == "YCbCr" else image.mode, wanted)
                if _raster_bytes(image) > memory_bytes:
                    raise MediaError(
                        f"the image is {width}x{height} pixels in mode {image.mode}, too much "
                        "memory to decode safely; downscale it and try again",
                        code="image_too_large",
                    )
                image.load()
                image = _reduced(image, analysis_pixels)
                image = ImageOps.exif_transpose(image)
                rgb = _to_rgb(image)
                return np.array(rgb, dtype=np.uint8)
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(
            "the image declares dimensions too large to decode safely", code="image_too_large"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        # the decoder's own text names our storage path: keep it out of what clients see
        raise MediaError(
            "the image could not be decoded: the file is corrupt, truncated or not really an image",
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


SAMPLING_MODES = ("exact", "keyframes")  # as shared.models.Sampling, which the API checks


@dataclass(frozen=True)
class SampledFrame:
    index: int  # sample number k: 0, 1, 2, ... (keyframe sampling leaves gaps)
    frame_number: int  # position in the video at its frame rate, from the frame's timestamp
    timestamp_s: float
    rgb: np.ndarray  # (H, W, 3) uint8, rotation metadata already applied


class _Video:
    """One open video stream. Frames are numbered from their timestamps (pts), so a decode
    that starts after a seek numbers them exactly as a decode from the start does."""

    SEEK_TRIES = 3  # seeks that land after the wanted frame; then decode from the start

    def __init__(self, path: Path, fps: float | None, threads: int) -> None:
        self.path, self.threads = path, threads
        self._open()
        stream = self.stream
        if fps is None:
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
        self.fps = fps
        self.start, self.time_base = stream.start_time, stream.time_base
        # timestamps are usable when the stream says where it starts and in what unit
        self.timed = self.start is not None and bool(self.time_base) and fps > 0

    def _open(self) -> None:
        try:
            self.container = av.open(str(self.path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise MediaError(
                "the video could not be opened (corrupt, truncated or an unsupported codec)",
                code="video_corrupt",
            ) from exc
        if not self.container.streams.video:
            self.container.close()
            raise MediaError("the file has no video track", code="video_corrupt")
        self.stream = self.container.streams.video[0]
        # AUTO: frame threads (H.264 decodes several frames at once) where the codec allows
        self.stream.thread_type = "AUTO"
        self.stream.thread_count = self.threads

    def close(self) -> None:
        self.container.close()

    def number(self, frame: av.VideoFrame, previous: int) -> int:
        if not self.timed or frame.pts is None:
            return previous + 1
        return round(float((frame.pts - self.start) * self.time_base) * self.fps)

    def rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """The frame as RGB, turned as its display matrix says (phones store portrait video as
        rotated landscape); ``rotation`` is counter-clockwise degrees, as np.rot90 turns."""
        rgb = frame.to_ndarray(format="rgb24")
        turns = round((frame.rotation or 0) / 90) % 4
        return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb

    def _number_at(self, timestamp: int) -> int:
        return round(float((timestamp - self.start) * self.time_base) * self.fps)

    def _decoded(
        self, keyframes_only: bool = False, wanted: Callable[[], int] | None = None
    ) -> Iterator[av.VideoFrame]:
        """Frames in display order. A decoding error ends the stream, as the end of the file
        would.

        ``keyframes_only``: only keyframe packets reach the decoder (the others are read from
        the file, never decoded). ``wanted``: the frame number the caller needs next; frames
        before it are not all decoded: packets are held back until one decoded at or after
        that frame's time shows that it lies in the current keyframe interval (then they are
        all decoded, in order), and a keyframe at or before it drops what was held and
        restarts the decoder there. Every frame from that keyframe on decodes exactly as in
        a decode from the start: frames decoded before a keyframe are shown before it."""
        try:
            if keyframes_only:
                for packet in self.container.demux(self.stream):
                    if packet.is_keyframe or packet.size == 0:  # size 0: the final flush packet
                        yield from packet.decode()
            elif wanted is None or not self.timed:
                yield from self.container.decode(self.stream)
            else:
                yield from self._decoded_from_keyframes(wanted)
        except av.FFmpegError as exc:
            log.warning("%s: decoding stopped early: %s", self.path.name, exc)

    def _decoded_from_keyframes(self, wanted: Callable[[], int]) -> Iterator[av.VideoFrame]:
        held: list[av.Packet] = []
        skipping = True  # False once a packet without timestamps makes holding back unsafe
        for packet in self.container.demux(self.stream):
            if packet.size == 0 or not skipping or packet.dts is None or packet.pts is None:
                skipping = skipping and packet.size != 0 and None not in (packet.dts, packet.pts)
                for earlier in held:
                    yield from earlier.decode()
                held.clear()
                yield from packet.decode()
                continue
            if packet.is_keyframe and self._number_at(packet.pts) <= wanted():
                held.clear()  # all shown before the wanted frame, like what the decoder holds
                self.stream.codec_context.flush_buffers()
            held.append(packet)
            if self._number_at(packet.dts) >= wanted():
                for earlier in held:
                    yield from earlier.decode()
                held.clear()

    def frames_from(
        self, wanted: Callable[[], int], keyframes_only: bool
    ) -> Iterator[tuple[int, Any]]:
        """(frame number, frame) from the keyframe at or before frame ``wanted()`` on. Seeks
        when the timestamps allow; a seek must land at or before it (a container's index can
        point just after it, MPEG-TS has no index at all), else it is retried further back,
        and finally the video is decoded from the start. ``wanted`` is asked again as frames
        are taken (see ``_decoded``)."""
        first = wanted()
        want = None if keyframes_only else wanted
        if first > 0 and self.timed:
            for attempt in range(self.SEEK_TRIES):
                back_s = first / self.fps - attempt * 2.0
                if back_s <= 0:
                    break
                offset = round(back_s / float(self.time_base))
                try:
                    self.container.seek(self.start + offset, stream=self.stream, backward=True)
                except av.FFmpegError:
                    break
                frames = self._decoded(keyframes_only, want)
                head = next(frames, None)
                if head is None or head.pts is None:
                    break
                n = self.number(head, -1)
                if n <= first:
                    yield n, head
                    for frame in frames:
                        n = self.number(frame, n)
                        yield n, frame
                    return
            self.close()  # an unreliable seek: start over from the first frame
            self._open()
        n = -1
        for frame in self._decoded(keyframes_only, want):
            n = self.number(frame, n)
            yield n, frame


def _decode_threads() -> int:
    from shared.config import settings

    return settings.decode_threads


def probe_video(path: Path) -> VideoInfo:
    """Frame rate, frame count and display size (rotation applied) of a video; decodes its
    first frame, so a video whose frames cannot be decoded is refused here."""
    video = _Video(path, None, _decode_threads())
    try:
        stream = video.stream
        fps = video.fps
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            raise MediaError("the video reports no usable frame rate", code="video_bad_fps")
        count = int(stream.frames or 0)
        if count <= 0:
            # no frame count in the header: estimate it from the duration, as FFmpeg does
            if stream.duration is not None and stream.time_base:
                seconds = float(stream.duration * stream.time_base)
            else:
                seconds = (video.container.duration or 0) / av.time_base
            count = round(seconds * fps)
        width, height = stream.codec_context.width, stream.codec_context.height
        first = next(video._decoded(), None)
    finally:
        video.close()
    if count <= 0 or width <= 0 or height <= 0 or first is None:
        raise MediaError("the video contains no frames", code="video_no_frames")
    if round((first.rotation or 0) / 90) % 2:
        width, height = height, width
    return VideoInfo(fps=fps, frame_count=count, width=width, height=height)


def stream_frames(path: Path, info: VideoInfo) -> tuple[list[int], list[int]] | None:
    """The numbers of every frame and of every keyframe in the video, sorted, from the packets'
    timestamps (read, never decoded: cheap even for long files); None when the stream has no
    usable timestamps."""
    video = _Video(path, info.fps, 1)
    frames: list[int] = []
    keyframes: list[int] = []
    try:
        if not video.timed:
            return None
        for packet in video.container.demux(video.stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                return None
            n = video._number_at(packet.pts)
            frames.append(n)
            if packet.is_keyframe:
                keyframes.append(n)
    except av.FFmpegError:
        pass  # a damaged tail: plan from what was read; decoding stops there too
    finally:
        video.close()
    return sorted(frames), sorted(keyframes)


def planned_samples(
    info: VideoInfo,
    sample_fps: float,
    max_frames: int,
    sampling: str,
    stream: tuple[list[int], list[int]] | None,
) -> list[int]:
    """The sample indices ``sample_frames`` yields a row for, decided from ``stream_frames``
    without decoding (all samples when the timestamps are unknown). A sparse video (frames far
    apart, whatever its declared duration) has as many samples as it has frames to show."""
    total = info.expected_samples(sample_fps, max_frames)
    if stream is None:
        return list(range(total))
    frames, keyframes = stream
    out = []
    for k in range(total):
        target = info.frame_for_sample(k, sample_fps)
        if sampling == "keyframes":
            i = bisect.bisect_right(keyframes, target) - 1
            before = info.frame_for_sample(k - 1, sample_fps) if k > 0 else -1
            if i >= 0 and keyframes[i] > before:
                out.append(k)
        else:
            i = bisect.bisect_left(frames, target)
            if i == len(frames):
                break
            if frames[i] < info.frame_for_sample(k + 1, sample_fps):
                out.append(k)
    return out


def sample_frames(
    path: Path,
    info: VideoInfo,
    sample_fps: float,
    max_frames: int,
    first: int = 0,
    end: int | None = None,
    sampling: str = "exact",
) -> Iterator[SampledFrame]:
    """Yield samples ``first`` .. ``end - 1`` (at most ``max_frames`` in all) at ``sample_fps``.

    ``exact``: sample k is ``info.frame_for_sample(k)``, the first frame at or after its time,
    yielded only if it lies before sample k + 1's time (so each frame is analysed at most once,
    however far it is from the one before). One seek to the keyframe before the
    first wanted frame, then the file is read in order (no more seeks: seeking before each
    sample costs far more with H.264); frames are decoded (frame threads) from the last
    keyframe before each wanted frame, so keyframe intervals with no sample in them are never
    decoded, and only sampled frames are converted to RGB.

    ``keyframes`` (fast, for long videos): sample k is the last keyframe at or before
    ``frame_for_sample(k)``, and is skipped when that keyframe is at or before
    ``frame_for_sample(k - 1)`` (an earlier sample has it). Only keyframes are decoded, so
    frames are as far apart as the video's keyframes, and ``index`` has gaps where samples
    were skipped. Both rules depend on k alone: segments give the rows of a single pass.
    """
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"sampling must be one of {SAMPLING_MODES}, not {sampling!r}")
    end = min(info.expected_samples(sample_fps, max_frames), end if end is not None else 1 << 62)
    if first >= end:
        return
    video = _Video(path, info.fps, _decode_threads())
    yielded = 0
    try:
        if sampling == "keyframes":
            samples = _keyframe_samples(video, info, sample_fps, first, end)
        else:
            samples = _exact_samples(video, info, sample_fps, first, end)
        for sample in samples:
            yield sample
            yielded += 1
    finally:
        video.close()
    if yielded == 0 and first == 0:
        raise MediaError("no frame of the video could be decoded", code="video_no_frames")


def _exact_samples(
    video: _Video, info: VideoInfo, sample_fps: float, first: int, end: int
) -> Iterator[SampledFrame]:
    k = first
    target = info.frame_for_sample(k, sample_fps)
    # the decoder asks for the wanted frame as it goes: ``target`` read as it changes
    for n, frame in video.frames_from(lambda: target, keyframes_only=False):  # noqa: B023
        if n < target:
            continue
        rgb = None
        # the first frame at or after the sample's time, kept only while it lies before the
        # next sample's time: after a gap in the timestamps the frame is analysed once (as the
        # last sample the gap covers), not once per sample, so empty stretches cost nothing
        while k < end and n >= target:
            following = info.frame_for_sample(k + 1, sample_fps)
            if n < following:
                rgb = video.rgb(frame) if rgb is None else rgb
                yield SampledFrame(k, n, round(n / info.fps, 3), rgb)
            k, target = k + 1, following
        if k >= end:
            return


def _keyframe_samples(
    video: _Video, info: VideoInfo, sample_fps: float, first: int, end: int
) -> Iterator[SampledFrame]:
    k = first
    target = info.frame_for_sample(k, sample_fps)
    before = info.frame_for_sample(k - 1, sample_fps) if k > 0 else -1
    held: tuple[int, Any] | None = None  # the last keyframe at or before ``target``

    def settle(next_n: int) -> Iterator[SampledFrame]:
        """Samples whose keyframe is ``held``: all those before the keyframe at ``next_n``."""
        nonlocal k, target, before
        while k < end and next_n > target:
            if held is not None and held[0] > before:
                yield SampledFrame(k, held[0], round(held[0] / info.fps, 3), video.rgb(held[1]))
            before, k = target, k + 1
            target = info.frame_for_sample(k, sample_fps)

    for n, frame in video.frames_from(lambda: target, keyframes_only=True):  # noqa: B023
        yield from settle(n)
        if k >= end:
            return
        held = (n, frame)
    yield from settle(1 << 62)
