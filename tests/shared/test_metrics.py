"""Latency histograms: one counter per observation, cumulative when read (and the cumulative
counters written before still count)."""

from __future__ import annotations

from shared import metrics
from shared.db import session_scope


def test_histogram_buckets_are_cumulative_when_read(migrated):
    stage = "test_stage_cumulative"
    with session_scope() as session:
        for seconds in (0.02, 0.02, 0.3, 400.0):
            metrics.observe(session, {stage: seconds})
        # an observation of 0.02 s written in the earlier, already-cumulative form
        earlier = {f"latency_bucket|{stage}|{le}": 1.0 for le in metrics.LATENCY_BUCKETS_S[1:]}
        metrics.add(session, {**earlier, f"latency_count|{stage}": 1.0})
    with session_scope() as session:
        buckets, total = metrics.histograms(metrics.read_all(session))[stage]
    counts = dict(buckets)
    assert counts["0.01"] == 0 and counts["0.025"] == 3 and counts["0.25"] == 3
    assert counts["0.5"] == 4 and counts["300.0"] == 4 and counts["+Inf"] == 5
    assert abs(total - 400.34) < 1e-9
    values = [count for _, count in buckets]
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
