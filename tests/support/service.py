"""Run the service's own processes and talk to them over HTTP, as a user's script would: the
benchmarks and the integration tests both start `rrr api` / `rrr worker` through this module."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support import REPO

RRR = [sys.executable, "-m", "rrr"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """Starts service processes with a given environment and stops them all at the end."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_dir = log_dir
        self.running: list[tuple[subprocess.Popen, Path]] = []

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*RRR, *args], env=self.env, cwd=REPO, capture_output=True, text=True, timeout=300
        )

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        """Start ``rrr ARGS...`` in the background (``env``: extra variables for this one)."""
        return self.start_command(args[0], [*RRR, *args], **env)

    def start_command(self, label: str, command: list[str], **env: str) -> subprocess.Popen:
        log = self.log_dir / f"{label}-{len(self.running)}.log"
        with open(log, "w") as out:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                command, env={**self.env, **env}, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        self.running.append((process, log))
        return process

    def stop(self) -> None:
        for process, _ in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.running:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for _, log in self.running)


class Client:
    """A small HTTP client for the running service (what a user's script would do)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or still starting
                pass
            time.sleep(0.3)
        raise AssertionError(f"service at {self.base} not ready after {timeout} s")

    def submit(self, paths: list[Path], field: str = "file", **form) -> requests.Response:
        files = [(field, (p.name, p.read_bytes())) for p in paths]
        return requests.post(f"{self.base}/v1/jobs", files=files, data=form, timeout=60)

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"{self.base}{path}", timeout=30, **kwargs)

    def wait_heatmap(self, job_id: str, timeout: float = 60) -> requests.Response:
        """GET the job's heatmap, following 202 + Retry-After until a worker has made it."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.get(f"/v1/jobs/{job_id}/heatmap")
            if response.status_code != 202 or time.monotonic() > deadline:
                return response
            time.sleep(float(response.headers.get("Retry-After", "1")) / 4)

    def wait_job(self, job_id: str, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/v1/jobs/{job_id}").json()
            if job["status"] not in ("queued", "running"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} not finished after {timeout} s: {job}")


def start_apis(processes: Processes, count: int = 2) -> list[str]:
    """Schema, then ``count`` API processes sharing the database (no worker: jobs stay
    queued); their base URLs once each is ready."""
    upgrade = processes.run("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    bases = []
    for _ in range(count):
        port = free_port()
        processes.start("api", "--port", str(port))
        bases.append(f"http://127.0.0.1:{port}")
    for base in bases:
        Client(base).wait_ready()
    return bases


def start_service(processes: Processes, workers: int = 1) -> Client:
    """Schema upgrade, then `rrr api` on a free port and ``workers`` × `rrr worker`; ready."""
    upgrade = processes.run("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    port = free_port()
    processes.start("api", "--port", str(port))
    for _ in range(workers):
        processes.start("worker")
    client = Client(f"http://127.0.0.1:{port}")
    client.wait_ready()
    return client
