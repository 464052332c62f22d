"""The ONNX file is checked against the sha256 its model card records (``weights/<name>.json``
beside ``weights/<name>.pt``) before it is loaded; a mismatch is refused with a clear error,
by the engine and by `rrr worker` (one line on stderr, exit status 1)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from detection.detector import Detector, verified_onnx_sha256
from shared.errors import ModelUnavailable
from tests.support import REPO, SHIPPED_WEIGHTS


@pytest.fixture()
def weights(tmp_path):
    """The shipped model under another checkpoint name (a card is found by name, not fixed)."""
    target = tmp_path / "rrr-b0-v2.pt"
    for suffix in (".pt", ".onnx", ".json"):
        shutil.copy(SHIPPED_WEIGHTS.with_suffix(suffix), target.with_suffix(suffix))
    return target


def _record(weights, sha256: str) -> None:
    card = weights.with_suffix(".json")
    data = json.loads(card.read_text())
    data["onnx"]["sha256"] = sha256
    card.write_text(json.dumps(data))


def test_the_shipped_model_matches_its_card(weights):
    recorded = json.loads(weights.with_suffix(".json").read_text())["onnx"]["sha256"]
    assert verified_onnx_sha256(weights) == recorded
    assert Detector.from_checkpoint(weights, 1).info.sha256 == recorded


def test_a_changed_onnx_file_is_refused(weights):
    with open(weights.with_suffix(".onnx"), "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelUnavailable) as refused:
        Detector.from_checkpoint(weights, 1)
    assert refused.value.code == "weights_mismatch"
    assert "rrr-b0-v2.onnx" in refused.value.message and "rrr-b0-v2.json" in refused.value.message


def test_a_card_recording_another_file_is_refused(weights):
    _record(weights, "0" * 64)
    with pytest.raises(ModelUnavailable) as refused:
        verified_onnx_sha256(weights)
    assert refused.value.code == "weights_mismatch"


def test_a_model_without_a_card_still_loads(weights):
    weights.with_suffix(".json").unlink()
    assert len(verified_onnx_sha256(weights)) == 64


def test_worker_refuses_to_start_on_a_mismatch(weights):
    _record(weights, "0" * 64)
    done = subprocess.run(
        [sys.executable, "-m", "rrr", "worker"],
        cwd=REPO,
        env={**os.environ, "RRR_WEIGHTS_PATH": str(weights)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sha256" in lines[0] and "rrr-b0-v2.json" in lines[0], lines


def test_the_container_image_serves_the_model_the_code_ships():
    """The Dockerfile names the weights file (an installed package has no weights/ beside it):
    it must be the default model, not an older one left behind."""
    from shared.config import DEFAULT_WEIGHTS

    named = re.search(r"RRR_WEIGHTS_PATH=(\S+)", (REPO / "Dockerfile").read_text())
    assert named is not None and Path(named.group(1)).name == DEFAULT_WEIGHTS.name
    assert DEFAULT_WEIGHTS == SHIPPED_WEIGHTS
