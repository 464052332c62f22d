"""Evaluate labelled videos through the worker's own code path (frame sampling, face detection,
crops, the model and the video aggregation rule), so the figure is what the service would say."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from tqdm import tqdm

from detection.analyzer import Analyzer, analyzer_around
from detection.detector import Detector
from detection.faces import FaceDetector
from training.aggregation import compare_rules


def analyzer_for(
    checkpoint: Path, threshold: float | None = None, threads: int = 0, engine: str = "torch"
) -> Analyzer:
    """The service's analyzer around a checkpoint of one's choosing (not RRR_WEIGHTS)."""
    return analyzer_around(
        Detector.from_checkpoint(checkpoint, threads, engine), FaceDetector(), threshold
    )


def evaluate_videos(
    labels_csv: Path,
    analyzer: Analyzer,
    sample_fps: float = 1.0,
    max_frames: int = 7200,
    sampling: str = "exact",
) -> dict[str, Any]:
    """Each row of ``labels_csv`` (columns ``file`` relative to the CSV, ``label`` real/fake)
    -> the service's verdict; plus how many were right and the seconds each video took."""
    with open(labels_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    results = []
    per_video: list[tuple[str, list[dict[str, Any]]]] = []
    for row in tqdm(rows, desc="videos", unit="video"):
        path = labels_csv.parent / row["file"]
        result, frames = analyzer.analyze_video(
            path, sample_fps, max_frames, lambda done, total: True, sampling
        )
        expected = row["label"].strip().upper()
        per_video.append((expected, frames))
        results.append(
            {
                "file": row["file"],
                "label": expected,
                "prediction": result["prediction"],
                "probability_fake": result["probability_fake"],
                "frames_analyzed": result["frames_analyzed"],
                "frames_with_faces": result["frames_with_faces"],
                "seconds": round(result["timings_ms"]["total"] / 1000, 3),
                "correct": result["prediction"] == expected,
            }
        )
    return {
        "videos": len(results),
        "correct": sum(r["correct"] for r in results),
        "uncertain": sum(r["prediction"] == "UNCERTAIN" for r in results),
        "accuracy": sum(r["correct"] for r in results) / len(results) if results else None,
        "threshold": analyzer.threshold,
        "aggregation": "mean_of_frame_max",
        "sample_fps": sample_fps,
        "sampling": sampling,
        "seconds": round(sum(r["seconds"] for r in results), 3),
        "results": results,
        # the same frames under each candidate rule (training/aggregation.py)
        "aggregation_study": compare_rules(per_video, analyzer.threshold),
    }
