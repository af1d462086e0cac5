"""Fixtures for the web pages: an app on a fresh migrated database, logged-in test clients,
a live server (the real app under werkzeug in a thread) and Debian's chromium via Playwright.

No mocks: every test drives the real runtime on SQLite or PostgreSQL (CELLQMS_TEST_DATABASE).
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from engine.settings import REPO_ROOT
from models import Record, Signature, Task, TaskStatus
from tests.conftest import PASSWORD, deviation_start_data
from webapp import create_app

VENDOR = REPO_ROOT / "webapp" / "static" / "vendor"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"


@pytest.fixture(scope="session", autouse=True)
def _frontend_assets():
    """The pages load bpmn-js and htmx from webapp/static/vendor, which `npm run build` fills."""
    needed = [VENDOR / "htmx" / "htmx.min.js", VENDOR / "bpmn-js" / "bpmn-navigated-viewer.production.min.js"]
    missing = [str(p.relative_to(REPO_ROOT)) for p in needed if not p.is_file()]
    if missing:
        pytest.fail(f"front-end assets are missing ({', '.join(missing)}): run `npm ci && npm run build` "
                    "in the repository root first (make assets does both).", pytrace=False)


@pytest.fixture
def cast(users):
    """The deviation cast of tests/conftest.py (olivia, quinn, quentin, ivan, iris, hannah, max)."""
    return dict(users)


@pytest.fixture
def admin(loaded_runtime, cast):
    """Ada, holder of the Admin role (created only where a test needs her: each account costs an argon2 hash)."""
    return loaded_runtime.add_user(None, "ada", "Ada Admin", PASSWORD, ["Admin"])


@pytest.fixture
def auditor(loaded_runtime, cast):
    return loaded_runtime.add_user(None, "aude", "Aude Auditor", PASSWORD, ["Auditor"])


@pytest.fixture
def app(loaded_runtime, cast):
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SESSION_COOKIE_SECURE": False,
                      "SECRET_KEY": "test-secret"}, runtime=loaded_runtime)
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def login(client, username: str, password: str = PASSWORD):
    """Log a test client in; returns the response of the log-in POST."""
    return client.post("/login", data={"username": username, "password": password})


@pytest.fixture
def as_user(app):
    """as_user('quinn') -> a test client logged in as quinn."""

    def make(username: str):
        c = app.test_client()
        resp = login(c, username)
        assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
        return c

    return make


def raise_deviation(rt, user, **overrides):
    return rt.start_record(user, "deviation", deviation_start_data(**overrides))


def open_task(rt, record, bpmn_id: str):
    """The open task `bpmn_id` of a record (read straight from the tasks table)."""
    with rt.db.sessionmaker() as s:
        return s.scalars(select(Task).where(Task.record_id == record.id, Task.bpmn_id == bpmn_id,
                                            Task.status == TaskStatus.OPEN)).one()


def triage(rt, record, qa, investigator="ivan", classification="minor"):
    task = open_task(rt, record, "triage_deviation")
    return rt.complete_task(task.id, qa, {"classification": classification, "investigator": investigator,
                                          "rationale": "Single short excursion; product within limits."})


def investigate(rt, record, investigator):
    task = open_task(rt, record, "investigate_deviation")
    return rt.complete_task(task.id, investigator, {
        "root_cause": "Door seal worn", "product_impact": "None: viability 94 %",
        "patient_impact": "None", "capa_required": False, "capa_rationale": "Seal replaced; isolated event."})


def approve(rt, record, qa):
    task = open_task(rt, record, "approve_investigation")
    return rt.complete_task(task.id, qa, {"decision": "approve", "comment": "Root cause justified."},
                            signature={"password": PASSWORD, "meaning": "approved"})


def csrf_token_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


# ----------------------------------------------------------------------------- reading the database in browser tests

def record_by_number(rt, number: str) -> Record:
    with rt.db.sessionmaker() as s:
        return s.scalar(select(Record).where(Record.number == number))


def open_rows(rt, record_id: str) -> list[Task]:
    """The record's open tasks, oldest first."""
    with rt.db.sessionmaker() as s:
        return list(s.scalars(select(Task).where(Task.record_id == record_id, Task.status == TaskStatus.OPEN)
                              .order_by(Task.created_at)))


def the_open_task(rt, record_id: str, bpmn_id: str, assignee: str | None = None) -> Task:
    (task,) = [t for t in open_rows(rt, record_id)
               if t.bpmn_id == bpmn_id and (assignee is None or t.assignee == assignee)]
    return task


# ----------------------------------------------------------------------------- live server and browser

class LiveServer:
    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(loaded_runtime, cast):
    app = create_app({"SESSION_COOKIE_SECURE": False, "SECRET_KEY": "live-test-secret"}, runtime=loaded_runtime)
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):  # .ci/run installs chromium: its absence there is a broken install step
            pytest.fail("Debian's chromium is missing at /usr/bin/chromium under CI", pytrace=False)
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium); "
                    "the browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_context(chromium):
    """A fresh browser profile per test; console errors and CSP violations are collected."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000}, locale="en-GB")
    context.console_errors = []

    def on_page(page):
        page.on("console", lambda msg: context.console_errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: context.console_errors.append(str(exc)))

    context.on("page", on_page)
    yield context
    context.close()


# ----------------------------------------------------------------------------- browser helpers

def log_in(page, base: str, username: str, password: str = PASSWORD):
    page.goto(base + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form.stack button[type=submit]")
    page.wait_for_load_state("domcontentloaded")


def log_out(page):
    page.click("text=Log out")
    page.wait_for_url(re.compile(r".*/login$"))


EXPECTED_STATUSES = ("400", "401", "403", "409", "423")  # pages that answer a refused form with its status


def no_console_errors(context):
    """CSP violations, script errors and missing assets show up in the console; the pages must have none.
    The browser also logs the statuses of pages that refuse a form on purpose (400, 401, 403 ...)."""
    errors = [e for e in context.console_errors
              if not (e.startswith("Failed to load resource") and any(f"status of {s}" in e
                                                                       for s in EXPECTED_STATUSES))]
    assert errors == [], errors


def refusal_of(page, base: str, task_id: str, code: str) -> str:
    """Open a task the person may not complete: the page says why, with the reason code, and shows
    no form. Returns the refusal's text for the test's own checks."""
    page.goto(base + f"/tasks/{task_id}")
    refusal = page.inner_text("#refusal")
    assert "You cannot complete this task" in refusal and f"Reason code: {code}" in refusal, refusal
    assert page.locator("form.task-form").count() == 0
    return refusal


def continue_and_sign(page, meaning: str, password: str = PASSWORD) -> str:
    """From a filled signed form: review what is signed (its meaning shown), type the password and
    sign. Returns the signature manifestation shown afterwards."""
    page.click("text=Continue to signature")
    page.wait_for_selector("#signature_password")
    assert meaning.upper() in page.inner_text(".sig-meaning").upper()
    page.fill("#signature_password", password)
    page.click("button[value=sign]")
    page.wait_for_selector(".signature")
    return page.inner_text(".signature")


def signature_count(rt) -> int:
    with rt.db.sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(Signature))


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def closed(loaded_runtime, cast):
    """A deviation raised, triaged, investigated and approved with a signature: a closed record."""
    rt = loaded_runtime
    record = raise_deviation(rt, cast["olivia"], title="Incubator excursion")
    triage(rt, record, cast["quinn"])
    investigate(rt, record, cast["ivan"])
    approve(rt, record, cast["quentin"])
    return record
