"""The service across hosts that share no disk: the API and two workers, each on its own host
(network namespace, mount namespace with a private /tmp, host name), reaching PostgreSQL, Redis
and the object store over the links the test creates. Uploads live in the object store only.

Run with ``pytest -m multihost``; needs root. Elsewhere these tests are skipped with the reason;
in CI (CI=true) as root they must run, so a failure to make namespaces fails them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support import hosts
from tests.support.s3 import S3Server
from tests.support.service import Client, Processes, start_service

pytestmark = [pytest.mark.multihost, pytest.mark.integration]

HOST_VAR = "/tmp/rrr-host"  # each host's own RRR_VAR_DIR, on its private /tmp
COMMON = {"RRR_SEGMENT_SECONDS": "2", "RRR_INFERENCE_THREADS": "1"}
FAST_RECOVERY = {"RRR_STALE_AFTER_S": "4", "RRR_REQUEUE_AFTER_S": "3", "RRR_SWEEP_INTERVAL_S": "1"}


@pytest.fixture()
def network():
    reason = hosts.unavailable()
    if reason is not None:
        message = f"multi-host tests need namespaces: {reason}"
        if os.environ.get("CI") == "true" and os.geteuid() == 0:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    net = hosts.Network()
    yield net
    net.close()


def _wait_port(host: str, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {host}:{port}"
            time.sleep(0.2)


class Cluster:
    """The API host and worker hosts, with the services they share on the service address."""

    def __init__(
        self,
        network: hosts.Network,
        processes: Processes,
        redis_url: str,
        postgres_url: str,
        tmp_path: Path,
        env: dict[str, str],
    ) -> None:
        self.network, self.processes = network, processes
        service = network.service_address
        self.s3 = S3Server(tmp_path / "moto.log", host=service)
        processes.running.append((self.s3.process, tmp_path / "moto.log"))  # stopped with them
        processes.start_command(
            "forward",
            [
                sys.executable,
                "-m",
                "tests.support.forward",
                f"{service}:6379=127.0.0.1:6379",
                f"{service}:5432=127.0.0.1:5432",
            ],
        )
        _wait_port(service, 6379)
        _wait_port(service, 5432)
        self.bucket = self.s3.new_bucket()
        self.env = {
            **env,
            **self.s3.env(self.bucket, prefix="rrr"),
            "RRR_DATABASE_URL": postgres_url.replace("127.0.0.1", service),
            "RRR_BROKER_URL": redis_url.replace("127.0.0.1", service),
            "RRR_VAR_DIR": HOST_VAR,
        }
        self.workers: dict[str, hosts.Host] = {}
        self.logs: dict[str, Path] = {}

    def start_api(self) -> Client:
        host = self.network.add_host("api")
        upgrade = subprocess.run(
            host.command([sys.executable, "-m", "rrr", "db", "upgrade"]),
            env={**self.processes.env, **self.env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert upgrade.returncode == 0, upgrade.stderr
        argv = [sys.executable, "-m", "rrr", "api", "--host", host.address, "--port", "8000"]
        self.processes.start_command("api", host.command(argv), **self.env)
        client = Client(f"http://{host.address}:8000")
        client.wait_ready()
        return client

    def start_worker(self, name: str) -> None:
        host = self.network.add_host(name)
        argv = [sys.executable, "-m", "rrr", "worker", "--name", f"rrr@{name}"]
        self.processes.start_command(name, host.command(argv), **self.env)
        self.workers[name] = host
        self.logs[name] = self.processes.running[-1][1]

    def wait_workers_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        for name, log in self.logs.items():
            while "model loaded" not in log.read_text():
                assert time.monotonic() < deadline, f"worker {name} never loaded the model"
                time.sleep(0.3)

    def segments_done_by(self, name: str, job_id: str) -> int:
        return self.logs[name].read_text().count(f"job {job_id}: segment")

    def files_of(self, name: str, job_id: str) -> list[str]:
        """What worker host ``name`` holds for the job on its private /tmp (seen from inside)."""
        pid = next(
            pid
            for pid in self.workers[name].pids()
            if b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
        listing = subprocess.run(
            ["nsenter", "-t", str(pid), "-m", "ls", f"{HOST_VAR}/cache/{job_id}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return [f for f in listing.stdout.split() if not f.endswith(".lock")]


def _video(video_paths, name: str) -> Path:
    return next(p for p in video_paths if p.name == name)


def _run_video(api: Client, video: Path, **form) -> tuple[str, dict, list[dict]]:
    submitted = api.submit([video], **form)
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    done = api.wait_job(job["id"], timeout=400)
    assert done["status"] == "succeeded", done
    frames = api.get(f"/v1/jobs/{job['id']}/frames", params={"limit": 1000}).json()["frames"]
    return job["id"], done["result"], frames


def test_two_worker_hosts_give_the_rows_of_one_local_worker(
    network, processes: Processes, redis_url, postgres_url, tmp_path, video_paths
):
    video = _video(video_paths, "western_fake.mp4")
    # the reference: one worker on this machine, uploads on its local disk
    processes.env.update(RRR_DATABASE_URL=postgres_url, RRR_BROKER_URL=redis_url, **COMMON)
    _, local_result, local_frames = _run_video(start_service(processes, 1), video, sample_fps="2")
    processes.stop()
    processes.running.clear()

    cluster = Cluster(network, processes, redis_url, postgres_url, tmp_path, COMMON)
    api = cluster.start_api()
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    cluster.wait_workers_ready()
    job_id, result, frames = _run_video(api, video, sample_fps="2")

    assert result["segments"]["count"] == local_result["segments"]["count"] >= 5
    assert frames == local_frames
    for key in ("prediction", "probability_fake", "frames_with_faces", "suspicious_segments"):
        assert result[key] == local_result[key]
    # both hosts took part, each downloaded the video once into its own private cache, and
    # nothing of it reached this machine's /tmp
    for name in ("w1", "w2"):
        assert cluster.segments_done_by(name, job_id) >= 1, cluster.logs[name].read_text()[-2000:]
        assert cluster.files_of(name, job_id) == ["0.mp4"]
    assert not Path(HOST_VAR).exists()
    assert f"rrr/{job_id}/0.mp4" in cluster.s3.keys(cluster.bucket)


def test_a_worker_host_that_dies_mid_job_is_recovered(
    network, processes: Processes, redis_url, postgres_url, tmp_path, video_paths
):
    cluster = Cluster(
        network, processes, redis_url, postgres_url, tmp_path, {**COMMON, **FAST_RECOVERY}
    )
    api = cluster.start_api()
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    cluster.wait_workers_ready()
    submitted = api.submit([_video(video_paths, "anndvqgoko.mp4")], sample_fps="4")
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()

    # wait until both hosts hold a segment of the job, then take one host away
    engine = create_engine(postgres_url)
    running = text("SELECT count(*) FROM segments WHERE job_id = :id AND status = 'running'")
    deadline = time.monotonic() + 180
    with engine.connect() as conn:
        while conn.execute(running, {"id": job["id"]}).scalar() < 2:
            assert time.monotonic() < deadline, "the two hosts never worked on the job at once"
            time.sleep(0.05)
            conn.commit()
    cluster.workers["w2"].power_off()
    engine.dispose()

    finished = api.wait_job(job["id"], timeout=400)
    assert finished["status"] == "succeeded", finished
    page = api.get(f"/v1/jobs/{job['id']}/frames", params={"limit": 1000}).json()
    assert page["total"] == finished["result"]["frames_analyzed"] == 40
    assert [f["index"] for f in page["frames"]] == list(range(40))
    assert "re-published" in cluster.logs["w1"].read_text()
