"""Accounts, roles and passwords are an administrator's to manage, whichever door the request comes
through: the runtime refuses any other person (URS-SEC-05, URS-SEC-02). The command line and the
system (no person) are the server's own administrators."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.exceptions import Forbidden
from models import AuditEntry, User
from tests.conftest import PASSWORD
from tests.fixtures.cast import add_users


@pytest.fixture
def people(loaded_runtime):
    return add_users(loaded_runtime, {"ada": ("Ada Admin", ["Admin"]), "quinn": ("Quinn QA", ["QA"]),
                                      "olivia": ("Olivia Operator", ["Initiator"])})


@pytest.mark.urs("URS-SEC-05")
@pytest.mark.urs("URS-SEC-02")
def test_a_person_without_the_admin_role_manages_no_account(loaded_runtime, people):
    rt, quinn = loaded_runtime, people["quinn"]
    refusals = {
        "create": lambda: rt.add_user(quinn, "mallory", "Mallory", PASSWORD, ["QA Head"]),
        "roles": lambda: rt.set_roles(quinn, "quinn", ["QA", "QA Head"]),
        "deactivate": lambda: rt.deactivate_user(quinn, "olivia", "I do not like her"),
        "reset": lambda: rt.set_password(quinn, "olivia", "Another-password-9"),
        "zone": lambda: rt.set_timezone(quinn, "olivia", "Europe/Paris"),
    }
    for what, call in refusals.items():
        with pytest.raises(Forbidden) as refused:
            call()
        assert refused.value.code == "not_in_role" and "'Admin'" in refused.value.message, what
    with rt.db.sessionmaker() as s:
        assert s.scalar(select(User).where(User.username == "mallory")) is None
        quinn_row = s.scalar(select(User).where(User.username == "quinn"))
        assert quinn_row.role_names == {"QA", "Employee"}
        olivia = s.scalar(select(User).where(User.username == "olivia"))
        assert olivia.active and olivia.timezone != "Europe/Paris"
    assert rt.authenticate("olivia", PASSWORD) is not None  # her password is unchanged


@pytest.mark.urs("URS-SEC-05")
def test_an_administrator_manages_accounts_and_a_person_their_own_password_and_zone(loaded_runtime, people):
    rt, ada, olivia = loaded_runtime, people["ada"], people["olivia"]
    rt.add_user(ada, "nina", "Nina New", PASSWORD, ["Initiator"])
    rt.set_roles(ada, "nina", ["Initiator", "QA"])
    rt.set_password(olivia, "olivia", "Olivias-own-password-7")
    rt.set_timezone(olivia, "olivia", "Europe/Berlin")
    rt.deactivate_user(ada, "nina", "Left")
    with rt.db.sessionmaker() as s:
        granted = s.scalars(select(AuditEntry.new).where(AuditEntry.action == "role_granted",
                                                         AuditEntry.username == "ada")).all()
        assert set(granted) >= {"Initiator", "QA", "Employee"}
    assert rt.authenticate("olivia", "Olivias-own-password-7") is not None
