"""The database engine and the one session pattern: ``with session_scope() as session: ...``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from shared.config import settings

_engine: Engine | None = None
_engine_url: str | None = None
_sessionmaker: sessionmaker[Session] | None = None


def _configure_sqlite(dbapi_connection, _record) -> None:
    # The API and the workers are separate processes sharing one file: WAL lets readers
    # proceed during a write, and busy_timeout makes a writer wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def get_engine() -> Engine:
    """The process-wide engine for ``settings.database_url`` (rebuilt if the URL changed)."""
    global _engine, _engine_url, _sessionmaker
    if _engine is None or _engine_url != settings.database_url:
        if _engine is not None:
            _engine.dispose()
        url = settings.database_url
        if url.startswith("sqlite"):
            settings.var_dir.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _configure_sqlite)
        else:
            # pool_pre_ping: a restarted PostgreSQL must not leave dead connections in the pool.
            engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        _engine, _engine_url = engine, url
        _sessionmaker = sessionmaker(bind=engine, expire_on_commit=False)
    return _engine


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    get_engine()
    assert _sessionmaker is not None
    session = _sessionmaker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
