from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def _through_test_client(client, monkeypatch) -> None:
    """``rrr submit`` talks to the API over HTTP with requests: answer it from the Flask test
    client instead, running each job's worker tasks in this process when it is polled."""
    import requests

    from tests.support.inprocess_http import session_factory
    from tests.support.jobs import run_job_here

    monkeypatch.setattr(
        requests, "Session", session_factory(client, "http://rrr.test", run_job_here)
    )


def test_submit_wait_prints_one_provenance_line_per_file(client, monkeypatch, tmp_path):
    import json

    from tests.support import provenance as cc

    chain = cc.make_chain()
    ai = tmp_path / "generated.jpg"
    ai.write_bytes(
        cc.sign(cc.picture(), "image/jpeg", chain, cc.manifest("trainedAlgorithmicMedia"))
    )
    plain = tmp_path / "plain.png"
    plain.write_bytes(cc.picture("PNG"))
    _through_test_client(client, monkeypatch)

    result = CliRunner().invoke(
        cli, ["submit", str(ai), "--wait", "--json", "--url", "http://rrr.test"]
    )
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)  # stdout stays one JSON document
    assert job["result"]["provenance"]["declared_ai_generated"] is True
    lines = [line for line in result.stderr.splitlines() if line.startswith("provenance")]
    assert lines == [
        "provenance: C2PA valid (signer RRR Test Signer of RRR Test Signing, untrusted)"
        " · declares AI-generated (trainedAlgorithmicMedia) [signed]"
    ]

    result = CliRunner().invoke(
        cli, ["submit", str(ai), str(plain), "--wait", "--url", "http://rrr.test"]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("provenance")]
    assert lines[1] == "provenance (plain.png): none found (absence proves nothing)"
    assert lines[0].startswith("provenance (generated.jpg): C2PA valid")
    assert len(lines) == 2


def test_provenance_line_for_tampered_unsigned_and_unreadable_files():
    from rrr.cli import provenance_summary

    tampered = {
        "status": "invalid",
        "c2pa": {"state": "invalid", "failures": ["assertion.dataHash.mismatch"], "signer": None},
        "declared_ai_generated": None,
    }
    assert provenance_summary(tampered) == (
        "C2PA invalid (changed after signing) · no AI declaration (absence proves nothing)"
    )
    unsigned = {
        "status": "found",
        "c2pa": None,
        "declared_ai_generated": True,
        "declaration_evidence": "unsigned",
        "metadata_traces": [{"generator": "ComfyUI"}],
    }
    assert provenance_summary(unsigned) == (
        "declares AI-generated [unsigned] · generator traces: ComfyUI"
    )
    hostile = {"status": "unreadable", "xmp": {"state": "unreadable"}, "errors": ["too big"]}
    assert provenance_summary(hostile) == (
        "XMP unreadable · no AI declaration (absence proves nothing)"
    )


