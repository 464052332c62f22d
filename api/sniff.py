"""What an upload is, from its leading bytes alone (never its file name). Small on purpose: the
API classifies uploads without loading any decoder; decoding is the worker's (detection/media.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import filetype

from shared.errors import BadRequest, UnsupportedMedia

IMAGE_TYPES = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/gif": "gif",
    "image/tiff": "tif",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/avif": "avif",
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
        f"unsupported {what}content: send a JPEG, PNG, WebP, HEIC, AVIF, BMP, GIF or TIFF "
        "image, or an MP4, MOV, MKV, WebM or AVI video",
        code="unsupported_media_type",
    )
