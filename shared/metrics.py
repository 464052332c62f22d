"""Numbers for /metrics that every process contributes to, kept in SQL (``counters`` table).

Workers add stage latencies (as cumulative histogram buckets) and failure counts; the API reads
them, plus live job counts and queue depth, when Prometheus scrapes. Keeping them in the
database makes them survive restarts and add up across any number of workers and hosts.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shared.models import Counter

# seconds; wide enough for a 20 ms crop and a 10-minute video segment
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def _bucket_name(stage: str, le: float) -> str:
    """Cumulative bucket counters, as written before ``latency_in`` (still read and added)."""
    return f"latency_bucket|{stage}|{'+Inf' if math.isinf(le) else le}"


def _in_bucket_name(stage: str, le: float) -> str:
    """Observations that fell in this bucket alone (above the one below it): one counter per
    observation instead of one per bucket at or above it, cumulated when read."""
    return f"latency_in|{stage}|{le}"


def add(session: Session, increments: dict[str, float]) -> None:
    """Add to named counters in one statement (an upsert on SQLite and PostgreSQL)."""
    if not increments:
        return
    dialect = session.get_bind().dialect.name
    if dialect not in _UPSERT:
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        table = Counter.__table__
        statement = insert(table).values(name=bindparam("b_name"), value=bindparam("b_value"))
        _UPSERT[dialect] = statement.on_conflict_do_update(
            index_elements=[table.c.name], set_={"value": table.c.value + statement.excluded.value}
        )
    # one statement built once, run for every row (sorted: concurrent writers lock rows in the
    # same order); building a many-row statement anew each time cost more than running it
    rows = [{"b_name": name, "b_value": value} for name, value in sorted(increments.items())]
    session.connection().execute(_UPSERT[dialect], rows)


_UPSERT: dict[str, Any] = {}  # by dialect name


def observe(
    session: Session, seconds_by_stage: dict[str, float], failure: str | None = None
) -> None:
    """Record one job's stage latencies (and its failure code, if it failed)."""
    increments: dict[str, float] = {}
    for stage, seconds in seconds_by_stage.items():
        increments[f"latency_sum|{stage}"] = seconds
        increments[f"latency_count|{stage}"] = 1  # also the +Inf bucket
        # the upsert's rows were a tenth of an image job's worker CPU when every bucket at or
        # above the value got one; now only the bucket it falls in does
        le = next((le for le in LATENCY_BUCKETS_S if seconds <= le), None)
        if le is not None:
            increments[_in_bucket_name(stage, le)] = 1
    if failure:
        increments[f"failures|{failure}"] = 1
    add(session, increments)


def read_all(session: Session) -> dict[str, float]:
    return {name: value for name, value in session.execute(select(Counter.name, Counter.value))}


def histograms(counters: dict[str, float]) -> dict[str, tuple[list[tuple[str, float]], float]]:
    """stage -> ([(le, cumulative count)], sum) in the shape Prometheus expects."""
    stages = {name.split("|")[1] for name in counters if name.startswith("latency_count|")}
    out = {}
    for stage in sorted(stages):
        buckets, running = [], 0.0
        for le in LATENCY_BUCKETS_S:
            running += counters.get(_in_bucket_name(stage, le), 0.0)
            buckets.append((str(le), running + counters.get(_bucket_name(stage, le), 0.0)))
        buckets.append(("+Inf", counters.get(f"latency_count|{stage}", 0.0)))
        out[stage] = (buckets, counters.get(f"latency_sum|{stage}", 0.0))
    return out


def failures(counters: dict[str, float]) -> dict[str, float]:
    return {
        name.split("|", 1)[1]: value
        for name, value in counters.items()
        if name.startswith("failures|")
    }
