"""Shared fixtures: a freshly migrated database per test (SQLite or PostgreSQL) and a Runtime on it.

The database under test is chosen by CELLQMS_TEST_DATABASE:
- unset or "sqlite": a migrated template file is copied per test;
- a postgresql:// URL: a template database is migrated once per run and each test gets
  `CREATE DATABASE ... TEMPLATE` (fast, and the real migrations and triggers are used).
"""
from __future__ import annotations

import os
import shutil
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engine.db import make_engine
from engine.runtime import Runtime
from engine.settings import REPO_ROOT, Settings
from models.migrate import upgrade

TEST_DB = os.environ.get("CELLQMS_TEST_DATABASE", "sqlite")
IS_POSTGRES = TEST_DB.startswith("postgresql")
PASSWORD = "Correct-horse-9"
SHARED = REPO_ROOT.parent / "shared"


def _admin_engine(url: str):
    u = make_url(url)
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    return create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def db_template(tmp_path_factory):
    """Migrate once per test run; tests copy it."""
    if IS_POSTGRES:
        name = f"cellqms_tpl_{uuid.uuid4().hex[:8]}"
        admin = _admin_engine(TEST_DB)
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(TEST_DB).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("tpl") / "template.sqlite"
        upgrade(f"sqlite:///{path}")
        yield str(path)


@pytest.fixture
def db_url(db_template, tmp_path):
    """A fresh, migrated database for one test."""
    if IS_POSTGRES:
        name = f"cellqms_t_{uuid.uuid4().hex[:10]}"
        tpl = make_url(db_template).database
        admin = _admin_engine(TEST_DB)
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"'))
        yield make_url(TEST_DB).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path / "test.sqlite"
        shutil.copy(db_template, path)
        yield f"sqlite:///{path}"


@pytest.fixture
def settings(db_url):
    return Settings(database_url=db_url, processes_dir=REPO_ROOT / "processes", forms_dir=REPO_ROOT / "forms",
                    max_failed_logins=5, lockout_minutes=30)


@pytest.fixture
def runtime(settings):
    rt = Runtime(settings)
    yield rt
    rt.db.dispose()


@pytest.fixture
def loaded_runtime(runtime):
    """A runtime with the repository's released diagrams loaded."""
    runtime.load_processes()
    return runtime


@pytest.fixture
def users(loaded_runtime):
    """The deviation cast: one user per role, all with PASSWORD."""
    rt = loaded_runtime
    cast = {
        "olivia": ("Olivia Operator", ["Initiator"]),
        "quinn": ("Quinn QA", ["QA"]),
        "quentin": ("Quentin QA", ["QA"]),
        "ivan": ("Ivan Investigator", ["Investigator"]),
        "iris": ("Iris Investigator", ["Investigator", "Initiator"]),
        "hannah": ("Hannah Head", ["QA Head"]),
        "max": ("Max Manufacturing", ["Initiator", "QA"]),
    }
    return {u: rt.add_user(None, u, name, PASSWORD, roles) for u, (name, roles) in cast.items()}


@pytest.fixture
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


def deviation_start_data(**overrides) -> dict:
    data = {
        "title": "Incubator temperature excursion",
        "description": "Incubator INC-04 read 38.9 C for 40 minutes during expansion.",
        "area": "Cell processing",
        "occurred_at": "2026-11-20T08:30:00+00:00",
        "batch_ref": "COI-2026-0042",
        "immediate_actions": "Batch moved to INC-05; engineering informed.",
    }
    data.update(overrides)
    return data


class Dba:
    """Someone with direct database access who gets past the protective triggers (audit trail,
    attachments, document files), to show that tampering behind the application is detected.

    PostgreSQL: `SET session_replication_role = replica` in the connection disables ordinary
    triggers, as a superuser could. SQLite: the triggers are dropped. A separate engine is used
    and disposed, so the application's connection pool never sees the changed session.
    """

    def __init__(self, url: str):
        self.engine = make_engine(url)

    def __enter__(self):
        self.conn = self.engine.connect()
        self.tx = self.conn.begin()
        if IS_POSTGRES:
            self.conn.exec_driver_sql("SET session_replication_role = replica")
        else:
            names = self.conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars()
            for name in list(names):
                self.conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        return self.conn

    def __exit__(self, *exc):
        if exc[0] is None:
            self.tx.commit()
        else:
            self.tx.rollback()
        self.conn.close()
        self.engine.dispose()
