from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from rrr.cli import cli


def test_explain_writes_a_heatmap(face_crops, tmp_path):
    out = tmp_path / "heat.png"
    result = CliRunner().invoke(cli, ["explain", str(face_crops["fake"][2]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")
    assert "prediction" in result.output


def test_service_refuses_to_start_without_weights(tmp_path):
    env = {
        "RRR_WEIGHTS_PATH": str(tmp_path / "missing.pt"),
        "RRR_VAR_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    for command in (["up"], ["worker"]):
        done = subprocess.run(
            [sys.executable, "-m", "rrr", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert "model weights not found" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_every_command_has_help():
    runner = CliRunner()
    for command in ("up", "api", "worker", "submit", "explain", "export", "db"):
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_export_writes_an_onnx_file_that_agrees(tmp_path):
    from shared.config import settings

    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(settings.weights_path.read_bytes())
    result = CliRunner().invoke(cli, ["export", "--checkpoint", str(checkpoint)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model.onnx").is_file()
    assert '"max_probability_gap"' in result.output
