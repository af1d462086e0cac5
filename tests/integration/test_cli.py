"""The `cellqms` command line, driven through click's CliRunner against a real database."""
from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from cellqms.cli import cli_actor, main
from cellqms.demo import DEMO_PASSWORD, DEMO_USERS
from engine.runtime import Runtime
from engine.settings import Settings
from models import AuditEntry, Record, User

NEW_PASSWORD = "Stdin-password-7"


@pytest.fixture
def cli(db_url):
    """Invoke the CLI with DATABASE_URL pointing at this test's freshly migrated database."""
    runner = CliRunner()

    def invoke(*args, input=None, url=None):
        return runner.invoke(main, list(args), input=input, env={"DATABASE_URL": url or db_url},
                             catch_exceptions=False)

    return invoke


def _runtime(url: str) -> Runtime:
    return Runtime(Settings(database_url=url))


def test_db_upgrade_creates_the_folder_and_the_schema(tmp_path, cli):
    path = tmp_path / "instance" / "fresh.sqlite"
    url = f"sqlite:///{path}"
    result = cli("db", "upgrade", url=url)
    assert result.exit_code == 0, result.output
    assert path.is_file()
    assert "latest schema" in result.output
    again = cli("db", "upgrade", url=url)
    assert again.exit_code == 0, again.output


def test_processes_load_says_unchanged_the_second_time(cli):
    first = cli("processes", "load")
    assert first.exit_code == 0, first.output
    line = next(ln for ln in first.output.splitlines() if ln.startswith("deviation "))
    assert line.endswith(" new") and "version 1" in line and "sha256 " in line
    second = cli("processes", "load")
    assert second.exit_code == 0, second.output
    line = next(ln for ln in second.output.splitlines() if ln.startswith("deviation "))
    assert line.endswith(" unchanged") and "version 1" in line


