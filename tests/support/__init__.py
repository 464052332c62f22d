"""Helpers shared by the tests (and the benchmarks, which drive the service the same way):
where the real data lies, media built on the fly, jobs run in-process, the service as
processes."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"  # real media beside the repository, never copied in
FACES = DATA / "dfdc_faces"
VIDEOS = DATA / "videos"
SHIPPED_WEIGHTS = REPO / "weights" / "rrr-b0-v3.pt"
