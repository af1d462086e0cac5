"""Who is acting: a person logged in (pages, API), or the server itself (command line, timers).

Library operations outside a diagram (document control, training requirements) check the
person's role here; the command line is run by an administrator on the server, whose actor is
``cli:<operating-system user>`` and who is not a person of the system, so no role applies.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from models import User

from .exceptions import Forbidden


def is_person(actor) -> bool:
    """True for an account of the system; False for None, the command line and the system account."""
    return actor is not None and getattr(actor, "id", None) is not None and not str(
        getattr(actor, "username", "")).startswith(("cli:", "system"))


def person_row(session: Session, actor) -> User | None:
    """The acting person's row in this session (with roles loaded), or None for the server."""
    if not is_person(actor):
        return None
    user = session.get(User, actor.id)
    _ = user.roles if user is not None else None
    return user


def require_role(session: Session, actor, roles: frozenset[str] | set[str], what: str) -> None:
    """Refuse a person who holds none of `roles` (the server may); `what` names the action."""
    user = person_row(session, actor)
    if user is not None and not (user.role_names & set(roles)):
        names = " or ".join(f"'{r}'" for r in sorted(roles))
        raise Forbidden(f"{what} needs the role {names}, which you do not hold.", code="not_in_role")
