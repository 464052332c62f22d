"""The ``rrr`` command: run the service, manage the database, submit files, train and evaluate."""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import click

from shared.config import settings


def fail(message: str) -> None:
    """Exit non-zero with a one-line reason on stderr."""
    click.echo(f"rrr: error: {message}", err=True)
    sys.exit(1)


def require_weights() -> None:
    if not settings.model_file.is_file():
        fail(
            f"model weights not found at {settings.model_file}; the service cannot score faces "
            "without them. Set RRR_WEIGHTS_PATH to a checkpoint with its exported .onnx file "
            "beside it, or RRR_ENGINE=torch (see weights/README.md)."
        )
    if settings.engine == "onnx":
        from detection.detector import verified_onnx_sha256
        from shared.errors import ModelUnavailable

        try:
            verified_onnx_sha256(settings.weights_path)
        except ModelUnavailable as exc:
            fail(exc.message)


def worker_command(queues: str, loglevel: str, name: str) -> list[str]:
    # solo pool: one task at a time in this very process, so the model loads exactly once and
    # no fork happens after torch started its threads. Scale with more worker processes.
    return [
        # --quiet: no ASCII banner on stdout; the worker's own lines are log records
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "--quiet", "worker",
        "--pool=solo", f"--queues={queues}", f"--loglevel={loglevel}", f"--hostname={name}",
        "--without-mingle", "--without-gossip",
    ]  # fmt: skip


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Real Recognize Real: asynchronous deepfake detection for images and videos."""


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema at RRR_DATABASE_URL to the newest revision."""
    from shared.migrate import upgrade_database

    try:
        upgrade_database()
    except Exception as exc:  # a one-line reason, not a traceback
        fail(f"database upgrade failed: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
    click.echo(f"database is up to date ({settings.as_public_dict()['database_url']})")


@cli.command()
@click.option("--host", default=None, help="Interface to bind (default RRR_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default RRR_PORT, 8000).")
@click.option(
    "--threads", type=int, default=None, help="Request threads (default RRR_API_THREADS, 16)."
)
def api(host: str | None, port: int | None, threads: int | None) -> None:
    """Serve the HTTP API with waitress (the production server: it reads each request whole
    before a thread runs it, so stalled clients hold no thread; no model in this process)."""
    from api import create_app
    from api.server import serve

    host, port = host or settings.host, port or settings.port
    click.echo(f"API on http://{host}:{port}/")
    serve(create_app(), host=host, port=port, threads=threads)


@cli.command()
@click.option(
    "--queues",
    default="images,videos",
    show_default=True,
    help="Queues to consume: images, videos or both.",
)
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--name", default="rrr@%h", show_default=True, help="Worker node name.")
def worker(queues: str, loglevel: str, name: str) -> None:
    """Run one Celery worker process (loads the model once, handles one task at a time)."""
    require_weights()
    os.execv(sys.executable, worker_command(queues, loglevel, name))


def _share_cores(workers: int) -> dict[str, str]:
    """The environment for one of ``workers`` processes on this machine: unless set, each gets
    an equal share of the cores for inference, so busy workers never oversubscribe them."""
    env = dict(os.environ)
    if not env.get("RRR_INFERENCE_THREADS"):
        env["RRR_INFERENCE_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    return env


class _WorkerSupervisor(threading.Thread):
    """Keeps one worker process alive beside the embedded API; restarts it if it dies."""

    def __init__(self, queues: str, name: str, env: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.queues, self.env = queues, env
        # the node name as Celery will fill it in, so our own lines name the same worker
        self.node = name.replace("%h", socket.gethostname())
        self.process: subprocess.Popen | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.process = subprocess.Popen(
                worker_command(self.queues, "INFO", self.node), env=self.env
            )
            code = self.process.wait()
            # Ctrl-C reaches the workers as well as rrr up: a worker that stops because the
            # service is stopping is not restarted, nor reported as having died
            if self.stopping.wait(0.5):
                break
            logging.getLogger("rrr.up").warning(
                "rrr up: worker %s exited with code %s; restarting in 2 s", self.node, code
            )
            self.stopping.wait(2)

    def stop(self) -> None:
        """Ask the worker for a warm shutdown (finish the current task) without waiting."""
        self.stopping.set()
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, deadline: float) -> None:
        """Wait for the worker to exit until ``deadline`` (time.monotonic()); then kill it."""
        if self.process and self.process.poll() is None:
            try:
                self.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.process.kill()


@cli.command()
@click.option("--host", default=None, help="Interface to bind (default RRR_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default RRR_PORT, 8000).")
def up(host: str | None, port: int | None) -> None:
    """Start the whole service on this machine: schema upgrade, two workers and the API.

    Defaults need no servers (SQLite + filesystem broker under ./var/); set RRR_DATABASE_URL and
    RRR_BROKER_URL to use PostgreSQL and Redis instead. Ctrl-C stops everything.
    """
    from api import create_app
    from api.server import serve
    from shared.logs import configure_logging
    from shared.migrate import upgrade_database

    # what rrr up does is logged like everything else on stderr: JSON lines unless
    # RRR_LOG_FORMAT=text asks for plain ones
    configure_logging()
    up_log = logging.getLogger("rrr.up")

    def step(message: str) -> None:
        up_log.info("rrr up: %s", message)

    require_weights()
    step(f"model {settings.model_file} ({settings.engine} engine) checked")
    upgrade_database()
    step(f"database up to date ({settings.as_public_dict()['database_url']})")
    # Two workers: one only for images, so a long video never holds up image jobs; the other
    # takes video segments and, when it has none, images too.
    workers = [("images", "images@%h"), ("videos,images", "videos@%h")]
    env = _share_cores(len(workers))
    supervisors = [_WorkerSupervisor(queues, name, env) for queues, name in workers]
    for supervisor in supervisors:
        supervisor.start()
    step(f"started {len(workers)} workers: {', '.join(s.node for s in supervisors)}")
    host, port = host or settings.host, port or settings.port

    def stop_serving(*_: object) -> None:
        for supervisor in supervisors:
            supervisor.stopping.set()
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C does not cut the stop short
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop_serving)
    signal.signal(signal.SIGTERM, stop_serving)
    click.echo(f"Real Recognize Real on http://{host}:{port}/  (Ctrl-C stops)")
    try:
        serve(create_app(), host=host, port=port)
    except KeyboardInterrupt:
        pass
    finally:
        step("stopping: the workers finish their current task first")
        # all at once: an idle worker takes a few seconds to notice (Celery polls for 2 s)
        for supervisor in supervisors:
            supervisor.stop()
        deadline = time.monotonic() + 20.0
        for supervisor in supervisors:
            supervisor.wait_stopped(deadline)
        step("stopped")


VERDICT_WORDS = {
    "FAKE": "likely manipulated",
    "REAL": "looks real",
    "UNCERTAIN": "unsure, too close to call",
    "NO_FACE": "no face found",
}


def _pct(p: float, threshold: float | None = None) -> str:
    """0.823 -> "82%", as the page writes it: never printed equal to the threshold it is not."""
    v, digits = p * 100, 1 if (99 < p * 100 < 100 or 0 < p * 100 < 1) else 0
    if threshold is not None and p != threshold:
        while digits < 3 and f"{v:.{digits}f}" == f"{threshold * 100:.{digits}f}":
            digits += 1
    return f"{v:.{digits}f}%"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def verdict_line(name: str, result: dict) -> str:
    """One line a person reads: "clip.mp4: FAKE (likely manipulated), 97% manipulation score,
    20 frames, 18 with a face"; "group.jpg: FAKE (likely manipulated), 99% manipulation score,
    6 faces, 2 flagged"."""
    if "error" in result:
        return f"{name}: error {result['error']['code']}: {result['error']['message']}"
    prediction = result.get("prediction", "?")
    words = VERDICT_WORDS.get(prediction, prediction.lower())
    if result.get("too_small"):
        words = "unsure, the faces are too small to judge"
    line = f"{name}: {prediction} ({words})"
    if result.get("probability_fake") is not None:
        score = _pct(result["probability_fake"], result.get("threshold"))
        line += f", {score} manipulation score"
    if "frames_analyzed" in result:
        frames = _plural(result["frames_analyzed"], "frame")
        line += f", {frames}, {result.get('frames_with_faces', 0)} with a face"
    elif "faces" in result and prediction != "NO_FACE":
        line += f", {_plural(len(result['faces']), 'face')}"
        if len(result["faces"]) > 1:  # the verdict is one face's: say how many stand out
            flagged = sum(face.get("prediction") == "FAKE" for face in result["faces"])
            line += f", {flagged or 'none'} flagged"
    return line


def verdict_lines(job: dict, name: str) -> list[str]:
    """A finished job's verdicts, one line per file (``name``: a single file's name)."""
    result = job.get("result") or {}
    if job.get("kind") == "batch":
        return [verdict_line(item.get("filename", "?"), item) for item in result.get("items", [])]
    return [verdict_line(name, result)]


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--url", default=None, help="API base URL (default http://RRR_HOST:RRR_PORT).")
@click.option(
    "--api-key", envvar="RRR_API_KEY", default=None, help="API key (default: $RRR_API_KEY)."
)
@click.option("--wait/--no-wait", default=False, help="Wait for the verdict with a progress bar.")
@click.option("--sample-fps", type=float, default=None, help="Video frames analysed per second.")
@click.option(
    "--sampling",
    type=click.Choice(["exact", "keyframes"]),
    default=None,
    help="Video: the frame at each sample time (exact, the default) or the keyframe before "
    "it (keyframes: faster on long videos).",
)
@click.option("--max-frames", type=int, default=None, help="Video: at most this many frames.")
@click.option("--threshold", type=float, default=None, help="P(FAKE) at or above which: FAKE.")
@click.option(
    "--idempotency-key", default=None, help="Repeat-safe submission: the same key, the same job."
)
@click.option(
    "--webhook",
    default=None,
    help="URL the API posts the job's events to, signed (the server needs RRR_WEBHOOK_SECRET).",
)
@click.option(
    "--webhook-event",
    "webhook_events",
    multiple=True,
    type=click.Choice(["start", "progress", "completed"]),
    help="Event posted to --webhook; repeatable [default: completed].",
)
@click.option(
    "--heatmap", is_flag=True, help="Image jobs: draw the heatmap with the verdict, not on demand."
)
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds to wait.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the job as the API returns it (all fields) instead of one line per file.",
)
def submit(
    files,
    url,
    api_key,
    wait,
    sample_fps,
    sampling,
    max_frames,
    threshold,
    idempotency_key,
    webhook,
    webhook_events,
    heatmap,
    timeout,
    as_json,
) -> None:
    """Upload FILES: each video as a job of its own, the images together as one job (one
    image, or a batch of several). With --wait, end with one verdict line per file (--json: the
    job, or a list of the jobs when there are several) and, on stderr, one line per file on
    what it declares about its origin (provenance)."""
    import requests
    from tqdm import tqdm

    from rrr.client import ApiError, Client, WaitTimeout

    base = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
    client = Client(base, api_key=api_key)
    groups = job_groups(files)
    submitted: list[tuple[tuple[str, ...], dict]] = []
    try:
        for n, group in enumerate(groups):
            # the same key must name the same jobs on a retry, and each job needs its own
            key = idempotency_key if not idempotency_key or n == 0 else f"{idempotency_key}.{n}"
            job = client.submit(
                group,
                sample_fps=sample_fps,
                sampling=sampling,
                max_frames=max_frames,
                threshold=threshold,
                idempotency_key=key,
                webhook=webhook,
                webhook_events=webhook_events or None,
                heatmap=heatmap or None,
            )
            submitted.append((group, job))
        if wait:
            for n, (group, job) in enumerate(submitted):
                desc = job["kind"]
                if len(submitted) > 1:
                    desc += f" {Path(group[0]).name}"
                total = max(job["progress"]["total"], 1)
                with tqdm(total=total, desc=desc, unit="step") as bar:

                    def progress(seen: dict, bar=bar) -> None:
                        bar.total = max(seen["progress"]["total"], 1)
                        bar.n = seen["progress"]["done"]
                        bar.refresh()

                    job = client.wait(job["id"], timeout_s=timeout, progress=progress, poll_s=0.5)
                submitted[n] = (group, job)
    except ApiError as exc:
        fail(f"{exc.code}: {exc.message}{_already_submitted(submitted)}")
    except WaitTimeout as exc:
        fail(f"{exc}: {base}/v1/jobs/{exc.job['id']}")
    except requests.RequestException as exc:
        reason = exc.__class__.__name__
        fail(f"could not reach the API at {base}: {reason}{_already_submitted(submitted)}")
    jobs = [job for _, job in submitted]
    if as_json:
        click.echo(json.dumps(jobs[0] if len(jobs) == 1 else jobs, indent=2))
    elif not wait:
        for job in jobs:
            click.echo(f"job {job['id']} ({job['kind']}) {job['status']}: {base}/jobs/{job['id']}")
    if not wait:
        return
    for group, job in submitted:
        if job["status"] == "succeeded" and not as_json:
            for line in verdict_lines(job, Path(group[0]).name):
                click.echo(line)
        # a file's name is needed in its line only when several jobs' lines follow each other
        name = Path(group[0]).name if len(submitted) > 1 else None
        for line in provenance_lines(job, name):
            click.echo(line, err=True)  # stdout stays the verdicts (or one JSON document)
    unfinished = [job for job in jobs if job["status"] != "succeeded"]
    if unfinished:
        fail(
            "; ".join(
                f"job {job['id']} {job['status']}: {(job.get('error') or {}).get('message', '')}"
                for job in unfinished
            )
        )


def job_groups(files: Sequence[str]) -> list[tuple[str, ...]]:
    """How ``rrr submit`` splits its files into jobs: a video per job (a batch takes images
    only), every other file in one job, in the order of each job's first file. What is a
    video is guessed from the file name; the API checks the content either way."""
    videos = [(i, (f,)) for i, f in enumerate(files) if _looks_like_video(f)]
    others = [(i, f) for i, f in enumerate(files) if not _looks_like_video(f)]
    groups = videos + ([(others[0][0], tuple(f for _, f in others))] if others else [])
    return [group for _, group in sorted(groups)]


def _looks_like_video(path: str) -> bool:
    kind, _ = mimetypes.guess_type(path)
    return bool(kind and kind.startswith("video/"))


def _already_submitted(submitted: list[tuple[tuple[str, ...], dict]]) -> str:
    if not submitted:
        return ""
    ids = ", ".join(job["id"] for _, job in submitted)
    return f" (jobs already submitted: {ids})"


def provenance_summary(p: dict) -> str:
    """One line of what a file declares about its origin (``result.provenance``), e.g.
    ``C2PA valid (signer X, untrusted) · declares AI-generated [signed]``."""
    parts = []
    c2pa = p.get("c2pa")
    if c2pa:
        signer = c2pa.get("signer") or {}
        who = signer.get("common_name") or "unnamed signer"
        if signer.get("issuer"):
            who += f" of {signer['issuer']}"
        state = c2pa.get("state")
        if state in ("valid", "trusted"):
            parts.append(
                f"C2PA valid (signer {who}, {'trusted' if p.get('trusted') else 'untrusted'})"
            )
        elif state == "invalid":
            changed = any("mismatch" in code for code in c2pa.get("failures") or [])
            parts.append(
                f"C2PA invalid ({'changed after signing' if changed else 'failed validation'})"
            )
        else:
            parts.append("C2PA unreadable")
    if (p.get("xmp") or {}).get("state") == "unreadable":
        parts.append("XMP unreadable")
    declared, evidence = p.get("declared_ai_generated"), p.get("declaration_evidence")
    code = f" ({p['declared_source_type']})" if p.get("declared_source_type") else ""
    if declared is True:
        parts.append(f"declares AI-generated{code} [{evidence}]")
    elif declared is False:
        parts.append(f"declares no generative AI{code} [{evidence}]")
    generators = sorted({t["generator"] for t in p.get("metadata_traces") or []})
    if generators:
        parts.append(f"generator traces: {', '.join(generators)}")
    if not parts:
        status = p.get("status")
        if status == "none":
            return "none found (absence proves nothing)"
        errors = p.get("errors") or []
        return f"{status} ({errors[0][:80]})" if errors else str(status)
    if declared is not True:
        parts.append("no AI declaration (absence proves nothing)")
    return " · ".join(parts)


def provenance_lines(job: dict, name: str | None = None) -> list[str]:
    """One ``provenance:`` line per file of a finished job (none before it succeeds);
    ``name``: a single file's name, to put in its line."""
    result = job.get("result") or {}
    if job.get("status") != "succeeded":
        return []
    if "items" not in result:
        label = f"provenance ({name})" if name else "provenance"
        return (
            [f"{label}: {provenance_summary(result['provenance'])}"]
            if "provenance" in result
            else []
        )
    lines = []
    for item in result["items"]:
        name = item.get("filename") or f"file {item.get('index', 0) + 1}"
        if "provenance" in item:
            lines.append(f"provenance ({name}): {provenance_summary(item['provenance'])}")
        else:
            code = (item.get("error") or {}).get("code", "no file")
            lines.append(f"provenance ({name}): not read ({code})")
    return lines


@cli.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("heatmap.png"),
    show_default=True,
    help="PNG to write.",
)
def explain(image: Path, output: Path) -> None:
    """Show where the model looked: write IMAGE with a Grad-CAM overlay on every face.

    Uses the worker's own code path (same face detector, crops, model and threshold), so the
    picture matches what GET /v1/jobs/<id>/heatmap serves for the same image.
    """
    from detection.analyzer import get_analyzer
    from shared.errors import DetectionError

    require_weights()
    try:
        result, png = get_analyzer().analyze_image(image, explain=True)
    except DetectionError as exc:
        fail(f"{exc.code}: {exc.message}")
    if png is None:
        fail("no face was found in the image, so there is nothing to explain")
    output.write_bytes(png)
    click.echo(json.dumps({k: result[k] for k in ("prediction", "probability_fake", "threshold")}))
    click.echo(f"heatmap of {len(result['faces'])} face(s) written to {output}")


