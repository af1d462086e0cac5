"""The `cellqms` command line: database, diagrams, users, web server, timer worker, audit and validation.

A thin door onto engine.Runtime like the web UI and the API: every change goes through
the runtime's methods, audited under a system actor named ``cli:<operating-system user>``.
Errors the runtime raises print ``error: <message>`` and exit with status 1.
"""
from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import click
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from engine.exceptions import CellqmsError
from engine.runtime import Runtime
from engine.settings import Settings

from . import __version__


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def cli_actor() -> SimpleNamespace:
    """The system actor the audit trail names for changes made from the command line."""
    return SimpleNamespace(id=None, username=f"cli:{_os_user()}")


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class CellqmsGroup(click.Group):
    """Turns the runtime's errors into `error: <message>` and exit status 1, without a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CellqmsError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(1)
        except (OperationalError, ProgrammingError) as exc:
            text = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
            hint = ""
            if "no such table" in text or "does not exist" in text:
                hint = " (is the database initialised? run `cellqms db upgrade`)"
            click.echo(f"error: database: {text}{hint}", err=True)
            ctx.exit(1)


class _State:
    """Per-invocation state: settings and a lazily built runtime, disposed when the command ends."""

    def __init__(self):
        self.settings = Settings()
        self._runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = Runtime(self.settings)
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.db.dispose()


pass_state = click.make_pass_decorator(_State)


@click.group(cls=CellqmsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cellqms")
@click.pass_context
def main(ctx: click.Context) -> None:
    """cellqms: electronic quality management for cell and gene therapy.

    The database is DATABASE_URL (default: SQLite in instance/cellqms.sqlite).
    """
    state = _State()
    ctx.obj = state
    ctx.call_on_close(state.close)


# ------------------------------------------------------------------------------------------ db
@main.group(cls=CellqmsGroup)
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_state
def db_upgrade(state: _State) -> None:
    """Create or migrate the database schema to the latest version."""
    from models.migrate import upgrade

    url = state.settings.database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    click.echo(f"database {_safe_url(url)} is at the latest schema")


# ------------------------------------------------------------------------------------------ processes
@main.group(cls=CellqmsGroup)
def processes() -> None:
    """BPMN diagrams (processes/*.bpmn)."""


@processes.command("load")
@pass_state
def processes_load(state: _State) -> None:
    """Load every diagram; a new released version only where the file's SHA-256 changed."""
    results = state.runtime.load_processes(cli_actor())
    if not results:
        click.echo(f"no diagrams in {state.settings.processes_dir}")
    for r in results:
        click.echo(f"{r.key}  version {r.version}  sha256 {r.sha256}  {'new' if r.created else 'unchanged'}")


# ------------------------------------------------------------------------------------------ users
@main.group(cls=CellqmsGroup)
def user() -> None:
    """User accounts (deactivated, never deleted)."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: no password on standard input")
        return password
    # Never an argument: it would end up in the shell history and the process list.
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@user.command("add")
@click.argument("username")
@click.option("--name", "full_name", required=True, help="The person's full name (printed with signatures).")
@click.option("--role", "roles", multiple=True, required=True, help="A role; repeat for several.")
@click.option("--email", default=None)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@pass_state
def user_add(state: _State, username: str, full_name: str, roles: tuple[str, ...], email: str | None,
             password_stdin: bool) -> None:
    """Create a user account with one or more roles."""
    password = _read_password(password_stdin)
    created = state.runtime.add_user(cli_actor(), username, full_name, password, list(roles), email=email)
    click.echo(f"created user {created.username} ({created.full_name}) with roles: "
               f"{', '.join(sorted(created.role_names))}")


@user.command("deactivate")
@click.argument("username")
@click.option("--reason", required=True, help="Why the account is deactivated (kept in the audit trail).")
@pass_state
def user_deactivate(state: _State, username: str, reason: str) -> None:
    """Deactivate an account; the username is never reused."""
    owned = state.runtime.deactivate_user(cli_actor(), username, reason)
    click.echo(f"deactivated user {username}")
    if owned:
        click.echo(f"warning: {username} still owns {', '.join(owned)}; name new owners with "
                   "`cellqms documents reassign NUMBER --owner USER --reason ...`", err=True)


@user.command("roles")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True, help="A role; repeat for several.")
@pass_state
def user_roles(state: _State, username: str, roles: tuple[str, ...]) -> None:
    """Set a user's roles to exactly the ones given."""
    changed = state.runtime.set_roles(cli_actor(), username, list(roles))
    click.echo(f"user {changed.username} now has roles: {', '.join(sorted(changed.role_names))}")


# ------------------------------------------------------------------------------------------ serve
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="More than 1 runs gunicorn with that many processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the web UI and the REST API."""
    from webapp import create_app

    url = f"http://{host}:{port}/"
    if workers > 1:
        from gunicorn.app.base import BaseApplication

        class _Gunicorn(BaseApplication):
            def load_config(self):
                self.cfg.set("bind", f"{host}:{port}")
                self.cfg.set("workers", workers)
                self.cfg.set("accesslog", "-")

            def load(self):
                return create_app()

        click.echo(f"cellqms {__version__} serving on {url} with gunicorn, {workers} workers")
        _Gunicorn().run()
        return
    from werkzeug.serving import run_simple

    app = create_app()
    click.echo(f"cellqms {__version__} serving on {url} (Werkzeug development server; "
               "use --workers N for production)")
    run_simple(host, port, app, use_reloader=False, threaded=True)


# ------------------------------------------------------------------------------------------ worker
def fire_once(runtime: Runtime) -> list[str]:
    """Fire the due timers once; return a line per timer that fired."""
    from models import Record, TimerJob

    with runtime.db.sessionmaker() as session:
        due = session.execute(
            select(TimerJob.id, TimerJob.event_name, TimerJob.due_at, Record.number)
            .join(Record, Record.id == TimerJob.record_id)
            .where(TimerJob.fired_at.is_(None), TimerJob.due_at <= runtime.clock.now())
        ).all()
    count = runtime.fire_due_timers()
    lines = []
    with runtime.db.sessionmaker() as session:
        for job_id, event, due_at, number in due:
            job = session.get(TimerJob, job_id)
            if job is not None and job.fired_at is not None and job.last_error is None:
                lines.append(f"fired {event} on {number} (due {due_at:%Y-%m-%dT%H:%M:%SZ})")
    if count > len(lines):
        lines.append(f"fired {count - len(lines)} more timer(s)")
    from engine.documents import start_due_periodic_reviews

    lines += start_due_periodic_reviews(runtime)  # URS-DOC-04: periodic reviews that came due
    return lines


@main.command()
@click.option("--interval", default=5.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between two looks for due timers.")
@click.option("--once", is_flag=True, help="Fire what is due now and exit.")
@pass_state
def worker(state: _State, interval: float, once: bool) -> None:
    """Fire due BPMN timers (due dates, escalations) without anyone logged in (URS-PLT-05)."""
    runtime = state.runtime
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if not once:
        click.echo(f"{_stamp()} cellqms worker: firing due timers every {interval:g} s "
                   f"on {_safe_url(state.settings.database_url)}")
    failed = False
    try:
        while not stop.is_set():
            try:
                for line in fire_once(runtime):
                    click.echo(f"{_stamp()} {line}")
                failed = False
            except Exception as exc:  # noqa: BLE001 - the worker must outlive one bad timer or a DB blip
                failed = True
                message = exc.message if isinstance(exc, CellqmsError) else f"{type(exc).__name__}: {exc}"
                click.echo(f"{_stamp()} error: {message}", err=True)
            if once:
                break
            stop.wait(interval)  # returns at once when SIGTERM sets the event
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if not once:
        click.echo(f"{_stamp()} cellqms worker stopped")
    if once and failed:
        sys.exit(1)


# ------------------------------------------------------------------------------------------ audit
@main.group(cls=CellqmsGroup)
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@pass_state
def audit_verify(state: _State) -> None:
    """Walk the hash chain; exit 1 naming the first broken entry (URS-AUD-02)."""
    from models import verify_chain

    with state.runtime.db.sessionmaker() as session:
        result = verify_chain(session)
    if result["ok"]:
        click.echo(f"audit trail OK: {result['entries']} entries, head {result['head']}")
        return
    click.echo(f"audit trail BROKEN at seq {result['first_bad_seq']}: {result['problem']} "
               f"({result['entries']} entries verified before it)", err=True)
    sys.exit(1)


# ------------------------------------------------------------------------------------------ validate
@main.command()
@click.argument("process", required=False)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report as JSON to this file.")
def validate(process: str | None, json_path: Path | None) -> None:
    """Run the bpmn_tests scenarios of every diagram (or PROCESS) on scratch databases (URS-VAL-02)."""
    from bpmn_tests import runner

    click.echo(f"cellqms {__version__}: diagram scenarios against the real runtime on scratch SQLite databases")
    reports = runner.validate(process)
    for report in reports:
        click.echo("")
        click.echo(runner.format_report(report))
    failed = [r.process for r in reports if not r.passed]
    scenarios = sum(len(r.results) for r in reports)
    click.echo("")
    if json_path:
        json_path.write_text(json.dumps([_report_dict(r) for r in reports], indent=2), encoding="utf-8")
        click.echo(f"report written to {json_path}")
    if not reports:
        click.echo("validation FAILED: no diagrams found")
        sys.exit(1)
    if failed:
        click.echo(f"validation FAILED: {', '.join(failed)}")
        sys.exit(1)
    click.echo(f"validation PASSED: {len(reports)} diagram(s), {scenarios} scenario(s)")


def _report_dict(report) -> dict:
    return {
        "process": report.process,
        "sha256": report.sha256,
        "passed": report.passed,
        "problem": report.problem,
        "flows": {"total": len(report.flows), "covered": sorted(report.covered), "uncovered": report.uncovered},
        "scenarios": [{
            "id": r.test_id, "passed": r.passed, "reason": r.reason, "sha256": r.sha256,
            "urs": r.scenario.urs if r.scenario else [], "covered": sorted(r.covered),
            "seconds": round(r.seconds, 3),
        } for r in report.results],
        "validated_at": _stamp(),
        "cellqms_version": __version__,
    }


# ------------------------------------------------------------------------------------------ demo
@main.command()
@pass_state
def demo(state: _State) -> None:
    """Create demo users (one per role), load the diagrams and start two demo deviations. Idempotent."""
    from .demo import DEMO_PASSWORD, DEMO_USERS, run_demo

    summary = run_demo(state.runtime, cli_actor(), echo=click.echo)
    click.echo("demo users (password for all: " + DEMO_PASSWORD + "; for demonstration only):")
    for username, (full_name, roles) in DEMO_USERS.items():
        status = "created" if username in summary.users_created else "exists"
        click.echo(f"  {username:<13} {full_name:<22} {', '.join(roles):<15} {status}")
    for number in summary.records_created:
        click.echo(f"demo record {number} created")
    for number in summary.records_existing:
        click.echo(f"demo record {number} exists")


from .cli_training import training as _training_commands  # noqa: E402 - registered after main is defined

main.add_command(_training_commands)

from .cli_documents import documents as _documents_commands  # noqa: E402 - registered after main is defined

main.add_command(_documents_commands)

if __name__ == "__main__":  # pragma: no cover
    main()
