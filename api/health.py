"""bp: liveness, readiness and the OpenAPI description."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from api.errors import UNAVAILABLE_RETRY_S
from api.openapi import openapi_document
from shared.config import settings
from shared.db import get_engine
from shared.queue import broker_reachable
from shared.storage import get_storage

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


def _database_ok() -> bool:
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@bp.get("/readyz")
def readyz():
    checks = {
        "database": _database_ok(),
        "broker": broker_reachable(),
        "weights": settings.model_file.is_file(),
        "storage": get_storage().reachable(),
    }
    if all(checks.values()):
        return jsonify({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, ok in checks.items() if not ok)
    body = {
        "error": {"code": "not_ready", "message": f"not ready: {failing} unavailable"},
        "checks": checks,
    }
    response = jsonify(body)
    response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_S)
    return response, 503


@bp.get("/v1/openapi.json")
def openapi():
    return jsonify(openapi_document())
