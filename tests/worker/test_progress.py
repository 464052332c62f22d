"""Honest progress: a video's progress is written down by time, not in blocks of frames; a
keyframes job counts the keyframes it really analyses; the ETA follows a smoothed pace and
never rises while progress stands still."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import update

from shared import jobs, segments
from shared.db import session_scope
from shared.models import Job, JobKind
from tests.support.jobs import STALE, new_job, run_job_here


def _submit_video(client, path, **form) -> str:
    response = client.post(
        "/v1/jobs",
        data={"file": (io.BytesIO(path.read_bytes()), "clip.mp4"), **form},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


@pytest.fixture()
def progress_writes(monkeypatch):
    """Every progress write of a segment: (rows written, the job's done and total after it)."""
    writes: list[tuple[int, int, int]] = []
    original = segments.add_segment_frames

    def recording(session, job_id, index, attempt, rows):
        ours = original(session, job_id, index, attempt, rows)
        job = session.get(Job, job_id)
        session.refresh(job)
        writes.append((len(rows), job.progress_done, job.progress_total))
        return ours

    monkeypatch.setattr(segments, "add_segment_frames", recording)
    return writes


def test_progress_is_written_by_time_not_by_count(
    client, video_paths, monkeypatch, progress_writes
):
    import worker.videos

    clip = next(p for p in video_paths if p.name == "knqhpwoigk.mp4")
    # no interval: every frame is a write of its own
    monkeypatch.setattr(worker.videos, "PROGRESS_INTERVAL_S", 0.0)
    run_job_here(_submit_video(client, clip, sample_fps="2"))
    assert [rows for rows, _, _ in progress_writes] == [1] * 20
    assert [done for _, done, _ in progress_writes] == list(range(1, 21))
    # a long interval: the first frame at once (progress moves early), the rest at the end
    progress_writes.clear()
    monkeypatch.setattr(worker.videos, "PROGRESS_INTERVAL_S", 3600.0)
    job_id = _submit_video(client, clip, sample_fps="2")
    run_job_here(job_id)
    assert [rows for rows, _, _ in progress_writes] == [1, 19]
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded" and job["progress"]["done"] == 20


def test_keyframes_job_counts_the_keyframes_it_analyses(client, video_paths, progress_writes):
    # this clip's keyframes are frames 0 and 163: 2 of the 10 samples at 1 fps
    clip = next(p for p in video_paths if p.name == "abofeumbvv.mp4")
    job_id = _submit_video(client, clip, sample_fps="1", sampling="keyframes")
    run_job_here(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["result"]["frames_analyzed"] == 2
    assert job["progress"] == {"done": 2, "total": 2, "eta_s": None}
    # the total was the real number while it ran, too
    assert {total for _, _, total in progress_writes} == {2}


class Clock:
    """utcnow for the lifecycle and the API, moved by hand."""

    def __init__(self, monkeypatch) -> None:
        from shared.models import utcnow

        self.now = utcnow()
        for module in ("shared.jobs", "api.schemas"):
            monkeypatch.setattr(f"{module}.utcnow", lambda: self.now)

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_eta_follows_a_smoothed_pace_and_never_rises_while_stalled(client, monkeypatch):
    clock = Clock(monkeypatch)
    job_id = new_job(JobKind.BATCH)
    with session_scope() as session:
        attempt = jobs.mark_running(session, job_id, STALE)
        session.execute(update(Job).where(Job.id == job_id).values(started_at=clock.now))
        assert jobs.set_progress(session, job_id, attempt, 0, 100)

    def eta() -> float | None:
        return client.get(f"/v1/jobs/{job_id}").get_json()["progress"]["eta_s"]

    def step(done: int) -> None:
        with session_scope() as session:
            assert jobs.set_progress(session, job_id, attempt, done)

    # a steady step per second: 40 steps done, 60 to go
    for done in range(1, 41):
        clock.tick(1.0)
        step(done)
    assert eta() == pytest.approx(60.0, abs=0.5)
    # progress stalls: the estimate only counts down, then gives up rather than rise
    seen = []
    for _ in range(70):
        clock.tick(1.0)
        seen.append(eta())
    numbers = [s for s in seen if s is not None]
    assert numbers == sorted(numbers, reverse=True) and numbers[0] == pytest.approx(59.0, abs=0.5)
    assert seen[-1] is None and None not in seen[: len(numbers)]
    # progress resumes at the same pace: a new estimate, longer for the slow step (its cause),
    # shrinking again as the steady pace outweighs it
    estimates = []
    for done in range(41, 71):
        clock.tick(1.0)
        step(done)
        estimates.append(eta())
    assert None not in estimates and estimates == sorted(estimates, reverse=True)
    # the stall is one slow step among many, not the new pace
    assert 59 < estimates[0] < 4 * 59 and estimates[-1] < 2 * 30  # 59, then 30 steps to go
