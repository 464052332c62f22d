"""What keeping pictures for job pages costs the worker: a real 1080p DFDC frame shrunk and
encoded as a video frame (boxes drawn in) and as an image thumbnail, the time per picture and
its size.

    python -m bench.thumbnails
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from worker import thumbnails

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def main(repeat: int = 50) -> None:
    path = next(CLIP.glob("**/knqhpwoigk.mp4"))
    ok, frame = cv2.VideoCapture(str(path)).read()
    if not ok:
        raise SystemExit(f"cannot read a frame of {path}")
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    faces = [{"box": [988, 236, 128, 176], "prediction": "REAL"}]
    makers = {
        "video frame (480 px, boxes)": lambda: thumbnails.frame_image(rgb, faces),
        "image thumbnail (640 px)": lambda: thumbnails.image_thumbnail(rgb),
        "batch item (320 px)": lambda: thumbnails.image_thumbnail(rgb, thumbnails.ITEM_SIDE),
    }
    print(f"from a {rgb.shape[1]}x{rgb.shape[0]} frame, {repeat} times each")
    for name, make in makers.items():
        t0 = time.perf_counter()
        for _ in range(repeat):
            data = make()
        ms = (time.perf_counter() - t0) * 1000 / repeat
        print(f"  {name:28} {ms:6.2f} ms  {len(data) / 1000:6.1f} kB")


if __name__ == "__main__":
    main()
