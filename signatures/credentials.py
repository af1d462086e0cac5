"""Passwords (argon2id) and the one credential check that log-in, API tokens and signing share.

Every failure is counted toward lock-out and audited; every success resets the count.
The caller commits the session even when the check fails, so the failure is recorded
while nothing else changes.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import User, audit_event, utcnow


def _make_hasher() -> PasswordHasher:
    """argon2id with the library's recommended parameters (RFC 9106).

    CELLQMS_PASSWORD_HASH_PROFILE=test selects the same algorithm with minimal cost, for the test
    suite only (hundreds of accounts are created there); the product never sets it.
    """
    if os.environ.get("CELLQMS_PASSWORD_HASH_PROFILE") == "test":
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()


_hasher = _make_hasher()
# Compared against when the username is unknown, so timing does not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")

MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_problem(password: str) -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"The password must have at least {MIN_PASSWORD_LENGTH} characters."
    if password.lower() == password or password.upper() == password:
        return "The password must mix upper- and lower-case letters."
    return None


@dataclass
class CheckResult:
    """The outcome of a credential check: either a user, or a refusal with its reason."""

    user: User | None
    refusal: str | None = None  # "wrong_password" | "locked" | "inactive"
    locked_until: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.user is not None and self.refusal is None


def check_credentials(session: Session, username: str, password: str, *, purpose: str,
                      max_failures: int = 5, lockout_minutes: int = 30) -> CheckResult:
    """Check a username and password; count and audit failures, lock after `max_failures`.

    `purpose` ("login", "token", "signature") goes into the audit entry.
    """
    user = session.scalar(select(User).where(User.username == username))
    now = utcnow()
    if user is None:
        _verify(_DUMMY_HASH, password)
        audit_event(session, f"{purpose}_failed", entity="users", new={"username": username},
                    reason="unknown username", user_id=None, username=username)
        return CheckResult(None, "wrong_password")
    if user.locked_until is not None and user.locked_until > now:
        audit_event(session, f"{purpose}_refused_locked", entity="users", entity_id=user.id,
                    user_id=user.id, username=user.username)
        return CheckResult(None, "locked", user.locked_until)
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        audit_event(session, f"{purpose}_failed", entity="users", entity_id=user.id, user_id=user.id,
                    username=user.username, new={"failed_logins": user.failed_logins}, reason="wrong password")
        if user.failed_logins >= max_failures:
            user.locked_until = now + dt.timedelta(minutes=lockout_minutes)
            audit_event(session, "account_locked", entity="users", entity_id=user.id, user_id=user.id,
                        username=user.username, new={"locked_until": user.locked_until},
                        reason=f"{user.failed_logins} consecutive failed attempts")
            return CheckResult(None, "locked", user.locked_until)
        return CheckResult(None, "wrong_password")
    if not user.active:
        audit_event(session, f"{purpose}_refused_inactive", entity="users", entity_id=user.id,
                    user_id=user.id, username=user.username)
        return CheckResult(None, "inactive")
    if user.failed_logins or user.locked_until:
        user.failed_logins = 0
        user.locked_until = None
    if purpose != "signature":
        audit_event(session, f"{purpose}_succeeded", entity="users", entity_id=user.id,
                    user_id=user.id, username=user.username)
    return CheckResult(user)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
