"""The inference path shared by the worker, the synchronous shims, evaluation and benchmarks:
load the model once per process, then ``score(crops)`` -> probability that each is FAKE.

Two engines run the same network: ONNX Runtime (the default: the file ``rrr export`` writes
beside the checkpoint, with the ModelConfig embedded in its metadata; no PyTorch needed) and
PyTorch (the checkpoint itself). Preprocessing, the softmax and the heatmap scaling are shared,
so only the engine differs. Both run ``detection.network.ScoreAndCam``: scores and the FAKE
activation map come out of the same forward pass.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from detection.explain import FINE_FACTOR, crop_map, shifted_crops, stitch
from detection.model import (
    ONNX_CONFIG_KEY,
    ModelConfig,
    class_probabilities,
    fake_probability,
    file_sha256,
    preprocess,
)
from shared.errors import ModelUnavailable

BATCH_SIZE = 32


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    sha256: str
    engine: str = "onnx"

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "engine": self.engine,
        }


class Engine(Protocol):
    name: str

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3, S, S) float32 -> (N, 2) logits and (N, h, w) FAKE activation maps."""
        ...


class TorchEngine:
    name = "torch"

    def __init__(self, model) -> None:
        import torch

        from detection.network import ScoreAndCam

        self._torch = torch
        self.model = model.eval().to(memory_format=torch.channels_last)
        self._net = ScoreAndCam(self.model)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        device = next(self.model.parameters()).device  # CPU in the service; maybe a GPU in training
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
            logits, cam = self._net(x)
            return logits.float().cpu().numpy(), cam.float().cpu().numpy()


class OnnxEngine:
    name = "onnx"

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        if outputs != ["logits", "cam"]:
            raise ValueError(
                f"{path.name} has outputs {outputs}, not [logits, cam]; "
                "re-export it with rrr export"
            )

    def config(self) -> ModelConfig:
        meta = self.session.get_modelmeta().custom_metadata_map
        if ONNX_CONFIG_KEY not in meta:
            raise ValueError("the ONNX file carries no model config; re-export it with rrr export")
        return ModelConfig.from_dict(json.loads(meta[ONNX_CONFIG_KEY]))

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, cam = self.session.run(None, {self.input_name: batch})
        return logits, cam


def model_card(weights_path: Path) -> dict:
    """The model card beside a checkpoint (``weights/<name>.json`` for ``<name>.pt``); empty
    when there is none."""
    card = weights_path.with_suffix(".json")
    if not card.is_file():
        return {}
    try:
        data = json.loads(card.read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"the model card {card.name} cannot be read: {exc}", code="weights_invalid"
        ) from exc
    return data if isinstance(data, dict) else {}


def verified_onnx_sha256(weights_path: Path) -> str:
    """The sha256 of the ONNX file beside the checkpoint, checked against the one its model
    card records (``onnx.sha256``, written by ``rrr export``). A file that differs from its
    record is refused: it is not the model the card describes."""
    onnx_path = weights_path.with_suffix(".onnx")
    actual = file_sha256(onnx_path)
    recorded = (model_card(weights_path).get("onnx") or {}).get("sha256")
    if recorded and recorded != actual:
        raise ModelUnavailable(
            f"{onnx_path.name} has sha256 {actual[:12]}..., but its model card "
            f"{weights_path.with_suffix('.json').name} records {str(recorded)[:12]}...: the "
            "file was changed or replaced. Restore it, or re-export it with `rrr export`",
            code="weights_mismatch",
        )
    return actual


def _threads(threads: int) -> int:
    return threads if threads > 0 else max(1, os.cpu_count() or 1)


