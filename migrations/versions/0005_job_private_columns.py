"""job columns for what clients never see: the video probe and the request digest

Both used to live in ``jobs.params`` (``_probe``, ``request_sha256``), which is what the client
asked for and is shown back to it. Existing rows are moved over.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

jobs = sa.table(
    "jobs",
    sa.column("id", sa.String(32)),
    sa.column("params", sa.JSON()),
    sa.column("probe", sa.JSON()),
    sa.column("request_sha256", sa.String(64)),
)


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("probe", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("request_sha256", sa.String(length=64), nullable=True))
    bind = op.get_bind()
    for job_id, params in bind.execute(sa.select(jobs.c.id, jobs.c.params)).all():
        params = dict(params or {})
        if "_probe" not in params and "request_sha256" not in params:
            continue
        probe = params.pop("_probe", None)
        digest = params.pop("request_sha256", None)
        bind.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(params=params, probe=probe, request_sha256=digest)
        )


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(jobs.c.id, jobs.c.params, jobs.c.probe, jobs.c.request_sha256)
    ).all()
    for job_id, params, probe, digest in rows:
        if probe is None and digest is None:
            continue
        params = dict(params or {})
        if probe is not None:
            params["_probe"] = probe
        if digest is not None:
            params["request_sha256"] = digest
        bind.execute(jobs.update().where(jobs.c.id == job_id).values(params=params))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("request_sha256")
        batch_op.drop_column("probe")
