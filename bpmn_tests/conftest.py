"""Fixtures for the diagram scenarios: the same per-test databases as tests/ (SQLite or PostgreSQL).

bpmn_tests is its own test path, so tests/conftest.py does not apply here; its fixtures are
imported from the file (a non-root conftest may not declare ``pytest_plugins``).
"""
from __future__ import annotations

import importlib.util
import shutil
import sys
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from engine.settings import REPO_ROOT


def _shared_fixtures():
    name = "cellqms_shared_test_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tests" / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_shared = _shared_fixtures()
db_template = _shared.db_template
db_url = _shared.db_url
settings = _shared.settings
runtime = _shared.runtime


@pytest.fixture
def db_url_factory(db_template, tmp_path):
    """Hand out as many fresh, migrated databases as a test needs (one per scenario)."""
    created: list[str] = []

    def make() -> str:
        if _shared.IS_POSTGRES:
            name = f"cellqms_t_{uuid.uuid4().hex[:10]}"
            admin = _shared._admin_engine(_shared.TEST_DB)
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(db_template).database}"'))
            admin.dispose()
            created.append(name)
            return make_url(_shared.TEST_DB).set(database=name).render_as_string(hide_password=False)
        path = tmp_path / f"scenario-{len(created) + 1}.sqlite"
        shutil.copy(db_template, path)
        created.append(str(path))
        return f"sqlite:///{path}"

    yield make
    if _shared.IS_POSTGRES and created:
        admin = _shared._admin_engine(_shared.TEST_DB)
        with admin.connect() as conn:
            for name in created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
