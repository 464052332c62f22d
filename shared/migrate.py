"""Bring the database schema to the newest Alembic revision (``rrr db upgrade``)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from shared.config import PROJECT_ROOT


def alembic_config() -> Config:
    """The migrations ship inside the installed project (a checkout or ``pip install .``),
    so no alembic.ini is needed to upgrade; the URL comes from the settings (migrations/env.py)."""
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return config


def upgrade_database(revision: str = "head") -> None:
    command.upgrade(alembic_config(), revision)
