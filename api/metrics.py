"""bp: GET /metrics in the Prometheus text format (open, like /healthz: scrape it internally)."""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from sqlalchemy import func, select

from shared import metrics
from shared.db import session_scope
from shared.models import Job, JobKind, JobStatus
from shared.queue import IMAGE_QUEUE, VIDEO_QUEUE, celery_app

bp = Blueprint("metrics", __name__)


def _queue_depth(queue: str) -> float:
    try:
        with celery_app.connection_for_read() as conn:
            return float(conn.default_channel.queue_declare(queue, passive=True).message_count)
    except Exception:
        return float("nan")  # broker unreachable: say "unknown", not 0


class _Collector:
    """Reads everything at scrape time, so any number of API processes report the same."""

    def collect(self):
        with session_scope() as session:
            rows = session.execute(
                select(Job.status, Job.kind, func.count()).group_by(Job.status, Job.kind)
            ).all()
            counters = metrics.read_all(session)
        jobs = GaugeMetricFamily(
            "rrr_jobs", "Jobs currently stored, by status and kind", labels=["status", "kind"]
        )
        counts = {(status, kind): n for status, kind, n in rows}
        for status in JobStatus:
            for kind in JobKind:
                jobs.add_metric([status.value, kind.value], counts.get((status, kind), 0))
        yield jobs

        depth = GaugeMetricFamily(
            "rrr_queue_depth", "Messages waiting in the broker", labels=["queue"]
        )
        for queue in (IMAGE_QUEUE, VIDEO_QUEUE):
            depth.add_metric([queue], _queue_depth(queue))
        yield depth

        failed = CounterMetricFamily(
            "rrr_job_failures", "Failed jobs by error code", labels=["code"]
        )
        for code, value in sorted(metrics.failures(counters).items()):
            failed.add_metric([code], value)
        yield failed

        latency = HistogramMetricFamily(
            "rrr_stage_seconds", "Time spent per processing stage", labels=["stage"]
        )
        for stage, (buckets, total) in metrics.histograms(counters).items():
            latency.add_metric([stage], buckets, total)
        yield latency


@bp.get("/metrics")
def scrape():
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")
