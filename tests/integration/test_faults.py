"""Faults survived, with real processes: a worker killed mid-video, a broker that restarts empty,
a database that goes away, an API restart. Nothing is lost and nothing hangs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from tests.support.service import Client, Processes, free_port, start_service

pytestmark = pytest.mark.integration

FAST_RECOVERY = {
    "RRR_STALE_AFTER_S": "4",  # a worker silent this long is presumed dead
    "RRR_REQUEUE_AFTER_S": "3",  # a queued job not picked up this long is re-published
    "RRR_SWEEP_INTERVAL_S": "1",
}


def _video(video_paths, name="anndvqgoko.mp4"):
    return next(p for p in video_paths if p.name == name)


def test_worker_killed_mid_video_job_still_succeeds(
    processes: Processes, redis_url, postgres_url, video_paths
):
    processes.env.update(RRR_DATABASE_URL=postgres_url, RRR_BROKER_URL=redis_url, **FAST_RECOVERY)
    api = start_service(processes)
    worker = processes.running[-1][0]
    job = api.submit([_video(video_paths)], sample_fps="4").json()
    deadline = time.monotonic() + 120
    while api.get(f"/v1/jobs/{job['id']}").json()["progress"]["done"] == 0:
        assert time.monotonic() < deadline, "the job never made progress"
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    processes.start("worker")
    finished = api.wait_job(job["id"], timeout=300)
    assert finished["status"] == "succeeded", finished
    page = api.get(f"/v1/jobs/{job['id']}/frames", params={"limit": 1000}).json()
    assert page["total"] == finished["result"]["frames_analyzed"] == 40
    assert [f["index"] for f in page["frames"]] == list(range(40))


class RedisServer:
    """A private Redis (nothing on disk), so the test can kill and restart it freely."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture()
def private_redis():
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is needed for the broker restart test")
        pytest.skip("redis-server is not installed")
    server = RedisServer(free_port())
    server.start()
    yield server
    server.kill()


def test_broker_restart_loses_no_job(processes: Processes, private_redis, postgres_url, face_crops):
    processes.env.update(
        RRR_DATABASE_URL=postgres_url,
        RRR_BROKER_URL=f"redis://127.0.0.1:{private_redis.port}/0",
        **FAST_RECOVERY,
    )
    assert processes.run("db", "upgrade").returncode == 0
    port = free_port()
    processes.start("api", "--port", str(port))
    api = Client(f"http://127.0.0.1:{port}")
    api.wait_ready()
    # jobs queued while no worker runs, then the broker dies with their messages
    queued = [api.submit([face_crops["real"][i]]).json()["id"] for i in range(3)]
    private_redis.kill()
    # submissions while the broker is down are still accepted and recorded
    during = api.submit([face_crops["fake"][0]])
    assert during.status_code == 202, during.text
    private_redis.start()
    processes.start("worker")
    for job_id in [*queued, during.json()["id"]]:
        assert api.wait_job(job_id, timeout=120)["status"] == "succeeded"


class TcpProxy:
    """Forwards a local port to PostgreSQL; ``cut()`` makes the database unreachable."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.connections: list[socket.socket] = []
        self.listener: socket.socket | None = None

    def open(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=True)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self) -> None:
        assert self.listener is not None
        # shutdown() wakes the thread blocked in accept(); close() alone would not on Linux
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def test_database_outage_answers_503_then_recovers(
    processes: Processes, redis_url, postgres_url, face_crops
):
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.open()
    via_proxy = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    processes.env.update(RRR_DATABASE_URL=via_proxy, RRR_BROKER_URL=redis_url, **FAST_RECOVERY)
    api = start_service(processes)
    before = api.submit([face_crops["real"][0]]).json()
    assert api.wait_job(before["id"])["status"] == "succeeded"

    proxy.cut()
    for response in (
        api.get(f"/v1/jobs/{before['id']}"),
        api.get("/v1/jobs"),
        api.submit([face_crops["real"][1]]),
    ):
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "database_unavailable"
    ready = api.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["database"] is False
    assert api.get("/healthz").status_code == 200  # alive, just not ready

    proxy.open()
    deadline = time.monotonic() + 30
    while api.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the API did not recover by itself"
        time.sleep(0.5)
    after = api.submit([face_crops["real"][2]]).json()
    assert api.wait_job(after["id"])["status"] == "succeeded"
    assert api.get(f"/v1/jobs/{before['id']}").json()["status"] == "succeeded"


def test_api_restart_loses_no_job(processes: Processes, redis_url, postgres_url, face_crops):
    processes.env.update(RRR_DATABASE_URL=postgres_url, RRR_BROKER_URL=redis_url, **FAST_RECOVERY)
    api = start_service(processes)
    ids = [api.submit([face_crops["fake"][i]]).json()["id"] for i in range(4)]
    api_process = processes.running[0][0]
    api_process.send_signal(signal.SIGTERM)
    api_process.wait(30)
    processes.start("api", "--port", api.base.rsplit(":", 1)[1])
    api.wait_ready()
    for job_id in ids:
        assert api.wait_job(job_id)["status"] == "succeeded"
    listed = {job["id"] for job in api.get("/v1/jobs", params={"limit": 100}).json()["jobs"]}
    assert set(ids) <= listed
    assert requests.get(f"{api.base}/healthz", timeout=5).status_code == 200
