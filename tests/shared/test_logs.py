from __future__ import annotations

import json
import logging

from shared.logs import JsonFormatter, current_job


def test_log_lines_are_json_with_the_job_id():
    formatter = JsonFormatter()
    record = logging.LogRecord(
        "rrr.worker", logging.INFO, __file__, 1, "job %s: done", ("x",), None
    )
    token = current_job.set("0123456789abcdef0123456789abcdef")
    try:
        line = json.loads(formatter.format(record))
    finally:
        current_job.reset(token)
    assert line["job_id"] == "0123456789abcdef0123456789abcdef"
    assert line["message"] == "job x: done" and line["level"] == "INFO"
    assert "job_id" not in json.loads(formatter.format(record))