class Detector:
    """A classifier ready to score crops. Thread-safe (one forward pass at a time).

    The worker builds it from the weights (``from_checkpoint``); evaluation wraps the model it
    is training (``Detector(TorchEngine(model), config)``), so both score through this code.

    A model may name a *partner* (``config.extra["partner"]``: its checkpoint file beside this
    one and its weight): a second B0 that sees the face another way (``ModelConfig.view``). The
    class probabilities are then the weighted mean of both, each at its own temperature, and the
    threshold and unsure band of this model's config apply to that mean. Heatmaps come from
    this model alone.
    """

    def __init__(
        self,
        engine: Engine,
        config: ModelConfig,
        sha256: str = "",
        partner: Detector | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.info = ModelInfo(config.name, config.version, sha256, engine.name)
        self.partner = partner
        self._lock = threading.Lock()

    @property
    def partner_weight(self) -> float:
        if self.partner is None:
            return 0.0
        return float((self.config.extra.get("partner") or {}).get("weight", 0.5))

    @classmethod
    def from_checkpoint(
        cls, weights_path: Path, threads: int = 0, engine: str = "onnx"
    ) -> Detector:
        """Load the checkpoint (engine "torch") or the ONNX file beside it (engine "onnx")."""
        threads = _threads(threads)
        try:
            if engine == "onnx":
                onnx_path = weights_path.with_suffix(".onnx")
                if not onnx_path.is_file():
                    raise FileNotFoundError(
                        f"ONNX model not found at {onnx_path}; write it from the checkpoint "
                        "with `rrr export`, or set RRR_ENGINE=torch"
                    )
                sha256 = verified_onnx_sha256(weights_path)  # before the file is loaded
                runner = OnnxEngine(onnx_path, threads)
                config = runner.config()
                partner = cls._partner_of(weights_path, config, threads, engine)
                return cls(runner, config, sha256, partner)
            if engine != "torch":
                raise ValueError(f"unknown engine {engine!r}: use onnx or torch")
            import torch

            from detection.network import load_checkpoint

            torch.set_num_threads(threads)
            model, config, _ = load_checkpoint(weights_path)
            partner = cls._partner_of(weights_path, config, threads, engine)
            return cls(TorchEngine(model), config, file_sha256(weights_path), partner)
        except FileNotFoundError as exc:
            raise ModelUnavailable(str(exc), code="weights_missing") from exc
        except ModuleNotFoundError as exc:
            raise ModelUnavailable(
                f"RRR_ENGINE={engine} needs {exc.name}, which is not installed "
                "(pip install '.[torch]')",
                code="engine_unavailable",
            ) from exc
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelUnavailable(
                f"could not load model weights from {weights_path}: {exc}", code="weights_invalid"
            ) from exc

    @classmethod
    def _partner_of(
        cls, weights_path: Path, config: ModelConfig, threads: int, engine: str
    ) -> Detector | None:
        spec = config.extra.get("partner")
        if not spec:
            return None
        partner_path = weights_path.parent / str(spec["file"])
        if not partner_path.with_suffix(".onnx" if engine == "onnx" else ".pt").is_file():
            raise FileNotFoundError(
                f"{weights_path.name} works with {partner_path.name}, which is not beside it"
            )
        return cls.from_checkpoint(partner_path, threads, engine)

    def score(self, crops: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 face crops -> float64 array of P(FAKE), in the same order."""
        return fake_probability(self.class_probabilities(crops), self.config)

    def class_probabilities(self, crops: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 face crops -> (N, C) calibrated class probabilities (``config.labels``)."""
        if not crops:
            return np.zeros((0, len(self.config.labels)), dtype=np.float64)
        out = []
        with self._lock:
            for start in range(0, len(crops), BATCH_SIZE):
                batch = preprocess(crops[start : start + BATCH_SIZE], self.config)
                out.append(class_probabilities(self.engine.run(batch)[0], self.config))
        own = np.concatenate(out)
        if self.partner is None:
            return own
        weight = self.partner_weight
        return (1.0 - weight) * own + weight * self.partner.class_probabilities(crops)

    def gradcam(self, crop: np.ndarray) -> np.ndarray:
        """Grad-CAM map (H, W) in [0, 1] over one RGB face crop, for the FAKE class."""
        with self._lock:
            cam = self.engine.run(preprocess([crop], self.config))[1][0]
        return crop_map(cam, crop.shape[0], crop.shape[1])

    def fine_gradcam(
        self, rgb: np.ndarray, region: tuple[int, int, int, int], factor: int = FINE_FACTOR
    ) -> np.ndarray:
        """The same map read at ``factor`` times its resolution (detection/explain.py,
        shift and stitch): (H, W) in [0, 1] over ``region`` (x0, y0, x1, y1) of ``rgb``."""
        x0, y0, x1, y1 = region
        cells = -(-self.config.input_size // FEATURE_STRIDE)
        crops = shifted_crops(rgb, region, cells, self.config.input_size, factor)
        with self._lock:
            cams = np.concatenate(
                [
                    self.engine.run(preprocess(crops[start : start + BATCH_SIZE], self.config))[1]
                    for start in range(0, len(crops), BATCH_SIZE)
                ]
            )
        return crop_map(stitch(cams, factor), y1 - y0, x1 - x0)


# EfficientNet-B0's last block holds one cell per 32 input pixels
FEATURE_STRIDE = 32

_detector: Detector | None = None
_detector_lock = threading.Lock()


def get_detector(weights_path: Path, threads: int = 0, engine: str = "onnx") -> Detector:
    """The process-wide Detector, loaded on first use and kept (weights load once per process)."""
    global _detector
    with _detector_lock:
        if _detector is None:
            _detector = Detector.from_checkpoint(weights_path, threads, engine)
        return _detector