@pytest.mark.urs("URS-SEC-01")
def test_user_add_reads_the_password_from_stdin_and_audits_the_cli_actor(cli, db_url):
    result = cli("user", "add", "nora", "--name", "Nora Newhire", "--role", "QA", "--role", "Auditor",
                 "--email", "nora@example.org", "--password-stdin", input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "created user nora" in result.output and "Auditor, Employee, QA" in result.output
    rt = _runtime(db_url)
    try:
        user = rt.authenticate("nora", NEW_PASSWORD)
        assert user.role_names == {"QA", "Auditor", "Employee"}
        with rt.db.sessionmaker() as session:
            actors = set(session.scalars(select(AuditEntry.username).where(AuditEntry.entity == "users")))
        assert cli_actor().username in actors and cli_actor().username.startswith("cli:")
    finally:
        rt.db.dispose()


def test_user_add_prompts_twice_for_a_hidden_password(cli, db_url):
    result = cli("user", "add", "pia", "--name", "Pia Prompt", "--role", "QA",
                 input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert NEW_PASSWORD not in result.output  # hidden input is not echoed
    rt = _runtime(db_url)
    try:
        assert rt.authenticate("pia", NEW_PASSWORD).username == "pia"
    finally:
        rt.db.dispose()


@pytest.mark.urs("URS-SEC-01")
def test_user_add_refuses_a_password_given_as_an_argument(cli):
    result = cli("user", "add", "otto", "--name", "Otto", "--role", "QA", "--password", NEW_PASSWORD)
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_runtime_errors_print_one_line_and_exit_1(cli):
    assert cli("user", "add", "dup", "--name", "Dup", "--role", "QA", "--password-stdin",
               input=NEW_PASSWORD + "\n").exit_code == 0
    again = cli("user", "add", "dup", "--name", "Dup", "--role", "QA", "--password-stdin",
                input=NEW_PASSWORD + "\n")
    assert again.exit_code == 1
    assert again.output.startswith("error: ") and "never reused" in again.output
    assert "Traceback" not in again.output
    weak = cli("user", "add", "weak", "--name", "Weak", "--role", "QA", "--password-stdin", input="short\n")
    assert weak.exit_code == 1 and weak.output.startswith("error: ")


@pytest.mark.urs("URS-SEC-05")
def test_user_roles_sets_the_roles_and_deactivate_keeps_the_account(cli, db_url):
    cli("user", "add", "rita", "--name", "Rita Roles", "--role", "QA", "--password-stdin", input=NEW_PASSWORD + "\n")
    roles = cli("user", "roles", "rita", "--role", "Investigator", "--role", "Initiator")
    assert roles.exit_code == 0, roles.output
    assert "Initiator, Investigator" in roles.output
    off = cli("user", "deactivate", "rita", "--reason", "Left the company")
    assert off.exit_code == 0, off.output
    rt = _runtime(db_url)
    try:
        with rt.db.sessionmaker() as session:
            user = session.scalar(select(User).where(User.username == "rita"))
            assert user is not None and not user.active and user.role_names == {"Investigator", "Initiator", "Employee"}
            reasons = set(session.scalars(select(AuditEntry.reason).where(AuditEntry.entity == "users",
                                                                          AuditEntry.entity_id == str(user.id))))
        assert "Left the company" in reasons
    finally:
        rt.db.dispose()
    missing = cli("user", "deactivate", "nobody", "--reason", "x")
    assert missing.exit_code == 1 and missing.output.startswith("error: ")


@pytest.mark.urs("URS-AUD-02")
def test_audit_verify_passes_on_an_intact_trail(cli):
    cli("processes", "load")
    result = cli("audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("audit trail OK")


@pytest.mark.urs("URS-AUD-02")
def test_audit_verify_names_the_first_tampered_entry(tmp_path, cli):
    path = tmp_path / "tampered.sqlite"
    url = f"sqlite:///{path}"
    assert cli("db", "upgrade", url=url).exit_code == 0
    assert cli("processes", "load", url=url).exit_code == 0
    assert cli("user", "add", "tom", "--name", "Tom", "--role", "QA", "--password-stdin",
               input=NEW_PASSWORD + "\n", url=url).exit_code == 0
    # Someone with direct database access removes the protection and edits entry 2.
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER audit_entries_no_update")
    conn.execute("""UPDATE audit_entries SET reason = 'edited' WHERE seq = 2""")
    conn.commit()
    conn.close()
    result = cli("audit", "verify", url=url)
    assert result.exit_code == 1
    assert "BROKEN at seq 2" in result.output


@pytest.mark.urs("URS-VAL-02")
def test_validate_deviation_passes_and_reports_hash_and_full_coverage(cli, tmp_path):
    report = tmp_path / "report.json"
    result = cli("validate", "deviation", "--json", str(report))
    assert result.exit_code == 0, result.output
    assert "diagram deviation" in result.output
    assert "sha256 " in result.output
    assert "PASS  deviation/minor" in result.output
    assert "FAIL" not in result.output and "uncovered:" not in result.output
    assert "validation PASSED" in result.output
    assert '"uncovered": []' in report.read_text()


def test_validate_of_an_unknown_diagram_fails(cli):
    result = cli("validate", "no_such_process")
    assert result.exit_code == 1
    assert "validation FAILED" in result.output


def test_demo_is_idempotent(cli, db_url):
    first = cli("demo")
    assert first.exit_code == 0, first.output
    assert DEMO_PASSWORD in first.output
    assert first.output.count(" created") >= len(DEMO_USERS) + 2
    rt = _runtime(db_url)
    try:
        with rt.db.sessionmaker() as session:
            users = session.scalar(select(func.count()).select_from(User))
            records = session.scalar(select(func.count()).select_from(Record))
        assert records == 3  # two demo deviations, one of which raised its CAPA
        for username in DEMO_USERS:
            assert rt.authenticate(username, DEMO_PASSWORD).username == username
        second = cli("demo")
        assert second.exit_code == 0, second.output
        assert " created" not in second.output
        with rt.db.sessionmaker() as session:
            assert session.scalar(select(func.count()).select_from(User)) == users
            assert session.scalar(select(func.count()).select_from(Record)) == records
    finally:
        rt.db.dispose()


def test_demo_records_wait_in_the_inboxes_of_the_right_people(cli, db_url):
    assert cli("demo").exit_code == 0
    rt = _runtime(db_url)
    try:
        # Users are read first: on SQLite every session begins IMMEDIATE, so a second session
        # opened inside the first would wait for its lock.
        people = {name: rt.user_by_username(name) for name in ("investigator", "qa2", "qahead")}
        with rt.db.sessionmaker() as session:
            def inbox(username):
                return sorted(t.bpmn_id for t in rt.open_tasks(session, people[username]))

            assert inbox("investigator") == ["investigate_deviation"]
            assert inbox("qa2") == ["approve_investigation", "plan_capa"]
            assert inbox("qahead") == ["qa_head_critical_review"]
    finally:
        rt.db.dispose()


@pytest.mark.urs("URS-PLT-05")
def test_worker_once_fires_nothing_when_nothing_is_due_and_exits_0(cli):
    assert cli("demo").exit_code == 0
    result = cli("worker", "--once")
    assert result.exit_code == 0, result.output
    assert "error" not in result.output


@pytest.mark.urs("URS-PLT-05")
def test_worker_once_fires_a_due_timer_and_names_it(cli, db_url):
    import datetime as dt
    import time

    from models import Task, TaskStatus

    assert cli("demo").exit_code == 0
    rt = _runtime(db_url)
    try:
        operator, qa = rt.user_by_username("operator"), rt.user_by_username("qa")
        record = rt.start_record(operator, "deviation", {
            "title": "Timer test", "description": "d", "area": "Facilities",
            "occurred_at": "2026-11-20T08:30:00+00:00", "batch_ref": "N/A", "immediate_actions": "None"})
        with rt.db.sessionmaker() as session:
            triage = session.scalar(select(Task.id).where(Task.record_id == record.id,
                                                          Task.status == TaskStatus.OPEN))
        # A minor deviation is due in 30 days; triaged "30 days minus 2 s ago" it falls due in about 2 s.
        rt.clock.offset = -dt.timedelta(days=30) + dt.timedelta(seconds=2)
        rt.complete_task(triage, qa, {"classification": "minor", "investigator": "investigator", "rationale": "r"})
        rt.clock.offset = dt.timedelta(0)
        time.sleep(2.5)
        result = cli("worker", "--once")
        assert result.exit_code == 0, result.output
        assert f"fired Investigation overdue on {record.number}" in result.output
        with rt.db.sessionmaker() as session:
            open_now = set(session.scalars(select(Task.bpmn_id).where(Task.record_id == record.id,
                                                                       Task.status == TaskStatus.OPEN)))
        assert open_now == {"investigate_deviation", "escalate_overdue_investigation"}
    finally:
        rt.db.dispose()
