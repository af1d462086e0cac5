"""Runtime settings, read from the environment; no web framework involved."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_db_url() -> str:
    return f"sqlite:///{REPO_ROOT / 'instance' / 'cellqms.sqlite'}"


@dataclass
class Settings:
    database_url: str = field(default_factory=lambda: os.environ.get("DATABASE_URL") or _default_db_url())
    processes_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("CELLQMS_PROCESSES_DIR", REPO_ROOT / "processes")))
    forms_dir: Path = field(default_factory=lambda: Path(os.environ.get("CELLQMS_FORMS_DIR", REPO_ROOT / "forms")))
    # Log-in and signing: lock the account after this many consecutive failures, for this long.
    max_failed_logins: int = 5
    lockout_minutes: int = 30
    token_hours: int = 8
    max_bpmn_bytes: int = 2 * 1024 * 1024
    timezone: str = "UTC"
