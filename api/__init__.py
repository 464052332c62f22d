"""The HTTP API: ``create_app`` builds the Flask app. It never imports torch or the worker."""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from shared.config import settings
from shared.logs import configure_logging, current_job


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    # Flask answers 413 from Content-Length alone, before the body is read or stored.
    app.config.from_mapping(MAX_CONTENT_LENGTH=settings.max_upload_bytes)
    if test_config:
        app.config.from_mapping(test_config)
    app.json.sort_keys = False
    # "/v1//jobs" is no route (a JSON 404), not an HTML redirect to "/v1/jobs"
    app.url_map.merge_slashes = False
    configure_logging()

    from api import multipart

    multipart.install()  # the same form parsing, cheaper (api/multipart.py)

    from api import errors, health, jobs, metrics, predict, security, web

    errors.register_error_handlers(app)
    security.init_app(app)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(predict.bp)
    app.register_blueprint(web.bp)

    @app.before_request
    def _log_job_id() -> None:
        # every log line of a request about one job carries its id
        current_job.set((request.view_args or {}).get("job_id"))

    return app
