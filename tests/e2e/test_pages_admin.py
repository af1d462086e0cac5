"""Administration (role Admin): users and roles; read-only diagram versions with hash and status."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from models import AuditEntry, User
from tests.e2e.conftest import login


@pytest.mark.urs("URS-SEC-05")
@pytest.mark.urs("URS-SEC-02")
def test_administration_is_for_admins_only(as_user, admin):
    c = as_user("quinn")
    for url in ("/admin/users", "/admin/users/new", "/admin/processes", "/admin/users/olivia"):
        resp = c.get(url)
        assert resp.status_code == 403 and "for the role &#39;Admin&#39;" in resp.get_data(as_text=True), url
    assert c.post("/admin/users/olivia/roles", data={"roles": ["Admin"]}).status_code == 403
    assert "Administration" not in c.get("/").get_data(as_text=True)
    assert "Administration" in as_user("ada").get("/").get_data(as_text=True)


@pytest.mark.urs("URS-SEC-05")
def test_users_page_lists_accounts_with_roles_and_status(as_user, admin):
    html = as_user("ada").get("/admin/users").get_data(as_text=True)
    for username in ("olivia", "quinn", "ivan", "ada"):
        assert f'href="/admin/users/{username}"' in html
    assert "Investigator, Initiator" in html or "Initiator, Investigator" in html  # iris


@pytest.mark.urs("URS-SEC-01")
@pytest.mark.urs("URS-SEC-05")
def test_admin_creates_a_user_who_must_change_the_password(as_user, admin, app, loaded_runtime):
    c = as_user("ada")
    page = c.get("/admin/users/new").get_data(as_text=True)
    assert 'value="Initiator"' in page and 'value="QA Head"' in page
    resp = c.post("/admin/users/new", data={"username": "nina", "full_name": "Nina New", "email": "",
                                            "password": "Welcome-2026-x", "roles": ["Initiator", "QA"]})
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/users/nina"
    user = loaded_runtime.user_by_username("nina")
    assert user.must_change_password and user.role_names == {"Initiator", "QA", "Employee"}
    resp = login(app.test_client(), "nina", "Welcome-2026-x")
    assert resp.headers["Location"] == "/password"


@pytest.mark.urs("URS-SEC-05")
def test_user_form_errors_are_shown_and_usernames_are_never_reused(as_user, admin):
    c = as_user("ada")
    resp = c.post("/admin/users/new", data={"username": "Bad Name", "full_name": "X", "password": "Welcome-2026-x"})
    assert resp.status_code == 400 and "lower-case letters" in resp.get_data(as_text=True)
    resp = c.post("/admin/users/new", data={"username": "nina", "full_name": "Nina", "password": "short"})
    assert resp.status_code == 400 and "at least 10 characters" in resp.get_data(as_text=True)
    assert 'value="nina"' in resp.get_data(as_text=True)  # kept
    resp = c.post("/admin/users/new", data={"username": "olivia", "full_name": "Other Olivia",
                                            "password": "Welcome-2026-x"})
    assert resp.status_code == 400 and "never reused" in resp.get_data(as_text=True)
    resp = c.post("/admin/users/new", data={"username": "nina", "full_name": "", "password": "Welcome-2026-x"})
    assert resp.status_code == 400 and "full name" in resp.get_data(as_text=True)


@pytest.mark.urs("URS-SEC-05")
def test_admin_changes_roles_and_it_is_audited(as_user, admin, loaded_runtime):
    c = as_user("ada")
    resp = c.post("/admin/users/ivan/roles", data={"roles": ["Investigator", "QA"]})
    assert resp.status_code == 302
    assert loaded_runtime.user_by_username("ivan").role_names == {"Investigator", "QA", "Employee"}
    html = c.get("/admin/users/ivan").get_data(as_text=True)
    assert 'value="QA" checked' in html
    with loaded_runtime.db.sessionmaker() as s:
        granted = s.scalars(select(AuditEntry).where(AuditEntry.action == "role_granted")).all()
        assert [e.username for e in granted if e.new == "QA" and e.entity_id == str(ivan_id(s))] == ["ada"]


def ivan_id(s):
    return s.scalar(select(User.id).where(User.username == "ivan"))


@pytest.mark.urs("URS-SEC-05")
def test_deactivation_needs_a_reason_and_keeps_the_account(as_user, admin, loaded_runtime):
    c = as_user("ada")
    resp = c.post("/admin/users/olivia/deactivate", data={"reason": ""})
    assert resp.status_code == 400 and "Give the reason" in resp.get_data(as_text=True)
    assert c.post("/admin/users/olivia/deactivate", data={"reason": "Left the company"}).status_code == 302
    with loaded_runtime.db.sessionmaker() as s:
        user = s.scalar(select(User).where(User.username == "olivia"))
        assert user is not None and user.active is False
    assert "Deactivated" in c.get("/admin/users").get_data(as_text=True)
    assert c.get("/admin/users/nobody").status_code == 404


@pytest.mark.urs("URS-SEC-05")
def test_password_reset_with_a_weak_password_is_refused(as_user, admin):
    resp = as_user("ada").post("/admin/users/olivia/password", data={"password": "weak"})
    assert resp.status_code == 400 and "at least 10 characters" in resp.get_data(as_text=True)


@pytest.mark.urs("URS-VAL-01")
def test_process_versions_are_listed_with_hash_and_status(as_user, admin, loaded_runtime):
    html = as_user("ada").get("/admin/processes").get_data(as_text=True)
    with loaded_runtime.db.sessionmaker() as s:
        version = loaded_runtime.released_versions(s)[0]
        assert version.sha256 in html
    assert "<code>deviation</code>" in html and "Released" in html and "deviation.bpmn" in html
    assert "<form" not in html.split("<main", 1)[1].split("</main>", 1)[0]  # read-only
