"""rrr.client: retries and errors against a real HTTP server on 127.0.0.1 that answers as told,
and every endpoint against the app (jobs run by the workers' own tasks, in this process). The
same client against real `rrr api` and `rrr worker` processes: tests/integration/test_client.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rrr.client import ApiError, Client, WaitTimeout


class Scripted(BaseHTTPRequestHandler):
    """Answers each request with the next (status, headers, body) of ``script``."""

    script: list[tuple[int, dict[str, str], dict]] = []
    seen: list[str] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.seen.append(f"{self.command} {self.path} key={self.headers.get('X-API-Key')}")
        status, headers, body = self.script.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    Scripted.script, Scripted.seen = [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _error(code: str) -> dict:
    return {"error": {"code": code, "message": f"{code} happened"}}


def test_429_and_503_are_retried_after_retry_after(server, tmp_path):
    slept: list[float] = []
    image = tmp_path / "a.jpg"
    image.write_bytes(b"\xff\xd8\xff not really")
    job = {"id": "0" * 32, "status": "queued"}
    Scripted.script = [
        (429, {"Retry-After": "3"}, _error("rate_limited")),
        (503, {"Retry-After": "7"}, _error("database_unavailable")),
        (503, {}, _error("broker_unavailable")),
        (202, {}, job),
    ]
    client = Client(server, api_key="k1", sleep=slept.append)
    assert client.submit([image]) == job
    assert slept == [3.0, 7.0, 1.0]  # the server's Retry-After; 1 s when it gave none
    assert Scripted.seen == ["POST /v1/jobs key=k1"] * 4  # the upload sent afresh each time


def test_retries_run_out_and_other_errors_raise_at_once(server):
    slept: list[float] = []
    Scripted.script = [(429, {"Retry-After": "2"}, _error("queue_full"))] * 3
    client = Client(server, retries=2, sleep=slept.append)
    with pytest.raises(ApiError) as caught:
        client.jobs()
    assert caught.value.status == 429 and caught.value.code == "queue_full"
    assert caught.value.retry_after_s == 2.0 and slept == [2.0, 2.0]
    Scripted.script = [(404, {}, _error("job_not_found"))]
    with pytest.raises(ApiError) as caught:
        client.job("f" * 32)
    assert caught.value.code == "job_not_found" and slept == [2.0, 2.0]
    # the prototype's string errors are read too
    Scripted.script = [(400, {}, {"error": "No file uploaded", "code": "missing_field"})]
    with pytest.raises(ApiError) as caught:
        client.request("POST", "/predict")
    assert (caught.value.code, caught.value.message) == ("missing_field", "No file uploaded")


def test_wait_reports_progress_and_times_out(server):
    slept: list[float] = []
    running = {"id": "1" * 32, "status": "running", "progress": {"done": 1, "total": 4}}
    done = {**running, "status": "succeeded", "progress": {"done": 4, "total": 4}}
    Scripted.script = [(200, {}, running), (200, {}, running), (200, {}, done)]
    seen: list[int] = []
    client = Client(server, sleep=slept.append)
    job = client.wait(running["id"], progress=lambda j: seen.append(j["progress"]["done"]))
    assert job == done and seen == [1, 1] and len(slept) == 2
    Scripted.script = [(200, {"Retry-After": "1"}, running)] * 3
    with pytest.raises(WaitTimeout):
        Client(server, sleep=lambda s: None).wait(running["id"], timeout_s=0)


def test_every_endpoint_in_process(client, monkeypatch, face_crops, video_paths, tmp_path):
    """Each method against the app itself, jobs run as a worker would."""
    import requests

    from tests.support.inprocess_http import session_factory
    from tests.support.jobs import run_job_here

    monkeypatch.setattr(
        requests, "Session", session_factory(client, "http://rrr.test", run_job_here)
    )
    rrr = Client("http://rrr.test")
    assert rrr.health() == {"status": "ok"} and rrr.ready()["status"] == "ready"
    assert rrr.index()["status"] == "API running"
    assert "/v1/jobs" in rrr.openapi()["paths"] and "rrr_jobs" in rrr.metrics()
    image = rrr.submit([face_crops["fake"][4]])
    finished = rrr.wait(image["id"])
    assert finished["status"] == "succeeded" and finished["result"]["prediction"]
    assert rrr.heatmap(image["id"]).startswith(b"\x89PNG")
    video = rrr.submit([video_paths[2]], sample_fps=2, max_frames=8)
    assert rrr.wait(video["id"], progress=lambda job: None)["status"] == "succeeded"
    frames = list(rrr.iter_frames(video["id"]))
    assert [f["index"] for f in frames] == list(range(len(frames))) and frames
    assert {j["id"] for j in rrr.iter_jobs(kind="video")} >= {video["id"]}
    assert rrr.jobs(limit=1)["jobs"][0]["id"] == video["id"]
    queued = rrr.submit([face_crops["real"][3]])
    assert rrr.cancel(queued["id"])["status"] == "canceled"
    assert rrr.cancel(queued["id"])["status"] == "canceled"  # repeatable
    rrr.delete(queued["id"])
    with pytest.raises(ApiError) as caught:
        rrr.job(queued["id"])
    assert caught.value.status == 404
    import api.predict

    wait = api.predict._wait
    monkeypatch.setattr(api.predict, "_wait", lambda job_id: run_job_here(job_id) or wait(job_id))
    one = rrr.predict(face_crops["real"][4])
    assert one["prediction"] in ("FAKE", "REAL") and isinstance(one["threshold_applied"], bool)
    batch = rrr.predict_batch(face_crops["fake"][:2])
    assert batch["summary"]["total"] == 2


def test_heatmap_waits_while_a_worker_draws_it(server):
    preparing = {"status": "preparing", "message": "the heatmap is being made"}
    drawn = {"stand-in": "for the PNG"}  # the scripted server answers JSON only
    Scripted.script = [(202, {"Retry-After": "2"}, preparing)] * 2 + [(200, {}, drawn)]
    slept: list[float] = []
    body = Client(server, sleep=slept.append).heatmap("a" * 32)
    assert json.loads(body) == drawn and slept == [2.0, 2.0]
    Scripted.script = [(202, {"Retry-After": "1"}, preparing)]
    with pytest.raises(TimeoutError):
        Client(server, sleep=slept.append).heatmap("a" * 32, timeout_s=0)
