"""Large images cost what their analysis needs, not what their pixels could: a 36-megapixel
JPEG and a 36-megapixel 16-bit PNG, each analysed with its heatmap in a fresh process (the
model loaded, as in a worker), peak at most 600 MB of resident memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from detection.media import decode_image
from shared.errors import MediaError
from tests.support import FACES, REPO, media

PEAK_LIMIT_MB = 600
PROBE = """
import json, sys
from pathlib import Path
import numpy as np
from detection.analyzer import get_analyzer
analyzer = get_analyzer()
def peak_mb():  # this process's resident high-water mark (ru_maxrss would include the parent's)
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024
analyzer.detector.score([np.zeros((64, 64, 3), np.uint8)])
loaded = peak_mb()
result, heatmap = analyzer.analyze_image(Path(sys.argv[1]), explain=True)
print(json.dumps({"loaded_mb": loaded,
                  "peak_mb": peak_mb(),
                  "size": [result["width"], result["height"]],
                  "prediction": result["prediction"], "heatmap": heatmap is not None}))
"""


def _peak(path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RRR_INFERENCE_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["jpeg-36mp-with-face", "png-16bit-36mp"])
def test_large_image_peak_memory(tmp_path, kind):
    path = tmp_path / ("big.jpg" if kind.startswith("jpeg") else "big.png")
    if kind.startswith("jpeg"):
        path.write_bytes(media.big_jpeg(face_from=FACES / "real" / "mcehvkoidm.jpg"))
    else:
        path.write_bytes(media.big_png16())
    with Image.open(path) as image:
        assert image.size[0] * image.size[1] >= 36_000_000
    measured = _peak(path)
    print(f"\n{kind} ({path.stat().st_size / 1e6:.2f} MB): {measured}")
    assert measured["peak_mb"] <= PEAK_LIMIT_MB, measured
    width, height = measured["size"]
    assert width * height <= 12_000_000  # analysed at a reduced size
    if kind.startswith("jpeg"):
        assert measured["prediction"] != "NO_FACE" and measured["heatmap"]  # still found


def test_full_size_raster_above_the_memory_ceiling_is_refused(tmp_path, override_settings):
    path = tmp_path / "deep.png"
    path.write_bytes(media.big_png16(2000, 2000))  # 8 MB as a 16-bit raster
    override_settings(RRR_IMAGE_MEMORY_MB="4")
    with pytest.raises(MediaError) as refused:
        decode_image(path, 40_000_000)
    assert refused.value.code == "image_too_large"
    override_settings(RRR_IMAGE_MEMORY_MB="256", RRR_MAX_ANALYSIS_PIXELS="1000000")
    rgb = decode_image(path, 40_000_000)
    assert rgb.shape == (1000, 1000, 3) and rgb[:, -1].mean() > 240  # scaled, not clipped
