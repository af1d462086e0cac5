"""`cellqms training`: requirements per role, instructor-led course completions and the matrix (URS-TRN-01, -02).

A thin door onto engine/training.py. Requirements are changed under the command-line actor
(``cli:<operating-system user>``); a course completion is audited with the instructor as the
actor, naming the command-line user as who entered it.
"""
from __future__ import annotations

import csv
import datetime as dt
import io

import click

from engine import training as trn
from engine.exceptions import ValidationFailed


def _runtime():
    return click.get_current_context().find_root().obj.runtime


def _actor():
    from .cli import cli_actor  # imported here: cli.py imports this module to register the group

    return cli_actor()


@click.group("training")
def training() -> None:
    """Training requirements per role, course completions and the training matrix."""


@training.command("require")
@click.argument("role")
@click.argument("code")
@click.option("--kind", type=click.Choice(["document", "course"]), required=True,
              help="document: read and understood (CODE is the document number); course: CODE is the course code.")
@click.option("--title", required=True, help="What the training is, as people will read it.")
@click.option("--due-days", default=14, show_default=True, type=click.IntRange(1, 3650),
              help="Days a person has to complete the training once it is assigned.")
def require(role: str, code: str, kind: str, title: str, due_days: int) -> None:
    """Require a training of every holder of ROLE; current holders get it assigned at once."""
    rt = _runtime()
    trn.require_training(rt, _actor(), role, code, kind, title, due_days)
    with rt.db.sessionmaker() as session:
        cells = trn.training_matrix(session, roles=[role])
    pending = [c for c in cells if c.code == code and c.status in (trn.DUE, trn.OVERDUE)]
    click.echo(f"role {role} now requires {kind} {code} ({title}), due {due_days} day(s) after assignment; "
               f"assigned to {len(pending)} person(s)")


@training.command("withdraw")
@click.argument("role")
@click.argument("code")
@click.option("--reason", required=True, help="Why the requirement is withdrawn (kept in the audit trail).")
def withdraw(role: str, code: str, reason: str) -> None:
    """Withdraw a requirement from ROLE; open assignments nobody needs any more are cancelled."""
    cancelled = trn.withdraw_training(_runtime(), _actor(), role, code, reason)
    click.echo(f"role {role} no longer requires {code}; {cancelled} open assignment(s) cancelled")


@training.command("list")
@click.option("--role", default=None, help="Only this role's requirements.")
def list_requirements(role: str | None) -> None:
    """List the training requirements per role."""
    with _runtime().db.sessionmaker() as session:
        rows = trn.requirements(session, role)
    if not rows:
        click.echo("no training requirements" + (f" for role {role}" if role else ""))
        return
    width = max(len(r.role_name) for r in rows)
    for r in rows:
        click.echo(f"{r.role_name:<{width}}  {r.kind.value:<8}  {r.code:<16}  due {r.due_days:>3} d  {r.title}")


@training.command("complete-course")
@click.argument("username")
@click.argument("code")
@click.option("--instructor", required=True, help="The user name of the instructor who led the session; "
                                                  "the audit trail names them as the actor.")
@click.option("--date", "date", default=None,
              help="When the session ended (ISO 8601, UTC if no zone; default: now).")
@click.option("--title", default=None, help="The course title, when no role requires the course.")
def complete_course(username: str, code: str, instructor: str, date: str | None, title: str | None) -> None:
    """Record that USERNAME completed the course CODE in an instructor-led session."""
    completed_at = None
    if date:
        try:
            completed_at = dt.datetime.fromisoformat(date.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationFailed([{"path": "date", "message": "Must be an ISO 8601 date or date-time."}]) from exc
        if completed_at.tzinfo is None:
            completed_at = completed_at.replace(tzinfo=dt.timezone.utc)
    record = trn.record_course_completion(_runtime(), instructor, username, code, entered_by=_actor().username,
                                          completed_at=completed_at, title=title)
    click.echo(f"{username} completed course {code} ({record.title}) on "
               f"{record.completed_at:%Y-%m-%dT%H:%M:%SZ}, instructor {instructor}")


@training.command("matrix")
@click.option("--role", "roles", multiple=True, help="Only these roles' requirements; repeat for several.")
@click.option("--user", "users", multiple=True, help="Only these user names; repeat for several.")
def matrix(roles: tuple[str, ...], users: tuple[str, ...]) -> None:
    """Print the training matrix as CSV (person × required training: qualified, due, overdue, not assigned)."""
    with _runtime().db.sessionmaker() as session:
        cells = trn.training_matrix(session, roles=list(roles) or None, users=list(users) or None)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(trn.matrix_table(cells))
    click.echo(out.getvalue(), nl=False)
