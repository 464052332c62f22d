"""Media built on the fly for tests: odd and hostile inputs are generated, never committed."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def image_bytes(
    mode: str = "RGB", size: tuple[int, int] = (64, 48), fmt: str = "PNG", **save: object
) -> bytes:
    rng = np.random.default_rng(0)
    if mode == "I;16":
        array = rng.integers(0, 65535, size=(size[1], size[0]), dtype=np.uint16)
        image = Image.fromarray(array)  # uint16 -> mode I;16
    else:
        array = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
        image = Image.fromarray(array).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def reencoded(path: Path, fmt: str, *, turned_left_with_orientation: bool = False) -> bytes:
    """The picture at ``path`` saved as ``fmt`` (HEIF and AVIF as phones save them). Optionally
    stored turned a quarter left with EXIF orientation 6 (rotate right to display), as a camera
    held sideways writes it; HEIF keeps that as its own rotation box."""
    import pillow_heif

    image = Image.open(path).convert("RGB")
    save: dict[str, object] = {"quality": 90}
    if turned_left_with_orientation:
        image = image.transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif[0x0112] = 6
        save["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    if fmt == "HEIF":  # encoded without registering HEIF with Pillow: the service must do that
        pillow_heif.from_pillow(image).save(buffer, **save)
    else:
        image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (32, 32), color) for color in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares enormous dimensions (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" * 1024)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def write_video(
    path: Path,
    frames: int = 30,
    fps: float = 10.0,
    size: tuple[int, int] = (160, 120),
    face_from: Path | None = None,
    rotate_90: bool = False,
) -> Path:
    """An MPEG-4 video of noise, or of a face crop pasted in the middle of each frame.

    ``rotate_90``: store the face turned on its side plus a display matrix saying "rotate by 90
    degrees", as phones do for portrait video; a player that honours it shows the face upright.
    """
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), "OpenCV could not open an MPEG-4 writer"
    rng = np.random.default_rng(1)
    face = cv2.imread(str(face_from)) if face_from is not None else None
    if face is not None and rotate_90:
        face = cv2.rotate(face, cv2.ROTATE_90_COUNTERCLOCKWISE)
    for _ in range(frames):
        frame = rng.integers(0, 40, size=(size[1], size[0], 3), dtype=np.uint8)
        if face is not None:
            side = min(size) * 3 // 4
            small = cv2.resize(face, (side, side))
            y0, x0 = (size[1] - side) // 2, (size[0] - side) // 2
            frame[y0 : y0 + side, x0 : x0 + side] = small
        writer.write(frame)
    writer.release()
    if rotate_90:
        _set_display_rotation(path)
    return path


def _set_display_rotation(path: Path) -> None:
    """Write a 90-degree display matrix into the MP4 track header (tkhd, version 0)."""
    import struct

    data = bytearray(path.read_bytes())
    tkhd = data.find(b"tkhd")
    assert tkhd > 0 and data[tkhd + 4] == 0, "expected a version 0 track header"
    # type, version+flags, 5 x 4-byte fields, 8 reserved, layer, group, volume, reserved
    matrix = tkhd + 4 + 4 + 20 + 8 + 8
    data[matrix : matrix + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))


def avi_bytes(
    frames: int = 5,
    fps: float = 10.0,
    size: tuple[int, int] = (64, 48),
    zero_rate: bool = False,
    tmp: Path | None = None,
) -> bytes:
    """A small MJPEG AVI; ``zero_rate`` patches its headers to declare 0 frames per second."""
    import struct
    import tempfile

    folder = Path(tmp or tempfile.mkdtemp())
    path = folder / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (i * 40) % 255, np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    if zero_rate:
        strh = data.find(b"strh")
        rate = strh + 8 + 4 + 4 + 4 + 2 + 2 + 4 + 4  # fccType ... dwInitialFrames, dwScale
        data[rate : rate + 4] = struct.pack("<I", 0)
        avih = data.find(b"avih")
        data[avih + 8 : avih + 12] = struct.pack("<I", 0)  # dwMicroSecPerFrame
    return bytes(data)


def sparse_mkv(path: Path, gap_s: int = 200_000, size: tuple[int, int] = (64, 48)) -> Path:
    """A Matroska video of two frames ``gap_s`` seconds apart (a few kilobytes on disk): a
    container whose declared duration promises far more than it holds."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1000)
        rng = np.random.default_rng(2)
        for pts_s in (0, gap_s):
            array = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = pts_s * 1000, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def big_jpeg(
    width: int = 7360, height: int = 4912, quality: int = 90, face_from: Path | None = None
) -> bytes:
    """A 36-megapixel JPEG of about a megabyte (smooth gradients compress well); with
    ``face_from``, that face crop enlarged in the middle."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = x
    rgb[..., 1] = y
    rgb[..., 2] = 128
    if face_from is not None:
        side = min(width, height) // 3
        face = np.asarray(Image.open(face_from).convert("RGB").resize((side, side)))
        top, left = (height - side) // 2, (width - side) // 2
        rgb[top : top + side, left : left + side] = face
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def big_png16(width: int = 6000, height: int = 6000) -> bytes:
    """A 16-bit greyscale PNG of 36 megapixels, small on disk (a smooth ramp)."""
    ramp = np.linspace(0, 65535, width, dtype=np.uint16)
    array = np.broadcast_to(ramp, (height, width)).copy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG", optimize=False, compress_level=9)
    return buffer.getvalue()