def test_up_stops_on_ctrl_c_without_restarting_its_workers(tmp_path):
    """Ctrl-C reaches rrr up and both workers (one process group): it says it is stopping and
    stops, rather than reporting the workers' exit as a death and restarting them."""
    import os
    import signal
    import time

    from tests.support.service import Client, free_port

    port, log = free_port(), tmp_path / "up.log"
    env = {**os.environ, "RRR_VAR_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "rrr", "up", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        Client(f"http://127.0.0.1:{port}").wait_ready(timeout=120)
        deadline = time.monotonic() + 120
        while log.read_text().count("ready.") < 2 and time.monotonic() < deadline:
            time.sleep(0.3)  # both workers consuming
        os.killpg(up.pid, signal.SIGINT)
        assert up.wait(60) == 0
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
    output = log.read_text()
    assert "rrr up: stopping" in output and "rrr up: stopped" in output, output
    assert "restarting" not in output and "Aborted" not in output, output
    # stdout and stderr together: the address line, then JSON lines only (as root, Celery's
    # superuser warning among them, as one record)
    lines = [line for line in output.splitlines() if line.strip()]
    address = [line for line in lines if line.startswith("Real Recognize Real on http://")]
    assert len(address) == 1, output
    for line in lines:
        if line not in address:
            json.loads(line)


def test_up_logs_json_lines_that_name_its_workers_and_say_they_stop(tmp_path, face_crops):
    """JSON asked for: nothing but JSON lines on stderr (no Celery banner, no kombu hostname
    warning, no superuser warning when root is chosen with C_FORCE_ROOT), the workers named
    with the host filled in, and each saying that it stops."""
    import os
    import signal
    import socket
    import time

    from tests.support.service import Client, free_port

    port = free_port()
    env = {
        **os.environ,
        "RRR_VAR_DIR": str(tmp_path / "var"),
        "RRR_LOG_FORMAT": "json",
        "C_FORCE_ROOT": "1",
        "PYTHONUNBUFFERED": "1",
    }
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        up = subprocess.Popen(
            [sys.executable, "-m", "rrr", "up", "--port", str(port)],
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        client = Client(f"http://127.0.0.1:{port}")
        client.wait_ready(timeout=120)
        deadline = time.monotonic() + 120
        while err.read_text().count(" ready.") < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
        job = client.submit([face_crops["real"][0]]).json()
        assert client.wait_job(job["id"], timeout=120)["status"] == "succeeded"
        os.killpg(up.pid, signal.SIGINT)
        assert up.wait(60) == 0
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
    printed = [line for line in out.read_text().splitlines() if line.strip()]
    assert printed == [f"Real Recognize Real on http://127.0.0.1:{port}/  (Ctrl-C stops)"]
    records = [json.loads(line) for line in err.read_text().splitlines() if line.strip()]
    messages = [record["message"] for record in records]
    text = "\n".join(messages)
    assert "%h" not in text and "No hostname was supplied" not in text
    assert "superuser" not in text
    host = socket.gethostname()
    for node in (f"images@{host}", f"videos@{host}"):
        assert f"{node} ready." in messages
        assert f"worker {node}: stopping: finishing the current task first" in messages
    assert any(m.endswith(": succeeded") and job["id"] in m for m in messages)
    assert messages[-1] == "rrr up: stopped"


def test_submit_ends_in_one_verdict_line_per_file():
    from rrr.cli import verdict_lines

    image = {
        "kind": "image",
        "result": {
            "prediction": "FAKE",
            "probability_fake": 0.974943,
            "threshold": 0.5,
            "faces": [{"box": [4, 2, 195, 198]}],
        },
        "params": {},
    }
    assert verdict_lines(image, "face.jpg") == [
        "face.jpg: FAKE (likely manipulated), 97% manipulation score, 1 face"
    ]
    video = {
        "kind": "video",
        "result": {
            "prediction": "REAL",
            "probability_fake": 0.4996,
            "threshold": 0.5,
            "frames_analyzed": 20,
            "frames_with_faces": 18,
        },
    }
    # never printed as equal to the threshold it falls short of
    assert verdict_lines(video, "clip.mp4") == [
        "clip.mp4: REAL (looks real), 49.96% manipulation score, 20 frames, 18 with a face"
    ]
    batch = {
        "kind": "batch",
        "result": {
            "items": [
                {"filename": "a.png", "prediction": "NO_FACE", "probability_fake": None},
                {"filename": "b.txt", "error": {"code": "unsupported_media_type", "message": "?"}},
                {"filename": "c.jpg", "prediction": "UNCERTAIN", "probability_fake": 0.52,
                 "threshold": 0.5, "faces": [{"prediction": "UNCERTAIN"}, {"prediction": "REAL"}]},
                {"filename": "e.jpg", "prediction": "FAKE", "probability_fake": 0.9,
                 "threshold": 0.5, "faces": [{"prediction": "FAKE"}, {"prediction": "REAL"},
                                             {"prediction": "FAKE"}]},
                {"filename": "d.jpg", "prediction": "UNCERTAIN", "probability_fake": 0.9,
                 "threshold": 0.5, "faces": [{"too_small": True}], "too_small": True},
            ]
        },
    }  # fmt: skip
    assert verdict_lines(batch, "") == [
        "a.png: NO_FACE (no face found)",
        "b.txt: error unsupported_media_type: ?",
        "c.jpg: UNCERTAIN (unsure, too close to call), 52% manipulation score, 2 faces, "
        "none flagged",
        "e.jpg: FAKE (likely manipulated), 90% manipulation score, 3 faces, 2 flagged",
        "d.jpg: UNCERTAIN (unsure, the faces are too small to judge), 90% manipulation score, "
        "1 face",
    ]


def test_submit_sends_key_options_and_idempotency_key(
    client, monkeypatch, override_settings, face_crops, video_paths
):
    import json

    key = "cli-key-" + "x" * 24
    override_settings(RRR_API_KEYS=key)
    _through_test_client(client, monkeypatch)
    runner = CliRunner()
    url = ["--url", "http://rrr.test"]
    crops = [str(p) for p in face_crops["real"][:2]]

    refused = runner.invoke(cli, ["submit", crops[0], *url])
    assert refused.exit_code == 1 and refused.stderr.startswith("rrr: error: unauthorized")

    done = runner.invoke(cli, ["submit", *crops, "--wait", *url], env={"RRR_API_KEY": key})
    assert done.exit_code == 0, done.output
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2  # one verdict line per file
    for path, line in zip(crops, lines, strict=True):
        assert path.rsplit("/", 1)[-1] in line

    video = str(video_paths[0])
    options = ["--sampling", "keyframes", "--sample-fps", "2", "--max-frames", "5"]
    options += ["--idempotency-key", "cli-1", "--api-key", key, "--json"]
    first = runner.invoke(cli, ["submit", video, *options, *url])
    assert first.exit_code == 0, first.output
    job = json.loads(first.stdout)
    assert job["params"] == {"sample_fps": 2.0, "max_frames": 5, "sampling": "keyframes"}
    again = runner.invoke(cli, ["submit", video, *options, *url])
    assert json.loads(again.stdout)["id"] == job["id"]  # the key names the same job
    other = runner.invoke(cli, ["submit", crops[0], *options, *url])
    assert other.exit_code == 1 and "idempotency_conflict" in other.stderr


def test_submit_splits_videos_from_images():
    from rrr.cli import job_groups

    files = ["a.jpg", "clip.mp4", "b.png", "c.MOV", "notes.txt"]
    assert job_groups(files) == [("a.jpg", "b.png", "notes.txt"), ("clip.mp4",), ("c.MOV",)]
    assert job_groups(["one.mp4", "two.webm"]) == [("one.mp4",), ("two.webm",)]
    assert job_groups(["x.png"]) == [("x.png",)]


def test_submit_runs_a_video_beside_images_as_its_own_job(
    client, monkeypatch, face_crops, video_paths
):
    """A video given with images is not sent inside the batch (which takes images only): it
    becomes a job of its own, and --wait ends with a verdict line for every file."""
    import json

    _through_test_client(client, monkeypatch)
    runner = CliRunner()
    url = ["--url", "http://rrr.test"]
    crops = [str(p) for p in face_crops["real"][:2]]
    video = str(video_paths[0])
    options = ["--max-frames", "2", "--idempotency-key", "cli-mixed", *url]

    done = runner.invoke(cli, ["submit", crops[0], video, crops[1], "--wait", *options])
    assert done.exit_code == 0, done.output
    lines = done.stdout.strip().splitlines()
    names = [Path(p).name for p in (crops[0], crops[1], video)]
    assert [line.split(":")[0] for line in lines] == names  # the batch holds the first file
    assert "frames" in lines[2] and "error" not in done.stdout
    provenance = [line for line in done.stderr.splitlines() if line.startswith("provenance")]
    assert [line.split(":")[0] for line in provenance] == [f"provenance ({n})" for n in names]

    again = runner.invoke(cli, ["submit", crops[0], video, crops[1], "--json", *options])
    assert again.exit_code == 0, again.output
    jobs = json.loads(again.stdout)  # several jobs: one JSON list
    assert [job["kind"] for job in jobs] == ["batch", "video"]
    assert all(job["status"] == "succeeded" for job in jobs)  # the key named the same jobs


def test_submit_sends_webhook_and_heatmap_options(
    client, monkeypatch, override_settings, face_crops
):
    import json

    from tests.shared.test_webhooks import new_secret

    override_settings(RRR_WEBHOOK_SECRET=new_secret(), RRR_WEBHOOK_ALLOWED_HOSTS="127.0.0.1")
    _through_test_client(client, monkeypatch)
    runner = CliRunner()
    crop = str(face_crops["real"][0])
    hook = ["--webhook", "http://127.0.0.1:9/hook"]
    hook += ["--webhook-event", "start", "--webhook-event", "completed"]
    url = ["--url", "http://rrr.test"]
    done = runner.invoke(cli, ["submit", crop, *hook, "--heatmap", "--json", *url])
    assert done.exit_code == 0, done.output
    job = json.loads(done.stdout)
    assert job["webhook"]["url"] == "http://127.0.0.1:9/hook"
    assert job["webhook"]["events"] == ["start", "completed"]
    assert job["params"]["heatmap"] is True
    refused = runner.invoke(cli, ["submit", crop, "--webhook", "https://10.1.2.3/x", *url])
    assert refused.exit_code == 1 and "invalid_webhook" in refused.stderr


def test_up_stops_its_workers_together_on_sigterm(tmp_path):
    """SIGTERM to rrr up alone (kill, a service manager): it asks both workers to stop at once,
    rather than waiting for one to exit before telling the other (an idle Celery worker takes
    about 2 s to notice), and nothing is restarted or left running."""
    import os
    import signal
    import time
    from datetime import datetime

    from tests.support.service import Client, free_port

    port, err = free_port(), tmp_path / "stderr.log"
    env = {
        **os.environ,
        "RRR_VAR_DIR": str(tmp_path / "var"),
        "RRR_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    with open(err, "w") as stderr:
        up = subprocess.Popen(
            [sys.executable, "-m", "rrr", "up", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        Client(f"http://127.0.0.1:{port}").wait_ready(timeout=120)
        deadline = time.monotonic() + 120
        while err.read_text().count(" ready.") < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
        workers = subprocess.run(
            ["pgrep", "-g", str(up.pid), "-f", "celery"], capture_output=True, text=True
        ).stdout.split()
        assert len(workers) == 2, workers
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
    records = [json.loads(line) for line in err.read_text().splitlines() if line.startswith("{")]
    stopping = [
        datetime.fromisoformat(r["time"])
        for r in records
        if r["message"].endswith("stopping: finishing the current task first")
    ]
    assert len(stopping) == 2, [r["message"] for r in records]
    assert abs((stopping[1] - stopping[0]).total_seconds()) < 1.5
    assert not any("restarting" in r["message"] for r in records)
    for pid in workers:
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "zombie" in status.read_text()
