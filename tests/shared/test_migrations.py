"""Schema revisions on a database of their own (SQLite), data included."""

from __future__ import annotations

import json

from sqlalchemy import text

PROBE = {"fps": 25.0, "frame_count": 250, "width": 640, "height": 360}


def test_private_job_state_leaves_the_client_params(tmp_path, override_settings):
    from shared.db import get_engine
    from shared.migrate import upgrade_database

    override_settings(RRR_DATABASE_URL=f"sqlite:///{tmp_path / 'old.db'}")
    upgrade_database("0004")
    params = {"sample_fps": 1.0, "_probe": PROBE, "request_sha256": "ab" * 32}
    with get_engine().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, kind, status, params, inputs, progress_done,"
                " progress_total, attempts, created_at, updated_at) VALUES ('" + "a" * 32 + "',"
                " 'video', 'running', :params, '[]', 0, 0, 1, '2026-01-01', '2026-01-01')"
            ),
            {"params": json.dumps(params)},
        )
    upgrade_database("head")
    with get_engine().connect() as conn:
        row = conn.execute(text("SELECT params, probe, request_sha256 FROM jobs")).one()
    assert json.loads(row.params) == {"sample_fps": 1.0}
    assert json.loads(row.probe) == PROBE and row.request_sha256 == "ab" * 32

    from alembic import command

    from shared.migrate import alembic_config

    command.downgrade(alembic_config(), "0004")
    with get_engine().connect() as conn:
        assert json.loads(conn.execute(text("SELECT params FROM jobs")).scalar_one()) == params


def test_video_provenance_column_comes_and_goes(tmp_path, override_settings):
    from alembic import command
    from sqlalchemy import inspect

    from shared.db import get_engine
    from shared.migrate import alembic_config, upgrade_database

    override_settings(RRR_DATABASE_URL=f"sqlite:///{tmp_path / 'prov.db'}")
    upgrade_database("head")

    def columns() -> set[str]:
        return {c["name"] for c in inspect(get_engine()).get_columns("jobs")}

    assert "provenance" in columns()
    command.downgrade(alembic_config(), "0005")
    assert "provenance" not in columns() and "probe" in columns()
