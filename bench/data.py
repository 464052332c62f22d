"""Real media for the benchmarks, read from ``../shared/data`` beside the repository (never
copied into it); long videos are built from the shared clips by ``bench.videos``."""

from __future__ import annotations

import csv
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SHARED_DATA = REPO.parent / "shared" / "data"
DFDC = SHARED_DATA / "dfdc_faces"
BENCH_DIR = REPO / "var" / "bench"  # built videos are cached here (git-ignored)


def dfdc_crops(n: int, seed: int = 0) -> list[Path]:
    """``n`` DFDC face crops, half real and half fake, chosen by ``seed``."""
    with open(DFDC / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rng = random.Random(seed)
    picked = []
    for label in ("REAL", "FAKE"):
        pool = [r for r in rows if r["label"].upper() == label]
        picked += rng.sample(pool, (n + 1) // 2 if label == "REAL" else n // 2)
    rng.shuffle(picked)
    return [DFDC / r["file"] for r in picked]
