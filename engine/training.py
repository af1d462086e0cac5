"""Who is qualified for what (URS-TRN-01..03): the one question the permissions ask.

A person is qualified for a training code when they hold a completed training record for
it; for a document the record must be for the version that is effective now, so a new
effective version makes everyone who must read it unqualified until they have.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import (
    Document,
    DocumentVersion,
    DocumentVersionStatus,
    TrainingKind,
    TrainingRecord,
    TrainingRequirement,
    TrainingStatus,
    User,
)


def effective_versions(session: Session, numbers: list[str]) -> dict[str, DocumentVersion]:
    """Document number → its effective version, for the numbers that are documents with one."""
    if not numbers:
        return {}
    rows = session.execute(
        select(Document.number, DocumentVersion).join(DocumentVersion, DocumentVersion.document_id == Document.id)
        .where(Document.number.in_(numbers), DocumentVersion.status == DocumentVersionStatus.EFFECTIVE))
    return {number: version for number, version in rows}


def missing_trainings(session: Session, user: User, codes: list[str]) -> list[dict]:
    """The trainings among `codes` the user is not qualified for, each as {code, title, reason}."""
    if not codes:
        return []
    completed = session.execute(
        select(TrainingRecord.code, TrainingRecord.document_version_id).where(
            TrainingRecord.user_id == user.id, TrainingRecord.code.in_(codes),
            TrainingRecord.status == TrainingStatus.COMPLETED)).all()
    done: dict[str, set] = {}
    for code, version_id in completed:
        done.setdefault(code, set()).add(version_id)
    effective = effective_versions(session, codes)
    titles = dict(session.execute(select(TrainingRequirement.code, TrainingRequirement.title)
                                  .where(TrainingRequirement.code.in_(codes))).all())
    missing = []
    for code in codes:
        version = effective.get(code)
        title = titles.get(code) or (version.document.title if version else code)
        if code not in done:
            missing.append({"code": code, "title": title, "reason": "not trained"})
        elif version is not None and version.id not in done[code]:
            missing.append({"code": code, "title": title,
                            "reason": f"not trained on the effective version {version.label}"})
    return missing


def required_codes_for_roles(session: Session, roles: set[str]) -> list[TrainingRequirement]:
    """The training requirements of a set of roles."""
    if not roles:
        return []
    return list(session.scalars(select(TrainingRequirement).where(TrainingRequirement.role_name.in_(roles))
                                .order_by(TrainingRequirement.code)))


__all__ = ["TrainingKind", "effective_versions", "missing_trainings", "required_codes_for_roles"]
