"""The inference path shared by the worker, the synchronous shims, evaluation and benchmarks:
load the checkpoint once per process, then ``score(crops)`` -> probability that each is FAKE."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from shared.errors import ModelUnavailable
from shared.model import FAKE_INDEX, ModelConfig, file_sha256, load_checkpoint, preprocess

BATCH_SIZE = 32


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


class Detector:
    """A classifier ready to score crops. Thread-safe (one forward pass at a time).

    The worker builds it from the weights file (``from_checkpoint``); evaluation wraps the model
    it is training, so both score through exactly the same code.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: ModelConfig,
        sha256: str = "",
        metadata: dict | None = None,
    ) -> None:
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.config = config
        self.metadata = metadata or {}
        self.info = ModelInfo(name=config.name, version=config.version, sha256=sha256)
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, weights_path: Path, threads: int = 0) -> Detector:
        try:
            model, config, metadata = load_checkpoint(weights_path)
        except FileNotFoundError as exc:
            raise ModelUnavailable(str(exc), code="weights_missing") from exc
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelUnavailable(
                f"could not load model weights from {weights_path}: {exc}", code="weights_invalid"
            ) from exc
        if threads <= 0:
            threads = max(1, os.cpu_count() or 1)
        torch.set_num_threads(threads)
        return cls(model, config, sha256=file_sha256(weights_path), metadata=metadata)

    def score(self, crops: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 face crops -> float64 array of P(FAKE), in the same order."""
        if not crops:
            return np.zeros(0, dtype=np.float64)
        out = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(crops), BATCH_SIZE):
                batch = preprocess(crops[start : start + BATCH_SIZE], self.config)
                tensor = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
                logits = self.model(tensor)  # (N, 2)
                probs = torch.softmax(logits.float(), dim=1)[:, FAKE_INDEX]
                out.append(probs.numpy().astype(np.float64))
        return np.concatenate(out)

    def gradcam(self, crop: np.ndarray) -> np.ndarray:
        """Grad-CAM map (H, W) in [0, 1] for one RGB face crop (see shared/explain.py)."""
        from shared.explain import gradcam

        with self._lock:
            return gradcam(self.model, self.config, crop)


_detector: Detector | None = None
_detector_lock = threading.Lock()


def get_detector(weights_path: Path, threads: int = 0) -> Detector:
    """The process-wide Detector, loaded on first use and kept (weights load once per process)."""
    global _detector
    with _detector_lock:
        if _detector is None:
            _detector = Detector.from_checkpoint(weights_path, threads)
        return _detector
