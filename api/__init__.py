"""The HTTP API: ``create_app`` builds the Flask app. It never imports torch or the worker."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from shared.config import settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    # Flask answers 413 from Content-Length alone, before the body is read or stored.
    app.config.from_mapping(MAX_CONTENT_LENGTH=settings.max_upload_bytes, JSON_SORT_KEYS=False)
    if test_config:
        app.config.from_mapping(test_config)
    app.json.sort_keys = False
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    from api import errors, health, jobs, predict, security, web

    errors.register_error_handlers(app)
    security.init_app(app)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(predict.bp)
    app.register_blueprint(web.bp)
    return app
