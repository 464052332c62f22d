"""The inference path shared by the worker, the synchronous shims, evaluation and benchmarks:
load the model once per process, then ``score(crops)`` -> probability that each is FAKE.

Two engines run the same network: PyTorch (the checkpoint itself) and ONNX Runtime (the file
``rrr export`` writes beside it, with the ModelConfig embedded in its metadata). Preprocessing
and the softmax are shared, so only the engine differs.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from shared.errors import ModelUnavailable
from shared.model import FAKE_INDEX, ModelConfig, file_sha256, preprocess

BATCH_SIZE = 32
ONNX_CONFIG_KEY = "rrr_model_config"  # ONNX metadata entry holding the ModelConfig as JSON


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    sha256: str
    engine: str = "torch"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256,
                "engine": self.engine}


class Engine(Protocol):
    name: str

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) float32 -> (N, 2) float32 logits."""
        ...


class TorchEngine:
    name = "torch"

    def __init__(self, model) -> None:
        import torch

        self._torch = torch
        self.model = model.eval().to(memory_format=torch.channels_last)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        device = next(self.model.parameters()).device  # CPU in the service; maybe a GPU in training
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
            return self.model(x).float().cpu().numpy()


class OnnxEngine:
    name = "onnx"

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def config(self) -> ModelConfig:
        meta = self.session.get_modelmeta().custom_metadata_map
        if ONNX_CONFIG_KEY not in meta:
            raise ValueError("the ONNX file carries no model config; re-export it with rrr export")
        return ModelConfig.from_dict(json.loads(meta[ONNX_CONFIG_KEY]))

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]


def softmax_fake(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs[:, FAKE_INDEX].astype(np.float64)


def _threads(threads: int) -> int:
    return threads if threads > 0 else max(1, os.cpu_count() or 1)


class Detector:
    """A classifier ready to score crops. Thread-safe (one forward pass at a time).

    The worker builds it from the weights (``from_checkpoint``); evaluation wraps the model it
    is training (``Detector(TorchEngine(model), config)``), so both score through this code.
    """

    def __init__(
        self,
        engine: Engine,
        config: ModelConfig,
        sha256: str = "",
        weights_path: Path | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.weights_path = weights_path
        self.info = ModelInfo(config.name, config.version, sha256, engine.name)
        self._lock = threading.Lock()
        self._explainer = None

    @classmethod
    def from_checkpoint(cls, weights_path: Path, threads: int = 0, engine: str = "torch"
                        ) -> Detector:
        """Load the checkpoint (engine "torch") or the ONNX file beside it (engine "onnx")."""
        threads = _threads(threads)
        try:
            if engine == "onnx":
                onnx_path = weights_path.with_suffix(".onnx")
                if not onnx_path.is_file():
                    raise FileNotFoundError(
                        f"ONNX model not found at {onnx_path}; write it with `rrr export` "
                        "or set RRR_ENGINE=torch"
                    )
                runner = OnnxEngine(onnx_path, threads)
                return cls(runner, runner.config(), file_sha256(onnx_path), weights_path)
            import torch

            from shared.model import load_checkpoint

            torch.set_num_threads(threads)
            model, config, _ = load_checkpoint(weights_path)
            return cls(TorchEngine(model), config, file_sha256(weights_path), weights_path)
        except FileNotFoundError as exc:
            raise ModelUnavailable(str(exc), code="weights_missing") from exc
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelUnavailable(
                f"could not load model weights from {weights_path}: {exc}", code="weights_invalid"
            ) from exc

    def score(self, crops: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 face crops -> float64 array of P(FAKE), in the same order."""
        if not crops:
            return np.zeros(0, dtype=np.float64)
        out = []
        with self._lock:
            for start in range(0, len(crops), BATCH_SIZE):
                batch = preprocess(crops[start : start + BATCH_SIZE], self.config)
                out.append(softmax_fake(self.engine.logits(batch)))
        return np.concatenate(out)

    def gradcam(self, crop: np.ndarray) -> np.ndarray:
        """Grad-CAM map (H, W) in [0, 1] for one RGB face crop (see shared/explain.py). Needs
        the PyTorch network; with the ONNX engine it is loaded on first use."""
        from shared.explain import gradcam

        with self._lock:
            if self._explainer is None:
                if isinstance(self.engine, TorchEngine):
                    self._explainer = self.engine.model
                else:
                    from shared.model import load_checkpoint

                    assert self.weights_path is not None
                    self._explainer = load_checkpoint(self.weights_path)[0]
            return gradcam(self._explainer, self.config, crop)


_detector: Detector | None = None
_detector_lock = threading.Lock()


def get_detector(weights_path: Path, threads: int = 0, engine: str = "torch") -> Detector:
    """The process-wide Detector, loaded on first use and kept (weights load once per process)."""
    global _detector
    with _detector_lock:
        if _detector is None:
            _detector = Detector.from_checkpoint(weights_path, threads, engine)
        return _detector
