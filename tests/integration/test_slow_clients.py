"""Slow and stalled clients cannot starve the production HTTP layout (`rrr api`: waitress, as
the README and docker-compose.yml run it): /healthz answers within a second while 40 clients
stall mid-body, and while 34 synchronous /predict calls wait for jobs that never run."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support import media
from tests.support.service import Client, Processes, free_port

pytestmark = pytest.mark.integration

STALLED = 40
PROBE_S = 12.0


def stall(base: str, clients: int) -> list[socket.socket]:
    """``clients`` connections that send headers and ~70 bytes of a 100 kB body, then stop."""
    host, port = base.removeprefix("http://").split(":")
    head = (
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
    )
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    out = []
    for _ in range(clients):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(head + body[:70])
        out.append(sock)
    return out


def probe_health(base: str, seconds: float) -> list[float | None]:
    """GET /healthz every 0.5 s for ``seconds``: each answer's latency, or None (no answer
    within 1 s)."""
    latencies: list[float | None] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            ok = requests.get(f"{base}/healthz", timeout=1.0).status_code == 200
            latencies.append(time.monotonic() - started if ok else None)
        except requests.RequestException:
            latencies.append(None)
        time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))
    return latencies


def _production_api(processes: Processes, *args: str, **env: str) -> str:
    processes.env.update(env)
    assert processes.run("db", "upgrade").returncode == 0
    port = free_port()
    processes.start("api", "--port", str(port), *args)  # what the README and compose file run
    base = f"http://127.0.0.1:{port}"
    Client(base).wait_ready()
    return base


def test_health_answers_while_clients_stall_mid_body(processes, postgres_url, redis_url):
    base = _production_api(processes, RRR_DATABASE_URL=postgres_url, RRR_BROKER_URL=redis_url)
    sockets = stall(base, STALLED)
    try:
        latencies = probe_health(base, PROBE_S)
        # and a real submission still goes through
        job = requests.post(
            f"{base}/v1/jobs", files={"file": ("a.png", media.image_bytes())}, timeout=5
        )
        assert job.status_code == 202, job.text
    finally:
        for sock in sockets:
            sock.close()
    print(f"\nstalled {STALLED}: /healthz {len(latencies)} probes, max {max(latencies):.3f} s")
    assert None not in latencies and max(latencies) < 1.0, latencies


@pytest.mark.parametrize(
    ("threads", "waiting"),
    [(16, 8), (4, 2)],  # the defaults, and the compose file's API service
    ids=["defaults", "compose"],
)
def test_health_answers_while_predict_calls_wait(
    processes, postgres_url, redis_url, threads, waiting
):
    """No worker runs, so every /predict waits; waits may hold only RRR_SYNC_MAX_WAITING of the
    request threads, and the rest are told at once to come back later."""
    base = _production_api(
        processes,
        "--threads",
        str(threads),
        RRR_DATABASE_URL=postgres_url,
        RRR_BROKER_URL=redis_url,
        RRR_SYNC_TIMEOUT_S="8",
        RRR_SYNC_MAX_WAITING=str(waiting),
    )
    image = media.image_bytes(size=(32, 32))

    def predict(i: int) -> int:
        response = requests.post(f"{base}/predict", files={"file": (f"{i}.png", image)}, timeout=30)
        assert response.headers["Content-Type"].startswith("application/json")
        return response.status_code

    with ThreadPoolExecutor(34) as pool:
        waits = [pool.submit(predict, i) for i in range(34)]
        time.sleep(1.0)
        latencies = probe_health(base, 5.0)
        statuses = sorted(w.result() for w in waits)
    print(f"\n34 /predict waits: {statuses}; /healthz max {max(latencies):.3f} s")
    assert None not in latencies and max(latencies) < 1.0, latencies
    assert statuses.count(504) == waiting and statuses.count(429) == 34 - waiting, statuses
