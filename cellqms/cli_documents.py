"""`cellqms documents`: the controlled-document library from the command line (URS-DOC-01, -05).

`import` migrates legacy documents with their history in one transaction and verifies it
(counts and SHA-256 of every file, read back from the database); `list` prints the library.
"""
from __future__ import annotations

from pathlib import Path

import click

from engine import documents as library

from .cli import CellqmsGroup, cli_actor, pass_state


@click.group(cls=CellqmsGroup)
def documents() -> None:
    """Controlled documents (the document library)."""


@documents.command("import")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--manifest", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with the columns number, title, type, owner, version, status, effective_date, file "
                   "(file relative to FOLDER; optional column review_interval_months).")
@pass_state
def documents_import(state, folder: Path, manifest: Path) -> None:
    """Import legacy documents: all rows or none (URS-DOC-05)."""
    report = library.import_legacy(state.runtime, cli_actor(), folder, manifest)
    if not report.ok:
        click.echo(f"import REFUSED: {len(report.problems)} problem(s); nothing was imported", err=True)
        for problem in report.problems:
            click.echo(f"  {problem}", err=True)
        raise SystemExit(1)
    for f in report.files:
        click.echo(f"{f.sha256}  {f.number} v{f.version} {f.status:<10} {f.path} ({f.size:,} bytes)")
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(report.by_status.items()))
    click.echo(f"imported {report.documents} document(s), {report.versions} version(s) ({statuses}); "
               f"{report.total_bytes:,} bytes")
    click.echo(f"verified {report.verified}/{report.versions} file(s): SHA-256 read back from the database "
               "matches the source")
    click.echo(f"batch sha256 {report.batch_sha256} (SHA-256 of the files' hashes in manifest order)")
    if report.verified != report.versions:
        raise SystemExit(1)


@documents.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also obsolete documents.")
@pass_state
def documents_list(state, show_all: bool) -> None:
    """Every document with its versions, status, effective date and SHA-256."""
    from sqlalchemy import select

    from models import Document, DocumentStatus

    with state.runtime.db.sessionmaker() as session:
        stmt = select(Document).order_by(Document.number)
        if not show_all:
            stmt = stmt.where(Document.status == DocumentStatus.ACTIVE)
        docs = session.scalars(stmt).all()
        if not docs:
            click.echo("no documents")
            return
        for doc in docs:
            flag = "  [OBSOLETE: " + (doc.obsolete_reason or "") + "]" if doc.status == DocumentStatus.OBSOLETE else ""
            click.echo(f"{doc.number}  {doc.title}  ({doc.doc_type}; owner {doc.owner.username}; "
                       f"review every {doc.review_interval_months} months){flag}")
            for v in doc.versions:
                effective = f"{v.effective_date:%Y-%m-%d}" if v.effective_date else "-"
                review = f"  next review {v.next_review_due:%Y-%m-%d}" if v.next_review_due else ""
                click.echo(f"  v{v.label:<7} {library.status_label(v.status):<11} effective {effective:<10} "
                           f"sha256 {v.sha256}  {v.filename}{review}")


@documents.command("reassign")
@click.argument("number")
@click.option("--owner", required=True, help="The new owner's user name (an active account).")
@click.option("--reason", required=True, help="Why the owner changes (kept in the audit trail).")
@pass_state
def documents_reassign(state, number: str, owner: str, reason: str) -> None:
    """Name a new owner for a document; an open periodic review moves to them (URS-DOC-04)."""
    doc = library.reassign_owner(state.runtime, cli_actor(), number, owner, reason)
    click.echo(f"{doc.number}: owner is now {doc.owner.username}")