@cli.command()
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Checkpoint to export [default: RRR_WEIGHTS_PATH].",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="ONNX file to write [default: the checkpoint's path with .onnx].",
)
def export(checkpoint: Path | None, output: Path | None) -> None:
    """Export the checkpoint to ONNX for the ONNX Runtime engine (the default), check that both
    engines give the same probabilities and heatmaps, and record the file's sha256 in the
    model card JSON beside the checkpoint (<name>.json)."""
    import numpy as np

    from detection.detector import Detector, OnnxEngine, TorchEngine
    from detection.model import file_sha256
    from detection.network import export_onnx, load_checkpoint

    checkpoint = checkpoint or settings.weights_path
    if not checkpoint.is_file():
        fail(f"checkpoint not found: {checkpoint}")
    output = output or checkpoint.with_suffix(".onnx")
    model, config, _ = load_checkpoint(checkpoint)
    export_onnx(model, config, output)
    crops = [np.random.default_rng(i).integers(0, 255, (150, 150, 3), np.uint8) for i in range(8)]
    by_torch = Detector(TorchEngine(model), config)
    by_onnx = Detector(OnnxEngine(output, 0), config)
    gap = float(np.abs(by_torch.score(crops) - by_onnx.score(crops)).max())
    map_gap = max(float(np.abs(by_torch.gradcam(c) - by_onnx.gradcam(c)).max()) for c in crops)
    if gap > 1e-4 or map_gap > 1e-3:
        fail(
            f"the ONNX model disagrees with the checkpoint (max probability gap {gap:.2e}, "
            f"max heatmap gap {map_gap:.2e})"
        )
    entry = {
        "file": output.name,
        "sha256": file_sha256(output),
        "size_bytes": output.stat().st_size,
        "exported_from": checkpoint.name,
        "exported_by": "rrr export",
        "outputs": ["logits", "cam"],
        "max_probability_gap": gap,
        "max_heatmap_gap": map_gap,
    }
    metadata = checkpoint.with_suffix(".json")
    if metadata.is_file() and output.parent == checkpoint.parent:
        # the shipped weights' provenance file records the ONNX file beside the checkpoint
        data = json.loads(metadata.read_text())
        data["onnx"] = entry
        metadata.write_text(json.dumps(data, indent=1) + "\n")
    click.echo(json.dumps(entry))


def _register_training_commands() -> None:
    # Training needs the `train` extra; the service does not.
    try:
        from training.cli import (
            data_command,
            eval_command,
            loso_command,
            robustness_command,
            train_command,
            unfamiliar_command,
        )
    except ImportError:
        return
    cli.add_command(data_command, "data")
    cli.add_command(train_command, "train")
    cli.add_command(loso_command, "loso")
    cli.add_command(eval_command, "eval")
    cli.add_command(robustness_command, "robustness")
    cli.add_command(unfamiliar_command, "unfamiliar")


_register_training_commands()


def main() -> None:
    cli()
